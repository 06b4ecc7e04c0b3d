"""Running the runs of a grid: one run in a worker (:func:`run_one`), local worker processes
or Ray tasks (:func:`run_grid`), and retries of runs whose worker died.

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
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing import connection
from pathlib import Path
from typing import Any, Literal

from rlsoft.compare.dispatch import DispatchQueue
from rlsoft.compare.plan import RunSpec, _config_difference, env_dirname
from rlsoft.errors import RlsoftError
from rlsoft.run.checkpoint import CONFIG_FILE, SUMMARY_FILE
from rlsoft.run.config import (
    parse_yaml,
    validate_config,
)

__all__ = [
    "MAX_RETRIES",
    "RAY_MISSING",
    "RunOutcome",
    "death_cause",
    "default_workers",
    "run_grid",
    "run_one",
]

Backend = Literal["local", "ray"]
RAY_MISSING = "the ray backend needs Ray: pip install 'rlsoft[ray]'"
MAX_RETRIES = 2
"""How many times a run whose worker process died is started again (from its newest
checkpoint) before it is reported as failed."""


# --------------------------------------------------------------------------------------------
# Running one run (in a worker)
# --------------------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    """What became of one run."""

    env: str
    """The env id, or with a sweep the grid cell's name (see :class:`RunSpec`)."""
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
    resumed: bool = False
    """The run continued from an earlier attempt's checkpoint (or had already finished), so
    its ``wall_seconds`` cover only what was left."""

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
        resumed = resume and _resumable(run_dir, config)
        if resumed:
            if (run_dir / SUMMARY_FILE).is_file():
                seconds, final = _finished_summary(run_dir)
            else:
                result = _resume(run_dir, domain)
                seconds, final = result.seconds, result.final_eval
        else:
            if run_dir.exists() and not (run_dir / SUMMARY_FILE).is_file():
                from rlsoft.run.experiment import remove_run_dir

                remove_run_dir(run_dir)
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
        resumed=resumed,
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


def _stop_when_orphaned() -> None:
    """Send this worker SIGTERM once its parent (``rlsoft compare``) is gone, killed with
    SIGKILL say, which gives it no chance to stop its workers. The trainer turns SIGTERM into
    a stop with a checkpoint, which the comparison run again resumes from; an idle worker just
    ends. Without it an orphan trained on to the end of its run, and the re-run found the run
    dir in use."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        connection.wait([parent.sentinel])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="rlsoft-parent-watch", daemon=True).start()


def _init_worker(modules: Sequence[str]) -> None:
    """Local worker start-up: Ctrl-C is the parent's to handle and to announce; one OpenMP
    thread unless the environment says otherwise; the trainer, the TensorBoard writer and
    ``modules`` loaded once per worker, not once per run. torch is not preloaded: a grid of
    tabular runs never needs it (1-2 s per worker), and a DQN run imports it when its agent
    is built and sets its threads from ``train.torch_threads`` (default 1)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _stop_when_orphaned()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from tensorboard.summary.writer.event_file_writer import EventFileWriter  # noqa: F401

    import rlsoft.run.experiment  # noqa: F401 - preload
    from rlsoft.run.trainer import silence_stop_notices

    silence_stop_notices()
    _import_modules(modules)


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------


def default_workers() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _failed(spec: RunSpec, error: str) -> RunOutcome:
    return RunOutcome(spec.env, spec.variant, spec.seed, str(spec.run_dir), "failed", error=error)


def _in_cell(outcome: RunOutcome, spec: RunSpec) -> RunOutcome:
    """The outcome named by its grid cell (a swept cell's name, not only its env id)."""
    outcome.env = spec.env
    return outcome


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
    queue = DispatchQueue(specs)
    pool = _LocalPool(max(1, min(workers, len(specs))), modules)

    def finish(outcome: RunOutcome) -> None:
        outcomes.append(outcome)
        on_result(outcome)

    try:
        while queue or any(w.task is not None for w in pool.workers):
            for worker in list(pool.workers):
                if worker.task is None and queue:
                    spec, deaths = worker.task = queue.take()
                    try:
                        # resume=True: an earlier attempt's checkpoint (a dead worker's, or
                        # an interrupted invocation's) is continued, anything else restarted.
                        worker.conn.send((spec.config, tuple(modules), hparams, True))
                    except OSError:  # it died while idle: not this run's fault
                        queue.put_back(spec, deaths)
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
                    if outcome.status == "done" and not outcome.resumed:
                        queue.finished(spec, outcome.wall_seconds)
                    finish(_in_cell(outcome, spec))
                    continue
                worker.task = None
                retry = deaths < retries
                cause = death_cause(pool.replace(worker, restart=retry or bool(queue)))
                if retry:
                    on_retry(spec, cause, deaths + 2)
                    queue.put_back(spec, deaths + 1)
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
                    outcome = _in_cell(ray.get(ref), refs[ref])
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

    Local workers take the queued runs longest expected first
    (:class:`~rlsoft.compare.dispatch.DispatchQueue`), so fewer idle at the end.
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
