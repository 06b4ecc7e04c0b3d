"""A rich progress bar for runs: shown on a terminal, silent under CI or when piped."""

from __future__ import annotations

import os
import sys
from typing import Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def progress_enabled(mode: Literal["auto", "on", "off"] = "auto") -> bool:
    if mode != "auto":
        return mode == "on"
    return sys.stderr.isatty() and not os.environ.get("CI")


class RunProgress:
    """Steps done, steps per second and the recent episodic return (or any status text)."""

    def __init__(self, total: int, description: str, enabled: bool) -> None:
        self._progress = None
        if not enabled:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task(description, total=total, status="")
        self._progress.start()

    def update(self, completed: int, status: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, status=status)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
