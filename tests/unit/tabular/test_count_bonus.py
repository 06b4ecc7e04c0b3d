"""The count-based exploration bonus β/√n(s, a) of every tabular agent (MBIE-EB, Strehl &
Littman 2008), checked against a brute-force replay written here: a fixed sequence of
transitions on a tiny MDP, with the visit counts, bonuses and targets recomputed by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from gymnasium.spaces import Discrete
from scipy.special import logsumexp as scipy_logsumexp

from agents.tabular.agent import (
    DoubleQLearning,
    ExpectedSarsa,
    QLearning,
    Sarsa,
    SoftQLearning,
    TabularAgent,
)
from rlsoft.errors import ConfigError, RlsoftError
from rlsoft.explore.policies import Boltzmann, EpsilonGreedy, EzGreedy, Policy
from rlsoft.rl.agent import BuildContext, get_agent_spec
from rlsoft.run.config import validate_agent_section

ALPHA, GAMMA, BETA, TAU, EPS = 0.5, 0.9, 2.0, 0.7, 0.2

# (s, a, r, s′, terminated, truncated) on 3 states × 2 actions: pairs revisited up to four
# times, a self-loop, a termination (bonus but no bootstrap) and a truncation (bootstrap).
TRANSITIONS = [
    (0, 1, 0.0, 1, False, False),
    (1, 0, 1.0, 2, False, False),
    (0, 1, 0.0, 1, False, False),
    (2, 1, -1.0, 2, False, False),
    (1, 0, 1.0, 0, True, False),
    (0, 1, 0.5, 1, False, False),
    (1, 1, 0.0, 2, False, True),
    (2, 1, -1.0, 2, False, False),
    (0, 1, 0.0, 0, False, False),
    (0, 0, 2.0, 1, False, False),
]


def make(cls: type[TabularAgent], policy: Policy | None = None, **kwargs) -> TabularAgent:
    return cls(
        observation_space=Discrete(3),
        action_space=Discrete(2),
        policy=policy if policy is not None else EpsilonGreedy(EPS),
        rng=np.random.default_rng(0),
        learning_rate=ALPHA,
        gamma=GAMMA,
        count_bonus=BETA,
        **kwargs,
    )


def _bootstrap(cls: type[TabularAgent], row: np.ndarray, next_action: int | None) -> float:
    """The member's value of s′ from the reference row, each written independently."""
    if cls is QLearning:
        return float(row.max())
    if cls is Sarsa:
        return float(row[next_action])
    if cls is ExpectedSarsa:  # ε-greedy: (1 − ε)·max + ε·mean (the tied maxima all equal max)
        return (1 - EPS) * float(row.max()) + EPS * float(row.mean())
    if cls is SoftQLearning:
        return TAU * float(scipy_logsumexp(row / TAU))
    raise AssertionError(cls)


@pytest.mark.parametrize("cls", [QLearning, Sarsa, ExpectedSarsa, SoftQLearning])
@pytest.mark.parametrize("initial_q", [0.0, 3.0])
def test_replayed_sequence_matches_brute_force(cls, initial_q):
    extra = {"temperature": TAU} if cls is SoftQLearning else {}
    agent = make(cls, initial_q=initial_q, **extra)
    ref = np.full((3, 2), initial_q)
    counts: dict[tuple[int, int], int] = {}
    bonuses = []
    for step, (s, a, r, s2, terminated, truncated) in enumerate(TRANSITIONS):
        before = ref.copy()
        agent.observe(s, a, r, s2, terminated, truncated, step)
        counts[(s, a)] = counts.get((s, a), 0) + 1
        bonus = BETA / math.sqrt(counts[(s, a)])  # n counts this visit: n ≥ 1
        bonuses.append(bonus)
        # SARSA's a′ is the pending action the next act() returns (no new draw).
        next_action = agent.act(s2, step + 1) if cls is Sarsa and not terminated else None
        target = r + bonus
        if not terminated:
            target += GAMMA * _bootstrap(cls, before[s2], next_action)
        ref[s, a] = before[s, a] + ALPHA * (target - before[s, a])
        np.testing.assert_allclose(agent.q_values(np.arange(3)), ref, rtol=0, atol=1e-12)
    expected_counts = np.zeros((3, 2), dtype=np.int64)
    for (s, a), n in counts.items():
        expected_counts[s, a] = n
    np.testing.assert_array_equal(agent.visit_counts(), expected_counts)
    assert agent.metrics()["exploration/bonus"] == pytest.approx(np.mean(bonuses), abs=1e-12)
    assert "exploration/bonus" not in agent.metrics()  # the window was reset


def test_double_q_adds_the_bonus_to_whichever_table_it_updates():
    agent = make(DoubleQLearning)
    qa, qb = np.zeros((3, 2)), np.zeros((3, 2))
    counts: dict[tuple[int, int], int] = {}
    updated = set()
    for step, (s, a, r, s2, terminated, truncated) in enumerate(TRANSITIONS):
        agent.observe(s, a, r, s2, terminated, truncated, step)
        tables = agent.get_tables()
        changed_a = not np.array_equal(tables["q_a"], qa)
        changed_b = not np.array_equal(tables["q_b"], qb)
        assert changed_a != changed_b  # exactly one table moves
        this, other = (qa, qb) if changed_a else (qb, qa)
        updated.add("a" if changed_a else "b")
        # The counts are of the pair, shared by both tables.
        counts[(s, a)] = counts.get((s, a), 0) + 1
        target = r + BETA / math.sqrt(counts[(s, a)])
        # Ties in the selecting table are broken at random by the agent: every tied action's
        # evaluation by the other table is a valid target.
        bootstraps = [0.0]
        if not terminated:
            best = np.flatnonzero(this[s2] == this[s2].max())
            bootstraps = [GAMMA * float(other[s2, b]) for b in best]
        candidates = [this[s, a] + ALPHA * (target + v - this[s, a]) for v in bootstraps]
        got = (tables["q_a"] if changed_a else tables["q_b"])[s, a]
        assert min(abs(got - c) for c in candidates) <= 1e-12
        this[s, a] = got
        np.testing.assert_allclose(tables["q_a"], qa, rtol=0, atol=1e-12)
        np.testing.assert_allclose(tables["q_b"], qb, rtol=0, atol=1e-12)
    assert updated == {"a", "b"}


def test_zero_bonus_keeps_no_counts_and_logs_no_bonus(tmp_path: Path):
    agent = make(QLearning, policy=None)
    plain = QLearning(
        observation_space=Discrete(3),
        action_space=Discrete(2),
        policy=EpsilonGreedy(EPS),
        rng=np.random.default_rng(0),
        learning_rate=ALPHA,
        gamma=GAMMA,
    )
    for step, t in enumerate(TRANSITIONS):
        plain.observe(*t, step)
        agent.observe(*t, step)
    assert plain.visit_counts() is None
    assert "exploration/bonus" not in plain.metrics()
    assert "observe" not in vars(plain)  # the class's own update rule, no wrapper
    plain.save(tmp_path / "plain.npz")
    with np.load(tmp_path / "plain.npz", allow_pickle=False) as archive:
        assert "visit_counts" not in archive.files
    # β > 0 really changed the values (the bonus is not a no-op).
    assert not np.array_equal(plain.get_tables()["q"], agent.get_tables()["q"])


POLICIES = {"boltz": lambda: Boltzmann(1.0), "ez": lambda: EzGreedy(0.5, mu=1.5)}


@pytest.mark.parametrize("cls", [QLearning, Sarsa, ExpectedSarsa, DoubleQLearning, SoftQLearning])
@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_counts_and_bonus_window_survive_a_checkpoint(cls, policy, tmp_path: Path):
    def fresh(seed: int) -> TabularAgent:
        return cls(
            observation_space=Discrete(3),
            action_space=Discrete(2),
            policy=POLICIES[policy](),
            rng=np.random.default_rng(seed),
            learning_rate=ALPHA,
            count_bonus=BETA,
        )

    agent = fresh(1)
    for step, t in enumerate(TRANSITIONS[:6]):
        agent.act(t[0], step)
        agent.observe(*t, step)
    agent.save(tmp_path / "agent.npz")
    restored = fresh(7)
    restored.load(tmp_path / "agent.npz")
    # A policy's own state travels with the training loop's state, not the agent file.
    restored.policy.load_state_dict(agent.policy.state_dict())
    np.testing.assert_array_equal(restored.visit_counts(), agent.visit_counts())
    for step, t in enumerate(TRANSITIONS[6:], start=6):
        for each in (agent, restored):
            each.act(t[0], step)
            each.observe(*t, step)
    for name, table in agent.get_tables().items():
        np.testing.assert_array_equal(restored.get_tables()[name], table)
    np.testing.assert_array_equal(restored.visit_counts(), agent.visit_counts())
    assert restored.metrics() == agent.metrics()


def test_a_checkpoint_with_or_without_counts_needs_the_same_setting(tmp_path: Path):
    with_bonus = make(QLearning)
    with_bonus.observe(*TRANSITIONS[0], 0)
    with_bonus.save(tmp_path / "bonus.npz")
    without = QLearning(
        observation_space=Discrete(3),
        action_space=Discrete(2),
        policy=EpsilonGreedy(EPS),
        rng=np.random.default_rng(0),
    )
    with pytest.raises(RlsoftError, match="with a count bonus"):
        without.load(tmp_path / "bonus.npz")
    without.save(tmp_path / "plain.npz")
    with pytest.raises(RlsoftError, match="without a count bonus"):
        make(QLearning).load(tmp_path / "plain.npz")


@pytest.mark.parametrize("value", [-0.1, math.inf, math.nan])
def test_config_and_constructor_refuse_a_bad_bonus(value):
    with pytest.raises(ConfigError, match=r"agent\.count_bonus"):
        validate_agent_section({"type": "q_learning", "count_bonus": value})
    with pytest.raises(ValueError, match="count_bonus"):
        QLearning(
            observation_space=Discrete(3),
            action_space=Discrete(2),
            policy=EpsilonGreedy(EPS),
            rng=np.random.default_rng(0),
            count_bonus=value,
        )


@pytest.mark.parametrize(
    "name", ["q_learning", "sarsa", "expected_sarsa", "double_q_learning", "soft_q_learning"]
)
def test_every_agent_reads_count_bonus_from_its_config(name):
    config = validate_agent_section({"type": name, "count_bonus": 0.25})
    agent = get_agent_spec(name).build(
        BuildContext(
            config=config,
            observation_space=Discrete(4),
            action_space=Discrete(2),
            policy=EpsilonGreedy(0.1),
            rng=np.random.default_rng(0),
            torch_seed=0,
        )
    )
    assert agent.count_bonus == 0.25
    agent.observe(0, 1, 0.0, 1, True, False, 0)
    assert agent.visit_counts()[0, 1] == 1
    assert agent.metrics()["exploration/bonus"] == pytest.approx(0.25)
