"""Comparison plots (matplotlib, PNG): learning curves, final-score intervals and, for a
comparison that sweeps a parameter with a return threshold, the scaling plot of the time to
threshold against the swept value (:func:`scaling_series`, :func:`scaling_figure`).

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot, no global
backend state), so plotting works in worker processes, threads and headless CI alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rlsoft.compare.analysis import ALL_ENVS, TIME_UNITS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from rlsoft.compare.analysis import Analysis

__all__ = [
    "ScalingSeries",
    "final_scores_figure",
    "learning_curves_figure",
    "scaling_figure",
    "scaling_series",
    "slug",
    "write_plots",
]

_STATISTICS = (("mean", "Mean"), ("median", "Median"), ("iqm", "IQM"))


def slug(text: str) -> str:
    """A file-name-safe version of ``text`` (``ALE/Pong-v5`` → ``ALE_Pong-v5``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "env"


def _colours(analysis: Analysis) -> dict[str, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {v: cmap(i % 10) for i, v in enumerate(analysis.variants)}


def _label(analysis: Analysis, variant: str, runs: int | None = None) -> str:
    text = variant
    description = analysis.descriptions.get(variant)
    if description:
        text += f": {description}"
    if runs is not None:
        text += f" ({runs} run{'s' * (runs != 1)})"
    return text


def _steps_formatter():
    from matplotlib.ticker import FuncFormatter

    def fmt(x: float, _pos: int) -> str:
        if abs(x) >= 1e6:
            return f"{x / 1e6:g}M"
        if abs(x) >= 1e3:
            return f"{x / 1e3:g}k"
        return f"{x:g}"

    return FuncFormatter(fmt)


def _mean_entropy(analysis: Analysis, env: str, variant: str):
    runs = [r for r in analysis.runs if r.env == env and r.variant == variant and r.entropy.size]
    if not runs:
        return None
    low = max(r.entropy_steps[0] for r in runs)
    high = min(r.entropy_steps[-1] for r in runs)
    grid = np.unique(np.concatenate([r.entropy_steps for r in runs]))
    grid = grid[(grid >= low) & (grid <= high)]
    if grid.size == 0:
        return None
    values = np.mean([np.interp(grid, r.entropy_steps, r.entropy) for r in runs], axis=0)
    return grid, values


def learning_curves_figure(analysis: Analysis, env: str):
    """Greedy evaluation return over training for every variant in ``env``: the IQM over
    seeds with its bootstrap band; below it, the mean exploration entropy when logged."""
    from matplotlib.figure import Figure

    colours = _colours(analysis)
    entropies = {v: _mean_entropy(analysis, env, v) for v in analysis.variants}
    with_entropy = any(e is not None for e in entropies.values())
    fig = Figure(figsize=(10, 7.5 if with_entropy else 5.5), layout="constrained")
    if with_entropy:
        ax, ax_h = fig.subplots(2, 1, sharex=True, height_ratios=[2.2, 1])
    else:
        ax, ax_h = fig.subplots(1, 1), None
    ci = f"{analysis.confidence:.0%}"
    for variant in analysis.variants:
        curve = analysis.curves.get((env, variant))
        if curve is None:
            continue
        colour = colours[variant]
        ax.plot(
            curve.steps,
            curve.centre,
            color=colour,
            lw=2,
            label=_label(analysis, variant, curve.runs),
        )
        if np.isfinite(curve.low).all():
            ax.fill_between(curve.steps, curve.low, curve.high, color=colour, alpha=0.2, lw=0)
        if ax_h is not None and entropies[variant] is not None:
            steps, values = entropies[variant]
            ax_h.plot(steps, values, color=colour, lw=1.5)
    ax.set_title(
        f"{env}: {analysis.evaluation_in(env)} evaluation return during training — "
        f"{analysis.title}\n"
        f"line: interquartile mean (IQM) over seeds; band: {ci} bootstrap confidence interval",
        fontsize=11,
    )
    ax.set_ylabel(
        f"{analysis.evaluation_in(env)} evaluation return\n(mean over evaluation episodes)"
    )
    ax.grid(alpha=0.3)
    bottom = ax
    if ax_h is not None:
        ax_h.set_ylabel("exploration entropy\n(nats, mean over seeds)")
        ax_h.grid(alpha=0.3)
        bottom = ax_h
    bottom.set_xlabel("environment steps")
    bottom.xaxis.set_major_formatter(_steps_formatter())
    fig.legend(loc="outside lower center", ncols=1, fontsize=9, frameon=False)
    return fig


def final_scores_figure(analysis: Analysis, block: str):
    """Interval plot of the final return and the normalised AUC: one row per metric, one
    column per statistic (mean, median, IQM), one line per variant (point and CI)."""
    from matplotlib.figure import Figure

    colours = _colours(analysis)
    variants = [v for v in analysis.variants if analysis.result(block, v) is not None]
    metrics = {
        "final_return": (
            ("final return", "min–max normalised return (0 worst, 1 best)")
            if block == ALL_ENVS
            else ("final return", f"{analysis.evaluation_in(block)} evaluation return")
        ),
        "auc": ("normalised AUC", "area under the eval curve (0 worst, 1 best)"),
    }
    height = 1.6 + 0.45 * len(variants) * len(metrics)
    fig = Figure(figsize=(12, max(4.0, height)), layout="constrained")
    axes = fig.subplots(len(metrics), len(_STATISTICS), sharey=True, squeeze=False)
    ys = np.arange(len(variants))[::-1]
    for row, (metric, (title, axis_label)) in enumerate(metrics.items()):
        for col, (statistic, statistic_label) in enumerate(_STATISTICS):
            ax = axes[row][col]
            for y, variant in zip(ys, variants, strict=True):
                iv = analysis.result(block, variant).metrics[metric][statistic]
                colour = colours[variant]
                if np.isfinite(iv.low):
                    ax.barh(y, iv.high - iv.low, left=iv.low, height=0.6, color=colour, alpha=0.35)
                ax.plot([iv.value], [y], "|", color=colour, markersize=18, mew=2.5)
            ax.set_yticks(ys, variants)
            ax.set_title(f"{statistic_label} of the {title}", fontsize=10)
            ax.set_xlabel(axis_label, fontsize=9)
            ax.grid(axis="x", alpha=0.3)
    result = analysis.result(block, variants[0])
    seeds = f"{result.runs} runs per variant" if result else ""
    where = "all environments (stratified by env)" if block == ALL_ENVS else block
    fig.suptitle(
        f"{analysis.title} — {where}: final scores, {seeds}\n"
        f"tick: point estimate; bar: {analysis.confidence:.0%} stratified bootstrap CI",
        fontsize=11,
    )
    return fig


@dataclass
class ScalingSeries:
    """One line of the scaling plot: a variant's IQM time to threshold at every swept value
    where it ran, with its bootstrap CI and what censoring did to each point."""

    x: np.ndarray
    """The swept values, increasing."""
    iqm: np.ndarray
    low: np.ndarray
    high: np.ndarray
    """The CI band (``nan`` for a single run)."""
    lower_bound: np.ndarray
    """``True`` where censored runs enter the IQM, so the point is only a lower bound."""
    censored: np.ndarray
    """Runs that never reached the threshold, per point."""
    runs: np.ndarray
    budget: np.ndarray
    """The largest budget (in the same unit) of the point's runs: where censored runs sit."""


def scaling_series(analysis: Analysis, unit: str = "steps") -> dict[str, dict[str, ScalingSeries]]:
    """The data of the scaling plot: ``env id → variant → series`` of the IQM time to threshold
    (in ``unit``: ``steps`` or ``episodes``) against the swept parameter.

    Empty unless the analysis has a threshold and its runs carry swept values. A cell enters a
    variant's series when the time is reported in ``unit`` there (episodes: every run logged an
    episode count).
    """
    if unit not in TIME_UNITS:
        raise ValueError(f"unit must be one of {', '.join(TIME_UNITS)}, got {unit!r}")
    if analysis.threshold is None:
        return {}
    cells: dict[str, tuple[str, float]] = {}
    budgets: dict[tuple[str, str], list[float]] = {}
    for r in analysis.runs:
        if r.sweep_value is None:
            continue
        cells[r.env] = (r.env_id, r.sweep_value)
        last = float(r.steps[-1]) if unit == "steps" else r.episodes_at(r.steps[-1])
        if last is not None:
            budgets.setdefault((r.env, r.variant), []).append(last)
    points: dict[str, dict[str, list[tuple]]] = {}
    for result in analysis.times:
        if result.env not in cells or unit not in result.metrics:
            continue
        env_id, x = cells[result.env]
        iv = result.metrics[unit]["iqm"]
        budget = max(budgets.get((result.env, result.variant), [np.nan]))
        point = (x, iv.value, iv.low, iv.high, iv.lower_bound, result.censored, result.runs, budget)
        points.setdefault(env_id, {}).setdefault(result.variant, []).append(point)
    out: dict[str, dict[str, ScalingSeries]] = {}
    for env_id, by_variant in points.items():
        out[env_id] = {}
        for variant in [v for v in analysis.variants if v in by_variant]:
            columns = list(zip(*sorted(by_variant[variant]), strict=True))
            x, centre, low, high, bound, censored, runs, budget = (np.array(c) for c in columns)
            out[env_id][variant] = ScalingSeries(
                x.astype(float), centre.astype(float), low.astype(float), high.astype(float),
                bound.astype(bool), censored.astype(int), runs.astype(int), budget.astype(float),
            )  # fmt: skip
    return out


def scaling_figure(analysis: Analysis, env_id: str):
    """Time to threshold against the swept parameter, log-scaled, one line per variant: the
    IQM over seeds with its bootstrap band; a hollow marker where censored runs enter the IQM
    (a lower bound), and each variant's budget dotted. One panel per unit (environment steps;
    training episodes when recorded). After the DeepSea scaling plot of Osband et al. (2018),
    "Randomized Prior Functions for Deep Reinforcement Learning" (time to learn against the
    size N, log-scaled, where dithering grows exponentially and deep exploration
    polynomially)."""
    from matplotlib.figure import Figure

    units = [u for u in TIME_UNITS if scaling_series(analysis, u).get(env_id)]
    colours = _colours(analysis)
    fig = Figure(figsize=(6.5 * len(units), 5.5), layout="constrained")
    axes = fig.subplots(1, len(units), squeeze=False)[0]
    parameter = analysis.sweep_parameter or "swept value"
    for ax, unit in zip(axes, units, strict=True):
        lines = scaling_series(analysis, unit)[env_id]
        ax.set_xticks(np.unique(np.concatenate([s.x for s in lines.values()])))
        for variant, series in lines.items():
            colour = colours[variant]
            exact = ~series.lower_bound
            label = _label(analysis, variant) if unit == units[0] else None
            ax.plot(series.x, series.iqm, color=colour, lw=2, label=label)
            ax.plot(series.x[exact], series.iqm[exact], "o", color=colour, ms=6)
            ax.plot(series.x[~exact], series.iqm[~exact], "^", mfc="white", mec=colour, mew=2,
                    ms=9)  # fmt: skip
            if np.isfinite(series.low).any():
                ax.fill_between(series.x, series.low, series.high, color=colour, alpha=0.2, lw=0)
            ax.plot(series.x, series.budget, ":", color=colour, lw=1, alpha=0.8)
            for x, y, k, n in zip(series.x, series.iqm, series.censored, series.runs,
                                  strict=True):  # fmt: skip
                if k:
                    ax.annotate(f"{k}/{n}", (x, y), textcoords="offset points", xytext=(4, 6),
                                fontsize=8, color=colour)  # fmt: skip
        ax.set_yscale("log", nonpositive="mask")
        ax.set_xlabel(parameter)
        ax.set_ylabel(f"{unit} to reach return ≥ {analysis.threshold:g} (log scale)")
        ax.grid(alpha=0.3, which="both")
    ci = f"{analysis.confidence:.0%}"
    fig.suptitle(
        f"{env_id}: time to threshold against {parameter} — {analysis.title}\n"
        f"line: IQM over seeds; band: {ci} bootstrap CI; △: censored runs enter the IQM (a lower "
        f"bound), k/n: runs censored; dotted: budget",
        fontsize=11,
    )
    fig.legend(loc="outside lower center", ncols=1, fontsize=9, frameon=False)
    return fig


def write_plots(analysis: Analysis, logdir: Path) -> list[Path]:
    """``learning_curves_<env>.png`` per environment and ``final_scores_<env>.png`` per
    environment (plus ``final_scores_all_envs.png`` when some variant ran in every
    environment and so is pooled over them), and with a sweep and a threshold
    ``scaling_<env id>.png`` per environment id; returns the paths."""
    written = []
    for env in analysis.envs:
        path = Path(logdir) / f"learning_curves_{slug(env)}.png"
        _save_png(learning_curves_figure(analysis, env), path)
        written.append(path)
    for block in analysis.blocks():
        name = "all_envs" if block == ALL_ENVS else slug(block)
        path = Path(logdir) / f"final_scores_{name}.png"
        _save_png(final_scores_figure(analysis, block), path)
        written.append(path)
    for env_id in scaling_series(analysis, "steps"):
        path = Path(logdir) / f"scaling_{slug(env_id)}.png"
        _save_png(scaling_figure(analysis, env_id), path)
        written.append(path)
    return written


def _save_png(figure: Figure, path: Path) -> None:
    """Write ``figure`` atomically: a Ctrl-C or a full disk leaves the previous plot, never
    half a PNG."""
    from rlsoft.run.checkpoint import atomic_write

    atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=110))
