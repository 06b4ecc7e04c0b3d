"""Atomic, durable checkpoints: a checkpoint is a directory that appears whole or not at all.

``<run>/checkpoints/step_0000050000/`` holds the agent's own file (``agent.npz`` or
``agent.pt``) and ``trainer.json`` (step counters and loop state). Both are written into a
hidden temporary directory, flushed to the disk (``fsync`` of every file and of the
directory), renamed into place with ``os.replace``, and the rename itself is made durable by an
``fsync`` of the parent directory (POSIX only persists a rename once its directory is synced).

The invariant, after a crash or a failed write at any point: the newest complete checkpoint
that existed before the write still exists (or the new one does). Rewriting the *same* step
(a resumed run that ends where it stopped) never deletes the old directory first: the old one
is renamed aside to ``.replaced_step_…``, the new one renamed into place, and only then is the
aside deleted; a crash between the two renames leaves the aside, which
:func:`list_checkpoints` treats as that step's checkpoint and the next write puts back.
Pruning renames an old checkpoint aside (``.trash_…``) before deleting it, so a crash halfway
through a deletion never leaves a half checkpoint under a ``step_`` name.

A write that fails (the disk is full, the quota is exhausted, a permission) removes its
temporary directory and raises :class:`CheckpointWriteError`, one sentence saying how to go on.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from rlsoft.errors import CheckpointError, RlsoftError

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.yaml"
"""A run dir's resolved config (what ``rlsoft train`` ran, overrides applied)."""
SUMMARY_FILE = "summary.json"
"""A finished run's summary (final evaluation, timings); absent while a run is unfinished."""
MANIFEST_FILE = "manifest.json"
"""Inside each checkpoint: every other file's size and CRC-32, so a file changed after it was
written (a flipped byte, a hand-edited ``trainer.json``) is found before it is loaded."""
_PREFIX = "step_"
_TMP = ".tmp_"
_ASIDE = ".replaced_"
_TRASH = ".trash_"
_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


class CheckpointWriteError(RlsoftError, OSError):
    """A checkpoint could not be written; the previous checkpoint is intact.

    An :class:`OSError` (it is one: the disk refused the write) and an
    :class:`~rlsoft.errors.RlsoftError` (the CLI shows its one sentence and exits with 2).
    """


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (creations, renames) durable.

    A no-op where directories cannot be opened (Windows), which has no such requirement.
    """
    if not hasattr(os, "O_DIRECTORY"):  # pragma: no cover - Windows
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Let ``write`` fill a temporary file beside ``path``, ``fsync`` it, ``os.replace`` it
    onto ``path`` and ``fsync`` the directory: after a crash ``path`` holds the old contents
    or the new, never a mix. The one atomic writer of rlsoft (run files and agent files)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write` of ``text`` in UTF-8."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """A run's ``summary.json`` as the mapping rlsoft writes (its ``final_eval`` a mapping
    too), or None: missing, unreadable, cut short or edited into something else (not the
    mark of a finished run)."""
    try:
        summary = json.loads((Path(run_dir) / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or not isinstance(summary.get("final_eval", {}), dict):
        return None
    return summary


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
    """Write a checkpoint for ``step`` atomically and durably; keep only the newest ``keep``.

    :raises CheckpointWriteError: the write failed (e.g. ``ENOSPC``); the temporary directory
        is removed and every earlier checkpoint is left as it was.
    """
    root = run_dir / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    _restore_asides(root)
    final = checkpoint_path(run_dir, step)
    tmp = root / f"{_TMP}{final.name}_{os.getpid()}"
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        save_agent(tmp / agent_file)
        with open(tmp / "trainer.json", "w", encoding="utf-8") as handle:
            # Says a manifest was written, so a deleted one is not taken for an old checkpoint.
            handle.write(json.dumps({**trainer_state, "manifest": MANIFEST_FILE}))
            handle.flush()
            os.fsync(handle.fileno())
        manifest = {
            f.relative_to(tmp).as_posix(): _fingerprint(f)
            for f in sorted(tmp.rglob("*"))
            if f.is_file()  # an agent may save a directory of files
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
        for written in tmp.iterdir():  # the agent's own file(s), whatever wrote them
            _fsync_file(written)
        fsync_dir(tmp)
        _swap_into_place(tmp, final, root)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _write_error(exc, run_dir, final) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(root, keep)
    return final


def _swap_into_place(tmp: Path, final: Path, root: Path) -> None:
    """``tmp`` becomes ``final``; an existing ``final`` (the same step written again) is moved
    aside first and deleted only once the new one is in place and that rename is durable."""
    aside = None
    if final.exists():
        aside = root / f"{_ASIDE}{final.name}"
        if aside.exists():
            shutil.rmtree(aside)
        os.replace(final, aside)
    os.replace(tmp, final)
    fsync_dir(root)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _write_error(exc: OSError, run_dir: Path, final: Path) -> CheckpointWriteError:
    if exc.errno in _NO_SPACE:
        reason = "no space left on device" if exc.errno == errno.ENOSPC else "disk quota exceeded"
        fix = "free space"
    else:
        reason = exc.strerror or str(exc)
        fix = "fix that"
    error = CheckpointWriteError(
        f"cannot write checkpoint {final.name} of {str(run_dir)!r}: {reason} (the previous "
        f"checkpoint is intact); {fix} and resume with rlsoft train --resume {run_dir}"
    )
    error.errno = exc.errno
    return error


def _is_step_name(name: str) -> bool:
    """``step_`` and digits: a checkpoint's name (a user's ``step_old`` copy is not one)."""
    digits = name.removeprefix(_PREFIX)
    return digits != name and digits.isascii() and digits.isdigit()


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary directories are ignored).

    A step whose ``step_`` directory is missing but whose ``.replaced_step_`` aside exists (a
    same-step rewrite interrupted between its two renames) is represented by the aside.
    """
    root = run_dir / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = {p.name: p for p in root.iterdir() if p.is_dir() and _is_step_name(p.name)}
    for aside in root.glob(f"{_ASIDE}{_PREFIX}*"):
        name = aside.name.removeprefix(_ASIDE)
        if aside.is_dir() and _is_step_name(name) and name not in found:
            found[name] = aside
    return [found[name] for name in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def checkpoint_step(checkpoint: Path) -> int:
    """The environment step a checkpoint of :func:`list_checkpoints` was written at."""
    return int(checkpoint.name.removeprefix(_ASIDE).removeprefix(_PREFIX))


def _fingerprint(path: Path) -> dict[str, int]:
    """Size and CRC-32 of a file (zlib's, read in 16 MiB blocks at about 2 GB/s here: a
    7 GB Atari replay adds about 3.5 s to each checkpoint and to each load, from the page
    cache)."""
    crc = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 24):
            crc = zlib.crc32(block, crc)
    return {"bytes": path.stat().st_size, "crc32": crc}


def verify_checkpoint(checkpoint: Path) -> None:
    """Check every file of ``checkpoint`` against the manifest written with it, and the step
    in ``trainer.json`` against the directory's name.

    A checkpoint written before rlsoft kept a manifest is checked for the step only (one
    written since says so in ``trainer.json``, so deleting its manifest is damage too).

    :raises CheckpointError: naming the file that changed since it was written.
    """
    where = f"checkpoint {str(checkpoint)!r}"
    manifest_path = checkpoint / MANIFEST_FILE
    try:  # a trainer.json edited into invalid JSON is named by the manifest check below
        state: Any = read_trainer_state(checkpoint)
    except (OSError, ValueError):
        if not manifest_path.exists():
            raise
        state = None
    if not manifest_path.exists() and isinstance(state, dict) and "manifest" in state:
        raise CheckpointError(f"{where} is damaged: its {MANIFEST_FILE} is missing")
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            entries = {
                str(name): (int(e["bytes"]), int(e["crc32"])) for name, e in manifest.items()
            }
        except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError):
            raise CheckpointError(
                f"{where} is damaged: its {MANIFEST_FILE} cannot be read"
            ) from None
        for name, expected in entries.items():
            path = checkpoint / name
            if not path.is_file():
                raise CheckpointError(f"{where} is damaged: {name} is missing")
            found = _fingerprint(path)
            if (found["bytes"], found["crc32"]) != expected:
                raise CheckpointError(
                    f"{where} is damaged: {name} has changed since it was written (its size "
                    "or checksum differs from the one recorded with it)"
                )
    step = state.get("step") if isinstance(state, dict) else None
    named = checkpoint.name.removeprefix(_PREFIX)
    if isinstance(step, int) and named.isdigit() and step != int(named):
        raise CheckpointError(
            f"{where} is damaged: its trainer.json says step {step:,}, but the checkpoint is "
            f"of step {int(named):,}"
        )


def read_trainer_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / "trainer.json").read_text(encoding="utf-8"))


def agent_file(checkpoint: Path) -> Path:
    """The agent's file inside a checkpoint directory."""
    files = sorted(checkpoint.glob("agent.*"))
    if not files:
        raise FileNotFoundError(f"checkpoint {checkpoint} holds no agent file")
    return files[0]


def _restore_asides(root: Path) -> None:
    """Finish what an interrupted same-step rewrite left: an aside whose step exists again is
    garbage; one whose step is missing is the step's only copy and goes back into place."""
    for aside in root.glob(f"{_ASIDE}{_PREFIX}*"):
        final = root / aside.name.removeprefix(_ASIDE)
        if final.exists():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(aside, final)
            fsync_dir(root)


def _prune(root: Path, keep: int) -> None:
    for old in sorted(p for p in root.iterdir() if p.name.startswith(_PREFIX))[:-keep]:
        # Renamed out of the step_ namespace first: a crash mid-deletion leaves only trash.
        trash = root / f"{_TRASH}{old.name}_{os.getpid()}"
        try:
            os.replace(old, trash)
        except OSError:
            continue
        shutil.rmtree(trash, ignore_errors=True)
    for stale in root.glob(f"{_TMP}*"):  # left by a crashed writer
        if not stale.name.endswith(f"_{os.getpid()}"):
            shutil.rmtree(stale, ignore_errors=True)
    for trash in root.glob(f"{_TRASH}*"):  # a deletion cut short
        shutil.rmtree(trash, ignore_errors=True)
