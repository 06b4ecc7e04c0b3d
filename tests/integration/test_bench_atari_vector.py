"""scripts/bench_atari_vector.py runs its smallest mode and prints every backend's row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_measures_all_three_backends() -> None:
    pytest.importorskip("ale_py.vector_env", reason="Atari is an optional extra")
    done = subprocess.run(
        [sys.executable, "scripts/bench_atari_vector.py", "--steps", "40", "--num-envs", "1", "2"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.split()[:1] in (["1"], ["2"])]
    assert [row[0] for row in rows] == ["1", "2"]
    for row in rows:
        assert len(row) == 6 and all(float(value) > 0 for value in row[1:])
    (costs,) = [line for line in done.stdout.splitlines() if line.startswith("one ALE/")]
    values = [float(part.split()[-1]) for part in costs.split(": ", 1)[1].split(", ")]
    assert [part.rsplit(" ", 1)[0] for part in costs.split(": ", 1)[1].split(", ")] == [
        "reset with a seed",
        "reset",
        "step",
    ]
    assert all(value > 0 for value in values)
    assert "A.L.E" not in done.stderr
