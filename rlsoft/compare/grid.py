"""Comparisons: one config, a grid of ordinary runs, run in parallel and resumably.

A comparison config names a base experiment, named *variants* (each a set of dotted-key
overrides of the base, as ``--set`` takes them, or another experiment file), a number of seeds
and optionally several environments::

    name: compare_taxi_exploration
    base: {env: {id: Taxi-v4}, agent: {type: q_learning}, train: {total_steps: 100000}}
    seeds: 10                        # seeds 0..9, or a list such as [0, 3, 7]
    variants:
      eps_const: {exploration.policy: epsilon_greedy, exploration.epsilon: 0.1}
      boltzmann: {exploration.policy: boltzmann, exploration.temperature: 1.0}

Every (env, variant, seed) becomes an ordinary run dir ``<logdir>/<env>/<variant>/seed_<k>``
(``rlsoft train --resume``, ``rlsoft eval`` and TensorBoard treat it like any other run). A run
is *done* when its ``summary.json`` exists — the trainer writes it atomically as its very last
act — so re-running a comparison skips done runs and redoes the others from scratch.

Runs execute on local worker processes (``spawn``: torch and ``fork`` do not mix) or as Ray
tasks. A worker process that dies (killed, out of memory) fails nothing but its own run, and
that run is retried up to :data:`MAX_RETRIES` times from its newest checkpoint: every run
checkpoints ``checkpoints_per_run`` times over its budget, so a death costs at most that
fraction of one run. Only then is the run reported as failed, with the cause.

rlsoft knows no concrete agent: the caller names the modules whose import registers the
agents (the CLI passes ``agents``), and every worker imports them before its first run.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing import connection
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from rlsoft.errors import ConfigError, RlsoftError
from rlsoft.run.config import (
    StrictModel,
    _describe_error,
    apply_overrides,
    check_path_name,
    load_config_dict,
    parse_override,
    parse_yaml,
    validate_config,
)
from rlsoft.run.config import set_dotted as _set_dotted
from rlsoft.run.logger import flatten
from rlsoft.run.trainer import CONFIG_FILE, SUMMARY_FILE

__all__ = [
    "DASHBOARD_RUN",
    "MAX_RETRIES",
    "CompareConfig",
    "CompareRun",
    "Comparison",
    "GridInterrupted",
    "RunOutcome",
    "RunSpec",
    "add_finished_run",
    "check_finished",
    "dashboard_layout",
    "dashboard_metrics",
    "death_cause",
    "default_workers",
    "env_dirname",
    "hparam_values",
    "hparams_domain",
    "load_comparison",
    "mirror_curves",
    "plan_comparison",
    "run_comparison",
    "run_grid",
    "run_one",
    "write_dashboards",
]

Backend = Literal["local", "ray"]
RAY_MISSING = "the ray backend needs Ray: pip install 'rlsoft[ray]'"
_MANAGED_KEYS = ("name", "seed", "logdir", "run_name")
_VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
EVAL_METRICS = ("eval/mean_return", "eval/std_return", "eval/mean_length")
MAX_RETRIES = 2
"""How many times a run whose worker process died is started again (from its newest
checkpoint) before it is reported as failed."""
_CADENCE_KEYS = ("train.checkpoint_every", "train.keep_checkpoints")
"""Config keys that change when checkpoints are written, never what a run learns."""


# --------------------------------------------------------------------------------------------
# The comparison config
# --------------------------------------------------------------------------------------------


class CompareConfig(StrictModel):
    """A comparison: what ``rlsoft compare CONFIG`` runs."""

    name: str | None = None
    """Name of the comparison (default: the file's stem); titles of tables and plots."""
    base: str | dict[str, Any] | None = None
    """The experiment every variant starts from: a config file (relative to this file, else to
    the working directory) or an inline experiment mapping."""
    variants: dict[str, str | dict[str, Any]]
    """``name → overrides`` (dotted keys as for ``--set``, e.g. ``exploration.policy:
    boltzmann``) or ``name → experiment file`` used instead of ``base``."""
    seeds: int | list[int] = 5
    """How many seeds (``N`` → seeds 0..N−1) or the list of seeds."""
    envs: list[str] | None = None
    """Environment ids to run every variant on (default: the base's ``env.id``)."""
    overrides: dict[str, Any] = Field(default_factory=dict)
    """Dotted-key overrides applied to every variant before its own."""
    logdir: str | None = None
    """Where the run dirs go (default ``runs/<name>``)."""
    checkpoints_per_run: int = Field(10, ge=0)
    """Periodic checkpoints of every run: one every ``⌈train.total_steps / N⌉`` steps (or more
    often where the run's own ``train.checkpoint_every`` says so). A run whose worker dies is
    retried from its newest checkpoint, so it loses at most ``1/N`` of its budget. 0: only the
    final checkpoint (a retried run starts over)."""

    @field_validator("name")
    @classmethod
    def _directory_name(cls, value: str | None) -> str | None:
        # the default logdir is runs/<name>: the name must not lead out of runs/
        return None if value is None else check_path_name(value, "comparison name")

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("name at least one variant")
        for name in value:
            if not _VARIANT_NAME.match(name):
                raise ValueError(
                    f"variant name {name!r} must start with a letter or digit and contain only "
                    "letters, digits and _ . + - (it names a directory)"
                )
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: int | list[int]) -> int | list[int]:
        if isinstance(value, int):
            if value < 1:
                raise ValueError(f"seeds must be at least 1, got {value}")
        else:
            if not value:
                raise ValueError("seeds must not be an empty list")
            if any(s < 0 for s in value) or len(set(value)) != len(value):
                raise ValueError(f"seeds must be distinct non-negative integers, got {value}")
        return value

    @field_validator("envs")
    @classmethod
    def _envs(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or len(set(value)) != len(value)):
            raise ValueError(f"envs must be a non-empty list of distinct env ids, got {value}")
        return value

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid: its place and its full, validated experiment config."""

    env: str
    variant: str
    seed: int
    config: dict[str, Any]
    """The experiment config as ``ExperimentConfig.to_dict()`` (JSON types, picklable)."""

    @property
    def run_dir(self) -> Path:
        return Path(self.config["logdir"]) / self.config["run_name"]

    @property
    def label(self) -> str:
        return f"{env_dirname(self.env)}/{self.variant}/seed_{self.seed}"

    def is_done(self) -> bool:
        return (self.run_dir / SUMMARY_FILE).is_file()


@dataclass
class Comparison:
    """A planned comparison: every run, validated, in submission order."""

    name: str
    logdir: Path
    variants: list[str]
    envs: list[str]
    seeds: list[int]
    runs: list[RunSpec]
    definition: dict[str, Any] = field(default_factory=dict)


def env_dirname(env_id: str) -> str:
    """Directory name of an env id (``/`` and other unsafe characters become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", env_id)


def _resolve_file(name: str, base_dir: Path, source: str, field_name: str) -> Path:
    for candidate in (base_dir / name, Path(name)):
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"{source}: {field_name} names {name!r}, which is neither a file next to the comparison "
        f"({base_dir / name}) nor relative to the working directory"
    )


def _check_managed(keys: Sequence[str], where: str, envs: bool) -> None:
    for key in keys:
        top = str(key).split(".")[0]
        if top in _MANAGED_KEYS:
            raise ConfigError(
                f"{where} sets {key!r}, which the comparison sets for every run itself "
                "(use seeds:, logdir: or the variant name instead)"
            )
        if envs and str(key) in ("env.id", "env"):
            raise ConfigError(f"{where} sets {key!r}, but the comparison's envs: list sets it")


def plan_comparison(
    data: Mapping[str, Any],
    *,
    source: str = "comparison",
    base_dir: Path | None = None,
    overrides: Sequence[str] = (),
    seeds: int | None = None,
    logdir: str | Path | None = None,
) -> Comparison:
    """Validate a comparison and every one of its run configs (before anything runs).

    :param data: the comparison config as a mapping (see :class:`CompareConfig`).
    :param source: names the comparison in error messages (its file path).
    :param base_dir: directory that relative config files are resolved against.
    :param overrides: ``key.path=value`` strings applied to every run last (``--set``).
    :param seeds: replaces the config's ``seeds`` (a number of seeds).
    :param logdir: replaces the config's ``logdir``.
    :raises ConfigError: one sentence naming the comparison, the variant and the bad field.
    """
    config = _validate(data, source)
    if seeds is not None and seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    seed_list = list(range(seeds)) if seeds is not None else config.seed_list()
    name = config.name or "comparison"
    root = Path(logdir or config.logdir or Path("runs") / name).resolve()
    several_envs = bool(config.envs)
    _check_managed(list(config.overrides), f"{source}: overrides", several_envs)
    _check_managed([".".join(parse_override(o)[0]) for o in overrides], "--set", several_envs)
    base = _experiment_base(config.base, Path(base_dir or "."), source)

    resolved: dict[tuple[str, str], dict[str, Any]] = {}
    for variant, spec in config.variants.items():
        experiment = _variant_experiment(
            config, variant, spec, base, Path(base_dir or "."), source, overrides
        )
        for env_id in config.envs or [_env_id(experiment)]:
            resolved[(env_id, variant)] = _placed(experiment, env_id, variant, root, several_envs)
    runs: list[RunSpec] = []
    for seed in seed_list:  # seed-major order: partial results cover every variant early
        for (env_id, variant), experiment in resolved.items():
            data_run = {**copy.deepcopy(experiment), "seed": seed, "run_name": f"seed_{seed}"}
            where = f"{source}: variant {variant!r}" + (f" on {env_id}" if several_envs else "")
            validated = validate_config(data_run, source=where).to_dict()
            _set_cadence(validated, config.checkpoints_per_run)
            runs.append(RunSpec(env_id, variant, seed, validated))
    definition = {**config.model_dump(mode="json"), "name": name}
    return Comparison(
        name=name,
        logdir=root,
        variants=list(config.variants),
        envs=list(dict.fromkeys(env for env, _ in resolved)),
        seeds=seed_list,
        runs=runs,
        definition=definition,
    )


def _validate(data: Mapping[str, Any], source: str) -> CompareConfig:
    try:
        return CompareConfig.model_validate(dict(data))
    except ValidationError as exc:
        message = _describe_error(exc, CompareConfig)
        raise ConfigError(f"{source}: {message.replace('config ', 'comparison ', 1)}") from None


def _variant_experiment(
    config: CompareConfig,
    variant: str,
    spec: str | dict[str, Any],
    base: dict[str, Any] | None,
    base_dir: Path,
    source: str,
    cli_overrides: Sequence[str],
) -> dict[str, Any]:
    """The variant's experiment mapping: its file, or the base with its overrides; then the
    comparison's common overrides and the command line's ``--set`` values."""
    where = f"{source}: variant {variant!r}"
    if isinstance(spec, str):
        data = load_config_dict(_resolve_file(spec, base_dir, source, f"variant {variant!r}"))
        spec = {}
    elif base is None:
        raise ConfigError(
            f"{source}: comparison field 'base' is required unless every variant names an "
            "experiment file"
        )
    else:
        data = copy.deepcopy(base)
        _check_managed(list(spec), where, bool(config.envs))
    for key, value in config.overrides.items():
        _set_dotted(data, key, value, f"{source}: overrides")
    for key, value in spec.items():
        _set_dotted(data, key, value, where)
    return apply_overrides(data, list(cli_overrides))


def _placed(
    experiment: dict[str, Any], env_id: str, variant: str, root: Path, set_env: bool
) -> dict[str, Any]:
    """The experiment as one cell of the grid: its env, its name (the variant, which the
    HParams dashboard shows), its run dir parent, and no per-run progress bar."""
    data = copy.deepcopy(experiment)
    if set_env:
        env = data.get("env")
        data["env"] = {**(env if isinstance(env, dict) else {}), "id": env_id}
    data["name"] = variant
    data["logdir"] = str(root / env_dirname(env_id) / variant)
    train = data.setdefault("train", {})
    if isinstance(train, dict):
        train["progress"] = "off"
    return data


def _set_cadence(config: dict[str, Any], per_run: int) -> None:
    """``train.checkpoint_every`` of a validated run config: ``⌈total_steps / per_run⌉``,
    unless the run already checkpoints at least that often."""
    if per_run <= 0:
        return
    train = config["train"]
    every = max(1, math.ceil(train["total_steps"] / per_run))
    if not 0 < train["checkpoint_every"] <= every:
        train["checkpoint_every"] = every


def _experiment_base(base: str | dict[str, Any] | None, base_dir: Path, source: str) -> dict | None:
    if base is None:
        return None
    if isinstance(base, str):
        return load_config_dict(_resolve_file(base, base_dir, source, "base"))
    return copy.deepcopy(base)


def _env_id(data: dict[str, Any]) -> str:
    env = data.get("env")
    if isinstance(env, dict) and isinstance(env.get("id"), str):
        return env["id"]
    from rlsoft.run.config import EnvConfig

    return EnvConfig.model_fields["id"].default


def load_comparison(
    path: str | Path,
    *,
    overrides: Sequence[str] = (),
    seeds: int | None = None,
    logdir: str | Path | None = None,
) -> Comparison:
    """Read a comparison file and plan it (see :func:`plan_comparison`)."""
    path = Path(path)
    data = load_config_dict(
        path, kind="comparison file", example="configs/compare_taxi_exploration.yaml"
    )
    return plan_comparison(
        data,
        source=str(path),
        base_dir=path.parent,
        overrides=overrides,
        seeds=seeds,
        logdir=logdir,
    )


# --------------------------------------------------------------------------------------------
# Preparing the logdir: finished runs, unfinished runs, TensorBoard dashboards
# --------------------------------------------------------------------------------------------


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    return flatten({k: v for k, v in config.items() if k not in ("logdir", "run_name")})


def check_finished(spec: RunSpec) -> None:
    """A finished run dir must have been made with the same config; otherwise skipping it
    would silently mix two experiments. Its ``config.yaml`` is validated by today's models
    first, so fields added since then take their defaults on both sides."""
    path = spec.run_dir / CONFIG_FILE
    try:
        old = validate_config(parse_yaml(path.read_text(encoding="utf-8"), str(path)), str(path))
    except (OSError, RlsoftError) as exc:
        raise RlsoftError(
            f"finished run dir {str(spec.run_dir)!r} has no valid {CONFIG_FILE} ({exc}); use "
            "another logdir (--logdir) or delete that run dir"
        ) from None
    difference = _config_difference(old.to_dict(), spec.config)
    if difference is not None:
        key, then, now = difference
        raise RlsoftError(
            f"finished run dir {str(spec.run_dir)!r} was made with a different config "
            f"({key} is {then!r} there and {now!r} now); use "
            "another logdir (--logdir) or delete that run dir"
        )


def _config_difference(
    old: Mapping[str, Any], new: Mapping[str, Any]
) -> tuple[str, Any, Any] | None:
    """The first key (with both values) where two run configs differ in what the run learns;
    the checkpoint cadence does not count (it only decides what a crash costs)."""
    old_flat, new_flat = _comparable(old), _comparable(new)
    for key in sorted(set(old_flat) | set(new_flat)):
        if key not in _CADENCE_KEYS and old_flat.get(key) != new_flat.get(key):
            return key, old_flat.get(key), new_flat.get(key)
    return None


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
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rlsoft.compare.report import DASHBOARD_SUFFIX
    from rlsoft.run.logger import RunLogger

    for old in run_dir.glob(f"events.out.tfevents.*{DASHBOARD_SUFFIX}"):
        old.unlink()
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
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


_POLICY_PARAMETERS = {"greedy": (), "epsilon_greedy": ("epsilon",), "boltzmann": ("temperature",)}
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


def _write_compare_file(comparison: Comparison) -> None:
    from rlsoft.compare.report import COMPARE_FILE
    from rlsoft.run.checkpoint import atomic_write_text

    meta = {
        "name": comparison.name,
        "variants": comparison.variants,
        "envs": comparison.envs,
        "seeds": comparison.seeds,
        "definition": comparison.definition,
    }
    header = (
        "# Written by rlsoft compare: the comparison this logdir holds (read by rlsoft report).\n"
    )
    atomic_write_text(
        comparison.logdir / COMPARE_FILE, header + yaml.safe_dump(meta, sort_keys=False)
    )


# --------------------------------------------------------------------------------------------
# Running one run (in a worker)
# --------------------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    """What became of one run."""

    env: str
    variant: str
    seed: int
    run_dir: str
    status: Literal["done", "failed"]
    train_seconds: float = 0.0
    """Seconds inside the training loop (the trainer's own clock, evaluations included)."""
    wall_seconds: float = 0.0
    """Seconds for the whole run in its worker (building, training, writing)."""
    final_return: float | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        return f"{env_dirname(self.env)}/{self.variant}/seed_{self.seed}"


def _import_modules(modules: Sequence[str]) -> None:
    import importlib

    for module in modules:
        importlib.import_module(module)


def _error_text(exc: BaseException) -> str:
    """One line: the message of a user error, or the type, message and raising line of a bug."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, RlsoftError) and message:
        return message
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {message}{where}" if message else f"{type(exc).__name__}{where}"


def run_one(
    config: dict[str, Any],
    modules: Sequence[str] = (),
    hparams: Mapping[str, Any] | None = None,
    resume: bool = False,
) -> RunOutcome:
    """Train one run of a grid from its config dict; never raises for a failing run.

    An unfinished run dir left by an earlier attempt is removed first — unless ``resume`` is
    set and it holds a checkpoint of the same config: then the run continues from its newest
    checkpoint through the normal resume path (``rlsoft train --resume``), and a run that had
    already finished (its worker died after ``summary.json``) is reported from its summary.
    Exceptions become a ``failed`` outcome with the error text; ``KeyboardInterrupt`` and other
    non-``Exception`` errors propagate.

    :param modules: imported first (they register the agents).
    :param hparams: the grid's shared HParams experiment (:func:`hparams_domain`); the run
        writes it instead of one built from its own hyperparameters only.
    :param resume: continue what an earlier attempt left (a retry, or a re-run of the
        comparison after it was interrupted).
    """
    started = time.perf_counter()
    run_dir = Path(config["logdir"]) / config["run_name"]
    env_id = (config.get("env") or {}).get("id", "")
    common = {
        "env": env_id,
        "variant": str(config.get("name")),
        "seed": int(config["seed"]),
        "run_dir": str(run_dir),
    }
    try:
        _import_modules(modules)
        experiment = validate_config(copy.deepcopy(config), source=str(run_dir))
        domain = None if hparams is None else dict(hparams)
        if resume and _resumable(run_dir, config):
            if (run_dir / SUMMARY_FILE).is_file():
                seconds, final = _finished_summary(run_dir)
            else:
                result = _resume(run_dir, domain)
                seconds, final = result.seconds, result.final_eval
        else:
            if run_dir.exists() and not (run_dir / SUMMARY_FILE).is_file():
                shutil.rmtree(run_dir)
            result = _train(experiment, domain)
            seconds, final = result.seconds, result.final_eval
    except Exception as exc:
        return RunOutcome(
            **common,
            status="failed",
            wall_seconds=time.perf_counter() - started,
            error=_error_text(exc),
        )
    return RunOutcome(
        **common,
        status="done",
        train_seconds=seconds,
        wall_seconds=time.perf_counter() - started,
        final_return=final.get("eval/mean_return"),
    )


def _resumable(run_dir: Path, config: Mapping[str, Any]) -> bool:
    """``run_dir`` was made by an earlier attempt at this very run and holds a checkpoint."""
    from rlsoft.run.checkpoint import latest_checkpoint

    path = run_dir / CONFIG_FILE
    if not path.is_file() or latest_checkpoint(run_dir) is None:
        return False
    try:
        old = validate_config(parse_yaml(path.read_text(encoding="utf-8"), str(path)), str(path))
    except (OSError, RlsoftError):
        return False
    return _config_difference(old.to_dict(), config) is None


def _finished_summary(run_dir: Path) -> tuple[float, dict[str, float]]:
    summary = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    return float(summary.get("seconds", 0.0)), dict(summary.get("final_eval") or {})


def _train(config: Any, hparams: dict[str, Any] | None) -> Any:
    """:func:`rlsoft.run.experiment.run_experiment`, with the grid's shared HParams experiment."""
    from rlsoft.run.experiment import run_experiment

    return run_experiment(config, hparams_domain=hparams)


def _resume(run_dir: Path, hparams: dict[str, Any] | None) -> Any:
    """:func:`rlsoft.run.experiment.resume_experiment`, with the grid's shared HParams
    experiment."""
    from rlsoft.run.experiment import resume_experiment

    return resume_experiment(run_dir, hparams_domain=hparams)


def _init_worker(modules: Sequence[str]) -> None:
    """Local worker start-up: Ctrl-C is the parent's to handle; one OpenMP thread unless
    the environment says otherwise; the trainer, the TensorBoard writer and ``modules``
    loaded once per worker, not once per run. torch is not preloaded: a grid of tabular runs
    never needs it (1-2 s per worker), and a DQN run imports it when its agent is built and
    sets its threads from ``train.torch_threads`` (default 1)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from tensorboard.summary.writer.event_file_writer import EventFileWriter  # noqa: F401

    import rlsoft.run.experiment  # noqa: F401 - preload

    _import_modules(modules)


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------


class GridInterrupted(Exception):
    """Ctrl-C stopped the grid; workers were stopped and unfinished runs left unmarked."""

    def __init__(self, finished: int, total: int) -> None:
        super().__init__(f"{finished} of {total} runs finished")
        self.finished = finished
        self.total = total


def default_workers() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _failed(spec: RunSpec, error: str) -> RunOutcome:
    return RunOutcome(spec.env, spec.variant, spec.seed, str(spec.run_dir), "failed", error=error)


def death_cause(exitcode: int | None) -> str:
    """Why a worker process ended, from its exit code (negative: the signal that killed it)."""
    if exitcode is None:
        return "worker process died"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        # SIGKILL is what the kernel's OOM killer sends (and what most schedulers send last).
        hint = ", possibly out of memory" if -exitcode == signal.SIGKILL else ""
        return f"worker process died ({name}{hint})"
    return f"worker process died (exit code {exitcode})"


def _local_worker(conn: connection.Connection, modules: Sequence[str]) -> None:
    """A local worker: runs the tasks it receives, one at a time, and sends back outcomes.

    If start-up fails (an agent module that does not import), every task it is given fails
    with that error, rather than the process dying and being retried in vain.
    """
    try:
        _init_worker(modules)
        broken = None
    except Exception as exc:
        broken = f"worker start-up failed: {_error_text(exc)}"
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the parent went away
            return
        if task is None:
            return
        if broken is not None:
            config = task[0]
            spec = RunSpec(
                str((config.get("env") or {}).get("id", "")),
                str(config.get("name")),
                int(config["seed"]),
                config,
            )
            conn.send(_failed(spec, broken))
            continue
        conn.send(run_one(*task))


@dataclass(eq=False)
class _Worker:
    """One local worker process, the pipe to it, and the run it holds (with its deaths)."""

    process: Any
    conn: connection.Connection
    task: tuple[RunSpec, int] | None = None


class _LocalPool:
    """Long-lived worker processes, each holding one run at a time.

    Unlike :class:`concurrent.futures.ProcessPoolExecutor`, whose pool breaks as a whole when
    one worker dies (failing every pending run), each worker here has its own pipe and its
    process sentinel is watched: a death is attributed to the one run that worker held, the
    worker is replaced, and the other workers never notice.
    """

    def __init__(self, size: int, modules: Sequence[str]) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._modules = tuple(modules)
        self.workers = [self._start() for _ in range(size)]

    def _start(self) -> _Worker:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_local_worker, args=(theirs, self._modules), name="rlsoft-compare-worker"
        )
        process.start()
        theirs.close()  # only the child holds its end: its death is EOF on ours
        return _Worker(process, ours)

    def replace(self, worker: _Worker, *, restart: bool = True) -> int | None:
        """Reap a dead worker and start its replacement (unless nothing is left to run);
        return the dead one's exit code."""
        worker.process.join(timeout=10)
        if worker.process.is_alive():  # its pipe broke but it lives on: make sure it ends
            worker.process.kill()
            worker.process.join()
        worker.conn.close()
        index = next(i for i, w in enumerate(self.workers) if w is worker)
        if restart:
            self.workers[index] = self._start()
        else:
            del self.workers[index]
        return worker.process.exitcode

    def close(self) -> None:
        """Ask idle workers to exit, then stop whatever is left (busy ones are terminated:
        their runs stay without ``summary.json`` and are redone next time)."""
        for worker in self.workers:
            if worker.task is None:
                with contextlib.suppress(OSError):
                    worker.conn.send(None)
            elif worker.process.is_alive():
                worker.process.terminate()
        for worker in self.workers:
            worker.process.join(timeout=10)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()


def _receive(worker: _Worker) -> RunOutcome | None:
    """The worker's outcome if it sent one (it may have died right after), else ``None``."""
    try:
        if worker.conn.poll():
            return worker.conn.recv()
    except (EOFError, OSError):
        pass
    return None


def _run_local(
    specs: Sequence[RunSpec],
    hparams: Mapping[str, Any] | None,
    workers: int,
    modules: Sequence[str],
    on_result: Callable[[RunOutcome], None],
    on_retry: Callable[[RunSpec, str, int], None],
    retries: int,
) -> list[RunOutcome]:
    outcomes: list[RunOutcome] = []
    queue: deque[tuple[RunSpec, int]] = deque((spec, 0) for spec in specs)
    pool = _LocalPool(max(1, min(workers, len(specs))), modules)

    def finish(outcome: RunOutcome) -> None:
        outcomes.append(outcome)
        on_result(outcome)

    try:
        while queue or any(w.task is not None for w in pool.workers):
            for worker in list(pool.workers):
                if worker.task is None and queue:
                    spec, deaths = worker.task = queue.popleft()
                    try:
                        # resume=True: an earlier attempt's checkpoint (a dead worker's, or
                        # an interrupted invocation's) is continued, anything else restarted.
                        worker.conn.send((spec.config, tuple(modules), hparams, True))
                    except OSError:  # it died while idle: not this run's fault
                        queue.appendleft(worker.task)
                        worker.task = None
                        pool.replace(worker)
            busy = [w for w in pool.workers if w.task is not None]
            if not busy:  # every send found a dead worker: their replacements take it next
                continue
            ready = set(
                connection.wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            )
            for worker in busy:
                if worker.conn not in ready and worker.process.sentinel not in ready:
                    continue
                spec, deaths = worker.task
                outcome = _receive(worker)
                if outcome is not None:
                    worker.task = None
                    finish(outcome)
                    continue
                worker.task = None
                retry = deaths < retries
                cause = death_cause(pool.replace(worker, restart=retry or bool(queue)))
                if retry:
                    on_retry(spec, cause, deaths + 2)
                    queue.appendleft((spec, deaths + 1))
                else:
                    finish(_failed(spec, f"{cause}; gave up after {deaths + 1} attempts"))
    finally:
        pool.close()
    return outcomes


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RlsoftError(RAY_MISSING) from None
    return ray


def _run_ray(
    specs: Sequence[RunSpec],
    hparams: Mapping[str, Any] | None,
    workers: int,
    address: str | None,
    modules: Sequence[str],
    on_result: Callable[[RunOutcome], None],
    retries: int,
) -> list[RunOutcome]:
    ray = _import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        options = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
        try:
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=workers, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
            raise RlsoftError(f"could not start or reach {where}: {_error_text(exc)}") from None
    outcomes: list[RunOutcome] = []
    # Ray re-runs a task whose worker process died (max_retries; system failures only:
    # run_one turns a run's own exceptions into outcomes, and retrying those would not help).
    # Every attempt is told to resume, so a retry continues from the newest checkpoint the
    # killed attempt left (run_comparison removed run dirs it cannot resume before the first).
    remote = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=False)(run_one)
    refs = {}
    try:
        refs = {remote.remote(spec.config, tuple(modules), hparams, True): spec for spec in specs}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # its worker died on every attempt, or Ray failed it
                    outcome = _failed(refs[ref], _ray_failure(ray, exc, retries))
                outcomes.append(outcome)
                on_result(outcome)
    except BaseException:
        for ref in refs:
            with contextlib.suppress(Exception):  # already finished, or gone
                ray.cancel(ref, force=True)
        raise
    finally:
        if started_here:
            ray.shutdown()
    return outcomes


def _ray_failure(ray: Any, exc: Exception, retries: int) -> str:
    attempts = f"gave up after {retries + 1} attempts"
    if isinstance(exc, ray.exceptions.OutOfMemoryError):
        return f"Ray's memory monitor killed the worker (out of memory); {attempts}"
    if isinstance(exc, ray.exceptions.WorkerCrashedError):
        return f"Ray worker process died (possibly out of memory); {attempts}"
    return f"Ray task failed: {_error_text(exc)}"


def run_grid(
    specs: Sequence[RunSpec],
    *,
    backend: Backend = "local",
    workers: int | None = None,
    address: str | None = None,
    modules: Sequence[str] = (),
    hparams: Mapping[str, Any] | None = None,
    on_result: Callable[[RunOutcome], None] = lambda outcome: None,
    on_retry: Callable[[RunSpec, str, int], None] = lambda spec, cause, attempt: None,
    retries: int = MAX_RETRIES,
) -> list[RunOutcome]:
    """Run ``specs`` in parallel and return their outcomes (in completion order).

    A run whose worker process dies is started again, from its newest checkpoint, up to
    ``retries`` times; only that run is affected. Then its outcome is ``failed`` with the cause
    (e.g. ``worker process died (SIGKILL, possibly out of memory)``).

    :param backend: ``local`` worker processes or ``ray`` tasks (one CPU each).
    :param workers: local processes, or the CPUs of a local Ray instance (default: cores).
    :param address: an existing Ray cluster (``ray`` backend only); the logdir must then be
        on a filesystem every node shares.
    :param modules: imported by every worker before its first run (e.g. ``agents``).
    :param hparams: the HParams experiment every run writes (see :func:`hparams_domain`).
    :param on_result: called in this process as each run finishes.
    :param on_retry: called with the run, the cause and the number of the attempt about to
        start when a local worker died (Ray retries without telling).
    :param retries: attempts after the first for a run whose worker died.
    """
    if backend not in ("local", "ray"):
        raise RlsoftError(f"unknown backend {backend!r}; choose local or ray")
    if address and backend != "ray":
        raise RlsoftError("--address names a Ray cluster; use it with --backend ray")
    workers = workers or default_workers()
    if workers < 1:
        raise RlsoftError(f"--workers must be at least 1, got {workers}")
    if retries < 0:
        raise RlsoftError(f"retries must be at least 0, got {retries}")
    if backend == "ray":
        _import_ray()  # fail before anything else if Ray is missing
    if not specs:
        return []
    if backend == "ray":
        return _run_ray(specs, hparams, workers, address, modules, on_result, retries)
    return _run_local(specs, hparams, workers, modules, on_result, on_retry, retries)


# --------------------------------------------------------------------------------------------
# The whole comparison
# --------------------------------------------------------------------------------------------


@dataclass
class CompareRun:
    """The result of :func:`run_comparison`."""

    comparison: Comparison
    outcomes: list[RunOutcome]
    already_done: list[RunSpec]
    seconds: float

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def finished_dirs(self) -> list[Path]:
        return [spec.run_dir for spec in self.comparison.runs if spec.is_done()]


class GridProgress:
    """One progress line for the whole grid (runs done / total, failures, the last result),
    drawn by :class:`rlsoft.run.progress.RunProgress` like a run's, on a terminal; without one
    (CI, pipes) only failures are printed, one line each."""

    def __init__(self, total: int, already: int, title: str, enabled: bool) -> None:
        from rlsoft.run.progress import RunProgress

        self.total, self.done, self.failures = total, already, 0
        self._already, self._started = already, time.perf_counter()
        self._display = RunProgress(total, title, enabled, completed=already)
        self._enabled = enabled

    def update(self, outcome: RunOutcome) -> None:
        self.done += 1
        if outcome.status == "failed":
            self.failures += 1
            self._print(f"run {outcome.label} failed: {outcome.error}")
        parts = [f"{self.failures} failed"] if self.failures else []
        if outcome.final_return is not None:
            parts.append(f"last {outcome.label} → {outcome.final_return:.2f}")
        rate = (self.done - self._already) / max(time.perf_counter() - self._started, 1e-9)
        self._display.update(self.done, "  ".join(parts), rate=rate)

    def retry(self, spec: RunSpec, cause: str, attempt: int, attempts: int) -> None:
        """A run's worker died; the run starts again (from its newest checkpoint)."""
        self._print(
            f"run {spec.label}: {cause}; retrying from its newest checkpoint "
            f"(attempt {attempt} of {attempts})"
        )

    def _print(self, text: str) -> None:
        if self._enabled:
            self._display.print(text)
        else:
            print(f"rlsoft: {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self._display.close()


def run_comparison(
    comparison: Comparison,
    *,
    backend: Backend = "local",
    workers: int | None = None,
    address: str | None = None,
    modules: Sequence[str] = (),
    progress: bool = False,
    retries: int = MAX_RETRIES,
) -> CompareRun:
    """Prepare the logdir, skip finished runs, redo unfinished ones and run the rest.

    A run whose worker dies is retried from its newest checkpoint (see :func:`run_grid`).

    :raises GridInterrupted: on Ctrl-C, after stopping the workers.
    """
    started = time.perf_counter()
    if address and backend != "ray":
        raise RlsoftError("--address names a Ray cluster; use it with --backend ray")
    if backend == "ray":
        _import_ray()
    done = [spec for spec in comparison.runs if spec.is_done()]
    for spec in done:
        check_finished(spec)
    todo = [spec for spec in comparison.runs if not spec.is_done()]
    comparison.logdir.mkdir(parents=True, exist_ok=True)
    _write_compare_file(comparison)
    metrics = dashboard_metrics(comparison)
    write_dashboards(comparison, metrics)
    for spec in todo:  # unfinished attempts continue from their checkpoint, if they have one
        if spec.run_dir.exists() and not _resumable(spec.run_dir, spec.config):
            shutil.rmtree(spec.run_dir)
    display = GridProgress(len(comparison.runs), len(done), comparison.name, progress)

    def on_result(outcome: RunOutcome) -> None:
        nonlocal metrics
        display.update(outcome)
        if outcome.status == "done":  # its curves join the comparison's dashboards
            metrics = add_finished_run(comparison, Path(outcome.run_dir), metrics)

    try:
        outcomes = run_grid(
            todo,
            backend=backend,
            workers=workers,
            address=address,
            modules=modules,
            hparams=hparams_domain(comparison.runs, dashboard_prefix(comparison)),
            on_result=on_result,
            on_retry=lambda spec, cause, attempt: display.retry(spec, cause, attempt, retries + 1),
            retries=retries,
        )
    except KeyboardInterrupt:
        display.close()
        finished = sum(spec.is_done() for spec in comparison.runs)
        raise GridInterrupted(finished, len(comparison.runs)) from None
    finally:
        display.close()
    return CompareRun(comparison, outcomes, done, time.perf_counter() - started)
