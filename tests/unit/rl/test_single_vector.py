"""SingleVectorEnv against Gymnasium's SyncVectorEnv with same-step autoreset: the same
observations, rewards, flags and infos (final observations included) step by step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from rlsoft.rl.envs.single_vector import SingleVectorEnv


def _assert_same(ours, theirs) -> None:
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            _assert_same(a, b)
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and set(ours) == set(theirs)
        for key in theirs:
            _assert_same(ours[key], theirs[key])
    elif isinstance(theirs, np.ndarray) and theirs.dtype == object:
        assert ours.dtype == object and ours.shape == theirs.shape
        for a, b in zip(ours, theirs, strict=True):
            _assert_same(a, b)
    elif isinstance(theirs, np.ndarray):
        assert isinstance(ours, np.ndarray)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        np.testing.assert_array_equal(ours, theirs)
    else:
        assert type(ours) is type(theirs) and ours == theirs


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("CartPole-v1", {"max_episode_steps": 30}),  # truncations as well as terminations
        ("FrozenLake-v1", {}),  # Discrete observations, an info dict on every step
        ("Taxi-v4", {"max_episode_steps": 60}),  # infos with arrays (action_mask)
    ],
)
def test_matches_sync_vector_env(env_id: str, kwargs: dict) -> None:
    ours = SingleVectorEnv(gym.make(env_id, **kwargs))
    theirs = SyncVectorEnv(
        [lambda: gym.make(env_id, **kwargs)], autoreset_mode=AutoresetMode.SAME_STEP
    )
    assert ours.observation_space == theirs.observation_space
    assert ours.action_space == theirs.action_space
    assert ours.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    _assert_same(ours.reset(seed=3), theirs.reset(seed=3))
    actions = np.random.default_rng(0)
    episodes_ended = 0
    for _ in range(400):
        action = np.array([actions.integers(theirs.single_action_space.n)])
        mine, reference = ours.step(action), theirs.step(action)
        _assert_same(mine, reference)
        episodes_ended += int(reference[2][0] or reference[3][0])
    assert episodes_ended >= 3  # the autoreset path was compared too
    ours.close()
    theirs.close()


def test_returns_fresh_observation_arrays() -> None:
    env = SingleVectorEnv(gym.make("CartPole-v1"))
    first, _ = env.reset(seed=0)
    kept = first.copy()
    env.step(np.array([1]))
    np.testing.assert_array_equal(first, kept)


def test_call_get_and_set_attr_reach_the_wrapped_env() -> None:
    env = SingleVectorEnv(gym.make("CartPole-v1"))
    env.reset(seed=0)
    assert env.get_attr("spec")[0].id == "CartPole-v1"
    env.set_attr("rlsoft_marker", [7])
    assert env.get_attr("rlsoft_marker") == (7,)
    assert env.call("rlsoft_marker") == (7,)
    with pytest.raises(ValueError, match="one value"):
        env.set_attr("rlsoft_marker", [1, 2])
    with pytest.raises(ValueError, match="one seed"):
        env.reset(seed=[1, 2])
