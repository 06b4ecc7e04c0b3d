"""Data sets for the supervised (classification) baseline, split into train / validation / test.

* :func:`load_digits_splits` — scikit-learn's bundled 8×8 handwritten digits (1,797 images,
  64 pixel features with values 0–16, 10 classes; no download), split per class so every split
  keeps the class proportions.
* :func:`collect_behavior_cloning` — the states a trained rlsoft agent visits when it acts
  greedily, each labelled with the greedy action it took there (``argmax_a Q(s, a)``, ties
  broken as the agent broke them): a classifier trained on them is itself a policy for the
  same environment. Split by whole episodes, so the test split holds trajectories the
  classifier never saw.

Features are returned unscaled; the classifier standardises them with the mean and standard
deviation of the training split only (:meth:`DatasetSplits.standardization`), so validation
and test data never leak into the scaling and a saved model carries its own scaling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlsoft.errors import RlsoftError
from rlsoft.rl import evaluation

__all__ = [
    "BehaviorCloningData",
    "DatasetSplits",
    "collect_behavior_cloning",
    "ensure_teacher_run",
    "load_digits_splits",
    "observation_encoder",
    "record_teacher_episode",
    "split_counts",
    "stratified_split",
]


@dataclass(frozen=True)
class DatasetSplits:
    """Features ``x_*`` (float32, (n, d)) and class labels ``y_*`` (int64, (n,)) per split."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    def __post_init__(self) -> None:
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[0] == 0:
                raise ValueError(
                    f"{self.name}: split {split!r} needs features (n, d) and labels (n,) with "
                    f"n ≥ 1, got {x.shape} and {y.shape}"
                )

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])

    def standardization(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature mean and standard deviation of the training split, from scikit-learn's
        ``StandardScaler`` (``mean_``, ``scale_``: constant features get a scale of 1, so they
        map to 0 rather than to NaN)."""
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(self.x_train.astype(np.float64))
        return scaler.mean_.astype(np.float32), scaler.scale_.astype(np.float32)

    def describe(self) -> str:
        return (
            f"{self.name}: {len(self.y_train)} train / {len(self.y_val)} validation / "
            f"{len(self.y_test)} test samples, {self.num_features} features, "
            f"{self.num_classes} classes"
        )


# --------------------------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------------------------


def _check_fractions(validation_fraction: float, test_fraction: float) -> None:
    if not (0.0 < validation_fraction < 1.0 and 0.0 < test_fraction < 1.0):
        raise ValueError(
            "validation_fraction and test_fraction must be in (0, 1), got "
            f"{validation_fraction} and {test_fraction}"
        )
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"validation_fraction + test_fraction = {validation_fraction + test_fraction} "
            "leaves nothing to train on; keep their sum below 1"
        )


def split_counts(n: int, validation_fraction: float, test_fraction: float) -> tuple[int, int]:
    """``(n_val, n_test)`` for ``n`` whole episodes: the rounded fractions, each at least 1
    when n ≥ 3 so that no split is empty."""
    n_test = round(n * test_fraction)
    n_val = round(n * validation_fraction)
    if n >= 3:
        n_test, n_val = max(n_test, 1), max(n_val, 1)
    return n_val, n_test


def stratified_split(
    labels: Any, validation_fraction: float, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays ``(train, val, test)`` that keep each class's proportion in every split.

    Two ``sklearn.model_selection.train_test_split(stratify=...)`` calls: the test split
    (``round(n · test_fraction)`` items) off everything, then the validation split
    (``round(n · validation_fraction)`` items) off the rest; scikit-learn shares each split
    out among the classes in proportion to their sizes. The draw is seeded from ``rng``. Each
    returned array is sorted. scikit-learn needs every class to have at least two members
    and each split at least one item per class; otherwise this raises ``ValueError``.
    """
    from sklearn.model_selection import train_test_split

    _check_fractions(validation_fraction, test_fraction)
    y = np.asarray(labels)
    n = len(y)
    seed = int(rng.integers(2**32))
    rest, test = train_test_split(
        np.arange(n), test_size=round(n * test_fraction), stratify=y, random_state=seed
    )
    train, val = train_test_split(
        rest, test_size=round(n * validation_fraction), stratify=y[rest], random_state=seed
    )
    return np.sort(train), np.sort(val), np.sort(test)


def load_digits_splits(
    rng: np.random.Generator, *, validation_fraction: float = 0.1, test_fraction: float = 0.2
) -> DatasetSplits:
    """scikit-learn's 8×8 digits, stratified into train / validation / test with ``rng``.

    With the default fractions: 1,258 train, 180 validation and 359 test images.
    """
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    train, val, test = stratified_split(y, validation_fraction, test_fraction, rng)
    x = x.astype(np.float32)
    y = y.astype(np.int64)
    return DatasetSplits(
        "digits", x[train], y[train], x[val], y[val], x[test], y[test], num_classes=10
    )


# --------------------------------------------------------------------------------------------
# Observations as feature vectors
# --------------------------------------------------------------------------------------------


def observation_encoder(space: gym.Space) -> tuple[int, Callable[[Sequence[Any]], np.ndarray]]:
    """``(d, encode)`` turning a batch of observations of ``space`` into float32 rows (n, d).

    ``Box`` observations are flattened, ``Discrete`` ones one-hot encoded (index
    ``obs − start``), and any other space goes through :func:`gymnasium.spaces.flatten`
    (one-hot parts for ``Tuple``/``MultiDiscrete``/``Dict`` of discrete parts).
    """
    if isinstance(space, gym.spaces.Box):
        dim = int(np.prod(space.shape))

        def encode_box(observations: Sequence[Any]) -> np.ndarray:
            return np.asarray(observations, dtype=np.float32).reshape(len(observations), dim)

        return dim, encode_box
    if isinstance(space, gym.spaces.Discrete):
        n, start = int(space.n), int(space.start)
        eye = np.eye(n, dtype=np.float32)

        def encode_discrete(observations: Sequence[Any]) -> np.ndarray:
            return eye[np.asarray(observations, dtype=np.int64).reshape(-1) - start]

        return n, encode_discrete
    try:
        dim = int(gym.spaces.flatdim(space))
    except (NotImplementedError, ValueError) as exc:
        raise RlsoftError(
            f"cannot turn observations of {space!r} into feature vectors for a classifier: {exc}"
        ) from None

    def encode_any(observations: Sequence[Any]) -> np.ndarray:
        rows = [np.asarray(gym.spaces.flatten(space, o), dtype=np.float32) for o in observations]
        return np.stack(rows).reshape(len(rows), dim)

    return dim, encode_any


# --------------------------------------------------------------------------------------------
# Behaviour cloning from a trained run
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BehaviorCloningData:
    """A behaviour-cloning data set and what evaluating its classifier as a policy needs."""

    splits: DatasetSplits
    env_config: Any
    """The teacher's :class:`rlsoft.run.config.EnvConfig`: the classifier is evaluated there."""
    observation_space: gym.Space
    teacher_returns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """The teacher's greedy returns on the evaluation episodes (empty if none were asked)."""


def ensure_teacher_run(
    teacher_run: Path,
    teacher_config: Path | None,
    *,
    train: Callable[[Path, Path, Callable[[str], None]], None],
    echo: Callable[[str], None] = print,
) -> Path:
    """``teacher_run`` when it holds a checkpoint; otherwise train it from ``teacher_config``
    (run dir name and logdir taken from ``teacher_run``), announcing it in one line."""
    from rlsoft.run.checkpoint import latest_checkpoint

    teacher_run = Path(teacher_run)
    if latest_checkpoint(teacher_run) is not None:
        return teacher_run
    if teacher_run.exists() and any(teacher_run.iterdir()):
        raise RlsoftError(
            f"teacher run {str(teacher_run)!r} exists but has no complete checkpoint; finish it "
            f"with rlsoft train --resume {teacher_run} or delete it"
        )
    if teacher_config is None:
        raise RlsoftError(
            f"teacher run {str(teacher_run)!r} does not exist; train it first with rlsoft train, "
            "or name its config in dataset.teacher_config to train it automatically"
        )
    if not Path(teacher_config).is_file():
        raise RlsoftError(
            f"teacher run {str(teacher_run)!r} does not exist, and its teacher_config "
            f"{str(teacher_config)!r} (relative paths start at the working directory) is not "
            "a file to train it from"
        )
    # The run layer trains it: injected, the data layer does not import orchestration.
    train(Path(teacher_config), teacher_run, echo)
    return teacher_run


def _episode_split(
    n_episodes: int, validation_fraction: float, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    _check_fractions(validation_fraction, test_fraction)
    n_val, n_test = split_counts(n_episodes, validation_fraction, test_fraction)
    if n_episodes - n_val - n_test < 1:
        raise RlsoftError(
            f"behaviour cloning needs at least 3 episodes to fill train, validation and test "
            f"splits, got {n_episodes}; raise dataset.episodes"
        )
    order = rng.permutation(n_episodes)
    return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]


def collect_behavior_cloning(
    teacher_run: Path,
    *,
    load_run: Callable[[Path], tuple[Any, Any]],
    episodes: int,
    seed: int,
    rng: np.random.Generator,
    split_rng: np.random.Generator | None = None,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.2,
    epsilon: float = 0.0,
    eval_episodes: int = 0,
    eval_seed: int = 0,
) -> BehaviorCloningData:
    """Roll out the teacher of ``teacher_run`` greedily and label every visited state.

    Episode i starts from ``env.reset(seed=seed + i)`` and, like an evaluation episode, ends
    after at most :data:`rlsoft.rl.evaluation.MAX_EVAL_EPISODE_STEPS` steps (an environment
    without a time limit and a teacher walking in circles would never end it). Each state is
    labelled with the action ``teacher.act_greedy`` chose there, so ties between equal
    Q-values are labelled the way the teacher broke them when it acted, never by a second
    rule such as "first maximum". With probability ``epsilon`` the executed action is a
    uniformly random one instead (the label stays the teacher's): the data then also shows how
    to get back on track after a mistake. ``split_rng`` (default ``rng``) assigns whole
    episodes to the splits. ``eval_episodes`` greedy teacher episodes from ``eval_seed`` give
    the returns a cloned policy is compared against.
    """
    from rlsoft.rl.envs.factory import make_env
    from rlsoft.rl.evaluation import evaluate_greedy
    from rlsoft.rl.spaces import discrete_actions

    if episodes < 3:
        raise RlsoftError(f"behaviour cloning needs at least 3 episodes, got {episodes}")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    config, driver = load_run(Path(teacher_run))
    teacher = getattr(driver, "agent", None)
    if teacher is None or not hasattr(teacher, "act_greedy"):
        driver.close()
        raise RlsoftError(
            f"{str(teacher_run)!r} is not a run of a Q-learning agent (no greedy policy to "
            "label states with); behaviour cloning needs an RL teacher"
        )
    env = make_env(config.env)
    try:
        n_actions = discrete_actions(
            env.action_space, "behaviour cloning", "the teacher must have discrete actions"
        )
        _, encode = observation_encoder(env.observation_space)
        features, labels = [], []
        for episode in range(episodes):
            states, actions = record_teacher_episode(
                env, teacher, seed=seed + episode, epsilon=epsilon, n_actions=n_actions, rng=rng
            )
            features.append(encode(states))
            labels.append(np.asarray(actions, dtype=np.int64))
        teacher_returns = np.zeros(0)
        if eval_episodes:
            teacher_returns, _ = evaluate_greedy(teacher, env, eval_episodes, eval_seed)
        observation_space = env.observation_space
    finally:
        env.close()
        driver.close()
    train, val, test = _episode_split(
        episodes, validation_fraction, test_fraction, rng if split_rng is None else split_rng
    )

    def gather(which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (
            np.concatenate([features[i] for i in which]),
            np.concatenate([labels[i] for i in which]),
        )

    splits = DatasetSplits(
        f"behavior_cloning({Path(teacher_run).name}, {config.env.id})",
        *gather(train),
        *gather(val),
        *gather(test),
        num_classes=n_actions,
    )
    return BehaviorCloningData(splits, config.env, observation_space, teacher_returns)


def record_teacher_episode(
    env: gym.Env,
    teacher: Any,
    *,
    seed: int,
    epsilon: float,
    n_actions: int,
    rng: np.random.Generator,
) -> tuple[list[Any], list[int]]:
    """``(states, labels)`` of one episode of the teacher's greedy (ε-perturbed) policy.

    ``labels[t]`` is the action ``teacher.act_greedy(states[t])`` returned, the one executed
    unless the ε draw replaced it; ties in the teacher's Q-values are thus labelled as its
    acting path broke them. The episode is cut after
    :data:`rlsoft.rl.evaluation.MAX_EVAL_EPISODE_STEPS` steps, the cap evaluation uses.
    """
    cap = evaluation.MAX_EVAL_EPISODE_STEPS  # read per call, so the two can never disagree
    obs, _ = env.reset(seed=seed)
    states: list[Any] = []
    labels: list[int] = []
    done = False
    while not done:
        states.append(obs)
        action = int(teacher.act_greedy(obs))
        labels.append(action)
        if epsilon and rng.random() < epsilon:
            action = int(rng.integers(n_actions))
        obs, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated or len(states) >= cap
    return states, labels
