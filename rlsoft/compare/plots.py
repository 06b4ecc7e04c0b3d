"""Comparison plots (matplotlib, PNG): learning curves and final-score intervals.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot, no global
backend state), so plotting works in worker processes, threads and headless CI alike.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rlsoft.compare.analysis import ALL_ENVS

if TYPE_CHECKING:
    from rlsoft.compare.analysis import Analysis

__all__ = ["final_scores_figure", "learning_curves_figure", "slug", "write_plots"]

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
        f"{env}: greedy evaluation return during training — {analysis.title}\n"
        f"line: interquartile mean (IQM) over seeds; band: {ci} bootstrap confidence interval",
        fontsize=11,
    )
    ax.set_ylabel("greedy evaluation return\n(mean over evaluation episodes)")
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
            else ("final return", "greedy evaluation return")
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


def write_plots(analysis: Analysis, logdir: Path) -> list[Path]:
    """``learning_curves_<env>.png`` per environment and ``final_scores_<env>.png`` per
    environment (plus ``final_scores_all_envs.png`` when some variant ran in every
    environment and so is pooled over them); returns the paths."""
    written = []
    for env in analysis.envs:
        path = Path(logdir) / f"learning_curves_{slug(env)}.png"
        learning_curves_figure(analysis, env).savefig(path, dpi=110)
        written.append(path)
    for block in analysis.blocks():
        name = "all_envs" if block == ALL_ENVS else slug(block)
        path = Path(logdir) / f"final_scores_{name}.png"
        final_scores_figure(analysis, block).savefig(path, dpi=110)
        written.append(path)
    return written
