"""Data sets: stratified split proportions, the digits split, observation encoding."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlsoft.datasets import (
    load_digits_splits,
    observation_encoder,
    split_counts,
    stratified_split,
)


@given(
    counts=st.lists(st.integers(1, 60), min_size=1, max_size=8),
    val=st.floats(0.05, 0.4),
    test=st.floats(0.05, 0.4),
    seed=st.integers(0, 1000),
)
def test_stratified_split_keeps_class_proportions(
    counts: list[int], val: float, test: float, seed: int
) -> None:
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(seed).shuffle(labels)
    train_idx, val_idx, test_idx = stratified_split(labels, val, test, np.random.default_rng(seed))
    # A partition of all indices.
    joined = np.concatenate([train_idx, val_idx, test_idx])
    assert sorted(joined.tolist()) == list(range(len(labels)))
    n = len(labels)
    assert len(test_idx) == round(n * test)
    assert len(val_idx) <= round(n * val)
    for cls, count in enumerate(counts):
        in_test = int(np.sum(labels[test_idx] == cls))
        in_val = int(np.sum(labels[val_idx] == cls))
        assert abs(in_test - count * test) < 1.0  # within one item of the exact quota
        assert in_val <= count - in_test
        assert in_val < count * val + 1.0


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
    # Every class has 18 validation images and 35-37 test images (≈ 20 % of 174-183).
    assert set(np.bincount(a.y_val)) == {18}
    assert set(np.bincount(a.y_test)) <= {35, 36, 37}
    # Standardisation statistics come from the training split only.
    mean, std = a.standardization()
    np.testing.assert_allclose(mean, a.x_train.mean(axis=0), rtol=1e-5, atol=1e-6)
    assert np.all(std > 0)  # constant pixels get std 1, not 0


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
