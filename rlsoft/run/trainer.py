"""The one training loop of rlsoft.

:class:`Trainer` owns the budget and the cadence: it advances a *driver* in chunks up to the
next event (a log write, an entropy sample, an evaluation, a checkpoint), so the per-step path
inside a chunk is a tight loop with no bookkeeping. A driver does the work of one kind of run:

* :class:`rlsoft.rl.collector.EnvDriver` steps Gymnasium environments and hands transitions to an
  RL agent (tabular or DQN, single or vectorised environments);
* supervised agents (the classification baseline) provide their own driver over a dataset.

Everything else — TensorBoard scalars, the HParams entry, the progress bar, evaluation,
atomic checkpoints, resume, a graceful stop on Ctrl-C and the final summary — lives here once
for every agent.

Exact resume: everything that decides what happens next is in the checkpoint (the agent's
file and the driver's loop state), the trainer's own events are computed from the step alone,
and a driver's ``advance(n)`` followed by ``advance(m)`` does what ``advance(n + m)`` does.
So a run stopped at any step (at the end of its budget, by Ctrl-C, or killed after a
checkpoint) and resumed ends bit-identical to a run that never stopped.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rlsoft.errors import DivergedError
from rlsoft.rl.evaluation import EvaluationStopped
from rlsoft.run.checkpoint import (
    SUMMARY_FILE,
    atomic_write_text,
    latest_checkpoint,
    read_trainer_state,
    write_checkpoint,
)
from rlsoft.run.config import ExperimentConfig
from rlsoft.run.logger import RunLogger, flatten
from rlsoft.run.progress import RunProgress, progress_enabled

PID_FILE = ".rlsoft-pid"
"""Inside a run dir while a process trains it: that process's id, for the message a second
process gets (removed when the training ends)."""

DIVERGED_FILE = "diverged.json"
"""Written into a run dir whose training stopped on non-finite values: the step, the error
and the settings to change."""
MAX_CHUNK = 256
"""The most steps between two checks for a stop request (so Ctrl-C is answered quickly)."""
STOP_SIGNALS = ("SIGINT", "SIGTERM")

_announce_stops = True


def silence_stop_notices() -> None:
    """Stop printing the line a stop signal gets: for a ``rlsoft compare`` worker, whose
    parent sends every worker SIGTERM on Ctrl-C and says itself what was interrupted (one
    line per worker would repeat it)."""
    global _announce_stops
    _announce_stops = False


class RunInterrupted(KeyboardInterrupt):
    """A stop was requested (Ctrl-C, SIGTERM or :meth:`Trainer.request_stop`); the trainer
    finished the step in progress and wrote a checkpoint at ``step`` before raising this.

    A ``KeyboardInterrupt``, so code that already handles Ctrl-C handles it too.
    """

    def __init__(self, run_dir: Path, step: int, total: int) -> None:
        super().__init__(run_dir, step, total)
        self.run_dir = Path(run_dir)
        self.step = int(step)
        self.total = int(total)

    @property
    def resume_command(self) -> str:
        return f"rlsoft train --resume {shlex.quote(str(self.run_dir))}"

    def __str__(self) -> str:
        where = (
            f"during the final evaluation at step {self.step:,}"
            if self.step >= self.total
            else f"at step {self.step:,} of {self.total:,}"
        )
        return f"stopped {where} with a checkpoint; continue with: {self.resume_command}"


class Driver(Protocol):
    """What the trainer drives. ``step`` counts environment steps (RL) or epochs."""

    unit: str
    """What a step is, for messages: ``"steps"`` or ``"epochs"``."""
    # Optional: a driver may also expose ``finished: bool``; once it is True (e.g. early
    # stopping) the trainer ends the run before the budget, with the usual final evaluation.
    agent_file: str
    """File name of the agent inside a checkpoint (e.g. ``agent.npz``)."""

    def advance(self, budget: int, step: int) -> int:
        """Do up to ``budget`` steps starting at global ``step``; return how many were done
        (at least one; vectorised drivers may overshoot by less than one batch)."""

    def sample(self, step: int) -> None:
        """Record the current state for the window's policy-entropy estimate."""

    def window_metrics(self, step: int) -> dict[str, float]:
        """Scalars for the window since the last call (episodic return, losses, …)."""

    def status(self) -> str:
        """A short text for the progress bar (e.g. the recent mean return)."""

    def evaluate(self, step: int, stop: threading.Event | None = None) -> dict[str, float]:
        """Evaluation (greedy, or ε-greedy with ``train.eval_epsilon``); must include
        ``eval/mean_return`` or ``eval/accuracy``. A long one checks ``stop`` as it goes and
        raises :class:`~rlsoft.rl.evaluation.EvaluationStopped` once it is set."""

    def save_agent(self, path: Path) -> None: ...

    def load_agent(self, path: Path) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable loop state (environment, RNG, episode counters) for resume."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


@dataclass
class RunResult:
    run_dir: Path
    steps: int
    seconds: float
    final_eval: dict[str, float]
    eval_history: list[tuple[int, float]] = field(default_factory=list)
    eval_seconds: float = 0.0
    """Of ``seconds``, the time spent in evaluations (resumed runs: over every attempt, except
    that a checkpoint written before rlsoft recorded it counts as none)."""
    eval_epsilon: float | None = None
    """The ε of the evaluation in ``final_eval`` (0: greedy): a resume that changes only
    ``train.eval_epsilon`` keeps the evaluation made before it. None: a checkpoint written
    before rlsoft recorded it."""

    @property
    def headline(self) -> float:
        return self.final_eval.get(
            "eval/mean_return", self.final_eval.get("eval/accuracy", math.nan)
        )


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every if every > 0 else math.inf  # type: ignore[return-value]


_blas_lock = threading.Lock()
_blas_runs = 0
_blas_limiter: Any = None


@contextlib.contextmanager
def blas_threads_at_most(threads: int) -> Iterator[None]:
    """numpy's BLAS threads lowered to ``threads`` (never raised) while the block runs.

    By default OpenBLAS starts a thread per core for a product of four or more rows (the
    numpy forward pass of MinAtar's network acting for ``env.num_envs >= 4``), and those
    threads spinning against torch's made such runs 3.3 times slower with two of them on
    2 cores (2026-12-07). Each BLAS library loaded (numpy's and scipy's may be two OpenBLAS
    builds) is lowered on its own, and only one running more threads. The setting is
    process-wide, so runs overlapping in threads share it: the first to start sets it
    (threadpoolctl), the last to end gives the caller's back.
    """
    global _blas_runs, _blas_limiter
    with _blas_lock:
        if _blas_runs == 0:
            from threadpoolctl import ThreadpoolController

            blas = ThreadpoolController().select(user_api="blas")
            above = [lib.filepath for lib in blas.lib_controllers if lib.num_threads > threads]
            _blas_limiter = blas.select(filepath=above).limit(limits=threads) if above else None
        _blas_runs += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_runs -= 1
            if _blas_runs == 0 and _blas_limiter is not None:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


class Trainer:
    """Runs a driver to ``config.train.total_steps`` with logging, evaluation and checkpoints."""

    def __init__(
        self,
        driver: Driver,
        config: ExperimentConfig,
        run_dir: Path,
        *,
        start_step: int = 0,
        trainer_state: dict[str, Any] | None = None,
        console: Any = None,
        hparams_domain: dict[str, Any] | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        """:param stop_event: setting it (from any thread) stops the run gracefully, as
        :meth:`request_stop` does; by default the trainer makes its own."""
        self.driver = driver
        self.config = config
        self.run_dir = run_dir
        self.step = start_step
        state = trainer_state or {}
        self.eval_history: list[tuple[int, float]] = [
            tuple(x) for x in state.get("eval_history", [])
        ]
        self.last_eval: dict[str, float] = state.get("last_eval", {})
        self.elapsed = float(state.get("elapsed", 0.0))
        self.eval_seconds = float(state.get("eval_seconds", 0.0))
        self.last_eval_epsilon: float | None = state.get("last_eval_epsilon")
        self.eval_pending = bool(state.get("eval_pending", False))
        """The evaluation at ``step`` was stopped part way: a resume does it first."""
        self.console = console
        self.hparams_domain = hparams_domain
        # Everything logged at the checkpoint's own step happened before that checkpoint was
        # written (the loop checkpoints last), so only later events are stale on resume.
        self.logger = RunLogger(run_dir, purge_step=start_step + 1 if start_step else None)
        train = config.train
        self.sample_every = max(1, train.log_every // 64)
        self.stop_event = stop_event or threading.Event()
        self._signals_seen = 0
        self._stop_signal: int | None = None

    def request_stop(self) -> None:
        """Stop after the steps in progress (at most :data:`MAX_CHUNK`), write a checkpoint
        and raise :class:`RunInterrupted` from :meth:`run`. Safe from any thread."""
        self.stop_event.set()

    # ---------------------------------------------------------------------------- signals

    def _on_signal(self, signum: int, frame: Any) -> None:
        """First SIGINT/SIGTERM: a graceful stop. Second: abort at once."""
        del frame
        self._signals_seen += 1
        if self._signals_seen > 1:
            raise KeyboardInterrupt
        self._stop_signal = signum
        self.request_stop()
        if not _announce_stops:
            return
        name = signal.Signals(signum).name
        print(
            f"rlsoft: {name} received: finishing the current step and writing a checkpoint "
            "(press Ctrl-C again to abort at once)",
            file=sys.stderr,
            flush=True,
        )

    def _install_signal_handlers(self) -> dict[int, Any]:
        """Handle SIGINT and SIGTERM while running, in the main thread only (Python delivers
        signals there). A signal the process ignores stays ignored: a ``rlsoft compare``
        worker ignores SIGINT (the parent handles Ctrl-C and then terminates it, which the
        SIGTERM handler turns into a graceful stop with a checkpoint; see :meth:`run` for
        what happens next)."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for name in STOP_SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None or signal.getsignal(signum) == signal.SIG_IGN:
                continue
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    # ----------------------------------------------------------------------------------------

    def run(self) -> RunResult:
        """Train to ``train.total_steps`` (or until the driver finishes early).

        A stop caused by a signal ends the way that signal would have ended the process
        had the trainer not caught it, only once the run is safe on disk: where its handler
        before the run was the default action (SIGTERM in a plain process, such as a
        ``rlsoft compare`` worker) the signal is raised again and terminates the process;
        otherwise (Python's SIGINT handler, the CLI's handlers) :class:`RunInterrupted` is
        raised. An evaluation in progress stops within a step of the request, the final one
        included; the checkpoint marks it pending, and the resumed run does it first (it
        depends on the step only, so the result is the one the continuous run gets).

        :raises RunInterrupted: after a stop request, once the checkpoint is written.
        """
        previous = self._install_signal_handlers()
        try:
            with blas_threads_at_most(self.config.train.torch_threads):
                result = self._run()
        except RunInterrupted:
            self._pass_on_signal(previous)
            raise
        finally:
            self._restore_signal_handlers(previous)
        self._pass_on_signal(previous)
        return result

    def _pass_on_signal(self, previous: dict[int, Any]) -> None:
        """Raise the stop signal again if its handler before the run was the default one."""
        signum = self._stop_signal
        if signum is not None and previous.get(signum, False) in (signal.SIG_DFL, None):
            self._restore_signal_handlers(previous)
            sys.stderr.flush()
            # Terminating skips the run dir holder's cleanup, so leave no pid behind here.
            (self.run_dir / PID_FILE).unlink(missing_ok=True)
            signal.raise_signal(signum)  # the default action: terminate

    def _run(self) -> RunResult:
        train = self.config.train
        total = train.total_steps
        progress = RunProgress(total, self.run_dir.name, progress_enabled(train.progress))
        progress.update(self.step, "")
        next_log = _next_multiple(self.step, train.log_every)
        next_sample = _next_multiple(self.step, self.sample_every)
        next_eval = _next_multiple(self.step, train.eval_every)
        next_ckpt = _next_multiple(self.step, train.checkpoint_every)
        # charts/sps counts the time spent in the driver's steps only, not evaluations,
        # checkpoints or logging between them.
        window_start, window_seconds = self.step, 0.0
        # The bar moves with every chunk of steps, between log windows too (the Atari configs
        # log every 10,000 steps, a minute or more); its text and rate change at each window.
        status, rate = "", None
        started = time.perf_counter() - self.elapsed
        stop = self.stop_event
        try:
            if self.eval_pending and self.step < total:
                self._evaluate()  # the one a stop cut short before the checkpoint
            while self.step < total and not getattr(self.driver, "finished", False):
                if stop.is_set():
                    self.elapsed = time.perf_counter() - started
                    self._checkpoint()
                    raise RunInterrupted(self.run_dir, self.step, total)
                target = min(next_log, next_sample, next_eval, next_ckpt, total)
                target = min(target, self.step + MAX_CHUNK)
                tick = time.perf_counter()
                self.step += self.driver.advance(target - self.step, self.step)
                window_seconds += time.perf_counter() - tick
                if rate is None and window_seconds >= 1.0:  # a first rate for the ETA
                    rate = (self.step - window_start) / window_seconds
                progress.update(self.step, status, rate=rate)
                if self.step >= next_sample:
                    self.driver.sample(self.step)
                    next_sample = _next_multiple(self.step, self.sample_every)
                if self.step >= next_log:
                    sps = (self.step - window_start) / max(window_seconds, 1e-9)
                    self._log_window(sps)
                    window_start, window_seconds = self.step, 0.0
                    next_log = _next_multiple(self.step, train.log_every)
                    status, rate = self.driver.status(), sps
                    progress.update(self.step, status, rate=rate)
                if self.step >= next_eval and self.step < total:
                    next_eval = _next_multiple(self.step, train.eval_every)
                    if not self._evaluate():
                        continue  # stopped part way: the loop's next check checkpoints
                if self.step >= next_ckpt and self.step < total:
                    self.elapsed = time.perf_counter() - started
                    self._checkpoint()
                    next_ckpt = _next_multiple(self.step, train.checkpoint_every)
            evaluated = self._evaluate()
            self.elapsed = time.perf_counter() - started
            self._checkpoint()
            if not evaluated:
                raise RunInterrupted(self.run_dir, self.step, total)
            self._write_hparams()
            result = RunResult(
                self.run_dir,
                self.step,
                self.elapsed,
                dict(self.last_eval),
                list(self.eval_history),
                self.eval_seconds,
                self.last_eval_epsilon,
            )
            self._write_summary(result)
            return result
        except DivergedError as exc:
            self._record_divergence(exc)
            raise
        finally:
            progress.close()
            self.logger.close()
            self.driver.close()

    # ----------------------------------------------------------------------------------------

    def _log_window(self, sps: float) -> None:
        values = self.driver.window_metrics(self.step)
        values["charts/sps"] = sps
        self.logger.scalars(values, self.step)

    def _evaluate(self) -> bool:
        """Evaluate at the current step and log it; False when a stop request cut the
        evaluation short (nothing is logged, and the checkpoint records it as pending)."""
        if self.eval_history and self.eval_history[-1][0] == self.step:
            return True  # already evaluated at this step (a resumed run that had finished)
        self.logger.hand_off()  # an evaluation can take a while: show the curves so far
        tick = time.perf_counter()
        try:
            result = self._driver_evaluate()
        except EvaluationStopped:
            self.eval_pending = True
            self.eval_seconds += time.perf_counter() - tick  # spent evaluating, not training
            return False
        self.eval_pending = False
        seconds = time.perf_counter() - tick
        self.eval_seconds += seconds
        self.last_eval = result
        self.last_eval_epsilon = float(self.config.train.eval_epsilon)
        headline = result.get("eval/mean_return", result.get("eval/accuracy"))
        if headline is not None:
            self.eval_history.append((self.step, float(headline)))
        self.logger.scalars({**result, "charts/eval_seconds": seconds}, self.step)
        return True

    def _driver_evaluate(self) -> dict[str, float]:
        """The driver's evaluation, stoppable where the driver takes ``stop`` (a driver
        written before it could be stopped runs to its end)."""
        parameters = inspect.signature(self.driver.evaluate).parameters.values()
        if any(p.name == "stop" or p.kind is p.VAR_KEYWORD for p in parameters):
            return self.driver.evaluate(self.step, stop=self.stop_event)
        return self.driver.evaluate(self.step)

    def _trainer_state(self) -> dict[str, Any]:
        return {
            # What the run learns from, to find a config.yaml edited by hand before a resume.
            "config": self.config.to_dict(),
            "eval_pending": self.eval_pending,
            "step": self.step,
            "elapsed": self.elapsed,
            "eval_seconds": self.eval_seconds,
            "eval_history": self.eval_history,
            "last_eval": self.last_eval,
            "last_eval_epsilon": self.last_eval_epsilon,
            "driver": self.driver.state_dict(),
        }

    def _checkpoint(self) -> None:
        # Events up to this step reach the disk before the checkpoint that claims them exists,
        # so a run killed right after a checkpoint resumes with no missing points.
        self.logger.flush()
        write_checkpoint(
            self.run_dir,
            self.step,
            self.driver.save_agent,
            self.driver.agent_file,
            self._trainer_state(),
            keep=self.config.train.keep_checkpoints,
        )

    def _write_hparams(self) -> None:
        config = self.config.to_dict()
        hparams = flatten({k: v for k, v in config.items() if k not in ("logdir", "run_name")})
        metrics = {k: v for k, v in self.last_eval.items() if isinstance(v, (int, float))}
        self.logger.hparams(hparams, metrics, domain=self.hparams_domain)

    def _record_divergence(self, exc: DivergedError) -> None:
        """Write :data:`DIVERGED_FILE`: the run stopped for good, and later commands (``rlsoft
        eval``, ``--resume``) can say so rather than wait for a checkpoint that never comes."""
        agent = self.config.agent_config()
        fields = type(agent).model_fields
        fixes = [
            f"a lower agent.{name} (it was {getattr(agent, name):g})"
            for name in ("lr", "learning_rate")
            if name in fields and isinstance(getattr(agent, name), (int, float))
        ]
        clip = getattr(agent, "max_grad_norm", None)
        if "max_grad_norm" in fields:
            fixes.append(
                "with agent.max_grad_norm set (gradient clipping)"
                if clip is None
                else f"a lower agent.max_grad_norm (it was {clip:g})"
            )
        record = {
            "step": self.step,
            "message": " ".join(str(exc).split()),
            "fix": " or ".join(fixes) or "a lower learning rate",
        }
        atomic_write_text(self.run_dir / DIVERGED_FILE, json.dumps(record, indent=2))

    def _write_summary(self, result: RunResult) -> None:
        summary = {
            "name": self.config.name,
            "agent": self.config.agent_type,
            "env": self.config.env.id if self.config.env else None,
            "seed": self.config.seed,
            "steps": result.steps,
            "seconds": round(result.seconds, 3),
            "eval_seconds": round(result.eval_seconds, 3),
            "final_eval": result.final_eval,
            "final_eval_epsilon": result.eval_epsilon,
            "eval_history": result.eval_history,
        }
        atomic_write_text(self.run_dir / SUMMARY_FILE, json.dumps(summary, indent=2))


def resume_state(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The newest complete checkpoint of ``run_dir`` and its trainer state."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        from rlsoft.errors import RlsoftError

        raise RlsoftError(
            f"run dir {str(run_dir)!r} has no complete checkpoint to resume from; "
            "start a new run with rlsoft train CONFIG"
        )
    return checkpoint, read_trainer_state(checkpoint)
