"""rlsoft.rl.spaces.space_to_json / space_from_json: a run's spaces written as JSON and read
back equal (Gymnasium's own ``==``: kind, shape, dtype and every bound), through a JSON text
as the run dir stores them."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from rlsoft.rl.spaces import space_from_json, space_to_json

SPACES = {
    "atari frames": gym.spaces.Box(0, 255, (4, 84, 84), np.uint8),
    "minatar grids": gym.spaces.Box(0, 1, (10, 10, 4), np.bool_),
    "unbounded": gym.spaces.Box(-np.inf, np.inf, (4,), np.float32),
    "cartpole": gym.make("CartPole-v1").observation_space,  # per-element and infinite bounds
    "float64 bounds": gym.spaces.Box(np.array([0.0, -1.5]), np.array([1.0, 2.5]), dtype=np.float64),
    "integer box": gym.spaces.Box(-3, 7, (2, 3), np.int32),
    "empty box": gym.spaces.Box(0, 1, (0,), np.float32),
    "discrete from -2": gym.spaces.Discrete(5, start=-2),
    "multidiscrete": gym.spaces.MultiDiscrete([3, 4], start=[1, 0]),
    "multibinary": gym.spaces.MultiBinary([2, 3]),
    "blackjack": gym.make("Blackjack-v1").observation_space,  # a Tuple of Discrete
    "dict": gym.spaces.Dict(
        {"grid": gym.spaces.Box(0, 1, (2, 2)), "position": gym.spaces.Discrete(4)}
    ),
}


@pytest.mark.parametrize("name", SPACES)
def test_a_space_reads_back_equal_from_its_json(name):
    space = SPACES[name]
    text = json.dumps(space_to_json(space))
    back = space_from_json(json.loads(text))
    assert back == space and type(back) is type(space)
    if isinstance(space, gym.spaces.Box):
        np.testing.assert_array_equal(back.low, space.low)
        np.testing.assert_array_equal(back.high, space.high)
        assert back.low.dtype == space.low.dtype


def test_an_image_box_is_written_with_one_bound_each():
    """255·84·84·4 equal bounds would make a 50k-number file: a shared bound is one number."""
    encoded = space_to_json(SPACES["atari frames"])
    assert encoded == {
        "type": "Box",
        "shape": [4, 84, 84],
        "dtype": "uint8",
        "low": 0,
        "high": 255,
    }


def test_spaces_it_does_not_cover_are_none():
    assert space_to_json(gym.spaces.Text(5)) is None
    assert space_to_json(gym.spaces.Tuple([gym.spaces.Discrete(2), gym.spaces.Text(3)])) is None
    with pytest.raises(ValueError, match="unknown space type 'Graph'"):
        space_from_json({"type": "Graph"})
