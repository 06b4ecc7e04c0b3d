"""εz-greedy (Dabney, Ostrovski & Barreto 2021): zeta-distributed durations against
scipy.stats.zipf (the zeta law) by chi-square goodness-of-fit tests (fixed seeds, p > 1e-3),
options that continue and are cancelled, per-environment state, ε = 0 being greedy, the
documented distribution and expectation, checkpointed state and the config."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import chisquare, zipf

from rlsoft.errors import ConfigError
from rlsoft.explore.policies import EpsilonGreedy, EzGreedy, sample_zeta
from rlsoft.explore.schedules import LinearSchedule
from rlsoft.explore.uniform_stream import UniformStream
from rlsoft.run.config import ExplorationConfig, validate_config

ALPHA = 1e-3
N = 20_000


def zeta_chisquare(durations, mu: float) -> float:
    """p-value of durations against zeta(μ): bins n = 1 … K (each expecting ≥ 5 draws) and
    the tail n > K, with the bin probabilities of scipy.stats.zipf."""
    durations = np.asarray(durations)
    assert durations.min() >= 1
    law = zipf(mu)
    k = 1
    while k < 60 and len(durations) * law.pmf(k + 1) >= 5:
        k += 1
    observed = [np.sum(durations == n) for n in range(1, k + 1)] + [np.sum(durations > k)]
    expected = [law.pmf(n) for n in range(1, k + 1)] + [law.sf(k)]
    expected = np.array(expected) * len(durations)
    return float(chisquare(observed, expected).pvalue)


@pytest.mark.parametrize("mu", [1.5, 2.0, 3.0])
def test_sample_zeta_follows_the_zeta_law(mu):
    rng = np.random.default_rng(int(mu * 10))
    durations = [sample_zeta(mu, rng.random) for _ in range(N)]
    assert zeta_chisquare(durations, mu) > ALPHA


def test_the_goodness_of_fit_test_rejects_a_neighbouring_law():
    # The test has the power to tell μ = 2 from μ = 2.2 at this sample size.
    rng = np.random.default_rng(1)
    durations = [sample_zeta(2.2, rng.random) for _ in range(N)]
    assert zeta_chisquare(durations, 2.0) < 1e-6


# Each step starts an option (ε = 1); its duration is read at once and the option is then
# cancelled (as an episode end would), so every step yields one draw. Letting the options run
# would take as many steps as the durations add up to: with μ = 1.5 the sum of 20,000 draws
# is dominated by the largest, of order 20,000² steps.


def _durations_by_row_sampler(mu: float, seed: int) -> list[int]:
    policy = EzGreedy(1.0, mu=mu)
    sample = policy.row_sampler(UniformStream(np.random.default_rng(seed)).uniform)
    durations = []
    for step in range(N):
        assert policy.running() is None
        sample([0.0, 1.0, 2.0], step)
        option = policy.running()  # this step drew a duration: 1 + the remaining steps
        durations.append(1 if option is None else option[1] + 1)
        policy.end_episode(0)
    return durations


def _durations_by_select(mu: float, seed: int, envs: int = 4) -> list[int]:
    policy = EzGreedy(1.0, mu=mu)
    rng = np.random.default_rng(seed)
    q = np.zeros((envs, 3))
    durations = []
    while len(durations) < N:
        policy.select(q, rng)
        for i in range(envs):
            option = policy.running(i)
            durations.append(1 if option is None else option[1] + 1)
            policy.end_episode(i)
    return durations


@pytest.mark.parametrize("path", ["row_sampler", "select"])
@pytest.mark.parametrize("mu", [1.5, 2.0])
def test_the_policys_durations_follow_the_zeta_law(path, mu):
    durations = (_durations_by_row_sampler if path == "row_sampler" else _durations_by_select)(
        mu, seed=3
    )
    assert zeta_chisquare(durations, mu) > ALPHA


def test_repeat_length_metric_is_the_mean_sampled_duration():
    policy = EzGreedy(1.0, mu=2.5)
    sample = policy.row_sampler(UniformStream(np.random.default_rng(0)).uniform)
    durations = []
    for step in range(500):
        starts = policy.running() is None
        sample([0.0, 0.0], step)
        if starts:
            option = policy.running()
            durations.append(1 if option is None else option[1] + 1)
    assert policy.metrics() == {"exploration/repeat_length": pytest.approx(np.mean(durations))}
    assert policy.metrics() == {}  # nothing started since


def _seed_with_long_option(mu: float, at_least: int) -> int:
    """A seed whose first option (ε = 1 at step 0) lasts at least ``at_least`` steps."""
    for seed in range(1000):
        policy = EzGreedy(1.0, mu=mu)
        policy.select(np.array([0.0, 1.0, 0.0, 0.0]), np.random.default_rng(seed))
        option = policy.running()
        if option is not None and option[1] + 1 >= at_least and option[0] != 1:
            return seed
    raise AssertionError("no seed found")


def test_an_option_keeps_its_action_after_epsilon_drops_to_zero_then_ends():
    # ε = 1 at step 0 only: the option drawn there runs to its end against the greedy action.
    seed = _seed_with_long_option(1.3, at_least=5)
    policy = EzGreedy(LinearSchedule(1.0, 0.0, duration=1), mu=1.3)
    rng = np.random.default_rng(seed)
    q = np.array([0.0, 1.0, 0.0, 0.0])  # greedy: action 1
    first = policy.select(q, rng, step=0)
    action, remaining = policy.running()
    assert first == action != 1
    for step in range(1, remaining + 1):
        assert policy.select(q, rng, step=step) == action
        option = policy.running()
        assert (option[1] if option else 0) == remaining - step  # one step fewer each time
    assert policy.running() is None
    assert [policy.select(q, rng, step=s) for s in range(100, 110)] == [1] * 10


def test_an_episode_end_cancels_the_option_of_that_environment_only():
    policy = EzGreedy(0.0)  # ε = 0: only the options set below explore
    policy.load_state_dict({"remaining": [4, 4], "action": [0, 2], "duration_sum": 0, "options": 0})
    rng = np.random.default_rng(0)
    q = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 5.0]])  # greedy: 1 and 3
    np.testing.assert_array_equal(policy.select(q, rng), [0, 2])
    policy.end_episode(1)
    assert policy.running(1) is None and policy.running(0) == (0, 3)
    np.testing.assert_array_equal(policy.select(q, rng), [0, 3])
    policy.end_episode(0)
    np.testing.assert_array_equal(policy.select(q, rng), [1, 3])
    policy.end_episode(7)  # an environment the policy has not seen: nothing to cancel


def test_the_row_sampler_is_environment_0_of_the_same_state():
    seed = _seed_with_long_option(1.3, at_least=3)
    policy = EzGreedy(1.0, mu=1.3)
    policy.select(np.array([0.0, 1.0, 0.0, 0.0]), np.random.default_rng(seed))
    action, remaining = policy.running()
    sample = policy.row_sampler(UniformStream(np.random.default_rng(0)).uniform)
    assert [sample([0.0, 9.0, 0.0, 0.0], s) for s in range(remaining)] == [action] * remaining
    policy.end_episode(0)
    assert policy.running() is None


@pytest.mark.parametrize("path", ["row_sampler", "select_row", "select_batch"])
def test_epsilon_zero_is_greedy_and_starts_no_option(path):
    rng = np.random.default_rng(0)
    policy = EzGreedy(0.0)
    rows = rng.normal(size=(2000, 4))
    if path == "row_sampler":
        sample = policy.row_sampler(UniformStream(np.random.default_rng(1)).uniform)
        actions = [sample(row.tolist(), i) for i, row in enumerate(rows)]
    elif path == "select_row":
        actions = [policy.select(row, rng) for row in rows]
    else:
        actions = np.concatenate([policy.select(rows[i : i + 8], rng) for i in range(0, 2000, 8)])
    np.testing.assert_array_equal(actions, rows.argmax(axis=1))
    assert policy.metrics() == {}
    # Tied maxima are still split at random, as greedy does.
    tied = [policy.select(np.array([1.0, 0.0, 1.0]), rng) for _ in range(3000)]
    assert chisquare(np.bincount(tied, minlength=3)[[0, 2]]).pvalue > ALPHA
    assert 1 not in tied


def test_option_actions_are_uniform_and_respect_the_mask():
    rng = np.random.default_rng(5)
    policy = EzGreedy(1.0, mu=3.0)
    q = np.zeros((1, 4))
    mask = np.array([[True, False, True, True]])
    actions = [int(policy.select(q, rng, mask=mask)[0]) for _ in range(6000)]
    counts = np.bincount(actions, minlength=4)
    assert counts[1] == 0
    assert chisquare(counts[[0, 2, 3]]).pvalue > ALPHA


def test_an_option_whose_action_becomes_disallowed_ends():
    policy = EzGreedy(0.0)
    policy.load_state_dict({"remaining": [5], "action": [2], "duration_sum": 0, "options": 0})
    rng = np.random.default_rng(0)
    q = np.array([[0.0, 1.0, 0.0, 0.0]])
    mask = np.array([[True, True, False, True]])
    assert policy.select(q, rng, mask=mask)[0] == 1  # decided afresh (ε = 0: greedy)
    assert policy.running() is None


@pytest.mark.parametrize("eps", [0.0, 0.3, 1.0])
def test_probs_and_entropy_are_those_of_a_fresh_decision(eps):
    q = np.array([2.0, 0.0, 1.0])
    # A fresh decision: ε uniform over 3 actions, 1 − ε on the greedy one.
    expected = np.array([1 - eps + eps / 3, eps / 3, eps / 3])
    policy = EzGreedy(eps)
    np.testing.assert_allclose(policy.probs(q), expected, atol=1e-15)
    h = -sum(p * math.log(p) for p in expected if p > 0)
    assert policy.entropy(q) == pytest.approx(h, abs=1e-12)


def test_expectation_follows_the_running_option():
    q = [3.0, -1.0, 0.5]
    policy = EzGreedy(0.3)
    fresh = 0.7 * 3.0 + 0.3 * (3.0 - 1.0 + 0.5) / 3
    assert policy.expectation(q) == pytest.approx(fresh)
    policy.load_state_dict({"remaining": [2], "action": [1], "duration_sum": 3, "options": 1})
    assert policy.expectation(q) == -1.0  # the next action is certainly the option's
    policy.end_episode(0)
    assert policy.expectation(q) == pytest.approx(fresh)


def test_state_survives_json_and_continues_identically():
    a = EzGreedy(0.4, mu=1.5)
    rng = np.random.default_rng(2)
    q = rng.normal(size=(3, 4))
    for step in range(50):
        a.select(q, rng, step=step)
    state = json.loads(json.dumps(a.state_dict()))
    b = EzGreedy(0.4, mu=1.5)
    b.load_state_dict(state)
    rng_b = np.random.default_rng()
    rng_b.bit_generator.state = rng.bit_generator.state
    for step in range(50, 200):
        np.testing.assert_array_equal(a.select(q, rng, step=step), b.select(q, rng_b, step=step))
    assert a.state_dict() == b.state_dict()
    assert a.metrics() == b.metrics()


def test_a_memoryless_policy_has_no_state():
    policy = EpsilonGreedy(0.1)
    assert not policy.stateful and policy.state_dict() == {} and policy.metrics() == {}


@pytest.mark.parametrize("mu", [1.0, 0.5, math.inf, True, "2"])
def test_mu_must_be_a_zeta_exponent(mu):
    with pytest.raises(ValueError, match="mu"):
        EzGreedy(0.1, mu=mu)


def test_config_builds_ez_greedy_and_names_a_bad_mu():
    policy = ExplorationConfig(policy="ez_greedy", epsilon=0.2, mu=1.7).build()
    assert isinstance(policy, EzGreedy) and policy.mu == 1.7 and policy.parameter(0) == 0.2
    assert policy.describe() == {
        "policy": "EzGreedy",
        "epsilon": {"type": "constant", "value": 0.2},
        "mu": 1.7,
    }
    base = {"env": {"id": "FrozenLake-v1"}, "agent": {"type": "q_learning"}}
    with pytest.raises(ConfigError, match=r"exploration\.mu"):
        validate_config({**base, "exploration": {"policy": "ez_greedy", "mu": 1.0}})
