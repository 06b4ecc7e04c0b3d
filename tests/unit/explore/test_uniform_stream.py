"""UniformStream: the same numbers as Generator.random, in blocks, with exact resume."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import chisquare

from rlsoft.explore.uniform_stream import UniformStream

LARGEST_BELOW_ONE = math.nextafter(1.0, 0.0)  # 1 − 2⁻⁵³, the largest double Generator.random gives


def test_values_are_the_generators_scalar_draws_in_order():
    reference = np.random.default_rng(7)
    stream = UniformStream(np.random.default_rng(7), block_size=16)
    draws = [stream.uniform() for _ in range(40)]  # crosses two block boundaries
    assert draws == [reference.random() for _ in range(40)]
    assert all(type(u) is float for u in draws)


def test_sized_draws_continue_the_same_sequence():
    reference = np.random.default_rng(8).random(1 + 6 + 3)
    stream = UniformStream(np.random.default_rng(8), block_size=4)
    first = stream.random()
    matrix = stream.random((2, 3))
    tail = stream.random(3)
    assert matrix.shape == (2, 3) and tail.shape == (3,)
    np.testing.assert_array_equal(np.concatenate([[first], matrix.ravel(), tail]), reference)


@pytest.mark.parametrize("used", [0, 1, 15, 16, 17, 40])
def test_state_round_trip_continues_exactly(used):
    stream = UniformStream(np.random.default_rng(9), block_size=16)
    for _ in range(used):
        stream.uniform()
    state = json.loads(json.dumps(stream.state_dict()))  # checkpoints store it as JSON
    expected = [stream.uniform() for _ in range(50)]

    restored = UniformStream(np.random.default_rng(12345), block_size=16)
    restored.uniform()  # a different position: load must discard it
    restored.load_state_dict(state)
    assert [restored.uniform() for _ in range(50)] == expected


@pytest.mark.parametrize("used", [0, 5, 8, 13])
def test_state_taken_right_after_a_load_is_the_loaded_state(used):
    # A resumed run that checkpoints again before drawing (a finished run resumed with no
    # new budget) must save the block it was given, not drop it.
    stream = UniformStream(np.random.default_rng(13), block_size=8)
    for _ in range(used):
        stream.uniform()
    state = stream.state_dict()
    expected = [stream.uniform() for _ in range(20)]
    first = UniformStream(np.random.default_rng(0), block_size=8)
    first.load_state_dict(state)
    assert first.state_dict() == state
    second = UniformStream(np.random.default_rng(1), block_size=8)
    second.load_state_dict(first.state_dict())
    assert [second.uniform() for _ in range(20)] == expected


def test_bound_uniform_stays_valid_after_load():
    stream = UniformStream(np.random.default_rng(10), block_size=8)
    uniform = stream.uniform  # agents bind this once, at construction
    for _ in range(5):
        uniform()
    state = stream.state_dict()
    expected = [uniform() for _ in range(20)]
    stream.load_state_dict(state)
    assert [uniform() for _ in range(20)] == expected


def test_direct_generator_draws_between_stream_draws_are_restored():
    stream = UniformStream(np.random.default_rng(11), block_size=8)
    stream.uniform()
    stream.rng.integers(100, size=3)  # someone else uses the generator meanwhile
    state = stream.state_dict()
    expected = ([stream.uniform() for _ in range(12)], stream.rng.integers(1000, size=4).tolist())

    other = UniformStream(np.random.default_rng(0), block_size=8)
    other.load_state_dict(state)
    got = ([other.uniform() for _ in range(12)], other.rng.integers(1000, size=4).tolist())
    assert got == expected


def test_floor_of_u_times_k_is_below_k_even_for_the_largest_uniform():
    # The argument of the class docstring, checked: (1 − 2⁻⁵³)·k rounds below k.
    for k in range(1, 100_001):
        assert int(LARGEST_BELOW_ONE * k) == k - 1


@given(st.integers(min_value=1, max_value=2**53 - 1))
def test_floor_of_u_times_k_is_below_k_for_large_k(k):
    assert int(LARGEST_BELOW_ONE * k) <= k - 1


def test_integers_are_uniform():
    stream = UniformStream(np.random.default_rng(12))
    draws = stream.integers(7, size=70_000)
    assert draws.dtype == np.int64 and draws.min() >= 0 and draws.max() <= 6
    assert chisquare(np.bincount(draws, minlength=7)).pvalue > 1e-3
    scalar = [stream.integers(3) for _ in range(3000)]
    assert all(type(i) is int for i in scalar)
    assert chisquare(np.bincount(scalar, minlength=3)).pvalue > 1e-3


def test_bad_arguments():
    with pytest.raises(ValueError, match="block_size"):
        UniformStream(np.random.default_rng(0), block_size=0)
    with pytest.raises(ValueError, match="high"):
        UniformStream(np.random.default_rng(0)).integers(0)
