"""The progress bar of runs and of comparison grids (rich): shown on a terminal, silent under CI
or when piped.

One line that fits the terminal, 80 columns included::

    taxi_qlea…0-075132 ━━━━━━━━━━         12,000/100,000  85,120/s  return -120.30  0:00:01

The counter, the rate, the status (a run's recent return) and the ETA always keep their full
width; the name is shortened in its middle (a run name's head is its config and its tail its
start time) and the bar takes what is left. Only when even that does not fit is the status
cut, with an ellipsis.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable
from typing import Literal

from rich.console import Console, RenderableType
from rich.progress import Progress
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

MIN_NAME = 12
"""Columns the name keeps before the bar shrinks below :data:`MIN_BAR`."""
MIN_BAR = 10


def progress_enabled(mode: Literal["auto", "on", "off"] = "auto") -> bool:
    if mode != "auto":
        return mode == "on"
    return sys.stderr.isatty() and not os.environ.get("CI")


def format_count(n: float) -> str:
    """``12,345`` below a million, ``1.23M`` from there (the counter stays short)."""
    if n < 1_000_000:
        return f"{n:,.0f}"
    return f"{n / 1e6:.3g}M" if n < 999_500_000 else f"{n / 1e9:.3g}G"


def format_rate(rate: float) -> str:
    """Per-second rates: ``85,120`` or ``1.2M`` for steps, ``0.25`` for a grid's runs."""
    return f"{rate:.2g}" if rate < 10 else format_count(rate)


def format_duration(seconds: float | None) -> str:
    """``H:MM:SS``; ``-:--:--`` while unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-:--:--"
    minutes, secs = divmod(round(max(seconds, 0.0)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def shorten(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells, cut in the middle with ``…``."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = width // 2
    tail = width - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")


class _OneLine(Progress):
    """A rich ``Progress`` whose line is laid out to the console's width (overriding
    ``get_renderables``, rich's documented way to customise the display)."""

    def get_renderables(self) -> Iterable[RenderableType]:
        for task in self.tasks:
            yield render_line(
                name=task.description,
                completed=task.completed,
                total=task.total or 0,
                rate=task.fields.get("rate"),
                status=task.fields.get("status", ""),
                width=self.console.width,
            )


def render_line(
    *,
    name: str,
    completed: float,
    total: float,
    rate: float | None,
    status: str,
    width: int,
) -> Table:
    """One progress line in ``width`` columns: name, bar, ``done/total``, rate, status, ETA.

    The ETA is ``(total − completed) / rate`` with the caller's rate (a run's steps/s over
    its last logging window), so it follows the rate the line shows.
    """
    counter = f"{format_count(completed)}/{format_count(total)}"
    rate_text = f"{format_rate(rate)}/s" if rate is not None and rate > 0 else ""
    eta = (total - completed) / rate if rate else None
    fixed = [counter, rate_text, format_duration(eta)]
    fixed_width = sum(len(t) + 1 for t in fixed if t)  # each with its one-space separator
    room = width - fixed_width - 2  # the name's and the bar's separators
    status = " ".join(status.split())  # one line
    status_room = max(room - MIN_NAME - MIN_BAR - 1, 0)
    if status and len(status) > status_room:
        status = shorten_end(status, status_room)
    room -= len(status) + 1 if status else 0
    name_width = max(min(len(name), room - MIN_BAR), min(MIN_NAME, room // 2), 1)
    bar_width = max(room - name_width, 1)
    table = Table.grid(padding=(0, 1))
    table.add_column(width=name_width, no_wrap=True)
    table.add_column(width=bar_width, no_wrap=True)
    cells: list[RenderableType] = [
        Text(shorten(name, name_width), style="bold"),
        ProgressBar(total=total or None, completed=completed, width=bar_width),
    ]
    for text in (counter, rate_text, status, fixed[-1]):
        if text:
            table.add_column(no_wrap=True)
            cells.append(Text(text))
    table.add_row(*cells)
    return table


def shorten_end(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells, cut at its end with ``…``."""
    if len(text) <= width:
        return text
    return (text[: width - 1] + "…") if width >= 1 else ""


class RunProgress:
    """Progress of a run (steps, steps/s, recent return) or of a comparison grid (runs done,
    failures): one line fitted to the terminal, see the module docstring.

    :param total: the count at which the work is done.
    :param description: the name shown first (shortened to fit).
    :param enabled: show it at all (see :func:`progress_enabled`).
    :param completed: the count already done (a resumed run, a grid's finished runs).
    :param console: where to draw (default: a console on stderr).
    """

    def __init__(
        self,
        total: int,
        description: str,
        enabled: bool,
        *,
        completed: int = 0,
        console: Console | None = None,
    ) -> None:
        self._progress: _OneLine | None = None
        if not enabled:
            return
        self._progress = _OneLine(console=console or Console(stderr=True), transient=False)
        self._task = self._progress.add_task(
            description, total=total, completed=completed, status="", rate=None
        )
        self._progress.start()

    def update(self, completed: int, status: str = "", *, rate: float | None = None) -> None:
        """Show ``completed`` (with ``rate`` per second, which also gives the ETA) and a short
        ``status`` such as ``return -120.30``."""
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, status=status, rate=rate)

    def print(self, text: str) -> None:
        """A line above the bar (e.g. a failed run), printed as is."""
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
