"""Helpers shared by the benchmark scripts (``scripts/bench_*.py``): process memory and the
machine's free memory from ``/proc`` (Linux), a median that tolerates no values, and the
mapping of rlsoft's DQN settings onto Stable-Baselines3's.

Not part of the library: the scripts import it as a sibling module (each puts ``scripts/``'s
parent on ``sys.path``, so ``from scripts.benchlib import ...`` works from a checkout).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

GB = 1e9


def rss_bytes() -> int:
    """The resident set size of this process (``VmRSS`` in ``/proc/self/status``): the pages
    of its memory actually in RAM. numpy allocates large arrays lazily, so an array counts
    only the pages that have been written."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS line in /proc/self/status")


def available_bytes() -> int:
    """Memory the kernel could give a new process without swapping (``MemAvailable`` in
    ``/proc/meminfo``): what ``free`` prints as *available*."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable line in /proc/meminfo")


def sb3_dqn_hyperparameters(agent: Any) -> dict[str, Any]:
    """SB3 ``DQN`` keyword arguments for the settings an rlsoft DQN agent config (its
    validated model) shares with SB3 under other names: step size, replay, batch, cadence of
    updates and target copies, γ, n-step and gradient clipping (SB3 always clips: an infinite
    norm makes the clip factor exactly 1, i.e. no clipping, as ``max_grad_norm: null``)."""
    return {
        "learning_rate": float(agent.lr),
        "buffer_size": agent.buffer_size,
        "learning_starts": agent.learning_starts,
        "batch_size": agent.batch_size,
        "tau": agent.tau,
        "gamma": agent.gamma,
        "train_freq": agent.train_freq,
        "gradient_steps": agent.gradient_steps,
        "n_steps": agent.n_step,
        "target_update_interval": agent.target_update_interval,
        "max_grad_norm": math.inf if agent.max_grad_norm is None else agent.max_grad_norm,
    }


def median(values: list[float]) -> float:
    """The median, or NaN when there are no values (a row that was not measured)."""
    return statistics.median(values) if values else float("nan")
