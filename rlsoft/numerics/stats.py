"""Statistics for comparing RL variants over seeds, in the spirit of rliable.

Agarwal et al., *Deep Reinforcement Learning at the Edge of the Statistical Precipice*
(NeurIPS 2021) recommend, for a handful of runs per variant, point estimates that are robust
to outlier runs together with interval estimates of their uncertainty:

* **IQM**, the interquartile mean: the mean of the middle 50% of the scores, i.e. the 25%
  trimmed mean (``scipy.stats.trim_mean(x, 0.25)``), pooled over every run of every task;
* **stratified bootstrap confidence intervals**: runs are resampled with replacement *within*
  each task (here: each environment), so every resample keeps the number of runs per task;
* **probability of improvement** ``P(X > Y)``: the chance that a run of variant X beats a run
  of variant Y, counting ties as one half, which is the Mann–Whitney U statistic divided by
  ``n·m``; with several tasks, the average of the per-task probabilities.

All intervals here are percentile bootstrap intervals computed by
:func:`scipy.stats.bootstrap` (which resamples several samples independently, i.e.
stratified, when it is given one sample per stratum). Two points differ from rliable on purpose
and are documented where they appear: ``mean`` and ``median`` are taken over all runs pooled
(rliable's ``aggregate_median`` is the median of per-task means, which for one task is just the
mean), and CIs use 2,000 resamples with a fixed seed by default so that recomputing a report
from disk gives the same numbers.

**Time to threshold** (:func:`time_to_threshold`, :func:`censored_aggregate_intervals`) is a
statistic of *censored* data: a run whose greedy evaluation never reaches the threshold within
its budget only tells us that its time exceeds the budget. Such a run enters every statistic at
the budget, never dropped (dropping the runs that fail would flatter the method that fails most).
Because an unreached run's true time is larger than every reached run's, the censored runs are
the largest values, so a statistic that trims them away is exact and one that counts them is a
lower bound: the mean whenever a run is censored, the median when half or more are, the IQM when
more are censored than the quarter it trims (:func:`counts_censored`). The time to learn is the
quantity Osband et al., *Randomized Prior Functions for Deep Reinforcement Learning* (NeurIPS
2018), plot against the DeepSea size to tell polynomial from exponential exploration.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

__all__ = [
    "AGGREGATES",
    "CENSORED_MARK",
    "MIN_RUNS",
    "CensoredInterval",
    "Interval",
    "aggregate_intervals",
    "censored_aggregate_intervals",
    "counts_censored",
    "curve_iqm_band",
    "iqm",
    "min_max_normalise",
    "normalised_auc",
    "probability_of_improvement",
    "probability_of_improvement_interval",
    "stable_seed",
    "stratified_bootstrap",
    "time_to_threshold",
    "too_few_runs",
]

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
MIN_RUNS = 3
"""Fewest finished runs per variant (and environment) whose numbers are shown unmarked.

Below it the numbers mean little and reports flag them: one run has no spread at all (no
bootstrap interval; its "median" and "IQM" are that run), and with ``n`` and ``m`` runs
``P(X > Y)`` can only be a multiple of ``1/(2·n·m)`` — with one run each, 0, 0.5 or 1, so a
bare "1.00" says only that one seed beat one other seed. Agarwal et al. (2021) argue that
even 3–5 runs call for interval estimates; 3 is the least for which a percentile bootstrap
has any resamples that differ in more than one run.
"""

Statistic = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap confidence interval (``nan`` bounds when there are
    too few runs to resample)."""

    value: float
    low: float
    high: float

    def format(self, digits: int = 2) -> str:
        if math.isnan(self.low):
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


CENSORED_MARK = ">"
"""Prefix of a number that is only a lower bound because censored runs (that never reached the
threshold) enter it at the budget."""


@dataclass(frozen=True)
class CensoredInterval(Interval):
    """An :class:`Interval` of a time-to-threshold statistic, which knows what censoring did.

    ``value`` and the bounds are computed with every censored run at its budget. Where censored
    runs enter them, the true numbers are larger: ``lower_bound`` says so of the point estimate
    (exactly, see :func:`counts_censored`), ``high_lower_bound`` of the CI's upper bound (set
    whenever a run is censored: bootstrap resamples that draw a censored run several times count
    it even where the estimate on the original runs trims it away). The CI's lower bound only
    moves down, which keeps the interval conservative on that side; it is not marked.
    """

    runs: int = 0
    censored: int = 0
    """Runs that never reached the threshold (entered at their budget)."""
    lower_bound: bool = False
    high_lower_bound: bool = False

    def format(self, digits: int = 0) -> str:
        """``value [low, high]`` with thousands separators, ``>`` before a lower bound."""

        def number(x: float, bound: bool) -> str:
            return f"{CENSORED_MARK if bound else ''}{x:,.{digits}f}"

        value = number(self.value, self.lower_bound)
        if math.isnan(self.low):
            return value
        low, high = number(self.low, False), number(self.high, self.high_lower_bound)
        return f"{value} [{low}, {high}]"


def too_few_runs(runs: int) -> bool:
    """Whether ``runs`` finished runs are fewer than :data:`MIN_RUNS` (numbers get flagged)."""
    return runs < MIN_RUNS


# --------------------------------------------------------------------------------------------
# Point estimates
# --------------------------------------------------------------------------------------------


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean after dropping the lowest and highest 25% of values.

    ``scipy.stats.trim_mean`` drops ``int(0.25·n)`` values at each end, so for ``n < 4`` the
    IQM is the plain mean, and for ``n = 8`` it is the mean of the middle four values.
    """
    return sps.trim_mean(np.asarray(x, dtype=float), 0.25, axis=axis)


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def _median(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(x, axis=axis)


AGGREGATES: dict[str, Statistic] = {"mean": _mean, "median": _median, "iqm": iqm}
"""The aggregate statistics reported per variant, each computed over all runs pooled."""


def probability_of_improvement(
    x_strata: Sequence[np.ndarray], y_strata: Sequence[np.ndarray]
) -> float:
    """``P(X > Y)`` averaged over strata: for each stratum (environment), the fraction of
    pairs (run of X, run of Y) where X scored higher, ties counting one half.

    :param x_strata: scores of variant X, one 1-D array per environment.
    :param y_strata: scores of variant Y in the same environments, same order.
    """
    return float(_poi(*map(np.asarray, x_strata), *map(np.asarray, y_strata), axis=-1))


def _poi(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    """Vectorised ``P(X > Y)``: ``samples`` are the X strata then the Y strata, runs along
    ``axis`` (leading axes are bootstrap resamples)."""
    k = len(samples) // 2
    per_stratum = []
    for x, y in zip(samples[:k], samples[k:], strict=True):
        x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)[..., :, None]
        y = np.moveaxis(np.asarray(y, dtype=float), axis, -1)[..., None, :]
        wins = (x > y).mean(axis=(-2, -1)) + 0.5 * (x == y).mean(axis=(-2, -1))
        per_stratum.append(wins)
    return np.mean(per_stratum, axis=0)


# --------------------------------------------------------------------------------------------
# Stratified bootstrap
# --------------------------------------------------------------------------------------------


def stable_seed(*parts: object) -> int:
    """A seed derived from names (e.g. env, variant, metric), independent of call order, so a
    recomputation from disk draws the very same resamples."""
    return zlib.crc32("|".join(map(str, parts)).encode("utf-8"))


def stratified_bootstrap(
    samples: Sequence[np.ndarray],
    statistic: Statistic,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Point estimate and percentile bootstrap CI of ``statistic(*samples, axis=-1)``.

    Each sample is resampled independently with replacement, keeping its size (scipy's
    ``paired=False``): with one sample per environment this is rliable's stratified bootstrap.
    A sample with a single value cannot vary under resampling and is held fixed; when no sample
    has two or more values the interval is ``nan``.
    """
    samples = [np.asarray(s, dtype=float).ravel() for s in samples]
    if any(s.size == 0 for s in samples):
        raise ValueError("every sample needs at least one score")
    point = float(statistic(*samples, axis=-1))
    varying = [i for i, s in enumerate(samples) if s.size >= 2]
    if not varying:
        return Interval(point, math.nan, math.nan)

    def resampled_statistic(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        full: list[np.ndarray] = []
        it = iter(resampled)
        batch_shape = resampled[0].shape[:-1]
        for i, s in enumerate(samples):
            full.append(next(it) if i in varying else np.broadcast_to(s, (*batch_shape, s.size)))
        return statistic(*full, axis=axis)

    result = sps.bootstrap(
        [samples[i] for i in varying],
        resampled_statistic,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        paired=False,
        axis=-1,
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return Interval(point, float(low), float(high))


def _pooled(statistic: Statistic) -> Statistic:
    """``statistic`` of the concatenation of all strata (runs of every environment pooled)."""

    def pooled(*strata: np.ndarray, axis: int = -1) -> np.ndarray:
        return statistic(np.concatenate(strata, axis=axis), axis=axis)

    return pooled


def aggregate_intervals(
    strata: Sequence[np.ndarray],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, Interval]:
    """Mean, median and IQM of all runs pooled, each with its stratified bootstrap CI.

    :param strata: scores of one variant, one 1-D array per environment.
    """
    return {
        name: stratified_bootstrap(
            strata,
            _pooled(fn),
            confidence=confidence,
            n_resamples=n_resamples,
            seed=seed + index,
        )
        for index, (name, fn) in enumerate(AGGREGATES.items())
    }


def probability_of_improvement_interval(
    x_strata: Sequence[np.ndarray],
    y_strata: Sequence[np.ndarray],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """``P(X > Y)`` with a CI from resampling the runs of X and of Y independently within each
    environment (rliable's ``StratifiedIndependentBootstrap``)."""
    if len(x_strata) != len(y_strata):
        raise ValueError("X and Y need scores for the same environments")
    return stratified_bootstrap(
        [*x_strata, *y_strata],
        _poi,
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )


# --------------------------------------------------------------------------------------------
# Time to threshold (censored at the budget)
# --------------------------------------------------------------------------------------------


def time_to_threshold(
    steps: np.ndarray, values: np.ndarray, threshold: float, *, budget: float | None = None
) -> tuple[float, bool]:
    """The first evaluation step at which ``values`` reach ``threshold`` (``>=``).

    :param steps: evaluation steps, increasing.
    :param values: the greedy evaluation return at each step.
    :param budget: the run's budget (default: its last evaluation step, which is where the
        trainer evaluates last).
    :returns: ``(step, True)`` for the first step whose value is at least ``threshold``, or
        ``(budget, False)`` when no evaluation reached it: the run is censored at the budget.
        The time is only resolved to the evaluation interval: the true first time lies between
        the previous evaluation and the returned one.
    """
    steps = np.asarray(steps, dtype=float)
    values = np.asarray(values, dtype=float)
    if steps.shape != values.shape or steps.ndim != 1 or steps.size == 0:
        raise ValueError("steps and values must be 1-D arrays of the same, non-zero length")
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold}")
    reached = np.flatnonzero(values >= threshold)
    if reached.size:
        return float(steps[reached[0]]), True
    return float(steps[-1] if budget is None else budget), False


def counts_censored(statistic: str, runs: int, censored: int) -> bool:
    """Whether ``statistic`` of ``runs`` times, ``censored`` of them censored, uses a censored one.

    A censored run's true time exceeds the budget, and so every reached run's time: the
    censored runs are the ``censored`` largest values whatever their true times. The statistic
    computed with them at the budget is exact when it does not use those order statistics, and
    a lower bound (every statistic here grows with each value) when it does:

    * ``mean``: uses every value, so any censored run;
    * ``median``: ``numpy.median`` uses sorted positions ``(n−1)//2`` and ``n//2``, censored
      runs fill positions ``n−k … n−1``: used when ``k ≥ n − n//2``, i.e. half or more;
    * ``iqm``: ``scipy.stats.trim_mean(x, 0.25)`` drops ``⌊n/4⌋`` values at each end: used when
      more than ``⌊n/4⌋`` runs are censored.
    """
    if censored < 0 or censored > runs:
        raise ValueError(f"censored must be between 0 and runs={runs}, got {censored}")
    if censored == 0:
        return False
    if statistic == "mean":
        return True
    if statistic == "median":
        return censored >= runs - runs // 2
    if statistic == "iqm":
        return censored > int(0.25 * runs)
    raise ValueError(f"unknown statistic {statistic!r}; choose one of {', '.join(AGGREGATES)}")


def censored_aggregate_intervals(
    times: np.ndarray,
    censored: np.ndarray,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, CensoredInterval]:
    """Mean, median and IQM of times to threshold with percentile bootstrap CIs, where the
    censored runs enter at their budget and each number says whether it is a lower bound.

    :param times: one time per run: the first step (or episode) at which the run reached the
        threshold, or its budget where it never did.
    :param censored: one flag per run, ``True`` where the run never reached the threshold.
    """
    times = np.asarray(times, dtype=float).ravel()
    censored = np.asarray(censored, dtype=bool).ravel()
    if times.shape != censored.shape:
        raise ValueError("times and censored need one entry per run each")
    plain = aggregate_intervals([times], confidence=confidence, n_resamples=n_resamples, seed=seed)
    n, k = times.size, int(censored.sum())
    return {
        name: CensoredInterval(
            iv.value,
            iv.low,
            iv.high,
            runs=n,
            censored=k,
            lower_bound=counts_censored(name, n, k),
            high_lower_bound=k > 0 and not math.isnan(iv.high),
        )
        for name, iv in plain.items()
    }


# --------------------------------------------------------------------------------------------
# Learning curves
# --------------------------------------------------------------------------------------------


def normalised_auc(steps: np.ndarray, values: np.ndarray) -> float:
    """Area under an evaluation curve divided by its step range: the time-averaged score.

    The trapezoid rule over the evaluation points, divided by ``steps[-1] − steps[0]``, is the
    average score over training in the score's own units (a curve that is flat at ``c`` gives
    ``c``). It rewards learning early as well as learning well. A single point gives its value.
    """
    steps = np.asarray(steps, dtype=float)
    values = np.asarray(values, dtype=float)
    if steps.shape != values.shape or steps.ndim != 1 or steps.size == 0:
        raise ValueError("steps and values must be 1-D arrays of the same, non-zero length")
    span = steps[-1] - steps[0]
    if steps.size == 1 or span <= 0:
        return float(values[-1])
    return float(np.trapezoid(values, steps) / span)


def min_max_normalise(x: np.ndarray | float, low: float, high: float) -> np.ndarray:
    """``(x − low) / (high − low)``: 0 at the worst and 1 at the best reference score.

    When ``high == low`` (every score identical) the result is 0 everywhere.
    """
    x = np.asarray(x, dtype=float)
    if not high > low:
        return np.zeros_like(x)
    return (x - low) / (high - low)


def curve_iqm_band(
    curves: np.ndarray,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM over seeds at every evaluation step, with a pointwise bootstrap CI band.

    :param curves: ``(runs, steps)`` scores; runs are resampled jointly across steps (one
        resample draws whole curves), as for rliable's sample-efficiency curves.
    :returns: ``(iqm, low, high)``, each of shape ``(steps,)``; the band is ``nan`` for a
        single run.
    """
    curves = np.asarray(curves, dtype=float)
    centre = iqm(curves, axis=0)
    if curves.shape[0] < 2:
        nan = np.full(curves.shape[1], math.nan)
        return centre, nan, nan.copy()
    result = sps.bootstrap(
        (curves,),
        lambda c, axis: iqm(c, axis=axis),
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        axis=0,
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return centre, np.asarray(low), np.asarray(high)
