"""Data sets: stratified split proportions, the digits split, observation encoding, and the
teacher rollouts of behaviour cloning."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import ClassVar

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rlsoft.numerics.functional import argmax
from rlsoft.rl import evaluation
from rlsoft.rl.agent import AgentSpec, register_agent
from rlsoft.run.config import StrictModel, validate_config
from rlsoft.run.experiment import load_trained, run_experiment
from rlsoft.supervised.datasets import (
    collect_behavior_cloning,
    load_digits_splits,
    observation_encoder,
    split_counts,
    stratified_split,
)


@given(
    counts=st.lists(st.integers(4, 60), min_size=1, max_size=8),
    val=st.floats(0.05, 0.4),
    test=st.floats(0.05, 0.4),
    seed=st.integers(0, 1000),
)
def test_stratified_split_keeps_class_proportions(
    counts: list[int], val: float, test: float, seed: int
) -> None:
    n, k = sum(counts), len(counts)
    n_test, n_val = round(n * test), round(n * val)
    # scikit-learn's stratified split needs at least one item per class in every split.
    assume(min(n_test, n_val, n - n_test - n_val) >= k)
    labels = np.repeat(np.arange(k), counts)
    np.random.default_rng(seed).shuffle(labels)
    train_idx, val_idx, test_idx = stratified_split(labels, val, test, np.random.default_rng(seed))
    # A partition of all indices.
    joined = np.concatenate([train_idx, val_idx, test_idx])
    assert sorted(joined.tolist()) == list(range(n))
    assert (len(test_idx), len(val_idx)) == (n_test, n_val)
    for cls, count in enumerate(counts):
        in_test = int(np.sum(labels[test_idx] == cls))
        in_val = int(np.sum(labels[val_idx] == cls))
        assert abs(in_test - count * test) < 1.0  # within one item of the exact quota
        # The validation split is drawn from what the test split left, in proportion.
        assert abs(in_val - (count - in_test) * n_val / (n - n_test)) < 1.0


def test_stratified_split_rejects_fractions_that_leave_no_training_data() -> None:
    with pytest.raises(ValueError, match="below 1"):
        stratified_split(np.zeros(10, dtype=int), 0.5, 0.5, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        stratified_split(np.zeros(10, dtype=int), 0.0, 0.2, np.random.default_rng(0))


def test_digits_split_sizes_proportions_and_seeding() -> None:
    a = load_digits_splits(np.random.default_rng(7))
    b = load_digits_splits(np.random.default_rng(7))
    c = load_digits_splits(np.random.default_rng(8))
    assert (len(a.y_train), len(a.y_val), len(a.y_test)) == (1258, 180, 359)
    assert a.num_features == 64 and a.num_classes == 10
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64
    np.testing.assert_array_equal(a.x_test, b.x_test)  # same seed, same split
    assert not np.array_equal(a.y_test, c.y_test)  # another seed, another split
    # Every class has 17-19 validation images (≈ 180/1438 of 139-147) and 35-37 test images
    # (≈ 20 % of 174-183).
    assert set(np.bincount(a.y_val)) <= {17, 18, 19}
    assert set(np.bincount(a.y_test)) <= {35, 36, 37}
    # Standardisation statistics come from the training split only; constant pixels get a
    # scale of 1, not 0.
    mean, std = a.standardization()
    np.testing.assert_allclose(mean, a.x_train.mean(axis=0), rtol=1e-5, atol=1e-6)
    spread = a.x_train.std(axis=0, dtype=np.float64)
    np.testing.assert_allclose(std, np.where(spread > 0, spread, 1.0), rtol=1e-5)


def test_split_counts_for_episodes() -> None:
    assert split_counts(10, 0.1, 0.2) == (1, 2)
    assert split_counts(3, 0.1, 0.2) == (1, 1)  # never an empty split when n ≥ 3
    assert split_counts(100, 0.15, 0.25) == (15, 25)


def test_observation_encoder_box_discrete_and_tuple() -> None:
    dim, encode = observation_encoder(gym.spaces.Box(-1, 1, shape=(2, 3)))
    assert dim == 6
    out = encode([np.arange(6).reshape(2, 3), np.zeros((2, 3))])
    assert out.shape == (2, 6) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], np.arange(6))

    dim, encode = observation_encoder(gym.spaces.Discrete(4, start=1))
    assert dim == 4
    np.testing.assert_array_equal(encode([1, 4]), [[1, 0, 0, 0], [0, 0, 0, 1]])

    space = gym.spaces.Tuple((gym.spaces.Discrete(3), gym.spaces.Discrete(2)))
    dim, encode = observation_encoder(space)
    assert dim == 5
    np.testing.assert_array_equal(encode([(2, 0)]), [[0, 0, 1, 1, 0]])


# --------------------------------------------------------------------------------------------
# Behaviour cloning: teacher rollouts capped like evaluation, labels = the executed action
# --------------------------------------------------------------------------------------------


class TiedCliffTeacher:
    """A teacher whose Q-values tie between up (0) and left (3) in every state, breaking the
    tie at random when it acts (as rlsoft's tabular agents do). From CliffWalking's start it
    only ever walks up the first column and back, so without a step cap (CliffWalking-v1 has
    no time limit) an episode never ends; it refuses to act forever instead of hanging."""

    checkpoint_suffix = ".npz"
    calls: ClassVar[list[int]] = []  # every action act_greedy returned, in order
    max_calls = 5_000

    def __init__(self, ctx) -> None:
        self.policy = ctx.policy
        self.rng = np.random.default_rng(7)

    def q_values(self, observations) -> np.ndarray:
        return np.tile([1.0, 0.0, 0.0, 1.0], (len(np.atleast_1d(observations)), 1))

    def act_greedy(self, obs) -> int:
        if len(TiedCliffTeacher.calls) >= self.max_calls:
            raise RuntimeError("the rollout ran past the evaluation step cap")
        action = int(argmax(self.q_values([obs])[0], rng=self.rng))
        TiedCliffTeacher.calls.append(action)
        return action

    def act(self, obs, step: int) -> int:
        return self.act_greedy(obs)

    def observe(self, *transition) -> None:
        pass

    def metrics(self) -> dict[str, float]:
        return {}

    def save(self, path: Path) -> None:
        with open(path, "wb") as handle:
            np.savez(handle, seed=np.array(7))

    def load(self, path: Path) -> None:
        self.rng = np.random.default_rng(int(np.load(path)["seed"]))


class _NoOptions(StrictModel):
    pass


register_agent(AgentSpec("test_tied_cliff_teacher", _NoOptions, TiedCliffTeacher))
CAP = 40


@pytest.fixture
def tied_teacher_run(tmp_path: Path, monkeypatch) -> Path:
    # A small cap (the real one is 100,000 steps) keeps the test fast; evaluation and the
    # rollouts must both honour whatever the cap is.
    monkeypatch.setattr(evaluation, "MAX_EVAL_EPISODE_STEPS", CAP)
    config = validate_config(
        {
            "name": "teacher",
            "seed": 0,
            "logdir": str(tmp_path),
            "run_name": "tied",
            "env": {"id": "CliffWalking-v1"},
            "agent": {"type": "test_tied_cliff_teacher"},
            "train": {"total_steps": 5, "eval_every": 0, "eval_episodes": 1, "log_every": 5},
        }
    )
    run_dir = run_experiment(config).run_dir
    TiedCliffTeacher.calls.clear()
    return run_dir


def _cliff_step(state: int, action: int) -> int:
    """CliffWalking's 4×12 grid moves for up (0) and left (3), written out independently."""
    row, col = divmod(state, 12)
    if action == 0:
        row = max(row - 1, 0)
    elif action == 3:
        col = max(col - 1, 0)
    else:  # pragma: no cover - the tied teacher never picks these
        raise AssertionError(action)
    return row * 12 + col


def test_teacher_rollouts_stop_at_the_evaluation_cap_and_label_the_executed_tie(
    tied_teacher_run: Path,
) -> None:
    data = collect_behavior_cloning(
        tied_teacher_run,
        load_run=load_trained,
        episodes=4,
        seed=3,
        rng=np.random.default_rng(0),
        eval_episodes=2,
    )
    splits = data.splits
    x = np.concatenate([splits.x_train, splits.x_val, splits.x_test])
    y = np.concatenate([splits.y_train, splits.y_val, splits.y_test])
    # Four episodes of exactly CAP steps each, and the two teacher evaluation episodes too.
    assert len(y) == 4 * CAP
    np.testing.assert_array_equal(data.teacher_returns, [-CAP, -CAP])
    # Labels are the actions the teacher executed: replaying them from the start state
    # reproduces every recorded state (a "first maximum" label, 0, would not).
    states = x.argmax(axis=1).reshape(4, CAP)
    for episode_states, episode_labels in zip(states, y.reshape(4, CAP), strict=True):
        assert episode_states[0] == 36  # CliffWalking's start
        for t in range(CAP - 1):
            assert _cliff_step(episode_states[t], episode_labels[t]) == episode_states[t + 1]
    assert set(np.unique(y)) == {0, 3}  # the tie was broken both ways


def test_with_epsilon_the_label_stays_the_teachers_choice(tied_teacher_run: Path) -> None:
    data = collect_behavior_cloning(
        tied_teacher_run,
        load_run=load_trained,
        episodes=4,
        seed=3,
        rng=np.random.default_rng(1),
        epsilon=0.5,
    )
    y = np.concatenate([data.splits.y_train, data.splits.y_val, data.splits.y_test])
    # every label is one the teacher returned (random actions 1 and 2 never become labels),
    # with the same counts as the actions it returned during the four episodes
    assert len(TiedCliffTeacher.calls) == len(y)
    assert Counter(y.tolist()) == Counter(TiedCliffTeacher.calls)
    assert set(y.tolist()) == {0, 3}
