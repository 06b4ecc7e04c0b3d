"""Start-up: what a command imports before its first useful work. Each check runs the CLI in
a fresh interpreter and reads its ``sys.modules`` afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "scipy", "matplotlib", "sklearn", "ray", "tensorflow", "agents.dqn.agent")

RUN_CLI = """
import json, sys
from rlsoft.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exc:  # --help
    rc = exc.code
print(json.dumps({{"rc": rc, "heavy": [m for m in {heavy!r} if m in sys.modules],
                  "numpy": "numpy" in sys.modules}}))
"""


def _cli(*args: str) -> tuple[dict, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", RUN_CLI.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
    )
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


def test_a_tabular_run_never_imports_torch(tmp_path):
    result, _ = _cli(
        "train",
        "configs/taxi_qlearning_boltzmann.yaml",
        "--logdir",
        str(tmp_path),
        "--set",
        "train.total_steps=2000",
        "--set",
        "train.eval_every=1000",
        "--set",
        "train.progress=off",
    )
    assert result == {"rc": 0, "heavy": [], "numpy": True}
    (run_dir,) = tmp_path.iterdir()
    assert list(run_dir.glob("events.out.tfevents.*"))  # and it logged without torch


def test_a_config_error_comes_before_any_heavy_import():
    for config in ("taxi_qlearning_boltzmann", "cartpole_dqn_epsilon"):
        result, err = _cli("train", f"configs/{config}.yaml", "--set", "agent.lerning_rate=0.1")
        assert result["rc"] == 2 and result["heavy"] == []
        assert err.startswith("rlsoft: error: ") and "'agent.lerning_rate'" in err


def test_help_needs_not_even_numpy():
    result, _ = _cli("--help")
    assert result == {"rc": 0, "heavy": [], "numpy": False}
