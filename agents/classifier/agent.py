"""The cross-entropy classification baseline: softmax regression and an MLP classifier.

Both are trained with :func:`rlsoft.numerics.functional.cross_entropy`, the function (with its fused
``p − y`` backward) that also trains the DQN's C51 head; that sharing is the point of this
baseline. A classifier of observations is also a policy: trained on the states a Q-learning
agent visits, labelled with its greedy actions (behaviour cloning), it plays the environment.

The training itself (epochs, early stopping, calibration, checkpoints) lives in
:class:`rlsoft.supervised.driver.SupervisedDriver`; this module only chooses the network and the
data set from the config. A config::

    env: null                    # supervised: the data set is named below
    agent:
      type: classifier
      model: mlp                 # or softmax_regression
      hidden_sizes: [256]
      optimizer: adam            # or lbfgs (full batch)
      weight_decay: 1e-4
      dataset: {name: digits}    # or {name: behavior_cloning, teacher_run: runs/..., ...}
    train:
      total_steps: 200           # epochs (the most; early stopping may end sooner)

torch is imported only when a classifier is built, so importing :mod:`agents` (every CLI
command does) stays cheap for tabular runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from rlsoft.errors import ConfigError, RlsoftError
from rlsoft.rl.agent import AgentSpec, BuildContext, register_agent
from rlsoft.run.config import StrictModel

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from rlsoft.supervised.driver import SupervisedDriver

__all__ = [
    "BehaviorCloningDatasetConfig",
    "ClassifierConfig",
    "DigitsDatasetConfig",
    "build_classifier",
    "make_network",
]


DEFAULT_HIDDEN_SIZES = (256,)

# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------


class _SplitConfig(StrictModel):
    validation_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    """Share of the data held out for early stopping and for fitting the temperature."""
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    """Share of the data held out for the reported test metrics."""
    split_seed: int | None = Field(None, ge=0)
    """Seed of the split; null derives it from the run's seed."""

    @model_validator(mode="after")
    def _room_to_train(self) -> _SplitConfig:
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                "validation_fraction + test_fraction must stay below 1, got "
                f"{self.validation_fraction} + {self.test_fraction}"
            )
        return self


class DigitsDatasetConfig(_SplitConfig):
    """scikit-learn's bundled 8×8 handwritten digits (no download), split per class."""

    name: Literal["digits"]
    """Selects this dataset."""


class BehaviorCloningDatasetConfig(_SplitConfig):
    """States visited by a trained agent's greedy policy, labelled with its greedy action."""

    name: Literal["behavior_cloning"]
    """Selects this dataset."""
    teacher_run: str
    """Run dir of the trained teacher (relative paths start at the working directory)."""
    teacher_config: str | None = None
    """Config that trains the teacher when ``teacher_run`` does not exist yet (the run dir's
    name and parent become its run_name and logdir)."""
    episodes: int = Field(50, ge=3)
    """Teacher episodes to record; whole episodes go to train, validation or test."""
    epsilon: float = Field(0.0, ge=0.0, le=1.0)
    """Probability of executing a random action instead of the teacher's while recording
    (the label stays the teacher's greedy action), so the data shows how to recover."""


DatasetConfig = Annotated[
    DigitsDatasetConfig | BehaviorCloningDatasetConfig, Field(discriminator="name")
]


class ClassifierConfig(StrictModel):
    """The ``agent:`` section of ``type: classifier``."""

    model_config = ConfigDict(extra="forbid")

    model: Literal["softmax_regression", "mlp"] = "softmax_regression"
    """``softmax_regression`` (one linear layer) or ``mlp`` (ReLU hidden layers)."""
    hidden_sizes: list[Annotated[int, Field(ge=1)]] | None = None
    """Hidden layer widths of the MLP (default [256]); softmax regression has none."""
    optimizer: Literal["adam", "lbfgs"] = "adam"
    """``adam`` on shuffled minibatches, or ``lbfgs``: scipy's full-batch L-BFGS-B, one
    iteration per epoch (fast and exact for convex softmax regression)."""
    learning_rate: float | None = Field(None, gt=0.0)
    """Adam's step size (default 1e-3); L-BFGS's line search picks its own steps."""
    batch_size: int | None = Field(None, ge=1)
    """Minibatch size for Adam (default 64); L-BFGS always uses the full training split."""
    weight_decay: float = Field(0.0, ge=0.0)
    """λ of the L2 penalty ½·λ·Σ‖W‖² on weight matrices (not biases) added to the mean
    cross-entropy; λ = 1/(C·n_train) matches scikit-learn's LogisticRegression(C)."""
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    """ε: train towards (1 − ε)·one_hot + ε/K instead of the one-hot label."""
    patience: int | None = Field(10, ge=1)
    """Early stopping: epochs without a validation-NLL improvement before training ends and
    the best epoch's weights are kept; null trains the whole budget and keeps the last."""
    min_delta: float = Field(1e-4, ge=0.0)
    """The smallest decrease of the validation NLL that counts as an improvement."""
    tolerance: float = Field(1e-4, gt=0.0)
    """lbfgs only: training has converged, and ends, once the largest absolute gradient entry
    of the regularised mean loss is at most this (scikit-learn's tol)."""
    dataset: DatasetConfig
    """``{name: digits, ...}`` or ``{name: behavior_cloning, teacher_run: ..., ...}``."""

    @model_validator(mode="after")
    def _consistent(self) -> ClassifierConfig:
        if self.model == "softmax_regression" and self.hidden_sizes is not None:
            raise ValueError(
                "hidden_sizes is for model mlp; softmax regression has no hidden layer"
            )
        if self.model == "mlp" and self.hidden_sizes == []:
            raise ValueError("model mlp needs at least one hidden layer in hidden_sizes")
        if self.optimizer == "lbfgs" and self.batch_size is not None:
            raise ValueError("optimizer lbfgs uses the full training split; remove batch_size")
        if self.optimizer == "lbfgs" and self.learning_rate is not None:
            raise ValueError(
                "optimizer lbfgs chooses its steps by line search; remove learning_rate"
            )
        return self

    def training_options(self) -> Any:
        from rlsoft.supervised.driver import TrainingOptions

        adam = self.optimizer == "adam"
        return TrainingOptions(
            optimizer=self.optimizer,
            learning_rate=self.learning_rate,
            batch_size=(self.batch_size or 64) if adam else None,
            weight_decay=self.weight_decay,
            label_smoothing=self.label_smoothing,
            patience=self.patience,
            min_delta=self.min_delta,
            tolerance=self.tolerance,
        )


# --------------------------------------------------------------------------------------------
# Networks and building
# --------------------------------------------------------------------------------------------


def make_network(config: ClassifierConfig, num_features: int, num_classes: int) -> nn.Module:
    """Softmax regression ``z = W x + b`` or an MLP with ReLU hidden layers (PyTorch's default
    initialisation, so the first loss is close to ln K on standardised inputs)."""
    from torch import nn

    if config.model == "softmax_regression":
        return nn.Linear(num_features, num_classes)
    layers: list[nn.Module] = []
    width = num_features
    for hidden in config.hidden_sizes or DEFAULT_HIDDEN_SIZES:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def build_classifier(ctx: BuildContext) -> SupervisedDriver:
    """The driver that trains the configured classifier (the spec's ``build``)."""
    import numpy as np
    import torch

    from rlsoft.rl.seeding import derive_seeds
    from rlsoft.supervised.driver import SupervisedDriver, supervised_seeds

    config: ClassifierConfig = ctx.config  # type: ignore[assignment]
    experiment = ctx.extras.get("experiment")
    seeds = ctx.extras.get("seeds") or derive_seeds(ctx.torch_seed)
    dataset = config.dataset
    split_rng = (
        np.random.default_rng(dataset.split_seed) if dataset.split_seed is not None else ctx.rng
    )
    _check_env_section(experiment, dataset)
    if isinstance(dataset, DigitsDatasetConfig):
        from rlsoft.supervised.datasets import load_digits_splits

        splits = load_digits_splits(
            split_rng,
            validation_fraction=dataset.validation_fraction,
            test_fraction=dataset.test_fraction,
        )
        policy = None
    else:
        splits, policy = _behavior_cloning(ctx, dataset, seeds, split_rng, experiment)
    # Weight initialisation and minibatch shuffling each get their own stream (see
    # supervised_seeds), both derived from the run's root seed.
    streams = supervised_seeds(ctx.torch_seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(streams.init)
        network = make_network(config, splits.num_features, splits.num_classes)
    return SupervisedDriver(
        network,
        splits,
        options=config.training_options(),
        total_epochs=ctx.total_steps,
        seed=streams.shuffle,
        device=ctx.device,
        policy=policy,
        eval_only=bool(ctx.extras.get("eval_only", False)),
    )


def _check_env_section(experiment: Any, dataset: Any) -> None:
    """A supervised run takes its data from ``agent.dataset``: an explicit ``env`` section is
    a mistake for digits (behaviour cloning checks it against the teacher's environment)."""
    if experiment is None or experiment.env is None or "env" not in experiment.model_fields_set:
        return
    if isinstance(dataset, DigitsDatasetConfig):
        raise ConfigError(
            "the digits classifier trains on a data set, not an environment; set env: null"
        )


def _injected(ctx: BuildContext, key: str) -> Any:
    """A run-layer function the experiment runner puts in ``ctx.extras`` (agents and the
    supervised layer do not import the run layer's orchestration)."""
    try:
        return ctx.extras[key]
    except KeyError:
        raise RlsoftError(
            f"behaviour cloning needs BuildContext.extras[{key!r}]; build the classifier "
            "through rlsoft.run.experiment (rlsoft train), which provides it"
        ) from None


def _behavior_cloning(
    ctx: BuildContext, dataset: BehaviorCloningDatasetConfig, seeds: Any, rng: Any, experiment: Any
) -> tuple[Any, Any]:
    import torch

    from rlsoft.run.checkpoint import latest_checkpoint
    from rlsoft.supervised.datasets import collect_behavior_cloning, ensure_teacher_run
    from rlsoft.supervised.driver import PolicyEvaluation

    teacher_run = Path(dataset.teacher_run)
    if ctx.extras.get("eval_only"):
        # Evaluating never trains a teacher behind the user's back.
        if latest_checkpoint(teacher_run) is None:
            raise RlsoftError(
                f"evaluating this behaviour-cloning run needs its teacher run "
                f"{str(teacher_run)!r} (the test data and the environment come from it), "
                "which is missing"
            )
    else:
        teacher_config = Path(dataset.teacher_config) if dataset.teacher_config else None
        ensure_teacher_run(teacher_run, teacher_config, train=_injected(ctx, "train_run"))
    eval_episodes = experiment.train.eval_episodes if experiment is not None else 20
    threads = torch.get_num_threads()
    data = collect_behavior_cloning(
        teacher_run,
        load_run=_injected(ctx, "load_run"),
        episodes=dataset.episodes,
        seed=seeds.env,
        rng=ctx.rng,
        split_rng=rng,
        validation_fraction=dataset.validation_fraction,
        test_fraction=dataset.test_fraction,
        epsilon=dataset.epsilon,
        eval_episodes=eval_episodes,
        eval_seed=seeds.evaluation,
    )
    torch.set_num_threads(threads)  # loading (or training) the teacher may have changed it
    explicit_env = experiment is not None and "env" in experiment.model_fields_set
    if explicit_env and experiment.env is not None and experiment.env.id != data.env_config.id:
        raise ConfigError(
            f"env.id is {experiment.env.id!r} but the teacher {str(teacher_run)!r} was "
            f"trained on {data.env_config.id!r}; set env: null to use the teacher's"
        )
    policy = PolicyEvaluation(
        env_config=data.env_config,
        observation_space=data.observation_space,
        episodes=eval_episodes,
        seed=seeds.evaluation,
        teacher_returns=data.teacher_returns,
    )
    return data.splits, policy


register_agent(
    AgentSpec(
        name="classifier",
        title="classifier",
        config_model=ClassifierConfig,
        build=build_classifier,
        kind="supervised",
        description="softmax regression or MLP classifier trained with rlsoft's cross_entropy "
        "(digits, or behaviour cloning of a trained agent)",
        uses_torch=True,
    )
)
