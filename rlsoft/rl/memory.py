"""Refusing a run that cannot fit in memory, before anything large is allocated.

``agent.buffer_size: 1e12`` or ``hidden_sizes: [200000, 200000]`` used to end in a
``MemoryError`` (or the kernel's OOM killer) deep inside numpy or torch. An agent estimates
the bytes its largest allocations will take (:func:`check_fits`) and the run is refused with
one sentence when they exceed the memory the machine has available.

The available memory is Linux's ``MemAvailable`` (``/proc/meminfo``: free memory plus what
the kernel can reclaim without swapping), lowered to the remaining room of the process's
cgroup v2 limit when there is one (containers) and to the room left under its address-space
limit (``ulimit -v``, ``RLIMIT_AS``, less the process's current virtual size) when one is
set; elsewhere ``os.sysconf``'s free physical pages. When neither can be read the check is
skipped rather than guessed.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from rlsoft.errors import RlsoftError

__all__ = [
    "GIB",
    "available_memory",
    "check_fits",
    "conv_parameters",
    "format_gib",
    "mlp_parameters",
]

GIB = 1024**3


def _meminfo_available(path: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the value is in kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """``memory.max − memory.current`` of the cgroup v2 this process is in, if limited."""
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((root / "memory.current").read_text().strip()))
    except (OSError, ValueError):
        return None


def _address_space_room(status: Path = Path("/proc/self/status")) -> int | None:
    """``RLIMIT_AS − VmSize``: what ``ulimit -v`` leaves this process to map, if limited."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY:
            return None
        for line in status.read_text().splitlines():
            if line.startswith("VmSize:"):
                return max(0, limit - int(line.split()[1]) * 1024)  # the value is in kB
    except (ImportError, OSError, ValueError, IndexError):
        return None
    return None


def _sysconf_available() -> int | None:
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def available_memory() -> int | None:
    """Bytes of memory a new allocation can use now, or None when the OS does not say."""
    candidates = [_meminfo_available(), _cgroup_room(), _address_space_room()]
    known = [c for c in candidates if c is not None]
    if known:
        return min(known)
    return _sysconf_available()


def mlp_parameters(widths: Sequence[int]) -> int:
    """Weights and biases of a chain of dense layers ``widths[0] → widths[1] → …``:
    Σ_i (w_i + 1)·w_{i+1}."""
    return sum((a + 1) * b for a, b in itertools.pairwise(widths))


def conv_parameters(channels: int, layers: Sequence[tuple[int, ...]]) -> int:
    """Weights and biases of a chain of 2-D convolutions on ``channels`` input channels, each
    layer ``(filters, kernel, ...)`` with a square kernel: Σ_i (C_i·k_i² + 1)·filters_i, where
    C_i is the previous layer's filters (the input's channels for the first)."""
    total = 0
    for filters, kernel, *_ in layers:
        total += (channels * kernel * kernel + 1) * filters
        channels = filters
    return total


def format_gib(n_bytes: float) -> str:
    """``n_bytes`` in GiB: three significant digits (``0.0123``, ``1.5``), whole GiB from 100
    on (``7,450``), and ``< 0.01`` below."""
    gib = n_bytes / GIB
    if gib < 0.01:
        return "< 0.01"
    if gib >= 100:
        return f"{gib:,.0f}"
    return f"{gib:.3g}"


def check_fits(
    parts: Mapping[str, float],
    fix: str,
    *,
    available: int | None = None,
    memory: str = "memory",
) -> None:
    """Refuse (:class:`~rlsoft.errors.RlsoftError`) when the estimated ``parts`` (a name →
    bytes, e.g. ``{"replay buffer": …, "networks": …}``) add up to more than the available
    memory.

    :param fix: what to lower, e.g. ``"lower agent.buffer_size or agent.hidden_sizes"``.
    :param available: bytes available (default :func:`available_memory`); None or
        unreadable skips the check.
    :param memory: which memory, in the message (``memory``, ``GPU memory``).
    """
    limited = ""
    if available is None:
        available = available_memory()
        room = _address_space_room()
        if room is not None and room == available:
            limited = " under this process's address-space limit (ulimit -v)"
    if available is None:
        return
    total = float(sum(parts.values()))
    if total <= available:
        return
    detail = ", ".join(f"{name} {format_gib(size)} GiB" for name, size in parts.items())
    raise RlsoftError(
        f"this run needs about {format_gib(total)} GiB of {memory} ({detail}) but only "
        f"{format_gib(available)} GiB are available{limited}; {fix}"
    )
