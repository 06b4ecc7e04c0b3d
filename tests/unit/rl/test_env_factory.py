"""The env factory: entry points, wrappers and ``gymnasium.make_vec`` vector envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rlsoft.errors import RlsoftError
from rlsoft.rl.envs.factory import entry_point_modules, make_env, make_vector_env
from rlsoft.run.config import EnvConfig


class Marker(gym.Wrapper):
    """Records its keyword so a test can find it on every copy."""

    def __init__(self, env: gym.Env, tag: str = "") -> None:
        super().__init__(env)
        self.tag = tag


def wrappers_of(env: gym.Env) -> list[type]:
    """The wrapper classes from the outside in."""
    found = []
    while isinstance(env, gym.Wrapper):
        found.append(type(env))
        env = env.env
    return found


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vector_env_wraps_every_copy_and_resets_on_the_same_step(mode):
    config = EnvConfig(
        id="CartPole-v1",
        num_envs=2,
        vectorization=mode,
        max_episode_steps=5,
        wrappers=[{"path": f"{__name__}:Marker", "kwargs": {"tag": "x"}}],
    )
    recorder = gym.wrappers.RecordEpisodeStatistics  # stands in for the resume recorder
    vec = make_vector_env(config, wrap=recorder)
    try:
        assert vec.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
        if mode == "sync":
            for sub in vec.envs:
                chain = wrappers_of(sub)
                # the extra wrap outermost, then the config's wrappers, then make's TimeLimit
                assert chain[0] is recorder and chain[1] is Marker and sub.env.tag == "x"
                assert gym.wrappers.TimeLimit in chain
        else:
            assert vec.get_attr("tag") == ("x", "x")
        vec.reset(seed=0)
        for _ in range(5):
            obs, _, terminated, truncated, info = vec.step(np.zeros(2, dtype=np.int64))
        ended = terminated | truncated
        assert ended.all()  # the 5-step limit, unless the pole fell first
        # Same-step autoreset: the final observation is in info, obs is already a new start.
        assert "final_obs" in info and info["_final_obs"].all()
        assert np.all(np.abs(obs) <= 0.05)  # CartPole starts uniformly in ±0.05
    finally:
        vec.close()


def test_an_entry_point_class_is_made_with_the_make_wrappers():
    config = EnvConfig(
        id="gymnasium.envs.toy_text.frozen_lake:FrozenLakeEnv",
        kwargs={"map_name": "4x4"},
        max_episode_steps=7,
    )
    env = make_env(config)
    assert type(env.unwrapped).__name__ == "FrozenLakeEnv"
    assert gym.wrappers.TimeLimit in wrappers_of(env)
    assert entry_point_modules(config) == ["gymnasium.envs.toy_text.frozen_lake"]
    env.close()


def test_gymnasiums_module_colon_registered_name_form_still_works():
    # "module:Name" where importing module registers Name: Gymnasium's own convention.
    env = make_env(EnvConfig(id="gymnasium.envs:CartPole-v1"))
    assert env.spec.id == "CartPole-v1"
    env.close()
    assert entry_point_modules(EnvConfig(id="Taxi-v4")) == []


def test_a_function_that_returns_no_env_is_one_sentence():
    with pytest.raises(RlsoftError, match=r"not a gymnasium\.Env") as caught:
        make_env(EnvConfig(id="builtins:dict"))
    assert "\n" not in str(caught.value)


def test_a_wrapper_shape_written_as_a_yaml_list_reaches_it_as_a_tuple():
    """ReshapeObservation (like ResizeObservation) takes its shape only as a tuple, which a
    YAML config cannot write: the list it holds is passed as one."""
    wrapper = {"path": "gymnasium.wrappers:ReshapeObservation", "kwargs": {"shape": [2, 2]}}
    env = make_env(EnvConfig(id="CartPole-v1", wrappers=[wrapper]))
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == (2, 2) == obs.shape
    env.close()
