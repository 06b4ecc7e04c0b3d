"""A whole comparison: prepare its logdir, skip finished runs, run the rest, keep the
dashboards current (:func:`run_comparison`).

The comparison is planned by :mod:`rlsoft.compare.plan`, its runs are run by
:mod:`rlsoft.compare.runners` and its TensorBoard dashboards written by
:mod:`rlsoft.compare.dashboards`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rlsoft.compare.dashboards import (
    add_finished_run,
    dashboard_metrics,
    dashboard_prefix,
    hparams_domain,
    write_dashboards,
)
from rlsoft.compare.plan import Comparison, RunSpec, check_finished
from rlsoft.compare.runners import (
    MAX_RETRIES,
    Backend,
    RunOutcome,
    _import_ray,
    _resumable,
    run_grid,
)
from rlsoft.errors import RlsoftError

__all__ = [
    "CompareRun",
    "GridInterrupted",
    "GridProgress",
    "run_comparison",
]


class GridInterrupted(Exception):
    """Ctrl-C stopped the grid; workers were stopped and unfinished runs left unmarked."""

    def __init__(self, finished: int, total: int) -> None:
        super().__init__(f"{finished} of {total} runs finished")
        self.finished = finished
        self.total = total


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
        """A run's worker died; the run starts again, from its newest checkpoint if it wrote
        one."""
        from rlsoft.run.checkpoint import checkpoint_step, latest_checkpoint

        checkpoint = latest_checkpoint(spec.run_dir) if spec.run_dir.is_dir() else None
        if spec.is_done():
            how = "it had finished, so its summary is reported"
        elif checkpoint is None:
            how = "starting it again (it wrote no checkpoint)"
        else:
            how = f"resuming it from its checkpoint at step {checkpoint_step(checkpoint):,}"
        self._print(f"run {spec.label}: {cause}; {how} (attempt {attempt} of {attempts})")

    def _print(self, text: str) -> None:
        if self._enabled:
            self._display.print(text)
        else:
            print(f"rlsoft: {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self._display.close()


def check_comparison(
    comparison: Comparison, *, backend: Backend = "local", address: str | None = None
) -> None:
    """Refuse, before anything is written or started, what would otherwise fail in the
    workers: an unknown backend, a finished run dir made with another config, an
    environment whose ``env.kwargs`` or ``env.wrappers`` it rejects (each distinct one is made
    and stepped once, as ``rlsoft train`` does before its run dir exists), and agent settings
    the environment's spaces rule out (an agent config's ``check_spaces``: DQN's network too
    big for MinAtar's grids, ``agent.precision: bfloat16`` where the network is not
    ``nature_cnn``, ...). The last two on the local backend only: both make the env, and a
    Ray cluster's nodes may have packages this machine lacks (there the workers report
    them).

    :raises RlsoftError: one sentence naming the variant.
    """
    if backend not in ("local", "ray"):
        raise RlsoftError(f"unknown backend {backend!r}; choose local or ray")
    if address and backend != "ray":
        raise RlsoftError("--address names a Ray cluster; use it with --backend ray")
    for spec in comparison.runs:
        if spec.is_done():
            check_finished(spec)
    if backend != "local":
        return
    _check_gpu(comparison)
    from rlsoft.rl.envs.factory import probe_spaces
    from rlsoft.run.config import EnvConfig, validate_agent_section

    spaces: dict[str, Any] = {}

    def env_spaces(env: dict[str, Any]) -> Any:
        key = yaml.safe_dump(env, sort_keys=True)
        if key not in spaces:
            spaces[key] = probe_spaces(EnvConfig.model_validate(env))
        return spaces[key]

    checked: set[str] = set()
    for spec in comparison.runs:
        env = spec.config.get("env")
        if spec.is_done() or not env:
            continue
        try:
            if env.get("kwargs") or env.get("wrappers"):
                env_spaces(env)
            # Agent settings only the environment's spaces decide (DQN's network on MinAtar's
            # grids, precision: bfloat16): once per distinct agent section and environment.
            agent = spec.config.get("agent")
            pair = yaml.safe_dump({"agent": agent, "env": env}, sort_keys=True)
            if pair in checked:
                continue
            checked.add(pair)
            agent_config = validate_agent_section(agent) if isinstance(agent, dict) else None
            check = getattr(agent_config, "check_spaces", None)
            if check is not None:
                check(lambda env=env: env_spaces(env))
        except RlsoftError as exc:
            raise RlsoftError(f"variant {spec.variant!r}: {exc}") from None


def _check_gpu(comparison: Comparison) -> None:
    """Refuse ``device: cuda`` for a torch agent's run where no GPU is visible (as ``rlsoft
    train`` does), rather than fail every such run in the workers."""
    from rlsoft.rl.agent import get_agent_spec
    from rlsoft.run.experiment import resolve_device

    for spec in comparison.runs:
        agent = spec.config.get("agent") or {}
        if spec.is_done() or spec.config.get("device") != "cuda":
            continue
        if get_agent_spec(str(agent.get("type"))).uses_torch:
            try:
                resolve_device("cuda")
            except RlsoftError as exc:
                raise RlsoftError(f"variant {spec.variant!r}: {exc}") from None
            return


def _check_free(runs: Sequence[RunSpec]) -> None:
    """Refuse a comparison one of whose unfinished run dirs another process is training:
    another ``rlsoft compare`` on the same logdir, or a worker left running by one that was
    killed (it checkpoints and exits once it sees its parent gone)."""
    from rlsoft.run.experiment import run_dir_holder

    for spec in runs:
        holder = run_dir_holder(spec.run_dir)
        if holder is not None:
            raise RlsoftError(
                f"run dir {str(spec.run_dir)!r} of this comparison is in use by {holder}, "
                "which is training it (another rlsoft compare on this logdir, or a worker of "
                "one that was stopped); wait for it to finish, or stop it, and run the "
                "comparison again"
            )


def run_comparison(
    comparison: Comparison,
    *,
    backend: Backend = "local",
    workers: int | None = None,
    address: str | None = None,
    modules: Sequence[str] = (),
    progress: bool = False,
    retries: int = MAX_RETRIES,
    on_start: Callable[[], None] | None = None,
) -> CompareRun:
    """Check the comparison (:func:`check_comparison`), prepare the logdir, skip finished
    runs, redo unfinished ones and run the rest.

    A run whose worker dies is retried from its newest checkpoint (see :func:`run_grid`).

    :param on_start: called once the checks passed and the logdir is ready, before any run
        starts (the CLI prints its header there, so a refusal comes without one).
    :raises GridInterrupted: on Ctrl-C, after stopping the workers.
    """
    from rlsoft.run.experiment import prepare_logdir, remove_run_dir

    started = time.perf_counter()
    check_comparison(comparison, backend=backend, address=address)
    if backend == "ray":
        _import_ray()
    done = [spec for spec in comparison.runs if spec.is_done()]
    todo = [spec for spec in comparison.runs if not spec.is_done()]
    _check_free(todo)
    prepare_logdir(comparison.logdir)
    if on_start is not None:
        on_start()
    _write_compare_file(comparison)
    metrics = dashboard_metrics(comparison)
    write_dashboards(comparison, metrics)
    for spec in todo:  # unfinished attempts continue from their checkpoint, if they have one
        if spec.run_dir.exists() and not _resumable(spec.run_dir, spec.config):
            remove_run_dir(spec.run_dir)
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
