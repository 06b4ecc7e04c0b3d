"""A replay memory for stacked frames that stores every frame once.

Pixel agents see observations that are stacks of the last ``k`` frames (Gymnasium's
``FrameStackObservation``, newest frame last). Consecutive stacks of one episode share
``k − 1`` frames, and ``s′`` of one transition is ``s`` of the next, so storing ``obs`` and
``next_obs`` stacks per transition (:class:`rlsoft.rl.replay.ReplayBuffer`) keeps every frame
``2k`` times: 1M Atari transitions with ``k = 4`` frames of 84×84 bytes take
``2·4·84·84·10⁶ ≈ 56 GB``, and Stable-Baselines3's ``optimize_memory_usage=True`` still
keeps every ``obs`` stack (``≈ 28 GB``). :class:`FrameReplayBuffer` keeps each frame once
(``≈ 7 GB``) and rebuilds the stacks when sampling, in the manner of Dopamine's circular
replay buffer (``dopamine/replay_memory/circular_replay_buffer.py``, Castro et al. 2018),
with three differences that make it a drop-in replacement for :class:`ReplayBuffer`:

* **Every stored transition can be sampled.** Dopamine writes ``k − 1`` blank frames before
  each episode and rejects (by resampling) indices whose stack would cross an episode start or
  the write cursor. Here each transition records its position ``p`` in its episode instead, and
  the frame ring is ``k`` rows longer than the transition ring, so the ``k − 1`` frames before
  the oldest transition and the successor frame of the newest one are never overwritten:
  :meth:`sample_indices` draws uniformly from ``[0, len)`` exactly like ``ReplayBuffer``.
* **The stacks are bit-identical to the environment's**, padding included. The stack of a
  transition with newest frame ``f_t`` (global step ``t`` of its stream, position ``p``) is

      stack_j = f_{t − min(k−1−j, p)}      for j = 0 … k−1 (j = k−1 is the newest),

  and with ``padding="zero"`` the entries with ``k−1−j > p`` are zero instead — exactly what
  ``FrameStackObservation(padding_type="reset")`` (Gymnasium's default: the reset frame
  repeated) and ``padding_type="zero"`` return. :meth:`add` checks this for every
  environment before storing anything (an episode's first stack must be padded as declared,
  ``next_obs`` must be ``obs`` shifted by one frame, and a continuing stream's ``obs`` must
  be its previous ``next_obs``), so a buffer built with the wrong ``frame_stack`` or
  ``padding`` raises instead of silently training on different observations.
* **Time-limit truncations keep their true final observation.** ``s′`` of the last
  transition of an episode is not the next slot's frame (that slot starts the next episode),
  so the final frame goes to a small first-in-first-out side table, one frame per episode end
  among the stored transitions (it grows by doubling when needed: a buffer holding only
  one-step episodes would need as many final frames as transitions). A truncated transition
  then bootstraps from its real ``s′``, as in :class:`ReplayBuffer`.

Transitions from ``num_envs`` environments are interleaved row by row as in
:class:`ReplayBuffer` (flat index ``row·num_envs + env``), and n-step returns are formed the
same way when sampling::

    G = Σ_{m'<m} γ^{m'} · r_{t+m'},   bootstrap from s_{t+m} with discount γ^m (0 if terminated)

with ``m ≤ n`` stopping at the end of the episode or at the newest stored transition.

Memory, for capacity ``C``, ``E`` environments, frames of ``F`` bytes and ``D`` episode ends
among the stored transitions: ``(C + k·E)·F`` frame bytes, ``≈ D·F`` for final frames (at
least 16 frames, and at most twice what is needed), and 22 bytes of per-transition bookkeeping
(action, reward, flags, episode position and side-table index).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rlsoft.rl.replay import ReplayBatch, TransitionRing

__all__ = ["FrameReplayBuffer", "stacks_frames"]

_PADDINGS = ("reset", "zero")


def stacks_frames(obs_shape: tuple[int, ...], frame_stack: int) -> bool:
    """Whether observations of ``obs_shape`` can be stacks of ``frame_stack`` frames on their
    first axis, ``(frame_stack, *frame_shape)`` (always, for ``frame_stack`` 1)."""
    return frame_stack == 1 or (len(obs_shape) >= 2 and obs_shape[0] == frame_stack)


class FramePaddingError(ValueError):
    """An episode's first observation is not padded as the buffer's ``padding`` says."""


class FrameReplayBuffer(TransitionRing):
    """Ring buffer of ``capacity`` transitions whose observations are frame stacks.

    Same interface and sampling semantics as :class:`rlsoft.rl.replay.ReplayBuffer`; only the
    storage differs (see the module docstring).

    :param capacity: transitions kept (rounded up to a multiple of ``num_envs``).
    :param obs_shape: shape of one observation: ``(frame_stack, *frame_shape)`` with the newest
        frame last when ``frame_stack > 1``; the frame itself (e.g. MinAtar's ``(10, 10, C)``)
        when ``frame_stack == 1``.
    :param frame_stack: frames per observation (``k``); 1 stores plain observations once each.
    :param num_envs: transitions added per :meth:`add` call, one per environment.
    :param n_step: length of the returns formed by :meth:`sample` (1 = one-step).
    :param gamma: discount used for n-step returns.
    :param obs_dtype: storage dtype of frames (``uint8`` for Atari, ``bool`` for MinAtar).
    :param padding: how the environment fills a stack before ``k`` frames of the episode
        exist: ``"reset"`` repeats the reset frame (Gymnasium's ``FrameStackObservation``
        default), ``"zero"`` uses zero frames (its ``padding_type="zero"`` for image spaces,
        whose bounds contain 0).
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        *,
        frame_stack: int = 4,
        num_envs: int = 1,
        n_step: int = 1,
        gamma: float = 0.99,
        obs_dtype: Any = np.uint8,
        padding: str = "reset",
    ) -> None:
        super().__init__(capacity, num_envs=num_envs, n_step=n_step, gamma=gamma)
        if frame_stack < 1:
            raise ValueError(f"frame_stack must be at least 1, got {frame_stack}")
        if padding not in _PADDINGS:
            raise ValueError(f"padding must be 'reset' or 'zero', got {padding!r}")
        obs_shape = tuple(int(d) for d in obs_shape)
        if not stacks_frames(obs_shape, frame_stack):
            raise ValueError(
                f"observations of shape {obs_shape} are not stacks of frame_stack={frame_stack} "
                "frames: expected (frame_stack, *frame_shape), the newest frame last"
            )
        self.obs_shape = obs_shape
        self.frame_stack = int(frame_stack)
        self.frame_shape = obs_shape[1:] if self.frame_stack > 1 else obs_shape
        self.padding = padding
        self.obs_dtype = np.dtype(obs_dtype)
        # The frame ring has k more rows than the transition ring: k − 1 for the history of the
        # oldest transition's stack and 1 for the successor frame of the newest transition.
        self.frame_rows = self.rows + self.frame_stack
        size, envs = self.capacity, self.num_envs
        self.frames = np.zeros((self.frame_rows * envs, *self.frame_shape), dtype=self.obs_dtype)
        self.episode_step = np.zeros(size, dtype=np.int32)
        """Position of each transition in its episode (0: ``obs`` is the reset observation)."""
        self.final_ref = np.zeros(size, dtype=np.int32)
        """For transitions with ``done``: the side-table row holding the final frame."""
        self.final_frames = np.zeros((max(16, 2 * envs), *self.frame_shape), self.obs_dtype)
        self._final_head = 0  # oldest live side-table row (a FIFO ring)
        self._final_count = 0
        self.added = 0
        """Vector steps added so far (the global step of the next row)."""
        self._next_step = np.zeros(envs, dtype=np.int64)
        # Stack entry j holds the frame k−1−j steps back (j = k−1 is the newest frame).
        self._back = np.arange(self.frame_stack - 1, -1, -1, dtype=np.int64)

    # ------------------------------------------------------------------ writing

    @property
    def nbytes(self) -> int:
        """Bytes held by every storage array (frames, final frames and bookkeeping)."""
        arrays = (
            self.frames,
            self.final_frames,
            self.actions,
            self.rewards,
            self.terminated,
            self.done,
            self.episode_step,
            self.final_ref,
        )
        return sum(a.nbytes for a in arrays)

    def _newest(self, stacks: np.ndarray) -> np.ndarray:
        return stacks[:, -1] if self.frame_stack > 1 else stacks

    def add(
        self,
        obs: Any,
        actions: Any,
        rewards: Any,
        next_obs: Any,
        terminated: Any,
        truncated: Any,
    ) -> None:
        """Store one transition per environment (arrays with a leading ``num_envs`` axis).

        ``next_obs`` is the true successor (the final observation when the episode ended).
        Raises ``ValueError``, storing nothing, if the stacks are not consistent with this
        buffer's ``frame_stack`` and ``padding`` (see the module docstring).
        """
        obs, next_obs = np.asarray(obs), np.asarray(next_obs)
        self._check(obs, next_obs)
        envs, start = self.num_envs, self.pos * self.num_envs
        # Shapes are checked before anything is written, so a bad call leaves no trace.
        actions, rewards, terminated, truncated = (
            np.broadcast_to(np.asarray(x), (envs,))
            for x in (actions, rewards, terminated, truncated)
        )
        done = np.logical_or(terminated, truncated)
        slots = slice(start, start + envs)
        if self.full:
            # The row about to be overwritten holds the oldest transitions, so its episode ends
            # own the oldest side-table entries: free them first-in-first-out.
            freed = int(np.count_nonzero(self.done[slots]))
            self._final_head = (self._final_head + freed) % len(self.final_frames)
            self._final_count -= freed
            self.done[slots] = False
        g = self.added
        here = (g % self.frame_rows) * envs
        after = ((g + 1) % self.frame_rows) * envs
        self.frames[here : here + envs] = self._newest(obs)
        # The successor frame: the next row's newest frame if the episode continues (the next
        # add writes the same frame there again), otherwise overwritten by the reset frame.
        self.frames[after : after + envs] = self._newest(next_obs)
        ended = np.flatnonzero(done)
        if len(ended):
            self._reserve(len(ended))
            rows = (self._final_head + self._final_count + np.arange(len(ended))) % len(
                self.final_frames
            )
            self.final_frames[rows] = self._newest(next_obs)[ended]
            self.final_ref[start + ended] = rows
            self._final_count += len(ended)
        self.actions[slots] = actions
        self.rewards[slots] = rewards
        self.terminated[slots] = terminated
        self.done[slots] = done
        self.episode_step[slots] = np.minimum(self._next_step, np.iinfo(np.int32).max)
        self._next_step = np.where(done, 0, self._next_step + 1)
        self.added += 1
        self.pos += 1
        if self.pos == self.rows:
            self.pos = 0
            self.full = True

    def end_streams(self, envs: Sequence[int]) -> list[int]:
        """As :meth:`TransitionRing.end_streams`; the marked transitions' successor frames
        move to the side table of final frames (the next :meth:`add` overwrites their row with
        a reset frame), and the next observation of each stream in ``envs`` must start an
        episode."""
        marked = super().end_streams(envs)
        if marked:
            self._reserve(len(marked))
            rows = (self._final_head + self._final_count + np.arange(len(marked))) % len(
                self.final_frames
            )
            after = (self.added % self.frame_rows) * self.num_envs
            streams = np.asarray(marked) % self.num_envs
            self.final_frames[rows] = self.frames[after + streams]
            self.final_ref[marked] = rows
            self._final_count += len(marked)
        self._next_step[np.asarray(envs, dtype=np.int64)] = 0
        return marked

    def _check(self, obs: np.ndarray, next_obs: np.ndarray) -> None:
        """Raise ``ValueError`` unless the stacks can be rebuilt bit for bit from their frames."""
        shape = (self.num_envs, *self.obs_shape)
        for name, array in (("obs", obs), ("next_obs", next_obs)):
            if array.shape != shape:
                raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
        k = self.frame_stack
        if k > 1 and not np.array_equal(next_obs[:, :-1], obs[:, 1:]):
            raise ValueError(
                "next_obs is not obs shifted by one frame: observations must be frame stacks "
                f"of frame_stack={k} with the newest frame last (FrameStackObservation)"
            )
        continuing = self._next_step > 0
        if continuing.any():
            here = (self.added % self.frame_rows) * self.num_envs
            pending = self.frames[here : here + self.num_envs]
            same = (self._newest(obs) == pending).reshape(self.num_envs, -1).all(axis=1)
            if not same[continuing].all():
                e = int(np.flatnonzero(continuing & ~same)[0])
                raise ValueError(
                    f"obs of environment {e} is not the next_obs stored for it by the previous "
                    "add although that transition did not end the episode: pass each "
                    "environment's transitions in order, with next_obs the true successor"
                )
        starting = ~continuing
        if k > 1 and starting.any():
            first = obs[starting]
            pad = first[:, -1:] if self.padding == "reset" else np.zeros((), first.dtype)
            if not (first[:, :-1] == pad).all():
                raise FramePaddingError(
                    f"an episode's first observation is not padded with padding={self.padding!r}"
                    " (the reset frame repeated for 'reset', zeros for 'zero'): build the "
                    "buffer with the padding_type of the environment's FrameStackObservation"
                )

    def _reserve(self, extra: int) -> None:
        """Grow the side table of final frames (by doubling) to hold ``extra`` more."""
        size = len(self.final_frames)
        need = self._final_count + extra
        if need <= size:
            return
        new_size = size
        while new_size < need:
            new_size *= 2
        order = (self._final_head + np.arange(self._final_count)) % size
        grown = np.zeros((new_size, *self.frame_shape), dtype=self.obs_dtype)
        grown[: self._final_count] = self.final_frames[order]
        # Live entries move to rows 0..count−1 in the same order; re-point their transitions.
        # (The row being written has no episode ends marked yet, so only live ones move.)
        live = self.done
        self.final_ref[live] = (self.final_ref[live] - self._final_head) % size
        self.final_frames, self._final_head = grown, 0

    # ------------------------------------------------------------------ sampling

    def gather(self, idx: np.ndarray, out: ReplayBatch | None = None) -> ReplayBatch:
        """The transitions at flat indices ``idx``, as n-step returns, stacks rebuilt.

        :param out: optional preallocated batch to write into (its arrays must have
            ``len(idx)`` rows; ``obs``/``next_obs`` may have another dtype, e.g. float32);
            saves allocations on the training hot path.
        """
        idx = np.asarray(idx, dtype=np.int64)
        if out is None:
            n = len(idx)
            out = ReplayBatch(
                obs=np.empty((n, *self.obs_shape), dtype=self.obs_dtype),
                actions=np.empty(n, dtype=np.int64),
                returns=np.empty(n, dtype=np.float32),
                next_obs=np.empty((n, *self.obs_shape), dtype=self.obs_dtype),
                discounts=np.empty(n, dtype=np.float32),
                terminated=np.empty(n, dtype=np.bool_),
                steps=np.empty(n, dtype=np.int64),
            )
        env = idx % self.num_envs
        # Global step of each transition's row: the newest row is step added − 1.
        age = (self.pos - 1 - idx // self.num_envs) % self.rows
        step = self.added - 1 - age
        position = self.episode_step[idx].astype(np.int64)
        self._fill(out.obs, step, env, position)
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
        # s′ of the window's last transition: the stack one step later in the same episode,
        # whose newest frame is the next row's frame, or the final frame if the episode ended.
        span = out.steps if self.n_step > 1 else 1
        ended = np.flatnonzero(self.done[last])
        finals = self.final_frames[self.final_ref[last[ended]]]
        self._fill(out.next_obs, step + span, env, position + span, ended, finals)
        np.take(self.terminated, last, out=out.terminated)
        out.discounts[out.terminated] = 0.0  # no future after a termination
        return out

    def _fill(
        self,
        target: np.ndarray,
        step: np.ndarray,
        env: np.ndarray,
        position: np.ndarray,
        ended: np.ndarray | None = None,
        finals: np.ndarray | None = None,
    ) -> None:
        """Write into ``target`` the stacks whose newest frame is global step ``step`` of
        stream ``env``, at ``position`` in its episode, padded as the environment pads; rows
        ``ended`` get ``finals`` as their newest frame instead.

        One ``np.take`` over a ``(batch, k)`` index array, straight into ``target`` when it has
        the frames' dtype (a float32 ``target`` costs one more pass, the conversion)."""
        back = np.minimum(self._back, position[:, None])  # never reach before the episode start
        index = ((step[:, None] - back) % self.frame_rows) * self.num_envs + env[:, None]
        shape = (len(index), self.frame_stack, *self.frame_shape)
        direct = target.dtype == self.obs_dtype and target.flags.c_contiguous
        stacks = target.reshape(shape) if direct else np.empty(shape, self.obs_dtype)
        # mode="clip" spares numpy's buffered copy for mode="raise"; every index is in range.
        np.take(self.frames, index, axis=0, out=stacks, mode="clip")
        if self.padding == "zero" and self.frame_stack > 1:
            stacks[self._back > position[:, None]] = 0
        if ended is not None and len(ended):
            stacks[ended, -1] = finals
        if not direct:
            target[...] = stacks.reshape(target.shape)

    def _age_order(self) -> np.ndarray:
        """Flat indices of the stored transitions, oldest first."""
        if not self.full:
            return np.arange(self.pos * self.num_envs)
        return np.roll(np.arange(self.capacity), -self.pos * self.num_envs)

    def state_dict(self) -> dict[str, Any]:
        """Stored frames and transitions, write position and settings (arrays and numbers).

        Only what was written so far is included, and every frame once: the frames of global
        steps ``0 … added`` (the newest one is the pending successor frame), and until the ring
        wraps the ``k − 1`` rows of steps ``−k+1 … −1`` (``frames_before``), which hold the
        frames of the episodes a :meth:`continue_streams` buffer took over. Final frames are
        saved in the age order of their transitions, the order :meth:`load_state_dict` hands
        them out (:meth:`end_streams` appends entries out of that order). The arrays are copies,
        so a full buffer briefly needs its size again in memory while being saved.
        """
        filled = len(self)
        written = min(self.added + 1, self.frame_rows)
        before = max(written, self.frame_rows - (self.frame_stack - 1))
        envs = self.num_envs
        order = self._age_order()
        ends = order[self.done[order]]
        return {
            "capacity": self.capacity,
            "num_envs": self.num_envs,
            "n_step": self.n_step,
            "gamma": self.gamma,
            "obs_shape": list(self.obs_shape),
            "frame_stack": self.frame_stack,
            "padding": self.padding,
            "pos": self.pos,
            "full": self.full,
            "added": self.added,
            "frames": self.frames[: written * envs].copy(),
            "frames_before": self.frames[before * envs :].copy(),
            "final_frames": self.final_frames[self.final_ref[ends]],  # oldest transition first
            "next_step": self._next_step.copy(),
            "actions": self.actions[:filled].copy(),
            "rewards": self.rewards[:filled].copy(),
            "terminated": self.terminated[:filled].copy(),
            "done": self.done[:filled].copy(),
            "episode_step": self.episode_step[:filled].copy(),
        }

    def stream_state(self) -> dict[str, Any]:
        """What an *empty* buffer needs to go on storing the episodes in progress
        (:meth:`continue_streams`), without any stored transition: the frames of global steps
        ``added − k + 1 … added`` of every stream (the current stacks' frames, the newest being
        the next ``obs``'s newest frame) and each stream's position in its episode.

        A checkpoint without the replay (``train.checkpoint_replay: false``) keeps only this:
        ``k·num_envs`` frames.
        """
        steps = np.arange(self.added - self.frame_stack + 1, self.added + 1)
        rows = self.frames.reshape(self.frame_rows, self.num_envs, *self.frame_shape)
        return {
            "frame_stack": self.frame_stack,
            "stream_frames": rows[steps % self.frame_rows].copy(),
            "next_step": self._next_step.copy(),
        }

    def continue_streams(self, state: dict[str, Any]) -> None:
        """Make this empty buffer continue the episodes that :meth:`stream_state` described:
        their last ``k`` frames go to the rows of global steps ``−k+1 … 0`` (the ring is ``k``
        rows longer than the transitions it holds, so they stay until no stored stack needs
        them), so the next :meth:`add` is checked and its stacks rebuilt as if nothing had
        been interrupted."""
        if self.added:
            raise ValueError("continue_streams needs an empty buffer")
        frames = np.asarray(state["stream_frames"], dtype=self.obs_dtype)
        expected = (self.frame_stack, self.num_envs, *self.frame_shape)
        if int(state["frame_stack"]) != self.frame_stack or frames.shape != expected:
            raise ValueError(
                f"saved streams hold frames of shape {frames.shape}, expected {expected}"
            )
        rows = self.frames.reshape(self.frame_rows, self.num_envs, *self.frame_shape)
        rows[np.arange(-self.frame_stack + 1, 1) % self.frame_rows] = frames
        self._next_step = np.asarray(state["next_step"], dtype=np.int64).copy()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (settings must match this buffer's)."""
        self._check_saved_settings(
            state,
            {
                "frame_stack": self.frame_stack,
                "obs_shape": list(self.obs_shape),
                "padding": self.padding,
            },
        )
        pos, full, added = int(state["pos"]), bool(state["full"]), int(state["added"])
        filled = self.capacity if full else pos * self.num_envs
        written = min(added + 1, self.frame_rows)
        if added == 0 and len(state["frames"]) == 0:  # saved before frames_before existed
            written = 0
        expected = {
            "frames": written * self.num_envs,
            "actions": filled,
            "rewards": filled,
            "terminated": filled,
            "done": filled,
            "episode_step": filled,
        }
        arrays = {key: np.asarray(state[key]) for key in (*expected, "final_frames")}
        expected["final_frames"] = int(np.count_nonzero(arrays["done"]))
        if added % self.rows != pos or (added >= self.rows) != full:
            raise ValueError(f"saved replay buffer has added={added} but pos={pos}, full={full}")
        for key, rows in expected.items():
            if len(arrays[key]) != rows:
                raise ValueError(
                    f"saved replay buffer field {key!r} has {len(arrays[key])} rows, "
                    f"expected {rows}"
                )
        before = np.asarray(state.get("frames_before", self.frames[:0]), dtype=self.obs_dtype)
        room = max(0, self.frame_rows - max(written, self.frame_rows - (self.frame_stack - 1)))
        if len(before) not in (0, room * self.num_envs):
            raise ValueError(
                f"saved replay buffer field 'frames_before' has {len(before)} rows, expected "
                f"{room * self.num_envs}"
            )
        for key in ("frames", "actions", "rewards", "terminated", "done", "episode_step"):
            target = getattr(self, key)
            target[: len(arrays[key])] = arrays[key]
            target[len(arrays[key]) :] = 0
        if len(before):
            self.frames[len(self.frames) - len(before) :] = before
        count = expected["final_frames"]
        size = len(self.final_frames)
        while size < count:
            size *= 2
        self.final_frames = np.zeros((size, *self.frame_shape), dtype=self.obs_dtype)
        self.final_frames[:count] = arrays["final_frames"]
        self._final_head, self._final_count = 0, count
        self.pos, self.full, self.added = pos, full, added
        # Episode ends own side-table rows in the order they were added, oldest first.
        order = self._age_order()
        ends = order[self.done[order]]
        self.final_ref[:] = 0
        self.final_ref[ends] = np.arange(count)
        if "next_step" in state:
            self._next_step = np.asarray(state["next_step"], dtype=np.int64).copy()
        elif added == 0:
            self._next_step = np.zeros(self.num_envs, dtype=np.int64)
        else:
            first = ((pos - 1) % self.rows) * self.num_envs
            newest = slice(first, first + self.num_envs)
            self._next_step = np.where(
                self.done[newest], 0, self.episode_step[newest].astype(np.int64) + 1
            )
