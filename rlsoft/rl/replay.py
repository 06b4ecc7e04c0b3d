"""A preallocated ring buffer of transitions for off-policy agents, with optional n-step returns.

Transitions arrive one vector step at a time, one per environment, and are stored row by row:
row ``r`` holds the ``num_envs`` transitions of one vector step, so the flat index of
environment ``e``'s transition in row ``r`` is ``r·num_envs + e`` and the next transition of the
same environment is ``num_envs`` further on. Every array is allocated once, at full capacity;
when the buffer is full the oldest row is overwritten.

Each stored transition is a real one, ``(s, a, r, s′, terminated, done)``: ``s′`` is the true
successor (the final observation when the episode ended, never the first observation of the
next episode — the caller resolves Gymnasium's vector autoreset, see
:class:`rlsoft.rl.collector.EnvDriver`), ``terminated`` means there is no future to bootstrap from,
and ``done = terminated or truncated`` marks the end of the episode. A truncated transition
(a time limit) therefore still bootstraps from ``s′``.

n-step returns are formed when sampling, by looking ahead in the same environment's stream::

    G = Σ_{k<m} γ^k · r_{t+k},   bootstrap from s_{t+m} with discount γ^m (0 if terminated)

where ``m ≤ n`` stops early at the end of the episode (``done``) or at the newest stored
transition, so a return never crosses an episode boundary. With ``n_step = 1`` this is the
plain one-step transition.

An optional boolean mask column (``mask_size > 0``, read with ``gather_masks``) stores a
fixed-length vector with each transition, e.g. the bootstrap masks of Bootstrapped DQN (Osband
et al., 2016): which of the K ensemble heads may train on it. An n-step return carries the mask
of its first transition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ReplayBatch", "ReplayBuffer", "TransitionRing"]


@dataclass
class ReplayBatch:
    """Sampled transitions as numpy arrays (leading axis = sample).

    ``discounts`` is ``γ^m`` for an ``m``-step return that may bootstrap, and 0 where the
    return ended in a termination: the target is ``returns + discounts · V(next_obs)``.
    """

    obs: np.ndarray
    actions: np.ndarray
    returns: np.ndarray
    next_obs: np.ndarray
    discounts: np.ndarray
    terminated: np.ndarray
    steps: np.ndarray
    """``m``, the number of rewards summed into each return (1 ≤ m ≤ n_step)."""


class TransitionRing:
    """What every replay ring shares: ``capacity`` transitions from ``num_envs`` streams stored
    row by row (see the module docstring), their actions, rewards and episode flags, uniform
    sampling of stored indices, and n-step returns formed at sample time. Subclasses store the
    observations (:class:`ReplayBuffer` whole, :class:`rlsoft.rl.frame_replay.FrameReplayBuffer`
    one frame at a time) and implement ``gather``.
    """

    def __init__(self, capacity: int, *, num_envs: int, n_step: int, gamma: float) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be at least 1, got {capacity}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        if n_step < 1:
            raise ValueError(f"n_step must be at least 1, got {n_step}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        self.num_envs = int(num_envs)
        self.rows = -(-int(capacity) // self.num_envs)
        self.capacity = self.rows * self.num_envs
        self.n_step = int(n_step)
        self.gamma = float(gamma)
        size = self.capacity
        self.actions = np.zeros(size, dtype=np.int64)
        self.rewards = np.zeros(size, dtype=np.float32)
        self.terminated = np.zeros(size, dtype=np.bool_)
        self.done = np.zeros(size, dtype=np.bool_)
        self.pos = 0
        """The next row to write (the oldest row once the buffer is full)."""
        self.full = False
        # γ^k for k = 0..n, in float64 (returns are summed in float64, then stored as float32).
        self._powers = self.gamma ** np.arange(self.n_step + 1, dtype=np.float64)

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos * self.num_envs

    def sample_indices(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` flat indices drawn uniformly, with replacement, from the stored transitions."""
        size = len(self)
        if size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return rng.integers(0, size, size=n)

    def sample(self, rng: np.random.Generator, batch_size: int) -> ReplayBatch:
        """``batch_size`` transitions (n-step returns when ``n_step > 1``), uniformly."""
        return self.gather(self.sample_indices(rng, batch_size))

    def gather(self, idx: np.ndarray, out: ReplayBatch | None = None) -> ReplayBatch:
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    def end_streams(self, envs: Sequence[int]) -> list[int]:
        """End the episodes in progress of environments ``envs`` at their newest stored
        transition, as a truncation (its target still bootstraps from the stored successor):
        the loop started those episodes over (a resume that could not replay them exactly), so
        no n-step window may join the old episode to the new one.

        :return: the flat indices of the transitions it marked (none for a stream whose newest
            transition already ended its episode, or with nothing stored).
        """
        if len(self) == 0:
            return []
        newest = (self.pos - 1) % self.rows * self.num_envs
        streams = dict.fromkeys(int(e) for e in envs)  # each once: marked once, freed once
        marked = [newest + e for e in streams if not self.done[newest + e]]
        self.done[marked] = True
        return marked

    def _check_saved_settings(self, state: dict[str, Any], settings: dict[str, Any]) -> None:
        """A saved buffer fits this one: the same capacity, ``num_envs``, ``n_step`` and
        ``settings`` (a subclass's own, e.g. the observation shape)."""
        mine_all = {
            "capacity": self.capacity,
            "num_envs": self.num_envs,
            "n_step": self.n_step,
            **settings,
        }
        for key, mine in mine_all.items():
            saved = state[key]
            if isinstance(mine, list):
                saved = [int(v) for v in saved]
            elif isinstance(mine, int):
                saved = int(saved)
            if saved != mine:
                raise ValueError(
                    f"saved replay buffer has {key}={saved}, but this buffer has {key}={mine}"
                )

    def _n_step(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each start index: the index of the window's last transition, the discounted
        reward sum and the window length m, stopping at ``done`` and at the newest row."""
        step = self.num_envs
        # Rows written after each start row, in the same environment's stream.
        newer = (self.pos - 1 - idx // step) % self.rows
        returns = self.rewards[idx].astype(np.float64)
        last = idx.copy()
        steps = np.ones(len(idx), dtype=np.int64)
        alive = ~self.done[idx]
        for k in range(1, self.n_step):
            alive &= newer >= k
            if not alive.any():
                break
            j = (idx + k * step) % self.capacity
            returns += np.where(alive, self._powers[k] * self.rewards[j], 0.0)
            last = np.where(alive, j, last)
            steps += alive
            alive &= ~self.done[j]
        return last, returns, steps


class ReplayBuffer(TransitionRing):
    """Ring buffer of ``capacity`` transitions from ``num_envs`` parallel environments.

    :param capacity: transitions kept (rounded up to a multiple of ``num_envs``).
    :param obs_shape: shape of one observation.
    :param num_envs: transitions added per :meth:`add` call, one per environment.
    :param n_step: length of the returns formed by :meth:`sample` (1 = one-step).
    :param gamma: discount used for n-step returns.
    :param obs_dtype: storage dtype of observations (float32 for neural networks).
    :param mask_size: width of an optional boolean mask stored with each transition (e.g.
        Bootstrapped DQN's per-head bootstrap masks); 0 stores none.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        *,
        num_envs: int = 1,
        n_step: int = 1,
        gamma: float = 0.99,
        obs_dtype: Any = np.float32,
        mask_size: int = 0,
    ) -> None:
        super().__init__(capacity, num_envs=num_envs, n_step=n_step, gamma=gamma)
        if mask_size < 0:
            raise ValueError(f"mask_size must be at least 0, got {mask_size}")
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.obs = np.zeros((self.capacity, *self.obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((self.capacity, *self.obs_shape), dtype=obs_dtype)
        self.mask_size = int(mask_size)
        self.masks = (
            np.zeros((self.capacity, self.mask_size), dtype=np.bool_) if self.mask_size else None
        )

    # ------------------------------------------------------------------ writing

    def add(
        self,
        obs: Any,
        actions: Any,
        rewards: Any,
        next_obs: Any,
        terminated: Any,
        truncated: Any,
        masks: Any = None,
    ) -> None:
        """Store one transition per environment (arrays with a leading ``num_envs`` axis);
        ``masks`` ``(num_envs, mask_size)`` is required exactly when the buffer has a mask
        column."""
        if (masks is None) != (self.masks is None):
            raise ValueError(
                f"this buffer has mask_size={self.mask_size}: pass masks exactly when it is > 0"
            )
        start = self.pos * self.num_envs
        rows = slice(start, start + self.num_envs)
        if self.masks is not None:
            self.masks[rows] = masks
        self.obs[rows] = obs
        self.next_obs[rows] = next_obs
        self.actions[rows] = actions
        self.rewards[rows] = rewards
        self.terminated[rows] = terminated
        np.logical_or(terminated, truncated, out=self.done[rows])
        self.pos += 1
        if self.pos == self.rows:
            self.pos = 0
            self.full = True

    # ------------------------------------------------------------------ sampling

    def gather(self, idx: np.ndarray, out: ReplayBatch | None = None) -> ReplayBatch:
        """The transitions at flat indices ``idx``, as n-step returns.

        :param out: optional preallocated batch to write into (its arrays must have
            ``len(idx)`` rows); saves allocations on the training hot path.
        """
        idx = np.asarray(idx, dtype=np.int64)
        if out is None:
            n = len(idx)
            out = ReplayBatch(
                obs=np.empty((n, *self.obs_shape), dtype=self.obs.dtype),
                actions=np.empty(n, dtype=np.int64),
                returns=np.empty(n, dtype=np.float32),
                next_obs=np.empty((n, *self.obs_shape), dtype=self.obs.dtype),
                discounts=np.empty(n, dtype=np.float32),
                terminated=np.empty(n, dtype=np.bool_),
                steps=np.empty(n, dtype=np.int64),
            )
        np.take(self.obs, idx, axis=0, out=out.obs)
        np.take(self.actions, idx, out=out.actions)
        if self.n_step == 1:
            last = idx
            np.take(self.rewards, idx, out=out.returns)
            out.steps.fill(1)
            out.discounts.fill(self.gamma)
        else:
            last, returns, steps = self._n_step(idx)
            out.returns[...] = returns
            out.steps[...] = steps
            out.discounts[...] = self._powers[steps]
        np.take(self.next_obs, last, axis=0, out=out.next_obs)
        np.take(self.terminated, last, out=out.terminated)
        out.discounts[out.terminated] = 0.0  # no future after a termination
        return out

    def gather_masks(self, idx: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The masks ``(len(idx), mask_size)`` stored with the transitions at ``idx`` (an
        n-step return starting at ``idx`` carries its first transition's mask).

        :param out: optional preallocated boolean array to write into.
        """
        if self.masks is None:
            raise ValueError("this replay buffer stores no masks (mask_size=0)")
        return np.take(self.masks, np.asarray(idx, dtype=np.int64), axis=0, out=out)

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Stored transitions, write position and settings (numpy arrays and numbers).

        Only the rows written so far are included, so an early checkpoint stays small.
        """
        filled = self.capacity if self.full else self.pos * self.num_envs
        masks = {} if self.masks is None else {"masks": self.masks[:filled].copy()}
        return {
            "capacity": self.capacity,
            "num_envs": self.num_envs,
            "n_step": self.n_step,
            "gamma": self.gamma,
            "obs_shape": list(self.obs_shape),
            "pos": self.pos,
            "full": self.full,
            "obs": self.obs[:filled].copy(),
            "next_obs": self.next_obs[:filled].copy(),
            "actions": self.actions[:filled].copy(),
            "rewards": self.rewards[:filled].copy(),
            "terminated": self.terminated[:filled].copy(),
            "done": self.done[:filled].copy(),
            **masks,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (settings must match this buffer's)."""
        self._check_saved_settings(state, {"obs_shape": list(self.obs_shape)})
        saved_masks = np.asarray(state["masks"]).shape[1] if "masks" in state else 0
        if saved_masks != self.mask_size:
            raise ValueError(
                f"saved replay buffer has mask_size={saved_masks}, but this buffer has "
                f"mask_size={self.mask_size}"
            )
        pos, full = int(state["pos"]), bool(state["full"])
        filled = self.capacity if full else pos * self.num_envs
        keys = ("obs", "next_obs", "actions", "rewards", "terminated", "done")
        for key in keys + (("masks",) if self.mask_size else ()):
            array = np.asarray(state[key])
            if len(array) != filled:
                raise ValueError(
                    f"saved replay buffer field {key!r} has {len(array)} rows, expected {filled}"
                )
            target = getattr(self, key)
            target[:filled] = array
            target[filled:] = 0
        self.pos, self.full = pos, full
