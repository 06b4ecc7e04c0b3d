"""Atomic checkpoints: a checkpoint is a directory that appears whole or not at all.

``<run>/checkpoints/step_0000050000/`` holds the agent's own file (``agent.npz`` or
``agent.pt``) and ``trainer.json`` (step counters and loop state). Both are written into a
hidden temporary directory that is then renamed with ``os.replace``, so a crash mid-write never
leaves a half checkpoint that could be resumed from.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHECKPOINT_DIR = "checkpoints"
_PREFIX = "step_"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINT_DIR / f"{_PREFIX}{step:010d}"


def write_checkpoint(
    run_dir: Path,
    step: int,
    save_agent: Callable[[Path], None],
    agent_file: str,
    trainer_state: dict[str, Any],
    keep: int = 3,
) -> Path:
    """Write a checkpoint for ``step`` atomically and keep only the newest ``keep``."""
    root = run_dir / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = checkpoint_path(run_dir, step)
    tmp = root / f".tmp_{final.name}_{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_agent(tmp / agent_file)
    (tmp / "trainer.json").write_text(json.dumps(trainer_state), encoding="utf-8")
    if final.exists():  # the same step written again (a resumed run that ended there)
        shutil.rmtree(final)
    os.replace(tmp, final)
    _prune(root, keep)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary directories are ignored)."""
    root = run_dir / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def read_trainer_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / "trainer.json").read_text(encoding="utf-8"))


def agent_file(checkpoint: Path) -> Path:
    """The agent's file inside a checkpoint directory."""
    files = sorted(checkpoint.glob("agent.*"))
    if not files:
        raise FileNotFoundError(f"checkpoint {checkpoint} holds no agent file")
    return files[0]


def _prune(root: Path, keep: int) -> None:
    for old in sorted(p for p in root.iterdir() if p.name.startswith(_PREFIX))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp_*"):  # left by a crashed writer
        if not stale.name.endswith(f"_{os.getpid()}"):
            shutil.rmtree(stale, ignore_errors=True)
