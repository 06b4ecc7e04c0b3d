"""DeepSea and RiverSwim against their definitions: bsuite's code and the paper's figure.

References are independent of rlsoft: bsuite's own ``DeepSea`` (when installed), a brute force
over every action sequence, the RiverSwim table written out here from Strehl & Littman
(2008, Figure 2), value iteration on that table, and chi-square tests of sampled transitions.
"""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from scipy import stats

import rlsoft.rl.envs  # noqa: F401  (registers the ids)
from rlsoft.rl.envs import DeepSeaEnv, RiverSwimEnv

# ------------------------------------------------------------------------------ DeepSea


@pytest.mark.parametrize("size", [1, 2, 5, 10, 20])
@pytest.mark.parametrize("mapping_seed", [0, 42, 7])
def test_deep_sea_matches_bsuite_step_by_step(size: int, mapping_seed: int) -> None:
    deep_sea = pytest.importorskip("bsuite.environments.deep_sea", reason="bsuite not installed")
    reference = deep_sea.DeepSea(size=size, mapping_seed=mapping_seed, seed=0)
    env = DeepSeaEnv(size, mapping_seed=mapping_seed)
    rng = np.random.default_rng(size * 100 + mapping_seed)
    for episode in range(30):
        timestep = reference.reset()
        obs, _ = env.reset(seed=episode)
        np.testing.assert_array_equal(obs, timestep.observation)
        # Half the episodes follow the "always right" path so the treasure is reached too.
        for t in range(size):
            if episode % 2:
                action = int(env.action_right[t, min(t, size - 1)])
            else:
                action = int(rng.integers(2))
            timestep = reference.step(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            np.testing.assert_array_equal(obs, timestep.observation)
            assert reward == pytest.approx(timestep.reward, abs=1e-12)
            assert terminated == timestep.last()
            assert not truncated
        assert terminated


def test_deep_sea_registered_and_passes_gymnasium_checker() -> None:
    env = gym.make("rlsoft/DeepSea-v0", size=6)
    assert env.observation_space.shape == (6, 6)
    check_env(env.unwrapped, skip_render_check=True)
    check_env(DeepSeaEnv(6, observation="index"), skip_render_check=True)


@pytest.mark.parametrize("size", [1, 3, 6, 10])
def test_deep_sea_brute_force_optimal_return(size: int) -> None:
    """Over all 2^N action sequences exactly one finds the treasure; it returns 0.99."""
    env = DeepSeaEnv(size, mapping_seed=3)
    returns = []
    for actions in itertools.product((0, 1), repeat=size):
        env.reset(seed=0)
        total = 0.0
        for action in actions:
            _, reward, terminated, _, _ = env.step(action)
            total += reward
        assert terminated
        returns.append(total)
    returns = np.array(returns)
    assert returns.max() == pytest.approx(1.0 - 0.01)
    assert env.optimal_return == pytest.approx(0.99)
    assert np.sum(returns > 0) == 1
    assert np.all(returns[returns < returns.max()] <= 0.0)


def test_deep_sea_move_cost_and_left_is_free() -> None:
    size = 8
    env = DeepSeaEnv(size, mapping_seed=0)
    env.reset(seed=0)
    right = int(env.action_right[0, 0])
    _, reward, _, _, _ = env.step(right)
    assert reward == pytest.approx(-0.01 / size)
    left = 1 - int(env.action_right[1, 1])
    obs, reward, _, _, _ = env.step(left)
    assert reward == 0.0
    assert obs[2, 0] == 1.0 and obs.sum() == 1.0  # fell one row, moved back to column 0
    assert env.bad_episode  # it left the diagonal


def test_deep_sea_mapping_is_fair_coin_per_cell() -> None:
    mapping = DeepSeaEnv(60, mapping_seed=1).action_right
    assert set(np.unique(mapping)) == {0, 1}
    assert stats.binomtest(int(mapping.sum()), mapping.size, 0.5).pvalue > 1e-3
    assert not np.array_equal(mapping, DeepSeaEnv(60, mapping_seed=2).action_right)
    np.testing.assert_array_equal(mapping, DeepSeaEnv(60, mapping_seed=1).action_right)


def test_deep_sea_index_observation() -> None:
    env = DeepSeaEnv(3, observation="index", randomize_actions=False)
    obs, _ = env.reset(seed=0)
    seen = [obs]
    for _ in range(3):
        obs, *_ = env.step(1)  # action 1 is "right" everywhere in debug mode
        seen.append(obs)
    assert seen == [0, 4, 8, 9]
    assert env.observation_space.n == 10


def test_deep_sea_stochastic_right_succeeds_with_probability_one_minus_one_over_n() -> None:
    size, trials = 4, 4000
    env = DeepSeaEnv(size, deterministic=False, randomize_actions=False)
    env.reset(seed=123)
    moved = 0
    for _ in range(trials):
        env.reset()
        obs, *_ = env.step(1)
        moved += int(obs[1, 1] == 1.0)
    assert stats.binomtest(moved, trials, 1 - 1 / size).pvalue > 1e-3
    assert env.optimal_return == pytest.approx((1 - 1 / size) ** (size - 1) - 0.01)


def test_deep_sea_bad_arguments() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        DeepSeaEnv(0)
    with pytest.raises(ValueError, match="'grid' or 'index'"):
        DeepSeaEnv(4, observation="pixels")
    env = DeepSeaEnv(1)
    env.reset(seed=0)
    env.step(0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


# ------------------------------------------------------------------------------ RiverSwim

# Strehl & Littman (2008), Figure 2, written out independently: P[s][a] = {s': p}.
_RIGHT_INTERIOR = {-1: 0.1, 0: 0.6, +1: 0.3}


def _paper_table() -> tuple[np.ndarray, np.ndarray]:
    p = np.zeros((6, 2, 6))
    r = np.zeros((6, 2, 6))
    for s in range(6):
        p[s, 0, max(s - 1, 0)] = 1.0
    for s in range(1, 5):
        for delta, prob in _RIGHT_INTERIOR.items():
            p[s, 1, s + delta] = prob
    p[0, 1, 0], p[0, 1, 1] = 0.7, 0.3
    p[5, 1, 5], p[5, 1, 4] = 0.3, 0.7
    r[0, 0, 0] = 5.0
    r[5, 1, 5] = 10_000.0
    return p, r


def test_river_swim_table_matches_paper() -> None:
    p, r = _paper_table()
    env = RiverSwimEnv()
    np.testing.assert_allclose(env.transitions, p, atol=1e-15)
    np.testing.assert_array_equal(env.rewards, r)


@pytest.mark.parametrize("state", range(6))
@pytest.mark.parametrize("action", [0, 1])
def test_river_swim_sampled_transitions_chi_square(state: int, action: int) -> None:
    p, r = _paper_table()
    env = RiverSwimEnv()
    env.reset(seed=state * 2 + action)
    counts = np.zeros(6)
    trials = 3000
    for _ in range(trials):
        env.reset(options={"state": state})
        nxt, reward, terminated, truncated, _ = env.step(action)
        counts[nxt] += 1
        assert reward == r[state, action, nxt]
        assert not terminated and not truncated
    support = p[state, action] > 0
    assert counts[~support].sum() == 0
    if support.sum() > 1:
        expected = p[state, action, support] * trials
        assert stats.chisquare(counts[support], expected).pvalue > 1e-4


def test_river_swim_starts_in_state_one_or_two() -> None:
    env = gym.make("rlsoft/RiverSwim-v0")
    starts = [env.reset(seed=s)[0] for s in range(400)]
    assert set(starts) == {1, 2}
    assert stats.binomtest(starts.count(1), 400, 0.5).pvalue > 1e-3
    assert env.spec.max_episode_steps == 1000
    check_env(env.unwrapped, skip_render_check=True)
    with pytest.raises(ValueError, match=r"state 0\.\.5"):
        env.reset(options={"state": 6})


def test_river_swim_optimal_policy_swims_right() -> None:
    """Value iteration on the paper's table (γ = 0.95): swimming right is optimal everywhere."""
    p, r = _paper_table()
    gamma, v = 0.95, np.zeros(6)
    for _ in range(5000):
        q = np.einsum("sat,sat->sa", p, r) + gamma * p @ v
        v = q.max(axis=1)
    assert np.all(q.argmax(axis=1) == 1)
