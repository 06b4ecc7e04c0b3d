"""The Ray backend runs the same grid as Ray tasks on a local Ray instance."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

pytest.importorskip("ray")

GRID = {
    "name": "ray_grid",
    "base": {
        "env": {"id": "Taxi-v4"},
        "agent": {"type": "q_learning", "learning_rate": 0.5},
        "train": {"total_steps": 3000, "eval_every": 1000, "eval_episodes": 3},
    },
    "seeds": 2,
    "variants": {"eps": {}, "boltzmann": {"exploration.policy": "boltzmann"}},
}


def test_ray_backend_runs_the_grid_on_local_ray(tmp_path):
    cfg = tmp_path / "grid.yaml"
    cfg.write_text(yaml.safe_dump(GRID))
    logdir = tmp_path / "runs"
    command = [sys.executable, "-m", "rlsoft.cli", "compare", str(cfg), "--backend", "ray"]
    result = subprocess.run(
        [*command, "--workers", "2", "--logdir", str(logdir)],
        capture_output=True,
        text=True,
        timeout=170,
        env={**os.environ, "CI": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "on a local Ray instance" in result.stderr
    summaries = sorted(logdir.glob("Taxi-v4/*/seed_*/summary.json"))
    assert [p.parent.relative_to(logdir).as_posix() for p in summaries] == [
        "Taxi-v4/boltzmann/seed_0",
        "Taxi-v4/boltzmann/seed_1",
        "Taxi-v4/eps/seed_0",
        "Taxi-v4/eps/seed_1",
    ]
    assert json.loads(summaries[0].read_text())["steps"] == 3000
    assert (logdir / "summary.csv").is_file() and (logdir / "final_scores_Taxi-v4.png").is_file()
    assert "Taxi-v4: final greedy evaluation return" in result.stdout
