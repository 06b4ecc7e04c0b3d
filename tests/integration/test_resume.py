"""Exact resume: a run split in two (or killed and resumed) equals one continuous run.

The DQN run below exercises every piece of state a resume must restore: networks, target,
optimiser moments, the replay buffer and its write position, the agent's and the action
space's generators, two vectorised CartPoles mid-episode (physics, time limits, their
generators), the running episode statistics and the logging window.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import agents  # noqa: F401 - registers the agents
from rlsoft.checkpoint import agent_file, latest_checkpoint, list_checkpoints
from rlsoft.config import validate_config
from rlsoft.envstate import EpisodeRecorder, restore_vector_env, snapshot_vector_env
from rlsoft.experiment import resume_experiment, run_experiment

ROOT = Path(__file__).resolve().parents[2]
TOTAL, HALF = 2400, 1200
BASE = {
    "seed": 3,
    "device": "cpu",
    "env": {"id": "CartPole-v1", "num_envs": 2},
    "agent": {
        "type": "dqn",
        "hidden_sizes": [32, 32],
        "batch_size": 32,
        "learning_starts": 200,
        "train_freq": 4,
        "gradient_steps": 2,
        "target_update_interval": 100,
        "n_step": 3,
        "lr": {"type": "linear", "start": 1e-3, "end": 1e-4, "duration": TOTAL},
    },
    "exploration": {
        "policy": "boltzmann",
        "temperature": {"type": "linear", "start": 2.0, "end": 0.1, "duration": 1500},
    },
    "train": {
        "total_steps": TOTAL,
        "eval_every": 800,
        "eval_episodes": 2,
        "log_every": 300,
        "checkpoint_every": 0,
        "progress": "off",
    },
}
# Scalars that depend on wall-clock time, not on the run's trajectory.
TIMING_TAGS = {"charts/sps"}


def make_config(root: Path, name: str, **train) -> dict:
    data = json.loads(json.dumps(BASE))
    data["train"].update(train)
    data.update(logdir=str(root), run_name=name)
    return data


def final_agent_state(run_dir: Path) -> dict:
    return torch.load(agent_file(latest_checkpoint(run_dir)), weights_only=True)


def assert_same_learning_state(a: dict, b: dict) -> None:
    for key in ("online", "target"):
        for name in a[key]:
            torch.testing.assert_close(
                a[key][name], b[key][name], rtol=0, atol=0, msg=f"{key}.{name}"
            )
    for key in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(a["optimizer"][key], b["optimizer"][key], rtol=0, atol=0)
    assert a["optimizer"]["steps"] == b["optimizer"]["steps"]
    for key, value in a["replay"].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, b["replay"][key]), f"replay {key}"
        else:
            assert value == b["replay"][key], f"replay {key}"
    assert a["rng"]["numpy"] == b["rng"]["numpy"]
    assert a["counters"] == b["counters"]


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar curve of a run dir as TensorBoard shows it (purged events removed)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def assert_same_curves(resumed: Path, continuous: Path, extra_eval: int | None = None) -> None:
    """Same steps (none duplicated or missing) and, for trajectory-dependent tags, the same
    values. ``extra_eval``: a step where the resumed run had finished once and evaluated."""
    got, want = scalars(resumed), scalars(continuous)
    assert set(got) == set(want)
    for tag, points in want.items():
        steps = [s for s, _ in got[tag]]
        assert steps == sorted(set(steps)), f"{tag}: duplicated or unordered steps {steps}"
        mine = [(s, v) for s, v in got[tag] if not (tag.startswith("eval/") and s == extra_eval)]
        assert [s for s, _ in mine] == [s for s, _ in points], f"{tag}: steps differ"
        if tag not in TIMING_TAGS:
            assert mine == points, f"{tag}: values differ"


@pytest.fixture(scope="module")
def continuous(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("continuous")
    run_experiment(validate_config(make_config(root, "continuous")))
    return root / "continuous"


def test_split_run_equals_continuous_run(tmp_path, continuous):
    run_experiment(validate_config(make_config(tmp_path, "split", total_steps=HALF)))
    time.sleep(1.1)  # event files are named by the second: keep the resumed one sorted last
    result = resume_experiment(tmp_path / "split", {"train": {"total_steps": TOTAL}})
    assert result.steps == TOTAL
    assert_same_learning_state(final_agent_state(tmp_path / "split"), final_agent_state(continuous))
    summary = json.loads((continuous / "summary.json").read_text())
    resumed = json.loads((tmp_path / "split" / "summary.json").read_text())
    assert resumed["final_eval"] == summary["final_eval"]
    # The split run also evaluated at its first end; every shared evaluation agrees.
    assert [e for e in resumed["eval_history"] if e[0] != HALF] == summary["eval_history"]
    assert_same_curves(tmp_path / "split", continuous, extra_eval=HALF)


def test_async_environments_resume_exactly_too(tmp_path):
    def config(name: str, total: int) -> dict:
        data = make_config(tmp_path, name, total_steps=total, eval_every=0, log_every=600)
        data["env"]["vectorization"] = "async"
        return data

    run_experiment(validate_config(config("async_continuous", 1200)))
    run_experiment(validate_config(config("async_split", 600)))
    resume_experiment(tmp_path / "async_split", {"train": {"total_steps": 1200}})
    assert_same_learning_state(
        final_agent_state(tmp_path / "async_split"),
        final_agent_state(tmp_path / "async_continuous"),
    )


def test_killed_run_resumes_from_its_last_checkpoint_to_the_same_result(tmp_path, continuous):
    """SIGKILL a training process after its first checkpoint, resume it from the command
    line, and end with exactly the continuous run's parameters and curves."""
    import yaml

    config = tmp_path / "kill.yaml"
    config.write_text(yaml.safe_dump(make_config(tmp_path, "killed", checkpoint_every=600)))
    run_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "rlsoft.cli", "train"]
    proc = subprocess.Popen(
        [*cli, str(config)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not list_checkpoints(run_dir) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    steps = int(latest_checkpoint(run_dir).name.removeprefix("step_"))
    assert 0 < steps < TOTAL and not (run_dir / "summary.json").exists()
    time.sleep(1.1)
    done = subprocess.run(
        [*cli, "--resume", str(run_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"{TOTAL:,} steps" in done.stdout
    assert_same_learning_state(final_agent_state(run_dir), final_agent_state(continuous))
    assert_same_curves(run_dir, continuous)


def test_events_logged_after_the_resumed_checkpoint_are_hidden(tmp_path, continuous):
    """A run that logged past its last checkpoint (here: a finished run whose later
    checkpoints are removed) resumes with those stale points purged, none duplicated."""
    import shutil

    run_experiment(validate_config(make_config(tmp_path, "stale", checkpoint_every=HALF)))
    for checkpoint in list_checkpoints(tmp_path / "stale")[1:]:
        shutil.rmtree(checkpoint)
    (tmp_path / "stale" / "summary.json").unlink()
    assert latest_checkpoint(tmp_path / "stale").name.endswith(f"{HALF:010d}")
    assert max(s for s, _ in scalars(tmp_path / "stale")["losses/td_loss"]) > HALF
    time.sleep(1.1)
    resume_experiment(tmp_path / "stale")
    assert_same_learning_state(final_agent_state(tmp_path / "stale"), final_agent_state(continuous))
    assert_same_curves(tmp_path / "stale", continuous)


def test_resuming_a_finished_run_without_more_budget_changes_nothing(tmp_path):
    data = make_config(tmp_path, "done", total_steps=400, eval_every=0)
    run_experiment(validate_config(data))
    before = final_agent_state(tmp_path / "done")
    result = resume_experiment(tmp_path / "done")
    assert result.steps == 400
    assert_same_learning_state(final_agent_state(tmp_path / "done"), before)
    history = json.loads((tmp_path / "done" / "summary.json").read_text())["eval_history"]
    assert [step for step, _ in history] == [400]  # no second evaluation at the same step


# --------------------------------------------------------------------------------------------
# Environment snapshots on their own
# --------------------------------------------------------------------------------------------


def _vector(env_id: str, n: int = 2) -> gym.vector.VectorEnv:
    return gym.vector.SyncVectorEnv(
        [lambda: EpisodeRecorder(gym.make(env_id)) for _ in range(n)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )


ENV_IDS = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0"]
try:
    import Box2D  # noqa: F401

    ENV_IDS.append("LunarLander-v3")
except ImportError:  # the box2d extra is optional
    pass


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_replayed_environments_continue_exactly(env_id):
    """Snapshot two sub-envs mid-episode (after several autoresets), replay the snapshot
    into fresh envs, and step both copies on: identical observations, rewards and ends."""
    original, restored = _vector(env_id), _vector(env_id)
    rng = np.random.default_rng(0)
    original.reset(seed=7)
    original.action_space.seed(1)
    for _ in range(300):
        original.step(original.action_space.sample())
    snapshots = json.loads(json.dumps(snapshot_vector_env(original)))  # survives JSON
    restored.reset(seed=123)
    restore_vector_env(restored, snapshots)
    for _ in range(400):
        actions = rng.integers(0, original.single_action_space.n, original.num_envs)
        a, b = original.step(actions), restored.step(actions)
        for x, y in zip(a[:4], b[:4], strict=True):
            np.testing.assert_array_equal(x, y)
    original.close()
    restored.close()
