"""Greedy and ε-greedy evaluation against the policy's formula (chi-square and binomial
tests from scipy), and the cap on an episode's length."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from scipy import stats

from rlsoft.errors import RlsoftError
from rlsoft.rl import evaluation
from rlsoft.rl.evaluation import evaluate_greedy


class CountingEnv(gym.Env):
    """One observation, ``n`` actions, episodes of ``length`` steps; counts the actions."""

    def __init__(self, n: int = 4, length: int = 50) -> None:
        self.observation_space = gym.spaces.Discrete(1)
        self.action_space = gym.spaces.Discrete(n)
        self.length, self.t = length, 0
        self.counts = np.zeros(n, dtype=np.int64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return 0, {}

    def step(self, action):
        self.counts[action] += 1
        self.t += 1
        return 0, float(action == 2), self.t >= self.length, False, {}


class Greedy:
    def act_greedy(self, obs) -> int:
        return 2


def test_epsilon_zero_is_greedy_and_draws_nothing() -> None:
    env, rng = CountingEnv(), np.random.default_rng(0)
    before = rng.bit_generator.state
    returns, lengths = evaluate_greedy(Greedy(), env, 3, seed=7, epsilon=0.0, rng=rng)
    assert returns.tolist() == [50.0] * 3 and lengths.tolist() == [50] * 3
    assert env.counts.tolist() == [0, 0, 150, 0]
    assert rng.bit_generator.state == before


def test_epsilon_one_is_uniform_chi_square() -> None:
    env = CountingEnv(n=4, length=1000)
    evaluate_greedy(Greedy(), env, 8, seed=0, epsilon=1.0, rng=np.random.default_rng(3))
    assert stats.chisquare(env.counts).pvalue > 1e-3  # 8,000 draws, H0: uniform over 4


@pytest.mark.parametrize("epsilon", [0.05, 0.3])
def test_the_greedy_action_has_probability_one_minus_epsilon_plus_epsilon_over_n(epsilon) -> None:
    env = CountingEnv(n=4, length=1000)
    evaluate_greedy(Greedy(), env, 10, seed=0, epsilon=epsilon, rng=np.random.default_rng(5))
    p_greedy = 1 - epsilon + epsilon / 4  # π(a*|s) of ε-greedy
    assert stats.binomtest(int(env.counts[2]), int(env.counts.sum()), p_greedy).pvalue > 1e-3
    others = np.delete(env.counts, 2)  # the other actions: uniform among themselves
    assert stats.chisquare(others).pvalue > 1e-3


def test_the_draws_follow_the_generator_and_default_to_the_seed() -> None:
    a, b, c = CountingEnv(), CountingEnv(), CountingEnv()
    evaluate_greedy(Greedy(), a, 4, seed=11, epsilon=0.5, rng=np.random.default_rng(11))
    evaluate_greedy(Greedy(), b, 4, seed=11, epsilon=0.5)  # default_rng(seed)
    evaluate_greedy(Greedy(), c, 4, seed=11, epsilon=0.5, rng=np.random.default_rng(12))
    assert a.counts.tolist() == b.counts.tolist() != c.counts.tolist()


def test_bad_epsilons_and_continuous_actions_are_refused() -> None:
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="epsilon must be in"):
            evaluate_greedy(Greedy(), CountingEnv(), 1, seed=0, epsilon=bad)
    box = gym.make("Pendulum-v1")
    with pytest.raises(RlsoftError, match="ε-greedy evaluation needs a Discrete action space"):
        evaluate_greedy(Greedy(), box, 1, seed=0, epsilon=0.1)
    box.close()


def test_an_episode_stops_at_the_cap_with_the_return_it_had(monkeypatch) -> None:
    monkeypatch.setattr(evaluation, "MAX_EVAL_EPISODE_STEPS", 30)
    returns, lengths = evaluate_greedy(Greedy(), CountingEnv(length=10**6), 2, seed=0)
    assert lengths.tolist() == [30, 30] and returns.tolist() == [30.0, 30.0]
