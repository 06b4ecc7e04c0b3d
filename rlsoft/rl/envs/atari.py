"""Atari 2600 games (the Arcade Learning Environment, ``ale-py``) under rlsoft's standard protocol.

A config that names an ``ALE/<Game>-v5`` id gets the preprocessing of Mnih et al. (2015)
with the evaluation recommendations of Machado et al. (2018) (the ``env.atari`` block,
:class:`rlsoft.run.config.AtariConfig`), built from Gymnasium's and ALE's own parts::

    gymnasium.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=p)   # sticky actions
      → AleSeeding                      # every episode a function of the env's generator
      → gymnasium.wrappers.AtariPreprocessing(noop_max, frame_skip, screen_size)
            # up to 30 no-op starts, frame skip with a max over the last two frames,
            # 84×84 grayscale uint8
      → gymnasium.wrappers.FrameStackObservation(stack_size=k)   # (k, 84, 84), newest last
      → AtariLearningSignal(clip_rewards, terminal_on_life_loss)

The environment's own reward, ``terminated`` and episodes stay the **game's**: rewards are the
unclipped score, and an episode runs to game over (or the 108,000-frame limit of the v5 ids),
so ``charts/episodic_return`` and every evaluation report game scores, as the papers do.
What the agent *learns from* is put beside them in ``info`` by :class:`AtariLearningSignal`:
the clipped reward ``sign(r)`` (Mnih et al. 2015) and, optionally, ``terminated`` at every
loss of a life. :class:`LearningSignalHook` (with :func:`learning_signal_single` and
:func:`learning_signal_vector`) is the driver's hook that reads them.

Sticky actions draw from ALE's own generator, which Gymnasium's ``np_random`` does not
cover; :class:`AleSeeding` reseeds the emulator from ``np_random`` at every reset (as
:class:`rlsoft.rl.envs.minatar.MinAtarSeeding` does for MinAtar), so an episode is a function
of that generator's state and the actions, and exact resume
(:mod:`rlsoft.rl.envs.state`) replays it.

**Vector environments and the native backend.** This stack is what evaluations, tabular
agents and ``env.atari.backend: gymnasium`` use (in Gymnasium's ``SyncVectorEnv``/
``AsyncVectorEnv`` for several copies). DQN's training env is by default (``auto``) ale-py's
native ``AtariVectorEnv`` driven by :class:`rlsoft.rl.envs.atari_native.NativeAtariVectorEnv`:
the same observations byte for byte and the same learning signal in ``info``, 1.7× to 3.7× the
steps per second of this stack in ``scripts/bench_atari_vector.py``, and exact resume too.
"""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from rlsoft.errors import RlsoftError

__all__ = [
    "LEARN_FINAL_OBS",
    "LEARN_REWARD",
    "LEARN_TERMINATED",
    "AleSeeding",
    "AtariLearningSignal",
    "AtariSettings",
    "LearningSignalHook",
    "atari_make_kwargs",
    "atari_wrappers",
    "is_atari_id",
    "learning_signal_single",
    "learning_signal_vector",
    "silence_ale_banner",
]

LEARN_REWARD = "rlsoft_learn_reward"
"""``info`` key: the reward the agent learns from (the clipped one)."""
LEARN_TERMINATED = "rlsoft_learn_terminated"
"""``info`` key: whether the agent's target stops bootstrapping here (game over, or a lost
life with ``terminal_on_life_loss``)."""
LEARN_FINAL_OBS = "rlsoft_learn_final_obs"
"""``info`` key, only at a lost life with ``terminal_on_life_loss``: the true successor of
the transition (the returned observation starts a new stack instead)."""


class AtariSettings(Protocol):
    """What the Atari stack reads from ``env.atari`` (:class:`rlsoft.run.config.AtariConfig`
    is one; the rl layer does not import the run layer)."""

    frame_skip: int
    screen_size: int
    frame_stack: int
    noop_max: int
    repeat_action_probability: float
    clip_rewards: bool
    terminal_on_life_loss: bool


def is_atari_id(env_id: str) -> bool:
    """Whether ``env_id`` names an ALE game (``ALE/Pong-v5``)."""
    return env_id.startswith("ALE/")


def silence_ale_banner() -> None:
    """Keep ALE's log to errors: it prints its version banner to stderr for every emulator it
    starts (training, evaluation and each native copy), noise in a command's output.

    ``ALEInterface.setLoggerMode`` is process-wide and ale-py offers no getter, so the
    previous mode cannot be restored: other ALE emulators of the process log errors only
    too (README, "Atari")."""
    import ale_py

    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)


def atari_make_kwargs(settings: AtariSettings) -> dict[str, Any]:
    """``gymnasium.make`` keywords of the underlying ALE env: frame skipping is
    ``AtariPreprocessing``'s (it max-pools the last two frames), so ALE must skip none."""
    return {"frameskip": 1, "repeat_action_probability": float(settings.repeat_action_probability)}


def atari_wrappers(settings: AtariSettings) -> list[Any]:
    """The wrappers of the protocol around the ALE env, innermost first (module docstring)."""
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    def preprocess(env: gym.Env) -> gym.Env:
        try:
            import cv2  # noqa: F401  (AtariPreprocessing resizes with OpenCV)
        except ImportError:
            raise RlsoftError(
                "Atari preprocessing needs the opencv-python-headless package, which is not "
                "installed; install it with: pip install 'rlsoft[atari]'"
            ) from None
        return AtariPreprocessing(
            env,
            noop_max=settings.noop_max,
            frame_skip=settings.frame_skip,
            screen_size=settings.screen_size,
            terminal_on_life_loss=False,  # the game's episodes; life loss is a learning signal
            grayscale_obs=True,
            scale_obs=False,  # uint8, 1 byte a pixel in the replay; the agent scales by 1/255
        )

    def stack(env: gym.Env) -> gym.Env:
        return FrameStackObservation(env, stack_size=settings.frame_stack)

    def signal(env: gym.Env) -> gym.Env:
        return AtariLearningSignal(
            env,
            clip_rewards=settings.clip_rewards,
            terminal_on_life_loss=settings.terminal_on_life_loss,
            frame_stack=settings.frame_stack,
        )

    return [AleSeeding, preprocess, stack, signal]


class AleSeeding(gym.Wrapper):
    """Reseed the emulator from ``env.unwrapped.np_random`` at every unseeded reset.

    ``AtariEnv.reset(seed=s)`` seeds both its ``np_random`` and ALE's generator (sticky
    actions) from ``s``; ``reset()`` leaves ALE's generator running, invisible to
    ``np_random``. Drawing the seed of every unseeded reset from ``np_random`` makes each
    episode a function of that generator's state (which :class:`EpisodeRecorder` saves).
    """

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None:
            seed = int(self.unwrapped.np_random.integers(2**31))
        return self.env.reset(seed=seed, options=options)


class AtariLearningSignal(gym.Wrapper):
    """Put the agent's learning signal in ``info``; leave the game's reward and episodes alone.

    Each step adds ``info[LEARN_REWARD] = sign(r)`` (``clip_rewards``; else ``r``) and
    ``info[LEARN_TERMINATED]`` (game over, or ``lives`` dropped with ``terminal_on_life_loss``).

    With ``terminal_on_life_loss`` a lost life ends a *learning* episode (Mnih et al. 2015;
    Dopamine's agent begins a new episode, stack included, at each one) while the game goes
    on: the observation returned at the loss starts a new stack (the newest frame repeated,
    as ``FrameStackObservation`` pads after a reset), the stacks of the next ``k − 1`` steps
    are padded the same way, and the true successor stack goes to ``info[LEARN_FINAL_OBS]``.
    So the acting observations and the frame replay both see a stack that begins at the life,
    exactly as they would after a reset.
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        clip_rewards: bool = True,
        terminal_on_life_loss: bool = False,
        frame_stack: int = 4,
    ) -> None:
        super().__init__(env)
        self.clip_rewards = bool(clip_rewards)
        self.terminal_on_life_loss = bool(terminal_on_life_loss)
        self.frame_stack = int(frame_stack)
        self._lives = 0
        self._since_life = 0  # steps since the learning episode began (0: at its first frame)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._lives = int(info.get("lives", 0))
        self._since_life = 0
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = int(info.get("lives", 0))
        life_lost = self.terminal_on_life_loss and lives < self._lives and not terminated
        self._lives = lives
        info[LEARN_REWARD] = float(np.sign(reward)) if self.clip_rewards else float(reward)
        info[LEARN_TERMINATED] = bool(terminated or life_lost)
        if self.terminal_on_life_loss:
            self._since_life = min(self._since_life + 1, self.frame_stack)
            obs = self._pad(obs)  # the stack within the current learning episode
            # A truncated game ends here anyway: its last observation stays the successor.
            if life_lost and not truncated:
                info[LEARN_FINAL_OBS] = obs
                self._since_life = 0
                obs = self._pad(obs)
        return obs, reward, terminated, truncated, info

    def _pad(self, obs: np.ndarray) -> np.ndarray:
        """The stack as if the episode had begun ``_since_life`` steps ago: entries older than
        the life's first frame replaced by that frame (``FrameStackObservation``'s
        ``padding_type="reset"``)."""
        k, m = self.frame_stack, self._since_life
        if k == 1 or m >= k - 1:
            return obs
        padded = np.array(obs, copy=True)
        padded[: k - 1 - m] = padded[k - 1 - m]
        return padded


class LearningSignalHook:
    """The driver's hook: ``step`` calls the env's step and keeps its info; ``observe`` calls
    the agent's with the learning signal in that info (:func:`learning_signal_vector` for a
    vector env, :func:`learning_signal_single` for one env) in place of the env's reward,
    successor and ``terminated``. The driver's loops use the pair in place of ``env.step`` and
    ``agent.observe`` and keep counting the env's own rewards and episodes — the game's."""

    def __init__(self, env_step: Any, observe: Any, *, vector: bool) -> None:
        self._env_step, self._observe = env_step, observe
        self._signal = learning_signal_vector if vector else learning_signal_single
        self._info: dict[str, Any] = {}

    def step(self, action: Any) -> Any:
        result = self._env_step(action)
        self._info = result[4]
        return result

    def observe(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        next_obs: Any,
        terminated: Any,
        truncated: Any,
        step: int,
    ) -> None:
        reward, next_obs, terminated = self._signal(reward, next_obs, terminated, self._info)
        self._observe(obs, action, reward, next_obs, terminated, truncated, step)


def learning_signal_single(
    reward: float, next_obs: Any, terminated: bool, info: dict[str, Any]
) -> tuple[float, Any, bool]:
    """``(reward, next_obs, terminated)`` the agent learns from for one env's step: those in
    ``info`` (:class:`AtariLearningSignal`) where present, else the env's own."""
    if LEARN_REWARD not in info:
        return reward, next_obs, terminated
    return (
        info[LEARN_REWARD],
        info.get(LEARN_FINAL_OBS, next_obs),
        bool(info[LEARN_TERMINATED]),
    )


def learning_signal_vector(
    rewards: np.ndarray, next_obs: np.ndarray, terminated: np.ndarray, infos: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`learning_signal_single` for a vector env's step with same-step autoreset.

    ``next_obs`` is the true successor (the driver already put ``final_obs`` in for finished
    envs); a finished env's learning signal is in ``infos["final_info"]``, since its
    ``infos`` entry belongs to the reset that began its next episode.
    """
    sources = [infos]
    final = infos.get("final_info")
    if isinstance(final, dict):
        sources.append(final)
    if not any(LEARN_REWARD in source for source in sources):
        return rewards, next_obs, terminated
    rewards = np.array(rewards, dtype=np.float64, copy=True)
    terminated = np.array(terminated, dtype=bool, copy=True)
    for source in sources:
        if LEARN_REWARD in source:
            mask = source[f"_{LEARN_REWARD}"]
            rewards[mask] = source[LEARN_REWARD][mask]
            terminated[mask] = source[LEARN_TERMINATED][mask]
    if LEARN_FINAL_OBS in infos:
        mask = infos[f"_{LEARN_FINAL_OBS}"]
        next_obs = np.array(next_obs, copy=True)
        next_obs[mask] = np.stack(list(infos[LEARN_FINAL_OBS][mask]))
    return rewards, next_obs, terminated
