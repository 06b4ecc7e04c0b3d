"""Training a classifier on a data set through the one training loop.

:class:`SupervisedDriver` is the driver :class:`rlsoft.run.trainer.Trainer` advances for
supervised agents, the way :class:`rlsoft.rl.collector.EnvDriver` serves RL agents. One trainer
step is one **epoch** (a pass over the training split), so ``train.total_steps`` is the most
epochs, and ``log_every`` / ``eval_every`` / ``checkpoint_every`` count epochs.

Each epoch minimises ``cross_entropy(model(x), y) + ½·λ·Σ‖W‖²`` with
:func:`rlsoft.numerics.functional.cross_entropy`, the same function (and fused ``p − y`` backward)
that trains the C51 head, either in shuffled minibatches (Adam) or as one full-batch L-BFGS
iteration of :func:`scipy.optimize.minimize` (``method="L-BFGS-B"``; small convex problems such
as softmax regression). After each epoch the validation split
is scored; early stopping keeps the weights with the lowest validation NLL and ends the run once
``patience`` epochs bring no improvement of at least ``min_delta``.

Evaluation scores the test split with the kept weights, fits a temperature on the validation
split (:mod:`rlsoft.supervised.calibration`) and reports both; a classifier of environment
observations (behaviour cloning) is also run as a greedy policy in its environment.

Before the first epoch the training loss is compared with ``ln K``, the loss of a model that
has not yet learned anything (uniform predictions). A first loss far from it is a bug in the
wiring, not in the optimiser, and a warning names the usual suspects.
"""

from __future__ import annotations

import copy
import math
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import scipy.optimize
import torch
from torch import nn

from rlsoft.errors import CheckpointError, RlsoftError, count
from rlsoft.numerics.functional import argmax, cross_entropy
from rlsoft.supervised.calibration import CalibrationReport, calibration_report
from rlsoft.supervised.datasets import DatasetSplits, observation_encoder

__all__ = [
    "GreedyClassifierPolicy",
    "PolicyEvaluation",
    "Standardize",
    "SupervisedDriver",
    "SupervisedSeeds",
    "TrainingOptions",
    "initial_loss_problem",
    "supervised_seeds",
]

CHECKPOINT_FORMAT = "rlsoft.supervised/1"
_EVAL_CHUNK = 8192


class Standardize(nn.Module):
    """``(x − mean) / std`` with the training split's statistics, stored with the model."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@dataclass(frozen=True)
class SupervisedSeeds:
    """The classifier's two random streams: weight initialisation and minibatch shuffling."""

    init: int
    """Seeds torch's generator while the network is built (its initial weights)."""
    shuffle: int
    """Seeds :attr:`SupervisedDriver.generator`, which draws each epoch's minibatch order."""


def supervised_seeds(torch_seed: int) -> SupervisedSeeds:
    """Two independent 32-bit seeds spawned from the run's torch seed (itself a child of the
    root seed, :func:`rlsoft.rl.seeding.derive_seeds`) with ``numpy.random.SeedSequence``.

    Seeding both from the same number would make the first epoch's minibatch order a function
    of the very random numbers that drew the initial weights (``torch.manual_seed(s)`` and
    ``torch.Generator().manual_seed(s)`` produce the same stream); spawned children are
    statistically independent, as the RL streams of :class:`rlsoft.rl.seeding.RunSeeds` are.
    """
    if torch_seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {torch_seed}")
    init, shuffle = np.random.SeedSequence(torch_seed).spawn(2)
    return SupervisedSeeds(
        init=int(init.generate_state(1, dtype=np.uint32)[0]),
        shuffle=int(shuffle.generate_state(1, dtype=np.uint32)[0]),
    )


def initial_loss_problem(loss: float, num_classes: int) -> str | None:
    """What a first training loss far from ``ln K`` most likely means, or None if it is fine.

    An untrained K-class model predicts nearly uniform probabilities, whose cross-entropy is
    ``ln K``. "Far" is more than ``max(1 nat, ln K / 2)`` away, which a correctly wired model
    with the usual small initialisation never is.
    """
    expected = math.log(num_classes)
    if not math.isfinite(loss):
        return (
            f"the first training loss is {loss} (expected ln K = {expected:.3f} for K = "
            f"{num_classes}): the inputs or the initial weights contain NaN or inf"
        )
    gap = loss - expected
    if abs(gap) <= max(1.0, 0.5 * expected):
        return None
    head = (
        f"the first training loss is {loss:.3f} but an untrained {num_classes}-class model "
        f"should start near ln K = {expected:.3f}"
    )
    if gap > 0:
        return (
            f"{head}: the initial logits are confidently wrong. Likely bugs: unscaled inputs "
            "(standardise the features), a too-large initialisation of the last layer, labels "
            "that do not index the logits (wrong class order or K), or probabilities passed "
            "where logits are expected"
        )
    return (
        f"{head}: the model is already confident and right before training. Likely bugs: "
        "labels leaking into the features, or fewer effective classes than K (a label "
        "mismatch between data and model)"
    )


@dataclass
class _LbfgsSolve:
    """One L-BFGS solve: where it started, its iterates ``x_1 … x_n`` and the training
    cross-entropy at ``x_0 … x_n``, and why it ended (None: at its iteration limit)."""

    start: np.ndarray
    start_epoch: int
    iterates: list[np.ndarray] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    stop_reason: str | None = None


@dataclass(frozen=True)
class TrainingOptions:
    """How the driver trains (one field per knob of the ``agent:`` config section).

    :param optimizer: ``adam`` (shuffled minibatches) or ``lbfgs`` (full-batch L-BFGS by
        ``scipy.optimize.minimize(method="L-BFGS-B")``, one iteration per epoch).
    :param learning_rate: Adam's step size (default 1e-3). L-BFGS takes none: scipy's line
        search (Moré–Thuente) starts from the natural quasi-Newton step 1.
    :param batch_size: minibatch size for Adam; None means the full training split.
    :param weight_decay: λ of the L2 penalty ``½·λ·Σ‖W‖²`` on weight matrices (not biases)
        added to the mean cross-entropy; λ = 1/(C·n) is scikit-learn's ``C``.
    :param label_smoothing: ε of :func:`rlsoft.numerics.functional.cross_entropy`.
    :param patience: epochs without a validation-NLL improvement before training stops;
        None disables early stopping (the last weights are kept).
    :param min_delta: the smallest decrease of the validation NLL that counts as improvement.
    :param tolerance: ``lbfgs`` only: training has converged, and ends, once the largest
        absolute entry of the gradient of the regularised mean loss is at most this (the
        criterion and default of scikit-learn's ``LogisticRegression(tol=1e-4)``).
    """

    optimizer: Literal["adam", "lbfgs"] = "adam"
    learning_rate: float | None = None
    batch_size: int | None = 64
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    patience: int | None = 10
    min_delta: float = 1e-4
    tolerance: float = 1e-4

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "lbfgs"):
            raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {self.optimizer!r}")
        if self.optimizer == "lbfgs" and self.learning_rate is not None:
            raise ValueError(
                "learning_rate is Adam's step size; L-BFGS's line search chooses its own steps, "
                "so leave learning_rate unset with optimizer lbfgs"
            )
        if self.learning_rate is not None and not 0.0 < self.learning_rate < math.inf:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.weight_decay < 0.0:
            raise ValueError(f"weight_decay must be ≥ 0, got {self.weight_decay}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 < self.tolerance < math.inf:
            raise ValueError(f"tolerance must be positive, got {self.tolerance}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be at least 1 (or None), got {self.patience}")

    @property
    def step_size(self) -> float:
        """``learning_rate``, or the optimiser's default when it is None (for L-BFGS the first
        step its line search tries, 1, which is not configurable)."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 1.0 if self.optimizer == "lbfgs" else 1e-3


class GreedyClassifierPolicy:
    """A classifier of observations used as a policy: ``action = argmax(logits(obs))``.

    Exposes ``act_greedy`` like an RL agent, so :func:`rlsoft.rl.evaluation.evaluate_greedy`
    runs it. Ties (equal logits) go to the first action.
    """

    def __init__(
        self,
        model: Callable[[torch.Tensor], torch.Tensor],
        space: gym.Space,
        device: str | torch.device = "cpu",
    ) -> None:
        self.model = model
        self.device = torch.device(device)
        self._encode = observation_encoder(space)[1]

    @torch.inference_mode()
    def act_greedy(self, obs: Any) -> int:
        features = torch.from_numpy(self._encode([obs])).to(self.device)
        return int(argmax(self.model(features)[0]))


@dataclass
class PolicyEvaluation:
    """Where and how a classifier of observations is evaluated as a policy."""

    env_config: Any
    """:class:`rlsoft.run.config.EnvConfig` of the environment to run the policy in."""
    observation_space: gym.Space
    episodes: int
    seed: int
    teacher_returns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """The teacher's greedy returns on the same episodes (empty when there is no teacher)."""


class SupervisedDriver:
    """Trains ``network`` on ``splits`` for :class:`rlsoft.run.trainer.Trainer`, one epoch a step.

    :param network: maps standardised features (n, d) to logits (n, K); it is wrapped after a
        :class:`Standardize` layer holding the training split's statistics.
    :param splits: train / validation / test data.
    :param options: optimiser, regularisation and early stopping.
    :param total_epochs: the run's budget (``train.total_steps``); the evaluation at the end of
        it prints the calibration report.
    :param seed: seeds the minibatch shuffling (:attr:`SupervisedSeeds.shuffle`; a stream of
        its own, never the seed that initialised the network's weights).
    :param policy: run the classifier as a greedy policy when evaluating (behaviour cloning).
    :param eval_only: built to evaluate a checkpoint (``rlsoft eval``): every evaluation prints
        its report.
    :param echo: where reports go (``print``).
    """

    unit = "epochs"
    agent_file = "agent.pt"

    def __init__(
        self,
        network: nn.Module,
        splits: DatasetSplits,
        *,
        options: TrainingOptions | None = None,
        total_epochs: int,
        seed: int,
        device: str = "cpu",
        policy: PolicyEvaluation | None = None,
        eval_only: bool = False,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.options = options or TrainingOptions()
        if self.options.optimizer == "lbfgs" and self.options.batch_size is not None:
            raise RlsoftError(
                "the lbfgs optimizer works on the full training split; set batch_size to null "
                "or use optimizer adam for minibatches"
            )
        self.splits = splits
        self.device = torch.device(device)
        self.total_epochs = int(total_epochs)
        self.policy_eval = policy
        self.eval_only = eval_only
        self.echo = echo
        mean, std = splits.standardization()
        self.model = nn.Sequential(Standardize(mean, std), network).to(self.device)
        self.network = network
        self._check_output_size()
        self.best_model = copy.deepcopy(self.model)
        self.best_model.requires_grad_(False)
        self._tensors = {
            split: (
                torch.as_tensor(getattr(splits, f"x_{split}"), device=self.device),
                torch.as_tensor(getattr(splits, f"y_{split}"), device=self.device),
            )
            for split in ("train", "val", "test")
        }
        with torch.no_grad():  # standardised once: the scaling is fixed during training
            self._train_x = self.model[0](self._tensors["train"][0])
        self._params = list(self.network.parameters())
        self._decayed = [p for p in self._params if p.ndim >= 2]
        self.optimizer: torch.optim.Optimizer | None = None
        self._solve: _LbfgsSolve | None = None
        self._solve_to_replay: tuple[np.ndarray, int] | None = None
        self._last_eval: tuple[np.ndarray, float] = (np.zeros(0), math.nan)
        if self.options.optimizer == "adam":
            # Coupled L2 (Adam's weight_decay adds λ·W to the gradient, the gradient of
            # ½·λ·‖W‖²) on weight matrices only: biases are not decayed, as in scikit-learn.
            decayed = {id(p) for p in self._decayed}
            groups = [
                {"params": self._decayed, "weight_decay": self.options.weight_decay},
                {"params": [p for p in self._params if id(p) not in decayed], "weight_decay": 0.0},
            ]
            self.optimizer = torch.optim.Adam(
                [g for g in groups if g["params"]], lr=self.options.step_size
            )
        self.generator = torch.Generator().manual_seed(int(seed))
        self.temperature = 1.0
        # Loop state (saved in the trainer's JSON state by state_dict()).
        self.epoch = 0
        self.best_val_loss = math.inf
        self.best_epoch = 0
        self.epochs_since_best = 0
        self.stop_reason: str | None = None
        """Why training ended before the budget: ``"early_stopping"``, ``"converged"`` (L-BFGS
        reached its gradient tolerance) or ``"stalled"`` (scipy's L-BFGS-B stopped on its
        relative-decrease test or a failed line search); None while training goes on."""
        self.initial_loss: float | None = None
        self.initial_loss_warning: str | None = None
        self._window_losses: list[float] = []
        self._window_initial: float | None = None
        self._last_val: tuple[float, float] | None = None
        self._env: gym.Env | None = None
        self.last_report: CalibrationReport | None = None

    # ------------------------------------------------------------------ construction

    def _check_output_size(self) -> None:
        with torch.no_grad():
            probe = self.model(torch.as_tensor(self.splits.x_train[:1], device=self.device))
        if probe.shape != (1, self.splits.num_classes):
            raise RlsoftError(
                f"the network outputs {tuple(probe.shape[1:])} logits per sample but "
                f"{self.splits.name} has {self.splits.num_classes} classes"
            )

    # ------------------------------------------------------------------ training

    @torch.no_grad()
    def _penalty(self) -> torch.Tensor | float:
        """``½·λ·Σ‖W‖²`` (a value only: :meth:`_backward` adds its gradient ``λ·W``)."""
        if not self.options.weight_decay:
            return 0.0
        return 0.5 * self.options.weight_decay * sum(w.pow(2).sum() for w in self._decayed)

    def _backward(self, ce: torch.Tensor) -> None:
        """Gradients of ``ce`` (autograd, the fused ``p − y``); Adam adds the penalty's
        gradient through its parameter groups' ``weight_decay``."""
        for p in self._params:
            p.grad = None
        ce.backward()

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Training cross-entropy of already standardised features ``x``."""
        return cross_entropy(self.network(x), y, label_smoothing=self.options.label_smoothing)

    def _train_epoch(self) -> float:
        """One pass over the training split; the mean training cross-entropy during it."""
        self.model.train()
        if self.options.optimizer == "lbfgs":
            return self._lbfgs_epoch()
        x, y = self._train_x, self._tensors["train"][1]
        optimizer = self.optimizer
        assert optimizer is not None
        n = len(y)
        batch = self.options.batch_size or n
        order = torch.randperm(n, generator=self.generator).to(self.device)
        total = torch.zeros((), device=self.device)
        for start in range(0, n, batch):
            index = order[start : start + batch]
            ce = self._loss(x[index], y[index])
            self._backward(ce)
            optimizer.step()
            total += ce.detach() * len(index)
        return float(total) / n

    def _flat_params(self) -> np.ndarray:
        return torch.cat([p.detach().reshape(-1) for p in self._params]).double().cpu().numpy()

    def _set_flat_params(self, x: np.ndarray) -> None:
        flat = torch.from_numpy(x).to(device=self.device, dtype=self._params[0].dtype)
        torch.nn.utils.vector_to_parameters(flat, self._params)

    def _objective(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """``(f, ∇f)`` of ``ce + ½·λ·Σ‖W‖²`` on the full training split at flat weights ``x``
        (``λ·W`` is added to autograd's cross-entropy gradient directly: fewer graph nodes)."""
        self._set_flat_params(x)
        ce = self._loss(self._train_x, self._tensors["train"][1])
        self._backward(ce)
        if self.options.weight_decay:
            with torch.no_grad():
                for w in self._decayed:
                    w.grad.add_(w, alpha=self.options.weight_decay)
        self._last_eval = (x.copy(), float(ce.detach()))
        grad = torch.cat([p.grad.reshape(-1) for p in self._params])
        return self._last_eval[1] + float(self._penalty()), grad.double().cpu().numpy()

    def _cross_entropy_at(self, x: np.ndarray) -> float:
        """Training cross-entropy at ``x``, from the last objective evaluation when it was
        there (scipy's line search evaluates the accepted point last)."""
        if not np.array_equal(self._last_eval[0], x):
            self._objective(x)
        return self._last_eval[1]

    def _run_solve(self, start: np.ndarray, start_epoch: int, maxiter: int) -> _LbfgsSolve:
        """One ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)`` from ``start`` for at
        most ``maxiter`` iterations; the callback records every iterate and its training loss.

        The options are scikit-learn's for ``LogisticRegression(solver="lbfgs")``: stop once
        ``max_i |∂f/∂x_i| ≤ tolerance`` (``gtol``), or once the relative decrease of ``f`` is
        below ``64·ε`` (``ftol``: float32 forward passes cannot resolve less), with up to 50
        line-search evaluations per iteration and the default 10 correction pairs. Given
        ``start`` the solve is deterministic, and ``maxiter`` only decides where it stops (the
        first iterates of a longer solve are those of a shorter one), which is what makes
        resume exact, with a grown budget too.
        """
        self._last_eval = (np.full_like(start, np.nan), math.nan)
        solve = _LbfgsSolve(start=start.copy(), start_epoch=start_epoch)
        solve.losses.append(self._cross_entropy_at(start))

        def record(intermediate_result: scipy.optimize.OptimizeResult) -> None:
            x = np.array(intermediate_result.x, dtype=np.float64)
            solve.iterates.append(x)
            solve.losses.append(self._cross_entropy_at(x))

        result = scipy.optimize.minimize(
            self._objective,
            start,
            method="L-BFGS-B",
            jac=True,
            callback=record,
            options={
                "maxiter": maxiter,
                "gtol": self.options.tolerance,
                "ftol": 64 * np.finfo(float).eps,
                "maxls": 50,
            },
        )
        if float(np.abs(result.jac).max()) <= self.options.tolerance:
            solve.stop_reason = "converged"
        elif len(solve.iterates) < maxiter:
            solve.stop_reason = "stalled"  # ftol, or a line search that found no decrease
        return solve

    def _lbfgs_epoch(self) -> float:
        """One L-BFGS iteration on the full training split; the training cross-entropy at its
        start.

        The whole solve (:meth:`_run_solve`, tens of milliseconds for softmax regression on
        the digits) runs as one unit at the first epoch, and the epochs replay its iterates:
        at epoch ``k`` the model holds iterate ``k``, so validation, logging and checkpoints
        see the same weights as an iteration-by-iteration optimiser would show them. A
        checkpoint stores where the solve started; a resumed run solves again from there (the
        same deterministic solve, up to the possibly grown budget; a few milliseconds) and goes
        on from the epoch it reached, so it is bit-identical to a run that was never
        interrupted. (Restarting L-BFGS from the checkpoint's weights instead would lose its
        curvature pairs and take other steps.)
        """
        solve = self._solve
        if self._solve_to_replay is not None:
            start, start_epoch = self._solve_to_replay
            self._solve_to_replay = None
            solve = self._solve = self._run_solve(
                start, start_epoch, self.total_epochs - start_epoch
            )
        elif solve is None:
            start = self._flat_params()
            solve = self._solve = self._run_solve(start, self.epoch, self.total_epochs - self.epoch)
        elif self.epoch - solve.start_epoch >= len(solve.iterates) and solve.stop_reason is None:
            # The budget grew after the solve reached its iteration limit: the same solve,
            # longer (its first iterates are those already replayed).
            solve = self._solve = self._run_solve(
                solve.start, solve.start_epoch, self.total_epochs - solve.start_epoch
            )
        k = self.epoch - solve.start_epoch
        if k >= len(solve.iterates):  # the solve ended where it started (gradient already small)
            self.stop_reason = solve.stop_reason
            return solve.losses[-1]
        self._set_flat_params(solve.iterates[k])
        if k + 1 == len(solve.iterates) and solve.stop_reason is not None:
            self.stop_reason = solve.stop_reason
        return solve.losses[k]

    def _check_initial_loss(self) -> None:
        with torch.no_grad():
            self.initial_loss = float(self._loss(self._train_x, self._tensors["train"][1]))
        self._window_initial = self.initial_loss
        problem = initial_loss_problem(self.initial_loss, self.splits.num_classes)
        if problem is not None:
            self.initial_loss_warning = problem
            warnings.warn(problem, RuntimeWarning, stacklevel=3)

    def advance(self, budget: int, step: int) -> int:
        """Train up to ``budget`` epochs; fewer when early stopping ends the run."""
        if self.initial_loss is None:
            self._check_initial_loss()
        done = 0
        while done < budget and not self.finished:
            loss = self._train_epoch()
            if not math.isfinite(loss):
                raise RlsoftError(
                    f"training diverged at epoch {self.epoch + 1} (loss {loss}); lower "
                    "agent.learning_rate or check the data for NaN"
                )
            self.epoch += 1
            done += 1
            self._window_losses.append(loss)
            self._after_epoch()
        return max(done, 1)

    def _after_epoch(self) -> None:
        self._last_val = None  # the weights changed
        if self.options.patience is None:
            return  # validation is scored when logged: nothing else needs it every epoch
        val_loss, _ = self._validation()
        if val_loss < self.best_val_loss - self.options.min_delta:
            self.best_val_loss, self.best_epoch, self.epochs_since_best = val_loss, self.epoch, 0
            self.best_model.load_state_dict(self.model.state_dict())
            return
        self.epochs_since_best += 1
        patience = self.options.patience
        if patience is not None and self.epochs_since_best >= patience:
            self.stop_reason = "early_stopping"

    @property
    def finished(self) -> bool:
        """True once training ended before the budget; the trainer then stops the run."""
        return self.stop_reason is not None

    @property
    def converged(self) -> bool:
        """True when L-BFGS ended training (at its tolerance or at float32 precision)."""
        return self.stop_reason in ("converged", "stalled")

    def fit(self) -> int:
        """Train to the budget or until early stopping, without a trainer; epochs done."""
        while self.epoch < self.total_epochs and not self.finished:
            self.advance(self.total_epochs - self.epoch, self.epoch)
        return self.epoch

    # ------------------------------------------------------------------ scoring

    @property
    def eval_model(self) -> nn.Module:
        """The weights that count: the best on validation with early stopping, else the last."""
        return self.model if self.options.patience is None else self.best_model

    @property
    def input_width(self) -> int:
        """Features per sample the classifier takes (its first linear layer's inputs)."""
        return next(m for m in self.model.modules() if isinstance(m, nn.Linear)).in_features

    @torch.no_grad()
    def logits(self, x: Any, model: nn.Module | None = None) -> np.ndarray:
        """Logits (float64 numpy) of raw features ``x`` (n, d) under the kept weights."""
        model = self.eval_model if model is None else model
        model.eval()
        x = torch.as_tensor(np.asarray(x, dtype=np.float32), device=self.device)
        parts = [model(x[i : i + _EVAL_CHUNK]) for i in range(0, len(x), _EVAL_CHUNK)]
        return torch.cat(parts).double().cpu().numpy()

    def predict(self, x: Any) -> np.ndarray:
        """Class predictions ``argmax(logits)`` (unaffected by the temperature)."""
        return np.asarray(argmax(self.logits(x)))

    def predict_proba(self, x: Any) -> np.ndarray:
        """Calibrated probabilities ``softmax(logits, temperature=τ)``."""
        from rlsoft.numerics.functional import softmax

        return softmax(self.logits(x), temperature=self.temperature)

    def _validation(self) -> tuple[float, float]:
        """Validation NLL and accuracy of the current weights (cached until the next epoch)."""
        if self._last_val is None:
            self._last_val = self._score(self.model, "val")
        return self._last_val

    @torch.no_grad()
    def _score(self, model: nn.Module, split: str) -> tuple[float, float]:
        x, y = self._tensors[split]
        model.eval()
        logits = model(x)
        return float(cross_entropy(logits, y)), float((logits.argmax(-1) == y).double().mean())

    # ------------------------------------------------------------------ trainer interface

    def sample(self, step: int) -> None:
        """Nothing to sample: RL drivers record visited states here to estimate the policy's
        entropy, but a classifier's training data does not depend on what it predicts."""

    def window_metrics(self, step: int) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self._window_initial is not None:
            metrics["losses/initial_cross_entropy"] = self._window_initial
            self._window_initial = None
        if self._window_losses:
            metrics["losses/cross_entropy"] = float(np.mean(self._window_losses))
            self._window_losses = []
        if self.epoch:
            val_loss, val_accuracy = self._validation()
            metrics["val/cross_entropy"] = val_loss
            metrics["val/accuracy"] = val_accuracy
        if self.options.patience is not None:
            metrics["val/best_cross_entropy"] = self.best_val_loss
            metrics["charts/epochs_since_best"] = float(self.epochs_since_best)
        return metrics

    def status(self) -> str:
        if not self.epoch:
            return ""
        val_loss, val_accuracy = self._validation()
        text = f"val nll {val_loss:.4f}  val acc {val_accuracy:.4f}"
        return text if self.options.patience is None else f"{text}  best @ {self.best_epoch}"

    def evaluate(self, step: int, stop: threading.Event | None = None) -> dict[str, float]:
        """Test metrics before and after temperature scaling (+ policy returns); the
        evaluation that ends training (or ``rlsoft eval``) prints them. ``stop`` is not
        checked: one pass over the test set takes a moment."""
        report = calibration_report(
            self.logits(self.splits.x_val),
            self.splits.y_val,
            self.logits(self.splits.x_test),
            self.splits.y_test,
        )
        self.temperature = report.temperature
        self.last_report = report
        result = report.scalars()
        if self.options.patience is not None:
            result["eval/best_epoch"] = float(self.best_epoch)
        lines = report.lines()
        if self.policy_eval is not None:
            policy_result, policy_lines = self._evaluate_policy()
            result.update(policy_result)
            lines += policy_lines
        if self.eval_only or self.finished or step >= self.total_epochs:
            stopped = {
                None: "",
                "converged": f", L-BFGS converged (max |gradient| ≤ {self.options.tolerance:g})",
                "stalled": ", L-BFGS stopped: the loss no longer decreases at float32 precision",
                "early_stopping": f", early stopping kept epoch {self.best_epoch}",
            }[self.stop_reason]
            self.echo(f"{self.splits.describe()}; {self.epoch} epochs trained{stopped}")
            for line in lines:
                self.echo(line)
        return result

    def _evaluate_policy(self) -> tuple[dict[str, float], list[str]]:
        from rlsoft.rl.envs.factory import make_env
        from rlsoft.rl.evaluation import evaluate_greedy

        spec = self.policy_eval
        assert spec is not None
        if self._env is None:
            self._env = make_env(spec.env_config)
        policy = GreedyClassifierPolicy(self.eval_model.eval(), spec.observation_space, self.device)
        returns, lengths = evaluate_greedy(policy, self._env, spec.episodes, spec.seed)
        result = {
            "eval/mean_return": float(np.mean(returns)),
            "eval/std_return": float(np.std(returns)),
            "eval/mean_length": float(np.mean(lengths)),
        }
        line = (
            f"greedy classifier policy on {spec.env_config.id}: return "
            f"{result['eval/mean_return']:.2f} ± {result['eval/std_return']:.2f} over "
            f"{count(spec.episodes, 'episode')}"
        )
        if len(spec.teacher_returns):
            teacher = float(np.mean(spec.teacher_returns))
            result["eval/teacher_mean_return"] = teacher
            line += f"; teacher {teacher:.2f} ± {float(np.std(spec.teacher_returns)):.2f}"
            if teacher > 0:
                result["eval/return_ratio"] = result["eval/mean_return"] / teacher
                line += f" (ratio {result['eval/return_ratio']:.3f})"
        return result, [line]

    # ------------------------------------------------------------------ checkpoints

    def save_agent(self, path: Path) -> None:
        """Weights (last and best), optimiser, shuffling generator and τ, as tensors only."""
        torch.save(
            {
                "format": CHECKPOINT_FORMAT,
                "model": self.model.state_dict(),
                "best_model": self.best_model.state_dict(),
                "optimizer": self._optimizer_state(),
                "generator": self.generator.get_state(),
                "temperature": self.temperature,
                "loop": self.state_dict(),
            },
            path,
        )

    def load_agent(self, path: Path) -> None:
        try:
            data = torch.load(path, map_location=self.device, weights_only=True)
        except (OSError, RuntimeError, EOFError) as exc:
            reason = " ".join(str(exc).split())[:80] or type(exc).__name__
            raise CheckpointError(
                f"checkpoint file {str(path)!r} is corrupt or unreadable ({reason})"
            ) from None
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            raise RlsoftError(f"{str(path)!r} is not a classifier checkpoint of rlsoft")
        try:
            self.model.load_state_dict(data["model"])
            self.best_model.load_state_dict(data["best_model"])
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise RlsoftError(
                f"checkpoint {str(path)!r} does not fit this classifier (was the model or the "
                f"data set changed in the config?): {first}"
            ) from None
        self._load_optimizer_state(data["optimizer"])
        self.generator.set_state(data["generator"])
        self.temperature = float(data["temperature"])
        self.load_state_dict(data.get("loop", {}))

    def _optimizer_state(self) -> dict[str, Any]:
        if self.optimizer is not None:
            return self.optimizer.state_dict()
        if self._solve_to_replay is not None:
            start, start_epoch = self._solve_to_replay
        elif self._solve is not None:
            start, start_epoch = self._solve.start, self._solve.start_epoch
        else:
            return {}
        return {"start": torch.from_numpy(start), "start_epoch": int(start_epoch)}

    def _load_optimizer_state(self, state: dict[str, Any]) -> None:
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state)
            return
        self._solve = None
        # A checkpoint without the solve's start (written before its first epoch, or by an
        # older rlsoft) starts a fresh solve from the saved weights.
        if "start" in state:
            self._solve_to_replay = (
                state["start"].cpu().numpy().astype(np.float64),
                int(state["start_epoch"]),
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "best_val_loss": self.best_val_loss if math.isfinite(self.best_val_loss) else None,
            "best_epoch": self.best_epoch,
            "epochs_since_best": self.epochs_since_best,
            "stop_reason": self.stop_reason,
            "initial_loss": self.initial_loss,
            # The unfinished logging window, so a run split between two logs writes the same
            # scalars as one that was not.
            "window_losses": list(self._window_losses),
            "window_initial": self._window_initial,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state.get("epoch", 0))
        best = state.get("best_val_loss")
        self.best_val_loss = math.inf if best is None else float(best)
        self.best_epoch = int(state.get("best_epoch", 0))
        self.epochs_since_best = int(state.get("epochs_since_best", 0))
        self.stop_reason = state.get("stop_reason")
        self.initial_loss = state.get("initial_loss")
        self._window_losses = [float(x) for x in state.get("window_losses", [])]
        self._window_initial = state.get("window_initial")

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
