"""The Python API used the way a notebook uses it: train, load, predict, evaluate, compare.

References are independent of the code under test: Boltzmann sampling is checked with a
chi-square test against ``softmax(q/τ)`` written here, evaluation against an episode loop
written here, and ``compare``'s data against the ``summary.csv`` it wrote.
"""

from __future__ import annotations

import csv
import math
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import ClassVar

import gymnasium as gym
import numpy as np
import pytest
import yaml
from scipy import stats

import rlsoft
import rlsoft.compare.grid
from rlsoft.cli.api import plan_compare, run_compare
from rlsoft.cli.main import main
from rlsoft.errors import RlsoftError
from rlsoft.rl.frame_replay import FrameReplayBuffer

# --------------------------------------------------------------------------------------------
# A custom environment and wrapper, named by entry point (f"{__name__}:ChainEnv")
# --------------------------------------------------------------------------------------------


class ChainEnv(gym.Env):
    """States 0..n-1 in a row; actions left, right, stay; reward 1 on reaching n-1 (the end)."""

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, n: int = 5) -> None:
        self.n = n
        self.observation_space = gym.spaces.Discrete(n)
        self.action_space = gym.spaces.Discrete(3)
        self.state = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = int(self.np_random.integers(0, 2))  # seeded start: 0 or 1
        return self.state, {}

    def step(self, action):
        move = {0: -1, 1: 1, 2: 0}[int(action)]
        self.state = min(max(self.state + move, 0), self.n - 1)
        done = self.state == self.n - 1
        return self.state, float(done), done, False, {}


class DoubleReward(gym.RewardWrapper):
    """Rewards times ``factor`` (a wrapper named in a config, with kwargs)."""

    def __init__(self, env: gym.Env, factor: float = 2.0) -> None:
        super().__init__(env)
        self.factor = factor

    def reward(self, reward):
        return self.factor * reward


class NotAnEnv:
    pass


class GlyphEnv(gym.Env):
    """A 12×12 grayscale image, its pixels all 255 × the rewarded action, never black on
    reset, so that ``FrameStackObservation``'s zero padding differs from its reset padding."""

    observation_space = gym.spaces.Box(0, 255, (12, 12), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def _image(self):
        return np.full((12, 12), 100 + 155 * self.bit, np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.bit, self.t = int(self.np_random.integers(2)), 0
        return self._image(), {}

    def step(self, action):
        reward = float(action == self.bit)
        self.bit, self.t = int(self.np_random.integers(2)), self.t + 1
        return self._image(), reward, False, self.t >= 20, {}


class LateGlyphEnv(GlyphEnv):
    """:class:`GlyphEnv` whose first three episodes start on a black frame, which zero and
    reset padding fill alike: a padding mismatch shows only at the fourth episode."""

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options=options)
        self.resets = getattr(self, "resets", 0) + 1
        return (np.zeros_like(obs) if self.resets <= 3 else obs), info


class ColourGlyphEnv(GlyphEnv):
    """:class:`GlyphEnv` in colour: a 12×12 RGB image whose red channel shows the bit."""

    observation_space = gym.spaces.Box(0, 255, (12, 12, 3), np.uint8)

    def _image(self):
        image = np.full((12, 12, 3), 60, np.uint8)
        image[..., 0] = 100 + 155 * self.bit
        return image


CHAIN = f"{__name__}:ChainEnv"
TEMPERATURE = 0.2


def chain_config(tmp_path, **env):
    """A tabular Q-learning run on the chain, with a Boltzmann behaviour policy τ = 0.2."""
    return {
        "name": "chain",
        "logdir": str(tmp_path / "runs"),
        "env": {"id": CHAIN, "kwargs": {"n": 5}, **env},
        "agent": {"type": "q_learning", "learning_rate": 0.5, "gamma": 0.9},
        "exploration": {"policy": "boltzmann", "temperature": TEMPERATURE},
        "train": {"total_steps": 3000, "eval_every": 0, "eval_episodes": 5, "log_every": 500},
    }


@pytest.fixture(scope="module")
def chain_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chain")
    wrappers = [{"path": "gymnasium.wrappers:TimeLimit", "kwargs": {"max_episode_steps": 30}}]
    return rlsoft.train(chain_config(tmp, wrappers=wrappers), seed=3)


@pytest.fixture(scope="module")
def dqn_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dqn")
    return rlsoft.train(
        "configs/cartpole_dqn_boltzmann.yaml",
        overrides={
            "train.total_steps": 600,
            "train.eval_every": 0,
            "train.eval_episodes": 2,
            "train.checkpoint_every": 0,
            "agent.hidden_sizes": [32],
            "agent.learning_starts": 200,
            "agent.batch_size": 32,
            "device": "cpu",
        },
        seed=1,
        logdir=tmp,
    )


def hand_loop(agent, env, episodes, seed):
    """Returns of ``episodes`` greedy episodes, episode i reset with ``seed + i``."""
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.predict(obs))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return np.array(returns)


# --------------------------------------------------------------------------------------------
# Tabular: a custom env by entry point, wrappers, predict, sampling
# --------------------------------------------------------------------------------------------


def test_a_tabular_run_on_an_entry_point_env_loads_and_acts(chain_run):
    assert (chain_run.run_dir / "config.yaml").is_file()
    assert chain_run.steps == 3000 and chain_run.config.env.id == CHAIN
    agent = rlsoft.load(chain_run.run_dir)
    q = agent.q_values(np.arange(5))
    assert q.shape == (5, 3) and agent.q_values(2).shape == (3,)
    np.testing.assert_array_equal(agent.q_values(2), q[2])
    # Right is the best move in every non-terminal state the agent has learnt about.
    for s in range(4):
        assert agent.predict(s) == int(np.argmax(q[s])) == 1
    batch = agent.predict(np.array([0, 1, 2, 3]))
    assert batch.shape == (4,) and batch.tolist() == [1, 1, 1, 1]
    # The run's own env (its wrappers: TimeLimit 30) by default; the optimal return is 1.
    result = rlsoft.evaluate(agent, episodes=4)
    assert result.returns.tolist() == [1.0] * 4 and result.mean_return == 1.0
    assert result.lengths.max() <= 4


def test_deterministic_false_samples_the_boltzmann_behaviour_policy(chain_run):
    agent = rlsoft.load(chain_run.run_dir)
    state = 2
    q = agent.q_values(state)
    z = (q - q.max()) / TEMPERATURE
    expected = np.exp(z) / np.exp(z).sum()  # softmax(q/τ), written out
    assert expected.min() > 1e-3  # every action is drawn often enough to test
    n = 20_000
    actions = agent.predict(np.full(n, state), deterministic=False)
    counts = np.bincount(actions, minlength=3)
    assert stats.chisquare(counts, expected * n).pvalue > 1e-3
    # The test can fail: the same draws are not softmax(q/(2τ)) nor the greedy policy.
    z2 = (q - q.max()) / (2 * TEMPERATURE)
    wrong = np.exp(z2) / np.exp(z2).sum()
    assert stats.chisquare(counts, wrong * n).pvalue < 1e-6
    assert counts[np.argmax(q)] < n
    np.testing.assert_allclose(agent.action_probabilities(state), expected, rtol=1e-12)


def test_config_wrappers_apply_to_training_and_evaluation(tmp_path):
    wrappers = [
        {"path": f"{__name__}:DoubleReward", "kwargs": {"factor": 3.0}},
        {"path": "gymnasium.wrappers:TimeLimit", "kwargs": {"max_episode_steps": 20}},
    ]
    run = rlsoft.train(chain_config(tmp_path, wrappers=wrappers), seed=0)
    agent = rlsoft.load(run.run_dir)
    wrapped = rlsoft.evaluate(agent, episodes=3, seed=7)  # the run's env: rewards × 3
    bare = rlsoft.evaluate(agent, env=lambda: ChainEnv(5), episodes=3, seed=7)
    np.testing.assert_array_equal(wrapped.returns, 3.0 * bare.returns)
    assert run.final_eval["eval/mean_return"] == 3.0  # greedy reaches the end every time
    saved = yaml.safe_load((run.run_dir / "config.yaml").read_text())
    assert saved["env"]["wrappers"] == wrappers


def test_train_works_in_a_thread_and_prints_nothing(tmp_path, capsys):
    box = {}
    worker = threading.Thread(
        target=lambda: box.setdefault("run", rlsoft.train(chain_config(tmp_path), seed=1))
    )
    worker.start()
    worker.join(60)
    assert box["run"].steps == 3000
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


# --------------------------------------------------------------------------------------------
# DQN: the env argument of evaluate in its four forms
# --------------------------------------------------------------------------------------------


def test_dqn_q_values_and_evaluate_with_id_entry_point_callable_and_instance(dqn_run):
    agent = rlsoft.load(dqn_run.run_dir)
    obs = np.array([0.01, -0.02, 0.03, 0.0], dtype=np.float32)
    assert agent.q_values(obs).shape == (2,)
    batch = np.stack([obs, -obs, 2 * obs])
    q = agent.q_values(batch)
    assert q.shape == (3, 2) and np.all(np.isfinite(q))
    assert agent.predict(batch).tolist() == np.argmax(q, axis=1).tolist()
    # The right number of dimensions, the wrong shape: refused, not reshaped.
    for wrong in (np.zeros(5), np.zeros((3, 5)), np.zeros((2, 2))):
        with pytest.raises(RlsoftError, match=re.escape("observation shape (4,) (one")):
            agent.predict(wrong)
    reference = hand_loop(agent, gym.make("CartPole-v1"), 3, seed=5)
    by_id = rlsoft.evaluate(agent, env="CartPole-v1", episodes=3, seed=5)
    by_callable = rlsoft.evaluate(agent, env=lambda: gym.make("CartPole-v1"), episodes=3, seed=5)
    instance = gym.make("CartPole-v1")
    by_instance = rlsoft.evaluate(agent, env=instance, episodes=3, seed=5)
    instance.reset(seed=0)  # not closed by evaluate: the caller owns it
    entry = "gymnasium.envs.classic_control.cartpole:CartPoleEnv"  # no time limit: fine here
    by_entry_point = rlsoft.evaluate(agent, env=entry, episodes=3, seed=5)
    for result in (by_id, by_callable, by_instance, by_entry_point):
        np.testing.assert_array_equal(result.returns, reference)
    assert by_id.mean_return == pytest.approx(reference.mean())
    assert by_id.epsilon == 0.0  # the run's train.eval_epsilon
    explored = [rlsoft.evaluate(agent, episodes=3, seed=5, epsilon=0.5) for _ in range(2)]
    assert explored[0].epsilon == 0.5
    assert not np.array_equal(explored[0].returns, by_id.returns)  # ε was applied
    assert 0 < dqn_run.eval_seconds < dqn_run.seconds
    np.testing.assert_array_equal(explored[0].returns, explored[1].returns)  # seeded draws


def test_the_same_evaluation_twice_gives_the_same_returns_when_greedy_ties_occur(tmp_path):
    """A barely trained Taxi table is full of ties, broken at random: the generator restarts
    from the seed at every call, so one agent evaluated twice gives the same returns."""
    run = rlsoft.train(
        "configs/taxi_qlearning_epsilon.yaml",
        overrides={"train.total_steps": 300, "train.eval_episodes": 1},
        logdir=tmp_path,
    )
    agent = rlsoft.load(run.run_dir)
    first, second = (rlsoft.evaluate(agent, episodes=3, seed=11) for _ in range(2))
    np.testing.assert_array_equal(first.returns, second.returns)
    assert len(set(first.returns)) > 1  # the ties made the episodes differ


# --------------------------------------------------------------------------------------------
# The classifier: digits, and behaviour cloning played in its env
# --------------------------------------------------------------------------------------------


def test_a_digits_classifier_predicts_argmax_logits(tmp_path):
    from sklearn.datasets import load_digits

    run = rlsoft.train(
        "configs/digits_softmax_regression.yaml",
        overrides={"train.total_steps": 30},
        logdir=tmp_path,
    )
    agent = rlsoft.load(run.run_dir)
    x, y = load_digits(return_X_y=True)
    logits = agent.q_values(x[:200])
    assert logits.shape == (200, 10) and agent.q_values(x[0]).shape == (10,)
    predicted = agent.predict(x[:200])
    np.testing.assert_array_equal(predicted, np.argmax(logits, axis=1))
    with pytest.raises(RlsoftError, match=r"classifier trained on a dataset, not on an environ"):
        agent.make_env()
    assert agent.predict(x[0]) == predicted[0]
    assert np.mean(predicted == y[:200]) > 0.9  # 30 L-BFGS epochs of softmax regression
    with pytest.raises(RlsoftError, match="not a policy"):
        rlsoft.evaluate(agent, env="CartPole-v1", episodes=1)
    with pytest.raises(RlsoftError, match="samples of 63 features do not fit this classifier"):
        agent.predict(x[:5, :63])


def test_a_behaviour_cloned_classifier_plays_its_environment(tmp_path, dqn_run):
    run = rlsoft.train(
        {
            "name": "bc",
            "env": None,
            "agent": {
                "type": "classifier",
                "model": "mlp",
                "hidden_sizes": [16],
                "dataset": {
                    "name": "behavior_cloning",
                    "teacher_run": str(dqn_run.run_dir),
                    "episodes": 6,
                    "validation_fraction": 0.2,
                    "test_fraction": 0.2,
                },
            },
            "train": {"total_steps": 5, "eval_every": 0, "eval_episodes": 2, "log_every": 1},
        },
        logdir=tmp_path,
    )
    agent = rlsoft.load(run.run_dir)
    assert agent.kind == "classifier" and agent.is_policy
    obs = np.array([0.01, -0.02, 0.03, 0.0], dtype=np.float32)
    assert agent.q_values(obs).shape == (2,)
    assert agent.predict(obs) == int(np.argmax(agent.q_values(obs)))
    result = rlsoft.evaluate(agent, env="CartPole-v1", episodes=2, seed=3)
    np.testing.assert_array_equal(result.returns, hand_loop(agent, gym.make("CartPole-v1"), 2, 3))
    default = rlsoft.evaluate(agent, episodes=2, seed=3)  # the teacher's env
    np.testing.assert_array_equal(default.returns, result.returns)
    for epsilon in (0.1, 0.0):  # as rlsoft eval --epsilon: refused, not silently used
        with pytest.raises(RlsoftError, match="epsilon sets an RL agent's ε-greedy evaluation"):
            rlsoft.evaluate(agent, episodes=1, epsilon=epsilon)


# --------------------------------------------------------------------------------------------
# compare: the summary as data, and the modules it imports
# --------------------------------------------------------------------------------------------


def test_compare_returns_the_summary_csv_as_data_and_the_cli_names_imported_modules(
    tmp_path, capsys, monkeypatch
):
    comparison = {
        "name": "api_compare",
        "logdir": str(tmp_path / "cmp"),
        "seeds": 2,
        "base": {
            "env": {
                "id": "gymnasium.envs.toy_text.frozen_lake:FrozenLakeEnv",
                "kwargs": {"is_slippery": False},
                "wrappers": [
                    {"path": "gymnasium.wrappers:TimeLimit", "kwargs": {"max_episode_steps": 30}}
                ],
            },
            "agent": {"type": "q_learning", "learning_rate": 0.5, "gamma": 0.9},
            "train": {"total_steps": 1500, "eval_episodes": 3, "log_every": 500},
        },
        "overrides": {"train.eval_every": 500},
        "variants": {
            "eps": {"exploration.policy": "epsilon_greedy", "exploration.epsilon": 0.2},
            "boltzmann": {"exploration.policy": "boltzmann", "exploration.temperature": 0.5},
        },
    }
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump(comparison))
    assert main(["compare", str(path), "--workers", "2"]) == 0
    err = capsys.readouterr().err
    imports = next(line for line in err.splitlines() if "import code from" in line)
    assert "gymnasium.envs.toy_text.frozen_lake, gymnasium.wrappers" in imports
    assert err.index(imports) < err.index("4 runs")  # named before anything runs

    # Every run is finished: only the report. progress=None: a line on a terminal only, and
    # pytest's captured stderr is none.
    shown = []

    def spy(total, already, title, enabled):
        shown.append(enabled)
        return progress_class(total, already, title, enabled)

    progress_class = rlsoft.compare.grid.GridProgress
    monkeypatch.setattr(rlsoft.compare.grid, "GridProgress", spy)
    result = rlsoft.compare(str(path), workers=2, progress=None)
    assert shown == [False]
    assert result.failed == [] and result.logdir == tmp_path / "cmp"
    with open(result.logdir / "summary.csv", newline="") as f:
        written = list(csv.DictReader(f))
    assert len(written) == len(result.rows) > 0
    for row, line in zip(result.rows, written, strict=True):
        for key in ("env", "metric", "statistic", "variant", "versus", "flag"):
            assert row[key] == line[key]
        assert ("" if row["runs"] is None else str(row["runs"])) == line["runs"]
        for key in ("value", "ci_low", "ci_high"):
            if line[key] == "":
                assert math.isnan(row[key])
            else:
                assert row[key] == pytest.approx(float(line[key]), abs=1e-6)
    assert {r["variant"] for r in result.rows} == {"eps", "boltzmann"}
    assert result.value("eps", "mean") == next(
        r["value"] for r in result.rows if r["variant"] == "eps" and r["statistic"] == "mean"
    )


# --------------------------------------------------------------------------------------------
# Mistakes: one sentence, nothing left behind
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"id": "no_such_module_xyz:Env"}, "names a module that cannot be found"),
        ({"id": f"{__name__}:Missing"}, "has no attribute 'Missing'"),
        ({"id": f"{__name__}:NotAnEnv"}, "not a gymnasium.Env subclass"),
        ({"id": "not an id"}, "unknown environment id"),
        (
            {
                "id": CHAIN,
                "wrappers": [{"path": "gymnasium.wrappers:TimeLimit", "kwargs": {"x": 1}}],
            },
            "env wrapper 'gymnasium.wrappers:TimeLimit' rejected its arguments",
        ),
        ({"id": CHAIN, "wrappers": [{"path": "FlattenObservation"}]}, "is not an entry point"),
    ],
)
def test_bad_envs_in_a_config_are_one_sentence_and_leave_nothing(tmp_path, env, message):
    config = chain_config(tmp_path)
    config["env"] = {**env, "kwargs": env.get("kwargs", {})}
    with pytest.raises(RlsoftError, match=re.escape(message)) as caught:
        rlsoft.train(config)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_bad_api_arguments_are_one_sentence(tmp_path, chain_run):
    with pytest.raises(RlsoftError, match="is not a run dir"):
        rlsoft.load(tmp_path)
    with pytest.raises(RlsoftError, match="run_dir must be a directory path, got an int"):
        rlsoft.resume(5)
    with pytest.raises(RlsoftError, match="does not exist"):
        rlsoft.train(tmp_path / "missing.yaml")
    with pytest.raises(RlsoftError, match="must be a YAML path, a dict"):
        rlsoft.train(42)
    with pytest.raises(RlsoftError, match="overrides must be a dict"):
        rlsoft.train(chain_config(tmp_path), overrides="train.total_steps=5")
    with pytest.raises(RlsoftError, match="seed must be a non-negative integer"):
        rlsoft.train(chain_config(tmp_path), seed=-1)
    with pytest.raises(RlsoftError, match=re.escape("train.total_steps")):
        rlsoft.train(chain_config(tmp_path), overrides={"train.total_steps": 0})
    agent = rlsoft.load(chain_run.run_dir)
    with pytest.raises(RlsoftError, match="env must be an environment id"):
        rlsoft.evaluate(agent, env=42)
    with pytest.raises(RlsoftError, match="observation space"):
        rlsoft.evaluate(agent, env="Taxi-v4", episodes=1)
    with pytest.raises(RlsoftError, match="episodes must be a whole number of at least 1"):
        rlsoft.evaluate(agent, episodes=0)
    with pytest.raises(RlsoftError, match=r"episodes must be a whole number .* got '3'"):
        rlsoft.evaluate(agent, episodes="3")
    with pytest.raises(RlsoftError, match=re.escape("returned an int, not a gymnasium.Env")):
        rlsoft.evaluate(agent, env=lambda: 3)
    with pytest.raises(RlsoftError, match="do not match one observation"):
        agent.q_values(np.zeros((2, 2, 2)))
    for bad in (True, "0.1", -0.5, 2):
        with pytest.raises(RlsoftError, match="epsilon must be"):
            rlsoft.evaluate(agent, episodes=1, epsilon=bad)
    with pytest.raises(RlsoftError, match="epsilon applies to the greedy policy"):
        rlsoft.evaluate(agent, episodes=1, epsilon=0.1, deterministic=False)


@pytest.mark.parametrize(
    ("obs", "message"),
    [
        (5, "state 5 is outside this agent's states 0..4"),
        (-1, "state -1 is outside this agent's states 0..4"),
        (np.array([0, 7]), "state 7 is outside"),
        (3.5, "this agent's states are integers in 0..4, got 3.5"),
        (np.array([1.0, 2.5]), "states are integers in 0..4"),
        (7.0, "state 7 is outside"),
        ("a", "observations must be numbers, got 'a'"),
        (None, "observations must be numbers, got None"),
        (float("nan"), "the observation contains NaN"),
        ([[1, 2], [3]], "is not a rectangular array"),
    ],
)
def test_a_tabular_agent_refuses_states_it_has_no_row_for(chain_run, obs, message):
    agent = rlsoft.load(chain_run.run_dir)
    with pytest.raises(RlsoftError, match=re.escape(message)) as caught:
        agent.predict(obs)
    assert "\n" not in str(caught.value)
    assert "diverged" not in str(caught.value)


def test_a_tabular_agent_takes_numpy_integers_as_states(chain_run):
    agent = rlsoft.load(chain_run.run_dir)
    assert agent.predict(np.int64(2)) == agent.predict(np.array(2)) == agent.predict(2) == 1
    assert agent.predict(np.uint8(4)) in (0, 1, 2)
    # A whole number written as a float (a state read back from JSON or a CSV) is that state.
    assert agent.predict(2.0) == agent.predict(np.array([2.0]))[0] == 1


def test_a_dqn_agent_refuses_text_and_nan_observations(dqn_run):
    agent = rlsoft.load(dqn_run.run_dir)
    with pytest.raises(RlsoftError, match="observations must be numbers"):
        agent.predict(["a", "b", "c", "d"])
    for call in (agent.predict, agent.q_values):
        with pytest.raises(RlsoftError, match="the observation contains NaN") as caught:
            call([np.nan, 0.0, 0.0, 0.0])
        assert "diverged" not in str(caught.value)
    with pytest.raises(RlsoftError, match="contains an infinite value"):
        agent.predict([np.inf, 0.0, 0.0, 0.0])


def test_api_arguments_of_the_wrong_type_are_one_sentence(tmp_path, chain_run):
    config = chain_config(tmp_path)
    with pytest.raises(RlsoftError, match=r"overrides must be a dict .* got the int 5"):
        rlsoft.train(config, overrides=5)
    with pytest.raises(RlsoftError, match=r"overrides must be a dict .* got the list"):
        rlsoft.train(config, overrides=["train.total_steps=5", 3])
    with pytest.raises(RlsoftError, match=r"overrides must be a dict .* got the string"):
        rlsoft.train(config, overrides="train.total_steps=5")
    # Any iterable of 'key=value' strings will do, a generator or a tuple included.
    texts = (f"train.{key}=50" for key in ("total_steps",))
    run = rlsoft.train(config, overrides=texts, logdir=tmp_path)
    assert run.steps == 50
    with pytest.raises(RlsoftError, match="logdir must be a directory path, got the int 5"):
        rlsoft.train(config, logdir=5)
    with pytest.raises(RlsoftError, match="logdir is empty"):
        rlsoft.train(config, logdir="")
    with pytest.raises(RlsoftError, match=r"the seed is given twice, as 5 .* seed=6"):
        rlsoft.train(config, seed=5, overrides={"seed": 6})
    with pytest.raises(RlsoftError, match=r"the seed is given twice"):
        rlsoft.train(config, seed=5, overrides=["seed=6"])
    with pytest.raises(RlsoftError, match=r"overrides sets exploration.epsilon, which .* boltz"):
        rlsoft.train(config, overrides={"exploration.epsilon": 0.2})
    with pytest.raises(RlsoftError, match=r"overrides sets exploration.mu, which .*\(ez_greedy\)"):
        rlsoft.train(config, overrides={"exploration": {"policy": "boltzmann", "mu": 3}})
    assert not (tmp_path / "runs").exists() and not (tmp_path / "5").exists()
    comparison = {
        "name": "wrong_types",
        "base": config,
        "variants": {"eps": {"exploration.policy": "epsilon_greedy"}},
    }
    planned = plan_compare(comparison, seeds=[0, 3], logdir=tmp_path / "cmp")
    assert sorted({spec.seed for spec in planned.runs}) == [0, 3]
    for seeds in ("2", 2.0, [0, 0], [], True):
        with pytest.raises(RlsoftError, match="seeds must be"):
            plan_compare(comparison, seeds=seeds)
    with pytest.raises(RlsoftError, match=r"workers must be a whole number .* got the str '2'"):
        rlsoft.compare(comparison, workers="2", logdir=tmp_path / "cmp")
    # A flag given as text would be truthy: "no" must not draw the bar or act greedily.
    with pytest.raises(
        RlsoftError, match=r"progress must be True or False \(or None: on a terminal .*a str 'no'"
    ):
        rlsoft.compare(comparison, progress="no", logdir=tmp_path / "cmp")
    with pytest.raises(RlsoftError, match=r"on_start must be a function .* got a list"):
        run_compare(planned, on_start=[])
    assert not (tmp_path / "cmp").exists()
    with pytest.raises(RlsoftError, match=r"progress must be True or False \(or None: .*'yes'"):
        rlsoft.train(config, progress="yes", logdir=tmp_path / "flags")
    assert not (tmp_path / "flags").exists()
    # A resume refused for its on_start leaves the finished run as it was.
    before = {f.name: f.read_bytes() for f in run.run_dir.iterdir() if f.is_file()}
    with pytest.raises(RlsoftError, match=r"on_start must be a function of no arguments .*a str"):
        rlsoft.resume(run.run_dir, overrides={"train.total_steps": 80}, on_start="x")
    assert {f.name: f.read_bytes() for f in run.run_dir.iterdir() if f.is_file()} == before
    with pytest.raises(RlsoftError, match=r"on_start must be a function .* got an int"):
        rlsoft.train(config, on_start=1, logdir=tmp_path / "starts")
    assert not (tmp_path / "starts").exists()
    agent = run.load()
    assert agent.step == run.steps == 50  # the step of the checkpoint it loaded
    with pytest.raises(RlsoftError, match=r"deterministic must be True or False, got a str"):
        agent.predict(0, deterministic="no")
    with pytest.raises(RlsoftError, match=r"render must be True or False, got an int 0"):
        rlsoft.evaluate(agent, episodes=1, render=0)
    with pytest.raises(RlsoftError, match=r"deterministic must be True or False, got a str"):
        rlsoft.evaluate(agent, episodes=1, deterministic="no")
    assert rlsoft.evaluate(agent, episodes=1, deterministic=np.bool_(False)).episodes == 1


def test_numpy_numbers_in_a_config_or_overrides_are_the_numbers_they_stand_for(tmp_path):
    """np.float32 and np.int64 values (from a sweep written in numpy) validate and save as
    the Python numbers they are; the run's config.yaml holds plain numbers."""
    config = yaml.safe_load(Path("configs/taxi_qlearning_epsilon.yaml").read_text())
    config["agent"]["learning_rate"] = np.float32(0.5)
    run = rlsoft.train(
        config, overrides={"train.total_steps": np.int64(300), "seed": np.int32(2)}, logdir=tmp_path
    )
    saved = yaml.safe_load((run.run_dir / "config.yaml").read_text())
    assert run.steps == 300 and saved["seed"] == 2 and saved["agent"]["learning_rate"] == 0.5
    dqn = rlsoft.train(
        "configs/cartpole_dqn_epsilon.yaml",
        overrides={"agent.hidden_sizes": np.array([8, 8]), "train.total_steps": 100},
        seed=np.int64(1),
        logdir=tmp_path / "dqn",
    )
    assert dqn.config.agent["hidden_sizes"] == [8, 8] and dqn.config.seed == 1
    assert rlsoft.evaluate(dqn.load(), episodes=np.int64(2), seed=np.int64(5)).episodes == 2
    comparison = {
        "name": "numpy",
        "base": "configs/taxi_qlearning_epsilon.yaml",
        "seeds": 1,
        "overrides": {"train.total_steps": np.int64(200)},
        "variants": {"a": {"agent.learning_rate": np.float64(0.3)}},
    }
    planned = plan_compare(comparison, logdir=tmp_path / "cmp")
    assert planned.runs[0].config["train"]["total_steps"] == 200


def test_evaluate_renders_the_env_it_makes(tmp_path, capsys):
    """render=True shows what the env draws: Taxi's text grid is printed every step."""
    run = rlsoft.train(
        "configs/taxi_qlearning_epsilon.yaml", overrides={"train.total_steps": 300}, logdir=tmp_path
    )
    capsys.readouterr()
    result = rlsoft.evaluate(run.load(), episodes=1, render=True)
    frames = capsys.readouterr().out.count("+---------+")
    assert frames >= 2 * result.lengths[0]  # each frame has a top and a bottom border

    # An env the caller made renders what its render_mode says: ansi is printed too.
    taxi = run.config.env.id  # Taxi-v3 or -v4, as the installed Gymnasium names it
    made = gym.make(taxi, render_mode="ansi")
    result = rlsoft.evaluate(run.load(), made, episodes=1, render=True)
    assert capsys.readouterr().out.count("+---------+") >= 2 * result.lengths[0]
    # Made without a mode (Gymnasium would only warn, once) or with frames nobody shows.
    for mode, fix in ((None, "render_mode='ansi'"), ("rgb_array", "RecordVideo")):
        made = gym.make(taxi, render_mode=mode)
        with pytest.raises(RlsoftError, match=rf"made with render_mode {mode!r}.*{fix}"):
            rlsoft.evaluate(run.load(), made, episodes=1, render=True)
        with pytest.raises(RlsoftError, match=rf"render_mode {mode!r}"):
            rlsoft.evaluate(
                run.load(),
                lambda mode=mode: gym.make(taxi, render_mode=mode),
                episodes=1,
                render=True,
            )


def test_render_without_a_display_suggests_recording_with_the_apis_own_means(dqn_run, monkeypatch):
    """From Python the way out is Gymnasium's RecordVideo, not the CLI's --video flag."""
    pytest.importorskip("pygame", reason="CartPole's window needs pygame")
    monkeypatch.setattr(sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RlsoftError) as info:
        rlsoft.evaluate(rlsoft.load(dqn_run.run_dir), episodes=1, render=True)
    assert str(info.value).endswith(
        "has no display (neither DISPLAY nor WAYLAND_DISPLAY is set); record its frames with "
        "gymnasium.wrappers.RecordVideo instead"
    )
    assert "--video" not in str(info.value)


def test_a_tuple_observation_agent_acts_evaluates_and_refuses_the_wrong_length(tmp_path):
    """Blackjack's (sum, dealer card, usable ace) tuples: one, a batch, and rlsoft eval's path."""
    run = rlsoft.train(
        "configs/blackjack_qlearning.yaml", overrides={"train.total_steps": 500}, logdir=tmp_path
    )
    agent = rlsoft.load(run.run_dir)
    q = agent.q_values([(14, 10, 0), (20, 5, 1)])
    assert q.shape == (2, 2) and agent.q_values((14, 10, 0)).shape == (2,)
    assert agent.predict((20, 5, 1)) == int(np.argmax(q[1])) or q[1, 0] == q[1, 1]
    assert rlsoft.evaluate(agent, episodes=3).episodes == 3
    with pytest.raises(RlsoftError, match=re.escape("observation shape (3,) (one")):
        agent.predict((14, 10))


def _tiny_breakout_run(logdir, atari: dict) -> rlsoft.Run:
    """40 steps of an untrained Breakout DQN (no updates: learning starts later)."""
    return rlsoft.train(
        {
            "env": {"id": "ALE/Breakout-v5", "max_episode_steps": 400, "atari": atari},
            "agent": {"type": "dqn", "network": "nature_cnn", "hidden_sizes": [8]},
            "train": {"total_steps": 40, "eval_episodes": 1, "eval_every": 0},
            "device": "cpu",
        },
        overrides={"agent.learning_starts": 1000, "agent.buffer_size": 100},
        logdir=logdir,
    )


def test_a_pixel_agent_refuses_frames_outside_its_uint8_range(tmp_path):
    """Atari frames are uint8 0..255 and the agent scales them itself: values past 255, below
    0 or already divided by 255 would be read as other pictures, so they are refused; the
    env's own observation (from the native backend it trained on) is acted on."""
    pytest.importorskip("ale_py.vector_env", reason="Atari is an optional extra")
    run = _tiny_breakout_run(tmp_path, {"screen_size": 36, "frame_stack": 2})
    agent = rlsoft.load(run.run_dir)
    frame = np.random.default_rng(0).integers(0, 256, size=(2, 36, 36), dtype=np.uint8)
    assert agent.predict(frame) in range(4)
    assert agent.predict(frame.astype(np.float32)) == agent.predict(frame)  # whole numbers
    unchanged = "pass the environment's observation unchanged"
    for bad, what, fix in (
        (np.full((2, 36, 36), 300), "from 300 to 300", unchanged),
        (np.full((2, 36, 36), -1), "from -1 to -1", unchanged),
        (frame / 255.0, "with fractions", "pass the observation unscaled (the agent divides"),
    ):
        with pytest.raises(RlsoftError, match=r"observations are uint8 values in 0\.\.255") as info:
            agent.predict(bad)
        assert what in str(info.value) and "\n" not in str(info.value)
        assert str(info.value).endswith(fix if fix == unchanged else f"{fix} by 255 itself)")


def test_load_builds_the_agent_from_the_recorded_spaces_without_an_environment(
    dqn_run, chain_run, monkeypatch
):
    """A run dir records its spaces (``spaces.json``) and ``load`` builds the agent from
    them: no environment is made to act, the spaces equal the environment's, and the
    answers are those of the agent loaded by probing the environment (as a run dir from
    before the file is)."""

    made: list[str] = []
    original = gym.make

    def counting_make(*args, **kwargs):
        made.append(str(args[0]))
        return original(*args, **kwargs)

    monkeypatch.setattr(gym, "make", counting_make)
    for run, env in ((dqn_run, original("CartPole-v1")), (chain_run, None)):
        assert (run.run_dir / "spaces.json").is_file()
        (run.run_dir / "spaces.json").rename(run.run_dir / "hidden.json")
        probed = rlsoft.load(run.run_dir)  # a run dir from before the file: probes its env
        assert made
        (run.run_dir / "hidden.json").rename(run.run_dir / "spaces.json")
        made.clear()
        recorded = rlsoft.load(run.run_dir)
        assert made == []  # acting needs no environment
        if env is not None:
            assert recorded.observation_space == env.observation_space
            assert recorded.action_space == env.action_space
        obs = [recorded.observation_space.sample() for _ in range(5)]
        np.testing.assert_array_equal(recorded.q_values(obs), probed.q_values(obs))
        assert rlsoft.evaluate(recorded, episodes=2).episodes == 2 and made  # this makes one
        made.clear()


def test_a_damaged_spaces_file_is_said_and_the_environment_probed(dqn_run, tmp_path):
    """The recorded spaces are read to act without the environment: a damaged file is not
    silently passed over (acting then needs the environment's package)."""
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(dqn_run.run_dir, run_dir)
    (run_dir / "spaces.json").write_text('{"observation": ', encoding="utf-8")
    with pytest.warns(RuntimeWarning, match=r"spaces\.json' is damaged, so the run's environment"):
        agent = rlsoft.load(run_dir)
    obs = np.zeros(4, dtype=np.float32)
    np.testing.assert_array_equal(agent.q_values(obs), rlsoft.load(dqn_run.run_dir).q_values(obs))


ATARI_WITHOUT_ALE = """
import sys
sys.modules["ale_py"] = None  # the atari extra is not installed here
import json, numpy as np, rlsoft
from rlsoft.errors import RlsoftError
from rlsoft.rl.frame_replay import FrameReplayBuffer
agent = rlsoft.load(sys.argv[1])
frames = np.load(sys.argv[2])
print(json.dumps(agent.q_values(frames).ravel().tolist()))
try:
    rlsoft.evaluate(agent, episodes=1)
except RlsoftError as exc:
    print(exc)
"""


def test_an_atari_agent_loads_and_acts_where_ale_py_is_not_installed(tmp_path):
    """Trained where ale-py is, loaded where it is not: the agent predicts on frames with
    the Q-values it has where it was trained; evaluating says which extra to install."""
    import json
    import subprocess
    import sys

    pytest.importorskip("ale_py.vector_env", reason="Atari is an optional extra")
    run = _tiny_breakout_run(tmp_path, {"screen_size": 36, "frame_stack": 2})
    frames = np.random.default_rng(0).integers(0, 256, size=(3, 2, 36, 36), dtype=np.uint8)
    np.save(tmp_path / "frames.npy", frames)
    here = rlsoft.load(run.run_dir).q_values(frames)
    done = subprocess.run(
        [sys.executable, "-c", ATARI_WITHOUT_ALE, str(run.run_dir), str(tmp_path / "frames.npy")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    q_line, message = done.stdout.strip().splitlines()
    np.testing.assert_array_equal(np.array(json.loads(q_line), np.float32), here.ravel())
    assert "needs the ale_py package" in message and "pip install 'rlsoft[atari]'" in message


def test_evaluate_makes_the_runs_own_id_as_the_run_made_it(tmp_path):
    """``env="ALE/Breakout-v5"`` for a run trained on it with its own Atari settings (36×36
    frames, 2-frame stacks, no no-op starts): the same env as ``env=None``, not the defaults
    (84×84 stacks of 4, which the network could not take)."""
    pytest.importorskip("ale_py.vector_env", reason="Atari is an optional extra")
    run = _tiny_breakout_run(tmp_path, {"screen_size": 36, "frame_stack": 2, "noop_max": 0})
    agent = rlsoft.load(run.run_dir)
    own = rlsoft.evaluate(agent, episodes=2, epsilon=0.05)
    named = rlsoft.evaluate(agent, env="ALE/Breakout-v5", episodes=2, epsilon=0.05)
    np.testing.assert_array_equal(named.lengths, own.lengths)
    np.testing.assert_array_equal(named.returns, own.returns)


def test_evaluate_reports_each_episode_as_it_ends(chain_run, monkeypatch, capsys):
    """``on_episode`` sees every episode's return and length as it ends (what ``rlsoft eval``
    shows on a terminal), the same numbers as the result."""
    import sys

    from rlsoft.cli.main import main as cli_main

    agent = rlsoft.load(chain_run.run_dir)
    seen: list[tuple[int, float, int]] = []
    result = rlsoft.evaluate(agent, episodes=3, on_episode=lambda *e: seen.append(e))
    assert [e[0] for e in seen] == [0, 1, 2]
    np.testing.assert_array_equal([e[1] for e in seen], result.returns)
    np.testing.assert_array_equal([e[2] for e in seen], result.lengths)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert cli_main(["eval", str(chain_run.run_dir), "--episodes", "2"]) == 0
    err = capsys.readouterr().err
    assert "episode 1/2: return" in err and "episode 2/2: return" in err and err.endswith("\n")


@pytest.mark.parametrize("head", ["q", "c51"])
def test_an_empty_batch_of_minatar_grids_gives_empty_answers(tmp_path, head):
    """A batch of no observations is a batch: (0, A) Q-values and probabilities, no actions
    (numpy acting has its own forward pass for the MinAtar network, plain and C51)."""
    pytest.importorskip("minatar", reason="MinAtar is an optional extra")
    run = rlsoft.train(
        "configs/minatar_breakout_dqn.yaml",
        overrides={
            "train.total_steps": 60,
            "agent.learning_starts": 40,
            "agent.head": head,
            "train.eval_episodes": 1,
        },
        logdir=tmp_path,
    )
    agent = rlsoft.load(run.run_dir)
    empty = np.zeros((0, 10, 10, 4), dtype=bool)
    assert agent.q_values(empty).shape == (0, 3)
    assert agent.action_probabilities(empty).shape == (0, 3)
    assert len(agent.predict(empty)) == 0
    one = np.zeros((1, 10, 10, 4), dtype=bool)
    assert agent.q_values(one).shape == (1, 3)
    if head == "q":  # a new process: loading registers no MinAtar id; make_env does
        script = (
            "import rlsoft, sys\n"
            "agent = rlsoft.load(sys.argv[1])\n"
            "env = agent.make_env()\n"
            "obs, _ = env.reset(seed=0)\n"
            "print(env.spec.id, agent.predict(obs) in (0, 1, 2))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, str(run.run_dir)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["MinAtar/Breakout-v1", "True"]


def test_a_mapping_override_replaces_what_its_path_held(tmp_path):
    """As ``--set "agent={...}"``: a section given whole is the whole section (switching the
    agent type leaves none of the old agent's keys behind), a schedule replaces a number,
    and an error in a section set whole is blamed on the overrides, not on the file."""
    run = rlsoft.train(
        "configs/taxi_softq.yaml",
        overrides={
            "agent": {"type": "q_learning", "learning_rate": 0.3},
            "train": {"total_steps": 200, "eval_episodes": 2},
            "exploration.epsilon": {"type": "linear", "start": 1.0, "end": 0.1, "duration": 50},
            "exploration.policy": "epsilon_greedy",
        },
        logdir=tmp_path,
    )
    saved = yaml.safe_load((run.run_dir / "config.yaml").read_text())
    assert saved["agent"]["type"] == "q_learning" and "temperature" not in saved["agent"]
    assert saved["exploration"]["epsilon"]["type"] == "linear" and run.steps == 200
    with pytest.raises(RlsoftError, match=r"^overrides: config field 'agent' needs a 'type'"):
        rlsoft.train(
            "configs/cartpole_dqn_epsilon.yaml",
            overrides={"agent": {"dueling": True}},
            logdir=tmp_path / "bad",
        )
    with pytest.raises(RlsoftError, match=r"^overrides: config field 'agent': .*n_step"):
        rlsoft.train(
            "configs/cartpole_dqn_epsilon.yaml",
            overrides={"agent.n_step": 3, "agent.target": "munchausen"},
            logdir=tmp_path / "bad",
        )
    assert not (tmp_path / "bad").exists()
    # The same in a comparison's overrides: a section given whole, blamed on them.
    comparison = {"base": "configs/cartpole_dqn_epsilon.yaml", "variants": {"a": {}}, "seeds": 1}
    with pytest.raises(RlsoftError, match=r"^overrides: config field 'agent' needs a 'type'"):
        plan_compare(comparison, overrides={"agent": {"dueling": True}})
    with pytest.raises(RlsoftError, match=r"^--set: config field 'agent' needs a 'type'"):
        plan_compare(comparison, overrides=["agent={dueling: true}"])


def glyph_config(tmp_path, padding_type: str, **agent):
    stack = {"stack_size": 4, "padding_type": padding_type}
    return {
        "name": "glyph",
        "logdir": str(tmp_path / "runs"),
        "device": "cpu",
        "env": {
            "id": f"{__name__}:GlyphEnv",
            "wrappers": [{"path": "gymnasium.wrappers:FrameStackObservation", "kwargs": stack}],
        },
        "agent": {
            "type": "dqn",
            "frame_stack": 4,
            "buffer_size": 500,
            "learning_starts": 50,
            "batch_size": 8,
            "n_step": 3,
            **agent,
        },
        "train": {"total_steps": 300, "eval_every": 0, "eval_episodes": 1},
    }


def test_zero_padded_frame_stacks_need_frame_padding_zero_and_then_train(tmp_path):
    """FrameStackObservation(padding_type="zero") with the default frame_padding is refused
    at the first episode's start, leaving no run dir; with frame_padding: zero the frame replay
    stores its stacks, and learns what storing whole transitions learns."""
    with pytest.raises(RlsoftError) as refused:
        rlsoft.train(glyph_config(tmp_path, "zero"), seed=0)
    assert str(refused.value) == (
        "the frame replay cannot store these observations: an episode's first stack is not "
        "padded as agent.frame_padding (reset) says; set agent.frame_padding to the "
        "padding_type of the environment's FrameStackObservation (reset or zero), or "
        "agent.frame_replay: off"
    )
    assert not (tmp_path / "runs").exists()
    frames = rlsoft.train(glyph_config(tmp_path, "zero", frame_padding="zero"), seed=0)
    whole = rlsoft.train(
        glyph_config(tmp_path, "zero", frame_replay="off", frame_stack=None), seed=0
    )
    assert frames.steps == whole.steps == 300
    first, second = (rlsoft.load(run.run_dir) for run in (frames, whole))
    probe = np.stack([np.zeros((4, 12, 12), np.uint8), np.full((4, 12, 12), 255, np.uint8)])
    np.testing.assert_array_equal(first.q_values(probe), second.q_values(probe))


def test_a_padding_mismatch_shown_episodes_later_leaves_no_run_dir(tmp_path):
    """Found after the trainer's first chunk of steps (60 steps in, the fourth episode) but
    before any checkpoint or evaluation: the same sentence, and nothing left behind."""
    config = glyph_config(tmp_path, "zero")
    config["env"]["id"] = f"{__name__}:LateGlyphEnv"
    config["train"]["log_every"] = 1000  # chunks of 15 steps
    with pytest.raises(RlsoftError, match=r"^the frame replay cannot store these observations"):
        rlsoft.train(config, seed=0)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    # After an evaluation (at step 40) the run has a record worth keeping: its dir stays.
    config["train"]["eval_every"] = 40
    with pytest.raises(RlsoftError, match=r"^the frame replay cannot store these observations"):
        rlsoft.train(config, seed=0)
    (kept,) = (tmp_path / "runs").iterdir()
    assert list(kept.glob("events.out.tfevents.*"))


def test_stacks_of_colour_frames_train_a_cnn_through_the_frame_replay(tmp_path):
    """FrameStackObservation over RGB frames gives (k, H, W, 3) stacks: auto convolves them
    as one image of 3k channels, the frame replay stores each frame once, and the run learns
    what storing whole transitions learns, bit for bit."""
    config = glyph_config(tmp_path, "reset")
    config["env"]["id"] = f"{__name__}:ColourGlyphEnv"
    config["env"]["wrappers"][0]["kwargs"]["stack_size"] = 2
    config["agent"]["frame_stack"] = 2
    frames = rlsoft.train(config, seed=0)
    config["agent"].update(frame_replay="off", frame_stack=None)
    whole = rlsoft.train(config, seed=0)
    first, second = (rlsoft.load(run.run_dir) for run in (frames, whole))
    plan = first.agent.plan
    assert (plan.name, plan.image, plan.channels_last) == ("minatar_cnn", (6, 12, 12), True)
    assert isinstance(first.agent.buffer, FrameReplayBuffer)
    assert not isinstance(second.agent.buffer, FrameReplayBuffer)
    probe = np.random.default_rng(0).integers(0, 256, (3, 2, 12, 12, 3), dtype=np.uint8)
    np.testing.assert_array_equal(first.q_values(probe), second.q_values(probe))


def test_a_loaded_agent_makes_its_runs_environment(tmp_path):
    """``TrainedAgent.make_env``: the run's env with its wrappers (here a frame stack), whose
    observations the agent takes; a classifier has none, and a render mode is a string."""
    agent = rlsoft.load(rlsoft.train(glyph_config(tmp_path, "reset"), seed=0).run_dir)
    with agent.make_env(render_mode=None) as env:
        assert env.observation_space == agent.observation_space
        obs, _ = env.reset(seed=1)
        assert obs.shape == (4, 12, 12) and agent.predict(obs) in (0, 1)
    with pytest.raises(RlsoftError, match=r"render_mode must be a string such as 'human'"):
        agent.make_env(render_mode=True)


def test_a_run_on_an_id_registered_by_its_script_names_the_registration_when_it_is_missing(
    tmp_path,
):
    """Trained on an id the script registered; evaluated where nothing registered it (a new
    process, here the id removed again): the id is named as unknown, with the way out."""
    gym.register("RlsoftTestGlyph-v0", entry_point=f"{__name__}:GlyphEnv")
    try:
        config = glyph_config(tmp_path, "reset")
        config["env"]["id"] = "RlsoftTestGlyph-v0"
        run = rlsoft.train(config, seed=0)
    finally:
        del gym.envs.registry["RlsoftTestGlyph-v0"]
    agent = rlsoft.load(run.run_dir)  # acting needs no environment
    assert agent.predict(np.zeros((4, 12, 12), np.uint8)) in (0, 1)
    with pytest.raises(RlsoftError) as unknown:
        rlsoft.evaluate(agent, episodes=1)
    assert str(unknown.value) == (
        "unknown environment id 'RlsoftTestGlyph-v0': nothing in this process registered it; "
        "from Python, register it (gymnasium.register) before loading the run (rlsoft eval and "
        "rlsoft train --resume cannot run the code that registered it), or train new runs with "
        "env.id naming its entry point module:Name"
    )


@pytest.mark.parametrize(
    ("config", "package", "modes"),
    [
        ("minatar_breakout_dqn.yaml", "minatar", "'human' or 'array' or 'rgb_array'"),
        ("atari_pong_dqn.yaml", "ale_py", "'human' or 'rgb_array'"),
    ],
)
def test_make_env_refuses_a_render_mode_the_env_does_not_draw(tmp_path, config, package, modes):
    """Gymnasium only warns at ``make`` and the env fails at its first ``render`` (MinAtar),
    or ALE refuses the mode as a constructor argument: either way one sentence naming the
    modes the env draws; a mode it draws still works."""
    pytest.importorskip(package, reason="an optional extra")
    from rlsoft.run.config import load_config_dict

    data = load_config_dict(Path(__file__).resolve().parents[2] / "configs" / config)
    data["logdir"] = str(tmp_path)
    data["agent"].update(buffer_size=1000)
    data["train"].update(total_steps=20, eval_episodes=1, eval_epsilon=1.0, checkpoint_every=0)
    agent = rlsoft.load(rlsoft.train(data, seed=0).run_dir)
    for bad in ("ansi", "bogus"):
        with pytest.raises(RlsoftError) as refused:
            agent.make_env(render_mode=bad)
        env_id = agent.env_config.id
        assert str(refused.value) == (
            f"render_mode {bad!r} is not one that {env_id} draws; choose {modes}, or None for "
            "no rendering"
        )
    with agent.make_env(render_mode="rgb_array") as env:
        env.reset(seed=0)
        assert env.render().ndim == 3
