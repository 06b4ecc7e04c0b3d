"""The analysis of a comparison: per-run metrics, their statistics per environment and
variant (with :mod:`rlsoft.numerics.stats`), the probability of improvement of every pair, and
the IQM learning curves (:func:`analyse`); the types that :mod:`rlsoft.compare.report` and
:mod:`rlsoft.compare.plots` read.

Metrics, per run:

* **final return**: the last greedy evaluation (``eval/mean_return`` at the end of training);
* **normalised AUC**: the area under the run's evaluation curve divided by its step range (the
  time-averaged evaluation return), then min–max normalised with the lowest and highest
  evaluation return seen in *any* run of the same environment in this report, so that 0 is the
  worst and 1 the best score observed. It depends on which runs are compared; compare AUCs
  within one report, not across reports.

With a return threshold (the comparison's ``analysis.return_threshold``, or ``rlsoft report
--threshold``), per run also:

* **time to threshold**: the environment steps until the run's greedy evaluation first reached
  the threshold, and the training episodes completed by then (``charts/episodes`` at the last
  logging step at or before it; exact when evaluations fall on logging steps, as they do when
  ``eval_every`` is a multiple of ``log_every``). It is resolved to the evaluation interval. A
  run that never reached it is **censored** at its budget (its last evaluation step and the
  episodes by then): it enters the statistics at the budget, is counted as "k/n censored", and
  every number it enters is marked ``>`` as a lower bound
  (:func:`rlsoft.numerics.stats.censored_aggregate_intervals`). Times are reported per
  environment (or swept cell) only, never pooled: budgets differ between them.

With several environments an extra ``all envs`` block pools them: final returns are min–max
normalised per environment the same way, and bootstrap resampling is stratified by environment.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rlsoft.errors import RlsoftError
from rlsoft.numerics import stats

ALL_ENVS = "all envs"
FEW_RUNS_MARK = "†"
"""Appended to every number computed from fewer than :data:`rlsoft.numerics.stats.MIN_RUNS` runs."""


def evaluation_policy(epsilons: Sequence[float]) -> str:
    """``greedy``, ``ε-greedy (ε 0.05)``, or, when runs evaluated differently, ``greedy or
    ε-greedy (ε per run: 0, 0.05)``."""
    distinct = sorted(set(epsilons))
    if not distinct or distinct == [0.0]:
        return "greedy"
    if len(distinct) == 1:
        return f"ε-greedy (ε {distinct[0]:g})"
    return f"greedy or ε-greedy (ε per run: {', '.join(f'{e:g}' for e in distinct)})"


METRICS = {
    "final_return": "final greedy evaluation return",
    "auc": "normalised area under the evaluation curve",
}
METRICS_ALL_ENVS = {
    "final_return": "final evaluation return, min–max normalised per environment",
    "auc": "normalised area under the evaluation curve",
}

TIME_UNITS = {
    "steps": "environment steps to reach the return threshold",
    "episodes": "training episodes to reach the return threshold",
}
"""The time-to-threshold metrics: what the time is counted in → its description."""

__all__ = [
    "ALL_ENVS",
    "Analysis",
    "Curve",
    "PairResult",
    "RunRecord",
    "RunTime",
    "ThresholdResult",
    "VariantResult",
    "analyse",
    "run_time",
]


@dataclass
class RunRecord:
    """One run's evaluation curve (and entropy curve) with its place in the comparison."""

    run_dir: Path
    env: str
    variant: str
    seed: int | None
    description: str
    steps: np.ndarray
    returns: np.ndarray
    entropy_steps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    entropy: np.ndarray = field(default_factory=lambda: np.zeros(0))
    episode_steps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    episodes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Training episodes completed (``charts/episodes``) at the logging steps ``episode_steps``;
    empty when the run logged none."""
    env_id: str = ""
    """The environment id (``env`` is the grid cell when a comparison sweeps; default: ``env``)."""
    sweep_value: float | None = None
    """The swept parameter's value in this run (``None`` without a sweep)."""
    eval_epsilon: float = 0.0
    """The run's ``train.eval_epsilon``: its evaluations act ε-greedily with it (0: greedy)."""

    def __post_init__(self) -> None:
        self.env_id = self.env_id or self.env

    @property
    def final(self) -> float:
        return float(self.returns[-1])

    def episodes_at(self, step: float) -> float | None:
        """Episodes completed by ``step``: the count at the last logging step at or before it
        (0 before the first); ``None`` when the run logged no episode count."""
        if self.episodes.size == 0:
            return None
        index = int(np.searchsorted(self.episode_steps, step, side="right")) - 1
        return float(self.episodes[index]) if index >= 0 else 0.0


@dataclass(frozen=True)
class RunTime:
    """One run's time to the return threshold, or its budget where it never got there."""

    steps: float
    episodes: float | None
    reached: bool
    """``False``: censored, the run never reached the threshold (``steps`` is its budget)."""


def run_time(record: RunRecord, threshold: float) -> RunTime:
    """The time at which ``record``'s greedy evaluation first reached ``threshold``
    (:func:`rlsoft.numerics.stats.time_to_threshold`), in steps and episodes."""
    steps, reached = stats.time_to_threshold(record.steps, record.returns, threshold)
    return RunTime(steps, record.episodes_at(steps), reached)


# --------------------------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------------------------


@dataclass
class VariantResult:
    env: str
    variant: str
    runs: int
    metrics: dict[str, dict[str, stats.Interval]]
    """``metric → statistic (mean, median, iqm) → interval``."""
    fewest: int | None = None
    """The fewest runs of this variant in any one environment of the block (``runs`` unless
    the block pools several environments)."""

    @property
    def few_runs(self) -> bool:
        """Fewer than :data:`rlsoft.numerics.stats.MIN_RUNS` runs (in some environment): flagged."""
        return stats.too_few_runs(self.runs if self.fewest is None else self.fewest)


@dataclass
class PairResult:
    env: str
    metric: str
    x: str
    y: str
    poi: stats.Interval
    """``P(X > Y)`` with its CI."""
    few_runs: bool = False
    """X or Y has fewer than :data:`rlsoft.numerics.stats.MIN_RUNS` runs (in some environment)."""


@dataclass
class ThresholdResult:
    """The time to threshold of one variant in one environment (or swept cell)."""

    env: str
    variant: str
    times: list[RunTime]
    metrics: dict[str, dict[str, stats.CensoredInterval]]
    """``unit (steps, episodes) → statistic (mean, median, iqm) → interval``; ``episodes``
    only when every run logged an episode count."""

    @property
    def runs(self) -> int:
        return len(self.times)

    @property
    def censored(self) -> int:
        """Runs that never reached the threshold."""
        return sum(not t.reached for t in self.times)

    @property
    def few_runs(self) -> bool:
        return stats.too_few_runs(self.runs)


@dataclass
class Curve:
    steps: np.ndarray
    centre: np.ndarray
    low: np.ndarray
    high: np.ndarray
    runs: int


@dataclass
class Analysis:
    title: str
    envs: list[str]
    variants: list[str]
    descriptions: dict[str, str]
    runs: list[RunRecord]
    results: list[VariantResult]
    pairs: list[PairResult]
    curves: dict[tuple[str, str], Curve]
    score_range: dict[str, tuple[float, float]]
    confidence: float = stats.DEFAULT_CONFIDENCE
    n_resamples: int = stats.DEFAULT_RESAMPLES
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    threshold: float | None = None
    """The return threshold of the time-to-threshold statistic (``None``: not computed)."""
    times: list[ThresholdResult] = field(default_factory=list)
    sweep_parameter: str | None = None
    """The config key the comparison swept (the x axis of the scaling plot), if any."""

    def result(self, env: str, variant: str) -> VariantResult | None:
        return next((r for r in self.results if r.env == env and r.variant == variant), None)

    @property
    def evaluation(self) -> str:
        """How the runs' evaluations acted, from their configs' ``train.eval_epsilon``:
        ``greedy``, ``ε-greedy (ε 0.05)``, or ``greedy or ε-greedy`` when the runs differ."""
        return evaluation_policy([r.eval_epsilon for r in self.runs])

    def evaluation_in(self, env: str) -> str:
        """:attr:`evaluation` of one environment's runs: a report over several environments
        may evaluate each its own way (Atari ε-greedily with ε 0.05, MinAtar greedily)."""
        return evaluation_policy([r.eval_epsilon for r in self.runs if r.env == env])

    def time_result(self, env: str, variant: str) -> ThresholdResult | None:
        return next((r for r in self.times if r.env == env and r.variant == variant), None)

    def time_units(self, env: str) -> list[str]:
        """The units in which ``env``'s times are reported (``steps``, and ``episodes`` where
        every run of every variant logged an episode count)."""
        results = [r for r in self.times if r.env == env]
        return [u for u in TIME_UNITS if results and all(u in r.metrics for r in results)]

    def blocks(self) -> list[str]:
        """Environments, then ``all envs`` when there are several and at least one variant
        ran in every one of them (only those are pooled)."""
        return [*self.envs, ALL_ENVS] if self.pooled() else list(self.envs)

    def pooled(self) -> bool:
        """Whether an ``all envs`` block exists (several envs, a variant that ran in all)."""
        return len(self.envs) > 1 and any(r.env == ALL_ENVS for r in self.results)

    def few_runs(self) -> list[VariantResult]:
        """Per-environment results with fewer than :data:`rlsoft.numerics.stats.MIN_RUNS` runs."""
        return [r for r in self.results if r.env != ALL_ENVS and r.few_runs]

    def few_runs_warning(self) -> str | None:
        """One line naming every variant with too few finished runs, or ``None``."""
        few = self.few_runs()
        if not few:
            return None
        several = len(self.envs) > 1
        names = ", ".join(
            f"{r.variant}" + (f" on {r.env}" if several else "") + f" ({_runs(r.runs)})"
            for r in few
        )
        return (
            f"warning: fewer than {stats.MIN_RUNS} finished runs for {names}: their numbers and "
            f"every P(X > Y) involving them are marked {FEW_RUNS_MARK} and are not reliable; "
            "run more seeds"
        )


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _align(runs: Sequence[RunRecord]) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, curves (runs, steps))``: the runs' evaluation curves on common steps
    (interpolated onto the union of their steps within the range they all cover)."""
    first = runs[0].steps
    if all(np.array_equal(r.steps, first) for r in runs):
        return first, np.stack([r.returns for r in runs])
    low = max(r.steps[0] for r in runs)
    high = min(r.steps[-1] for r in runs)
    grid = np.unique(np.concatenate([r.steps for r in runs]))
    grid = grid[(grid >= low) & (grid <= high)]
    if grid.size == 0:
        grid = np.array([high])
    return grid, np.stack([np.interp(grid, r.steps, r.returns) for r in runs])


def analyse(
    runs: Sequence[RunRecord],
    *,
    title: str = "comparison",
    variant_order: Sequence[str] | None = None,
    confidence: float = stats.DEFAULT_CONFIDENCE,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    skipped: Sequence[tuple[Path, str]] = (),
    threshold: float | None = None,
    sweep_parameter: str | None = None,
) -> Analysis:
    """Statistics of every variant per environment (and over all environments), the
    probability of improvement of every pair, and the IQM learning curves; with a
    ``threshold``, every variant's time to reach it per environment (or swept cell)."""
    if not runs:
        raise RlsoftError(
            "found no finished run with an eval/mean_return curve to compare; run rlsoft "
            "compare CONFIG or rlsoft train first"
        )
    # swept cells in the order of their values (size=4 before size=10), then by name
    order_key = {r.env: (r.env_id, -math.inf if r.sweep_value is None else r.sweep_value, r.env)
                 for r in runs}  # fmt: skip
    envs = sorted(order_key, key=order_key.__getitem__)
    present = {r.variant for r in runs}
    order = [v for v in (variant_order or []) if v in present]
    variants = order + sorted(present - set(order))
    descriptions = {}
    for r in runs:
        if r.description:
            descriptions.setdefault(r.variant, r.description)
    by_key: dict[tuple[str, str], list[RunRecord]] = {}
    for r in sorted(runs, key=lambda r: (r.seed if r.seed is not None else -1, str(r.run_dir))):
        by_key.setdefault((r.env, r.variant), []).append(r)

    score_range = {}
    for env in envs:
        values = np.concatenate([r.returns for r in runs if r.env == env])
        score_range[env] = (float(values.min()), float(values.max()))

    def scores(env: str, variant: str) -> dict[str, np.ndarray]:
        group = by_key.get((env, variant), [])
        lo, hi = score_range[env]
        final = np.array([r.final for r in group])
        auc = np.array([stats.normalised_auc(r.steps, r.returns) for r in group])
        return {"final_return": final, "auc": stats.min_max_normalise(auc, lo, hi)}

    kw = {"confidence": confidence, "n_resamples": n_resamples}
    results: list[VariantResult] = []
    pairs: list[PairResult] = []
    per_env = {(e, v): scores(e, v) for e in envs for v in variants if (e, v) in by_key}
    for env in envs:
        for variant in variants:
            if (env, variant) not in per_env:
                continue
            metrics = {
                m: stats.aggregate_intervals([x], seed=stats.stable_seed(env, variant, m), **kw)
                for m, x in per_env[(env, variant)].items()
            }
            results.append(VariantResult(env, variant, len(by_key[(env, variant)]), metrics))
        for x, y in itertools.combinations(variants, 2):
            if (env, x) in per_env and (env, y) in per_env:
                few = any(stats.too_few_runs(len(by_key[(env, v)])) for v in (x, y))
                for m in METRICS:
                    poi = stats.probability_of_improvement_interval(
                        [per_env[(env, x)][m]],
                        [per_env[(env, y)][m]],
                        seed=stats.stable_seed(env, x, y, m),
                        **kw,
                    )
                    pairs.append(PairResult(env, m, x, y, poi, few_runs=few))
    if len(envs) > 1:
        results_all, pairs_all = _all_envs(envs, variants, per_env, score_range, kw)
        results += results_all
        pairs += pairs_all

    curves = {}
    for (env, variant), group in by_key.items():
        steps, matrix = _align(group)
        centre, low, high = stats.curve_iqm_band(
            matrix, seed=stats.stable_seed(env, variant, "curve"), **kw
        )
        curves[(env, variant)] = Curve(steps, centre, low, high, len(group))
    times = []
    if threshold is not None:
        for env in envs:
            for variant in variants:
                if (env, variant) in by_key:
                    times.append(_time_result(env, variant, by_key[(env, variant)], threshold, kw))
    return Analysis(
        title=title,
        envs=envs,
        variants=variants,
        descriptions=descriptions,
        runs=list(runs),
        results=results,
        pairs=pairs,
        curves=curves,
        score_range=score_range,
        confidence=confidence,
        n_resamples=n_resamples,
        skipped=list(skipped),
        threshold=threshold,
        times=times,
        sweep_parameter=sweep_parameter,
    )


def _time_result(
    env: str, variant: str, group: Sequence[RunRecord], threshold: float, kw: dict
) -> ThresholdResult:
    times = [run_time(r, threshold) for r in group]
    censored = np.array([not t.reached for t in times])
    columns = {"steps": [t.steps for t in times]}
    if all(t.episodes is not None for t in times):
        columns["episodes"] = [t.episodes for t in times]
    metrics = {
        unit: stats.censored_aggregate_intervals(
            np.array(values), censored, seed=stats.stable_seed(env, variant, f"time_{unit}"), **kw
        )
        for unit, values in columns.items()
    }
    return ThresholdResult(env, variant, times, metrics)


def _all_envs(envs, variants, per_env, score_range, kw):
    """Variants that ran in every environment, pooled with per-environment normalisation and
    bootstrap resampling stratified by environment."""
    complete = [v for v in variants if all((e, v) in per_env for e in envs)]

    def strata(variant: str, metric: str) -> list[np.ndarray]:
        out = []
        for env in envs:
            x = per_env[(env, variant)][metric]
            out.append(
                stats.min_max_normalise(x, *score_range[env]) if metric == "final_return" else x
            )
        return out

    results, pairs = [], []
    for variant in complete:
        metrics = {
            m: stats.aggregate_intervals(
                strata(variant, m), seed=stats.stable_seed(ALL_ENVS, variant, m), **kw
            )
            for m in METRICS
        }
        counts = [len(per_env[(e, variant)]["final_return"]) for e in envs]
        results.append(VariantResult(ALL_ENVS, variant, sum(counts), metrics, min(counts)))

    def few(variant: str) -> bool:
        return any(stats.too_few_runs(len(per_env[(e, variant)]["final_return"])) for e in envs)

    for x, y in itertools.combinations(complete, 2):
        for m in METRICS:
            poi = stats.probability_of_improvement_interval(
                strata(x, m), strata(y, m), seed=stats.stable_seed(ALL_ENVS, x, y, m), **kw
            )
            pairs.append(PairResult(ALL_ENVS, m, x, y, poi, few_runs=few(x) or few(y)))
    return results, pairs
