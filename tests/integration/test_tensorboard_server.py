"""'View it in TensorBoard' is proven: a real tensorboard server serves a finished run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlsoft.cli import main

CONFIG = """
seed: 0
env: {id: Taxi-v4}
agent: {type: q_learning, learning_rate: 0.5}
exploration: {policy: boltzmann, temperature: 1.0}
train: {total_steps: 6000, eval_every: 2000, eval_episodes: 3, log_every: 500, progress: "off"}
"""

REQUIRED_TAGS = {
    "charts/episodic_return",
    "charts/episodic_length",
    "charts/sps",
    "exploration/temperature",
    "exploration/entropy",
    "losses/td_loss",
    "losses/q_mean",
    "eval/mean_return",
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, data: bytes | None = None) -> object:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    config = tmp_path / "tb.yaml"
    config.write_text(CONFIG)
    assert main(["train", str(config), "--logdir", str(tmp_path / "runs")]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    return run_dir


@pytest.mark.timeout(120)
def test_tensorboard_serves_the_run_scalars_and_hparams(finished_run: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(finished_run.parent),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        runs: object = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                runs = _get(f"{base}/data/runs")
                tags = _get(f"{base}/data/plugin/scalars/tags")
                if (
                    runs
                    and finished_run.name in tags
                    and "eval/mean_return" in tags[finished_run.name]
                ):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert finished_run.name in runs
        assert REQUIRED_TAGS <= set(tags[finished_run.name])

        query = urllib.parse.urlencode({"run": finished_run.name, "tag": "eval/mean_return"})
        served = _get(f"{base}/data/plugin/scalars/scalars?{query}")
        on_disk = EventAccumulator(str(finished_run))
        on_disk.Reload()
        expected = [(e.step, e.value) for e in on_disk.Scalars("eval/mean_return")]
        assert [step for _, step, _ in served] == [step for step, _ in expected]
        assert [value for _, _, value in served] == pytest.approx([v for _, v in expected])
        assert [step for step, _ in expected] == [2000, 4000, 6000]

        experiment = _get(
            f"{base}/data/plugin/hparams/experiment", json.dumps({"experimentName": ""}).encode()
        )
        hparam_names = {h["name"] for h in experiment["hparamInfos"]}
        assert {"agent.learning_rate", "exploration.policy", "env.id", "seed"} <= hparam_names
        metric_tags = {m["name"]["tag"] for m in experiment["metricInfos"]}
        assert "eval/mean_return" in metric_tags
    finally:
        server.terminate()
        server.wait(timeout=10)
