"""The one training loop of rlsoft.

:class:`Trainer` owns the budget and the cadence: it advances a *driver* in chunks up to the
next event (a log write, an entropy sample, an evaluation, a checkpoint), so the per-step path
inside a chunk is a tight loop with no bookkeeping. A driver does the work of one kind of run:

* :class:`rlsoft.rollout.EnvDriver` steps Gymnasium environments and hands transitions to an
  RL agent (tabular or DQN, single or vectorised environments);
* supervised agents (the classification baseline) provide their own driver over a dataset.

Everything else — TensorBoard scalars, the HParams entry, the progress bar, evaluation,
atomic checkpoints, resume and the final summary — lives here once for every agent.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rlsoft.checkpoint import (
    atomic_write_text,
    latest_checkpoint,
    read_trainer_state,
    write_checkpoint,
)
from rlsoft.config import ExperimentConfig
from rlsoft.logger import RunLogger, flatten
from rlsoft.progress import RunProgress, progress_enabled

SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.yaml"


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

    def evaluate(self, step: int) -> dict[str, float]:
        """Greedy evaluation; must include ``eval/mean_return`` or ``eval/accuracy``."""

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

    @property
    def headline(self) -> float:
        return self.final_eval.get(
            "eval/mean_return", self.final_eval.get("eval/accuracy", math.nan)
        )


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every if every > 0 else math.inf  # type: ignore[return-value]


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
    ) -> None:
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
        self.console = console
        self.hparams_domain = hparams_domain
        # Everything logged at the checkpoint's own step happened before that checkpoint was
        # written (the loop checkpoints last), so only later events are stale on resume.
        self.logger = RunLogger(run_dir, purge_step=start_step + 1 if start_step else None)
        train = config.train
        self.sample_every = max(1, train.log_every // 64)

    # ----------------------------------------------------------------------------------------

    def run(self) -> RunResult:
        train = self.config.train
        total = train.total_steps
        progress = RunProgress(total, self.run_dir.name, progress_enabled(train.progress))
        progress.update(self.step, "")
        next_log = _next_multiple(self.step, train.log_every)
        next_sample = _next_multiple(self.step, self.sample_every)
        next_eval = _next_multiple(self.step, train.eval_every)
        next_ckpt = _next_multiple(self.step, train.checkpoint_every)
        window_start, window_time = self.step, time.perf_counter()
        started = time.perf_counter() - self.elapsed
        try:
            while self.step < total and not getattr(self.driver, "finished", False):
                target = min(next_log, next_sample, next_eval, next_ckpt, total)
                self.step += self.driver.advance(target - self.step, self.step)
                if self.step >= next_sample:
                    self.driver.sample(self.step)
                    next_sample = _next_multiple(self.step, self.sample_every)
                if self.step >= next_log:
                    now = time.perf_counter()
                    sps = (self.step - window_start) / max(now - window_time, 1e-9)
                    self._log_window(sps)
                    window_start, window_time = self.step, now
                    next_log = _next_multiple(self.step, train.log_every)
                    progress.update(self.step, self.driver.status(), rate=sps)
                if self.step >= next_eval and self.step < total:
                    self._evaluate()
                    next_eval = _next_multiple(self.step, train.eval_every)
                if self.step >= next_ckpt and self.step < total:
                    self.elapsed = time.perf_counter() - started
                    self._checkpoint()
                    next_ckpt = _next_multiple(self.step, train.checkpoint_every)
            self._evaluate()
            self.elapsed = time.perf_counter() - started
            self._checkpoint()
            self._write_hparams()
            result = RunResult(
                self.run_dir, self.step, self.elapsed, dict(self.last_eval), list(self.eval_history)
            )
            self._write_summary(result)
            return result
        finally:
            progress.close()
            self.logger.close()
            self.driver.close()

    # ----------------------------------------------------------------------------------------

    def _log_window(self, sps: float) -> None:
        values = self.driver.window_metrics(self.step)
        values["charts/sps"] = sps
        self.logger.scalars(values, self.step)

    def _evaluate(self) -> None:
        if self.eval_history and self.eval_history[-1][0] == self.step:
            return  # already evaluated at this step (a resumed run that had finished)
        self.logger.hand_off()  # an evaluation can take a while: show the curves so far
        result = self.driver.evaluate(self.step)
        self.last_eval = result
        headline = result.get("eval/mean_return", result.get("eval/accuracy"))
        if headline is not None:
            self.eval_history.append((self.step, float(headline)))
        self.logger.scalars(result, self.step)

    def _trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "elapsed": self.elapsed,
            "eval_history": self.eval_history,
            "last_eval": self.last_eval,
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

    def _write_summary(self, result: RunResult) -> None:
        summary = {
            "name": self.config.name,
            "agent": self.config.agent_type,
            "env": self.config.env.id if self.config.env else None,
            "seed": self.config.seed,
            "steps": result.steps,
            "seconds": round(result.seconds, 3),
            "final_eval": result.final_eval,
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
