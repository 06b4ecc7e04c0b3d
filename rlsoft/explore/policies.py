"""Exploration policies over action values: greedy, ε-greedy, Boltzmann (softmax) and
εz-greedy (ε-greedy whose exploratory actions are repeated for a zeta-distributed duration).

Every policy maps action values ``q`` to a distribution over actions and samples from it:

* ``probs(q, step=, mask=)``: the distribution π(·|q) (rows sum to 1);
* ``select(q, rng, step=, mask=)``: one action drawn *exactly* from ``probs`` with a
  ``numpy.random.Generator``;
* ``entropy(q, step=, mask=)``: H(π) = −Σ_a π(a) log π(a) in nats;
* ``row_sampler(uniform)``: ``select`` for one trusted row of Python floats, as a closure
  ``(row, step) -> action`` fed by a uniform source (the tabular agents' per-step path).

``q`` is one row of shape ``(A,)`` (``select`` returns an ``int``) or a batch ``(n, A)``
(returns an int array). ``mask`` is a bool array of the same shape, True where an action is
allowed; disallowed actions get probability 0. NaN Q-values raise
:class:`rlsoft.errors.DivergedError`, except at disallowed actions, whose values are never
read. The exploration parameter (ε or τ) is a number or any schedule ``step -> float`` (see
:mod:`rlsoft.explore.schedules`).

Most policies are memoryless: the action depends on the current Q-values only. A *stateful*
policy (:attr:`Policy.stateful`, here :class:`EzGreedy`) also carries something from step to
step in each environment; the driver that steps the environments then tells it where
episodes end (:meth:`Policy.end_episode`), checkpoints it (:meth:`Policy.state_dict`) and
logs its :meth:`Policy.metrics`.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from rlsoft.errors import DivergedError
from rlsoft.explore.schedules import ConstantSchedule, ScheduleLike, make_schedule
from rlsoft.numerics import functional as F

__all__ = [
    "Boltzmann",
    "EpsilonGreedy",
    "EzGreedy",
    "Greedy",
    "Policy",
    "RowSampler",
    "sample_zeta",
]

RowSampler = Callable[[list[float], int], int]
"""``sample(row, step) -> action`` over one row of Python floats (see ``Policy.row_sampler``)."""


def _diverged_message() -> str:
    return (
        "Q-values contain NaN, so no action can be chosen; training has diverged "
        "(lower the learning rate, clip rewards or gradients)"
    )


def _prepare(q: Any, mask: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate ``q`` (1-D or 2-D) and ``mask``; return float q and bool mask.

    NaN at an allowed action is divergence (:class:`DivergedError`). NaN at a disallowed
    action is ignored: that action is never chosen and its value never read, so such entries
    are replaced by 0 in a copy (the caller's array is left alone). The common case, no NaN
    at all, costs the one ``isnan`` scan it always did.
    """
    q = np.asarray(q, dtype=np.float64) if not isinstance(q, np.ndarray) else q
    if q.dtype.kind != "f":
        q = q.astype(np.float64)
    if q.ndim not in (1, 2) or q.shape[-1] == 0:
        raise ValueError(f"action values must have shape (A,) or (n, A) with A >= 1, got {q.shape}")
    nan = np.isnan(q)
    has_nan = nan.any()
    if mask is None:
        if has_nan:
            raise DivergedError(_diverged_message())
        return q, None
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != q.shape:
        raise ValueError(f"action mask has shape {mask.shape} but action values have {q.shape}")
    if not mask.any(axis=-1).all():
        raise ValueError("the action mask allows no action in some state; allow at least one")
    if has_nan:
        if (nan & mask).any():
            raise DivergedError(_diverged_message())
        q = np.where(nan, 0.0, q).astype(q.dtype, copy=False)
    return q, mask


def _greedy_ties(q: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Bool array: the allowed actions whose value is the largest allowed value.

    ``& mask`` matters when every allowed value is −inf: the −inf that stands in for a
    disallowed action would tie with them otherwise.
    """
    if mask is None:
        return q == q.max(axis=-1, keepdims=True)
    q = np.where(mask, q, -np.inf)
    return (q == q.max(axis=-1, keepdims=True)) & mask


def _greedy_probs(q: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Uniform over the tied maxima among allowed actions."""
    ties = _greedy_ties(q, mask).astype(np.float64)
    return ties / ties.sum(axis=-1, keepdims=True)


def _pick_tie(ties: np.ndarray, rng: np.random.Generator) -> int | np.ndarray:
    """One True position per row, uniformly at random (:func:`F.pick_tie`, the rule of
    ``F.argmax(rng=)``); a Python int for one row."""
    choice = F.pick_tie(ties, rng)
    return int(choice) if ties.ndim == 1 else choice


def _uniform_probs(q: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    allowed = np.ones(q.shape) if mask is None else mask.astype(np.float64)
    return allowed / allowed.sum(axis=-1, keepdims=True)


def _sample_rows(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Inverse-CDF sampling, one action per row (see :func:`_inverse_cdf`)."""
    return _inverse_cdf(probs, rng.random((probs.shape[0], 1)))


def _inverse_cdf(probs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """a = min{a : u·C_A < C_a} per row, C the cumsum and u ∈ [0, 1) of shape ``(n, 1)``.

    Zero-probability actions have zero-width intervals and are never drawn.
    """
    cdf = np.cumsum(probs, axis=-1)
    u = uniforms * cdf[:, -1:]
    actions = (cdf <= u).sum(axis=-1)
    # u·C_A may round up to C_A itself; then take the last action with positive probability.
    overflow = actions >= probs.shape[-1]
    if overflow.any():
        last_positive = probs.shape[-1] - 1 - np.argmax(probs[:, ::-1] > 0, axis=-1)
        actions = np.where(overflow, last_positive, actions)
    return actions


def _row_greedy(row: list[float], uniform: Callable[[], float]) -> int:
    """argmax of one row, ties broken uniformly: the k tied indices get ⌊u·k⌋ (see
    :class:`rlsoft.explore.uniform_stream.UniformStream` for why that index is always < k).

    The pure-Python counterpart of :func:`F.pick_tie` for the tabular agents' per-step
    samplers: numpy's per-call overhead on a row of a few actions would cost several times
    the ~1.7 µs step (scripts/bench_tabular.py); it draws from the agent's uniform stream."""
    top = max(row)
    if row.count(top) == 1:
        return row.index(top)
    ties = [i for i, v in enumerate(row) if v == top]
    return ties[int(uniform() * len(ties))]


def _row_epsilon_greedy(row: list[float], epsilon: float, uniform: Callable[[], float]) -> int:
    """With probability ε a uniform action ⌊u′·A⌋, else the greedy one (ties uniform)."""
    if uniform() < epsilon:
        return int(uniform() * len(row))
    return _row_greedy(row, uniform)


def _row_list(q: Any) -> list[float] | None:
    """One row as a Python list of floats (the fast path), None for anything else.

    Accepts a 1-D numpy row or a non-empty list of Python floats (tabular agents may keep
    their Q-table rows as lists, which avoids numpy's per-call overhead on a few actions).
    """
    if type(q) is list:
        row = q
        if not row or type(row[0]) is not float:
            return None
    elif type(q) is np.ndarray and q.ndim == 1 and q.size:
        row = q.tolist()
    else:
        return None
    total = sum(row)
    if total != total:  # NaN, or +inf and -inf together: let the array path decide
        if any(v != v for v in row):
            raise DivergedError(_diverged_message())
        return None
    return row


def _finite_row(q: Any) -> list[float] | None:
    """``q`` as a list when it is one row whose values are all finite (the exact fast path)."""
    row = _row_list(q)
    if row is None or not -math.inf < sum(row) < math.inf:
        return None
    return row


class Policy(ABC):
    """Base class: subclasses provide ``probs`` and may override ``select`` with a faster
    exact sampler. ``parameter_name`` is "epsilon", "temperature" or None."""

    parameter_name: str | None = None
    stateful: bool = False
    """True when the action also depends on state carried between steps of an episode; the
    driver then calls :meth:`end_episode`, checkpoints :meth:`state_dict` and logs
    :meth:`metrics`. The hooks below do nothing for a memoryless policy."""

    def end_episode(self, env: int = 0) -> None:
        """Environment ``env``'s episode ended: drop what was carried over within it."""
        del env

    def state_dict(self) -> dict[str, Any]:
        """The carried state, JSON-safe (empty for a memoryless policy)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        del state

    def metrics(self) -> dict[str, float]:
        """Policy-specific scalars (TensorBoard tag → value) since the last call."""
        return {}

    def parameter(self, step: int = 0) -> float | None:
        """The exploration parameter (ε or τ) at ``step``, or None for greedy."""
        return None

    @abstractmethod
    def probs(self, q: Any, *, step: int = 0, mask: Any = None) -> np.ndarray:
        """Action probabilities π(a|q), same shape as ``q``."""

    def select(
        self, q: Any, rng: np.random.Generator, *, step: int = 0, mask: Any = None
    ) -> int | np.ndarray:
        """Sample an action (or one per row) exactly from :meth:`probs`."""
        probs = self.probs(q, step=step, mask=mask)
        if probs.ndim == 1:
            return int(_sample_rows(probs[None], rng)[0])
        return _sample_rows(probs, rng)

    def select_lazily(
        self,
        q_row: Callable[[], np.ndarray],
        n_actions: int,
        rng: np.random.Generator,
        *,
        step: int = 0,
    ) -> int:
        """:meth:`select` on one row of ``n_actions`` values that are computed by ``q_row()``
        only when the action depends on them (a DQN agent's forward pass for one
        environment): same draws from ``rng``, same action. This default always computes
        them; ε-greedy skips them on its exploratory steps."""
        del n_actions
        return int(self.select(q_row(), rng, step=step))

    def row_sampler(self, uniform: Callable[[], float]) -> RowSampler:
        """``sample(row, step) -> action``: :meth:`select` for the per-step path of tabular
        agents, drawing u ∈ [0, 1) from ``uniform()`` instead of a Generator.

        ``row`` must be a non-empty list of Python floats with a finite maximum (the agent
        guarantees it, so nothing is validated per call). The distribution is that of
        :meth:`probs`; this default samples it by inverse CDF, and the built-in policies
        return specialised closures (constant ε or τ skip the schedule call).
        """

        def sample(row: list[float], step: int) -> int:
            probs = self.probs(row, step=step)[None]
            return int(_inverse_cdf(probs, np.array([[uniform()]]))[0])

        return sample

    def expectation(self, q: Any, *, step: int = 0, mask: Any = None) -> float | np.ndarray:
        """E_π[q] = Σ_a π(a|q)·q(a), the Expected SARSA target's bootstrap value.

        Actions with probability 0 (masked ones) contribute nothing, even where q is −inf.
        """
        fast = self._row_expectation(q, step) if mask is None else None
        if fast is not None:
            return fast
        p = self.probs(q, step=step, mask=mask)
        q = np.asarray(q, dtype=p.dtype)
        value = np.where(p > 0, p * np.where(p > 0, q, 0.0), 0.0).sum(axis=-1)
        return float(value) if value.ndim == 0 else value

    def _row_expectation(self, q: Any, step: int) -> float | None:
        """Exact E_π[q] on one finite row in plain floats, or None to use the array path."""
        return None

    def entropy(self, q: Any, *, step: int = 0, mask: Any = None) -> float | np.ndarray:
        """H(π) = −Σ_a π(a) log π(a), in nats (0·log 0 = 0)."""
        p = self.probs(q, step=step, mask=mask)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * np.log(p), 0.0)
        h = -terms.sum(axis=-1)
        return float(h) if h.ndim == 0 else h

    def describe(self) -> dict[str, Any]:
        """A serialisable description (for hparams and run summaries)."""
        return {"policy": type(self).__name__}


class Greedy(Policy):
    """π(a|q) = 1/|argmax q| on the maximisers, 0 elsewhere; ties are split (and broken
    uniformly at random by ``select``)."""

    def probs(self, q: Any, *, step: int = 0, mask: Any = None) -> np.ndarray:
        q, mask = _prepare(q, mask)
        return _greedy_probs(q, mask)

    def _row_expectation(self, q: Any, step: int) -> float | None:
        row = _finite_row(q)
        return None if row is None else max(row)

    def select(
        self, q: Any, rng: np.random.Generator, *, step: int = 0, mask: Any = None
    ) -> int | np.ndarray:
        if mask is None:
            row = _row_list(q)
            if row is not None:
                return _row_greedy(row, rng.random)
        q, mask = _prepare(q, mask)
        return _pick_tie(_greedy_ties(q, mask), rng)

    def row_sampler(self, uniform: Callable[[], float]) -> RowSampler:
        return lambda row, step: _row_greedy(row, uniform)


class _ParametrisedPolicy(Policy):
    """Holds a number-or-schedule parameter; constants skip the schedule call per step."""

    def __init__(self, value: ScheduleLike) -> None:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            self._check(float(value))  # name the parameter (not "schedule value") in the error
        self._schedule = make_schedule(value)
        self._constant = (
            self._check(self._schedule.value)
            if isinstance(self._schedule, ConstantSchedule)
            else None
        )

    @staticmethod
    @abstractmethod
    def _check(value: float) -> float:
        """Validate one parameter value, raising ValueError with a clear sentence."""

    def parameter(self, step: int = 0) -> float:
        if self._constant is not None:
            return self._constant
        return self._check(float(self._schedule(step)))

    @property
    def schedule(self) -> Any:
        return self._schedule

    def describe(self) -> dict[str, Any]:
        from rlsoft.explore.schedules import describe

        return {"policy": type(self).__name__, self.parameter_name: describe(self._schedule)}


class EpsilonGreedy(_ParametrisedPolicy):
    """π = (1 − ε)·greedy + ε·uniform over the allowed actions."""

    parameter_name = "epsilon"

    def __init__(self, epsilon: ScheduleLike) -> None:
        super().__init__(epsilon)

    @staticmethod
    def _check(value: float) -> float:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {value!r}")
        return value

    def probs(self, q: Any, *, step: int = 0, mask: Any = None) -> np.ndarray:
        eps = self.parameter(step)
        row = _finite_row(q) if mask is None and type(q) is list else None
        if row is not None:
            top = max(row)
            base = eps / len(row)
            bonus = (1.0 - eps) / row.count(top)
            return np.array([base + bonus if v == top else base for v in row])
        q, mask = _prepare(q, mask)
        return (1.0 - eps) * _greedy_probs(q, mask) + eps * _uniform_probs(q, mask)

    def _row_expectation(self, q: Any, step: int) -> float | None:
        # (1 − ε)·max q + ε·mean q: the tied maxima share (1 − ε) but all equal max q.
        row = _finite_row(q)
        if row is None:
            return None
        eps = self.parameter(step)
        return (1.0 - eps) * max(row) + eps * sum(row) / len(row)

    def select(
        self, q: Any, rng: np.random.Generator, *, step: int = 0, mask: Any = None
    ) -> int | np.ndarray:
        eps = self.parameter(step)
        if mask is None:
            row = _row_list(q)
            if row is not None:
                return _row_epsilon_greedy(row, eps, rng.random)
        q, mask = _prepare(q, mask)
        greedy = Greedy().select(q, rng, mask=mask)
        explore = rng.random(q.shape[:-1]) < eps
        if q.ndim == 1:
            return int(_sample_rows(_uniform_probs(q, mask)[None], rng)[0]) if explore else greedy
        if explore.any():
            uniform = _sample_rows(
                _uniform_probs(q[explore], None if mask is None else mask[explore]), rng
            )
            greedy = greedy.copy()
            greedy[explore] = uniform
        return greedy

    def select_lazily(
        self,
        q_row: Callable[[], np.ndarray],
        n_actions: int,
        rng: np.random.Generator,
        *,
        step: int = 0,
    ) -> int:
        """The coin first, as :meth:`select`'s row path draws it: an exploratory step is
        ⌊u′·A⌋ without computing ``q_row()``. A row mixing +inf and −inf (no finite
        ordering to take the fast path) gets its greedy action from :class:`Greedy`: the same
        distribution as :meth:`select`, from different draws."""
        eps = self.parameter(step)
        if rng.random() < eps:
            return int(rng.random() * n_actions)
        q = q_row()
        row = _row_list(q)
        if row is not None:
            return _row_greedy(row, rng.random)
        return int(Greedy().select(q, rng))

    def row_sampler(self, uniform: Callable[[], float]) -> RowSampler:
        eps = self._constant
        if eps is not None:
            return lambda row, step: _row_epsilon_greedy(row, eps, uniform)
        parameter = self.parameter
        return lambda row, step: _row_epsilon_greedy(row, parameter(step), uniform)


class Boltzmann(_ParametrisedPolicy):
    """π(a|q) = softmax(q/τ)_a, through :func:`rlsoft.numerics.functional.softmax`.

    ``select`` samples by inverse CDF, exactly; τ → 0 approaches greedy (ties split) and
    τ → ∞ uniform. A row whose largest allowed value is infinite (a +inf entry, or every
    allowed value −inf) gets the limit of softmax: uniform over its tied maxima, as greedy.
    """

    parameter_name = "temperature"

    def __init__(self, temperature: ScheduleLike) -> None:
        super().__init__(temperature)

    @staticmethod
    def _check(value: float) -> float:
        return F.check_temperature(value)

    def probs(self, q: Any, *, step: int = 0, mask: Any = None) -> np.ndarray:
        tau = self.parameter(step)
        row = _finite_row(q) if mask is None and type(q) is list else None
        if row is not None:
            weights, total, _ = F.row_exp(row, tau)
            return np.array([w / total for w in weights])
        q, mask = _prepare(q, mask)
        masked = q if mask is None else np.where(mask, q, -np.inf)
        p = F.softmax(masked, temperature=tau)
        infinite = _infinite_max_rows(q, masked)
        if infinite is not None:
            # softmax is NaN there (inf/inf or 0/0); use its limit instead.
            p = np.where(infinite[..., None], _greedy_probs(q, mask), p).astype(p.dtype)
        return p

    def _row_expectation(self, q: Any, step: int) -> float | None:
        row = _finite_row(q)
        if row is None:
            return None
        weights, total, _ = F.row_exp(row, self.parameter(step))
        return sum(w * v for w, v in zip(weights, row, strict=True)) / total

    def entropy(self, q: Any, *, step: int = 0, mask: Any = None) -> float | np.ndarray:
        q, mask = _prepare(q, mask)
        masked = q if mask is None else np.where(mask, q, -np.inf)
        if _infinite_max_rows(q, masked) is not None:
            return super().entropy(q, step=step, mask=mask)
        h = F.entropy(masked, temperature=self.parameter(step))
        return float(h) if np.ndim(h) == 0 else h

    def select(
        self, q: Any, rng: np.random.Generator, *, step: int = 0, mask: Any = None
    ) -> int | np.ndarray:
        tau = self.parameter(step)
        if mask is None:
            row = _row_list(q)
            if row is not None and -math.inf < max(row) < math.inf:
                return _row_boltzmann(row, tau, rng.random())
        return super().select(q, rng, step=step, mask=mask)

    def row_sampler(self, uniform: Callable[[], float]) -> RowSampler:
        tau = self._constant
        if tau is not None:
            return lambda row, step: _row_boltzmann(row, tau, uniform())
        parameter = self.parameter
        return lambda row, step: _row_boltzmann(row, parameter(step), uniform())


def _infinite_max_rows(q: np.ndarray, masked: np.ndarray) -> np.ndarray | None:
    """Bool per row: is the largest allowed value ±inf? None when no row is (the usual case).

    A row's allowed maximum can only be infinite when ``q`` holds an infinity (a +inf
    entry, or −inf in every allowed entry), so one flat ``isinf`` pass settles the common
    case; the per-row reduction (slow on short rows) runs only when it finds one.
    """
    if not np.isinf(q).any():
        return None
    infinite = np.isinf(masked.max(axis=-1))
    return infinite if infinite.any() else None


def _row_boltzmann(row: list[float], temperature: float, u: float) -> int:
    """Inverse CDF on one finite-max row: the first a with u·Σe < Σ_{b≤a} e_b,
    e_b = exp((q_b − max q)/τ). The max entry has e = 1, so the total is ≥ 1.

    The weights are :func:`rlsoft.numerics.functional.row_exp`'s, computed inline and summed as
    they go: this is the per-step sampler of a tabular agent's Boltzmann exploration, where a
    second pass over the row would cost a noticeable share of a ~1.7 µs step
    (scripts/bench_tabular.py)."""
    top = max(row)
    cumulative = []
    acc = 0.0
    for v in row:
        acc += math.exp((v - top) / temperature)  # not * (1/τ): that is inf for a subnormal τ
        cumulative.append(acc)
    target = u * acc
    for action, c in enumerate(cumulative):
        if target < c:
            return action
    # Rounding put u·Σe at Σe: take the last action with positive probability.
    prev = cumulative[-1]
    for action in range(len(cumulative) - 1, 0, -1):
        if cumulative[action - 1] < prev:
            return action
        prev = cumulative[action - 1]
    return 0


# --------------------------------------------------------------------------------------------
# εz-greedy: ε-greedy with temporally extended exploratory actions
# --------------------------------------------------------------------------------------------

MIN_ZETA_EXPONENT = 1.01
"""The smallest zeta exponent μ accepted: the zeta law needs μ > 1 to be normalisable, and as
μ → 1 its tail grows so heavy that almost every duration outlasts any episode (P(n > 10⁶) is
already about 0.87 at μ = 1.01) while the rejection sampler's loop grows without bound."""

MAX_DURATION = 2**62
"""Largest duration :func:`sample_zeta` returns; larger draws are rejected (see there)."""


def sample_zeta(mu: float, uniform: Callable[[], float]) -> int:
    """One draw n ≥ 1 from the zeta distribution P(n) = n^−μ / ζ(μ), μ > 1.

    Devroye's rejection algorithm (L. Devroye, *Non-Uniform Random Variate Generation*,
    1986, §X.6, the algorithm of numpy's ``Generator.zipf``), fed by ``uniform()`` ∈ [0, 1)
    so that the tabular agents can draw from their buffered stream: with b = 2^(μ−1), draw
    U ∈ (0, 1] and V ∈ [0, 1), set X = ⌊U^(−1/(μ−1))⌋ and T = (1 + 1/X)^(μ−1), and accept X
    when V·X·(T − 1)/(b − 1) ≤ T/b. Draws above :data:`MAX_DURATION` are rejected, as numpy
    rejects those above its integer range: the law is the zeta law conditioned on
    n ≤ 2^62, which moves a probability below 2^(−62(μ−1)) (10^−18 at μ = 2).
    """
    am1 = mu - 1.0
    b = 2.0**am1
    while True:
        u = 1.0 - uniform()
        v = uniform()
        log_x = -math.log(u) / am1
        if log_x > 43.0:  # e^43 > 2^62: rejected anyway, and exp() must not overflow
            continue
        x = math.floor(math.exp(log_x))
        if x > MAX_DURATION:
            continue
        t = (1.0 + 1.0 / x) ** am1
        if v * x * (t - 1.0) / (b - 1.0) <= t / b:
            return int(x)


class EzGreedy(EpsilonGreedy):
    """εz-greedy: ε-greedy whose exploratory action is repeated for a random duration.

    W. Dabney, G. Ostrovski and A. Barreto, "Temporally-extended ε-greedy exploration",
    ICLR 2021, Algorithm 1. In each environment, when no *option* is running: with
    probability ε start one, that is draw an action ω uniformly among the allowed actions
    and a duration n from the zeta distribution z(n) = n^−μ / ζ(μ), n ≥ 1 (the paper's
    choice, μ = 2; :func:`sample_zeta`), and take ω; otherwise act greedily (ties broken at
    random). While an option runs, ω is taken again, until it has been taken n times in all;
    then the next step decides afresh. ε may follow a schedule, read at each decision.

    Choices the paper leaves open, made here:

    * n counts every step ω is held, the first included, so a duration of 1 is one
      ε-greedy exploratory step and z = δ₁ recovers ε-greedy exactly. (Algorithm 1 as
      printed starts decrementing n on the step after the one that drew it, which holds ω
      n + 1 times; its text speaks of repeating the action "for a random duration".)
    * An episode end (terminated or truncated) cancels the option: Algorithm 1 is written
      for one endless stream of steps, and an action drawn for the episode that ended says
      nothing about the next one. The driver reports episode ends through
      :meth:`end_episode`.
    * With an action mask, an option whose action is not allowed in the current state ends
      there and the step is decided afresh.

    State, per environment: the option's action and how many more steps it holds it
    (``remaining``, 0 when no option runs). Row i of a batch ``(n, A)`` is environment i; a
    single row ``(A,)`` is environment 0 (the tabular agents and a one-environment DQN).

    εz-greedy has no action distribution per state: the action depends on whether an option
    runs. :meth:`probs` and :meth:`entropy` (and so ``exploration/entropy``) describe a fresh
    decision, (1 − ε)·greedy + ε·uniform, the ε-greedy distribution at the same ε, which is
    also the law of the first action of every option; the persistence shows in
    ``exploration/repeat_length`` (:meth:`metrics`: the mean sampled duration n over the
    options started since the last call). :meth:`expectation` of a single row (Expected
    SARSA's bootstrap value) is the expected value of the action environment 0 takes next:
    q(ω) while its option continues, the ε-greedy expectation otherwise; a batch gets the
    fresh-decision expectation.
    """

    stateful = True
    # Options carry the action between steps: ε-greedy's lazy coin does not apply.
    select_lazily = Policy.select_lazily

    def __init__(self, epsilon: ScheduleLike, mu: float = 2.0) -> None:
        super().__init__(epsilon)
        if isinstance(mu, bool) or not isinstance(mu, numbers.Real):
            raise ValueError(f"the zeta exponent mu must be a number, got {mu!r}")
        if not MIN_ZETA_EXPONENT <= mu < math.inf:
            raise ValueError(
                f"the zeta exponent mu must be at least {MIN_ZETA_EXPONENT} (the zeta law needs "
                f"mu > 1; the paper uses 2), got {mu!r}"
            )
        self.mu = float(mu)
        self._remaining: list[int] = []
        self._action: list[int] = []
        self._duration_sum = 0
        self._options = 0

    # -- per-environment options ---------------------------------------------------------

    def _ensure(self, envs: int) -> None:
        missing = envs - len(self._remaining)
        if missing > 0:
            self._remaining.extend([0] * missing)
            self._action.extend([0] * missing)

    def _start(self, env: int, action: int, uniform: Callable[[], float]) -> None:
        duration = sample_zeta(self.mu, uniform)
        self._action[env] = action
        self._remaining[env] = duration - 1  # this step is the option's first
        self._duration_sum += duration
        self._options += 1

    def running(self, env: int = 0) -> tuple[int, int] | None:
        """``(action, remaining steps)`` of environment ``env``'s running option, or None."""
        if env < len(self._remaining) and self._remaining[env] > 0:
            return self._action[env], self._remaining[env]
        return None

    def end_episode(self, env: int = 0) -> None:
        """Cancel environment ``env``'s option (its episode ended)."""
        if env < len(self._remaining):
            self._remaining[env] = 0

    def _decide_row(self, row: list[float], epsilon: float, uniform: Callable[[], float]) -> int:
        """One step of environment 0 over a trusted row of Python floats."""
        if not self._remaining:
            self._ensure(1)
        if self._remaining[0] > 0:
            self._remaining[0] -= 1
            return self._action[0]
        if uniform() < epsilon:
            action = int(uniform() * len(row))
            self._start(0, action, uniform)
            return action
        return _row_greedy(row, uniform)

    # -- acting --------------------------------------------------------------------------

    def select(
        self, q: Any, rng: np.random.Generator, *, step: int = 0, mask: Any = None
    ) -> int | np.ndarray:
        """One step of every environment: continue running options, else decide afresh."""
        eps = self.parameter(step)
        if mask is None:
            row = _row_list(q)
            if row is not None and -math.inf < max(row) < math.inf:
                return self._decide_row(row, eps, rng.random)
        q, mask = _prepare(q, mask)
        single = q.ndim == 1
        if single:
            q = q[None]
            mask = None if mask is None else mask[None]
        envs, n_actions = q.shape
        self._ensure(envs)
        actions = np.array(Greedy().select(q, rng, mask=mask), dtype=np.int64).reshape(envs)
        explore = rng.random(envs) < eps
        for i in range(envs):
            if self._remaining[i] > 0:
                if mask is None or mask[i, self._action[i]]:
                    self._remaining[i] -= 1
                    actions[i] = self._action[i]
                    continue
                self._remaining[i] = 0  # the option's action is not allowed here
            if explore[i]:
                allowed = np.arange(n_actions) if mask is None else np.flatnonzero(mask[i])
                action = int(allowed[int(rng.integers(len(allowed)))])
                self._start(i, action, rng.random)
                actions[i] = action
        return int(actions[0]) if single else actions

    def row_sampler(self, uniform: Callable[[], float]) -> RowSampler:
        eps = self._constant
        decide = self._decide_row
        if eps is not None:
            return lambda row, step: decide(row, eps, uniform)
        parameter = self.parameter
        return lambda row, step: decide(row, parameter(step), uniform)

    def expectation(self, q: Any, *, step: int = 0, mask: Any = None) -> float | np.ndarray:
        """Σ_a P(next action = a)·q(a) for environment 0 given its option (one row), or under
        a fresh decision (a batch); see the class docstring."""
        option = self.running(0)
        one_row = type(q) is list or (isinstance(q, np.ndarray) and q.ndim == 1)
        if option is not None and one_row and (mask is None or np.asarray(mask)[option[0]]):
            value = float(q[option[0]])
            if value != value:
                raise DivergedError(_diverged_message())
            return value
        return super().expectation(q, step=step, mask=mask)

    # -- state and metrics ---------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "remaining": list(self._remaining),
            "action": list(self._action),
            "duration_sum": self._duration_sum,
            "options": self._options,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        remaining = [int(n) for n in state["remaining"]]
        action = [int(a) for a in state["action"]]
        if len(remaining) != len(action) or any(n < 0 for n in remaining):
            raise ValueError(f"not a saved εz-greedy state: {state!r}")
        # In place: the row samplers handed out read these lists through self.
        self._remaining[:] = remaining
        self._action[:] = action
        self._duration_sum = int(state["duration_sum"])
        self._options = int(state["options"])

    def metrics(self) -> dict[str, float]:
        """``exploration/repeat_length``: the mean duration of the options started since the
        last call (nothing when none started)."""
        if not self._options:
            return {}
        out = {"exploration/repeat_length": self._duration_sum / self._options}
        self._duration_sum = 0
        self._options = 0
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "mu": self.mu}
