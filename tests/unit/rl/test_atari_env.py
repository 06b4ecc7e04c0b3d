"""Atari through rlsoft: the env.atari block, the learning signal beside the game's score,
the missing extra, and episodes that replay exactly (exact resume)."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import agents  # noqa: F401 - registers the agents
from rlsoft.errors import ConfigError, RlsoftError
from rlsoft.rl.envs import factory
from rlsoft.rl.envs.atari import (
    LEARN_REWARD,
    LEARN_TERMINATED,
    AtariLearningSignal,
    learning_signal_single,
    learning_signal_vector,
)
from rlsoft.rl.envs.state import EpisodeRecorder, restore_vector_env, snapshot_vector_env
from rlsoft.run.config import AtariConfig, EnvConfig, validate_config

EXTRA = "install it with: pip install 'rlsoft[atari]'"
DQN = {"type": "dqn", "frame_stack": 4}


def _config(env: dict, agent: dict | None = None):
    return validate_config({"env": env, "agent": agent or DQN})


def _one_sentence(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    return text


# -- the missing extra ---------------------------------------------------------------------


def test_a_missing_ale_py_names_the_extra(monkeypatch):
    """Without the package the ALE/ ids are unregistered and the import fails: one sentence."""
    for env_id in [k for k in gym.registry if k.startswith("ALE/")]:
        monkeypatch.delitem(gym.registry, env_id)
    monkeypatch.setitem(sys.modules, "ale_py", None)  # makes `import ale_py` fail
    with pytest.raises(RlsoftError, match=r"needs the ale_py package, which is not installed"):
        factory.register_optional_envs("ALE/Pong-v5")
    with pytest.raises(ConfigError) as info:
        _config({"id": "ALE/Pong-v5"})
    assert EXTRA in _one_sentence(info)


def test_gym_era_atari_ids_name_the_ale_id_to_use(monkeypatch):
    """``PongNoFrameskip-v4`` (unregistered, or registered by an ale_py imported for another
    config, where it would train on raw frames without the protocol) and ``Pong-v5`` name
    ``ALE/Pong-v5``; without ale_py only the NoFrameskip/Deterministic forms are recognised."""
    pytest.importorskip("ale_py", reason="Atari is an optional extra")
    for env_id, game in [
        ("PongNoFrameskip-v4", "Pong"),
        ("Pong-v5", "Pong"),
        ("SpaceInvadersDeterministic-v4", "SpaceInvaders"),
        ("MontezumaRevenge-v4", "MontezumaRevenge"),
    ]:
        with pytest.raises(ConfigError) as info:
            _config({"id": env_id})
        assert f"use env.id ALE/{game}-v5" in _one_sentence(info)
    import ale_py

    gym.register_envs(ale_py)  # registers the gym-era ids too
    assert "BreakoutNoFrameskip-v4" in gym.registry
    with pytest.raises(ConfigError, match=r"'BreakoutNoFrameskip-v4' is a gym-era Atari id"):
        _config({"id": "BreakoutNoFrameskip-v4"})
    assert factory.atari_id_hint("CartPole-v1") is None  # not a game
    assert factory.atari_id_hint("Ant-v5") is None
    monkeypatch.setitem(sys.modules, "ale_py.roms", None)  # ale_py missing
    assert "ALE/Pong-v5" in factory.atari_id_hint("PongNoFrameskip-v4")
    assert factory.atari_id_hint("Pong-v5") is None


# -- the config block ----------------------------------------------------------------------


def test_ale_ids_get_the_standard_protocol_and_other_ids_none():
    pytest.importorskip("ale_py", reason="Atari is an optional extra")
    atari = EnvConfig(id="ALE/Breakout-v5").atari
    # The published protocol (Mnih et al. 2015; sticky actions of Machado et al. 2018).
    assert (atari.frame_skip, atari.screen_size, atari.frame_stack, atari.noop_max) == (
        4,
        84,
        4,
        30,
    )
    assert atari.repeat_action_probability == 0.25
    assert atari.clip_rewards is True and atari.terminal_on_life_loss is False
    assert EnvConfig(id="CartPole-v1").atari is None
    # The resolved config records the block, so a resumed run makes the same env.
    saved = _config({"id": "ALE/Breakout-v5", "atari": {"noop_max": 0}}).to_dict()
    assert saved["env"]["atari"]["noop_max"] == 0 and saved["env"]["atari"]["frame_skip"] == 4


@pytest.mark.parametrize(
    ("atari", "message"),
    [
        ({"frame_skip": 0}, "env.atari.frame_skip"),
        ({"frame_skip": 17}, "env.atari.frame_skip"),
        ({"screen_size": 35}, "env.atari.screen_size"),
        ({"frame_stack": 0}, "env.atari.frame_stack"),
        ({"noop_max": -1}, "env.atari.noop_max"),
        ({"repeat_action_probability": 1.0}, "env.atari.repeat_action_probability"),
        ({"repeat_action_probability": -0.1}, "env.atari.repeat_action_probability"),
        ({"sticky": 0.0}, "env.atari.sticky"),
    ],
)
def test_atari_values_out_of_range_are_one_sentence(atari, message):
    pytest.importorskip("ale_py", reason="Atari is an optional extra")
    with pytest.raises(ConfigError) as info:
        _config({"id": "ALE/Pong-v5", "atari": atari})
    assert message in _one_sentence(info)


def test_atari_combinations_that_make_no_sense_are_refused():
    pytest.importorskip("ale_py", reason="Atari is an optional extra")
    with pytest.raises(ConfigError) as info:
        _config({"id": "CartPole-v1", "atari": {}}, {"type": "dqn"})
    assert "env.atari applies to ALE/ ids only" in _one_sentence(info)
    with pytest.raises(ConfigError) as info:
        _config({"id": "ALE/Pong-v5", "kwargs": {"frameskip": 4}})
    assert "env.atari.frame_skip" in _one_sentence(info)
    with pytest.raises(ConfigError) as info:
        _config({"id": "ALE/Pong-v5", "kwargs": {"repeat_action_probability": 0.0}})
    assert "env.atari.repeat_action_probability" in _one_sentence(info)
    with pytest.raises(ConfigError) as info:  # the frame replay would store stacks as frames
        _config({"id": "ALE/Pong-v5"}, {"type": "dqn", "frame_stack": 1})
    assert "agent.frame_stack (1) must equal env.atari.frame_stack (4)" in _one_sentence(info)
    _config({"id": "ALE/Pong-v5", "atari": {"frame_stack": 1}}, {"type": "dqn"})  # agrees


def test_the_env_is_the_protocol_stack():
    pytest.importorskip("ale_py", reason="Atari is an optional extra")
    config = EnvConfig(id="ALE/Pong-v5", atari=AtariConfig(screen_size=42, frame_stack=3))
    env = factory.make_env(config)
    assert env.observation_space.shape == (3, 42, 42)
    assert env.observation_space.dtype == np.uint8
    base = env.unwrapped
    assert base._frameskip == 1  # AtariPreprocessing skips frames, ALE none
    assert base.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (3, 42, 42)
    env.close()


# -- the learning signal: a fake game with known rewards and lives -------------------------

K = 3
# (reward, lives after the step, game over) per step; two games.
SCRIPT = [
    [(0, 3, False), (5, 3, False), (0, 2, False), (-3, 2, False), (1, 2, False), (0, 1, False),
     (0, 1, False), (2, 1, False), (0, 0, True)],
    [(7, 3, False), (0, 2, False), (-1, 1, False), (0, 0, True)],
]  # fmt: skip


class ScriptedGame(gym.Env):
    """Frames numbered by a global counter (a 1×1 image holding the frame's number), rewards
    and lives from :data:`SCRIPT`, one game per reset."""

    observation_space = gym.spaces.Box(0, 255, (1, 1), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self.game = -1
        self.t = 0
        self.frame = 0

    def _obs(self) -> np.ndarray:
        self.frame += 1
        return np.full((1, 1), self.frame, np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.game, self.t = self.game + 1, 0
        return self._obs(), {"lives": 3}

    def step(self, action):
        reward, lives, over = SCRIPT[self.game][self.t]
        self.t += 1
        return self._obs(), float(reward), over, False, {"lives": lives}


def _signal_env(life_loss: bool, clip: bool = True) -> gym.Env:
    stacked = gym.wrappers.FrameStackObservation(ScriptedGame(), stack_size=K)
    return AtariLearningSignal(stacked, clip_rewards=clip, terminal_on_life_loss=life_loss,
                               frame_stack=K)  # fmt: skip


def _reference(game: list, first_frame: int, life_loss: bool):
    """Per step: (game reward, learned reward, learned terminated, returned stack, successor
    stack) written out from the script: a stack holds frames max(t − j, start) for j = K−1…0,
    where start is the frame that began the learning episode."""
    rows, start, lives = [], first_frame, 3
    for i, (reward, new_lives, over) in enumerate(game):
        frame = first_frame + i + 1

        def stack(begin: int, newest: int = frame) -> list[int]:
            return [max(newest - j, begin) for j in range(K - 1, -1, -1)]

        lost = life_loss and new_lives < lives and not over
        successor = stack(start)
        if lost:
            start = frame
        rows.append((reward, float(np.sign(reward)), over or lost, stack(start), successor))
        lives = new_lives
    return rows


@pytest.mark.parametrize("life_loss", [False, True])
def test_the_game_score_is_reported_and_the_learning_signal_is_beside_it(life_loss):
    env = _signal_env(life_loss)
    first = 0
    for game in SCRIPT:
        obs, _ = env.reset()
        first += 1
        assert obs.ravel().tolist() == [first] * K
        rows = _reference(game, first, life_loss)
        for (reward, learned, term, stack, successor), (_, _, over) in zip(rows, game, strict=True):
            obs, r, terminated, _, info = env.step(0)
            assert r == reward  # the unclipped score
            assert terminated == over  # the game's episode: to game over only
            assert info[LEARN_REWARD] == learned
            assert info[LEARN_TERMINATED] == term
            assert obs.ravel().tolist() == stack
            got_reward, got_next, got_term = learning_signal_single(r, obs, terminated, info)
            assert (got_reward, got_term) == (learned, term)
            assert np.asarray(got_next).ravel().tolist() == successor
        first += len(game)
        assert terminated  # the game's episode ends only at game over


def test_a_life_lost_at_a_truncation_keeps_the_true_successor():
    """The time limit ends the game at the step that loses a life: the returned observation
    is the episode's last (the vector env's final_obs), not a restarted stack, and the
    learner still sees the life loss as terminal."""

    def make() -> gym.Env:
        limited = gym.wrappers.TimeLimit(ScriptedGame(), max_episode_steps=3)
        stacked = gym.wrappers.FrameStackObservation(limited, stack_size=K)
        return AtariLearningSignal(stacked, terminal_on_life_loss=True, frame_stack=K)

    vec = gym.vector.SyncVectorEnv([make], autoreset_mode=AutoresetMode.SAME_STEP)
    vec.reset()
    for _ in range(3):  # SCRIPT[0][2] loses a life (3 → 2) at the time limit
        next_obs, rewards, terminated, truncated, infos = vec.step(np.zeros(1, np.int64))
        real_next = infos["final_obs"][0][None] if truncated[0] else next_obs
        learned = learning_signal_vector(rewards, real_next, terminated, infos)
    assert truncated[0] and not terminated[0] and learned[2][0]
    assert learned[1][0].ravel().tolist() == [2, 3, 4]  # the last K frames, not restarted


def test_game_over_ends_the_env_episode_and_life_loss_never_does():
    env = _signal_env(life_loss=True)
    env.reset()
    ends = [env.step(0)[2] for _ in SCRIPT[0]]
    assert ends == [over for _, _, over in SCRIPT[0]]
    assert sum(r for r, _, _ in SCRIPT[0]) == 5  # the score a driver sums: unclipped


def test_unclipped_learning_rewards_when_clipping_is_off():
    env = _signal_env(life_loss=False, clip=False)
    env.reset()
    assert [env.step(0)[4][LEARN_REWARD] for _ in SCRIPT[0]] == [r for r, _, _ in SCRIPT[0]]


def test_the_vector_hook_reads_the_finished_envs_signal_from_final_info():
    """Same-step autoreset: a finished env's info entry is its reset's; its learning signal
    is in final_info, and its successor is final_obs (which the driver puts in)."""
    vec = gym.vector.SyncVectorEnv(
        [lambda: _signal_env(True), lambda: _signal_env(False)],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )
    vec.reset()
    refs = [_reference(SCRIPT[0], 1, True), _reference(SCRIPT[0], 1, False)]
    for t in range(len(SCRIPT[0])):
        obs, rewards, terminated, _, infos = vec.step(np.zeros(2, np.int64))
        real_next = obs.copy()
        for i in np.flatnonzero(terminated):
            real_next[i] = infos["final_obs"][i]
        learned, successor, term = learning_signal_vector(rewards, real_next, terminated, infos)
        for i, ref in enumerate(refs):
            reward, want_reward, want_term, _, want_next = ref[t]
            assert rewards[i] == reward
            assert learned[i] == want_reward and term[i] == want_term
            assert successor[i].ravel().tolist() == want_next
    plain = (np.zeros(2), np.zeros((2, 1)), np.zeros(2, bool))
    assert learning_signal_vector(*plain, {}) == plain  # other envs: unchanged


def test_the_frame_replay_accepts_a_life_loss_stream():
    """The stack that starts at a lost life is padded as after a reset, so the frame replay
    stores the stream and rebuilds exactly the stacks the agent acted on."""
    from rlsoft.rl.frame_replay import FrameReplayBuffer

    env = _signal_env(life_loss=True)
    buffer = FrameReplayBuffer(64, (K, 1, 1), frame_stack=K)
    seen = []
    for _ in SCRIPT:
        obs, _ = env.reset()
        done = False
        while not done:
            next_obs, reward, terminated, truncated, info = env.step(0)
            learned = learning_signal_single(reward, next_obs, terminated, info)
            buffer.add(obs[None], 0, learned[0], learned[1][None], learned[2], truncated)
            seen.append((obs, learned[1]))
            obs, done = next_obs, terminated
    batch = buffer.gather(np.arange(len(seen)))
    for i, (obs, successor) in enumerate(seen):
        np.testing.assert_array_equal(batch.obs[i], obs)
        np.testing.assert_array_equal(batch.next_obs[i], successor)


# -- ALE determinism: episodes replay from the env's generator -----------------------------


def test_ale_episodes_replay_exactly_with_sticky_actions():
    """Sticky actions draw from ALE's own generator, which rlsoft reseeds from np_random at
    every reset: a snapshot taken after unseeded autoresets replays into fresh copies that
    then step identically (what exact resume needs)."""
    pytest.importorskip("ale_py", reason="Atari is an optional extra")
    config = EnvConfig(
        id="ALE/Breakout-v5",
        num_envs=2,
        max_episode_steps=120,  # emulator frames: 30 agent steps, so episodes restart
        atari=AtariConfig(screen_size=36, noop_max=10, terminal_on_life_loss=True),
    )

    def vector() -> gym.vector.VectorEnv:
        return factory.make_vector_env(config, wrap=EpisodeRecorder)

    original, restored = vector(), vector()
    original.reset(seed=7)
    actions = np.random.default_rng(0)
    resets = 0
    for _ in range(70):
        _, _, terminated, truncated, _ = original.step(actions.integers(4, size=2))
        resets += int(np.sum(terminated | truncated))
    assert resets >= 2, "no unseeded reset was exercised"
    current = original.step(actions.integers(4, size=2))[0]
    snapshots = snapshot_vector_env(original)
    observations = restore_vector_env(restored, snapshots)
    np.testing.assert_array_equal(np.stack(observations), current)
    for _ in range(60):
        a = actions.integers(4, size=2)
        want, got = original.step(a), restored.step(a)
        for x, y in zip(want[:4], got[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        learned_want = learning_signal_vector(want[1], want[0], want[2], want[4])
        learned_got = learning_signal_vector(got[1], got[0], got[2], got[4])
        for x, y in zip(learned_want, learned_got, strict=True):
            np.testing.assert_array_equal(x, y)
    original.close()
    restored.close()
