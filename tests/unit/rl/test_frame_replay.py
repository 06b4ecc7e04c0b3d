"""The frame replay memory against a naive buffer that stores whole stacks, and against
Gymnasium's FrameStackObservation itself."""

from __future__ import annotations

import io
from collections import deque

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import FrameStackObservation
from hypothesis import given, settings
from hypothesis import strategies as st

from rlsoft.rl.frame_replay import FrameReplayBuffer
from rlsoft.rl.replay import ReplayBuffer

# ---------------------------------------------------------------------------- references


class StackedStreams:
    """``num_envs`` streams of random frames, stacked the way ``FrameStackObservation`` stacks
    them (newest last; before the episode start: the reset frame, or zeros), with random
    episode lengths (1 to ``max_len``) ending in a termination or a truncation at random.

    :meth:`step` returns one vector step of real transitions ``(s, a, r, s′, term, trunc)``:
    at an episode end ``s′`` is the final stack and the next ``s`` is a fresh reset stack."""

    def __init__(self, seed, num_envs, frame_stack, frame_shape, padding, max_len, dtype):
        self.rng = np.random.default_rng(seed)
        self.k, self.shape, self.padding = frame_stack, frame_shape, padding
        self.max_len, self.dtype = max_len, dtype
        self.stacks = [self._reset() for _ in range(num_envs)]
        self.left = [self._length() for _ in range(num_envs)]

    def _length(self):
        return int(self.rng.integers(1, self.max_len + 1))

    def _frame(self):
        if self.dtype == np.bool_:
            return self.rng.random(self.shape) < 0.5
        return self.rng.integers(0, 256, self.shape, dtype=np.uint8)

    def _reset(self):
        frame = self._frame()
        pad = frame if self.padding == "reset" else np.zeros_like(frame)
        return deque([pad] * (self.k - 1) + [frame], maxlen=self.k)

    def _obs(self, stack):
        return np.stack(list(stack)) if self.k > 1 else stack[-1].copy()

    def step(self):
        n = len(self.stacks)
        obs = np.stack([self._obs(s) for s in self.stacks])
        actions = self.rng.integers(0, 5, n)
        rewards = self.rng.integers(-3, 4, n).astype(np.float32)
        real_next = np.empty_like(obs)
        terminated, truncated = np.zeros(n, bool), np.zeros(n, bool)
        for e in range(n):
            self.stacks[e].append(self._frame())
            real_next[e] = self._obs(self.stacks[e])
            self.left[e] -= 1
            if self.left[e] == 0:
                ends_by_termination = self.rng.random() < 0.5
                terminated[e], truncated[e] = ends_by_termination, not ends_by_termination
                self.stacks[e], self.left[e] = self._reset(), self._length()
        return obs, actions, rewards, real_next, terminated, truncated


class NaiveBuffer:
    """Stores every transition's whole ``obs`` and ``next_obs`` in the same row-major ring as
    rlsoft's buffers, and forms n-step returns by walking forward one transition at a time."""

    def __init__(self, capacity, num_envs, n_step, gamma):
        self.ne, self.n, self.gamma = num_envs, n_step, gamma
        self.rows = -(-capacity // num_envs)
        self.slots = [None] * (self.rows * num_envs)
        self.pos = 0
        self.count = 0

    def add(self, obs, actions, rewards, next_obs, terminated, truncated):
        for e in range(self.ne):
            self.slots[self.pos * self.ne + e] = {
                "obs": obs[e].copy(),
                "action": int(actions[e]),
                "reward": float(rewards[e]),
                "next_obs": next_obs[e].copy(),
                "terminated": bool(terminated[e]),
                "done": bool(terminated[e] or truncated[e]),
            }
        self.pos = (self.pos + 1) % self.rows
        self.count = min(self.count + self.ne, len(self.slots))

    def expected(self, i):
        """(obs, action, return, next_obs, discount, terminated, steps) at flat index ``i``."""
        newest_row = (self.pos - 1) % self.rows
        total, m, j = 0.0, 0, i
        while True:
            t = self.slots[j]
            total += self.gamma**m * t["reward"]
            m += 1
            if t["terminated"]:
                discount = 0.0
                break
            if t["done"] or m == self.n or j // self.ne == newest_row:
                discount = self.gamma**m
                break
            j = (j + self.ne) % len(self.slots)
        first = self.slots[i]
        return first["obs"], first["action"], total, t["next_obs"], discount, t["terminated"], m


def assert_batch_matches(batch, naive, indices):
    for row, i in enumerate(indices):
        obs, action, ret, next_obs, discount, terminated, steps = naive.expected(int(i))
        np.testing.assert_array_equal(batch.obs[row], obs, err_msg=f"obs at {i}")
        np.testing.assert_array_equal(batch.next_obs[row], next_obs, err_msg=f"next_obs at {i}")
        assert batch.actions[row] == action
        assert batch.returns[row] == pytest.approx(ret, rel=1e-6, abs=1e-6)
        assert batch.discounts[row] == pytest.approx(discount, rel=1e-6)
        assert batch.terminated[row] == terminated
        assert batch.steps[row] == steps


def run_against_naive(
    *,
    num_envs,
    n_step,
    frame_stack,
    capacity,
    steps,
    max_len,
    padding,
    frame_shape,
    dtype,
    gamma=0.9,
    every_step=True,
    seed=0,
):
    obs_shape = (frame_stack, *frame_shape) if frame_stack > 1 else frame_shape
    streams = StackedStreams(seed, num_envs, frame_stack, frame_shape, padding, max_len, dtype)
    buf = FrameReplayBuffer(
        capacity, obs_shape, frame_stack=frame_stack, num_envs=num_envs, n_step=n_step,
        gamma=gamma, obs_dtype=dtype, padding=padding,
    )  # fmt: skip
    stacks = ReplayBuffer(
        capacity, obs_shape, num_envs=num_envs, n_step=n_step, gamma=gamma, obs_dtype=dtype
    )
    naive = NaiveBuffer(capacity, num_envs, n_step, gamma)
    for t in range(steps):
        transition = streams.step()
        buf.add(*transition)
        stacks.add(*transition)
        naive.add(*transition)
        assert len(buf) == naive.count == len(stacks)
        if every_step or t == steps - 1:
            assert_every_index_matches(buf, stacks, naive)
    return buf, stacks, naive


def assert_every_index_matches(buf, stacks, naive):
    """Every stored index of the frame buffer against the naive buffer, and against rlsoft's
    stack-storing buffer bit for bit (the same n-step rule)."""
    everything = np.arange(len(buf))
    batch = buf.gather(everything)
    assert_batch_matches(batch, naive, everything)
    other = stacks.gather(everything)
    for field in ("obs", "next_obs", "actions", "returns", "discounts", "terminated", "steps"):
        np.testing.assert_array_equal(getattr(batch, field), getattr(other, field))


# ---------------------------------------------------------------------------- the comparison


@pytest.mark.parametrize("num_envs", [1, 3])
@pytest.mark.parametrize("n_step", [1, 3])
@pytest.mark.parametrize(
    ("frame_stack", "frame_shape", "dtype", "padding"),
    [
        (4, (5, 6), np.uint8, "reset"),
        (4, (5, 6), np.uint8, "zero"),
        (2, (3, 3), np.uint8, "reset"),
        (1, (4, 4, 3), np.bool_, "reset"),  # MinAtar-like: (H, W, C) booleans, no stacking
    ],
)
def test_every_index_matches_a_buffer_of_whole_stacks_while_the_ring_wraps(
    num_envs, n_step, frame_stack, frame_shape, dtype, padding
):
    # 13 transitions kept, 150 vector steps: the ring wraps ~10 times (35 for 3 envs), with
    # episodes of 1 to 6 steps, so stacks straddle episode starts, the seam and the cursor.
    buf, stacks, _ = run_against_naive(
        num_envs=num_envs, n_step=n_step, frame_stack=frame_stack, capacity=13, steps=150,
        max_len=6, padding=padding, frame_shape=frame_shape, dtype=dtype,
    )  # fmt: skip
    assert buf.done.any() and (buf.done & ~buf.terminated).any()
    # Sampling draws the same indices as the stack-storing buffer for the same generator.
    a = buf.sample(np.random.default_rng(7), 64)
    b = stacks.sample(np.random.default_rng(7), 64)
    np.testing.assert_array_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.next_obs, b.next_obs)
    np.testing.assert_array_equal(a.returns, b.returns)


def test_long_episodes_and_a_large_ring():
    """Episodes longer than the stack and the n-step window, with the ring wrapping twice."""
    run_against_naive(
        num_envs=2, n_step=5, frame_stack=4, capacity=300, steps=400, max_len=60,
        padding="reset", frame_shape=(7, 5), dtype=np.uint8, gamma=0.99, every_step=False,
    )  # fmt: skip


def test_one_step_episodes_grow_the_final_frame_table():
    """Every transition ends its episode: each needs its own final frame, more than the side
    table's initial 16 rows, and overwriting must free them first-in-first-out."""
    buf, _, _ = run_against_naive(
        num_envs=3, n_step=3, frame_stack=4, capacity=60, steps=50, max_len=1,
        padding="zero", frame_shape=(2, 3), dtype=np.uint8, every_step=True,
    )  # fmt: skip
    assert buf.done.all() and len(buf.final_frames) >= 60


def test_the_final_frame_table_grows_while_its_oldest_entries_are_being_freed():
    """Long episodes first (few live episode ends, while the ring wraps and frees them), then
    one-step episodes: the side table must grow with its live entries wrapped around."""
    streams = StackedStreams(4, 1, 3, (2, 2), "reset", 4, np.uint8)
    buf = FrameReplayBuffer(24, (3, 2, 2), frame_stack=3, n_step=2, gamma=0.9)
    naive = NaiveBuffer(24, 1, 2, 0.9)
    grown = False
    for t in range(120):
        if t == 80:
            streams.max_len = 1
        transition = streams.step()
        size, head = len(buf.final_frames), buf._final_head
        buf.add(*transition)
        naive.add(*transition)
        grown |= len(buf.final_frames) > size and head != 0
        assert_batch_matches(buf.gather(np.arange(len(buf))), naive, range(len(buf)))
    assert grown and buf.done.all()


@settings(max_examples=60, deadline=None)
@given(
    num_envs=st.integers(1, 3),
    n_step=st.integers(1, 4),
    frame_stack=st.integers(1, 4),
    capacity=st.integers(1, 16),
    steps=st.integers(1, 40),
    max_len=st.integers(1, 7),
    padding=st.sampled_from(["reset", "zero"]),
    seed=st.integers(0, 2**16),
)
def test_property_any_configuration_matches_the_naive_buffer(
    num_envs, n_step, frame_stack, capacity, steps, max_len, padding, seed
):
    run_against_naive(
        num_envs=num_envs, n_step=n_step, frame_stack=frame_stack, capacity=capacity,
        steps=steps, max_len=max_len, padding=padding, frame_shape=(2, 2), dtype=np.uint8,
        seed=seed,
    )  # fmt: skip


# ---------------------------------------------------------------------------- Gymnasium


class RandomFrames(gym.Env):
    """Emits random 6×5 uint8 frames; terminates with probability 0.15 per step."""

    observation_space = gym.spaces.Box(0, 255, (6, 5), np.uint8)
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.np_random.integers(0, 256, (6, 5), dtype=np.uint8), {}

    def step(self, action):
        frame = self.np_random.integers(0, 256, (6, 5), dtype=np.uint8)
        return frame, float(action) - 1.0, bool(self.np_random.random() < 0.15), False, {}


@pytest.mark.parametrize("padding", ["reset", "zero"])
def test_stacks_are_bit_identical_to_frame_stack_observation(padding):
    """Three FrameStackObservation(k=4) envs with time limits under same-step autoreset,
    driven the way rlsoft's EnvDriver drives them: the rebuilt stacks are the env's own."""
    n_envs, steps = 3, 300

    def make():
        env = gym.wrappers.TimeLimit(RandomFrames(), max_episode_steps=9)
        return FrameStackObservation(env, 4, padding_type=padding)

    vec = gym.vector.SyncVectorEnv([make] * n_envs, autoreset_mode=AutoresetMode.SAME_STEP)
    buf = FrameReplayBuffer(
        10_000, (4, 6, 5), frame_stack=4, num_envs=n_envs, padding=padding, n_step=1
    )
    seen_obs, seen_next = [], []
    obs, _ = vec.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        actions = rng.integers(0, 3, n_envs)
        next_obs, rewards, terminated, truncated, infos = vec.step(actions)
        real_next = next_obs.copy()
        for i in np.flatnonzero(terminated | truncated):
            real_next[i] = infos["final_obs"][i]
        buf.add(obs, actions, rewards, real_next, terminated, truncated)
        seen_obs.append(obs.copy())
        seen_next.append(real_next)
        obs = next_obs
    vec.close()
    assert buf.terminated.any() and (buf.done & ~buf.terminated).any()
    batch = buf.gather(np.arange(len(buf)))
    np.testing.assert_array_equal(batch.obs, np.concatenate(seen_obs))
    np.testing.assert_array_equal(batch.next_obs, np.concatenate(seen_next))
    # Reading as the DQN agent does: into preallocated float32 arrays.
    out = type(batch)(
        **{
            k: np.empty(v.shape, np.float32 if k.endswith("obs") else v.dtype)
            for k, v in vars(batch).items()
        }
    )
    buf.gather(np.arange(len(buf)), out=out)
    np.testing.assert_array_equal(out.obs, np.concatenate(seen_obs).astype(np.float32))


def test_a_buffer_with_the_wrong_padding_refuses_the_first_stack():
    env = FrameStackObservation(RandomFrames(), 4)  # Gymnasium's default: padding "reset"
    obs, _ = env.reset(seed=0)
    nxt, *_ = env.step(0)
    buf = FrameReplayBuffer(8, (4, 6, 5), frame_stack=4, padding="zero")
    with pytest.raises(ValueError, match="padding='zero'"):
        buf.add(obs[None], [0], [0.0], nxt[None], [False], [False])
    assert len(buf) == 0 and buf.added == 0


# ---------------------------------------------------------------------------- misuse


def test_inconsistent_streams_are_refused_without_storing_anything():
    streams = StackedStreams(0, 2, 4, (3, 3), "reset", 50, np.uint8)
    streams.left = [10, 10]  # no episode ends in the first steps
    buf = FrameReplayBuffer(8, (4, 3, 3), frame_stack=4, num_envs=2)
    buf.add(*streams.step())
    obs, actions, rewards, nxt, term, trunc = streams.step()
    before = buf.state_dict()
    # Environment 1's stack is self-consistent but does not continue its previous next_obs.
    broken, broken_next = obs.copy(), nxt.copy()
    broken[1, -1] ^= 1
    broken_next[1, -2] ^= 1
    with pytest.raises(ValueError, match="environment 1"):
        buf.add(broken, actions, rewards, broken_next, term, trunc)
    shifted = nxt.copy()
    shifted[0, 0] ^= 1  # next_obs is not obs shifted by one frame
    with pytest.raises(ValueError, match="shifted"):
        buf.add(obs, actions, rewards, shifted, term, trunc)
    with pytest.raises(ValueError, match="shape"):
        buf.add(obs[:1], actions[:1], rewards[:1], nxt[:1], term[:1], trunc[:1])
    with pytest.raises(ValueError, match="broadcast"):
        buf.add(obs, actions[:1].repeat(3), rewards, nxt, term, trunc)
    after = buf.state_dict()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value)
    buf.add(obs, actions, rewards, nxt, term, trunc)  # the real transition is still accepted
    assert len(buf) == 4


def test_constructor_rejects_shapes_that_are_not_stacks():
    with pytest.raises(ValueError, match="frame_stack=4"):
        FrameReplayBuffer(10, (84, 84, 4), frame_stack=4)
    with pytest.raises(ValueError, match="padding"):
        FrameReplayBuffer(10, (4, 84, 84), padding="edge")
    with pytest.raises(ValueError, match="frame_stack"):
        FrameReplayBuffer(10, (4, 84, 84), frame_stack=0)


# ---------------------------------------------------------------------------- state


def _through_torch(state):
    """What the DQN checkpoint does: numpy → tensors → torch.save → weights_only load."""
    tensors = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in state.items()}
    blob = io.BytesIO()
    torch.save(tensors, blob)
    blob.seek(0)
    loaded = torch.load(blob, weights_only=True)
    return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in loaded.items()}


@pytest.mark.parametrize("steps", [0, 1, 5, 40])
def test_state_dict_round_trip_gives_identical_samples_and_continues_identically(steps):
    def fresh():
        return FrameReplayBuffer(20, (4, 3, 2), frame_stack=4, num_envs=2, n_step=3)

    streams = StackedStreams(5, 2, 4, (3, 2), "reset", 4, np.uint8)
    buf = fresh()
    for _ in range(steps):
        buf.add(*streams.step())
    copy = fresh()
    copy.load_state_dict(_through_torch(buf.state_dict()))
    assert (copy.pos, copy.full, copy.added, len(copy)) == (buf.pos, buf.full, buf.added, len(buf))
    # Keep adding to both (episode ends included, so the side table keeps turning over).
    for _ in range(25):
        transition = streams.step()
        buf.add(*transition)
        copy.add(*transition)
        a = buf.sample(np.random.default_rng(1), 32)
        b = copy.sample(np.random.default_rng(1), 32)
        for field in vars(a):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


@settings(max_examples=40, deadline=None)
@given(
    num_envs=st.integers(1, 3),
    frame_stack=st.integers(1, 4),
    capacity=st.integers(1, 12),
    before=st.integers(0, 30),
    max_len=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_property_a_reloaded_buffer_is_indistinguishable(
    num_envs, frame_stack, capacity, before, max_len, seed
):
    shape = (frame_stack, 2, 3) if frame_stack > 1 else (2, 3)

    def fresh():
        return FrameReplayBuffer(
            capacity, shape, frame_stack=frame_stack, num_envs=num_envs, n_step=2
        )

    streams = StackedStreams(seed, num_envs, frame_stack, (2, 3), "reset", max_len, np.uint8)
    buf = fresh()
    for _ in range(before):
        buf.add(*streams.step())
    copy = fresh()
    copy.load_state_dict(buf.state_dict())
    for _ in range(15):
        if len(buf):
            a, b = (x.gather(np.arange(len(x))) for x in (buf, copy))
            for field in vars(a):
                np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        transition = streams.step()
        buf.add(*transition)
        copy.add(*transition)  # accepted: the copy knows where each episode stands


def test_loading_into_a_different_buffer_is_refused():
    buf = FrameReplayBuffer(8, (4, 3, 3), frame_stack=4)
    buf.add(*StackedStreams(0, 1, 4, (3, 3), "reset", 3, np.uint8).step())
    with pytest.raises(ValueError, match="frame_stack"):
        FrameReplayBuffer(8, (3, 3, 3), frame_stack=3).load_state_dict(buf.state_dict())
    with pytest.raises(ValueError, match="padding"):
        FrameReplayBuffer(8, (4, 3, 3), padding="zero").load_state_dict(buf.state_dict())


# ---------------------------------------------------------------------------- memory


def test_each_frame_is_stored_once():
    capacity, frame = 10_000, 84 * 84
    buf = FrameReplayBuffer(capacity, (4, 84, 84), frame_stack=4)
    # Frames: C plus k spare rows; final-frame table: 16 rows; bookkeeping: 22 bytes each.
    assert buf.nbytes == (capacity + 4 + 16) * frame + 22 * capacity
    assert buf.nbytes <= 1.01 * capacity * frame
    # SB3's optimize_memory_usage keeps every obs stack: C·4·84·84 bytes; plain storage twice.
    assert buf.nbytes <= 0.3 * capacity * 4 * frame
    stacked = ReplayBuffer(capacity, (4, 84, 84), obs_dtype=np.uint8)
    assert stacked.obs.nbytes + stacked.next_obs.nbytes == 2 * capacity * 4 * frame


@pytest.mark.parametrize(
    ("frame_stack", "frame_shape", "dtype", "padding"),
    [
        (4, (5, 6), np.uint8, "reset"),
        (3, (4, 4), np.uint8, "zero"),
        (1, (4, 4, 3), np.bool_, "reset"),
    ],
)
def test_ending_streams_mid_episode_is_a_truncation_there(frame_stack, frame_shape, dtype, padding):
    """``end_streams`` (a resume that starts an episode over): the stream's newest stored
    transition becomes a truncation bootstrapped from its stored successor, and the next
    observation may be a fresh reset stack. Checked against the naive buffer told the same,
    at every step while the ring wraps, for both rlsoft buffers."""
    num_envs, n_step = 3, 3
    obs_shape = (frame_stack, *frame_shape) if frame_stack > 1 else frame_shape
    streams = StackedStreams(4, num_envs, frame_stack, frame_shape, padding, 9, dtype)
    buf = FrameReplayBuffer(
        17, obs_shape, frame_stack=frame_stack, num_envs=num_envs, n_step=n_step, gamma=0.9,
        obs_dtype=dtype, padding=padding,
    )  # fmt: skip
    stacks = ReplayBuffer(
        17, obs_shape, num_envs=num_envs, n_step=n_step, gamma=0.9, obs_dtype=dtype
    )
    naive = NaiveBuffer(17, num_envs, n_step, 0.9)
    rng = np.random.default_rng(5)
    cuts = 0
    for _ in range(200):
        transition = streams.step()
        for memory in (buf, stacks, naive):
            memory.add(*transition)
        if rng.random() < 0.3:
            envs = sorted(rng.choice(num_envs, int(rng.integers(1, num_envs + 1)), replace=False))
            newest = (naive.pos - 1) % naive.rows * num_envs
            expected = [newest + e for e in envs if not naive.slots[newest + e]["done"]]
            assert buf.end_streams(envs) == expected and stacks.end_streams(envs) == expected
            for i in expected:
                naive.slots[i]["done"] = True
            for e in envs:  # the environment starts a new episode
                streams.stacks[e], streams.left[e] = streams._reset(), streams._length()
            cuts += len(expected)
        assert_every_index_matches(buf, stacks, naive)
        # A checkpoint now holds every final frame, each for its own transition (end_streams
        # appends its entries after the row's natural episode ends, whatever the env order).
        copy = FrameReplayBuffer(
            17, obs_shape, frame_stack=frame_stack, num_envs=num_envs, n_step=n_step, gamma=0.9,
            obs_dtype=dtype, padding=padding,
        )  # fmt: skip
        copy.load_state_dict(_through_torch(buf.state_dict()))
        assert_every_index_matches(copy, stacks, naive)
    assert cuts > 20


@pytest.mark.parametrize("steps", [0, 1, 2, 3, 7, 30])
def test_a_buffer_continuing_streams_is_saved_and_loaded_with_their_frames(steps):
    """A resume without the replay continues the stacks in progress in an empty buffer
    (``continue_streams``); a checkpoint *with* the replay written later (before or after
    the ring wraps, or before any add) must keep the frames from before the resume that the
    new transitions' stacks show, and where each episode stands, so the loaded buffer gives
    the naive buffer's transitions and takes the next ones."""
    num_envs, k = 2, 4

    def fresh():
        return FrameReplayBuffer(20, (k, 3, 3), frame_stack=k, num_envs=num_envs, n_step=3)

    streams = StackedStreams(8, num_envs, k, (3, 3), "reset", 60, np.uint8)
    before = fresh()
    for _ in range(9):  # episodes of up to 60 steps: the stacks in progress span the resume
        before.add(*streams.step())
    buf = fresh()
    buf.continue_streams(before.stream_state())
    naive = NaiveBuffer(20, num_envs, 3, 0.99)
    for _ in range(steps):
        transition = streams.step()
        buf.add(*transition)
        naive.add(*transition)
    copy = fresh()
    copy.load_state_dict(_through_torch(buf.state_dict()))
    stored = np.flatnonzero([slot is not None for slot in naive.slots])
    assert len(copy) == len(stored)
    assert_batch_matches(copy.gather(stored), naive, stored)
    for _ in range(12):
        transition = streams.step()
        for memory in (buf, copy, naive):
            memory.add(*transition)
        a, b = buf.sample(np.random.default_rng(2), 16), copy.sample(np.random.default_rng(2), 16)
        for field in vars(a):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    stored = np.flatnonzero([slot is not None for slot in naive.slots])
    assert_batch_matches(copy.gather(stored), naive, stored)


def test_ending_the_streams_of_an_empty_buffer_lets_them_start_an_episode():
    """A resume without the replay continues the stacks in progress (``continue_streams``);
    ending them instead means the next observation starts an episode."""
    streams = StackedStreams(2, 2, 4, (3, 3), "reset", 50, np.uint8)
    full = FrameReplayBuffer(20, (4, 3, 3), frame_stack=4, num_envs=2)
    for _ in range(5):
        full.add(*streams.step())
    empty = FrameReplayBuffer(20, (4, 3, 3), frame_stack=4, num_envs=2)
    empty.continue_streams(full.stream_state())
    assert empty.end_streams([0, 1]) == []
    streams.stacks = [streams._reset(), streams._reset()]
    empty.add(*streams.step())
    assert len(empty) == 2 and (empty.episode_step[:2] == 0).all()
