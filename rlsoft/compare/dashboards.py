"""TensorBoard dashboards of a comparison: Custom Scalars charts of every run's curves (on
copies of them under the comparison's own tags) and the HParams experiment of the grid (see
:func:`write_dashboards`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rlsoft.compare.plan import Comparison, RunSpec
from rlsoft.run.checkpoint import SUMMARY_FILE
from rlsoft.run.logger import flatten

__all__ = [
    "DASHBOARD_RUN",
    "add_finished_run",
    "dashboard_layout",
    "dashboard_metrics",
    "hparam_values",
    "hparams_domain",
    "mirror_curves",
    "write_dashboards",
]

EVAL_METRICS = ("eval/mean_return", "eval/std_return", "eval/mean_length")


DASHBOARD_RUN = "_comparison"
"""The run (a folder of the comparison's logdir) that holds the comparison's Custom Scalars
layout and HParams experiment, so that TensorBoard lists it under a name, not as ``.``."""
NOT_APPLICABLE = "n/a"
"""The HParams value of a field that a trial's config does not have (soft Q-learning's
target temperature in a Q-learning trial): every trial has every column, so the parallel
coordinates view draws every trial."""
DEFAULT_COLUMNS = 5
"""How many hyperparameter columns TensorBoard's HParams table shows before the user ticks
more (a fixed number in its dashboard)."""
_LAYOUT = (
    ("greedy evaluation return (every variant and seed)", ("eval/mean_return",)),
    ("exploration entropy, nats (every variant and seed)", ("exploration/entropy",)),
    ("exploration parameter ε or τ", ("exploration/epsilon", "exploration/temperature")),
    ("training episodic return", ("charts/episodic_return",)),
)
MIRRORED_TAGS = tuple(tag for _, tags in _LAYOUT for tag in tags)
"""The run tags that the comparison's Custom Scalars charts show (see :func:`mirror_curves`)."""


def dashboard_prefix(comparison: Comparison) -> str:
    """The tag prefix of the comparison's copies of its runs' curves: the name of its logdir,
    which is also the first part of its runs' names when TensorBoard is opened on a parent
    folder (``runs/compare_taxi_exploration`` → ``compare_taxi_exploration/eval/mean_return``)."""
    return comparison.logdir.name


def write_dashboards(comparison: Comparison, metrics: Sequence[str] = ()) -> Path:
    """TensorBoard files of the comparison (rewritten on every call); returns their run dir.

    In the named run :data:`DASHBOARD_RUN`:

    * a **Custom Scalars** layout with one chart per metric across every run of the
      comparison, so every variant's evaluation return (and exploration entropy) shares one
      chart. Custom Scalars matches its regexes against *tags* in every run TensorBoard
      shows, never against run names, so a layout on the usual tags would also draw the runs
      beside the comparison when TensorBoard is opened on a parent folder. Its regexes are
      therefore anchored to tags only this comparison's runs have: each finished run gets a
      copy of the charted curves under ``<prefix>/<tag>`` (:func:`mirror_curves`, prefix
      :func:`dashboard_prefix`);
    * the **HParams** experiment (:func:`hparams_domain`): the comparison's columns, the
      ones that tell its trials apart shown by default, and the evaluation metrics. Each run
      writes its own session (its values for every column and a short trial ID).

    The mirrored curves of runs finished earlier are rewritten too.

    :param metrics: the experiment's metric tags (default: :func:`dashboard_metrics`).
    """
    run_dir = _write_dashboard_run(comparison, metrics or dashboard_metrics(comparison))
    for spec in comparison.runs:
        if spec.is_done():
            mirror_curves(spec.run_dir, dashboard_prefix(comparison))
    return run_dir


def _write_dashboard_run(comparison: Comparison, metrics: Sequence[str]) -> Path:
    from rlsoft.compare.report import DASHBOARD_SUFFIX
    from rlsoft.run.logger import RunLogger

    run_dir = comparison.logdir / DASHBOARD_RUN
    run_dir.mkdir(parents=True, exist_ok=True)
    # Only our own files; the logdir root is where rlsoft wrote them before they had a run.
    for folder in (comparison.logdir, run_dir):
        for old in folder.glob(f"events.out.tfevents.*{DASHBOARD_SUFFIX}"):
            old.unlink()
    domain = hparams_domain(comparison.runs, dashboard_prefix(comparison))
    logger = RunLogger(run_dir, filename_suffix=DASHBOARD_SUFFIX)
    try:
        logger.custom_scalars(dashboard_layout(dashboard_prefix(comparison)))
        logger.experiment(domain["columns"], metrics)
    finally:
        logger.close()
    return run_dir


def dashboard_metrics(comparison: Comparison) -> list[str]:
    """The HParams metrics: the evaluation tags every RL run logs, then any other final
    evaluation metric of a finished run (a classifier's ``eval/accuracy``, say)."""
    metrics = list(EVAL_METRICS)
    for spec in comparison.runs:
        if spec.is_done():
            metrics += [m for m in _final_metrics(spec.run_dir) if m not in metrics]
    return metrics


def add_finished_run(comparison: Comparison, run_dir: Path, metrics: Sequence[str]) -> list[str]:
    """Bring a run that just finished into the dashboards: copy its charted curves
    (:func:`mirror_curves`), and when it has final metrics the HParams experiment lacks,
    rewrite the experiment with them. Returns the experiment's metrics."""
    mirror_curves(run_dir, dashboard_prefix(comparison))
    new = [m for m in _final_metrics(run_dir) if m not in metrics]
    if new:
        _write_dashboard_run(comparison, [*metrics, *new])
    return [*metrics, *new]


def _final_metrics(run_dir: Path) -> list[str]:
    summary = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    final = summary.get("final_eval") or {}
    return sorted(k for k, v in final.items() if _is_number(v))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def dashboard_layout(prefix: str) -> dict[str, dict[str, list[Any]]]:
    """The Custom Scalars layout of a comparison whose runs' curves are mirrored under
    ``prefix`` (``{category: {chart title: ["Multiline", [tag regexes]]}}``): each regex
    matches one mirrored tag exactly."""
    charts = {
        title: ["Multiline", [f"^{re.escape(f'{prefix}/{tag}')}$" for tag in tags]]
        for title, tags in _LAYOUT
    }
    return {f"compare: {prefix}": charts}


def mirror_curves(run_dir: Path, prefix: str) -> Path | None:
    """Copy the run's curves that the comparison's charts show (:data:`MIRRORED_TAGS`) to
    ``<prefix>/<tag>`` in an event file of its own in the run dir (replacing an earlier
    copy), with their steps and wall times; returns it, or None when the run has none of
    those tags. TensorBoard's Scalars dashboard shows the copies as one more section."""
    from rlsoft.compare.report import DASHBOARD_SUFFIX, load_events
    from rlsoft.run.logger import RunLogger

    for old in run_dir.glob(f"events.out.tfevents.*{DASHBOARD_SUFFIX}"):
        old.unlink()
    accumulator = load_events(run_dir)
    available = set(accumulator.Tags().get("scalars", []))
    tags = [tag for tag in MIRRORED_TAGS if tag in available]
    if not tags:
        return None
    points = []
    for tag in tags:
        by_step = {event.step: event for event in accumulator.Scalars(tag)}  # last wins
        points += [
            (f"{prefix}/{tag}", step, by_step[step].value, by_step[step].wall_time)
            for step in sorted(by_step)
        ]
    logger = RunLogger(run_dir, filename_suffix=DASHBOARD_SUFFIX)
    try:
        logger.replay_scalars(points)
    finally:
        logger.close()
    return Path(logger.writer.get_logdir())


def hparams_domain(specs: Sequence[RunSpec], label: str = "") -> dict[str, Any]:
    """The HParams experiment of a grid and every trial's values in it.

    Columns are the runs' flattened config fields (a schedule is one column, written as
    text), so every trial has every column: a field a trial lacks is :data:`NOT_APPLICABLE`
    (which makes the column a text column). The columns shown by default, at most
    :data:`DEFAULT_COLUMNS`, are, in this order: the variant ``name``, the fields whose value
    differs between trials (exploration fields first), ``env.id`` and ``seed``. A trial's ID
    is ``s<seed>·<variant> (<label>)`` (``s<seed>·<env>·<variant> (<label>)`` when the grid
    has several envs): the dashboard cuts IDs to about 13 characters, so the seed goes first,
    where it stays visible (the variant has its ``name`` column). The label (the comparison's
    folder) keeps the IDs of two comparisons apart when TensorBoard is opened on a folder
    holding both: trials of one ID are merged into one row.

    :param label: appended to the trial IDs, e.g. the comparison's folder name.
    :returns: ``columns`` (see :func:`rlsoft.run.logger.experiment_summary`) and ``trials``:
        run dir (:func:`rlsoft.run.logger.trial_key`) → ``{"group": trial ID, "hparams":
        {column: value}}``.
    """
    from rlsoft.run.logger import trial_key

    values = [hparam_values(spec.config) for spec in specs]
    names = sorted({name for trial in values for name in trial})
    columns: dict[str, dict[str, Any]] = {}
    for name in names:
        present = [trial[name] for trial in values if name in trial]
        complete = len(present) == len(values)
        if complete and all(isinstance(v, bool) for v in present):
            kind = "bool"
        elif complete and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in present
        ):
            kind = "number"
        else:
            kind = "string"
        for trial in values:
            value = trial.get(name, NOT_APPLICABLE)
            trial[name] = _hparam_text(value) if kind == "string" else value
        column: dict[str, Any] = {"name": name, "type": kind}
        seen = [trial[name] for trial in values]
        if kind == "number":
            column["min"], column["max"] = min(seen), max(seen)
        else:
            column["values"] = sorted(set(seen), key=str)
        column["varies"] = len(set(seen)) > 1
        columns[name] = column
    varying = sorted(
        (n for n, c in columns.items() if c["varies"] and n not in ("name", "seed", "env.id")),
        key=_column_priority,
    )
    several_envs = len({spec.env for spec in specs}) > 1
    order = ["name", *varying, "env.id", "seed"]
    for name in [n for n in order if n in columns][:DEFAULT_COLUMNS]:
        columns[name]["default"] = True
    if "name" in columns:
        columns["name"]["description"] = "the comparison's variant"
    trials = {
        trial_key(spec.run_dir): {
            "group": "·".join([f"s{spec.seed}", *[spec.env] * several_envs, spec.variant])
            + (f" ({label})" if label else ""),
            "hparams": trial,
        }
        for spec, trial in zip(specs, values, strict=True)
    }
    return {
        "columns": [{k: v for k, v in c.items() if k != "varies"} for c in columns.values()],
        "trials": trials,
    }


def _column_priority(name: str) -> tuple[int, str]:
    """Exploration fields first (the policy before its parameters), then the agent's."""
    if name == "exploration.policy":
        return 0, name
    if name.startswith("exploration."):
        return 1, name
    if name == "agent.type":
        return 2, name
    return (3 if name.startswith("agent.") else 4), name


_POLICY_PARAMETERS = {
    "greedy": (),
    "epsilon_greedy": ("epsilon",),
    "boltzmann": ("temperature",),
    "ez_greedy": ("epsilon", "mu"),
}
"""The ``exploration`` fields each policy reads (see ``ExplorationConfig.build``)."""


def hparam_values(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run config as HParams values: its fields flattened to dotted names (``logdir`` and
    ``run_name`` left out), each schedule one text value such as ``linear 1→0.05 over
    30,000 steps``, lists and None as text, and an exploration parameter that the policy
    does not read (ε of a Boltzmann policy) :data:`NOT_APPLICABLE`."""
    from pydantic import TypeAdapter

    from rlsoft.run.config import ScheduleConfig

    schedule = TypeAdapter(ScheduleConfig)

    def walk(data: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> dict[str, Any]:
        for key, value in data.items():
            name = f"{prefix}{key}"
            if isinstance(value, Mapping):
                try:
                    out[name] = _schedule_text(schedule.validate_python(dict(value)))
                except ValidationError:
                    walk(value, f"{name}.", out)
            else:
                out[name] = flatten({key: value})[key]
        return out

    values = walk({k: v for k, v in config.items() if k not in ("logdir", "run_name")}, "", {})
    used = _POLICY_PARAMETERS.get(str(values.get("exploration.policy")))
    if used is not None:  # a default the policy never reads would pass for a setting
        for parameter in {p for ps in _POLICY_PARAMETERS.values() for p in ps} - set(used):
            if f"exploration.{parameter}" in values:
                values[f"exploration.{parameter}"] = NOT_APPLICABLE
    return values


def _schedule_text(spec: Any) -> str:
    if getattr(spec, "type", None) == "linear":
        text = f"linear {spec.start:g}→{spec.end:g} over {spec.duration:,} steps"
        return text + (f" from step {spec.begin:,}" if spec.begin else "")
    if getattr(spec, "type", None) == "exponential":
        return f"exponential {spec.start:g}→{spec.end:g}, half-life {spec.half_life:,g} steps"
    return str(spec)


def _hparam_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}" if float(f"{value:g}") == value else repr(value)
    return str(value)
