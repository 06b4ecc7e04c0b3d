"""The replay ring buffer: wrap-around, n-step returns, terminated vs truncated, autoreset."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from hypothesis import given
from hypothesis import strategies as st

from rlsoft.rl.replay import ReplayBuffer


def _add(buf: ReplayBuffer, t: int, *, terminated=False, truncated=False, envs: int = 1) -> None:
    """Transition number ``t`` (per env e: obs = t + 100e, reward = t + 0.5e)."""
    e = np.arange(envs)
    obs = (t + 100 * e)[:, None].astype(np.float32)
    buf.add(
        obs,
        np.full(envs, t % 2),
        (t + 0.5 * e).astype(np.float32),
        obs + 1,
        np.full(envs, terminated),
        np.full(envs, truncated),
    )


def test_ring_buffer_wraps_and_keeps_the_newest_transitions():
    buf = ReplayBuffer(5, (1,))
    for t in range(7):
        _add(buf, t)
    assert len(buf) == 5 and buf.full and buf.pos == 2
    # Rows 0 and 1 were overwritten by transitions 5 and 6.
    assert buf.obs[:, 0].tolist() == [5, 6, 2, 3, 4]
    batch = buf.gather(np.arange(5))
    assert sorted(batch.obs[:, 0].tolist()) == [2, 3, 4, 5, 6]
    np.testing.assert_array_equal(batch.next_obs, batch.obs + 1)


def test_capacity_is_rounded_up_to_whole_vector_steps():
    buf = ReplayBuffer(10, (1,), num_envs=4)
    assert buf.capacity == 12 and buf.rows == 3


def test_sampling_is_uniform_over_stored_transitions_only():
    buf = ReplayBuffer(100, (1,))
    for t in range(10):
        _add(buf, t)
    idx = buf.sample_indices(np.random.default_rng(0), 10_000)
    assert idx.min() == 0 and idx.max() == 9
    counts = np.bincount(idx, minlength=10)
    assert counts.min() > 850  # ~1000 each
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(3, (1,)).sample_indices(np.random.default_rng(0), 1)


def test_terminated_zeroes_the_bootstrap_but_truncated_keeps_it():
    buf = ReplayBuffer(10, (1,), gamma=0.9)
    _add(buf, 0, terminated=True)
    _add(buf, 1, truncated=True)
    _add(buf, 2)
    batch = buf.gather(np.arange(3))
    assert batch.discounts.tolist() == pytest.approx([0.0, 0.9, 0.9])
    assert batch.terminated.tolist() == [True, False, False]


def _n_step_by_hand(rewards, terminated, truncated, start, n, gamma, newest):
    """Independent reference: walk forward from ``start`` in one stream."""
    total, k = 0.0, 0
    while True:
        total += gamma**k * rewards[start + k]
        k += 1
        end = start + k - 1
        if terminated[end]:
            return total, 0.0, end
        if truncated[end] or k == n or end == newest:
            return total, gamma**k, end


@given(
    n=st.integers(1, 5),
    length=st.integers(1, 30),
    data=st.data(),
)
def test_n_step_returns_match_a_hand_computed_walk(n, length, data):
    gamma = 0.9
    rewards = data.draw(st.lists(st.integers(-3, 3), min_size=length, max_size=length))
    ends = data.draw(st.lists(st.sampled_from([0, 0, 0, 1, 2]), min_size=length, max_size=length))
    terminated = [e == 1 for e in ends]
    truncated = [e == 2 for e in ends]
    buf = ReplayBuffer(64, (1,), n_step=n, gamma=gamma)
    for t in range(length):
        buf.add(
            np.array([[t]], np.float32),
            np.array([0]),
            np.array([rewards[t]], np.float32),
            np.array([[t + 0.5]], np.float32),
            np.array([terminated[t]]),
            np.array([truncated[t]]),
        )
    batch = buf.gather(np.arange(length))
    for start in range(length):
        ret, disc, end = _n_step_by_hand(
            rewards, terminated, truncated, start, n, gamma, length - 1
        )
        assert batch.returns[start] == pytest.approx(ret, rel=1e-6)
        assert batch.discounts[start] == pytest.approx(disc, rel=1e-6)
        assert batch.next_obs[start, 0] == end + 0.5  # the successor of the window's last step
        assert batch.steps[start] == end - start + 1


def test_n_step_follows_each_environment_separately_and_across_the_ring_seam():
    buf = ReplayBuffer(8, (1,), num_envs=2, n_step=3, gamma=0.5)
    for t in range(6):  # rows 0..3, then rows 0 and 1 again (the ring wraps)
        _add(buf, t, envs=2, terminated=(t == 4))
    # Flat index of (row 3, env 1) holds t = 3: window t=3,4 (terminated at 4).
    batch = buf.gather(np.array([3 * 2 + 1]))
    assert batch.returns[0] == pytest.approx(3.5 + 0.5 * 4.5)
    assert batch.discounts[0] == 0.0 and batch.next_obs[0, 0] == 104 + 1
    # (row 2, env 0) holds t = 2: window 2,3,4 crosses the seam into row 0 (t = 4).
    batch = buf.gather(np.array([2 * 2]))
    assert batch.returns[0] == pytest.approx(2 + 0.5 * 3 + 0.25 * 4)
    assert batch.discounts[0] == 0.0
    # The newest row (t = 5, row 1) has no successor stored yet: a one-step return.
    batch = buf.gather(np.array([1 * 2]))
    assert batch.returns[0] == 5 and batch.steps[0] == 1
    assert batch.discounts[0] == pytest.approx(0.5)


def test_state_dict_round_trip_restores_contents_and_write_position():
    buf = ReplayBuffer(6, (2,), num_envs=2, n_step=2)
    for t in range(5):
        _add(buf, t, envs=2)
    fresh = ReplayBuffer(6, (2,), num_envs=2, n_step=2)
    fresh.load_state_dict(buf.state_dict())
    assert (fresh.pos, fresh.full, len(fresh)) == (buf.pos, buf.full, len(buf))
    for key in ("obs", "next_obs", "actions", "rewards", "terminated", "done"):
        np.testing.assert_array_equal(getattr(fresh, key), getattr(buf, key))
    _add(buf, 9, envs=2)
    _add(fresh, 9, envs=2)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    a, b = buf.sample(rng_a, 16), fresh.sample(rng_b, 16)
    np.testing.assert_array_equal(a.returns, b.returns)
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(8, (2,), num_envs=2).load_state_dict(buf.state_dict())


def test_no_stored_transition_crosses_an_episode_boundary_under_vector_autoreset():
    """Drive a real same-step-autoreset vector env the way rlsoft.rl.collector does and check every
    stored (s, s′) pair against the true dynamics of a separate single env."""
    n_envs, steps = 3, 400
    vec = gym.vector.SyncVectorEnv(
        [lambda: gym.make("CartPole-v1", max_episode_steps=20) for _ in range(n_envs)],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )
    buf = ReplayBuffer(n_envs * steps, (4,), num_envs=n_envs)
    obs, _ = vec.reset(seed=1)
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(steps):
        actions = rng.integers(0, 2, n_envs)
        next_obs, rewards, terminated, truncated, infos = vec.step(actions)
        real_next = next_obs.copy()
        for i in np.flatnonzero(terminated | truncated):
            real_next[i] = infos["final_obs"][i]
            ends += 1
        buf.add(obs, actions, rewards, real_next, terminated, truncated)
        obs = next_obs
    assert ends > 20 and buf.terminated.sum() > 0 and buf.done.sum() > buf.terminated.sum()
    # CartPole's next state is a deterministic function of (state, action): check it.
    env = gym.make("CartPole-v1").unwrapped
    env.reset(seed=0)
    for i in range(len(buf)):
        env.state, env.steps_beyond_terminated = buf.obs[i].astype(np.float64), None
        expected, *_ = env.step(int(buf.actions[i]))
        np.testing.assert_allclose(buf.next_obs[i], expected, rtol=1e-5, atol=1e-6)
    # And each stream continues from its own successor unless the episode ended.
    for e in range(n_envs):
        for row in range(steps - 1):
            i, j = row * n_envs + e, (row + 1) * n_envs + e
            if not buf.done[i]:
                np.testing.assert_array_equal(buf.obs[j], buf.next_obs[i])


def test_the_training_loop_stores_only_real_transitions():
    """The same check on what rlsoft's own driver stores: three vectorised CartPoles with a
    short time limit, so that terminations, truncations and autoresets happen often."""
    import agents  # noqa: F401 - registers the DQN agent
    from rlsoft.run.config import validate_config
    from rlsoft.run.experiment import build_driver

    config = validate_config(
        {
            "env": {"id": "CartPole-v1", "num_envs": 3, "max_episode_steps": 25},
            "agent": {"type": "dqn", "hidden_sizes": [8], "learning_starts": 10**6},
            "exploration": {"policy": "epsilon_greedy", "epsilon": 1.0},
        }
    )
    driver = build_driver(config)
    driver.advance(1500, 0)
    buf = driver.agent.buffer
    n = len(buf)
    assert n == 1500 and buf.terminated[:n].any() and (buf.done & ~buf.terminated)[:n].any()
    env = gym.make("CartPole-v1").unwrapped
    env.reset(seed=0)
    for i in range(n):
        env.state, env.steps_beyond_terminated = buf.obs[i].astype(np.float64), None
        expected, reward, terminated, *_ = env.step(int(buf.actions[i]))
        np.testing.assert_allclose(buf.next_obs[i], expected, rtol=1e-5, atol=1e-6)
        assert terminated == buf.terminated[i] and reward == buf.rewards[i]
    for i in range(n - 3):  # row-major: the same env's next transition is 3 further on
        if not buf.done[i]:
            np.testing.assert_array_equal(buf.obs[i + 3], buf.next_obs[i])
    driver.close()


# --------------------------------------------------------------------------------------------
# The optional mask column (Bootstrapped DQN's bootstrap masks)
# --------------------------------------------------------------------------------------------


def _masked_buffer(**kwargs) -> ReplayBuffer:
    return ReplayBuffer(8, (1,), num_envs=2, mask_size=3, gamma=0.5, **kwargs)


def _add_masked(buf: ReplayBuffer, t: int, done: bool = False) -> np.ndarray:
    """Transition ``t`` of both envs with mask bits of t's binary digits (env 1: inverted)."""
    bits = np.array([(t >> j) & 1 for j in range(3)], dtype=bool)
    masks = np.stack([bits, ~bits])
    obs = np.array([[t], [t + 100]], dtype=np.float32)
    buf.add(obs, [0, 1], [1.0, 2.0], obs + 1, [done, False], [False, False], masks)
    return masks


def test_masks_are_stored_per_transition_and_gathered_with_it():
    buf = _masked_buffer()
    written = {}
    for t in range(6):  # wraps the 4-row ring
        masks = _add_masked(buf, t)
        written[float(t)], written[float(t + 100)] = masks[0], masks[1]
    idx = np.arange(len(buf))
    batch, masks = buf.gather(idx), buf.gather_masks(idx)
    assert masks.shape == (8, 3) and masks.dtype == np.bool_
    for obs, mask in zip(batch.obs[:, 0], masks, strict=True):
        np.testing.assert_array_equal(mask, written[float(obs)])


def test_an_n_step_return_carries_the_mask_of_its_first_transition():
    buf = ReplayBuffer(8, (1,), num_envs=1, n_step=3, gamma=0.5, mask_size=2)
    for t in range(4):
        obs = np.array([[t]], dtype=np.float32)
        buf.add(obs, [0], [1.0], obs + 1, [False], [False], np.array([[t % 2 == 0, t == 1]]))
    batch = buf.gather(np.array([0, 1]))
    assert list(batch.steps) == [3, 3]
    out = np.empty((2, 2), bool)
    buf.gather_masks(np.array([0, 1]), out=out)
    np.testing.assert_array_equal(out, [[True, False], [False, True]])


def test_masks_survive_a_state_dict_round_trip_and_a_mismatch_is_refused():
    buf = _masked_buffer()
    for t in range(3):
        _add_masked(buf, t)
    state = buf.state_dict()
    copy = _masked_buffer()
    copy.load_state_dict(state)
    np.testing.assert_array_equal(copy.masks, buf.masks)
    with pytest.raises(ValueError, match="mask_size=3, but this buffer has mask_size=0"):
        ReplayBuffer(8, (1,), num_envs=2, gamma=0.5).load_state_dict(state)
    plain = ReplayBuffer(8, (1,), num_envs=2, gamma=0.5)
    _add(plain, 0, envs=2)
    assert "masks" not in plain.state_dict()  # buffers without masks save what they did
    with pytest.raises(ValueError, match="mask_size=0, but this buffer has mask_size=3"):
        _masked_buffer().load_state_dict(plain.state_dict())


def test_masks_are_required_exactly_when_the_buffer_has_a_mask_column():
    obs = np.zeros((2, 1), np.float32)
    args = (obs, [0, 0], [0.0, 0.0], obs, [False, False], [False, False])
    with pytest.raises(ValueError, match="pass masks exactly when"):
        _masked_buffer().add(*args)
    with pytest.raises(ValueError, match="pass masks exactly when"):
        ReplayBuffer(8, (1,), num_envs=2).add(*args, np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="stores no masks"):
        ReplayBuffer(8, (1,)).gather_masks(np.zeros(0, np.int64))
