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
tasks. rlsoft knows no concrete agent: the caller names the modules whose import registers the
agents (the CLI passes ``agents``), and every worker imports them before its first run.
"""

from __future__ import annotations

import contextlib
import copy
import multiprocessing
import os
import re
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from rlsoft.config import (
    StrictModel,
    _describe_error,
    apply_overrides,
    load_config_dict,
    parse_override,
    parse_yaml,
    validate_config,
)
from rlsoft.errors import ConfigError, RlsoftError
from rlsoft.logger import flatten
from rlsoft.training import CONFIG_FILE, SUMMARY_FILE

__all__ = [
    "CompareConfig",
    "CompareRun",
    "Comparison",
    "GridInterrupted",
    "RunOutcome",
    "RunSpec",
    "check_finished",
    "default_workers",
    "env_dirname",
    "hparams_domain",
    "load_comparison",
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


def _set_dotted(data: dict[str, Any], key: str, value: Any, where: str) -> None:
    """``data[a][b][c] = value`` for ``key = "a.b.c"``, creating sections as needed (the
    semantics of ``--set``, with the value already parsed)."""
    parts = str(key).split(".")
    if not all(parts):
        raise ConfigError(f"{where}: {key!r} is not a dotted config key such as exploration.policy")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"{where}: {key!r}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = copy.deepcopy(value)


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
            validated = validate_config(data_run, source=where)
            runs.append(RunSpec(env_id, variant, seed, validated.to_dict()))
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
    from rlsoft.config import EnvConfig

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
    old_flat, new_flat = _comparable(old.to_dict()), _comparable(spec.config)
    for key in sorted(set(old_flat) | set(new_flat)):
        if old_flat.get(key) != new_flat.get(key):
            raise RlsoftError(
                f"finished run dir {str(spec.run_dir)!r} was made with a different config "
                f"({key} is {old_flat.get(key)!r} there and {new_flat.get(key)!r} now); use "
                "another logdir (--logdir) or delete that run dir"
            )


def write_dashboards(comparison: Comparison) -> Path:
    """TensorBoard files in the logdir root (rewritten on every call).

    * a **Custom Scalars** layout with one chart per metric across every run, so every
      variant's evaluation return (and exploration entropy) shares one chart;
    * an **HParams** experiment listing the union of all runs' hyperparameters with the
      discrete values seen, and the evaluation metrics (see :func:`hparams_domain`). Each run
      writes the very same experiment next to its own session (whose ``name`` is its
      variant): TensorBoard shows whichever experiment summary it finds first, so they must
      all agree.
    """
    from rlsoft.logger import RunLogger
    from rlsoft.report import DASHBOARD_SUFFIX

    root = comparison.logdir
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob(f"events.out.tfevents.*{DASHBOARD_SUFFIX}"):  # only our own files
        old.unlink()
    logger = RunLogger(root, filename_suffix=DASHBOARD_SUFFIX)
    try:
        title = f"compare: {comparison.name}"
        logger.custom_scalars(
            {
                title: {
                    "greedy evaluation return (every variant and seed)": (
                        "Multiline",
                        ["eval/mean_return"],
                    ),
                    "exploration entropy, nats (every variant and seed)": (
                        "Multiline",
                        ["exploration/entropy"],
                    ),
                    "exploration parameter ε or τ": (
                        "Multiline",
                        ["exploration/epsilon", "exploration/temperature"],
                    ),
                    "training episodic return": ("Multiline", ["charts/episodic_return"]),
                }
            }
        )
        logger.experiment(hparams_domain(comparison.runs))
    finally:
        logger.close()
    return root


def hparams_domain(specs: Sequence[RunSpec]) -> dict[str, Any]:
    """The HParams experiment every run of the grid shares: the union of the runs' flattened
    hyperparameters (one representative value each, for its type), the discrete values seen
    for string and boolean ones (so the dashboard can filter by variant ``name``), and the
    evaluation metrics."""
    values: dict[str, list[Any]] = {}
    for spec in specs:
        for key, value in _comparable(spec.config).items():
            values.setdefault(key, []).append(value)
    discrete = {
        key: sorted(set(vals), key=str)
        for key, vals in values.items()
        if isinstance(vals[0], (str, bool)) and all(type(v) is type(vals[0]) for v in vals)
    }
    return {
        "hparams": {key: vals[0] for key, vals in values.items()},
        "discrete": discrete,
        "metrics": list(EVAL_METRICS),
    }


def _write_compare_file(comparison: Comparison) -> None:
    from rlsoft.checkpoint import atomic_write_text
    from rlsoft.report import COMPARE_FILE

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
) -> RunOutcome:
    """Train one run of a grid from its config dict; never raises for a failing run.

    An unfinished run dir left by an earlier attempt is removed first. Exceptions become a
    ``failed`` outcome with the error text; ``KeyboardInterrupt`` and other non-``Exception``
    errors propagate.

    :param modules: imported first (they register the agents).
    :param hparams: the grid's shared HParams experiment (:func:`hparams_domain`); the run
        writes it instead of one built from its own hyperparameters only.
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
        if run_dir.exists() and not (run_dir / SUMMARY_FILE).is_file():
            shutil.rmtree(run_dir)
        result = _train(experiment, hparams)
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
        train_seconds=result.seconds,
        wall_seconds=time.perf_counter() - started,
        final_return=result.final_eval.get("eval/mean_return"),
    )


def _train(config: Any, hparams: Mapping[str, Any] | None) -> Any:
    """:func:`rlsoft.experiment.run_experiment`, with the grid's shared HParams experiment."""
    from rlsoft.experiment import run_experiment

    return run_experiment(config, hparams_domain=None if hparams is None else dict(hparams))


def _init_worker(modules: Sequence[str]) -> None:
    """Local worker start-up: Ctrl-C is the parent's to handle; one OpenMP thread unless
    the environment says otherwise; the trainer, the TensorBoard writer and ``modules``
    loaded once per worker, not once per run. torch is not preloaded: a grid of tabular runs
    never needs it (1-2 s per worker), and a DQN run imports it when its agent is built and
    sets its threads from ``train.torch_threads`` (default 1)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from tensorboard.summary.writer.event_file_writer import EventFileWriter  # noqa: F401

    import rlsoft.experiment  # noqa: F401 - preload

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


def _run_local(
    specs: Sequence[RunSpec],
    hparams: Mapping[str, Any] | None,
    workers: int,
    modules: Sequence[str],
    on_result: Callable[[RunOutcome], None],
) -> list[RunOutcome]:
    outcomes: list[RunOutcome] = []
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=max(1, min(workers, len(specs))),
        mp_context=context,
        initializer=_init_worker,
        initargs=(tuple(modules),),
    )
    futures = {}
    try:
        futures = {
            pool.submit(run_one, spec.config, tuple(modules), hparams): spec for spec in specs
        }
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    outcome = future.result()
                except Exception as exc:  # the worker process died (e.g. killed, out of memory)
                    outcome = _failed(futures[future], f"worker process failed: {_error_text(exc)}")
                outcomes.append(outcome)
                on_result(outcome)
    except BaseException:
        _stop_pool(pool, futures)
        raise
    pool.shutdown(wait=True)
    return outcomes


def _stop_pool(pool: ProcessPoolExecutor, futures: Mapping[Any, Any]) -> None:
    """Cancel what has not started and terminate the workers (their current runs stay
    without ``summary.json``, so they are redone next time)."""
    for future in futures:
        future.cancel()
    terminate = getattr(pool, "terminate_workers", None)  # Python ≥ 3.14
    processes = list((getattr(pool, "_processes", None) or {}).values())
    if terminate is not None:
        terminate()
    else:
        for process in processes:
            if process.is_alive():
                process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()


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
    remote = ray.remote(num_cpus=1, max_retries=0)(run_one)
    refs = {}
    try:
        refs = {remote.remote(spec.config, tuple(modules), hparams): spec for spec in specs}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # the task's worker died, or Ray failed it
                    outcome = _failed(refs[ref], f"Ray task failed: {_error_text(exc)}")
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


def run_grid(
    specs: Sequence[RunSpec],
    *,
    backend: Backend = "local",
    workers: int | None = None,
    address: str | None = None,
    modules: Sequence[str] = (),
    hparams: Mapping[str, Any] | None = None,
    on_result: Callable[[RunOutcome], None] = lambda outcome: None,
) -> list[RunOutcome]:
    """Run ``specs`` in parallel and return their outcomes (in completion order).

    :param backend: ``local`` worker processes or ``ray`` tasks (one CPU each).
    :param workers: local processes, or the CPUs of a local Ray instance (default: cores).
    :param address: an existing Ray cluster (``ray`` backend only); the logdir must then be
        on a filesystem every node shares.
    :param modules: imported by every worker before its first run (e.g. ``agents``).
    :param hparams: the HParams experiment every run writes (see :func:`hparams_domain`).
    :param on_result: called in this process as each run finishes.
    """
    if backend not in ("local", "ray"):
        raise RlsoftError(f"unknown backend {backend!r}; choose local or ray")
    if address and backend != "ray":
        raise RlsoftError("--address names a Ray cluster; use it with --backend ray")
    workers = workers or default_workers()
    if workers < 1:
        raise RlsoftError(f"--workers must be at least 1, got {workers}")
    if backend == "ray":
        _import_ray()  # fail before anything else if Ray is missing
    if not specs:
        return []
    if backend == "ray":
        return _run_ray(specs, hparams, workers, address, modules, on_result)
    return _run_local(specs, hparams, workers, modules, on_result)


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
    drawn by :class:`rlsoft.progress.RunProgress` like a run's, on a terminal; without one
    (CI, pipes) only failures are printed, one line each."""

    def __init__(self, total: int, already: int, title: str, enabled: bool) -> None:
        from rlsoft.progress import RunProgress

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
) -> CompareRun:
    """Prepare the logdir, skip finished runs, redo unfinished ones and run the rest.

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
    write_dashboards(comparison)
    for spec in todo:  # unfinished attempts: no summary.json, so start them again
        if spec.run_dir.exists():
            shutil.rmtree(spec.run_dir)
    display = GridProgress(len(comparison.runs), len(done), comparison.name, progress)
    try:
        outcomes = run_grid(
            todo,
            backend=backend,
            workers=workers,
            address=address,
            modules=modules,
            hparams=hparams_domain(comparison.runs),
            on_result=display.update,
        )
    except KeyboardInterrupt:
        display.close()
        finished = sum(spec.is_done() for spec in comparison.runs)
        raise GridInterrupted(finished, len(comparison.runs)) from None
    finally:
        display.close()
    return CompareRun(comparison, outcomes, done, time.perf_counter() - started)
