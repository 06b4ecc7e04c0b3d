"""MinAtar through rlsoft: the missing extra is one sentence, and episodes replay exactly."""

from __future__ import annotations

import json
import sys

import gymnasium as gym
import numpy as np
import pytest

import agents  # noqa: F401 - registers the agents
from rlsoft.errors import ConfigError, RlsoftError
from rlsoft.rl.envs import factory
from rlsoft.rl.envs.state import EpisodeRecorder, restore_vector_env, snapshot_vector_env
from rlsoft.run.config import EnvConfig, validate_config

EXTRA = "install it with: pip install 'rlsoft[minatar]'"


def test_a_missing_minatar_names_the_extra(monkeypatch):
    """Without the package the id is unregistered and its import fails: one sentence."""
    for env_id in [k for k in gym.registry if k.startswith("MinAtar/")]:
        monkeypatch.delitem(gym.registry, env_id)
    monkeypatch.setitem(sys.modules, "minatar.gym", None)  # makes `import minatar.gym` fail
    with pytest.raises(RlsoftError, match=r"needs the minatar package, which is not installed"):
        factory.register_optional_envs("MinAtar/Breakout-v1")
    with pytest.raises(ConfigError) as info:
        validate_config({"env": {"id": "MinAtar/Breakout-v1"}, "agent": {"type": "dqn"}})
    assert EXTRA in str(info.value) and "\n" not in str(info.value)
    factory.register_optional_envs("CartPole-v1")  # other ids: nothing to import


def test_minatar_ids_are_registered_when_the_plugin_entry_point_did_not(monkeypatch):
    """Gymnasium does not load minatar's plugin entry point by itself, so the ids exist only
    once ``minatar.gym.register_envs`` ran: validating a config's id calls it."""
    pytest.importorskip("minatar", reason="MinAtar is an optional extra")
    for env_id in [k for k in gym.registry if k.startswith("MinAtar/")]:
        monkeypatch.delitem(gym.registry, env_id)
    assert "MinAtar/Freeway-v1" not in gym.registry
    config = EnvConfig(id="MinAtar/Freeway-v1")  # validating the id registers it
    assert config.id in gym.registry
    env = factory.make_env(config)
    assert env.action_space.n == 3 and env.observation_space.shape == (10, 10, 7)
    env.close()


def test_a_miscased_minatar_id_gets_the_spelling_that_exists(monkeypatch):
    """``minatar/…`` registers the package's ids too, so the hint can name the real one."""
    pytest.importorskip("minatar", reason="MinAtar is an optional extra")
    for env_id in [k for k in gym.registry if k.startswith("MinAtar/")]:
        monkeypatch.delitem(gym.registry, env_id)
    with pytest.raises(ConfigError, match=r"did you mean 'MinAtar/Breakout-v1'\?"):
        validate_config({"env": {"id": "minatar/breakout-v1"}, "agent": {"type": "dqn"}})


def test_the_six_action_v0_ids_make_without_an_out_of_date_warning():
    """-v0 (all actions) and -v1 (the minimal set) are two choices, not two versions."""
    pytest.importorskip("minatar", reason="MinAtar is an optional extra")
    import warnings

    config = EnvConfig(id="MinAtar/Breakout-v0")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = factory.make_env(config)
        vector = factory.make_vector_env(EnvConfig(id="MinAtar/Breakout-v0", num_envs=2))
    assert env.action_space.n == 6 and vector.single_action_space.n == 6
    env.close()
    vector.close()
    assert not [w for w in caught if "out of date" in str(w.message)]


def test_minatar_episodes_replay_exactly_from_the_environment_generator():
    """MinAtar draws from its own RandomState; rlsoft reseeds it from np_random at every
    reset, so a snapshot taken after several unseeded autoresets replays into fresh copies
    that then step identically (what exact resume needs)."""
    pytest.importorskip("minatar", reason="MinAtar is an optional extra")
    config = EnvConfig(id="MinAtar/Breakout-v1", num_envs=2)

    def vector() -> gym.vector.VectorEnv:
        return factory.make_vector_env(config, wrap=EpisodeRecorder)

    original, restored = vector(), vector()
    space = original.single_observation_space
    assert space.dtype == np.bool_ and space.shape == (10, 10, 4)
    rng = np.random.default_rng(0)
    original.reset(seed=7)
    ends = 0
    for _ in range(400):
        *_, terminated, truncated, _ = original.step(rng.integers(0, 3, 2))
        ends += int(np.sum(terminated | truncated))
    assert ends >= 4  # the snapshot falls after unseeded resets
    snapshots = json.loads(json.dumps(snapshot_vector_env(original)))
    restored.reset(seed=123)
    restore_vector_env(restored, snapshots)
    for _ in range(400):
        actions = rng.integers(0, 3, 2)
        a, b = original.step(actions), restored.step(actions)
        for x, y in zip(a[:4], b[:4], strict=True):
            np.testing.assert_array_equal(x, y)
    original.close()
    restored.close()


def test_minatar_sticky_actions_start_every_episode_from_noop():
    """MinAtar's sticky actions repeat ``last_action``, which its own reset leaves at the
    previous episode's last action; a fresh copy replaying an episode starts from 0 (no-op).
    rlsoft resets it to no-op at every reset (as the ALE does, Machado et al. 2018), so every
    episode is replayable: a snapshot taken in each of many episodes, with sticky actions at
    0.5 and never a no-op chosen, restores into a fresh copy that then steps identically."""
    pytest.importorskip("minatar", reason="MinAtar is an optional extra")
    config = EnvConfig(id="MinAtar/Breakout-v1", kwargs={"sticky_action_prob": 0.5})
    original = EpisodeRecorder(factory.make_env(config))
    rng = np.random.default_rng(1)
    original.reset(seed=3)
    checked = 0
    while checked < 12:
        _, _, terminated, truncated, _ = original.step(int(rng.integers(1, 3)))
        if terminated or truncated:
            original.reset()
            continue
        if rng.random() > 0.05:
            continue
        restored = EpisodeRecorder(factory.make_env(config))
        restored.reset(seed=99)
        restored_obs = restored.rlsoft_restore(json.loads(json.dumps(original.rlsoft_snapshot())))
        np.testing.assert_array_equal(restored_obs, original.unwrapped.game.state())
        checked += 1
        for _ in range(20):
            action = int(rng.integers(1, 3))
            a, b = original.step(action), restored.step(action)
            for x, y in zip(a[:4], b[:4], strict=True):
                np.testing.assert_array_equal(x, y)
            if a[2] or a[3]:
                original.reset()
                break
        restored.close()
    original.close()
