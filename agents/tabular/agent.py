"""Tabular agents: Q-learning, SARSA, Expected SARSA, Double Q-learning and soft Q-learning.

Every agent keeps a table Q(s, a) over a finite state space and, after each transition
(s, a, r, s′), moves one entry towards a one-step target:

    Q(s, a) ← Q(s, a) + α · (y − Q(s, a))

The members differ only in the target ``y`` (γ the discount, π the behaviour policy, τ the
soft-target temperature)::

    Q-learning        y = r + γ · max_a′ Q(s′, a′)
    SARSA             y = r + γ · Q(s′, a′),          a′ ~ π(·|s′), the action taken next
    Expected SARSA    y = r + γ · Σ_a′ π(a′|s′) Q(s′, a′)
    Double Q          y = r + γ · Q_B(s′, argmax_a′ Q_A(s′, a′))   (A, B swapped at random)
    soft Q-learning   y = r + γ · τ · log Σ_a′ exp(Q(s′, a′) / τ)  (→ Q-learning as τ → 0)

Following Gymnasium, a *terminated* transition has no future (``y = r``) while a *truncated*
one (a time limit) still bootstraps from s′.

Count-based exploration bonus (``count_bonus: β > 0``, every member): the exploration bonus
of MBIE-EB (A. L. Strehl and M. L. Littman, "An analysis of model-based Interval Estimation
for Markov Decision Processes", JCSS 74(8), 2008) is added to the reward in the target,

    y = r + β / √n(s, a) + γ · (the member's bootstrap value at s′)

with n(s, a) the number of times the pair being updated has been visited, *this visit
included* (MBIE-EB's n(s, a) counts the samples its empirical model of (s, a) is built from,
and the update uses the current one), so n ≥ 1 and the first update of a pair gets the full
β. MBIE-EB adds the bonus to the Bellman equation of its empirical model and solves it; here
the bonus enters each member's one-step sample update instead (a model-free agent has no
model to solve), so the values move towards the same bonus-augmented targets. The counts
are part of the agent's checkpoint; ``exploration/bonus`` logs the mean bonus of the updates
in each log window. The bonus combines with any behaviour policy and with ``initial_q``.

Speed: the training loop calls :meth:`~TabularAgent.act` and :meth:`~TabularAgent.observe`
once per environment step, and a tabular environment step costs about 7 µs (bare Taxi-v4 at
138k steps/s, ``scripts/bench_tabular.py``), so these two calls are the budget. The tables are
therefore lists of lists of Python floats (reading a numpy scalar costs far more than reading
a list item); acting goes through the policy's
``row_sampler`` (a closure with a constant ε or τ bound in) fed by a
:class:`~rlsoft.explore.uniform_stream.UniformStream` (30 ns a uniform instead of 300 ns for
``rng.random()``); a constant learning rate skips the schedule call; and each agent's update
is written out in one method rather than through helper layers. numpy arrays appear only at
the edges (:meth:`~TabularAgent.q_values`, checkpoints). Rows are not validated per step:
a NaN or infinite value (a reward of inf, say) shows up in the running sum that
:meth:`~TabularAgent.metrics` reports at every log window and is raised there.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from math import exp, log
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from pydantic import Field, field_validator

from rlsoft.errors import CheckpointError, DivergedError, RlsoftError
from rlsoft.explore.policies import Greedy, Policy
from rlsoft.explore.schedules import ConstantSchedule, ScheduleLike, make_schedule
from rlsoft.explore.uniform_stream import UniformStream
from rlsoft.numerics.functional import check_temperature
from rlsoft.rl.agent import AgentSpec, BuildContext, register_agent
from rlsoft.rl.spaces import discrete_actions, discrete_state_encoder
from rlsoft.run.config import NumberOrSchedule, StrictModel, build_schedule, schedule_endpoints

__all__ = [
    "DoubleQLearning",
    "DoubleQLearningConfig",
    "ExpectedSarsa",
    "ExpectedSarsaConfig",
    "QLearning",
    "QLearningConfig",
    "Sarsa",
    "SarsaConfig",
    "SoftQLearning",
    "SoftQLearningConfig",
    "TabularAgent",
    "TabularConfig",
]

CHECKPOINT_FORMAT = "rlsoft.tabular/2"  # 2: the buffered uniform stream's state
_NO_STATE = -1  # "no pending action" marker for SARSA (state indices are >= 0)


# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------


def _check_learning_rate(value: float) -> float:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"learning_rate must be in (0, 1], got {value!r}")
    return value


class TabularConfig(StrictModel):
    """Hyperparameters shared by every tabular agent (the ``agent:`` section)."""

    learning_rate: NumberOrSchedule = 0.1
    """Step size α in (0, 1] of Q(s,a) ← Q(s,a) + α·(target − Q(s,a)): a number or a
    linear/exponential schedule over environment steps."""
    gamma: float = Field(0.99, ge=0.0, le=1.0)
    """Discount factor γ in [0, 1] applied to the value of the next state."""
    initial_q: float = 0.0
    """Initial value of every Q(s, a); a value above any achievable return (optimistic
    initialisation) drives the agent to try every action."""
    count_bonus: float = Field(0.0, ge=0.0)
    """β ≥ 0 of the count-based exploration bonus β/√n(s, a) added to the reward in every
    target (MBIE-EB, Strehl & Littman 2008), n(s, a) the visits of the updated pair counting
    the current one; 0 turns it off. Its scale is the reward's: the bonus should be able to
    outweigh a sure small reward early and fade below the gaps between actions later."""

    @field_validator("learning_rate")
    @classmethod
    def _learning_rate_in_unit_interval(cls, value: NumberOrSchedule) -> NumberOrSchedule:
        for v in schedule_endpoints(value):
            _check_learning_rate(v)
        return value


class QLearningConfig(TabularConfig):
    """Q-learning: target r + γ·max_a′ Q(s′, a′)."""


class SarsaConfig(TabularConfig):
    """SARSA: target r + γ·Q(s′, a′) with a′ the action the behaviour policy takes next."""


class ExpectedSarsaConfig(TabularConfig):
    """Expected SARSA: target r + γ·Σ_a′ π(a′|s′)·Q(s′, a′) under the behaviour policy π."""


class DoubleQLearningConfig(TabularConfig):
    """Double Q-learning: two tables, each evaluated at the other's greedy action."""


class SoftQLearningConfig(TabularConfig):
    """Soft Q-learning: target r + γ·τ·logsumexp(Q(s′)/τ)."""

    temperature: NumberOrSchedule = 0.1
    """Soft-target temperature τ > 0 (a number or a schedule); τ → 0 recovers Q-learning.
    Independent of the exploration temperature of a Boltzmann policy."""

    @field_validator("temperature")
    @classmethod
    def _temperature_positive(cls, value: NumberOrSchedule) -> NumberOrSchedule:
        for v in schedule_endpoints(value):
            check_temperature(v)
        return value


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _split_schedule(
    value: ScheduleLike, check: Callable[[float], float]
) -> tuple[float | None, Callable[[int], float] | None]:
    """``(constant, None)`` for a constant (validated by ``check``, which raises ValueError),
    ``(None, schedule)`` otherwise, so that the hot path pays for a schedule call only when
    the value really changes with the step."""
    schedule = make_schedule(value)
    if not isinstance(schedule, ConstantSchedule):
        return None, schedule
    return check(schedule.value), None


def _all_finite(tables: Mapping[str, np.ndarray]) -> bool:
    return all(np.isfinite(table).all() for table in tables.values())


def _json_array(state: dict[str, Any]) -> np.ndarray:
    # A 0-d unicode array: readable with allow_pickle=False, unlike an object array.
    return np.array(json.dumps(state))


def _check_generator_state(
    rng: np.random.Generator, state: dict[str, Any], path: Path
) -> dict[str, Any]:
    expected = type(rng.bit_generator).__name__
    if state.get("bit_generator") != expected:
        raise RlsoftError(
            f"checkpoint {str(path)!r} holds a {state.get('bit_generator')} random state, "
            f"but this agent uses {expected}"
        )
    return state


# --------------------------------------------------------------------------------------------
# The shared base
# --------------------------------------------------------------------------------------------


class TabularAgent(ABC):
    """State, acting, metrics and checkpoints shared by the tabular agents.

    Subclasses set ``name`` and implement :meth:`observe` (their update rule).

    :param observation_space: ``Discrete``, or ``Tuple``/``MultiDiscrete`` of discrete parts
        (flattened to one index, e.g. Blackjack-v1).
    :param action_space: ``Discrete`` starting at 0.
    :param policy: the exploration (behaviour) policy used by :meth:`act`.
    :param rng: the generator for exploration and for any randomness of the update rule.
    :param learning_rate: α in (0, 1], a number or a schedule ``step -> α``.
    :param gamma: discount γ in [0, 1].
    :param initial_q: initial value of every entry (optimistic initialisation if large).
    :param count_bonus: β ≥ 0 of the exploration bonus β/√n(s, a) added to the reward of each
        update (see the module docstring); 0 disables it (and its visit counts).
    """

    name: ClassVar[str] = "tabular"
    title: ClassVar[str] = "tabular agent"
    """The algorithm's name in reports (:attr:`rlsoft.rl.agent.AgentSpec.title`)."""
    checkpoint_suffix = ".npz"
    _suggestion: ClassVar[str] = (
        "the DQN agent (agent.type: dqn) handles large or continuous observations, but like "
        "every Q-learning agent it also needs Discrete actions, so discretise the actions "
        "with a wrapper"
    )

    def __init__(
        self,
        *,
        observation_space: gym.Space,
        action_space: gym.Space,
        policy: Policy,
        rng: np.random.Generator,
        learning_rate: ScheduleLike = 0.1,
        gamma: float = 0.99,
        initial_q: float = 0.0,
        count_bonus: float = 0.0,
    ) -> None:
        who = f"the tabular agent {self.name!r}"
        self.n_actions = discrete_actions(action_space, who, self._suggestion)
        self.n_states, self._encode = discrete_state_encoder(observation_space, who)
        self._single_obs_ndim = 0 if isinstance(observation_space, gym.spaces.Discrete) else 1
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma!r}")
        if not math.isfinite(initial_q):
            raise ValueError(f"initial_q must be a finite number, got {initial_q!r}")
        if not 0.0 <= count_bonus < math.inf:
            raise ValueError(f"count_bonus must be a finite number >= 0, got {count_bonus!r}")
        self.policy = policy
        self.rng = rng
        # Evaluation draws its tie-breaks from its own stream, so how often the loop evaluates
        # never changes the training trajectory.
        self.eval_rng = np.random.default_rng(int(rng.integers(2**63)))
        self.gamma = float(gamma)
        self._alpha, self._alpha_schedule = _split_schedule(learning_rate, _check_learning_rate)
        # Exploration, SARSA's next action and Double Q's coin draw from one buffered stream
        # of the agent's Generator (a scalar rng.random() call costs as much as the update).
        self.stream = UniformStream(rng)
        self._uniform = self.stream.uniform
        self._sample = policy.row_sampler(self._uniform)
        self._greedy = Greedy()
        self.initial_q = float(initial_q)
        self._q = self._new_table(self.initial_q)
        self.updates = 0
        self._metric_start = 0
        self._td_sq_sum = 0.0
        self._q_sum = 0.0
        self.count_bonus = float(count_bonus)
        self._counts: list[list[int]] | None = None
        self._bonus_sum = 0.0
        if self.count_bonus > 0.0:
            self._counts = [[0] * self.n_actions for _ in range(self.n_states)]
            # Shadow the update rule with one that adds the bonus to the reward: without a
            # bonus the per-step path stays exactly as it was.
            self.observe = self._with_count_bonus(self.observe)  # type: ignore[method-assign]

    # -- construction --------------------------------------------------------------------

    @classmethod
    def from_context(cls, ctx: BuildContext) -> TabularAgent:
        """Build from the training loop's :class:`~rlsoft.rl.agent.BuildContext`."""
        who = f"the tabular agent {cls.name!r}"
        if ctx.num_envs != 1:
            raise RlsoftError(
                f"{who} learns from one environment at a time, but env.num_envs is "
                f"{ctx.num_envs}; set env.num_envs to 1 (a table update is cheaper than "
                "vectorising)"
            )
        if ctx.observation_space is None or ctx.action_space is None:
            raise RlsoftError(f"{who} needs an environment (an env: section in the config)")
        if ctx.policy is None:
            raise RlsoftError(f"{who} needs an exploration policy (the exploration: section)")
        return cls(
            observation_space=ctx.observation_space,
            action_space=ctx.action_space,
            policy=ctx.policy,
            rng=ctx.rng,
            **cls._config_kwargs(ctx.config),
        )

    @staticmethod
    def _config_kwargs(config: Any) -> dict[str, Any]:
        return {
            "learning_rate": build_schedule(config.learning_rate),
            "gamma": config.gamma,
            "initial_q": config.initial_q,
            "count_bonus": config.count_bonus,
        }

    def _new_table(self, value: float) -> list[list[float]]:
        return [[value] * self.n_actions for _ in range(self.n_states)]

    # -- acting --------------------------------------------------------------------------

    def state_index(self, obs: Any) -> int:
        """The table row of one observation (a Tuple observation is flattened row-major)."""
        return self._encode(obs)

    def act(self, obs: Any, step: int) -> int:
        """An action drawn from the exploration policy at ``step`` over the row Q(obs, ·)."""
        return self._sample(self._q[self._encode(obs)], step)

    def act_greedy(self, obs: Any) -> int:
        """argmax_a Q(obs, a), ties broken uniformly at random (with :attr:`eval_rng`)."""
        return self._greedy.select(self._q[self._encode(obs)], self.eval_rng)

    def q_values(self, observations: Any) -> np.ndarray:
        """The action values ``(n, A)`` of a batch of observations (one is also accepted)."""
        obs = np.asarray(observations)
        if obs.ndim == self._single_obs_ndim:
            obs = obs[None]
        rows = [self._q[self._encode(o)] for o in obs]
        return np.array(rows, dtype=np.float64).reshape(len(rows), self.n_actions)

    # -- learning ------------------------------------------------------------------------

    @abstractmethod
    def observe(
        self,
        obs: Any,
        action: int,
        reward: float,
        next_obs: Any,
        terminated: bool,
        truncated: bool,
        step: int,
    ) -> None:
        """Update Q(obs, action) from one transition (each subclass's rule)."""

    def _with_count_bonus(self, update: Callable[..., None]) -> Callable[..., None]:
        """``update`` (the member's :meth:`observe`) with reward r + β/√n(s, a), after
        counting this visit of (s, a)."""
        beta, encode, sqrt = self.count_bonus, self._encode, math.sqrt

        def observe(
            obs: Any,
            action: int,
            reward: float,
            next_obs: Any,
            terminated: bool,
            truncated: bool,
            step: int,
        ) -> None:
            row = self._counts[encode(obs)]  # type: ignore[index]
            visits = row[action] + 1
            row[action] = visits
            bonus = beta / sqrt(visits)
            self._bonus_sum += bonus
            update(obs, action, float(reward) + bonus, next_obs, terminated, truncated, step)

        return observe

    def visit_counts(self) -> np.ndarray | None:
        """n(s, a) as an ``(n_states, n_actions)`` int64 array (None without a count bonus)."""
        return None if self._counts is None else np.array(self._counts, dtype=np.int64)

    def learning_rate(self, step: int) -> float:
        """α at ``step``."""
        return self._alpha if self._alpha_schedule is None else float(self._alpha_schedule(step))

    def metrics(self) -> dict[str, float]:
        """Mean squared TD error and mean updated Q(s, a) since the last call ({} if none),
        and with a count bonus its mean over the same updates (``exploration/bonus``).

        Also where divergence is caught: a NaN or infinite Q(s, a) makes the running sum of
        updated values non-finite, which costs nothing per step to notice here.
        """
        count = self.updates - self._metric_start
        if count == 0:
            return {}
        # The sum of finite values can itself overflow: then the tables decide.
        if not math.isfinite(self._q_sum) and not _all_finite(self.get_tables()):
            raise DivergedError(self._diverged_message())
        out = {"losses/td_loss": self._td_sq_sum / count, "losses/q_mean": self._q_sum / count}
        if self._counts is not None:
            out["exploration/bonus"] = self._bonus_sum / count  # one bonus per update
            self._bonus_sum = 0.0
        self._metric_start = self.updates
        self._td_sq_sum = 0.0
        self._q_sum = 0.0
        return out

    def _diverged_message(self) -> str:
        return (
            f"the tabular agent {self.name!r} produced a NaN or infinite Q-value, so training "
            "has diverged; check the environment's rewards for NaN or inf values, or scale "
            "them down"
        )

    # -- tables and checkpoints ----------------------------------------------------------

    def get_tables(self) -> dict[str, np.ndarray]:
        """Copies of the learned tables as ``(n_states, n_actions)`` float64 arrays."""
        return {"q": np.array(self._q, dtype=np.float64)}

    def set_tables(self, tables: Mapping[str, Any]) -> None:
        """Replace the learned tables (same names and shapes as :meth:`get_tables`)."""
        self._q = self._table_from(tables, "q")

    def _table_from(self, tables: Mapping[str, Any], key: str) -> list[list[float]]:
        if key not in tables:
            raise RlsoftError(f"missing table {key!r} for the tabular agent {self.name!r}")
        array = np.asarray(tables[key], dtype=np.float64)
        expected = (self.n_states, self.n_actions)
        if array.shape != expected:
            raise RlsoftError(
                f"table {key!r} has shape {array.shape}, but this environment needs {expected} "
                "(states × actions); was it saved for another environment?"
            )
        return array.tolist()  # Python floats: the policies' fast path

    def _extra_state(self) -> dict[str, np.ndarray]:
        """Agent-specific arrays to checkpoint besides the tables."""
        return {}

    def _load_extra_state(self, data: Mapping[str, np.ndarray]) -> None:
        """Restore what :meth:`_extra_state` wrote (an optional hook: nothing by default)."""
        del data

    def save(self, path: str | Path) -> None:
        """Write tables, random states and counters to ``path`` (an ``.npz`` archive).

        Written through an open file so that ``path`` is used exactly as given (``np.savez``
        appends ``.npz`` to a bare name, which would break the caller's write-then-rename).
        """
        tables = self.get_tables()
        if not _all_finite(tables):
            raise DivergedError(self._diverged_message())
        arrays = {
            "format": np.array(CHECKPOINT_FORMAT),
            "agent": np.array(self.name),
            **{f"table_{k}": v for k, v in tables.items()},
            "stream_state": _json_array(self.stream.state_dict()),
            "eval_rng_state": _json_array(self.eval_rng.bit_generator.state),
            "updates": np.array(self.updates, dtype=np.int64),
            "metric_start": np.array(self._metric_start, dtype=np.int64),
            "metric_sums": np.array([self._td_sq_sum, self._q_sum], dtype=np.float64),
            **self._count_state(),
            **self._extra_state(),
        }
        with open(path, "wb") as file:
            np.savez(file, **arrays)

    def load(self, path: str | Path) -> None:
        """Restore what :meth:`save` wrote; continuing gives the same actions and updates."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as archive:
                data = {key: archive[key] for key in archive.files}
        except (OSError, ValueError) as exc:
            # numpy's own text for a file that is not an archive suggests allow_pickle=True,
            # which would run whatever the file holds: say what the file is instead.
            reason = (
                "it is not a NumPy archive"
                if "pickle" in str(exc)
                else " ".join(str(exc).split())[:80] or type(exc).__name__
            )
            raise CheckpointError(
                f"checkpoint file {str(path)!r} is corrupt or unreadable ({reason})"
            ) from None
        self._check_header(data, path)
        self.set_tables(
            {k.removeprefix("table_"): v for k, v in data.items() if k.startswith("table_")}
        )
        stream_state = json.loads(str(data["stream_state"]))
        _check_generator_state(self.rng, stream_state["generator"], path)
        self.stream.load_state_dict(stream_state)
        eval_state = json.loads(str(data["eval_rng_state"]))
        self.eval_rng.bit_generator.state = _check_generator_state(self.eval_rng, eval_state, path)
        self.updates = int(data["updates"])
        self._metric_start = int(data["metric_start"])
        self._td_sq_sum, self._q_sum = (float(v) for v in data["metric_sums"])
        self._load_count_state(data, path)
        self._load_extra_state(data)

    def _count_state(self) -> dict[str, np.ndarray]:
        if self._counts is None:
            return {}
        return {
            "visit_counts": np.array(self._counts, dtype=np.int64),
            "bonus_sum": np.array(self._bonus_sum, dtype=np.float64),
        }

    def _load_count_state(self, data: Mapping[str, np.ndarray], path: Path) -> None:
        saved = "visit_counts" in data
        if saved != (self._counts is not None):
            raise RlsoftError(
                f"checkpoint {str(path)!r} was written by an agent "
                f"{'with' if saved else 'without'} a count bonus, but this one has "
                f"agent.count_bonus={self.count_bonus}; load it with the config it was trained "
                "with"
            )
        if not saved:
            return
        counts = np.asarray(data["visit_counts"])
        expected = (self.n_states, self.n_actions)
        if counts.shape != expected or counts.dtype.kind != "i" or (counts < 0).any():
            raise RlsoftError(
                f"checkpoint {str(path)!r} holds visit counts of shape {counts.shape}, but this "
                f"environment needs non-negative integers of shape {expected}"
            )
        self._counts = counts.tolist()
        self._bonus_sum = float(data["bonus_sum"])

    def _check_header(self, data: Mapping[str, np.ndarray], path: Path) -> None:
        written = str(data["format"]) if "format" in data else ""
        if written.startswith("rlsoft.tabular/") and written != CHECKPOINT_FORMAT:
            raise RlsoftError(
                f"checkpoint {str(path)!r} has format {written!r}, but this rlsoft reads "
                f"{CHECKPOINT_FORMAT!r}; load it with the rlsoft version that wrote it, or "
                "train the run again"
            )
        if written != CHECKPOINT_FORMAT:
            raise RlsoftError(f"{str(path)!r} is not a tabular-agent checkpoint of rlsoft")
        saved = str(data["agent"])
        if saved != self.name:
            raise RlsoftError(
                f"checkpoint {str(path)!r} was written by the {saved!r} agent and cannot be "
                f"loaded into {self.name!r}"
            )


# --------------------------------------------------------------------------------------------
# The agents. Each observe() is written out in full: it runs once per environment step.
# --------------------------------------------------------------------------------------------


class QLearning(TabularAgent):
    """Off-policy TD control: Q(s,a) ← Q(s,a) + α·(r + γ·max_a′ Q(s′,a′) − Q(s,a)).

    The max is dropped (target r) when the episode terminated, kept when it was truncated.
    """

    name = "q_learning"
    title = "Q-learning"

    def observe(
        self,
        obs: Any,
        action: int,
        reward: float,
        next_obs: Any,
        terminated: bool,
        truncated: bool,
        step: int,
    ) -> None:
        q = self._q
        row = q[self._encode(obs)]
        old = row[action]
        if terminated:
            target = float(reward)
        else:
            target = float(reward) + self.gamma * max(q[self._encode(next_obs)])
        td = target - old
        alpha = self._alpha if self._alpha_schedule is None else float(self._alpha_schedule(step))
        row[action] = new = old + alpha * td
        self.updates += 1
        self._td_sq_sum += td * td
        self._q_sum += new


class Sarsa(TabularAgent):
    """On-policy TD control: Q(s,a) ← Q(s,a) + α·(r + γ·Q(s′,a′) − Q(s,a)).

    a′ is drawn here from the behaviour policy over Q(s′, ·) (before the update, as in Sutton
    & Barto) at the step of the next :meth:`act` call (``step + 1``), and that call returns
    the same a′, so the action evaluated is the action taken. After a terminated transition
    there is no a′ (target r); after a truncated one a′ is drawn for the target only, since
    the loop resets the environment and the next :meth:`act` samples afresh.
    """

    name = "sarsa"
    title = "SARSA"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._next_state = _NO_STATE
        self._next_action = 0

    def act(self, obs: Any, step: int) -> int:
        """a′ chosen by the last :meth:`observe` if ``obs`` is its s′, else a fresh sample."""
        state = self._encode(obs)
        if state == self._next_state:
            self._next_state = _NO_STATE
            return self._next_action
        return self._sample(self._q[state], step)

    def observe(
        self,
        obs: Any,
        action: int,
        reward: float,
        next_obs: Any,
        terminated: bool,
        truncated: bool,
        step: int,
    ) -> None:
        q = self._q
        row = q[self._encode(obs)]
        old = row[action]
        if terminated:
            target = float(reward)
            self._next_state = _NO_STATE
        else:
            state = self._encode(next_obs)
            next_row = q[state]
            next_action = self._sample(next_row, step + 1)
            target = float(reward) + self.gamma * next_row[next_action]
            self._next_state = _NO_STATE if truncated else state
            self._next_action = next_action
        td = target - old
        alpha = self._alpha if self._alpha_schedule is None else float(self._alpha_schedule(step))
        row[action] = new = old + alpha * td
        self.updates += 1
        self._td_sq_sum += td * td
        self._q_sum += new

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {
            "next_state": np.array(self._next_state, dtype=np.int64),
            "next_action": np.array(self._next_action, dtype=np.int64),
        }

    def _load_extra_state(self, data: Mapping[str, np.ndarray]) -> None:
        self._next_state = int(data["next_state"])
        self._next_action = int(data["next_action"])


class ExpectedSarsa(TabularAgent):
    """Q(s,a) ← Q(s,a) + α·(r + γ·Σ_a′ π(a′|s′)·Q(s′,a′) − Q(s,a)).

    π is the behaviour policy's exact distribution (``policy.probs``) at ``step + 1``, the
    step at which it would act in s′: for ε-greedy (1−ε)·greedy + ε·uniform with tied maxima
    sharing the greedy mass, for Boltzmann softmax(Q(s′)/τ). It is the expectation of
    SARSA's target, without the variance of sampling a′.
    """

    name = "expected_sarsa"
    title = "Expected SARSA"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._expectation = self.policy.expectation

    def observe(
        self,
        obs: Any,
        action: int,
        reward: float,
        next_obs: Any,
        terminated: bool,
        truncated: bool,
        step: int,
    ) -> None:
        q = self._q
        row = q[self._encode(obs)]
        old = row[action]
        if terminated:
            target = float(reward)
        else:
            expected = self._expectation(q[self._encode(next_obs)], step=step + 1)
            target = float(reward) + self.gamma * expected
        td = target - old
        alpha = self._alpha if self._alpha_schedule is None else float(self._alpha_schedule(step))
        row[action] = new = old + alpha * td
        self.updates += 1
        self._td_sq_sum += td * td
        self._q_sum += new


class DoubleQLearning(TabularAgent):
    """Two tables, one updated per step, chosen by a fair coin (van Hasselt, 2010)::

        Q_A(s,a) ← Q_A(s,a) + α·(r + γ·Q_B(s′, argmax_a′ Q_A(s′,a′)) − Q_A(s,a))

    (or the same with A and B swapped). Selecting with one table and evaluating with the
    other removes Q-learning's maximisation bias. Acting, :meth:`q_values` and the metrics use
    the mean (Q_A + Q_B)/2, kept up to date entry by entry so acting reads one row.
    """

    name = "double_q_learning"
    title = "Double Q-learning"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._qa = self._new_table(self.initial_q)
        self._qb = self._new_table(self.initial_q)
        self._argmax = self._greedy.row_sampler(self._uniform)  # ties broken at random

    def observe(
        self,
        obs: Any,
        action: int,
        reward: float,
        next_obs: Any,
        terminated: bool,
        truncated: bool,
        step: int,
    ) -> None:
        if self._uniform() < 0.5:
            update, other = self._qa, self._qb
        else:
            update, other = self._qb, self._qa
        state = self._encode(obs)
        row = update[state]
        old = row[action]
        if terminated:
            target = float(reward)
        else:
            next_state = self._encode(next_obs)
            best = self._argmax(update[next_state], step)
            target = float(reward) + self.gamma * other[next_state][best]
        td = target - old
        alpha = self._alpha if self._alpha_schedule is None else float(self._alpha_schedule(step))
        row[action] = new = old + alpha * td
        self._q[state][action] = mean = 0.5 * (new + other[state][action])
        self.updates += 1
        self._td_sq_sum += td * td
        self._q_sum += mean

    def get_tables(self) -> dict[str, np.ndarray]:
        """``q_a`` and ``q_b``; the acting table is their mean."""
        return {
            "q_a": np.array(self._qa, dtype=np.float64),
            "q_b": np.array(self._qb, dtype=np.float64),
        }

    def set_tables(self, tables: Mapping[str, Any]) -> None:
        self._qa = self._table_from(tables, "q_a")
        self._qb = self._table_from(tables, "q_b")
        # The same expression as the incremental update, so the floats are identical.
        self._q = (0.5 * (np.array(self._qa) + np.array(self._qb))).tolist()


class SoftQLearning(TabularAgent):
    """Q(s,a) ← Q(s,a) + α·(r + γ·τ·log Σ_a′ exp(Q(s′,a′)/τ) − Q(s,a)).

    The soft maximum is the value of the entropy-regularised (Boltzmann) policy at
    temperature τ; it lies within [max Q(s′), max Q(s′) + τ·log A], so τ → 0 gives
    Q-learning. τ (``temperature``, a number or a schedule over steps) is independent of the
    exploration policy's temperature.

    That bonus of up to τ·log A per step means that with a zero-initialised table visited
    states look better than unvisited ones and greedy acting keeps returning to them; on
    sparse-reward tasks give ``initial_q`` an optimistic value.
    """

    name = "soft_q_learning"
    title = "soft Q-learning"

    def __init__(self, *, temperature: ScheduleLike = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._tau, self._tau_schedule = _split_schedule(temperature, check_temperature)

    @staticmethod
    def _config_kwargs(config: Any) -> dict[str, Any]:
        return {
            **TabularAgent._config_kwargs(config),
            "temperature": build_schedule(config.temperature),
        }

    def temperature(self, step: int) -> float:
        """The soft-target τ at ``step``."""
        return self._tau if self._tau_schedule is None else float(self._tau_schedule(step))

    def observe(
        self,
        obs: Any,
        action: int,
        reward: float,
        next_obs: Any,
        terminated: bool,
        truncated: bool,
        step: int,
    ) -> None:
        q = self._q
        row = q[self._encode(obs)]
        old = row[action]
        if terminated:
            target = float(reward)
        else:
            # rlsoft.numerics.functional.row_logsumexp, inlined: it runs once per environment
            # step, and its two Python calls cost a noticeable share of a ~1.7 µs step
            # (scripts/bench_tabular.py). The test of soft Q's target checks it bit for bit.
            tau = self._tau if self._tau_schedule is None else float(self._tau_schedule(step))
            next_row = q[self._encode(next_obs)]
            top = max(next_row)
            total = sum([exp((v - top) / tau) for v in next_row])
            target = float(reward) + self.gamma * (top + tau * log(total))
        td = target - old
        alpha = self._alpha if self._alpha_schedule is None else float(self._alpha_schedule(step))
        row[action] = new = old + alpha * td
        self.updates += 1
        self._td_sq_sum += td * td
        self._q_sum += new


# --------------------------------------------------------------------------------------------
# Registration (``import agents`` runs this)
# --------------------------------------------------------------------------------------------

_FAMILY: tuple[tuple[type[TabularAgent], type[TabularConfig], str], ...] = (
    (QLearning, QLearningConfig, "tabular Q-learning: target r + γ·max Q(s′)"),
    (Sarsa, SarsaConfig, "tabular SARSA (on-policy): target r + γ·Q(s′, a′), a′ the next action"),
    (
        ExpectedSarsa,
        ExpectedSarsaConfig,
        "tabular Expected SARSA: target r + γ·Σ π(a′|s′)·Q(s′, a′) under the behaviour policy",
    ),
    (
        DoubleQLearning,
        DoubleQLearningConfig,
        "tabular Double Q-learning: two tables, each evaluated at the other's greedy action",
    ),
    (
        SoftQLearning,
        SoftQLearningConfig,
        "tabular soft Q-learning: target r + γ·τ·logsumexp(Q(s′)/τ)",
    ),
)


def _checked_build(agent: type[TabularAgent]) -> Callable[[BuildContext], TabularAgent]:
    """``agent.from_context`` after checking that its tables fit in memory."""
    from agents.tabular.memory import check_tabular_memory

    tables = 3 if issubclass(agent, DoubleQLearning) else 1  # the mean, Q_A and Q_B

    def build(ctx: BuildContext) -> TabularAgent:
        # The visit counts of a count bonus are one more table (a CPython int takes 28 bytes
        # to a float's 24, but counts below 257 share cached objects).
        bonus = 1 if getattr(ctx.config, "count_bonus", 0.0) > 0.0 else 0
        check_tabular_memory(ctx, tables + bonus)
        return agent.from_context(ctx)

    return build


SPECS: tuple[AgentSpec, ...] = tuple(
    register_agent(
        AgentSpec(
            name=agent.name,
            title=agent.title,
            config_model=config,
            build=_checked_build(agent),
            kind="rl",
            description=description,
        )
    )
    for agent, config, description in _FAMILY
)
"""The registered specs, in the order above."""
