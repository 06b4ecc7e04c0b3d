"""Saving and restoring the exact state of running environments, for resumable runs.

An environment's state is more than its observation: CartPole keeps its physical state and a
step counter, the ``TimeLimit`` wrapper its elapsed steps, Box2D environments a whole physics
world, and every environment a random generator. Rather than reach into each of these, rlsoft
records *how the current episode came about* and replays it:

* :class:`EpisodeRecorder` wraps each sub-environment and remembers how its current episode
  started — the reset seed, or else the exact state of the environment's generator just before
  the reset — and every action taken since.
* :func:`snapshot_vector_env` collects those records (plain JSON-safe data: ints, lists and
  the generator's state dict) from a vector environment, sync or async.
* :func:`restore_vector_env` resets each sub-environment of a *fresh* vector environment the
  same way and replays the actions, which brings it — physics, time limit, generator — to the
  very state it had, for any environment that is deterministic given its generator (all of
  Gymnasium's built-in ones). The caller checks the replayed observations against the saved
  ones, so a nondeterministic environment is reported rather than silently diverging.

The cost while training is one list append per environment step; a record holds one action
per step of the current episode only. Episodes are bounded by their time limits; for an
environment without one (CliffWalking-v1, or a custom environment) a record stops growing at
:data:`MAX_RECORDED_ACTIONS` actions, and a run checkpointed during such a long episode
resumes by starting that episode over (with a warning): give such environments an
``env.max_episode_steps`` when exact resume matters.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

__all__ = [
    "FORMAT",
    "MAX_RECORDED_ACTIONS",
    "EpisodeRecorder",
    "generator_from_state",
    "restore_vector_env",
    "snapshot_vector_env",
]

FORMAT = "rlsoft.episode/1"
MAX_RECORDED_ACTIONS = 100_000
"""The longest episode a record replays (memory and replay time are linear in it)."""


def generator_from_state(state: dict[str, Any]) -> np.random.Generator:
    """A new ``numpy.random.Generator`` whose bit generator continues from ``state``."""
    name = state.get("bit_generator")
    bit_generator_cls = getattr(np.random, str(name), None)
    if not (
        isinstance(bit_generator_cls, type)
        and issubclass(bit_generator_cls, np.random.BitGenerator)
    ):
        raise ValueError(f"unknown numpy bit generator {name!r} in a saved random state")
    generator = np.random.Generator(bit_generator_cls())
    generator.bit_generator.state = state
    return generator


class EpisodeRecorder(gym.Wrapper):
    """Records how the current episode started and the actions since, to replay it later.

    Transparent otherwise: observations, rewards and infos pass through unchanged.

    :param max_actions: an episode longer than this (default :data:`MAX_RECORDED_ACTIONS`) is
        no longer recorded (its record is dropped and :meth:`rlsoft_snapshot` reports it as
        ``"actions": None``), so an environment without a time limit cannot grow the record
        without bound.
    """

    def __init__(self, env: gym.Env, max_actions: int | None = None) -> None:
        super().__init__(env)
        self.max_actions = int(MAX_RECORDED_ACTIONS if max_actions is None else max_actions)
        self._start: dict[str, Any] | None = None
        self._actions: list[Any] | None = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._start = {"seed": int(seed)}
        else:
            # The state the reset will draw from (created now if the env was never seeded).
            self._start = {"rng": self.unwrapped.np_random.bit_generator.state}
        if options is not None:
            self._start["options"] = options
        self._actions = []
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any):
        actions = self._actions
        if actions is not None:
            actions.append(action)
            if len(actions) > self.max_actions:
                self._actions = None  # too long to replay: stop recording this episode
        return self.env.step(action)

    # Called through VectorEnv.call, so they work in async sub-processes too.

    def rlsoft_snapshot(self) -> dict[str, Any]:
        """The record of the current episode, as JSON-safe data."""
        if self._start is None:
            raise RuntimeError("the environment has not been reset yet; nothing to snapshot")
        actions = self._actions
        return {
            "format": FORMAT,
            "start": _jsonable(self._start),
            "actions": None if actions is None else self.action_space.to_jsonable(actions),
        }

    def rlsoft_restore(self, snapshot: dict[str, Any]) -> Any:
        """Reset as the recorded episode did and replay its actions; returns the observation.

        A record without actions (an episode longer than ``max_actions``) only resets as the
        episode did, so the environment starts that episode again from its beginning; so does a
        replay that ends before its last action (an environment not deterministic given its
        seed), whose caller then finds the observation differs from the saved one.
        """
        if snapshot.get("format") != FORMAT:
            raise ValueError(f"not an episode record of rlsoft: format {snapshot.get('format')!r}")
        start = snapshot["start"]
        options = start.get("options")
        if "seed" in start:
            obs, _ = self.reset(seed=int(start["seed"]), options=options)
        else:
            self.unwrapped.np_random = generator_from_state(start["rng"])
            obs, _ = self.reset(options=options)
        if snapshot["actions"] is None:
            return obs
        for action in self.action_space.from_jsonable(snapshot["actions"]):
            obs, _, terminated, truncated, _ = self.step(action)
            if terminated or truncated:
                # Not deterministic given its seed: the episode starts over, and the caller
                # finds the observation differs from the saved one.
                return self.rlsoft_restore({**snapshot, "actions": None})
        return obs

    def rlsoft_restore_pending(self) -> Any:
        """:meth:`rlsoft_restore` of the record put in ``rlsoft_pending`` by ``set_attr``."""
        snapshot, self.rlsoft_pending = self.rlsoft_pending, None
        return self.rlsoft_restore(snapshot)


def _jsonable(value: Any) -> Any:
    """Numpy scalars and arrays inside nested dicts and lists as plain Python values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def snapshot_vector_env(env: gym.vector.VectorEnv) -> list[dict[str, Any]]:
    """One episode record per sub-environment: each must be wrapped in
    :class:`EpisodeRecorder`, or the vector env records its copies itself
    (``rlsoft_snapshot_all``, as :class:`rlsoft.rl.envs.atari_native.NativeAtariVectorEnv`)."""
    if hasattr(env, "rlsoft_snapshot_all"):
        return list(env.rlsoft_snapshot_all())
    return list(env.call("rlsoft_snapshot"))


def restore_vector_env(env: gym.vector.VectorEnv, snapshots: list[dict[str, Any]]) -> list[Any]:
    """Bring every sub-environment of ``env`` to the state recorded in ``snapshots``.

    :return: each sub-environment's current observation after the replay.
    """
    if hasattr(env, "rlsoft_restore_all"):
        return list(env.rlsoft_restore_all(snapshots))
    if len(snapshots) != env.num_envs:
        raise ValueError(
            f"saved state has {len(snapshots)} environments, but the vector env has {env.num_envs}"
        )
    env.set_attr("rlsoft_pending", list(snapshots))
    return list(env.call("rlsoft_restore_pending"))
