"""ale-py's native vector environment under rlsoft's Atari protocol, with exact resume.

``ale_py.vector_env.AtariVectorEnv`` steps its copies of the emulator in C++ threads and does
frame skipping with max-pooling, the 84×84 grayscale resize and no-op starts there too.
:class:`NativeAtariVectorEnv` drives it so that what the agent sees, learns from and reports
is the same as on the Gymnasium path (:mod:`rlsoft.rl.envs.atari`):

* the native env runs with ``stack_num=1``, unclipped rewards, no life-loss episodes and no
  fire reset; the frame stack, reward clipping and the life-loss learning signal are done here,
  with the same ``info`` keys as :class:`~rlsoft.rl.envs.atari.AtariLearningSignal` (the stack
  restarts at a lost life when ``terminal_on_life_loss`` is set, and the true successor goes
  to ``info[LEARN_FINAL_OBS]``), so the reported score is the game's;
* its resize is OpenCV's area interpolation like ``AtariPreprocessing``'s: for the same
  emulator frames both give the same bytes (``tests/unit/rl/test_atari_native.py``);
* episodes end and restart the Gymnasium way (same-step autoreset, the last observation in
  ``info["final_obs"]``), but each copy is reset by this class, not by the native env's own
  autoreset, so that what a copy does is a function of recorded data. A copy's emulator is
  reseeded (``reset(seed=..., options={"reset_mask": ...})``: sticky actions and no-op
  starts) with a seed drawn from that copy's own numpy generator at the start and then at
  the first episode end after :data:`RESEED_AFTER` actions; in between, a finished episode
  is followed by an unseeded reset, which continues the emulator's generators. From a
  reseeding on, a copy's play is a function of the seed and the actions alone, whatever the
  copy did before and however many threads run (checked in the tests), which is what exact
  resume needs.

**Exact resume.** Like :class:`~rlsoft.rl.envs.state.EpisodeRecorder`, each copy keeps a
record: the state of its generator before the last seed was drawn and every action since
(the episode in progress and the few before it since that reseeding).
:meth:`NativeAtariVectorEnv.rlsoft_restore_all` brings a fresh env to the saved state by
replaying them; since the copies step together, a copy with a shorter record is reseeded
later (the replay ends for every copy at the same step), and copies waiting for their turn
take no-ops whose outcome their reseeding discards.

The differences from the Gymnasium path (the first two change no observation): the
episode's frame limit (``max_num_frames_per_episode``, 108,000 or ``env.max_episode_steps``)
is checked at the end of an agent step rather than at the exact frame; an episode's emulator
seed is drawn differently, so the same run seed gives other episodes on the two backends; and
ale-py draws the no-op start from 0 … noop_max − 1 one-frame no-ops where
``AtariPreprocessing`` draws from 1 … noop_max, so start states are distributed a little
differently (one frame earlier) on the native env.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from rlsoft.errors import RlsoftError
from rlsoft.rl.envs.atari import (
    LEARN_FINAL_OBS,
    LEARN_REWARD,
    LEARN_TERMINATED,
    AtariSettings,
)
from rlsoft.rl.envs.state import FORMAT, MAX_RECORDED_ACTIONS, generator_from_state

__all__ = [
    "DEFAULT_MAX_FRAMES",
    "NATIVE_MAKE_KEYWORDS",
    "RESEED_AFTER",
    "NativeAtariVectorEnv",
    "native_threads",
]

DEFAULT_MAX_FRAMES = 108_000
"""The ``-v5`` ids' episode limit in emulator frames (30 minutes of play at 60 Hz)."""

NATIVE_MAKE_KEYWORDS = frozenset({"full_action_space", "max_num_frames_per_episode"})
"""The ``env.kwargs`` of an ``ALE/`` id that the native env supports (its other options,
such as ``mode`` and ``difficulty``, exist only on the Gymnasium path)."""

RESEED_AFTER = 2_000
"""A copy's emulator is reseeded at the first episode end after this many recorded actions.
Reseeding costs ALE a reload of the ROM (Breakout: 68 ms, against 3.8 ms for an unseeded
reset and 0.24 ms for a step: the last line of ``python scripts/bench_atari_vector.py
--num-envs 1``, 2026-12-08, one core of an idle 2-core AMD EPYC), which made
episode-by-episode reseeding half as fast as ale-py alone on random play
(``scripts/bench_atari_vector.py``); a record then spans several episodes, and a resume replays
at most this many actions more than the episode in progress."""

NATIVE_FORMAT = "rlsoft.native-atari/1"
"""The records of this env: a copy's record spans episodes, unlike
:class:`~rlsoft.rl.envs.state.EpisodeRecorder`'s (``FORMAT``), so the two are told apart."""

_SEED_BOUND = 2**31  # ALE takes a non-negative 32-bit seed


def native_threads(num_envs: int, threads: int | None) -> int:
    """Emulator threads: ``threads`` if given, else one per copy up to the CPUs this process
    may run on, or up to ``OMP_NUM_THREADS`` where that is set (the usual limit of a
    process's threads; ``rlsoft compare`` sets it to 1 in its workers, which already use
    every core)."""
    if threads is not None:
        return int(threads)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    with contextlib.suppress(ValueError):  # unset or not a number: no limit
        cpus = min(cpus, int(os.environ.get("OMP_NUM_THREADS", "")))
    return max(1, min(int(num_envs), cpus))


class NativeAtariVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` copies of an ALE game in ale-py's C++ vector env (module docstring).

    :param game: the ROM name (``"breakout"``: ``gymnasium.spec("ALE/Breakout-v5").kwargs``).
    :param settings: the protocol (``env.atari``).
    :param max_episode_frames: emulator frames after which an episode is truncated.
    :param full_action_space: all 18 actions instead of the game's minimal set.
    :param num_threads: emulator threads (:func:`native_threads`).
    """

    def __init__(
        self,
        game: str,
        num_envs: int,
        settings: AtariSettings,
        *,
        max_episode_frames: int = DEFAULT_MAX_FRAMES,
        full_action_space: bool = False,
        num_threads: int = 1,
    ) -> None:
        try:
            from ale_py.vector_env import AtariVectorEnv
        except ImportError:
            raise RlsoftError(
                "env.atari.backend 'native' needs ale-py's vector env (ale-py 0.12.1 or newer); "
                "install it with: pip install 'rlsoft[atari]'"
            ) from None
        self._native = AtariVectorEnv(
            game=game,
            num_envs=int(num_envs),
            num_threads=int(num_threads),
            # Its own limit counts the frames after the no-op start; the protocol's counts
            # them all (as the Gymnasium stack's TimeLimit does), which _advance checks: this
            # one is never reached first.
            max_num_frames_per_episode=int(max_episode_frames)
            + int(settings.noop_max)
            + 2 * int(settings.frame_skip),
            repeat_action_probability=float(settings.repeat_action_probability),
            full_action_space=bool(full_action_space),
            autoreset_mode=AutoresetMode.NEXT_STEP,  # never reached: this class resets
            img_height=int(settings.screen_size),
            img_width=int(settings.screen_size),
            grayscale=True,
            stack_num=1,
            frameskip=int(settings.frame_skip),
            maxpool=True,
            noop_max=int(settings.noop_max),
            episodic_life=False,
            life_loss_info=False,
            reward_clipping=False,
            use_fire_reset=False,
        )
        self.num_envs = int(num_envs)
        self.max_episode_frames = int(max_episode_frames)
        self.clip_rewards = bool(settings.clip_rewards)
        self.terminal_on_life_loss = bool(settings.terminal_on_life_loss)
        k, side = int(settings.frame_stack), int(settings.screen_size)
        self.single_observation_space = gym.spaces.Box(0, 255, (k, side, side), np.uint8)
        self.single_action_space = self._native.single_action_space
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, self.num_envs
        )
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}
        self._stacks = np.zeros((self.num_envs, k, side, side), dtype=np.uint8)
        self._lives = np.zeros(self.num_envs, dtype=np.int64)
        self._generators: list[np.random.Generator] = []
        self._starts: list[dict[str, Any]] = []
        self._actions: list[list[int] | None] = [[] for _ in range(self.num_envs)]
        self._all = np.arange(self.num_envs)

    # ------------------------------------------------------------------ the Gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode in every copy. ``seed`` seeds copy ``i``'s generator with
        ``SeedSequence([seed, i])``; without it the generators go on (fresh ones on first use)."""
        if options:
            raise ValueError(f"NativeAtariVectorEnv.reset takes no options, got {options}")
        if seed is not None or not self._generators:
            self._generators = [
                np.random.default_rng([seed, i]) if seed is not None else np.random.default_rng()
                for i in range(self.num_envs)
            ]
            self._starts = [{} for _ in range(self.num_envs)]
        info = self._reset_copies(self._all, first=True)
        return self._stacks.copy(), info

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One agent step of every copy; finished copies start their next episode in the same
        step (``info["final_obs"]``/``info["final_info"]`` hold the end of the last one)."""
        actions = self._checked_actions(actions)
        rewards, terminated, truncated, info = self._advance(actions, self._all)
        done = terminated | truncated
        if done.any():
            finished = np.flatnonzero(done)
            final_obs = np.empty(self.num_envs, dtype=object)
            for i in finished:
                final_obs[i] = self._stacks[i].copy()
            keys = [key for key in info if not key.startswith("_")]
            info["final_info"] = {key: info[key] for key in keys} | {f"_{k}": done for k in keys}
            info["_final_info"] = done
            info["final_obs"], info["_final_obs"] = final_obs, done
            # As in Gymnasium's same-step autoreset, a finished copy's info is its reset's.
            info.update(self._next_episodes(finished))
        return self._stacks.copy(), rewards, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        # The emulator threads stop when ale-py's interface is destroyed, not at its close().
        native, self._native = self._native, None
        if native is not None:
            native.close()
            del native

    def _checked_actions(self, actions: Any) -> np.ndarray:
        """``actions`` as one int64 per copy, each in the action set: ale-py's native env
        waits forever on an action outside it (ale-py 0.12.1), where ALE's Gymnasium env
        raises."""
        array = np.asarray(actions)
        n = int(self.single_action_space.n)
        if (
            array.shape not in ((self.num_envs,), (self.num_envs, 1))
            or array.dtype.kind not in "iu"
            or array.min(initial=0) < 0
            or array.max(initial=0) >= n
        ):
            raise ValueError(
                f"actions must be {self.num_envs} integers in 0..{n - 1}, one per copy; got "
                f"{np.array2string(array.ravel()[:8], separator=', ')} ({array.dtype}, shape "
                f"{array.shape})"
            )
        return array.astype(np.int64, copy=False).reshape(self.num_envs)

    # ------------------------------------------------------------------ internals

    def _next_episodes(self, finished: np.ndarray, *, replaying: bool = False) -> dict[str, Any]:
        """Start the next episode of each finished copy: reseeded (:meth:`_reset_copies`, a new
        record) once its record holds :data:`RESEED_AFTER` actions or was dropped as too long,
        else reset from where its emulator's generators stand (the record goes on). A replay
        only ever does the latter, as the recorded run did within a record."""
        fresh = [i for i in finished if not replaying and self._record_is_full(i)]
        going_on = [i for i in finished if i not in fresh]
        info: dict[str, Any] = {}
        if fresh:
            info = self._reset_copies(np.array(fresh))
        if going_on:
            info = self._reset_native(np.array(going_on), np.full(len(going_on), -1))
        return info  # the native env reports every copy's lives, reset or not

    def _record_is_full(self, copy: int) -> bool:
        taken = self._actions[copy]
        return taken is None or len(taken) >= RESEED_AFTER

    def _reset_copies(self, copies: np.ndarray, *, first: bool = False) -> dict[str, Any]:
        """Draw each copy's seed from its generator (remembering the generator's state before
        the draw), reset those copies of the emulator with it and start their records."""
        seeds = np.empty(len(copies), dtype=np.int64)
        for j, i in enumerate(copies):
            generator = self._generators[i]
            self._starts[i] = {"rng": generator.bit_generator.state}
            seeds[j] = generator.integers(_SEED_BOUND)
            self._actions[i] = []
        return self._reset_native(copies, seeds, first=first)

    def _reset_native(
        self, copies: np.ndarray, seeds: np.ndarray, *, first: bool = False
    ) -> dict[str, Any]:
        if first:  # partial resets need a full one before them
            frames, info = self._native.reset(seed=seeds)
        else:
            mask = np.zeros(self.num_envs, dtype=bool)
            mask[copies] = True
            frames, info = self._native.reset(seed=seeds, options={"reset_mask": mask})
        # FrameStackObservation's padding: the first frame fills the whole stack.
        self._stacks[copies] = frames[copies, -1:]
        self._lives[copies] = info["lives"][copies]
        return self._game_info(info)

    def _game_info(self, native_info: dict[str, Any]) -> dict[str, Any]:
        """The game's counters, as ALE's Gymnasium env reports them, for every copy."""
        every = np.ones(self.num_envs, dtype=bool)
        info: dict[str, Any] = {}
        for key in ("lives", "episode_frame_number", "frame_number"):
            info[key] = np.asarray(native_info[key], dtype=np.int64)
            info[f"_{key}"] = every
        return info

    def _advance(
        self, actions: np.ndarray, recorded: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step the emulators, push the new frames onto the stacks, record the actions of the
        ``recorded`` copies and compute the learning signal; resets nothing."""
        frames, rewards, terminated, truncated, native_info = self._native.step(actions)
        for i in recorded:
            taken = self._actions[i]
            if taken is not None:
                taken.append(int(actions[i]))
                if len(taken) > MAX_RECORDED_ACTIONS:
                    self._actions[i] = None  # too long to replay (state.EpisodeRecorder)
        stacks = self._stacks
        stacks[:, :-1] = stacks[:, 1:]
        stacks[:, -1] = frames[:, -1]
        rewards = np.asarray(rewards, dtype=np.float64)
        terminated = np.asarray(terminated, dtype=bool)
        info = self._game_info(native_info)
        lives = info["lives"]
        # The episode's frame limit, no-op start included (the Gymnasium stack's TimeLimit),
        # checked at the end of the agent step.
        over = info["episode_frame_number"] >= self.max_episode_frames
        truncated = (np.asarray(truncated, dtype=bool) | over) & ~terminated
        learn_terminated = terminated.copy()
        all_copies = np.ones(self.num_envs, dtype=bool)
        info |= {
            LEARN_REWARD: np.sign(rewards) if self.clip_rewards else rewards.copy(),
            f"_{LEARN_REWARD}": all_copies,
            LEARN_TERMINATED: learn_terminated,
            f"_{LEARN_TERMINATED}": all_copies,
        }
        if self.terminal_on_life_loss:
            life_lost = (lives < self._lives) & ~terminated
            learn_terminated |= life_lost
            restart = life_lost & ~truncated  # a truncated game's last stack stays its successor
            if restart.any():
                successors = np.empty(self.num_envs, dtype=object)
                for i in np.flatnonzero(restart):
                    successors[i] = stacks[i].copy()
                    stacks[i, :-1] = stacks[i, -1]  # the stack restarts as after a reset
                info[LEARN_FINAL_OBS], info[f"_{LEARN_FINAL_OBS}"] = successors, restart
        # A copy: the reset of a finished copy updates self._lives, not this step's info.
        self._lives = lives.copy()
        return rewards, terminated, truncated, info

    # ------------------------------------------------------------------ exact resume

    def rlsoft_snapshot_all(self) -> list[dict[str, Any]]:
        """Each copy's record, JSON-safe like :class:`~rlsoft.rl.envs.state.EpisodeRecorder`'s:
        its generator's state before the last seed was drawn and its actions since."""
        if not self._generators:
            raise RuntimeError("the environment has not been reset yet; nothing to snapshot")
        return [
            {
                "format": NATIVE_FORMAT,
                "start": self._starts[i],
                "actions": None if self._actions[i] is None else list(self._actions[i]),
            }
            for i in range(self.num_envs)
        ]

    def rlsoft_restore_all(self, snapshots: list[dict[str, Any]]) -> list[np.ndarray]:
        """Bring every copy to its recorded state by replaying its record; returns each copy's
        observation. A record without actions (an episode too long to record) starts over.

        The copies step together, so copy ``i`` with ``L_i`` recorded actions is reset at step
        ``L − L_i`` of the replay (``L`` the longest) and takes no-ops until then.
        """
        if len(snapshots) != self.num_envs:
            raise ValueError(
                f"saved state has {len(snapshots)} environments, but the vector env has "
                f"{self.num_envs}"
            )
        formats = {snapshot.get("format") for snapshot in snapshots}
        if formats == {FORMAT}:
            raise RlsoftError(
                "this checkpoint's Atari games were recorded by the Gymnasium backend, which "
                "the native backend cannot replay; set env.atari.backend: gymnasium in the "
                "run's config.yaml to resume it"
            )
        for snapshot in snapshots:
            if snapshot.get("format") != NATIVE_FORMAT or "rng" not in snapshot.get("start", {}):
                raise ValueError("not an episode record of rlsoft's native Atari env")
        self._generators = [generator_from_state(s["start"]["rng"]) for s in snapshots]
        self._starts = [{} for _ in range(self.num_envs)]
        replays = [list(s["actions"] or []) for s in snapshots]
        lengths = np.array([len(r) for r in replays])
        longest = int(lengths.max(initial=0))
        begins = longest - lengths
        placeholder = np.zeros(self.num_envs, dtype=np.int64)
        self._native.reset(seed=placeholder)  # partial resets need a full one first
        for t in range(longest + 1):
            starting = np.flatnonzero(begins == t)
            if starting.size:
                self._reset_copies(starting)
            if t == longest:
                break
            active = np.flatnonzero(begins <= t)
            actions = placeholder.copy()
            for i in active:
                actions[i] = replays[i][t - begins[i]]
            _, terminated, truncated, _ = self._advance(actions, active)
            ended = np.flatnonzero(terminated | truncated)
            ended = ended[begins[ended] <= t]  # copies still waiting are reset at their turn
            if ended.size:
                self._next_episodes(ended, replaying=True)
        return [self._stacks[i].copy() for i in range(self.num_envs)]
