"""Checkpoints survive crashes and full disks: a valid checkpoint exists after a failure at any
point of a write, renames are made durable, and a full disk ends a run with one sentence."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from rlsoft.run.checkpoint import (
    CheckpointWriteError,
    agent_file,
    latest_checkpoint,
    list_checkpoints,
    read_trainer_state,
    write_checkpoint,
)


def saver(tag: str):
    """An agent save that writes ``tag`` (the trainer state carries the same tag, so a mixed
    checkpoint — agent of one write, trainer state of another — is detectable)."""

    def save(path: Path) -> None:
        path.write_text(tag, encoding="utf-8")

    return save


def write(run_dir: Path, step: int, tag: str, keep: int = 3) -> Path:
    return write_checkpoint(
        run_dir, step, saver(tag), "agent.txt", {"step": step, "tag": tag}, keep
    )


def content(checkpoint: Path) -> tuple[int, str]:
    """``(step, tag)`` of a checkpoint, asserting that it is complete and consistent."""
    state = read_trainer_state(checkpoint)
    tag = agent_file(checkpoint).read_text(encoding="utf-8")
    assert state["tag"] == tag, f"{checkpoint} mixes two writes"
    return state["step"], tag


def hidden(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith("."))


class Crash(BaseException):
    """The process dying at this point (not an ``Exception``: nothing may catch it)."""


def crash_on_call(monkeypatch, name: str, n: int) -> list[int]:
    """Make the ``n``-th call of ``os.<name>`` (from now on) raise :class:`Crash`."""
    real = getattr(os, name)
    calls = [0]

    def patched(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            raise Crash
        return real(*args, **kwargs)

    monkeypatch.setattr(os, name, patched)
    return calls


# --------------------------------------------------------------------------------------------


def test_same_step_rewrite_keeps_the_old_checkpoint_until_the_new_one_is_in_place(
    tmp_path, monkeypatch
):
    write(tmp_path, 100, "old")
    # The rename of the new directory into place fails (the second os.replace: the first moves
    # the old one aside). Before the fix the old directory had been deleted already.
    real = os.replace
    calls = []

    def failing(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if Path(src).name.startswith(".tmp_"):
            raise OSError(errno.EIO, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(CheckpointWriteError, match="Input/output error"):
        write(tmp_path, 100, "new")
    monkeypatch.setattr(os, "replace", real)
    assert content(latest_checkpoint(tmp_path)) == (100, "old")
    # The next write puts the aside back or replaces it; nothing hidden is left over.
    write(tmp_path, 100, "newer")
    assert [content(c) for c in list_checkpoints(tmp_path)] == [(100, "newer")]
    assert hidden(tmp_path) == []


@pytest.mark.parametrize("function", ["replace", "fsync", "mkdir", "open"])
@pytest.mark.parametrize("n", range(1, 9))
def test_a_crash_at_any_point_of_a_write_leaves_a_valid_checkpoint(
    tmp_path, monkeypatch, function, n
):
    write(tmp_path, 100, "a")
    write(tmp_path, 200, "b", keep=2)
    crash_on_call(monkeypatch, function, n)  # Path.mkdir goes through os.mkdir
    crashed = False
    try:  # a new step, then the same step again (a resumed run ending where it stopped)
        write(tmp_path, 300, "c", keep=2)
        write(tmp_path, 300, "d", keep=2)
    except Crash:
        crashed = True
    monkeypatch.undo()
    found = [content(c) for c in list_checkpoints(tmp_path)]
    assert found, "no checkpoint left"
    newest = found[-1]
    assert newest in {(200, "b"), (300, "c"), (300, "d")}
    if not crashed:
        assert newest == (300, "d")
    # Whatever the crash left, the next write of the run works and cleans up after it.
    write(tmp_path, 400, "e", keep=2)
    assert [content(c) for c in list_checkpoints(tmp_path)][-1] == (400, "e")
    assert hidden(tmp_path) == []


def test_files_and_the_rename_are_made_durable(tmp_path, monkeypatch):
    """fsync of both files, of the new directory, and of checkpoints/ after the rename (a
    rename is only durable once its directory is synced)."""
    write(tmp_path, 100, "old")
    opened: dict[int, str] = {}
    events: list[tuple[str, str]] = []
    real_open, real_fsync, real_replace = os.open, os.fsync, os.replace

    def rec_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        opened[fd] = str(path)
        return fd

    def rec_fsync(fd):
        name = opened.get(fd)
        if name is None:  # a Python file object's descriptor
            name = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self") else "?"
        events.append(("fsync", name))
        return real_fsync(fd)

    def rec_replace(src, dst):
        events.append(("replace", str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "open", rec_open)
    monkeypatch.setattr(os, "fsync", rec_fsync)
    monkeypatch.setattr(os, "replace", rec_replace)
    final = write(tmp_path, 100, "new")
    monkeypatch.undo()
    root = str(tmp_path / "checkpoints")
    synced = [name for kind, name in events if kind == "fsync"]
    assert any(name.endswith("agent.txt") for name in synced)
    assert any(name.endswith("trainer.json") for name in synced)
    into_place = events.index(("replace", str(final)))
    assert ("fsync", root) in events[into_place:], "the rename into place was never synced"
    assert content(final) == (100, "new")


def test_disk_full_keeps_the_previous_checkpoint_and_says_how_to_go_on(tmp_path):
    write(tmp_path, 100, "good")

    def full_disk(path: Path) -> None:
        path.write_bytes(b"part")  # a partial file, as a real full disk leaves
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(CheckpointWriteError) as caught:
        write_checkpoint(tmp_path, 200, full_disk, "agent.txt", {"step": 200, "tag": "x"})
    message = str(caught.value)
    assert "no space left on device" in message
    assert f"free space and resume with rlsoft train --resume {tmp_path}" in message
    assert "\n" not in message
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, OSError)
    assert [content(c) for c in list_checkpoints(tmp_path)] == [(100, "good")]
    assert hidden(tmp_path) == [], "the temporary directory was left behind"


def test_pruning_keeps_the_newest(tmp_path):
    for step in (1, 2, 3, 4, 5):
        write(tmp_path, step, f"t{step}", keep=2)
    assert [content(c) for c in list_checkpoints(tmp_path)] == [(4, "t4"), (5, "t5")]
    assert hidden(tmp_path) == []


# --------------------------------------------------------------------------------------------
# Through the command line: a full disk during rlsoft train
# --------------------------------------------------------------------------------------------


def test_rlsoft_train_on_a_full_disk_stops_with_one_sentence_and_resumes(
    tmp_path, monkeypatch, capsys
):
    from agents.tabular.agent import TabularAgent
    from rlsoft.cli import main

    real_save = TabularAgent.save
    saves = []

    def save_until_full(self, path):
        saves.append(path)
        if len(saves) >= 3:  # the third checkpoint finds the disk full
            Path(path).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_save(self, path)

    monkeypatch.setattr(TabularAgent, "save", save_until_full)
    args = ["train", "configs/taxi_qlearning_epsilon.yaml", "--logdir", str(tmp_path)]
    args += ["--set", "train.total_steps=5000", "--set", "train.checkpoint_every=1000"]
    args += ["--set", "train.eval_every=0", "--set", "train.eval_episodes=1"]
    args += ["--set", "run_name=full"]
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    run_dir = tmp_path / "full"
    assert code == 2
    assert err == [
        f"rlsoft: error: cannot write checkpoint step_0000003000 of {str(run_dir)!r}: no space "
        "left on device (the previous checkpoint is intact); free space and resume with rlsoft "
        f"train --resume {run_dir}"
    ]
    assert [c.name for c in list_checkpoints(run_dir)] == ["step_0000001000", "step_0000002000"]
    with np.load(agent_file(latest_checkpoint(run_dir)), allow_pickle=False) as data:
        assert int(data["updates"]) == 2000
    assert hidden(run_dir) == []
    assert not (run_dir / "summary.json").exists()

    monkeypatch.setattr(TabularAgent, "save", real_save)  # space freed
    assert main(["train", "--resume", str(run_dir)]) == 0
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 5000


def test_the_manifest_finds_any_changed_file_and_a_wrong_step(tmp_path):
    """Every file written, an agent's directory of files included, is in the manifest with
    its size and CRC-32 (checked against zlib's): a changed byte, a removed file or a step in
    trainer.json that is not the checkpoint's is a CheckpointError naming it."""
    import zlib

    from rlsoft.errors import CheckpointError
    from rlsoft.run.checkpoint import MANIFEST_FILE, verify_checkpoint

    def save_directory(path: Path) -> None:
        path.mkdir()
        (path / "weights.bin").write_bytes(bytes(range(256)) * 10)
        (path / "meta.txt").write_text("meta", encoding="utf-8")

    checkpoint = write_checkpoint(tmp_path, 7, save_directory, "agent.d", {"step": 7}, 3)
    manifest = json.loads((checkpoint / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert sorted(manifest) == ["agent.d/meta.txt", "agent.d/weights.bin", "trainer.json"]
    weights = (checkpoint / "agent.d" / "weights.bin").read_bytes()
    assert manifest["agent.d/weights.bin"] == {"bytes": 2560, "crc32": zlib.crc32(weights)}
    verify_checkpoint(checkpoint)
    (checkpoint / "agent.d" / "weights.bin").write_bytes(weights[:-1] + b"\x00")
    with pytest.raises(CheckpointError, match=r"agent.d/weights.bin has changed since it was"):
        verify_checkpoint(checkpoint)
    (checkpoint / "agent.d" / "weights.bin").unlink()
    with pytest.raises(CheckpointError, match=r"agent.d/weights.bin is missing"):
        verify_checkpoint(checkpoint)
    old = write(tmp_path, 20, "a")
    (old / MANIFEST_FILE).unlink()
    with pytest.raises(CheckpointError, match=r"its manifest.json is missing"):
        verify_checkpoint(old)  # trainer.json says one was written
    # As written before manifests: no manifest and no word of one; the step is still checked.
    (old / "trainer.json").write_text(json.dumps({"step": 20, "tag": "a"}), encoding="utf-8")
    verify_checkpoint(old)
    (old / "trainer.json").write_text(json.dumps({"step": 30, "tag": "a"}), encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"says step 30, but the checkpoint is of step 20"):
        verify_checkpoint(old)
