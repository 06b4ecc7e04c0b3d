"""rlsoft's Python API: train, load, evaluate and compare from a script or a notebook.

::

    import rlsoft

    run = rlsoft.train("configs/cartpole_dqn_boltzmann.yaml",
                       overrides={"train.total_steps": 20000}, seed=1)
    agent = rlsoft.load(run.run_dir)                    # or any run dir on disk
    action = agent.predict(obs, deterministic=True)     # greedy
    q = agent.q_values(obs_batch)
    stats = rlsoft.evaluate(agent, env="CartPole-v1", episodes=20)
    result = rlsoft.compare("configs/compare_taxi_exploration.yaml", workers=2)

The command line is a thin layer over these functions (``rlsoft train`` calls :func:`train`,
``rlsoft eval`` :func:`load`, ``rlsoft compare`` :func:`plan_compare` and
:func:`run_compare`). The module lives in the CLI package because it is a composition root:
it imports :mod:`agents`, which registers every agent family, and only ``rlsoft.cli`` may
(``lint-imports``). ``rlsoft/__init__.py`` re-exports its names lazily, so ``import rlsoft``
stays fast.

Errors are :class:`rlsoft.errors.RlsoftError` with the same one-sentence messages as the
command line. Nothing is printed unless asked (``progress=True``), as in Stable-Baselines3;
a classifier's end-of-training report is the exception (it is the result).

An env config may name code by entry point (``env.id: my_pkg.envs:MyEnv``, ``env.wrappers``):
loading such a config and training from it imports that module, so a config is as trusted
as a script.
"""

from __future__ import annotations

import copy
import csv
import io
import numbers
import os
import re
import shlex
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rlsoft.errors import RlsoftError, a_type, count, shorten

if TYPE_CHECKING:  # annotations only: importing the API stays cheap
    import gymnasium as gym
    import numpy as np

    from rlsoft.compare.analysis import Analysis
    from rlsoft.compare.grid import CompareRun
    from rlsoft.compare.plan import Comparison
    from rlsoft.run.config import ExperimentConfig

__all__ = [
    "CompareResult",
    "EvalResult",
    "Run",
    "TrainedAgent",
    "compare",
    "evaluate",
    "load",
    "plan_compare",
    "resume",
    "run_compare",
    "train",
]

AGENT_MODULES = ("agents",)
"""Imported before anything is built: registers every agent family (composition root)."""
DEFAULT_EVAL_SEED = 12345
"""Seed of the first evaluation episode's reset (``rlsoft eval --seed``'s default)."""


def _register_agents() -> None:
    import agents  # noqa: F401 - registers every agent family


# --------------------------------------------------------------------------------------------
# Configs from paths, dicts or models
# --------------------------------------------------------------------------------------------


def _plain_values(value: Any) -> Any:
    """``value`` with numpy scalars (``np.float32(0.5)``, ``np.int64(3)``, ``np.bool_``)
    and arrays made the Python numbers and lists they stand for, inside dicts, lists and
    tuples too: validation would refuse some as the wrong type, and the run's
    ``config.yaml`` cannot hold them."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {key: _plain_values(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain_values(item) for item in value)
    return value


def _config_data(config: Any, what: str = "config") -> tuple[dict[str, Any], str]:
    """``(mutable dict, source label)`` of a config path, mapping or :class:`ExperimentConfig`."""
    from rlsoft.run.config import ExperimentConfig, load_config_dict

    if isinstance(config, ExperimentConfig):
        return config.to_dict(), "config"
    if isinstance(config, Mapping):
        return _plain_values(copy.deepcopy(dict(config))), "config"
    if isinstance(config, (str, Path)):
        return load_config_dict(config), str(config)
    raise RlsoftError(
        f"{what} must be a YAML path, a dict or an ExperimentConfig, got {a_type(config)}"
    )


def _apply_overrides(
    data: dict[str, Any], overrides: Mapping[str, Any] | Sequence[str] | None
) -> dict[str, Any]:
    """Overrides as ``{"train.total_steps": 20000}`` (values as given) or, as on the command
    line, ``["train.total_steps=20000"]`` (values parsed as YAML)."""
    from rlsoft.run.config import apply_overrides

    return apply_overrides(data, _checked_overrides(overrides))


def _checked_overrides(overrides: Any) -> Mapping[str, Any] | list[str] | None:
    """``overrides`` as a mapping of dotted keys or a list of ``key=value`` strings (any
    iterable of strings, a generator or a tuple, becomes a list); anything else is refused
    (a string alone would be read one character at a time)."""
    if overrides is None:
        return None
    if isinstance(overrides, Mapping):
        for key in overrides:
            if not isinstance(key, str) or not key:
                raise RlsoftError(f"override keys are dotted paths such as 'train.total_steps', "
                                  f"got {shorten(key)}")  # fmt: skip
        return _plain_values(overrides)
    if isinstance(overrides, Iterable) and not isinstance(overrides, (str, bytes)):
        items = list(overrides)
        if all(isinstance(o, str) for o in items):
            return items
        overrides = items
    kind = "string" if isinstance(overrides, str) else type(overrides).__name__
    raise RlsoftError(
        f"overrides must be a dict such as {{'train.total_steps': 20000}} or a list of "
        f"'key=value' strings, got the {kind} {shorten(overrides)}"
    )


def _check_one_seed(seed: int, overrides: Mapping[str, Any] | Sequence[str] | None) -> None:
    """Refuse ``seed`` together with an override of ``seed`` to another value: one of the two
    would be silently ignored (``rlsoft train --seed 5 --set seed=6``)."""
    from rlsoft.run.config import parse_override

    if isinstance(overrides, Mapping):
        given = [value for key, value in overrides.items() if key == "seed"]
    else:
        given = [value for key, value in map(parse_override, overrides or []) if key == ["seed"]]
    for value in given:
        if value != seed:
            raise RlsoftError(
                f"the seed is given twice, as {seed} (--seed, or seed=) and as the override "
                f"seed={shorten(value)}; give it once"
            )


def check_logdir(logdir: Any, flag: str = "logdir") -> str | None:
    """``logdir`` as a string (``None`` stays ``None``: the config's); an empty one or one
    that is not a path is refused rather than read as the working directory."""
    if logdir is None:
        return None
    if not isinstance(logdir, (str, PathLike)):
        raise RlsoftError(
            f"{flag} must be a directory path, got the {type(logdir).__name__} {shorten(logdir)}"
        )
    text = str(Path(logdir)) if isinstance(logdir, PathLike) else logdir
    if not text.strip():
        raise RlsoftError(
            f"{flag} is empty; pass a directory such as runs, or leave it out for the config's"
        )
    return text


def check_flag(name: str, value: Any, *, none_means: str | None = None) -> None:
    """Refuse a flag that is not ``True`` or ``False`` (``None`` too where ``none_means`` says
    what it does): ``progress="no"`` would otherwise count as true."""
    import numpy as np

    if isinstance(value, (bool, np.bool_)) or (value is None and none_means is not None):
        return
    allowed = "True or False" + (f" (or None: {none_means})" if none_means else "")
    given = "None" if value is None else f"{a_type(value)} {shorten(value)}"
    raise RlsoftError(f"{name} must be {allowed}, got {given}")


def _progress_value(progress: bool | None) -> str | None:
    check_flag("progress", progress, none_means="keep the config's train.progress")
    return None if progress is None else ("on" if progress else "off")


def experiment_config(
    config: Any,
    *,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    seed: int | None = None,
    progress: bool | None = False,
) -> ExperimentConfig:
    """A validated :class:`ExperimentConfig` from a path, a dict or a config, with
    ``overrides``, ``seed`` and ``progress`` (``None`` keeps the config's) applied."""
    from rlsoft.run.config import (
        ExperimentConfig,
        agent_override_keys,
        check_agent_keys,
        check_exploration_keys,
        exploration_override_keys,
        override_sources,
        own_agent_config,
        validate_config,
        written_agent_keys,
    )

    _register_agents()  # the agent section is validated by its family's model
    seed = _plain_values(seed)  # np.int64(4) is the seed 4
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise RlsoftError(f"seed must be a non-negative integer, got {shorten(seed)}")
    data, source = _config_data(config)
    overrides = _checked_overrides(overrides)
    # Exploration settings the policy ignores, written in the file or given as overrides
    # (a validated config lists every field, and a file's value left behind by an override
    # of the policy is not refused); checked after validation, which names bad values first.
    section = data.get("exploration") if not isinstance(config, ExperimentConfig) else None
    given = "--set" if isinstance(overrides, list) else "overrides"  # checked: list or mapping
    file_section = copy.deepcopy(section) if isinstance(section, dict) else None
    unused_checks = [
        (file_section, list(file_section or ()), source),  # against the file's own policy
        (None, exploration_override_keys(overrides), given),  # against the final one
    ]
    # Agent settings the agent ignores (munchausen_alpha with the standard target), the same
    # way: the file's against the file's own agent, the overrides' against the final one.
    agent_section = data.get("agent") if not isinstance(config, ExperimentConfig) else None
    file_agent = copy.deepcopy(agent_section) if isinstance(agent_section, dict) else None
    unused_agent_checks = [
        (file_agent, written_agent_keys(file_agent), source),
        (None, agent_override_keys(overrides), given),
    ]
    data = _apply_overrides(data, overrides)
    if seed is not None:
        _check_one_seed(seed, overrides)
        data["seed"] = seed
    shown = _progress_value(progress)
    if shown is not None:
        train_section = data.get("train")
        if train_section is None:
            data["train"] = train_section = {}
        if isinstance(train_section, dict):  # a wrong type is reported by validation
            train_section["progress"] = shown
    validated = validate_config(
        data, source=source, overrides_from=[(given, override_sources(overrides))]
    )
    final = validated.exploration.model_dump(include={"policy"})
    for exploration, keys, where in unused_checks:
        check_exploration_keys(final if exploration is None else exploration, keys, where)
    for agent, keys, where in unused_agent_checks:
        if keys:
            own = validated.agent_config() if agent is None else own_agent_config(agent)
            check_agent_keys(own, keys, where)
    return validated


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A finished (or resumed and finished) training run."""

    run_dir: Path
    """The TensorBoard run dir: event files, ``config.yaml``, checkpoints, ``summary.json``."""
    steps: int
    """Environment steps (epochs for a classifier) trained in total."""
    seconds: float
    """Wall-clock seconds of the training (of every attempt, for a resumed run), evaluations
    included."""
    final_eval: dict[str, float]
    """The final evaluation's scalars (``eval/mean_return``, ``eval/accuracy``, …)."""
    config: ExperimentConfig
    """The validated config the run was trained with, with the ``logdir`` and ``run_name`` it
    actually used (as in its ``config.yaml``)."""
    eval_seconds: float = 0.0
    """Of :attr:`seconds`, the time spent evaluating (a checkpoint written before rlsoft
    recorded it counts as none)."""
    eval_epsilon: float | None = None
    """The ε the evaluation in :attr:`final_eval` acted with (0: greedy). A resume that
    changes only ``train.eval_epsilon`` keeps the earlier evaluation, so this can differ
    from ``config.train.eval_epsilon``; None where the checkpoint did not record it."""

    def load(self) -> TrainedAgent:
        """:func:`load` of this run's dir."""
        return load(self.run_dir)


def train(
    config: Any,
    *,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    seed: int | None = None,
    logdir: str | Path | None = None,
    progress: bool | None = False,
    on_start: Callable[[], None] | None = None,
) -> Run:
    """Train a new run and return where it is.

    :param config: a YAML path, a dict shaped like one, or an :class:`ExperimentConfig`.
    :param overrides: ``{"train.total_steps": 20000}`` (or ``["train.total_steps=20000"]`` as
        with ``--set``).
    :param seed: the root seed (overrides the config's).
    :param logdir: parent of the run dir (default: the config's, ``runs/``).
    :param progress: ``False`` (default) trains silently, ``True`` draws the progress bar,
        ``None`` keeps the config's ``train.progress``.
    :param on_start: called once every check has passed, just before the first step.
    :raises RlsoftError: a bad config, override or run dir (nothing is left behind).
    :raises RunInterrupted: a ``KeyboardInterrupt`` (the notebook's stop button) stopped the
        run after a checkpoint; ``rlsoft train --resume RUN_DIR`` continues it.

    Safe in a notebook or a thread: signal handlers are installed only in the main thread.
    """
    from rlsoft.run.experiment import run_experiment

    _check_on_start(on_start)
    logdir = check_logdir(logdir)
    validated = experiment_config(config, overrides=overrides, seed=seed, progress=progress)
    result = run_experiment(validated, logdir=logdir, on_start=on_start)
    # The run's own names (a default name made unique, --logdir), as its config.yaml has them.
    actual = validated.model_copy(
        update={"logdir": str(result.run_dir.parent), "run_name": result.run_dir.name}
    )
    return Run(
        result.run_dir,
        result.steps,
        result.seconds,
        dict(result.final_eval),
        actual,
        result.eval_seconds,
        result.eval_epsilon,
    )


def _check_on_start(on_start: object) -> None:
    """One sentence for an ``on_start`` that cannot be called."""
    if on_start is not None and not callable(on_start):
        raise RlsoftError(
            f"on_start must be a function of no arguments (or None), got {a_type(on_start)}"
        )


def resume(
    run_dir: str | Path,
    *,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    on_start: Callable[[], None] | None = None,
) -> Run:
    """Continue ``run_dir`` from its newest checkpoint; ``overrides`` may change only the
    budget and the cadence of logging, evaluation and checkpoints. ``on_start`` is called
    once every check has passed, just before the first step."""
    from rlsoft.run.experiment import read_run_config, resume_experiment

    _register_agents()
    if not isinstance(run_dir, (str, PathLike)):
        raise RlsoftError(f"run_dir must be a directory path, got {a_type(run_dir)}")
    _check_on_start(on_start)  # before the run dir is touched
    overrides = _checked_overrides(overrides)
    given = "--set" if isinstance(overrides, list) else "overrides"  # checked: list or mapping
    result = resume_experiment(Path(run_dir), overrides, override_source=given, on_start=on_start)
    config = read_run_config(result.run_dir)
    return Run(
        result.run_dir,
        result.steps,
        result.seconds,
        dict(result.final_eval),
        config,
        result.eval_seconds,
        result.eval_epsilon,
    )


# --------------------------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------------------------


class TrainedAgent:
    """A trained run's agent, ready to act: made by :func:`load`.

    For an RL agent (tabular, DQN) :meth:`predict` is the greedy action
    ``argmax_a Q(s, a)`` (ties broken at random, as in evaluation), or with
    ``deterministic=False`` an action drawn from the run's exploration (behaviour) policy at
    the end of training — e.g. Boltzmann ``π(a|s) = softmax(Q(s, ·)/τ)`` with ``τ`` the
    schedule's value at ``train.total_steps``. :meth:`q_values` are ``Q(s, ·)``.

    For a classifier, observations are feature vectors (or, for a behaviour-cloned policy,
    the environment's observations): :meth:`predict` is the class ``argmax_k logits_k`` (the
    cloned action), ``deterministic=False`` draws a class from the calibrated
    ``softmax(logits/T)`` (``T``: the temperature fitted on the validation split), and
    :meth:`q_values` returns the **logits** (not action values: they rank the same way).

    One observation gives one action (``q_values``: shape ``(A,)``); a batch (leading axis)
    gives one per row (``(n, A)``).
    """

    def __init__(
        self, run_dir: Path, config: ExperimentConfig, driver: Any, *, step: int | None = None
    ) -> None:
        import numpy as np

        from rlsoft.rl.collector import EnvDriver

        self.run_dir = run_dir
        self.step = step
        """The checkpoint's environment steps (epochs for a classifier): a run still training
        may have gone on since it was written."""
        self.config = config
        self._driver = driver
        self.kind: Literal["rl", "classifier"] = (
            "rl" if isinstance(driver, EnvDriver) else "classifier"
        )
        self._rng = np.random.default_rng(config.seed)
        self.observation_space: gym.Space | None = None
        self.action_space: gym.Space | None = None
        self.env_config = config.env
        if self.kind == "rl":
            self.agent = driver.agent
            self.observation_space, self.action_space = driver.spaces
        else:
            self.agent = driver
            policy_eval = getattr(driver, "policy_eval", None)
            if policy_eval is not None:  # behaviour cloning: the classifier is a policy
                self.env_config = policy_eval.env_config
                self.observation_space = policy_eval.observation_space
                self.action_space = _spaces(policy_eval.env_config)[1]

    def __repr__(self) -> str:
        return f"TrainedAgent({self.config.agent_type!r}, run_dir={str(self.run_dir)!r})"

    @property
    def is_policy(self) -> bool:
        """Whether the agent acts in an environment (RL, or a behaviour-cloned classifier)."""
        return self.env_config is not None

    # ------------------------------------------------------------------ batches

    def _single_shape(self) -> tuple[int, ...] | None:
        """The shape of one observation as an array: the space's, ``(k,)`` for a ``Tuple`` of
        k scalar spaces (Blackjack's ``(sum, card, ace)``), None when it has none."""
        from gymnasium.spaces import Tuple as TupleSpace

        space = self.observation_space
        shape = getattr(space, "shape", None)
        scalars = isinstance(space, TupleSpace) and all(
            getattr(part, "shape", None) == () for part in space.spaces
        )
        if shape is None and scalars:
            return (len(space.spaces),)
        return None if shape is None else tuple(shape)

    def _single_ndim(self) -> int | None:
        """Dimensions of one observation, or None when it cannot be told (digits features)."""
        if self.observation_space is None:
            return 1  # a classifier of feature vectors: one row is one sample
        shape = self._single_shape()
        return None if shape is None else len(shape)

    def _as_batch(self, obs: Any) -> tuple[np.ndarray, bool]:
        """``(batch, was_single)`` of ``obs`` (a single observation gets a leading axis)."""
        import numpy as np

        try:
            array = np.asarray(obs)
        except ValueError:  # ragged nesting: [[1, 2], [3]]
            raise RlsoftError(
                f"observation {shorten(obs)} is not a rectangular array of numbers; pass one "
                "observation or a batch of equal ones"
            ) from None
        self._check_values(obs, array)
        ndim = self._single_ndim()
        if ndim is None:
            raise RlsoftError("this agent's observation space has no fixed shape to act on")
        if array.ndim not in (ndim, ndim + 1):
            raise RlsoftError(
                f"observations of shape {array.shape} do not match one observation of "
                f"{ndim} dimension(s) or a batch of them; pass one observation or a batch with "
                "a leading axis"
            )
        shape = self._single_shape()
        if shape and tuple(array.shape[array.ndim - ndim :]) != shape:
            # A reshape would accept any array of the right size, e.g. an image's channels
            # on the wrong axis, and act on scrambled pixels.
            raise RlsoftError(
                f"observations of shape {array.shape} do not match this agent's observation "
                f"shape {tuple(shape)} (one observation) or (n, {', '.join(map(str, shape))}) "
                "(a batch); check the layout (channels first or last) and the frame stack of "
                "the environment it was trained on"
            )
        array = self._check_states(obs, array)
        return (array[None], True) if array.ndim == ndim else (array, False)

    def _check_values(self, obs: Any, array: np.ndarray) -> None:
        """Refuse what the agent would misread: text or ``None`` (no numbers), NaN or ±inf
        (Q-values of NaN, later blamed on divergence). :meth:`_check_states` refuses a
        fraction as a tabular state (an index would truncate it) and a state outside the space
        (``-1`` would index the last row of the table)."""
        import numpy as np

        if array.dtype.kind not in "biuf":
            raise RlsoftError(
                f"observations must be numbers, got {shorten(obs)}; pass what the environment's "
                "reset and step return"
            )
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = "NaN" if np.isnan(array).any() else "an infinite value"
            raise RlsoftError(
                f"the observation contains {bad}, so no action can be chosen; pass finite "
                "numbers (check the environment or the preprocessing that made it)"
            )

    def _check_states(self, obs: Any, array: np.ndarray) -> np.ndarray:
        """For discrete states (tabular agents, of an array of the right shape): integers
        inside the space (whole numbers written as floats, ``3.0``, taken as the integers);
        returns the array to act on."""
        import numpy as np

        bounds = _discrete_bounds(self.observation_space)
        if bounds is None:
            return self._check_pixels(obs, array)
        low, high = bounds
        if array.dtype.kind == "f" and np.array_equal(array, np.round(array)):
            array = array.astype(np.int64)
        if array.dtype.kind not in "biu":
            raise RlsoftError(
                f"this agent's states are integers in {_ranges(low, high)}, got {shorten(obs)}; "
                "pass the environment's observation unchanged"
            )
        outside = (array < low) | (array > high)
        if outside.any():
            value = array[outside].flat[0]
            raise RlsoftError(
                f"state {value} is outside this agent's states {_ranges(low, high)}; pass "
                "the environment's observation unchanged"
            )
        return array

    def _check_pixels(self, obs: Any, array: np.ndarray) -> np.ndarray:
        """For a ``Box`` of integers or booleans (Atari's uint8 frames, MinAtar's grids):
        whole numbers inside its bounds, returned in the space's dtype. The agent scales uint8
        frames by 1/255 itself, so frames already divided by 255, or values past 255, would be
        read as other pictures."""
        import numpy as np
        from gymnasium.spaces import Box

        space = self.observation_space
        if not isinstance(space, Box) or space.dtype is None or space.dtype.kind not in "biu":
            return array
        low, high = (0, 1) if space.dtype.kind == "b" else (space.low.min(), space.high.max())
        whole = array.dtype.kind in "biu" or bool(np.array_equal(array, np.round(array)))
        if not whole or array.min(initial=low) < low or array.max(initial=high) > high:
            # Fractions in [0, 1] for frames of 0..255: divided by 255 already.
            scaled = not whole and high > 1 and array.min() >= 0 and array.max() <= 1
            raise RlsoftError(
                f"this agent's observations are {space.dtype} values in {low}..{high}, as the "
                f"environment returns them, got values from {array.min():g} to "
                f"{array.max():g}{' with fractions' if not whole else ''}; pass the "
                + ("observation unscaled (the agent divides by 255 itself)" if scaled else
                   "environment's observation unchanged")
            )  # fmt: skip
        # The agent scales by the dtype it was trained on (uint8 frames by 1/255): the same
        # whole numbers as floats would skip that scaling.
        return array.astype(space.dtype, copy=False)

    # ------------------------------------------------------------------ acting

    def q_values(self, obs: Any) -> np.ndarray:
        """``Q(s, ·)`` (RL) or the logits (classifier): ``(A,)`` for one observation,
        ``(n, A)`` for a batch."""
        import numpy as np

        batch, single = self._as_batch(obs)
        if self.kind == "rl":
            values = np.asarray(self.agent.q_values(batch), dtype=np.float64)
        else:
            values = self._driver.logits(self._features(batch))
        return values[0] if single else values

    def _features(self, batch: np.ndarray) -> np.ndarray:
        """A classifier's input rows: observations encoded as in behaviour cloning."""
        import numpy as np

        if self.observation_space is None:
            width = self._driver.input_width
            if batch.shape[-1] != width:
                raise RlsoftError(
                    f"samples of {batch.shape[-1]} features do not fit this classifier, which "
                    f"takes {width}; pass rows of {width} features (a batch: shape (n, {width}))"
                )
            return np.asarray(batch, dtype=np.float32)
        from rlsoft.supervised.datasets import observation_encoder

        return observation_encoder(self.observation_space)[1](list(batch))

    def action_probabilities(self, obs: Any) -> np.ndarray:
        """What ``predict(obs, deterministic=False)`` samples from: the behaviour policy's
        ``π(·|s)`` at the end of training (RL), or the calibrated ``softmax(logits/T)``."""
        q = self.q_values(obs)
        if self.kind == "rl":
            return self.agent.policy.probs(q, step=self.config.train.total_steps)
        from rlsoft.numerics.functional import softmax

        return softmax(q, temperature=self._driver.temperature)

    def predict(self, obs: Any, deterministic: bool = True) -> Any:
        """The action (class) for one observation, or an array of them for a batch.

        :param deterministic: ``True``: greedy, ``argmax`` (ties at random for RL agents, as in
            evaluation); ``False``: drawn from :meth:`action_probabilities`.
        """
        import numpy as np

        check_flag("deterministic", deterministic)
        batch, single = self._as_batch(obs)
        if deterministic and self.kind == "rl":
            actions = np.array([self.agent.act_greedy(o) for o in batch])
        elif deterministic:
            actions = np.argmax(self._driver.logits(self._features(batch)), axis=-1)
        else:
            probs = np.atleast_2d(self.action_probabilities(batch))
            cumulative = np.cumsum(probs, axis=-1)
            u = self._rng.random((len(probs), 1)) * cumulative[:, -1:]
            actions = np.minimum((cumulative <= u).sum(axis=-1), probs.shape[-1] - 1)
        return int(actions[0]) if single else actions.astype(np.int64)

    def act_greedy(self, obs: Any) -> int:
        """``predict(obs, deterministic=True)`` (the interface of evaluation)."""
        return int(self.predict(obs, deterministic=True))

    def make_env(self, render_mode: str | None = None) -> gym.Env:
        """A new environment as the run made it — its id and kwargs, its wrappers, its time
        limit, the Atari protocol; ids of optional packages (``MinAtar/…``) registered as the
        run registered them — whose observations :meth:`predict` takes. The caller closes it.

        :param render_mode: ``human`` to watch, ``rgb_array`` for frames (None: no rendering);
            a mode the env does not draw is one sentence naming those it does. The frames are
            the env's own (MinAtar's: 10×10×3 floats in [0, 1]; ``rlsoft eval --video``
            enlarges them to ``uint8`` with :func:`rlsoft.rl.envs.video.video_frame`).
        """
        from rlsoft.rl.envs.factory import make_env

        if self.env_config is None:
            raise RlsoftError(
                f"{self.run_dir} is a classifier trained on a dataset, not on an environment: "
                "there is no environment to make"
            )
        if render_mode is not None and not isinstance(render_mode, str):
            raise RlsoftError(
                f"render_mode must be a string such as 'human' or 'rgb_array', or None, got "
                f"{a_type(render_mode)} {shorten(render_mode)}"
            )
        if render_mode is not None:
            # Checked before making: Gymnasium only warns at make and the env fails at its
            # first render (MinAtar), or ALE refuses the mode as a constructor argument.
            modes = _declared_render_modes(self.env_config.id)
            if modes and render_mode not in modes:
                raise self._unknown_render_mode(render_mode, modes)
        env = make_env(self.env_config, render_mode=render_mode)
        modes = env.metadata.get("render_modes")
        if render_mode is not None and modes and render_mode not in modes:
            env.close()  # an env whose instance declares other modes than its class
            raise self._unknown_render_mode(render_mode, modes)
        return env

    def _unknown_render_mode(self, render_mode: str, modes: list[str]) -> RlsoftError:
        assert self.env_config is not None
        return RlsoftError(
            f"render_mode {shorten(render_mode)} is not one that {self.env_config.id} draws; "
            f"choose {' or '.join(repr(m) for m in modes)}, or None for no rendering"
        )

    def close(self) -> None:
        """Close the environments the loaded run holds (async workers, if any)."""
        self._driver.close()

    def __enter__(self) -> TrainedAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _declared_render_modes(env_id: str) -> list[str] | None:
    """The ``render_modes`` the class or function behind ``env_id`` declares, read without
    making the environment; None where the id does not resolve to one."""
    import gymnasium as gym
    from gymnasium.envs.registration import EnvSpec, load_env_creator

    from rlsoft.rl.envs.factory import resolve_env_id

    try:
        resolved = resolve_env_id(env_id)
        spec = resolved if isinstance(resolved, EnvSpec) else gym.spec(resolved)
    except (RlsoftError, gym.error.Error):
        return None
    entry = spec.entry_point
    creator = load_env_creator(entry) if isinstance(entry, str) else entry
    return list(getattr(creator, "metadata", {}).get("render_modes") or []) or None


def _discrete_bounds(space: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(low, high)`` (inclusive) of a ``Discrete``, ``MultiDiscrete`` or ``Tuple`` of
    ``Discrete`` space, shaped as one observation; ``None`` for any other space."""
    import numpy as np
    from gymnasium.spaces import Discrete, MultiDiscrete
    from gymnasium.spaces import Tuple as TupleSpace

    if isinstance(space, Discrete):
        return np.asarray(space.start), np.asarray(space.start + space.n - 1)
    if isinstance(space, MultiDiscrete):
        return np.asarray(space.start), np.asarray(space.start + space.nvec - 1)
    if isinstance(space, TupleSpace) and all(isinstance(p, Discrete) for p in space.spaces):
        starts = np.array([p.start for p in space.spaces])
        return starts, starts + np.array([p.n for p in space.spaces]) - 1
    return None


def _ranges(low: np.ndarray, high: np.ndarray) -> str:
    """``0..499`` for one range, ``(4..31, 1..10, 0..1)`` for several."""
    parts = [f"{lo}..{hi}" for lo, hi in zip(low.flat, high.flat, strict=True)]
    return parts[0] if low.ndim == 0 else f"({', '.join(parts)})"


def _spaces(env_config: Any) -> tuple[gym.Space, gym.Space]:
    from rlsoft.rl.envs.factory import make_env

    probe = make_env(env_config)
    try:
        return probe.observation_space, probe.action_space
    finally:
        probe.close()


def load(run_dir: str | Path) -> TrainedAgent:
    """The newest checkpoint of ``run_dir`` as a :class:`TrainedAgent`.

    An RL agent is built from the spaces the run recorded (``spaces.json``) and no
    environment is made: acting needs neither the emulator nor its package; evaluating makes
    the environment. A run dir without that file probes its environment instead.

    :raises RlsoftError: not a run dir, no checkpoint yet, or a damaged checkpoint (the same
        sentences as ``rlsoft eval``).
    """
    from rlsoft.run.experiment import load_newest_checkpoint, run_dir_of

    if not isinstance(run_dir, (str, Path)):
        raise RlsoftError(f"run_dir must be a path, got {a_type(run_dir)}")
    _register_agents()
    path = run_dir_of(run_dir)
    config, driver, step = load_newest_checkpoint(path)
    try:
        return TrainedAgent(path, config, driver, step=step)
    except BaseException:
        driver.close()
        raise


# --------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalResult:
    """Returns of ``episodes`` episodes; episode ``i`` starts from ``reset(seed=seed + i)``."""

    returns: np.ndarray
    lengths: np.ndarray
    epsilon: float = 0.0
    """The ε of the ε-greedy evaluation (0: greedy)."""

    @property
    def mean_return(self) -> float:
        return float(self.returns.mean())

    @property
    def std_return(self) -> float:
        return float(self.returns.std())

    @property
    def episodes(self) -> int:
        return len(self.returns)


def render_mode_to_show(
    env: Any, record: str = "record its frames with gymnasium.wrappers.RecordVideo"
) -> str:
    """How ``rlsoft eval --render`` and ``evaluate(render=True)`` show ``env`` (a copy made
    without rendering, for its metadata): as text where it can (``ansi``, printed), else in
    a window (``human``, which needs pygame for Gymnasium's own environments).

    :param record: how to record the episodes instead, suggested where a window cannot
        open and the env draws frames (the CLI's ``--video DIR``).

    :raises RlsoftError: the env renders neither as text nor in a window, or a window is
        needed and pygame is missing.
    """
    import importlib.util

    modes = env.metadata.get("render_modes") or []
    name = _env_name(env)
    video = f"; {record} instead" if "rgb_array" in modes else ""
    if "ansi" in modes:
        return "ansi"
    if "human" not in modes:
        raise RlsoftError(
            f"rendering needs a render mode {name} does not have (it has "
            f"{', '.join(modes) or 'none'}){video}"
        )
    # MinAtar draws its window with matplotlib (a dependency of rlsoft); Gymnasium's own
    # environments and most others with pygame.
    library = "matplotlib" if type(env.unwrapped).__module__.startswith("minatar") else "pygame"
    if library == "pygame" and importlib.util.find_spec("pygame") is None:
        raise RlsoftError(  # pygame is imported only at the first frame
            f"rendering shows {name} in a window, which needs pygame; install the video "
            "extra: pip install 'rlsoft[video]'"
        )
    missing = missing_display(library)
    if missing:
        raise RlsoftError(f"rendering shows {name} in a window, but {missing}{video}")
    return "human"


def _env_name(env: Any) -> str:
    """The id an env was made from, or its class's name (an instance made by hand)."""
    return env.spec.id if env.spec is not None else type(env.unwrapped).__name__


def missing_display(library: Literal["pygame", "matplotlib"]) -> str | None:
    """Why a window cannot open here, or ``None``. On Linux and the BSDs a window needs an X
    or Wayland display (``DISPLAY``, ``WAYLAND_DISPLAY``); without one pygame draws to no
    screen and matplotlib falls back to its file-only Agg backend, so ``--render`` would run
    showing nothing. A driver or backend the user chose (``SDL_VIDEODRIVER``, ``MPLBACKEND``)
    is left to them. macOS and Windows always have a screen for a desktop session."""
    if sys.platform == "darwin" or os.name != "posix":
        return None
    chosen = "SDL_VIDEODRIVER" if library == "pygame" else "MPLBACKEND"
    if os.environ.get("WAYLAND_DISPLAY") or os.environ.get(chosen):
        return None
    display = os.environ.get("DISPLAY")
    if display:
        return _unreachable_x(display)
    return "this session has no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"


X_TCP_PORT = 6000
"""An X server listening on TCP serves display ``N`` on port ``6000 + N`` (the X Window
System protocol, "Connection setup"; ssh -X forwards ``localhost:10`` and up this way)."""


def _unreachable_x(display: str) -> str | None:
    """Why the X display ``display`` names cannot be reached, or ``None``. A local one
    (``:N``) is a socket ``/tmp/.X11-unix/XN`` of its server (Xorg, Xvfb, XWayland); a remote
    one (``host:N``, as ssh -X sets) is a TCP port, :data:`X_TCP_PORT` ``+ N`` on ``host``,
    tried once with a two-second limit. Without the server pygame would show no window and
    matplotlib fall back to Agg, silently. Other forms (IPv6, DECnet) are not checked."""
    local = re.fullmatch(r"(?:unix)?:(\d+)(?:\.\d+)?", display)
    if local is not None:
        if Path(f"/tmp/.X11-unix/X{local.group(1)}").exists():
            return None
        return (
            f"DISPLAY is {display!r}, where no X server runs (there is no "
            f"/tmp/.X11-unix/X{local.group(1)})"
        )
    remote = re.fullmatch(r"(?:tcp/)?([A-Za-z0-9][A-Za-z0-9.\-]*):(\d+)(?:\.\d+)?", display)
    if remote is None:
        return None
    import socket

    host, port = remote.group(1), X_TCP_PORT + int(remote.group(2))
    try:
        socket.create_connection((host, port), timeout=2.0).close()
    except (OSError, UnicodeError) as exc:  # UnicodeError: a host name with an empty label
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return (
            f"DISPLAY is {display!r}, where no X server answers ({host} port {port}: "
            f"{reason.lower()}; an ssh -X session forwards it only while it lasts)"
        )
    return None


def check_shown_render_mode(env: Any) -> None:
    """Refuse ``evaluate(render=True)`` on an env the caller made (an instance, or a function's)
    whose ``render_mode`` shows nothing: ``None`` renders nothing at all (Gymnasium only warns)
    and ``rgb_array`` returns frames that a rollout has nowhere to show.

    :raises RlsoftError: naming the mode to make it with, or ``RecordVideo`` for frames.
    """
    shown = ("ansi", "human")  # render_mode_to_show's preference: text where there is one
    mode = getattr(env, "render_mode", None)
    if mode in shown:
        return
    modes = [m for m in shown if m in (env.metadata.get("render_modes") or [])]
    name = _env_name(env)
    how = (
        f"make it with render_mode={modes[0]!r}, or pass its id and rlsoft makes it so"
        if modes
        else "it has no human or ansi mode to show"
    )
    frames = "; record frames with gymnasium.wrappers.RecordVideo" if mode else ""
    raise RlsoftError(
        f"render=True shows each step, but the {name} env passed was made with render_mode "
        f"{mode!r}, which shows nothing: {how}{frames}"
    )


def quiet_missing_render_fps(env: Any) -> None:
    """MinAtar paces its own window (``display_time``) and records at a fixed rate but
    declares no render fps, for which Gymnasium's env checker and video recorder warn at
    the first frame: nothing a user can fix, so that warning is ignored for such envs (from
    now on: call it inside ``warnings.catch_warnings()`` to limit it)."""
    if env.metadata.get("render_fps") is None:
        warnings.filterwarnings("ignore", message=r".*No render fps was declared")


def make_eval_env(
    env: Any, default: Any = None, render_mode: str | None = None
) -> tuple[Any, bool]:
    """``(environment, owned)`` from a registered id, an entry point ``module:Name``, a
    factory (called with no arguments), an env instance, or ``None`` (``default``: an env
    config). ``owned``: made here, so the caller closes it. The run's own id is made as the
    run made it (``default``: its kwargs, wrappers, time limit and Atari protocol); another
    ``ALE/`` id gets the run's Atari protocol and ``full_action_space`` (the network's input
    and output); any other id or entry point is made bare: pass a factory or an instance to
    evaluate with wrappers."""
    import gymnasium as gym

    from rlsoft.rl.envs.factory import make_env

    if env is None:
        if default is None:
            raise RlsoftError("this agent was not trained on an environment; pass env=...")
        return make_env(default, render_mode=render_mode), True
    if isinstance(env, str):
        from pydantic import ValidationError

        from rlsoft.run.config import EnvConfig

        if default is not None and env == getattr(default, "id", None):
            return make_env(default, render_mode=render_mode), True
        atari = getattr(default, "atari", None)
        try:
            if atari is not None and env.startswith("ALE/"):  # the network's input and actions
                actions = {k: v for k, v in default.kwargs.items() if k == "full_action_space"}
                config = EnvConfig(id=env, atari=atari, kwargs=actions)
            else:
                config = EnvConfig(id=env)
        except ValidationError as exc:
            raise RlsoftError(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None
        return make_env(config, render_mode=render_mode), True
    if isinstance(env, gym.Env):
        return env, False
    if callable(env):
        made = env()
        if not isinstance(made, gym.Env):
            raise RlsoftError(
                f"env factory {getattr(env, '__name__', type(env).__name__)} returned "
                f"{a_type(made)}, not a gymnasium.Env"
            )
        return made, True
    raise RlsoftError(
        f"env must be an environment id, an entry point 'module:Name', a function returning an "
        f"env or a gymnasium.Env, got {a_type(env)}"
    )


def evaluate(
    agent: TrainedAgent,
    env: Any = None,
    episodes: int = 20,
    *,
    seed: int = DEFAULT_EVAL_SEED,
    deterministic: bool = True,
    render: bool = False,
    epsilon: float | None = None,
    on_episode: Callable[[int, float, int], None] | None = None,
) -> EvalResult:
    """Run ``episodes`` episodes of ``agent`` and return their returns and lengths.

    :param env: a registered id (``"CartPole-v1"``), an entry point (``"my_pkg.envs:MyEnv"``),
        a callable returning an env, an env instance (not closed here), or ``None``: the run's
        own environment, with its kwargs and wrappers (a behaviour-cloned classifier's is its
        teacher's).
    :param deterministic: greedy actions (ε-greedy with ``epsilon``, as ``rlsoft eval``) or
        the behaviour policy's.
    :param render: call ``env.render()`` after every step (text renderings are printed); an
        env passed in must have been made with ``render_mode`` ``"human"`` or ``"ansi"``.
    :param epsilon: with ``deterministic``, act ε-greedily with this ε in [0, 1]
        (:func:`rlsoft.rl.evaluation.evaluate_greedy`; the draws are seeded by ``seed``);
        ``None``: the run's ``train.eval_epsilon`` (0, greedy, unless the config set it).
    :param on_episode: called with ``(episode, return, length)`` after each episode, e.g. to
        show progress (``rlsoft eval`` does on a terminal).
    """
    import numpy as np

    from rlsoft.rl.collector import reseed_evaluation
    from rlsoft.rl.evaluation import MAX_EVAL_EPISODES, evaluate_greedy

    if not isinstance(agent, TrainedAgent):
        raise RlsoftError(f"evaluate needs an agent made by rlsoft.load, got {a_type(agent)}")
    episodes, seed = _plain_values(episodes), _plain_values(seed)  # numpy integers as ints
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise RlsoftError(f"episodes must be a whole number of at least 1, got {shorten(episodes)}")
    if episodes > MAX_EVAL_EPISODES:
        raise RlsoftError(f"episodes must be at most {MAX_EVAL_EPISODES:,}, got {episodes:,}")
    if on_episode is not None and not callable(on_episode):
        raise RlsoftError(
            f"on_episode must be a function of (episode, return, length), got {a_type(on_episode)}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RlsoftError(f"seed must be a non-negative integer, got {shorten(seed)}")
    check_flag("deterministic", deterministic)
    check_flag("render", render)
    if not agent.is_policy:
        raise RlsoftError(
            f"the run {str(agent.run_dir)!r} is a classifier of a data set, not a policy; "
            "rlsoft eval reports its test accuracy"
        )
    if agent.kind == "classifier" and epsilon is not None:
        # As rlsoft eval --epsilon: ε-greedy evaluation belongs to RL agents.
        raise RlsoftError(
            "epsilon sets an RL agent's ε-greedy evaluation; a behaviour-cloned classifier is "
            "evaluated greedily in its teacher's environment: leave epsilon out"
        )
    epsilon = _evaluation_epsilon(agent, epsilon, deterministic)
    mode = None
    if render and (env is None or isinstance(env, str)):  # an env made here renders
        probe, _ = make_eval_env(env, agent.env_config)
        try:
            mode = render_mode_to_show(probe)
        finally:
            probe.close()
    made, owned = make_eval_env(env, agent.env_config, render_mode=mode)
    try:
        if render and mode is None:
            check_shown_render_mode(made)
        if (
            agent.observation_space is not None
            and made.observation_space != agent.observation_space
        ):
            raise RlsoftError(
                f"the environment's observation space {made.observation_space} differs from the "
                f"agent's {agent.observation_space}; pass the environment (and wrappers) it was "
                "trained on"
            )
        if agent.action_space is not None and made.action_space != agent.action_space:
            raise RlsoftError(
                f"the environment's action space {made.action_space} differs from the agent's "
                f"{agent.action_space}; pass the environment it was trained on"
            )
        actor = agent if deterministic else _Sampler(agent)
        # Greedy ties are broken from the agent's generator: restart it from the seed, so the
        # same call gives the same returns however often it is made.
        reseed_evaluation(agent.agent, seed, 0)
        with warnings.catch_warnings():  # the caller's warning filters come back afterwards
            if render:
                quiet_missing_render_fps(made)
            returns, lengths = evaluate_greedy(
                actor, made, episodes, seed, render=render, epsilon=epsilon, on_episode=on_episode
            )
    finally:
        if owned:
            made.close()
    return EvalResult(np.asarray(returns), np.asarray(lengths), epsilon)


def _evaluation_epsilon(agent: TrainedAgent, epsilon: Any, deterministic: bool) -> float:
    """The ε of :func:`evaluate`: the given one, checked, or the run's ``train.eval_epsilon``
    (greedy evaluations only: sampling the behaviour policy explores already)."""
    if epsilon is None:
        train = getattr(agent.config, "train", None)
        return float(getattr(train, "eval_epsilon", 0.0)) if deterministic else 0.0
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real):
        raise RlsoftError(f"epsilon must be a number in [0, 1], got {shorten(epsilon)}")
    if not 0.0 <= epsilon <= 1.0:
        raise RlsoftError(f"epsilon must be in [0, 1], got {epsilon}")
    if epsilon and not deterministic:
        raise RlsoftError(
            "epsilon applies to the greedy policy; with deterministic=False the behaviour "
            "policy is sampled as it is: pass one of the two"
        )
    return float(epsilon)


class _Sampler:
    """``act_greedy`` that samples the behaviour policy (``evaluate(deterministic=False)``)."""

    def __init__(self, agent: TrainedAgent) -> None:
        self.agent = agent

    def act_greedy(self, obs: Any) -> int:
        return int(self.agent.predict(obs, deterministic=False))


# --------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------


@dataclass
class CompareResult:
    """A comparison's outcome: the summary as data, and where everything was written."""

    logdir: Path
    rows: list[dict[str, Any]]
    """One dict per line of ``summary.csv`` (``env``, ``metric``, ``statistic``, ``variant``,
    ``versus``, ``runs``, ``value``, ``ci_low``, ``ci_high``, ``flag``, ``censored``,
    ``lower_bound``) with numbers as floats (``nan`` where the file has an empty cell) and
    ``runs`` and ``censored`` as ints (``None`` where the file's cell is empty: ``runs`` of
    the probability-of-improvement rows, ``censored`` outside the time-to-threshold rows)."""
    analysis: Analysis | None
    """Everything the report computed (``None`` when no run finished)."""
    written: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    """Labels (``env/variant/seed_k``) of the runs that failed."""
    run: CompareRun | None = None

    def value(self, variant: str, statistic: str = "iqm", metric: str | None = None,
              env: str | None = None) -> float:  # fmt: skip
        """The point estimate of ``statistic`` for ``variant`` (first metric/env by default)."""
        for row in self.rows:
            if (row["variant"] == variant and row["statistic"] == statistic
                    and row["versus"] == "" and (metric is None or row["metric"] == metric)
                    and (env is None or row["env"] == env)):  # fmt: skip
                return float(row["value"])
        raise RlsoftError(f"no {statistic} of variant {variant!r} in the summary")


def summary_rows(analysis: Analysis) -> list[dict[str, Any]]:
    """:func:`rlsoft.compare.report.summary_rows`: ``summary.csv``'s rows as typed dicts."""
    from rlsoft.compare.report import summary_rows as rows

    return rows(analysis)


def read_summary_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a ``summary.csv`` as written (strings)."""
    text = Path(path).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def plan_compare(
    config: Any,
    *,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    seeds: int | Sequence[int] | None = None,
    logdir: str | Path | None = None,
) -> Comparison:
    """Read and plan a comparison (every run's config validated) without running anything."""
    from rlsoft.compare.plan import load_comparison, plan_comparison

    _register_agents()
    overrides = _checked_overrides(overrides)
    logdir = check_logdir(logdir)
    if isinstance(overrides, Mapping):
        texts = [f"{key}={_yaml_scalar(value)}" for key, value in overrides.items()]
    else:
        texts = list(overrides or [])
    given = "--set" if isinstance(overrides, list) else "overrides"  # as train names them
    if isinstance(config, (str, Path)):
        return load_comparison(
            config, overrides=texts, seeds=seeds, logdir=logdir, overrides_source=given
        )
    if isinstance(config, Mapping):
        return plan_comparison(
            _plain_values(copy.deepcopy(dict(config))), source="comparison", base_dir=Path.cwd(),
            overrides=texts, seeds=seeds, logdir=logdir, overrides_source=given,
        )  # fmt: skip
    raise RlsoftError(f"a comparison config must be a YAML path or a dict, got {a_type(config)}")


def _yaml_scalar(value: Any) -> str:
    """``value`` as the YAML text of a ``--set`` override (flow style, one line)."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=10**9).strip().removesuffix("\n...")


def comparison_imports(comparison: Comparison) -> list[str]:
    """The modules a comparison's runs import by entry point (``env.id: module:Name`` and
    ``env.wrappers``), in order, without repeats."""
    from rlsoft.rl.envs.factory import entry_point_modules
    from rlsoft.run.config import EnvConfig

    modules: list[str] = []
    for spec in comparison.runs:
        env = spec.config.get("env")
        if env:
            modules += entry_point_modules(EnvConfig.model_validate(env))
    return list(dict.fromkeys(modules))


def check_imports(comparison: Comparison) -> None:
    """Import every entry point of the comparison once here, so a wrong one is one sentence
    before any run starts (rather than one failure per run)."""
    from rlsoft.rl.envs.factory import import_entry_point, is_entry_point

    seen: set[str] = set()
    for spec in comparison.runs:
        env = spec.config.get("env") or {}
        paths = [("env.id", env.get("id", ""))] + [
            (f"env.wrappers[{i}].path", w["path"]) for i, w in enumerate(env.get("wrappers", []))
        ]
        for field_name, path in paths:
            if path not in seen and is_entry_point(path):
                import_entry_point(path, field_name)
                seen.add(path)


class ReportInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the report a comparison writes after its runs (the runs are kept; the
    files it had written are whole, each replaced atomically)."""

    def __init__(self, logdir: Path, finished: int) -> None:
        self.resume_command = f"rlsoft report {shlex.quote(str(logdir))}"
        super().__init__(
            f"while writing the report, after the runs had ended ({count(finished, 'run')} "
            f"finished, all kept); {self.resume_command} writes the report"
        )


def run_compare(
    comparison: Comparison,
    *,
    workers: int | None = None,
    backend: Literal["local", "ray"] = "local",
    address: str | None = None,
    progress: bool | None = False,
    on_start: Callable[[], None] | None = None,
) -> CompareResult:
    """Run a planned comparison (finished runs are skipped), then write and return its report.

    :param progress: draw the grid's progress line; ``None`` draws it on a terminal only, as
        ``rlsoft compare`` does.
    :param on_start: called when every check has passed, just before the runs start.
    :raises GridInterrupted: Ctrl-C stopped it; run it again to redo the unfinished runs.
    :raises ReportInterrupted: Ctrl-C stopped the report, after every run had ended.
    """
    from rlsoft.compare.grid import run_comparison
    from rlsoft.compare.report import report
    from rlsoft.run.progress import progress_enabled

    check_flag("progress", progress, none_means="on a terminal only, as rlsoft compare")
    _check_on_start(on_start)
    if progress is None:
        progress = progress_enabled("auto")
    workers = _plain_values(workers)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise RlsoftError(
            f"workers must be a whole number of parallel runs, got the {type(workers).__name__} "
            f"{shorten(workers)}; leave it out to use every core"
        )
    if workers is not None and workers < 1:
        raise RlsoftError(
            f"workers must be at least 1, got {workers}; leave it out to use every core"
        )
    check_imports(comparison)
    outcome = run_comparison(
        comparison,
        backend=backend,
        workers=workers,
        address=address,
        modules=AGENT_MODULES,
        progress=progress,
        on_start=on_start,
    )
    finished = outcome.finished_dirs()
    try:
        analysis, written = report(comparison.logdir, run_dirs=finished) if finished else (None, [])
    except KeyboardInterrupt:
        raise ReportInterrupted(comparison.logdir, len(finished)) from None
    return CompareResult(
        logdir=comparison.logdir,
        rows=summary_rows(analysis) if analysis is not None else [],
        analysis=analysis,
        written=list(written),
        failed=[o.label for o in outcome.failed],
        run=outcome,
    )


def compare(
    config: Any,
    *,
    workers: int | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    seeds: int | Sequence[int] | None = None,
    logdir: str | Path | None = None,
    backend: Literal["local", "ray"] = "local",
    address: str | None = None,
    progress: bool | None = False,
) -> CompareResult:
    """Run a comparison (as ``rlsoft compare``) and return its summary as data.

    :param config: a comparison YAML path or a dict shaped like one.
    :param overrides: applied to every run (``{"train.total_steps": 20000}``).
    :param seeds: seeds ``0..seeds-1``, or a list of seeds, instead of the config's.
    :param workers: parallel runs (default: every core).

    The local workers are processes started with ``spawn``, which import the caller's ``__main__``
    module again: in a script, call this under ``if __name__ == "__main__":`` (a notebook
    needs nothing).
    """
    comparison = plan_compare(config, overrides=overrides, seeds=seeds, logdir=logdir)
    return run_compare(
        comparison, workers=workers, backend=backend, address=address, progress=progress
    )


def _echo_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def describe_imports(comparison: Comparison, echo: Callable[[str], None] = _echo_stderr) -> None:
    """One line naming the modules a comparison imports, when it names any (for the CLI)."""
    modules = comparison_imports(comparison)
    if modules:
        echo(
            f"rlsoft compare {comparison.name}: its configs import code from "
            f"{', '.join(modules)} (env entry points and wrappers); run only configs you trust"
        )
