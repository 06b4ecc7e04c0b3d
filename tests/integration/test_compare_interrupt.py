"""Ctrl-C during rlsoft compare: a clean stop (exit 130, one sentence), no run marked done
that did not finish, and the same command afterwards finishes the grid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from rlsoft.run.trainer import PID_FILE

# Four runs of ~0.5–1 s each on two workers: long enough to interrupt in the middle.
GRID = {
    "name": "interrupt",
    "base": {
        "env": {"id": "Taxi-v4"},
        "agent": {"type": "q_learning", "learning_rate": 0.5},
        "train": {"total_steps": 30000, "eval_every": 10000, "eval_episodes": 3},
    },
    "seeds": 2,
    "variants": {"eps": {}, "boltzmann": {"exploration.policy": "boltzmann"}},
}


def compare(cfg, logdir, **popen):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlsoft.cli",
            "compare",
            str(cfg),
            "--workers",
            "2",
            "--logdir",
            str(logdir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CI": "1"},
        **popen,
    )


@pytest.mark.skipif(sys.platform == "win32", reason="process groups and SIGINT are POSIX")
def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(tmp_path):
    cfg = tmp_path / "grid.yaml"
    cfg.write_text(yaml.safe_dump(GRID))
    logdir = tmp_path / "runs"
    # A terminal's Ctrl-C signals the whole foreground process group: the command and its
    # workers. start_new_session gives the command its own group to signal the same way.
    process = compare(cfg, logdir, start_new_session=True)
    deadline = time.monotonic() + 60
    while not list(logdir.glob("*/*/*/events.out.tfevents.*")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no run started within 60 s"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("rlsoft: interrupted: ") and "run the same command again" in last
    assert "Traceback" not in err
    # The workers stop on the parent's SIGTERM without a line each: the parent's says it all.
    assert "SIGTERM received" not in err and "SIGINT received" not in err, err

    run_dirs = sorted(logdir.glob("*/*/seed_*"))
    assert run_dirs, "the interrupted run dirs should still be there"
    unfinished = [d for d in run_dirs if not (d / "summary.json").exists()]
    assert unfinished, "the interrupt came while a run was training"
    for run_dir in set(run_dirs) - set(unfinished):  # marked done: really finished
        assert json.loads((run_dir / "summary.json").read_text())["steps"] == 30000

    again = compare(cfg, logdir)
    out, err = again.communicate(timeout=180)
    assert again.returncode == 0, err
    finished = len(run_dirs) - len(unfinished)
    assert f"{finished} already finished" in err
    assert len(list(logdir.glob("*/*/seed_*/summary.json"))) == 4
    assert "Taxi-v4: final greedy evaluation return" in out


def test_ctrl_c_during_the_report_keeps_the_runs_and_names_the_command_that_writes_it(
    tmp_path, monkeypatch, capsys
):
    from rlsoft.cli.main import main
    from rlsoft.compare import plots

    grid = {**GRID, "seeds": 1, "variants": {"eps": {}}}
    grid["base"] = {**GRID["base"], "train": {"total_steps": 2000, "eval_every": 1000}}
    cfg = tmp_path / "grid.yaml"
    cfg.write_text(yaml.safe_dump(grid))
    logdir = tmp_path / "my runs"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    # The learning curves are written whole; the final scores' plot is interrupted.
    monkeypatch.setattr(plots, "final_scores_figure", interrupted)
    assert main(["compare", str(cfg), "--workers", "1", "--logdir", str(logdir)]) == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        "rlsoft: interrupted: while writing the report, after the runs had ended (1 run "
        f"finished, all kept); rlsoft report '{logdir}' writes the report"
    )
    assert len(list(logdir.glob("*/*/seed_*/summary.json"))) == 1
    written = list(logdir.glob("*.png"))
    assert [p.name.split("_")[0] for p in written] == ["learning"], written
    assert written[0].read_bytes().startswith(b"\x89PNG") and not list(logdir.glob(".*tmp*"))
    assert not (logdir / "summary.csv").exists()
    monkeypatch.undo()
    assert main(["report", str(logdir)]) == 0
    assert (logdir / "summary.csv").is_file() and list(logdir.glob("learning_curves_*.png"))


def test_a_plot_interrupted_half_written_leaves_the_previous_one(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from rlsoft.compare import plots

    path = tmp_path / "learning_curves_x.png"
    plots._save_png(Figure(), path)
    before = path.read_bytes()

    def half_then_interrupted(self, handle, **kwargs):
        handle.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", half_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        plots._save_png(Figure(), path)
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie an init without reaping keeps does not count)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


TOTAL = 400_000


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_whose_compare_is_killed_checkpoints_and_stops(tmp_path):
    """kill -9 of rlsoft compare gives it no chance to stop its workers: each sees its parent
    gone, writes a checkpoint and exits, and the same command resumes the run from it
    instead of finding its run dir in use by an orphan training on."""
    grid = {**GRID, "seeds": 1, "variants": {"eps": {}}}
    # Several seconds of Taxi on one core: still training when it is killed, a moment in.
    grid["base"] = {**GRID["base"], "train": {"total_steps": TOTAL, "eval_every": 0}}
    cfg = tmp_path / "grid.yaml"
    cfg.write_text(yaml.safe_dump(grid))
    logdir = tmp_path / "runs"
    run_dir = logdir / "Taxi-v4" / "eps" / "seed_0"
    process = compare(cfg, logdir)
    deadline = time.monotonic() + 60
    # A first periodic checkpoint: the trainer runs, its SIGTERM handler installed.
    while not (run_dir / "checkpoints").is_dir() or not (run_dir / PID_FILE).is_file():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no run checkpointed within 60 s"
        time.sleep(0.05)
    worker = int((run_dir / PID_FILE).read_text())
    process.kill()
    process.communicate(timeout=30)
    deadline = time.monotonic() + 30
    while _alive(worker):
        assert time.monotonic() < deadline, "the orphaned worker still runs 30 s later"
        time.sleep(0.1)
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert checkpoints and not (run_dir / "summary.json").exists(), checkpoints
    stopped_at = int(checkpoints[-1].removeprefix("step_"))
    assert 0 < stopped_at < TOTAL

    again = compare(cfg, logdir)
    _, err = again.communicate(timeout=180)
    assert again.returncode == 0, err
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == TOTAL
    history = json.loads((run_dir / "resume_history.json").read_text())
    assert [entry["step"] for entry in history] == [stopped_at]
