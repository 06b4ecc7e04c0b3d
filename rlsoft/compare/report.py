"""Comparison reports from the TensorBoard event files on disk.

``rlsoft compare`` and ``rlsoft report LOGDIR`` both end here: the run dirs under a logdir are
read back (``eval/mean_return`` and ``exploration/entropy`` from the event files, the variant
from the directory layout ``<env>/<variant>/seed_<k>`` or, for runs made by hand with
``rlsoft train``, from their ``config.yaml``), the statistics of :mod:`rlsoft.numerics.stats` are
computed per environment and variant (:mod:`rlsoft.compare.analysis`, which also defines the
metrics), and the results are written as ``summary.csv``, ``summary.md`` and PNG plots in the
logdir, and printed as tables.

A comparison that sweeps a config value (``sweep:`` in its config, recorded in
``compare.yaml``) is read back cell by cell: each run's cell is its env id and its value of the
swept key (:func:`rlsoft.compare.plan.cell_name`), read from its ``config.yaml``. A return
threshold (``analysis.return_threshold``, or ``threshold=``) adds the time-to-threshold tables,
rows and the scaling plot.
"""

from __future__ import annotations

import copy
import csv
import io
import logging
import math
import re
import shlex
import warnings
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
from rlsoft.compare.plan import cell_name
from rlsoft.errors import RlsoftError
from rlsoft.numerics import stats
from rlsoft.rl.agent import agent_title
from rlsoft.run.checkpoint import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    SUMMARY_FILE,
    atomic_write_text,
    read_summary,
)
from rlsoft.run.config import RESUME_CHANGEABLE, flat_fields, get_dotted

EVAL_TAG = "eval/mean_return"
ENTROPY_TAG = "exploration/entropy"
EPISODES_TAG = "charts/episodes"
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
    "summary_rows",
    "write_outputs",
]


# --------------------------------------------------------------------------------------------
# Reading runs
# --------------------------------------------------------------------------------------------


UNFINISHED = "unfinished (no summary.json)"
DAMAGED_SUMMARY = "damaged summary.json (not the summary rlsoft writes)"
NO_EVENTS = "no TensorBoard event files (deleted or never written)"
NO_CURVE = f"no {EVAL_TAG} scalars"
OUTSIDE = "not in the comparison (compare.yaml)"
_SKIP_FIXES = {
    UNFINISHED: "rlsoft train --resume RUN_DIR finishes an unfinished run",
    DAMAGED_SUMMARY: "delete a damaged summary.json, then resume that run",
    NO_EVENTS: "train again a run whose event files are gone",
    NO_CURVE: f"pass a directory of rlsoft runs (they log {EVAL_TAG})",
    OUTSIDE: "report runs outside compare.yaml from a directory of their own",
}
"""Why :func:`load_runs` and the comparison's filter skip a run dir, and what makes it count."""


def _has_events(path: Path) -> bool:
    return any(
        p.name.startswith("events.out.tfevents.") and not p.name.endswith(DASHBOARD_SUFFIX)
        for p in path.iterdir()
        if p.is_file()
    )


def _is_rlsoft_run(path: Path) -> bool:
    """An rlsoft run dir, with or without its event files: its ``config.yaml`` beside the
    ``summary.json`` or the checkpoints the trainer writes."""
    return (path / CONFIG_FILE).is_file() and (
        (path / SUMMARY_FILE).exists() or (path / CHECKPOINT_DIR).is_dir()
    )


def discover_run_dirs(logdir: Path) -> list[Path]:
    """Directories below ``logdir`` (not ``logdir`` itself) that hold TensorBoard event files,
    or are rlsoft run dirs whose event files are gone (so that the report says so), skipping
    checkpoint folders and comparisons' dashboard files; sorted by path."""
    logdir = Path(logdir)
    found = []
    for path in sorted(p for p in logdir.rglob("*") if p.is_dir()):
        if CHECKPOINT_DIR in path.relative_to(logdir).parts:
            continue
        if _has_events(path) or _is_rlsoft_run(path):
            found.append(path)
    return found


class _NoPurgeNotices(logging.Filter):
    """Drops TensorBoard's "Detected out of order event.step likely caused by a TensorFlow
    restart" warning: the purge it announces is the one a resumed run asks for (the events a
    killed run logged after its last checkpoint), not news to print under a report."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Detected out of order event.step")


def load_events(run_dir: Path) -> Any:
    """TensorBoard's ``EventAccumulator`` over ``run_dir``, every scalar kept, loaded: it reads
    every event file of the directory in order and honours the purge markers a resumed run
    writes (quietly)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    quiet = _NoPurgeNotices()
    tensorboard_log = logging.getLogger("tensorboard")
    tensorboard_log.addFilter(quiet)
    try:
        accumulator.Reload()
    finally:
        tensorboard_log.removeFilter(quiet)
    return accumulator


def read_scalars(run_dir: Path, tags: Iterable[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``tag → (steps, values)`` for the scalar tags present in ``run_dir``'s event files
    (:func:`load_events`); a step written twice keeps its last value."""
    accumulator = load_events(run_dir)
    available = set(accumulator.Tags().get("scalars", []))
    out = {}
    for tag in tags:
        if tag not in available:
            continue
        by_step = {int(e.step): float(e.value) for e in accumulator.Scalars(tag)}
        steps = np.array(sorted(by_step), dtype=np.int64)
        out[tag] = steps, np.array([by_step[s] for s in steps], dtype=float)
    return out


def _eval_epsilon(config: dict[str, Any] | None, summary: dict[str, Any] | None) -> float:
    """The ε of a run's last evaluation: ``final_eval_epsilon`` in its ``summary.json`` (a
    resume may have changed ``train.eval_epsilon`` after it), else its config's
    ``train.eval_epsilon`` (0, greedy, when absent or unreadable)."""
    if summary is not None and "final_eval_epsilon" in summary:
        value = summary["final_eval_epsilon"]
    else:
        value = get_dotted(config or {}, "train.eval_epsilon")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


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
    logdir: Path, run_dirs: Sequence[Path] | None = None, *, sweep_parameter: str | None = None
) -> tuple[list[RunRecord], list[tuple[Path, str]]]:
    """Read the runs under ``logdir`` (or just ``run_dirs``).

    :param sweep_parameter: the config key a comparison swept: a run whose config sets it to a
        number is placed in that value's cell (its ``env`` is the cell's name).
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
            skipped.append((run_dir, UNFINISHED))
            continue
        summary = read_summary(run_dir)
        if config is not None and summary is None:
            skipped.append((run_dir, DAMAGED_SUMMARY))
            continue
        if not _has_events(run_dir):
            skipped.append((run_dir, NO_EVENTS))
            continue
        scalars = read_scalars(run_dir, [EVAL_TAG, ENTROPY_TAG, EPISODES_TAG])
        if EVAL_TAG not in scalars:
            skipped.append((run_dir, NO_CURVE))
            continue
        env, variant, seed, from_layout = _identify(run_dir, logdir, config)
        steps, returns = scalars[EVAL_TAG]
        entropy_steps, entropy = scalars.get(ENTROPY_TAG, (np.zeros(0), np.zeros(0)))
        episode_steps, episodes = scalars.get(EPISODES_TAG, (np.zeros(0), np.zeros(0)))
        env_id, sweep_value = env, None
        value = get_dotted(config, sweep_parameter) if sweep_parameter else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            sweep_value = float(value)
            env = cell_name(env_id, sweep_parameter, sweep_value)
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
            episode_steps=episode_steps,
            episodes=episodes,
            env_id=env_id,
            sweep_value=sweep_value,
            eval_epsilon=_eval_epsilon(config, summary),
        )
        records.append(record)
        if not from_layout:
            fallback.append((record, _signature(config), _learning_fields(config)))
    # Hand-made runs are grouped by their config name; when runs of one name differ in agent
    # or exploration policy (e.g. made with --set exploration.policy=...), split them.
    by_name: dict[tuple[str, str], set[str]] = {}
    for record, signature, _ in fallback:
        by_name.setdefault((record.env, record.variant), set()).add(signature)
    for record, signature, _ in fallback:
        if len(by_name[(record.env, record.variant)]) > 1:
            record.variant = f"{record.variant}:{signature}"
    _split_by_setting([(record, fields) for record, _, fields in fallback])
    return records, skipped


_NOT_LEARNING = frozenset({"seed", "name", "run_name", "logdir", "device"})
"""Config fields that do not make two hand-made runs different variants (with
:data:`rlsoft.run.config.RESUME_CHANGEABLE`, the budget and cadences)."""


def _learning_fields(config: dict[str, Any] | None) -> dict[str, Any]:
    """A run's config flattened (``{"agent.precision": "bfloat16"}``) without the fields
    that leave what it learns unchanged. It is validated by today's models first (where it
    validates), so fields added since a run was made take their defaults: runs of one config
    from before and after a field was added are not two variants."""
    if not config:
        return {}
    from rlsoft.run.config import validate_config

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the report is no place for a config's warnings
            config = validate_config(copy.deepcopy(config), recorded_spaces=True).to_dict()
    except RlsoftError:
        pass  # compared as written: an agent type not registered here, a renamed field
    return {
        key: value
        for key, value in flat_fields(config).items()
        if key not in _NOT_LEARNING and key not in RESUME_CHANGEABLE
    }


_SHOWN_SETTINGS = 3
"""How many differing settings a split variant's label names."""


def _split_by_setting(runs: list[tuple[RunRecord, dict[str, Any]]]) -> None:
    """Give hand-made runs of one label whose configs still differ (``--set
    agent.precision=bfloat16`` on one of them) the differing settings in their label, so that
    they are compared as variants rather than taken for seeds of one."""
    groups: dict[tuple[str, str], list[tuple[RunRecord, dict[str, Any]]]] = {}
    for record, fields in runs:
        groups.setdefault((record.env, record.variant), []).append((record, fields))
    for group in groups.values():
        keys = sorted({key for _, fields in group for key in fields})
        differing = [k for k in keys if len({repr(f.get(k)) for _, f in group}) > 1]
        if not differing:
            continue
        shown_keys = _telling_keys([fields for _, fields in group], differing)
        more = len(differing) - len(shown_keys)
        for record, fields in group:
            shown = [f"{k}={fields.get(k)}" for k in shown_keys]
            record.variant += f"[{', '.join(shown)}{f', +{more} more' if more > 0 else ''}]"


def _telling_keys(configs: Sequence[dict[str, Any]], differing: Sequence[str]) -> list[str]:
    """The settings a split variant's label names: enough of ``differing`` to tell every
    distinct config of the group apart (greedily, the one that separates the most first), then
    others up to :data:`_SHOWN_SETTINGS`, in ``differing``'s order. Labels that named only the
    first settings alphabetically would give two configs differing further on one label, and
    the report would take their runs for seeds of one variant."""

    def classes(chosen: list[str]) -> int:  # as the labels write the values
        return len({tuple(str(fields.get(k)) for k in chosen) for fields in configs})

    distinct = classes(list(differing))
    chosen: list[str] = []
    while classes(chosen) < distinct:
        chosen.append(
            max((k for k in differing if k not in chosen), key=lambda k: classes([*chosen, k]))
        )
    for key in differing:
        if len(chosen) >= _SHOWN_SETTINGS:
            break
        if key not in chosen:
            chosen.append(key)
    return [k for k in differing if k in chosen]


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


def _dqn_options(agent: dict[str, Any]) -> str:
    """The head, target, return and arithmetic of a DQN-family agent where they are not the
    plain ones, e.g. ``" (Munchausen target τ=0.03, α=0.9)"`` or ``" (dueling) (3-step)
    (bfloat16)"``; a value the config does not hold is left out."""
    text = " (C51)" if agent.get("head") == "c51" else ""
    if agent.get("dueling") is True:
        text += " (dueling)"
    if agent.get("double") is True:
        text += " (Double)"
    n_step = agent.get("n_step")
    if isinstance(n_step, int) and not isinstance(n_step, bool) and n_step > 1:
        text += f" ({n_step}-step)"
    target = agent.get("target")
    values = {
        "soft": [("τ", "soft_temperature")],
        "munchausen": [("τ", "soft_temperature"), ("α", "munchausen_alpha")],
        "mellowmax": [("ω", "mellowmax_omega")],
    }.get(str(target))
    if values is not None:
        shown = ", ".join(
            f"{symbol}={agent[key]:g}"
            for symbol, key in values
            if isinstance(agent.get(key), (int, float))
        )
        name = "Munchausen" if target == "munchausen" else target
        text += f" ({name} target{' ' + shown if shown else ''})"
    precision = agent.get("precision")
    if isinstance(precision, str) and precision != "float32":
        text += f" ({precision})"
    return text


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
    text += _dqn_options(agent)
    if agent.get("noisy") is True:
        text += " (NoisyNet)"
    ensemble = agent.get("ensemble")
    if isinstance(ensemble, dict):
        heads, prior = ensemble.get("heads", 10), ensemble.get("prior_scale", 3.0)
        text += f" (bootstrapped, {heads} heads"
        text += f", prior β={prior:g})" if prior else ", no prior)"
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


def _metric_names(block: str, analysis: Analysis) -> dict[str, str]:
    if block == ALL_ENVS:
        return METRICS_ALL_ENVS
    # Worded from the runs' configs: train.eval_epsilon > 0 evaluates ε-greedily.
    return {**METRICS, "final_return": f"final {analysis.evaluation_in(block)} evaluation return"}


def _fmt(interval: stats.Interval, few_runs: bool = False) -> str:
    # times (censored intervals) are counts of steps or episodes: no decimals
    text = interval.format(0 if isinstance(interval, stats.CensoredInterval) else 2)
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


CENSORED_NOTE = (
    f"Censored: runs whose evaluation never reached the threshold within their budget. "
    f"They are kept, at the budget, so a number marked {stats.CENSORED_MARK} is only a lower "
    f"bound of the true one: the mean whenever a run is censored, the median when half or more "
    f"are, the IQM when more are censored than the quarter it trims, and a CI's upper bound "
    f"whenever any run is censored. Times are resolved to the evaluation interval."
)


def _time_title(analysis: Analysis, unit: str) -> str:
    return f"{unit} to reach an evaluation return ≥ {analysis.threshold:g}"


def _time_rows(analysis: Analysis, block: str, unit: str) -> list[list[str]]:
    """``[variant, runs, k/n censored, mean, median, IQM]`` of the times in ``block``."""
    rows = []
    for variant in analysis.variants:
        result = analysis.time_result(block, variant)
        if result is None or unit not in result.metrics:
            continue
        m, few = result.metrics[unit], result.few_runs
        runs = f"{result.runs} {FEW_RUNS_MARK}" if few else str(result.runs)
        censored = f"{result.censored}/{result.runs}"
        cells = (_fmt(m[name], few) for name in ("mean", "median", "iqm"))
        rows.append([variant, runs, censored, *cells])
    return rows


_TIME_HEADER = ["variant", "runs", "censored", "mean", "median", "IQM"]


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
    from rich.markup import escape
    from rich.table import Table

    console = console or Console(width=None if _stdout_is_terminal() else 120)
    ci = _ci_label(analysis)
    for block in analysis.blocks():
        for metric, label in _metric_names(block, analysis).items():
            few = _block_has_few_runs(analysis, block)
            table = Table(
                title=f"{escape(block)}: {label}  (value [{ci}])",
                title_justify="left",
                caption=_few_runs_note(block == ALL_ENVS) if few else None,
                caption_justify="left",
            )
            for column in ("variant", "runs", "mean", "median", "IQM"):
                table.add_column(column, justify="left" if column == "variant" else "right")
            for row in _table_rows(analysis, block, metric):
                table.add_row(*map(escape, row))
            console.print(table)
        for unit in analysis.time_units(block):
            few = any(r.env == block and r.few_runs for r in analysis.times)
            caption = CENSORED_NOTE + ("\n" + _few_runs_note(False) if few else "")
            table = Table(
                title=f"{escape(block)}: {_time_title(analysis, unit)}  (value [{ci}])",
                title_justify="left",
                caption=caption,
                caption_justify="left",
            )
            for column in _TIME_HEADER:
                table.add_column(column, justify="left" if column == "variant" else "right")
            for row in _time_rows(analysis, block, unit):
                table.add_row(*map(escape, row))
            console.print(table)
        pair_rows = _pair_rows(analysis, block)
        if pair_rows:
            few = any(p.env == block and p.few_runs for p in analysis.pairs)
            table = Table(
                title=f"{escape(block)}: probability of improvement, P(X > Y) [{ci}]",
                title_justify="left",
                caption=_few_runs_note(block == ALL_ENVS) if few else None,
                caption_justify="left",
            )
            for column in _pair_header(block):
                table.add_column(column, justify="right" if column.startswith("P") else "left")
            for row in pair_rows:
                table.add_row(*map(escape, row))
            console.print(table)


def _stdout_is_terminal() -> bool:
    import sys

    return sys.stdout.isatty()


def _csv_number(x: float) -> str:
    return "" if math.isnan(x) else repr(round(float(x), 6))


SUMMARY_COLUMNS = (
    "env", "metric", "statistic", "variant", "versus", "runs", "value", "ci_low", "ci_high",
    "flag", "censored", "lower_bound",
)  # fmt: skip
"""The columns of ``summary.csv``; ``censored`` and ``lower_bound`` are filled on the
time-to-threshold rows only (metrics ``steps_to_threshold`` and ``episodes_to_threshold``)."""


def _row(env, metric, statistic, variant, versus, runs, iv, flag, censored=None, bound=""):
    return {"env": env, "metric": metric, "statistic": statistic, "variant": variant,
            "versus": versus, "runs": runs, "value": float(iv.value), "ci_low": float(iv.low),
            "ci_high": float(iv.high), "flag": flag, "censored": censored,
            "lower_bound": bound}  # fmt: skip


def _lower_bounds(iv: stats.CensoredInterval) -> str:
    """The names of the columns that censoring makes lower bounds, space-separated."""
    return " ".join(
        n for n, b in (("value", iv.lower_bound), ("ci_high", iv.high_lower_bound)) if b
    )


def summary_rows(analysis: Analysis) -> list[dict[str, Any]]:
    """The rows of ``summary.csv`` as typed dicts (full precision): numbers as floats (``nan``
    where the file has an empty cell), ``runs`` and ``censored`` as ints (``None`` where the
    file's cell is empty).

    Columns (:data:`SUMMARY_COLUMNS`): one row per (env, metric, statistic, variant[, versus])
    with value and CI bounds; ``flag`` says ``n<3`` where the numbers come from too few runs.
    Time-to-threshold rows (metric ``<unit>_to_threshold``) also give the number of
    ``censored`` runs and, in ``lower_bound``, which of ``value`` and ``ci_high`` are only
    lower bounds because censored runs enter them at the budget.
    """
    rows: list[dict[str, Any]] = []
    for result in analysis.results:
        flag = FEW_RUNS_FLAG if result.few_runs else ""
        for metric, by_stat in result.metrics.items():
            for statistic, iv in by_stat.items():
                rows.append(_row(result.env, metric, statistic, result.variant, "", result.runs,
                                 iv, flag))  # fmt: skip
    for pair in analysis.pairs:
        flag = FEW_RUNS_FLAG if pair.few_runs else ""
        rows.append(_row(pair.env, pair.metric, "probability_of_improvement", pair.x, pair.y,
                         None, pair.poi, flag))  # fmt: skip
    for time in analysis.times:
        flag = FEW_RUNS_FLAG if time.few_runs else ""
        for unit, by_stat in time.metrics.items():
            for statistic, iv in by_stat.items():
                metric = f"{unit}_to_threshold"
                rows.append(_row(time.env, metric, statistic, time.variant, "", time.runs, iv,
                                 flag, time.censored, _lower_bounds(iv)))  # fmt: skip
    return rows


def summary_csv(analysis: Analysis) -> str:
    """:func:`summary_rows` as CSV (numbers rounded to 6 decimals, empty cells for ``nan``
    and ``None``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for row in summary_rows(analysis):
        cells = []
        for column in SUMMARY_COLUMNS:
            value = row[column]
            if isinstance(value, float):
                cells.append(_csv_number(value))
            else:
                cells.append("" if value is None else str(value))
        writer.writerow(cells)
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
        for metric, label in _metric_names(block, analysis).items():
            parts.append(f"**{label[0].upper() + label[1:]}** (value [{ci}]):\n")
            header = ["variant", "runs", "mean", "median", "IQM"]
            parts.append(_md_table(header, _table_rows(analysis, block, metric)) + "\n")
        for unit in analysis.time_units(block):
            title = _time_title(analysis, unit)
            parts.append(f"**{title[0].upper() + title[1:]}** (value [{ci}]):\n")
            parts.append(_md_table(_TIME_HEADER, _time_rows(analysis, block, unit)) + "\n")
        if analysis.time_units(block):
            parts.append(CENSORED_NOTE + "\n")
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
        f"Per run: the final evaluation return ({analysis.evaluation} policy, from the runs' "
        f"train.eval_epsilon), and the normalised area under the "
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
    if analysis.threshold is not None:
        parts.append(
            f"\nTime to threshold: per run, the environment steps until its evaluation "
            f"return first reached {analysis.threshold:g} (the first evaluation at or above it, "
            f"so resolved to the evaluation interval), and the training episodes completed by "
            f"then. A run that never reached it is censored at its budget (its last evaluation "
            f"step, the episodes by then): it enters mean, median, IQM and their bootstrap CIs "
            f"at the budget rather than being dropped, and since its true time is longer, every "
            f"number it enters is a lower bound, marked {stats.CENSORED_MARK}. The censored runs "
            f"are the slowest, so the IQM, which trims the slowest quarter, stays exact while no "
            f"more than a quarter of the runs are censored; beyond that it is a lower bound. The "
            f"scaling plot and tables (after Osband et al., Randomized Prior Functions for Deep "
            f"Reinforcement Learning, NeurIPS 2018) mark such points."
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
    atomic_write_text(csv_path, summary_csv(analysis))
    atomic_write_text(md_path, summary_markdown(analysis, [p.name for p in written]))
    return [csv_path, md_path, *written]


def read_compare_file(logdir: Path) -> dict[str, Any]:
    """The resolved comparison ``rlsoft compare`` left in the logdir (empty if none)."""
    from rlsoft.run.config import parse_yaml, read_text_file

    path = Path(logdir) / COMPARE_FILE
    if not path.is_file():
        return {}
    data = parse_yaml(read_text_file(path, "comparison record"), str(path))
    return data if isinstance(data, dict) else {}


def _independent_runs(
    runs: list[RunRecord], meta: dict[str, Any], skipped: list[tuple[Path, str]]
) -> list[RunRecord]:
    """The runs the statistics may treat as independent samples of their variant: those of
    the comparison ``compare.yaml`` describes now (its seeds and variants, when ``meta`` has
    them: a re-run with fewer seeds leaves the others' run dirs), and one run per (env,
    variant, seed), the newest (a config trained twice with one seed is one sample, not two).
    The others go to ``skipped`` with the reason."""
    seeds, variants = meta.get("seeds"), meta.get("variants")
    dropped: set[Path] = set()
    same_seed: dict[tuple[str, str, int], list[RunRecord]] = {}
    for run in runs:
        if isinstance(seeds, list) and run.seed is not None and run.seed not in seeds:
            skipped.append((run.run_dir, f"seed {OUTSIDE}"))
            dropped.add(run.run_dir)
        elif isinstance(variants, list) and variants and run.variant not in variants:
            skipped.append((run.run_dir, f"variant {OUTSIDE}"))
            dropped.add(run.run_dir)
        elif run.seed is not None:
            same_seed.setdefault((run.env, run.variant, run.seed), []).append(run)
    for group in same_seed.values():
        *older, newest = sorted(group, key=_finished_time)
        for run in older:
            skipped.append((run.run_dir, f"the same seed as {newest.run_dir.name}, used"))
            dropped.add(run.run_dir)
    return [run for run in runs if run.run_dir not in dropped]


def _nothing_to_compare(logdir: Path, skipped: Sequence[tuple[Path, str]]) -> str:
    """The sentence for a logdir whose every run dir was skipped: two of them with the
    reason, and what makes each kind of them count (short: the CLI prints 500 characters)."""
    shown = "; ".join(f"{_relative(path, logdir)}: {why}" for path, why in skipped[:2])
    if len(skipped) > 2:
        shown += f"; and {len(skipped) - 2} more"
    fixes = dict.fromkeys(
        fix for _, why in skipped for reason, fix in _SKIP_FIXES.items() if why.endswith(reason)
    )
    which = f"all {len(skipped)} run dirs were" if len(skipped) > 1 else "its one run dir was"
    return f"found no run to compare: {which} skipped ({shown}); {'; '.join(fixes)}"


def _finished_time(run: RunRecord) -> float:
    summary = run.run_dir / SUMMARY_FILE
    return summary.stat().st_mtime if summary.is_file() else run.run_dir.stat().st_mtime


def report(
    logdir: Path,
    *,
    run_dirs: Sequence[Path] | None = None,
    confidence: float = stats.DEFAULT_CONFIDENCE,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    threshold: float | None = None,
) -> tuple[Analysis, list[Path]]:
    """Read the runs under ``logdir`` (or only ``run_dirs``), analyse them and write
    ``summary.csv``, ``summary.md`` and the plots into ``logdir``.

    :param threshold: the return threshold of the time-to-threshold statistic (default: the
        comparison's ``analysis.return_threshold`` recorded in ``compare.yaml``, if any).
    """
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
    if (logdir / CONFIG_FILE).is_file() and run_dirs is None:
        # One run has nothing to compare with, and the report would be written into it.
        raise RlsoftError(
            f"{str(logdir)!r} is one run dir; rlsoft report compares the runs in a directory "
            f"of run dirs (a comparison's logdir, or where rlsoft train put them): pass its "
            f"parent {shlex.quote(str(logdir.parent))}, or see this run alone with rlsoft eval "
            f"{shlex.quote(str(logdir))} or tensorboard --logdir {shlex.quote(str(logdir))}"
        )
    comparison = next(
        (p for p in list(logdir.resolve().parents)[:3] if (p / COMPARE_FILE).is_file()), None
    )
    if comparison is not None and run_dirs is None and not (logdir / COMPARE_FILE).is_file():
        # Its report would lack the comparison's seeds and variant order, in the tree of it.
        raise RlsoftError(
            f"{str(logdir)!r} is inside the comparison logdir {str(comparison)!r}, whose "
            f"report covers it (a table and plots per environment): run rlsoft report "
            f"{shlex.quote(str(comparison))}"
        )
    if threshold is not None and not math.isfinite(threshold):
        raise RlsoftError(f"--threshold must be a finite number, got {threshold}")
    meta = read_compare_file(logdir)
    definition = meta.get("definition") if isinstance(meta.get("definition"), dict) else {}
    sweep = definition.get("sweep") if isinstance(definition.get("sweep"), dict) else {}
    parameter = sweep.get("parameter") if isinstance(sweep.get("parameter"), str) else None
    if threshold is None:
        threshold = get_dotted(definition, "analysis.return_threshold")
        threshold = float(threshold) if isinstance(threshold, (int, float)) else None
    runs, skipped = load_runs(logdir, run_dirs, sweep_parameter=parameter)
    runs = _independent_runs(runs, meta if run_dirs is None else {}, skipped)
    if not runs and skipped:
        raise RlsoftError(_nothing_to_compare(logdir, skipped))
    analysis = analyse(
        runs,
        title=str(meta.get("name") or logdir.resolve().name),
        variant_order=list(meta.get("variants") or []),
        confidence=confidence,
        n_resamples=n_resamples,
        skipped=[(_relative(path, logdir), reason) for path, reason in skipped],
        threshold=threshold,
        sweep_parameter=parameter,
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
