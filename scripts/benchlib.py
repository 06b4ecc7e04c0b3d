"""Helpers shared by the benchmark scripts (``scripts/bench_*.py``): process memory and the
machine's free memory from ``/proc`` (Linux), and a median that tolerates no values.

Not part of the library: the scripts import it as a sibling module (each puts ``scripts/``'s
parent on ``sys.path``, so ``from scripts.benchlib import ...`` works from a checkout).
"""

from __future__ import annotations

import statistics
from pathlib import Path

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


def median(values: list[float]) -> float:
    """The median, or NaN when there are no values (a row that was not measured)."""
    return statistics.median(values) if values else float("nan")
