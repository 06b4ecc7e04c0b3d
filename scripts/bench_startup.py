"""Start-up time of the command line: the median of repeated process starts.

    python scripts/bench_startup.py               # 11 rounds, ≈ 1 min
    python scripts/bench_startup.py --repeat 5    # a quick look

Cases, each against its goal (PASS/FAIL):

* ``config error``: ``rlsoft train configs/taxi_qlearning_boltzmann.yaml --set
  agent.lerning_rate=0.1`` up to its one-line error (goal < 0.3 s), and the same typo in a DQN
  config (the DQN family is registered without importing torch);
* ``--help``: ``rlsoft --help`` (goal < 0.2 s);
* ``tabular start-up``: from process start to the first training step of ``rlsoft train
  configs/taxi_qlearning_boltzmann.yaml`` (goal < 0.5 s): the child runs the CLI's ``main``
  with ``EnvDriver.advance`` wrapped to print the wall clock at its first call and end the
  process there; the parent subtracts its own wall clock just before starting the child;
* ``import rlsoft`` (goal < 0.1 s).

Two peers run in the same rounds, so the numbers can be read as ratios on a busy machine:
``python -c pass`` (the interpreter alone) and ``python -c "import torch"`` (what every
command paid before). Rounds are interleaved (every case once per round), so a burst of load
hits all cases alike; each case's median over the rounds is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAXI = ROOT / "configs" / "taxi_qlearning_boltzmann.yaml"
DQN = ROOT / "configs" / "cartpole_dqn_epsilon.yaml"

FIRST_STEP = """
import os, sys, time
from rlsoft.rl.collector import EnvDriver

advance = EnvDriver.advance

def first_advance(self, *args, **kwargs):
    print(f"FIRST_STEP {time.time():.6f}", flush=True)
    os._exit(0)  # the start-up is measured; the run itself is not needed

EnvDriver.advance = first_advance
from rlsoft.cli import main

main(sys.argv[1:])
"""


def cases(logdir: str) -> dict[str, tuple[list[str], float | None, int]]:
    """Name → (command, goal in seconds or None for a peer, expected exit code)."""
    python = sys.executable
    return {
        "python -c pass (peer)": ([python, "-c", "pass"], None, 0),
        "import torch (peer)": ([python, "-c", "import torch"], None, 0),
        "config error (tabular)": (
            [python, "-m", "rlsoft.cli", "train", str(TAXI), "--set", "agent.lerning_rate=0.1"],
            0.3,
            2,
        ),
        "config error (DQN)": (
            [python, "-m", "rlsoft.cli", "train", str(DQN), "--set", "agent.lerning_rate=0.1"],
            0.3,
            2,
        ),
        "rlsoft --help": ([python, "-m", "rlsoft.cli", "--help"], 0.2, 0),
        "tabular start-up (to step 1)": (
            [
                python,
                "-c",
                FIRST_STEP,
                "train",
                str(TAXI),
                "--logdir",
                logdir,
                "--set",
                "train.progress=off",
            ],
            0.5,
            0,
        ),
        "import rlsoft": ([python, "-c", "import rlsoft"], 0.1, 0),
    }


def time_once(command: list[str], expected_rc: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    started = time.time()
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    elapsed = time.perf_counter() - t0
    if done.returncode != expected_rc:
        raise SystemExit(
            f"{command[:4]} exited {done.returncode} (expected {expected_rc}):\n{done.stderr}"
        )
    for line in done.stdout.splitlines():
        if line.startswith("FIRST_STEP "):
            return float(line.split()[1]) - started
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11, help="rounds (default 11)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logdir:
        table = cases(logdir)
        times: dict[str, list[float]] = {name: [] for name in table}
        for _ in range(args.repeat):
            for name, (command, _, rc) in table.items():
                times[name].append(time_once(command, rc))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["python -c pass (peer)"]
    torch = medians["import torch (peer)"]
    print(f"median of {args.repeat} process starts (Python {sys.version.split()[0]})")
    print(f"{'case':32s} {'median':>8s} {'goal':>7s} {'÷ torch':>8s}  result")
    failed = 0
    for name, (_, goal, _) in table.items():
        median = medians[name]
        verdict = "peer" if goal is None else ("PASS" if median < goal else "FAIL")
        failed += verdict == "FAIL"
        goal_text = "" if goal is None else f"< {goal:.1f}s"
        print(f"{name:32s} {median:7.3f}s {goal_text:>7s} {median / torch:8.2f}  {verdict}")
    print(f"(the interpreter alone: {base:.3f} s; import torch: {torch:.3f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
