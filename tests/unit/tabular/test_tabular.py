"""Tabular agents: update rules against hand-computed targets, bootstrapping, exploration,
checkpoints, spaces, configs and a small learning smoke test.

Expected numbers are worked out by hand in the comments or with an independent formula
(scipy.special), never by calling the code under test.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.spaces import Box, Discrete
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from scipy.special import logsumexp as scipy_logsumexp
from scipy.special import softmax as scipy_softmax
from scipy.stats import chisquare

import agents
from agents.tabular.agent import (
    DoubleQLearning,
    ExpectedSarsa,
    QLearning,
    QLearningConfig,
    Sarsa,
    SoftQLearning,
    SoftQLearningConfig,
    TabularAgent,
)
from rlsoft.errors import ConfigError, RlsoftError
from rlsoft.explore.policies import Boltzmann, EpsilonGreedy, Greedy, Policy
from rlsoft.explore.schedules import LinearSchedule
from rlsoft.numerics import functional as F
from rlsoft.rl.agent import Agent, BuildContext, agent_names, get_agent_spec
from rlsoft.run.config import validate_agent_section

ALL_AGENTS = [QLearning, Sarsa, ExpectedSarsa, DoubleQLearning, SoftQLearning]
NAMES = ["q_learning", "sarsa", "expected_sarsa", "double_q_learning", "soft_q_learning"]


def make(
    cls: type[TabularAgent] = QLearning,
    *,
    states: int = 3,
    actions: int = 2,
    policy: Policy | None = None,
    seed: int = 0,
    **kwargs,
) -> TabularAgent:
    return cls(
        observation_space=Discrete(states),
        action_space=Discrete(actions),
        policy=policy if policy is not None else EpsilonGreedy(0.0),
        rng=np.random.default_rng(seed),
        **kwargs,
    )


def set_q(agent: TabularAgent, table) -> None:
    """Give every table of ``agent`` the values ``table`` (both tables for Double Q)."""
    names = agent.get_tables()
    agent.set_tables({name: np.array(table, dtype=float) for name in names})


def q_table(agent: TabularAgent) -> np.ndarray:
    return agent.q_values(np.arange(agent.n_states))


# --------------------------------------------------------------------------------------------
# Update rules on one hand-made transition
# --------------------------------------------------------------------------------------------


def test_q_learning_update():
    agent = make(QLearning, learning_rate=0.5, gamma=0.9)
    set_q(agent, [[0.5, 0.0], [1.0, 3.0], [0.0, 0.0]])
    agent.observe(0, 0, 1.0, 1, False, False, 0)
    # target = 1 + 0.9·max(1, 3) = 3.7;  0.5 + 0.5·(3.7 − 0.5) = 2.1
    expected = np.array([[2.1, 0.0], [1.0, 3.0], [0.0, 0.0]])
    np.testing.assert_allclose(q_table(agent), expected, rtol=0, atol=1e-12)


def test_sarsa_bootstraps_from_the_action_it_then_takes():
    seen = set()
    for seed in range(30):
        agent = make(
            Sarsa, actions=3, policy=EpsilonGreedy(1.0), seed=seed, learning_rate=0.5, gamma=0.9
        )
        set_q(agent, [[0.0, 0.0, 0.0], [1.0, 5.0, 2.0], [0.0, 0.0, 0.0]])
        agent.observe(0, 0, 1.0, 1, False, False, 0)
        next_action = agent.act(1, 1)
        seen.add(next_action)
        # target = 1 + 0.9·Q(1, a′); 0 + 0.5·target
        assert q_table(agent)[0, 0] == pytest.approx(
            0.5 * (1.0 + 0.9 * [1.0, 5.0, 2.0][next_action])
        )
    assert seen == {0, 1, 2}  # a′ really comes from the (uniform) behaviour policy


def test_sarsa_draws_its_next_action_at_the_next_step():
    # ε is 1 at step 0 and 0 from step 1 on: a′ drawn for step 1 must be greedy.
    for seed in range(10):
        policy = EpsilonGreedy(LinearSchedule(1.0, 0.0, duration=1))
        agent = make(Sarsa, actions=3, policy=policy, seed=seed)
        set_q(agent, [[0.0] * 3, [0.0, 9.0, 0.0], [0.0] * 3])
        agent.observe(0, 0, 0.0, 1, False, False, 0)
        assert agent.act(1, 1) == 1


def test_sarsa_pending_action_is_used_once():
    agent = make(Sarsa, actions=3, policy=EpsilonGreedy(1.0))
    agent.observe(0, 0, 0.0, 1, False, False, 0)
    before = agent.stream.state_dict()
    agent.act(1, 1)
    assert agent.stream.state_dict() == before  # the pending a′, no new draw
    agent.act(1, 2)
    assert agent.stream.state_dict() != before  # a fresh sample


@pytest.mark.parametrize("ended", ["terminated", "truncated"])
def test_sarsa_samples_afresh_after_an_episode_ends(ended):
    agent = make(Sarsa, actions=3, policy=EpsilonGreedy(1.0))
    agent.observe(0, 0, 0.0, 1, ended == "terminated", ended == "truncated", 0)
    # The loop resets; even if the reset state equals s′, act() must draw a new action.
    before = agent.stream.state_dict()
    agent.act(1, 1)
    assert agent.stream.state_dict() != before


def test_expected_sarsa_with_epsilon_greedy():
    agent = make(ExpectedSarsa, actions=3, policy=EpsilonGreedy(0.3), learning_rate=1.0, gamma=1.0)
    set_q(agent, [[0.0] * 3, [1.0, 3.0, 2.0], [3.0, 3.0, 0.0]])
    agent.observe(0, 0, 0.0, 1, False, False, 0)
    # π = 0.7·onehot(1) + 0.3/3 = (0.1, 0.8, 0.1): 0.1·1 + 0.8·3 + 0.1·2 = 2.7
    assert q_table(agent)[0, 0] == pytest.approx(2.7, abs=1e-12)
    agent.observe(0, 1, 0.0, 2, False, False, 1)
    # tied maxima share the greedy mass: π = (0.45, 0.45, 0.1): 0.45·3 + 0.45·3 = 2.7
    assert q_table(agent)[0, 1] == pytest.approx(2.7, abs=1e-12)


def test_expected_sarsa_with_boltzmann():
    row = np.array([1.0, 3.0, 2.0])
    agent = make(ExpectedSarsa, actions=3, policy=Boltzmann(0.5), learning_rate=0.5, gamma=0.9)
    set_q(agent, [[0.25, 0.0, 0.0], row, [0.0] * 3])
    agent.observe(0, 0, 1.0, 1, False, False, 0)
    expectation = scipy_softmax(row / 0.5) @ row
    expected = 0.25 + 0.5 * (1.0 + 0.9 * expectation - 0.25)
    assert q_table(agent)[0, 0] == pytest.approx(expected, rel=1e-12)


def test_expected_sarsa_uses_the_policy_at_the_next_step():
    policy = EpsilonGreedy(LinearSchedule(1.0, 0.0, duration=1))
    agent = make(ExpectedSarsa, actions=3, policy=policy, learning_rate=1.0, gamma=1.0)
    set_q(agent, [[0.0] * 3, [0.0, 9.0, 0.0], [0.0] * 3])
    agent.observe(0, 0, 0.0, 1, False, False, 0)
    assert q_table(agent)[0, 0] == pytest.approx(9.0)  # greedy at step 1, not uniform (3.0)


def test_double_q_updates_one_table_evaluated_by_the_other():
    qa = np.array([[0.0, 0.0], [5.0, 1.0]])
    qb = np.array([[0.0, 0.0], [2.0, 7.0]])
    updated = set()
    for seed in range(40):
        agent = make(DoubleQLearning, states=2, seed=seed, learning_rate=0.5, gamma=0.9)
        agent.set_tables({"q_a": qa, "q_b": qb})
        agent.observe(0, 0, 1.0, 1, False, False, 0)
        tables = agent.get_tables()
        if not np.array_equal(tables["q_a"], qa):
            # A picks argmax Q_A(1) = 0, B evaluates it: 1 + 0.9·2 = 2.8; 0.5·2.8 = 1.4
            assert tables["q_a"][0, 0] == pytest.approx(1.4)
            np.testing.assert_array_equal(tables["q_b"], qb)
            updated.add("a")
        else:
            # B picks argmax Q_B(1) = 1, A evaluates it: 1 + 0.9·1 = 1.9; 0.5·1.9 = 0.95
            assert tables["q_b"][0, 0] == pytest.approx(0.95)
            updated.add("b")
        # Acting and q_values use the mean of the two tables.
        np.testing.assert_allclose(
            agent.q_values(np.arange(2)), (tables["q_a"] + tables["q_b"]) / 2, atol=1e-15
        )
    assert updated == {"a", "b"}  # a fair coin chooses the table


def test_soft_q_target_is_temperature_scaled_logsumexp():
    row = np.array([1.0, 2.0, 3.0])
    agent = make(SoftQLearning, actions=3, learning_rate=0.5, gamma=0.9, temperature=0.5)
    set_q(agent, [[0.0] * 3, row, [0.0] * 3])
    agent.observe(0, 0, 1.0, 1, False, False, 0)
    expected = 0.5 * (1.0 + 0.9 * 0.5 * scipy_logsumexp(row / 0.5))
    assert q_table(agent)[0, 0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("row", [[1.0, 2.0, 3.0], [3.0, 3.0, 0.0], [-4.0, 1e3, 1e3]])
@pytest.mark.parametrize("tau", [1e-6, 1e-300, 5e-324])
def test_soft_q_tends_to_q_learning(row, tau):
    soft = make(SoftQLearning, actions=3, learning_rate=0.5, gamma=0.9, temperature=tau)
    hard = make(QLearning, actions=3, learning_rate=0.5, gamma=0.9)
    for agent in (soft, hard):
        set_q(agent, [[0.0] * 3, row, [0.0] * 3])
        agent.observe(0, 0, 1.0, 1, False, False, 0)
    # 0.5·(1 + 0.9·max row); the soft target adds at most τ·log 3
    assert q_table(hard)[0, 0] == pytest.approx(0.5 * (1.0 + 0.9 * max(row)))
    assert q_table(soft)[0, 0] == pytest.approx(q_table(hard)[0, 0], abs=1e-5)


@given(
    row=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=8),
    tau=st.floats(1e-3, 1e3),
)
def test_soft_q_inlined_target_is_row_logsumexp_bit_for_bit(row, tau):
    """Soft Q's per-step target inlines F.row_logsumexp for speed: the copy must agree
    exactly, and the shared kernel with scipy's logsumexp."""
    reference = tau * scipy_logsumexp(np.array(row) / tau)
    ours = F.row_logsumexp(row, tau)
    assert ours == pytest.approx(reference, rel=1e-9, abs=1e-9)
    assert ours == pytest.approx(float(F.logsumexp(np.array(row), temperature=tau)), rel=1e-12)
    agent = make(SoftQLearning, actions=len(row), learning_rate=1.0, gamma=1.0, temperature=tau)
    set_q(agent, [[0.0] * len(row), row, [0.0] * len(row)])
    agent.observe(0, 0, 0.0, 1, False, False, 0)
    assert q_table(agent)[0, 0] == ours


# --------------------------------------------------------------------------------------------
# Gymnasium's terminated / truncated
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_AGENTS)
def test_terminated_does_not_bootstrap_truncated_does(cls):
    kwargs = {"temperature": 1e-9} if cls is SoftQLearning else {}
    agent = make(cls, learning_rate=0.5, gamma=0.9, **kwargs)
    set_q(agent, [[0.0, 0.0], [2.0, 2.0], [0.0, 0.0]])  # every next-state rule sees 2
    agent.observe(0, 0, 1.0, 1, True, False, 0)
    agent.observe(0, 1, 1.0, 1, False, True, 1)
    # terminated: 0.5·1 = 0.5;  truncated: 0.5·(1 + 0.9·2) = 1.4. (Double Q writes each into
    # one of its tables and leaves the other at 0, so the larger entry is the updated one.)
    updated = np.max([table[0] for table in agent.get_tables().values()], axis=0)
    np.testing.assert_allclose(updated, [0.5, 1.4], atol=1e-8)


# --------------------------------------------------------------------------------------------
# Initial values, exploration and greedy tie-breaking
# --------------------------------------------------------------------------------------------


def test_optimistic_initial_value_tries_every_action():
    agent = make(QLearning, states=1, actions=4, initial_q=5.0, learning_rate=0.5)
    np.testing.assert_array_equal(q_table(agent), np.full((1, 4), 5.0))
    tried = []
    for step in range(4):
        action = agent.act(0, step)  # greedy (ε = 0)
        agent.observe(0, action, 0.0, 0, True, False, step)  # Q → 2.5 < 5
        tried.append(action)
    assert sorted(tried) == [0, 1, 2, 3]


@pytest.mark.parametrize("cls", ALL_AGENTS)
def test_greedy_ties_are_broken_uniformly_at_random(cls):
    agent = make(cls, states=1, actions=6)
    training_stream = agent.rng.bit_generator.state
    counts = np.bincount([agent.act_greedy(0) for _ in range(3000)], minlength=6)
    assert chisquare(counts).pvalue > 1e-4
    # Evaluation has its own stream, so it cannot shift the training trajectory.
    assert agent.rng.bit_generator.state == training_stream
    acted = np.bincount([agent.act(0, step) for step in range(3000)], minlength=6)
    assert chisquare(acted).pvalue > 1e-4  # the greedy behaviour policy breaks ties too


def test_act_uses_the_exploration_policy():
    agent = make(QLearning, actions=3, policy=Boltzmann(1.0))
    set_q(agent, [[0.0, 1.0, 2.0]] * 3)
    counts = np.bincount([agent.act(0, step) for step in range(6000)], minlength=3)
    expected = scipy_softmax(np.array([0.0, 1.0, 2.0])) * 6000
    assert chisquare(counts, expected).pvalue > 1e-4


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------


def test_learning_rate_schedule_advances_with_step():
    agent = make(QLearning, learning_rate=LinearSchedule(1.0, 0.5, duration=100))
    for state, (action, step) in enumerate([(0, 0), (1, 50), (0, 100)]):
        agent.observe(state, action, 1.0, 0, True, False, step)
    # α(0) = 1, α(50) = 0.75, α(100) = 0.5, each on a fresh zero entry with target 1
    np.testing.assert_allclose(q_table(agent), [[1.0, 0.0], [0.0, 0.75], [0.5, 0.0]])


def test_soft_temperature_schedule_advances_with_step():
    row = np.array([1.0, 2.0, 3.0])
    schedule = LinearSchedule(1.0, 0.01, duration=100)
    agent = make(SoftQLearning, actions=3, learning_rate=1.0, gamma=1.0, temperature=schedule)
    set_q(agent, [[0.0] * 3, row, [0.0] * 3])
    agent.observe(0, 0, 0.0, 1, False, False, 0)
    agent.observe(0, 1, 0.0, 1, False, False, 100)
    expected = [scipy_logsumexp(row / 1.0), 0.01 * scipy_logsumexp(row / 0.01)]
    np.testing.assert_allclose(q_table(agent)[0, :2], expected, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Metrics and q_values
# --------------------------------------------------------------------------------------------


def test_metrics_average_since_last_call_then_reset():
    agent = make(QLearning, learning_rate=0.5)
    assert agent.metrics() == {}
    agent.observe(0, 0, 2.0, 1, True, False, 0)  # td 2, Q → 1
    agent.observe(0, 1, 4.0, 1, True, False, 1)  # td 4, Q → 2
    metrics = agent.metrics()
    assert metrics == pytest.approx({"losses/td_loss": (4 + 16) / 2, "losses/q_mean": 1.5})
    assert agent.metrics() == {}


def test_q_values_accepts_a_batch_or_one_observation():
    agent = make(QLearning, states=4, actions=3)
    assert agent.q_values(np.array([0, 3, 3])).shape == (3, 3)
    assert agent.q_values(np.int64(2)).shape == (1, 3)
    assert agent.q_values([1]).dtype == np.float64


def test_numpy_inputs_keep_the_table_in_python_floats():
    agent = make(QLearning)
    agent.observe(np.int64(0), np.int64(1), np.float64(1.5), np.int64(1), np.False_, np.False_, 0)
    # The policies' fast path needs rows of Python floats; a numpy scalar would disable it.
    assert type(agent._q[0][1]) is float


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def run(agent: TabularAgent, env: gym.Env, obs, start: int, steps: int):
    """A hand-written loop: returns the last observation and the actions taken."""
    actions = []
    for step in range(start, start + steps):
        action = agent.act(obs, step)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        agent.observe(obs, action, reward, next_obs, terminated, truncated, step)
        actions.append(action)
        obs = env.reset()[0] if terminated or truncated else next_obs
    return obs, actions


def taxi_agent(cls, policy, seed):
    env = gym.make("Taxi-v4")
    kwargs = {"temperature": 0.5} if cls is SoftQLearning else {}
    agent = cls(
        observation_space=env.observation_space,
        action_space=env.action_space,
        policy=policy,
        rng=np.random.default_rng(seed),
        learning_rate=0.5,
        **kwargs,
    )
    return agent, env


@pytest.mark.parametrize("cls", ALL_AGENTS)
@pytest.mark.parametrize("policy", [EpsilonGreedy(0.3), Boltzmann(1.0)], ids=["eps", "boltz"])
def test_save_load_continues_identically(cls, policy, tmp_path: Path):
    agent, env = taxi_agent(cls, policy, seed=1)
    obs = env.reset(seed=3)[0]
    obs, _ = run(agent, env, obs, 0, 1500)
    path = tmp_path / "checkpoint.tmp"  # the loop writes a temp name, then renames
    agent.save(path)
    assert path.exists() and not (tmp_path / "checkpoint.tmp.npz").exists()
    env_copy = copy.deepcopy(env)

    restored, _ = taxi_agent(cls, policy, seed=99)  # a different stream until load
    restored.load(path)
    # Saved again before acting (a finished run resumed with no new budget), then loaded.
    restored.save(tmp_path / "again.tmp")
    again, _ = taxi_agent(cls, policy, seed=98)
    again.load(tmp_path / "again.tmp")
    env_again = copy.deepcopy(env)
    _, actions = run(agent, env, obs, 1500, 500)
    _, restored_actions = run(restored, env_copy, obs, 1500, 500)
    _, again_actions = run(again, env_again, obs, 1500, 500)

    assert restored_actions == actions
    assert again_actions == actions
    for name, table in agent.get_tables().items():
        np.testing.assert_array_equal(restored.get_tables()[name], table)
    assert restored.metrics() == agent.metrics()
    assert restored.updates == agent.updates == 2000
    greedy = [agent.act_greedy(s) for s in range(500)]
    assert [restored.act_greedy(s) for s in range(500)] == greedy


def test_checkpoint_has_no_pickled_objects_and_loads_without_pickle(tmp_path, monkeypatch):
    agent = make(Sarsa, policy=EpsilonGreedy(1.0))
    agent.observe(0, 0, 1.0, 1, False, False, 0)
    path = tmp_path / "ckpt.npz"
    agent.save(path)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    assert all(a.dtype != object for a in arrays.values())
    assert arrays["stream_state"].dtype.kind == "U" and arrays["stream_state"].ndim == 0

    calls = []
    real_load = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    make(Sarsa).load(path)
    assert calls and all(kwargs.get("allow_pickle") is False for kwargs in calls)


def test_load_rejects_another_agents_or_environments_checkpoint(tmp_path):
    path = tmp_path / "q.npz"
    make(QLearning).save(path)
    with pytest.raises(RlsoftError, match=r"'q_learning'.*'sarsa'"):
        make(Sarsa).load(path)
    with pytest.raises(RlsoftError, match=r"shape \(3, 2\).*\(5, 2\)"):
        make(QLearning, states=5).load(path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(RlsoftError, match="is corrupt or unreadable"):
        make(QLearning).load(tmp_path / "junk.npz")
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    np.savez(tmp_path / "old.npz", **{**arrays, "format": np.array("rlsoft.tabular/1")})
    with pytest.raises(RlsoftError, match=r"format 'rlsoft.tabular/1'.*train the run again"):
        make(QLearning).load(tmp_path / "old.npz")
    np.savez(tmp_path / "other.npz", **{**arrays, "format": np.array("something else")})
    with pytest.raises(RlsoftError, match="not a tabular-agent checkpoint"):
        make(QLearning).load(tmp_path / "other.npz")


# --------------------------------------------------------------------------------------------
# Spaces
# --------------------------------------------------------------------------------------------


def test_blackjack_tuple_observations_get_distinct_indices():
    env = gym.make("Blackjack-v1")
    agent = QLearning(
        observation_space=env.observation_space,
        action_space=env.action_space,
        policy=EpsilonGreedy(0.1),
        rng=np.random.default_rng(0),
    )
    assert agent.n_states == 32 * 11 * 2
    indices = [agent.state_index((a, b, c)) for a in range(32) for b in range(11) for c in range(2)]
    assert len(set(indices)) == 32 * 11 * 2
    assert min(indices) == 0 and max(indices) == 32 * 11 * 2 - 1
    obs = env.reset(seed=0)[0]
    run(agent, env, obs, 0, 200)  # tuple observations and float rewards flow through
    assert agent.q_values([(14, 10, 0), (20, 1, 1)]).shape == (2, 2)
    assert agent.q_values((14, 10, 0)).shape == (1, 2)


@pytest.mark.parametrize("cls", ALL_AGENTS)
def test_box_observations_are_a_clear_error(cls):
    env = gym.make("CartPole-v1")
    with pytest.raises(RlsoftError, match=r"Box.*dqn"):
        cls(
            observation_space=env.observation_space,
            action_space=env.action_space,
            policy=EpsilonGreedy(0.1),
            rng=np.random.default_rng(0),
        )


def test_box_actions_are_a_clear_error():
    with pytest.raises(RlsoftError, match=r"Discrete action space.*Box.*dqn"):
        QLearning(
            observation_space=Discrete(5),
            action_space=Box(-1.0, 1.0, (1,)),
            policy=EpsilonGreedy(0.1),
            rng=np.random.default_rng(0),
        )


# --------------------------------------------------------------------------------------------
# Registration, building and configs
# --------------------------------------------------------------------------------------------


def context(config, **kwargs) -> BuildContext:
    env = gym.make("FrozenLake-v1")
    defaults = dict(
        config=config,
        observation_space=env.observation_space,
        action_space=env.action_space,
        policy=EpsilonGreedy(0.1),
        rng=np.random.default_rng(0),
        torch_seed=0,
    )
    return BuildContext(**{**defaults, **kwargs})


@pytest.mark.parametrize("name", NAMES)
def test_every_agent_is_registered_and_builds_from_a_context(name):
    assert agents.tabular.agent.SPECS  # importing the package registered them
    assert name in agent_names()
    spec = get_agent_spec(name)
    assert spec.kind == "rl" and spec.description
    ctx = context(spec.config_model())
    agent = spec.build(ctx)
    assert agent.name == name
    assert isinstance(agent, Agent)
    assert agent.policy is ctx.policy and agent.rng is ctx.rng
    assert agent.checkpoint_suffix == ".npz"


def test_build_reads_schedules_from_the_config():
    config = validate_agent_section(
        {
            "type": "soft_q_learning",
            "learning_rate": {"type": "linear", "start": 1.0, "end": 0.5, "duration": 100},
            "temperature": {"type": "exponential", "start": 1.0, "end": 0.1, "half_life": 10},
            "gamma": 0.5,
            "initial_q": 2.0,
        }
    )
    agent = get_agent_spec("soft_q_learning").build(context(config))
    assert agent.learning_rate(50) == pytest.approx(0.75)
    assert agent.temperature(10) == pytest.approx(0.55)  # 0.1 + 0.9·2^(−1)
    assert agent.gamma == 0.5
    np.testing.assert_array_equal(q_table(agent), np.full((16, 4), 2.0))


def test_more_than_one_environment_is_a_clear_error():
    with pytest.raises(RlsoftError, match=r"num_envs is 4.*set env\.num_envs to 1"):
        QLearning.from_context(context(QLearningConfig(), num_envs=4))


def test_config_rejects_unknown_keys_and_out_of_range_values():
    with pytest.raises(ValidationError, match="gama"):
        QLearningConfig(gama=0.9)
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        QLearningConfig(gamma=1.5)
    with pytest.raises(ValidationError, match=r"learning_rate must be in \(0, 1\], got 0.0"):
        QLearningConfig(learning_rate=0)
    with pytest.raises(ValidationError, match=r"learning_rate must be in \(0, 1\], got 0.0"):
        QLearningConfig(learning_rate={"type": "linear", "start": 1, "end": 0, "duration": 9})
    with pytest.raises(ValidationError, match="finite number"):
        QLearningConfig(initial_q=float("inf"))
    with pytest.raises(ValidationError, match="temperature must be a positive finite number"):
        SoftQLearningConfig(temperature=0.0)


def test_config_errors_through_rlsoft_name_the_field():
    with pytest.raises(ConfigError, match=r"agent\.gama.*did you mean 'gamma'"):
        validate_agent_section({"type": "q_learning", "gama": 0.9})
    with pytest.raises(ConfigError, match=r"agent\.gamma.*\(got 1\.5\)"):
        validate_agent_section({"type": "sarsa", "gamma": 1.5})


def test_direct_construction_validates_too():
    with pytest.raises(ValueError, match=r"learning_rate must be in \(0, 1\], got 0.0"):
        make(QLearning, learning_rate=0.0)
    with pytest.raises(ValueError, match="gamma must be in"):
        make(QLearning, gamma=-0.1)
    with pytest.raises(ValueError, match="temperature must be a positive"):
        make(SoftQLearning, temperature=0.0)


# --------------------------------------------------------------------------------------------
# Smoke test: learns to reach the goal of a deterministic FrozenLake
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_AGENTS)
def test_learns_deterministic_frozenlake(cls):
    env = gym.make("FrozenLake-v1", is_slippery=False)
    kwargs = {"temperature": 0.001} if cls is SoftQLearning else {}
    agent = cls(
        observation_space=env.observation_space,
        action_space=env.action_space,
        policy=EpsilonGreedy(0.1),
        rng=np.random.default_rng(0),
        learning_rate=LinearSchedule(0.5, 0.05, duration=5000),
        gamma=0.95,
        initial_q=1.0,  # optimism finds the one rewarding transition quickly
        **kwargs,
    )
    run(agent, env, env.reset(seed=0)[0], 0, 5000)
    obs, total = env.reset(seed=1)[0], 0.0
    for _ in range(20):
        obs, reward, terminated, truncated, _ = env.step(agent.act_greedy(obs))
        total += reward
        if terminated or truncated:
            break
    assert total == 1.0
    assert math.isfinite(agent.metrics()["losses/td_loss"])


def test_policy_greedy_is_accepted():
    agent = make(Sarsa, policy=Greedy())
    agent.observe(0, 0, 1.0, 1, False, False, 0)
    assert agent.act(1, 1) in (0, 1)


# --------------------------------------------------------------------------------------------
# Divergence: a NaN or infinite Q-value is one clear error, never a checkpoint
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [QLearning, Sarsa, ExpectedSarsa, DoubleQLearning, SoftQLearning])
@pytest.mark.parametrize("reward", [math.inf, math.nan])
def test_non_finite_q_values_are_reported_and_never_saved(cls, reward, tmp_path):
    agent = make(cls)
    agent.observe(0, 0, 1.0, 1, False, False, 0)
    assert set(agent.metrics()) == {"losses/td_loss", "losses/q_mean"}
    agent.observe(0, 0, reward, 1, True, False, 1)
    path = tmp_path / "agent.npz"
    with pytest.raises(RlsoftError, match=r"NaN or infinite Q-value.*diverged.*rewards"):
        agent.save(path)
    assert not path.exists()
    with pytest.raises(RlsoftError, match=r"NaN or infinite Q-value.*diverged"):
        agent.metrics()


def test_an_overflowing_sum_of_finite_q_values_is_not_divergence():
    agent = make(QLearning, learning_rate=1.0, gamma=0.0)
    agent.observe(0, 0, 1e308, 1, False, False, 0)
    agent.observe(1, 0, 1e308, 2, False, False, 1)  # 2e308: the sum overflows, no entry does
    assert agent.metrics()["losses/q_mean"] == math.inf  # the logger skips it
    assert np.isfinite(q_table(agent)).all()


class _InfiniteRewardEnv(gym.Env):
    """Two states; the first step pays +inf (a broken reward function)."""

    observation_space = Discrete(2)
    action_space = Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return 0, {}

    def step(self, action):
        return 1, math.inf, True, False, {}


@pytest.mark.filterwarnings("ignore:.*The reward is an inf value")
def test_training_on_infinite_rewards_stops_with_one_sentence(tmp_path, capsys):
    from rlsoft.cli import main

    gym.register(id="RlsoftInfiniteReward-v0", entry_point=_InfiniteRewardEnv)
    try:
        config = tmp_path / "inf.yaml"
        config.write_text(
            "env: {id: RlsoftInfiniteReward-v0}\nagent: {type: q_learning}\n"
            "exploration: {policy: epsilon_greedy, epsilon: 0.1}\n"
            "train: {total_steps: 200, log_every: 100, progress: 'off'}\n"
        )
        assert main(["train", str(config), "--logdir", str(tmp_path / "runs")]) == 2
    finally:
        gym.registry.pop("RlsoftInfiniteReward-v0")
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "diverged" in err and "rewards" in err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert not list(run_dir.glob("checkpoints/step_*")) and not (run_dir / "summary.json").exists()
