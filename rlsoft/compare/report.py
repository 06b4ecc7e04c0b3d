"""Comparison reports from the TensorBoard event files on disk.

``rlsoft compare`` and ``rlsoft report LOGDIR`` both end here: the run dirs under a logdir are
read back (``eval/mean_return`` and ``exploration/entropy`` from the event files, the variant
from the directory layout ``<env>/<variant>/seed_<k>`` or, for runs made by hand with
``rlsoft train``, from their ``config.yaml``), the statistics of :mod:`rlsoft.numerics.stats` are
computed per environment and variant (:mod:`rlsoft.compare.analysis`, which also defines the
metrics), and the results are written as ``summary.csv``, ``summary.md`` and PNG plots in the
logdir, and printed as tables.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlsoft.compare.analysis import (
    ALL_ENVS,
    FEW_RUNS_MARK,
    METRICS,
    METRICS_ALL_ENVS,
    Analysis,
    RunRecord,
    analyse,
)
from rlsoft.errors import RlsoftError
from rlsoft.numerics import stats
from rlsoft.rl.agent import agent_title
from rlsoft.run.checkpoint import CONFIG_FILE, SUMMARY_FILE

EVAL_TAG = "eval/mean_return"
ENTROPY_TAG = "exploration/entropy"
COMPARE_FILE = "compare.yaml"
DASHBOARD_SUFFIX = ".rlsoft-compare"
"""Suffix of the event file holding a comparison's dashboards (its logdir root); not a run."""
SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
FEW_RUNS_FLAG = f"n<{stats.MIN_RUNS}"
"""The ``flag`` column of ``summary.csv`` for rows computed from fewer than
:data:`rlsoft.numerics.stats.MIN_RUNS` runs (the values stay plain numbers)."""
_SEED_DIR = re.compile(r"seed_(\d+)$")

__all__ = [
    "describe_config",
    "discover_run_dirs",
    "load_runs",
    "print_tables",
    "report",
    "write_outputs",
]


# --------------------------------------------------------------------------------------------
# Reading runs
# --------------------------------------------------------------------------------------------


def _has_events(path: Path) -> bool:
    return any(
        p.name.startswith("events.out.tfevents.") and not p.name.endswith(DASHBOARD_SUFFIX)
        for p in path.iterdir()
        if p.is_file()
    )


def discover_run_dirs(logdir: Path) -> list[Path]:
    """Directories below ``logdir`` (not ``logdir`` itself) that hold TensorBoard event files,
    skipping checkpoint folders and comparisons' dashboard files; sorted by path."""
    logdir = Path(logdir)
    found = []
    for path in sorted(p for p in logdir.rglob("*") if p.is_dir()):
        if "checkpoints" in path.relative_to(logdir).parts:
            continue
        if _has_events(path):
            found.append(path)
    return found


def read_scalars(run_dir: Path, tags: Iterable[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``tag → (steps, values)`` for the scalar tags present in ``run_dir``'s event files.

    TensorBoard's ``EventAccumulator`` reads every event file of the directory in order and
    honours the purge markers a resumed run writes; a step written twice keeps its last value.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    available = set(accumulator.Tags().get("scalars", []))
    out = {}
    for tag in tags:
        if tag not in available:
            continue
        by_step = {int(e.step): float(e.value) for e in accumulator.Scalars(tag)}
        steps = np.array(sorted(by_step), dtype=np.int64)
        out[tag] = steps, np.array([by_step[s] for s in steps], dtype=float)
    return out


def _read_config(run_dir: Path) -> dict[str, Any] | None:
    from rlsoft.run.config import parse_yaml, read_text_file

    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        data = parse_yaml(read_text_file(path, "run config"), str(path))
    except RlsoftError:
        return None
    return data if isinstance(data, dict) else None


def _identify(
    run_dir: Path, logdir: Path, config: dict[str, Any] | None
) -> tuple[str, str, int | None, bool]:
    """``(env, variant, seed, from_layout)`` of a run dir."""
    parts = run_dir.relative_to(logdir).parts
    env = (config or {}).get("env") or {}
    env_id = env.get("id") if isinstance(env, dict) else None
    match = _SEED_DIR.match(parts[-1])
    if len(parts) == 3 and match:
        return env_id or parts[0], parts[1], int(match.group(1)), True
    if config is not None:
        name = str(config.get("name") or run_dir.parent.name or "run")
        seed = config.get("seed")
        return env_id or "unknown env", name, int(seed) if isinstance(seed, int) else None, False
    return "unknown env", run_dir.parent.name or "run", None, False


def _signature(config: dict[str, Any] | None) -> str:
    if not config:
        return ""
    agent = (config.get("agent") or {}).get("type", "")
    policy = (config.get("exploration") or {}).get("policy", "")
    return f"{agent}:{policy}"


def load_runs(
    logdir: Path, run_dirs: Sequence[Path] | None = None
) -> tuple[list[RunRecord], list[tuple[Path, str]]]:
    """Read the runs under ``logdir`` (or just ``run_dirs``).

    :returns: the runs with an evaluation curve, and ``(run dir, reason)`` for each skipped
        one (an rlsoft run that has not finished, or a run without ``eval/mean_return``).
    """
    logdir = Path(logdir)
    run_dirs = discover_run_dirs(logdir) if run_dirs is None else list(run_dirs)
    records: list[RunRecord] = []
    skipped: list[tuple[Path, str]] = []
    fallback: list[tuple[RunRecord, str]] = []
    for run_dir in run_dirs:
        config = _read_config(run_dir)
        if config is not None and not (run_dir / SUMMARY_FILE).is_file():
            skipped.append((run_dir, "unfinished (no summary.json)"))
            continue
        scalars = read_scalars(run_dir, [EVAL_TAG, ENTROPY_TAG])
        if EVAL_TAG not in scalars:
            skipped.append((run_dir, f"no {EVAL_TAG} scalars"))
            continue
        env, variant, seed, from_layout = _identify(run_dir, logdir, config)
        steps, returns = scalars[EVAL_TAG]
        entropy_steps, entropy = scalars.get(ENTROPY_TAG, (np.zeros(0), np.zeros(0)))
        record = RunRecord(
            run_dir=run_dir,
            env=env,
            variant=variant,
            seed=seed,
            description=describe_config(config) if config else "",
            steps=steps,
            returns=returns,
            entropy_steps=entropy_steps,
            entropy=entropy,
        )
        records.append(record)
        if not from_layout:
            fallback.append((record, _signature(config)))
    # Hand-made runs are grouped by their config name; when runs of one name differ in agent
    # or exploration policy (e.g. made with --set exploration.policy=...), split them.
    by_name: dict[tuple[str, str], set[str]] = {}
    for record, signature in fallback:
        by_name.setdefault((record.env, record.variant), set()).add(signature)
    for record, signature in fallback:
        if len(by_name[(record.env, record.variant)]) > 1:
            record.variant = f"{record.variant}:{signature}"
    return records, skipped


# --------------------------------------------------------------------------------------------
# Describing a variant in words
# --------------------------------------------------------------------------------------------


def _number_or_schedule(value: Any, symbol: str) -> str:
    if isinstance(value, dict):
        start, end = value.get("start"), value.get("end")
        if value.get("type") == "linear":
            return f"{symbol} {start:g}→{end:g} over {int(value.get('duration', 0)):,} steps"
        if value.get("type") == "exponential":
            return f"{symbol} {start:g}→{end:g}, half-life {value.get('half_life', 0):,g} steps"
        return f"{symbol} {value}"
    if isinstance(value, (int, float)):
        return f"{symbol}={value:g}"
    return f"{symbol}={value}"


def describe_config(config: dict[str, Any]) -> str:
    """A short human description of an experiment config's agent and exploration, e.g.
    ``"Q-learning, Boltzmann (τ 5→0.1 over 60,000 steps)"``."""
    agent = config.get("agent") or {}
    kind = str(agent.get("type", "agent"))
    text = agent_title(kind)
    if kind == "soft_q_learning" and "temperature" in agent:
        text += f" (target {_number_or_schedule(agent['temperature'], 'τ')})"
    if isinstance(agent.get("initial_q"), (int, float)) and agent["initial_q"] != 0:
        text += f" (initial Q {agent['initial_q']:g})"
    if isinstance(agent.get("count_bonus"), (int, float)) and agent["count_bonus"] > 0:
        text += f" (count bonus β={agent['count_bonus']:g})"
    exploration = config.get("exploration") or {}
    policy = exploration.get("policy", "epsilon_greedy")
    if policy == "epsilon_greedy":
        return f"{text}, ε-greedy ({_number_or_schedule(exploration.get('epsilon', 0.1), 'ε')})"
    if policy == "ez_greedy":
        epsilon = _number_or_schedule(exploration.get("epsilon", 0.1), "ε")
        return f"{text}, εz-greedy ({epsilon}, μ={exploration.get('mu', 2.0):g})"
    if policy == "boltzmann":
        temperature = exploration.get("temperature", 1.0)
        return f"{text}, Boltzmann ({_number_or_schedule(temperature, 'τ')})"
    return f"{text}, {policy}"


# --------------------------------------------------------------------------------------------
# Output: tables, CSV, Markdown, plots
# --------------------------------------------------------------------------------------------


def _metric_names(block: str) -> dict[str, str]:
    return METRICS_ALL_ENVS if block == ALL_ENVS else METRICS


def _fmt(interval: stats.Interval, few_runs: bool = False) -> str:
    text = interval.format(2)
    return f"{text} {FEW_RUNS_MARK}" if few_runs else text


def _table_rows(analysis: Analysis, block: str, metric: str) -> list[list[str]]:
    rows = []
    for variant in analysis.variants:
        result = analysis.result(block, variant)
        if result is None:
            continue
        m, few = result.metrics[metric], result.few_runs
        runs = f"{result.runs} {FEW_RUNS_MARK}" if few else str(result.runs)
        rows.append([variant, runs, *(_fmt(m[name], few) for name in ("mean", "median", "iqm"))])
    return rows


def _pair_rows(analysis: Analysis, block: str) -> list[list[str]]:
    """``[X, Y, P(X > Y) on each metric]`` for every pair of variants in ``block``."""
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for p in analysis.pairs:
        if p.env == block:
            cells.setdefault((p.x, p.y), {})[p.metric] = _fmt(p.poi, p.few_runs)
    return [[x, y, *(row.get(m, "") for m in METRICS)] for (x, y), row in cells.items()]


def _block_has_few_runs(analysis: Analysis, block: str) -> bool:
    return any(r.env == block and r.few_runs for r in analysis.results)


def _few_runs_note(per_env: bool) -> str:
    where = " in some environment" if per_env else ""
    return (
        f"{FEW_RUNS_MARK} fewer than {stats.MIN_RUNS} finished runs{where}: too few for these "
        "numbers (and for P(X > Y) against them) to mean much; run more seeds."
    )


def _pair_header(block: str) -> list[str]:
    names = {"final_return": "final return", "auc": "normalised AUC"}
    if block == ALL_ENVS:
        names["final_return"] = "final return (normalised)"
    return ["X", "Y", *(f"P(X > Y), {names[m]}" for m in METRICS)]


def _ci_label(analysis: Analysis) -> str:
    return f"{analysis.confidence:.0%} CI"


def print_tables(analysis: Analysis, console: Any = None) -> None:
    """The summary as rich tables on the terminal (stdout)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=None if _stdout_is_terminal() else 120)
    ci = _ci_label(analysis)
    for block in analysis.blocks():
        for metric, label in _metric_names(block).items():
            few = _block_has_few_runs(analysis, block)
            table = Table(
                title=f"{block}: {label}  (value [{ci}])",
                title_justify="left",
                caption=_few_runs_note(block == ALL_ENVS) if few else None,
                caption_justify="left",
            )
            for column in ("variant", "runs", "mean", "median", "IQM"):
                table.add_column(column, justify="left" if column == "variant" else "right")
            for row in _table_rows(analysis, block, metric):
                table.add_row(*row)
            console.print(table)
        pair_rows = _pair_rows(analysis, block)
        if pair_rows:
            few = any(p.env == block and p.few_runs for p in analysis.pairs)
            table = Table(
                title=f"{block}: probability of improvement, P(X > Y) [{ci}]",
                title_justify="left",
                caption=_few_runs_note(block == ALL_ENVS) if few else None,
                caption_justify="left",
            )
            for column in _pair_header(block):
                table.add_column(column, justify="right" if column.startswith("P") else "left")
            for row in pair_rows:
                table.add_row(*row)
            console.print(table)


def _stdout_is_terminal() -> bool:
    import sys

    return sys.stdout.isatty()


def _csv_number(x: float) -> str:
    return "" if math.isnan(x) else repr(round(float(x), 6))


def summary_csv(analysis: Analysis) -> str:
    """One row per (env, metric, statistic, variant[, versus]) with value and CI bounds; the
    ``flag`` column says ``n<3`` where the numbers come from too few runs."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["env", "metric", "statistic", "variant", "versus", "runs", "value", "ci_low", "ci_high",
         "flag"]
    )  # fmt: skip
    for result in analysis.results:
        flag = FEW_RUNS_FLAG if result.few_runs else ""
        for metric, by_stat in result.metrics.items():
            for statistic, iv in by_stat.items():
                writer.writerow(
                    [result.env, metric, statistic, result.variant, "", result.runs,
                     _csv_number(iv.value), _csv_number(iv.low), _csv_number(iv.high), flag]
                )  # fmt: skip
    for pair in analysis.pairs:
        iv = pair.poi
        writer.writerow(
            [pair.env, pair.metric, "probability_of_improvement", pair.x, pair.y, "",
             _csv_number(iv.value), _csv_number(iv.low), _csv_number(iv.high),
             FEW_RUNS_FLAG if pair.few_runs else ""]
        )  # fmt: skip
    return out.getvalue()


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def summary_markdown(analysis: Analysis, plots: Sequence[str] = ()) -> str:
    ci = _ci_label(analysis)
    parts = [f"# {analysis.title}", ""]
    parts.append("Variants:\n")
    for variant in analysis.variants:
        description = analysis.descriptions.get(variant, "")
        parts.append(f"- **{variant}**" + (f": {description}" if description else ""))
    parts.append("")
    if len(analysis.envs) > 1 and not analysis.pooled():
        parts.append(
            "No variant ran in every environment, so each environment is reported on its own "
            "and none are pooled.\n"
        )
    for block in analysis.blocks():
        parts.append(f"## {block}\n")
        if block != ALL_ENVS:
            lo, hi = analysis.score_range[block]
            parts.append(f"Evaluation returns seen in this environment: {lo:.2f} to {hi:.2f}.\n")
        for metric, label in _metric_names(block).items():
            parts.append(f"**{label[0].upper() + label[1:]}** (value [{ci}]):\n")
            header = ["variant", "runs", "mean", "median", "IQM"]
            parts.append(_md_table(header, _table_rows(analysis, block, metric)) + "\n")
        rows = _pair_rows(analysis, block)
        if rows:
            parts.append(
                f"**Probability of improvement**: P(X > Y), the chance that a run of X beats a "
                f"run of Y [{ci}]:\n"
            )
            parts.append(_md_table(_pair_header(block), rows) + "\n")
        if _block_has_few_runs(analysis, block):
            parts.append(_few_runs_note(block == ALL_ENVS) + "\n")
    if plots:
        parts.append("## Plots\n")
        parts += [f"![{p}]({p})" for p in plots]
        parts.append("")
    parts.append("## Method\n")
    parts.append(
        f"Per run: the final greedy evaluation return, and the normalised area under the "
        f"evaluation curve (trapezoid area divided by the step range, i.e. the time-averaged "
        f"evaluation return, then min–max normalised with the lowest and highest evaluation "
        f"return of any run of the environment in this report: 0 worst, 1 best). Per variant: "
        f"mean, median and interquartile mean (IQM, the 25% trimmed mean) over runs, each with "
        f"a {ci} from a percentile stratified bootstrap ({analysis.n_resamples:,} resamples, "
        f"scipy.stats.bootstrap; seeds resampled within each environment). P(X > Y) is the "
        f"probability that a run of X scores higher than a run of Y (ties count one half; "
        f"Mann–Whitney U / (n·m)), averaged over environments, with a bootstrap CI that "
        f"resamples the runs of X and of Y independently. After Agarwal et al., Deep "
        f"Reinforcement Learning at the Edge of the Statistical Precipice, NeurIPS 2021."
    )
    if analysis.skipped:
        parts.append("\nSkipped run dirs:\n")
        parts += [f"- `{path}`: {reason}" for path, reason in analysis.skipped]
    return "\n".join(parts) + "\n"


def write_outputs(analysis: Analysis, logdir: Path) -> list[Path]:
    """``summary.csv``, ``summary.md`` and the plots in ``logdir``; returns the paths."""
    from rlsoft.compare import plots

    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    written = plots.write_plots(analysis, logdir)
    csv_path, md_path = logdir / SUMMARY_CSV, logdir / SUMMARY_MD
    csv_path.write_text(summary_csv(analysis), encoding="utf-8")
    md_path.write_text(summary_markdown(analysis, [p.name for p in written]), encoding="utf-8")
    return [csv_path, md_path, *written]


def read_compare_file(logdir: Path) -> dict[str, Any]:
    """The resolved comparison ``rlsoft compare`` left in the logdir (empty if none)."""
    from rlsoft.run.config import parse_yaml, read_text_file

    path = Path(logdir) / COMPARE_FILE
    if not path.is_file():
        return {}
    data = parse_yaml(read_text_file(path, "comparison record"), str(path))
    return data if isinstance(data, dict) else {}


def report(
    logdir: Path,
    *,
    run_dirs: Sequence[Path] | None = None,
    confidence: float = stats.DEFAULT_CONFIDENCE,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
) -> tuple[Analysis, list[Path]]:
    """Read the runs under ``logdir`` (or only ``run_dirs``), analyse them and write
    ``summary.csv``, ``summary.md`` and the plots into ``logdir``."""
    logdir = Path(logdir)
    if logdir.exists() and not logdir.is_dir():
        raise RlsoftError(
            f"logdir {str(logdir)!r} is a file, not a directory; pass a directory of run dirs, "
            "e.g. runs/"
        )
    if not logdir.is_dir():
        raise RlsoftError(
            f"logdir {str(logdir)!r} does not exist; pass a directory of run dirs, e.g. runs/"
        )
    meta = read_compare_file(logdir)
    runs, skipped = load_runs(logdir, run_dirs)
    analysis = analyse(
        runs,
        title=str(meta.get("name") or logdir.resolve().name),
        variant_order=list(meta.get("variants") or []),
        confidence=confidence,
        n_resamples=n_resamples,
        skipped=[(_relative(path, logdir), reason) for path, reason in skipped],
    )
    try:
        written = write_outputs(analysis, logdir)
    except OSError as exc:
        raise RlsoftError(
            f"cannot write the report into {str(logdir)!r} ({exc.strerror or type(exc).__name__}"
            "); make the directory writable, or copy it somewhere you can write and report there"
        ) from None
    return analysis, written


def _relative(path: Path, root: Path) -> Path:
    try:
        return Path(path).relative_to(root)
    except ValueError:
        return Path(path)
