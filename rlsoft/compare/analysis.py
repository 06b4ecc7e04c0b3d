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

With several environments an extra ``all envs`` block pools them: final returns are min–max
normalised per environment the same way, and bootstrap resampling is stratified by environment.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rlsoft.errors import RlsoftError
from rlsoft.numerics import stats

ALL_ENVS = "all envs"
FEW_RUNS_MARK = "†"
"""Appended to every number computed from fewer than :data:`rlsoft.numerics.stats.MIN_RUNS` runs."""

METRICS = {
    "final_return": "final greedy evaluation return",
    "auc": "normalised area under the evaluation curve",
}
METRICS_ALL_ENVS = {
    "final_return": "final evaluation return, min–max normalised per environment",
    "auc": "normalised area under the evaluation curve",
}

__all__ = [
    "ALL_ENVS",
    "Analysis",
    "Curve",
    "PairResult",
    "RunRecord",
    "VariantResult",
    "analyse",
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

    @property
    def final(self) -> float:
        return float(self.returns[-1])


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

    def result(self, env: str, variant: str) -> VariantResult | None:
        return next((r for r in self.results if r.env == env and r.variant == variant), None)

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
) -> Analysis:
    """Statistics of every variant per environment (and over all environments), the
    probability of improvement of every pair, and the IQM learning curves."""
    if not runs:
        raise RlsoftError(
            "found no finished run with an eval/mean_return curve to compare; run rlsoft "
            "compare CONFIG or rlsoft train first"
        )
    envs = sorted({r.env for r in runs})
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
    )


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
