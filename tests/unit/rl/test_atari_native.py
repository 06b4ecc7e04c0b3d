"""ale-py's native vector env under rlsoft's Atari protocol: the same observations and
learning signal as the Gymnasium wrapper stack, episodes that depend on their seed and
actions only, and snapshots that replay exactly (exact resume)."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("ale_py.vector_env", reason="Atari is an optional extra")

import agents  # noqa: F401 - registers the agents
from rlsoft.errors import ConfigError, RlsoftError
from rlsoft.rl.envs import atari_native
from rlsoft.rl.envs.atari import (
    LEARN_FINAL_OBS,
    LEARN_REWARD,
    LEARN_TERMINATED,
)
from rlsoft.rl.envs.atari_native import NativeAtariVectorEnv
from rlsoft.rl.envs.factory import make_env, make_vector_env, uses_native_atari
from rlsoft.rl.envs.state import EpisodeRecorder, restore_vector_env, snapshot_vector_env
from rlsoft.run.config import AtariConfig, EnvConfig, validate_config

BREAKOUT = "ALE/Breakout-v5"
DQN = {"type": "dqn"}
EPISODE_STATISTICS = [{"path": "gymnasium.wrappers:RecordEpisodeStatistics"}]


def _native(
    num_envs: int = 2, threads: int = 1, game: str = "breakout", **atari
) -> NativeAtariVectorEnv:
    return NativeAtariVectorEnv(
        game, num_envs, AtariConfig(**atari), num_threads=threads, max_episode_frames=4000
    )


def _play(env, actions: np.ndarray, seed: int = 3) -> list:
    """Every step's (obs, reward, terminated, truncated) and learning signal."""
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out += [obs, reward, terminated, truncated, info[LEARN_REWARD], info[LEARN_TERMINATED]]
    return out


def _equal(a: list, b: list) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


# -- the same protocol as the Gymnasium stack ------------------------------------------------


@pytest.mark.parametrize("life_loss", [False, True])
def test_observations_and_learning_signal_equal_the_gymnasium_stacks(life_loss):
    """With the emulator deterministic (no sticky actions, no no-op starts) both backends play
    the same game for the same actions: the native env's stacks, rewards and learning signal
    equal those of Gymnasium's AtariPreprocessing + FrameStackObservation + rlsoft's
    AtariLearningSignal, byte for byte, lost lives (Breakout loses its first within about 30
    random steps), game overs and the games after them included."""
    atari = {"noop_max": 0, "repeat_action_probability": 0.0, "terminal_on_life_loss": life_loss}
    native = _native(num_envs=1, **atari)
    gym_env = make_env(EnvConfig(id=BREAKOUT, atari=atari))
    actions = np.random.default_rng(0).integers(4, size=3000)
    obs, _ = native.reset(seed=0)
    reference, _ = gym_env.reset(seed=0)
    np.testing.assert_array_equal(obs[0], reference)
    lives_lost = games = 0
    for a in actions:
        obs, reward, terminated, _, info = native.step(np.array([a]))
        ref_obs, ref_reward, ref_terminated, _, ref_info = gym_env.step(int(a))
        assert reward[0] == ref_reward and terminated[0] == ref_terminated
        assert info[LEARN_REWARD][0] == ref_info[LEARN_REWARD]
        assert info[LEARN_TERMINATED][0] == ref_info[LEARN_TERMINATED]
        assert (LEARN_FINAL_OBS in ref_info) == bool(
            LEARN_FINAL_OBS in info and info[f"_{LEARN_FINAL_OBS}"][0]
        )
        if LEARN_FINAL_OBS in ref_info:
            lives_lost += 1
            np.testing.assert_array_equal(info[LEARN_FINAL_OBS][0], ref_info[LEARN_FINAL_OBS])
        if ref_terminated:  # the native env started the next game in the same step
            games += 1
            np.testing.assert_array_equal(info["final_obs"][0], ref_obs)
            ref_obs, _ = gym_env.reset()
            if games == 3:
                break
        np.testing.assert_array_equal(obs[0], ref_obs)
    assert games == 3
    assert lives_lost >= (1 if life_loss else 0)
    native.close()
    gym_env.close()


def test_a_finished_copy_starts_its_next_episode_in_the_same_step():
    """Same-step autoreset as Gymnasium's: the returned stack starts the next episode (its
    first frame repeated), ``final_obs`` holds the last one, and the game's score is
    unclipped (Space Invaders' aliens are worth 5 to 30) while the learning reward is its
    sign."""
    env = _native(num_envs=2, game="space_invaders")
    env.reset(seed=1)
    rng = np.random.default_rng(1)
    finished, scores = 0, []
    for _ in range(1500):
        obs, reward, terminated, truncated, info = env.step(rng.integers(6, size=2))
        scores += list(reward[reward != 0])
        np.testing.assert_array_equal(info[LEARN_REWARD], np.sign(reward))
        for i in np.flatnonzero(terminated | truncated):
            finished += 1
            assert info["_final_obs"][i] and info["final_obs"][i].shape == obs[i].shape
            assert not np.array_equal(info["final_obs"][i], obs[i])
            assert (obs[i] == obs[i, -1]).all()  # a new stack: the reset frame repeated
            assert info["final_info"][LEARN_TERMINATED][i] == terminated[i]
    assert finished >= 2
    assert max(scores) >= 5
    env.close()


@pytest.mark.parametrize("backend", ["native", "gymnasium"])
@pytest.mark.parametrize(
    "limit",
    [{"max_episode_steps": 400}, {"kwargs": {"max_num_frames_per_episode": 400}}],
    ids=["max_episode_steps", "ale_max_num_frames_per_episode"],
)
def test_an_episode_is_truncated_at_the_frame_limit_of_the_config(limit, backend):
    """``env.max_episode_steps`` and ALE's ``max_num_frames_per_episode`` count emulator
    frames on both backends: 400 frames are 100 agent steps of 4 frames (with no no-op
    starts), and the native env checks at the end of the agent step."""
    config = EnvConfig(id=BREAKOUT, num_envs=2, atari={"noop_max": 0, "backend": backend}, **limit)
    env = make_vector_env(config)
    assert isinstance(env, NativeAtariVectorEnv) == (backend == "native")
    env.reset(seed=0)
    for step in range(1, 101):
        _, _, terminated, truncated, _ = env.step(np.array([1, 1]))  # FIRE: no game over
        assert not terminated.any()
        assert truncated.all() == (step == 100)
    env.close()


# -- episodes depend on their seed and actions only -----------------------------------------


def test_the_same_seed_gives_the_same_episodes_on_any_number_of_threads():
    actions = np.random.default_rng(2).integers(4, size=(200, 3))
    one = _play(_native(num_envs=3, threads=1), actions)
    three = _play(_native(num_envs=3, threads=3), actions)
    other_seed = _play(_native(num_envs=3, threads=1), actions, seed=4)
    assert _equal(one, three)
    assert not _equal(one, other_seed)


def test_copies_get_different_episodes_and_sticky_actions_vary_with_the_seed():
    """Each copy draws its own episode seeds: identical actions give different games."""
    env = _native(num_envs=2)
    env.reset(seed=0)
    obs = None
    for a in np.random.default_rng(0).integers(4, size=60):
        obs, *_ = env.step(np.array([a, a]))
    assert not np.array_equal(obs[0], obs[1])
    env.close()


# -- exact resume ----------------------------------------------------------------------------


@pytest.mark.parametrize("life_loss", [False, True])
@pytest.mark.parametrize("reseed_after", [120, atari_native.RESEED_AFTER])
def test_a_snapshot_restores_a_fresh_env_to_continue_exactly(life_loss, reseed_after, monkeypatch):
    """Records spanning several episodes (unseeded resets replayed), and with a small
    ``RESEED_AFTER`` records of different lengths (the replay staggers the copies), are
    replayed into a fresh env, which then returns exactly what the original returns."""
    monkeypatch.setattr(atari_native, "RESEED_AFTER", reseed_after)
    config = EnvConfig(
        id=BREAKOUT,
        num_envs=3,
        max_episode_steps=3000,
        atari={"terminal_on_life_loss": life_loss, "backend": "native"},
    )
    rng = np.random.default_rng(5)
    env = make_vector_env(config)
    obs, _ = env.reset(seed=11)
    for _ in range(400):
        obs, *_ = env.step(rng.integers(4, size=3))
    snapshots = snapshot_vector_env(env)
    lengths = [len(s["actions"]) for s in snapshots]
    if reseed_after < 400:
        assert len(set(lengths)) == 3, lengths  # reseeded at different steps
    else:
        assert lengths == [400, 400, 400]  # each record holds a few episodes (~150 steps)
    fresh = make_vector_env(config)
    restored = restore_vector_env(fresh, snapshots)
    np.testing.assert_array_equal(np.stack(restored), obs)
    actions = rng.integers(4, size=(300, 3))
    for a in actions:
        want, got = env.step(a), fresh.step(a)
        for x, y in zip(want[:4], got[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        for key in (LEARN_REWARD, LEARN_TERMINATED, "lives"):
            np.testing.assert_array_equal(want[4][key], got[4][key])
    assert snapshot_vector_env(fresh) == snapshot_vector_env(env)
    env.close()
    fresh.close()


def test_a_copy_whose_episode_was_too_long_to_record_starts_it_over(monkeypatch):
    monkeypatch.setattr(atari_native, "MAX_RECORDED_ACTIONS", 5)
    env = _native(num_envs=2)
    first, _ = env.reset(seed=0)
    for _ in range(8):
        env.step(np.array([1, 1]))
    snapshots = env.rlsoft_snapshot_all()
    assert [s["actions"] for s in snapshots] == [None, None]
    fresh = _native(num_envs=2)
    restored = fresh.rlsoft_restore_all(snapshots)
    np.testing.assert_array_equal(np.stack(restored), first)  # the same episodes, from the start
    assert [s["actions"] for s in fresh.rlsoft_snapshot_all()] == [[], []]


def test_a_snapshot_of_the_wrong_size_or_format_is_refused():
    env = _native(num_envs=2)
    env.reset(seed=0)
    snapshots = env.rlsoft_snapshot_all()
    with pytest.raises(ValueError, match="saved state has 1 environments"):
        _native(num_envs=2).rlsoft_restore_all(snapshots[:1])
    with pytest.raises(ValueError, match="not an episode record"):
        _native(num_envs=2).rlsoft_restore_all([{"format": "x"}] * 2)


def test_records_of_the_gymnasium_backend_name_the_setting_that_resumes_them():
    """A run checkpointed on the Gymnasium stack (e.g. before auto chose the native env)
    is refused in one sentence that says how to resume it, not replayed into other games."""
    config = EnvConfig(id=BREAKOUT, num_envs=2, atari={"backend": "gymnasium"})
    env = make_vector_env(config, wrap=EpisodeRecorder)
    env.reset(seed=0)
    env.step(np.array([1, 1]))
    with pytest.raises(RlsoftError) as info:
        _native(num_envs=2).rlsoft_restore_all(snapshot_vector_env(env))
    assert "env.atari.backend: gymnasium" in str(info.value) and "\n" not in str(info.value)
    env.close()


# -- choosing the backend --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "native"),
    [
        ({"num_envs": 1}, True),
        ({"num_envs": 4}, True),
        ({"num_envs": 4, "kwargs": {"full_action_space": True}}, True),
        ({"num_envs": 4, "kwargs": {"mode": 0}}, False),
        # null is the game's default, which the native env plays
        ({"num_envs": 2, "kwargs": {"mode": None, "difficulty": None}}, True),
        (
            {"num_envs": 4, "wrappers": EPISODE_STATISTICS},
            False,
        ),
        ({"num_envs": 4, "atari": {"backend": "gymnasium"}}, False),
        ({"num_envs": 2, "vectorization": "async"}, False),
        ({"num_envs": 1, "atari": {"backend": "native"}}, True),
        ({"num_envs": 1, "kwargs": {"max_num_frames_per_episode": 400}}, True),
    ],
)
def test_auto_picks_the_native_env_when_it_can(env, native):
    config = EnvConfig(id=BREAKOUT, **env)
    assert uses_native_atari(config) is native
    made = make_vector_env(config)
    assert isinstance(made, NativeAtariVectorEnv) is native
    made.close()


@pytest.mark.parametrize(
    ("env", "what"),
    [
        ({"kwargs": {"mode": 0}}, "env.kwargs.mode"),
        ({"wrappers": EPISODE_STATISTICS}, "env.wrappers"),
        ({"vectorization": "async"}, "env.vectorization: async"),
    ],
)
def test_asking_the_native_env_for_what_only_gymnasium_does_is_one_sentence(env, what):
    with pytest.raises(ConfigError) as info:
        validate_config(
            {
                "env": {"id": BREAKOUT, "atari": {"backend": "native"}, **env},
                "agent": {"type": "dqn"},
            }
        )
    text = str(info.value)
    assert "\n" not in text
    assert what in text and "env.atari.backend: gymnasium" in text


@pytest.mark.parametrize(
    "env",
    [
        {"atari": {"backend": "gymnasium", "threads": 2}},
        {"atari": {"threads": 2}, "vectorization": "async", "num_envs": 2},
    ],
)
def test_threads_for_the_gymnasium_stack_are_refused(env):
    with pytest.raises(ConfigError) as info:
        validate_config({"env": {"id": BREAKOUT, **env}, "agent": {"type": "dqn"}})
    assert "remove env.atari.threads" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("actions", [[4, 0], [-1, 0], [1.0, 0.0], [0], [[0, 1]], ["a", "b"]])
def test_an_action_outside_the_set_is_refused_instead_of_hanging(actions):
    """ale-py's native env would wait forever on an action outside the game's set."""
    env = _native(num_envs=2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions must be 2 integers in 0\.\.3"):
        env.step(np.array(actions))
    env.step(np.array([1, 3], dtype=np.int32))  # int32 is fine
    env.close()


def test_final_info_keeps_the_finished_episodes_lives():
    """Gymnasium's layout: ``final_info`` holds the step that ended the game (0 lives left),
    the top-level info the new episode's (5 in Breakout)."""
    env = _native(num_envs=2)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(2000):
        _, _, terminated, _, info = env.step(rng.integers(4, size=2))
        if terminated.any():
            i = int(np.flatnonzero(terminated)[0])
            assert info["final_info"]["lives"][i] == 0 and info["lives"][i] == 5
            break
    else:
        pytest.fail("no game over in 2,000 random steps")
    env.close()


def test_close_stops_the_emulator_threads():
    import threading

    before = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else None
    if before is None:
        pytest.skip("counts threads through /proc")
    env = _native(num_envs=2, threads=2)
    env.reset(seed=0)
    assert len(os.listdir("/proc/self/task")) > before
    env.close()
    assert len(os.listdir("/proc/self/task")) == before, threading.enumerate()


def test_the_full_action_space_reaches_the_native_env():
    env = make_vector_env(EnvConfig(id=BREAKOUT, num_envs=2, kwargs={"full_action_space": True}))
    assert env.single_action_space.n == 18
    env.close()


def test_making_atari_envs_prints_no_ale_banner():
    """ALE's version banner (printed to stderr by every emulator it starts) stays out of a
    command's output, on both backends; a fresh process, since the log level is global."""
    import subprocess
    import sys

    code = (
        "from rlsoft.run.config import EnvConfig\n"
        "from rlsoft.rl.envs.factory import make_env, make_vector_env\n"
        "make_vector_env(EnvConfig(id='ALE/Pong-v5', num_envs=2)).reset(seed=0)\n"
        "make_env(EnvConfig(id='ALE/Pong-v5')).reset(seed=0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "A.L.E" not in done.stderr and "Stella" not in done.stderr, done.stderr


@pytest.mark.parametrize("value", ["maybe", "false", 1, None])
def test_full_action_space_must_be_a_boolean(value):
    with pytest.raises(ConfigError, match=r"env\.kwargs\.full_action_space must be true or"):
        validate_config(
            {"env": {"id": BREAKOUT, "kwargs": {"full_action_space": value}}, "agent": DQN}
        )


def test_a_minimal_atari_config_gives_the_agent_the_envs_frame_stack():
    """Neither frame_stack written: the agent takes the env's (4), so ``env: {id: ALE/…}``
    with a DQN trains instead of being refused for a mismatch the user never wrote."""
    config = validate_config({"env": {"id": BREAKOUT}, "agent": {"type": "dqn"}})
    assert config.agent_config().frame_stack == 4
    config = validate_config(
        {"env": {"id": BREAKOUT, "atari": {"frame_stack": 2}}, "agent": {"type": "dqn"}}
    )
    assert config.agent_config().frame_stack == 2
    with pytest.raises(ConfigError, match=r"agent.frame_stack \(3\) must equal"):
        validate_config({"env": {"id": BREAKOUT}, "agent": {"type": "dqn", "frame_stack": 3}})


def test_with_the_frame_replay_off_an_atari_agent_needs_no_frame_stack():
    """The replay then stores each (4, 84, 84) stack whole and nothing reads frame_stack: it
    is not filled in from the env, and a written one is dropped with null (the shipped
    Atari configs write 4), rather than having to claim a stack of 1."""
    off = {"type": "dqn", "frame_replay": "off"}
    config = validate_config({"env": {"id": BREAKOUT}, "agent": off})
    assert config.agent_config().frame_stack == 1 and "frame_stack" not in config.agent
    config = validate_config({"env": {"id": BREAKOUT}, "agent": {**off, "frame_stack": None}})
    assert config.agent_config().frame_stack == 1
    with pytest.raises(ConfigError, match=r"frame_replay is off: .* \(set it to null\)"):
        validate_config({"env": {"id": BREAKOUT}, "agent": {**off, "frame_stack": 4}})


@pytest.mark.parametrize("backend", ["native", "gymnasium"])
def test_the_frame_limit_counts_the_no_op_start_on_both_backends(backend):
    """``env.max_episode_steps`` counts emulator frames from the reset, the 1 to 30 no-op
    frames included, on both backends: a game truncated at 200 frames lasts (200 − no-ops)/4
    agent steps (the native env ends it at the agent step that reaches the limit)."""
    config = EnvConfig(id=BREAKOUT, num_envs=2, max_episode_steps=200, atari={"backend": backend})
    env = make_vector_env(config, wrap=EpisodeRecorder)
    env.reset(seed=0)
    lengths, steps = [], np.zeros(2, dtype=int)
    while len(lengths) < 6:
        _, _, terminated, truncated, info = env.step(np.array([1, 1]))  # FIRE: no game over
        steps += 1
        for i in np.flatnonzero(truncated):
            assert not terminated[i]
            if backend == "native":
                assert 200 <= info["final_info"]["episode_frame_number"][i] < 204
            lengths.append(int(steps[i]))
            steps[i] = 0
    assert all(43 <= n <= 50 for n in lengths), lengths  # 30 no-ops at most: ceil(170/4)
    assert len(set(lengths)) > 1  # the no-op count varies
    env.close()


def test_default_threads_follow_the_copies_the_cpus_and_omp_num_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cpus = len(os.sched_getaffinity(0))
    assert atari_native.native_threads(1, None) == 1
    assert atari_native.native_threads(64, None) == cpus
    assert atari_native.native_threads(8, 3) == 3  # given: as given
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as in rlsoft compare's workers
    assert atari_native.native_threads(8, None) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    assert atari_native.native_threads(1, None) == 1


def test_no_op_starts_take_0_to_noop_max_minus_1_frames_natively_and_1_to_noop_max_on_gymnasium():
    """The two backends draw an episode's no-op start differently (README's env.atari table):
    ale-py's native env takes 0 … noop_max − 1 one-frame no-ops, Gymnasium's
    AtariPreprocessing 1 … noop_max (as Baselines' NoopResetEnv); counted here from the
    emulator's frame number right after a reset."""
    drawn = {}
    for noop_max, resets in ((1, 1), (30, 2)):
        native = NativeAtariVectorEnv("breakout", 8, AtariConfig(noop_max=noop_max))
        frames = set()
        for seed in range(resets):
            _, info = native.reset(seed=seed)
            frames.update(int(f) for f in info["episode_frame_number"])
        native.close()
        stack = make_env(EnvConfig(id="ALE/Breakout-v5", atari={"noop_max": noop_max}))
        stack.reset(seed=0)
        gymnasium_frames = set()
        for _ in range(8 * resets):
            _, info = stack.reset()
            gymnasium_frames.add(int(info["episode_frame_number"]))
        stack.close()
        drawn[noop_max] = frames, gymnasium_frames
    assert drawn[1] == ({0}, {1})
    native_30, gymnasium_30 = drawn[30]
    assert native_30 <= set(range(30)) and gymnasium_30 <= set(range(1, 31))
    assert len(native_30) > 5 and len(gymnasium_30) > 5
