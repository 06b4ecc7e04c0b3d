"""Exact resume: a run split in two (or killed, or stopped by Ctrl-C, and resumed) equals one
continuous run.

The DQN run below exercises every piece of state a resume must restore: networks, target,
optimiser moments, the replay buffer and its write position, the agent's and the action
space's generators, two vectorised CartPoles mid-episode (physics, time limits, their
generators), the running episode statistics and the logging window. The parametrised test
further down splits a run of every agent kind at several steps (mid-episode included) and
compares the result with a continuous run of the same config, bit for bit.
"""

from __future__ import annotations

import json
import math
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
from rlsoft.rl.envs.state import EpisodeRecorder, restore_vector_env, snapshot_vector_env
from rlsoft.run.checkpoint import agent_file, latest_checkpoint, list_checkpoints
from rlsoft.run.config import validate_config
from rlsoft.run.experiment import resume_experiment, run_experiment

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
TIMING_TAGS = {"charts/sps", "charts/eval_seconds"}


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


def _is_eval_tag(tag: str) -> bool:
    """Tags logged by an evaluation (the classifier's calibration included)."""
    return tag.startswith(("eval/", "calibration/")) or tag == "charts/eval_seconds"


def assert_same_curves(
    resumed: Path, continuous: Path, extra_eval: int | tuple[int, ...] | None = None
) -> None:
    """Same steps (none duplicated or missing) and, for trajectory-dependent tags, the same
    values. ``extra_eval``: steps where the resumed run had finished once and evaluated."""
    extra = {extra_eval} if isinstance(extra_eval, int) else set(extra_eval or ())
    got, want = scalars(resumed), scalars(continuous)
    assert set(got) == set(want)
    for tag, points in want.items():
        steps = [s for s, _ in got[tag]]
        assert steps == sorted(set(steps)), f"{tag}: duplicated or unordered steps {steps}"
        mine = [(s, v) for s, v in got[tag] if not (_is_eval_tag(tag) and s in extra)]
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
    result = resume_experiment(tmp_path / "split", {"train.total_steps": TOTAL})
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
    resume_experiment(tmp_path / "async_split", {"train.total_steps": 1200})
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


def _files(run_dir):
    return {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


def test_resuming_a_finished_run_without_more_budget_changes_nothing(tmp_path):
    data = make_config(tmp_path, "done", total_steps=400, eval_every=0)
    first = run_experiment(validate_config(data))
    before = final_agent_state(tmp_path / "done")
    files = _files(tmp_path / "done")
    result = resume_experiment(tmp_path / "done")
    assert (result.steps, result.seconds, result.final_eval) == (
        400,
        pytest.approx(first.seconds, abs=1e-3),
        first.final_eval,
    )
    assert (
        result.eval_history == first.eval_history == [(400, first.final_eval["eval/mean_return"])]
    )
    assert (result.eval_seconds, result.eval_epsilon) == (
        pytest.approx(first.eval_seconds, abs=1e-3),
        first.eval_epsilon,
    )
    assert_same_learning_state(final_agent_state(tmp_path / "done"), before)
    # Not a byte changed, and no new event file (a restart marker and a second HParams
    # session, nothing else) next to the run's own.
    assert _files(tmp_path / "done") == files


def test_a_finished_run_whose_summary_was_deleted_gets_it_back_on_resume(tmp_path):
    data = make_config(tmp_path, "done", total_steps=400, eval_every=0)
    run_experiment(validate_config(data))
    summary = json.loads((tmp_path / "done" / "summary.json").read_text())
    (tmp_path / "done" / "summary.json").unlink()
    result = resume_experiment(tmp_path / "done")
    assert result.steps == 400
    again = json.loads((tmp_path / "done" / "summary.json").read_text())
    assert again["final_eval"] == summary["final_eval"]
    assert [step for step, _ in again["eval_history"]] == [400]  # not evaluated twice


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


# --------------------------------------------------------------------------------------------
# Every agent kind: a run split at several steps equals the continuous run, bit for bit
# --------------------------------------------------------------------------------------------

TABULAR_TRAIN = {
    "total_steps": 3000,
    "eval_every": 1000,
    "eval_episodes": 3,
    "log_every": 250,
    "checkpoint_every": 0,
    "progress": "off",
}
DQN_AGENT = {
    "type": "dqn",
    "hidden_sizes": [16],
    "batch_size": 16,
    "buffer_size": 1000,
    "learning_starts": 100,
    "train_freq": 2,
    "target_update_interval": 50,
}
DQN_TRAIN = {
    "total_steps": 600,
    "eval_every": 200,
    "eval_episodes": 2,
    "log_every": 100,
    "checkpoint_every": 0,
    "progress": "off",
}
CLASSIFIER_TRAIN = {
    "total_steps": 12,
    "eval_every": 4,
    "log_every": 2,
    "checkpoint_every": 0,
    "progress": "off",
}
DIGITS = {"name": "digits", "validation_fraction": 0.1, "test_fraction": 0.2}


def _dqn(env: dict, exploration: dict, **agent) -> dict:
    return {
        "env": {"id": "CartPole-v1", **env},
        "agent": {**DQN_AGENT, **agent},
        "exploration": exploration,
        "train": DQN_TRAIN,
    }


EPSILON = {
    "policy": "epsilon_greedy",
    "epsilon": {"type": "linear", "start": 1.0, "end": 0.05, "duration": 400},
}
BOLTZMANN = {"policy": "boltzmann", "temperature": 1.0}


class CatchImageEnv(gym.Env):
    """A tiny pixel game for the convolutional agents: a 6×6 board of two bool channels
    (channels last, as MinAtar's), a ball falling one row per step from a random column and a
    paddle on the bottom row moved left, kept or right; +1 for a catch, −1 for a miss, three
    balls per episode. Deterministic given the reset seed and the actions, as exact resume
    needs (the recorder replays the episode into a fresh copy)."""

    SIZE = 6

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(0, 1, (self.SIZE, self.SIZE, 2), np.bool_)
        self.action_space = gym.spaces.Discrete(3)

    def _obs(self) -> np.ndarray:
        board = np.zeros((self.SIZE, self.SIZE, 2), np.bool_)
        board[self.ball_row, self.ball_col, 0] = True
        board[self.SIZE - 1, self.paddle, 1] = True
        return board

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.paddle, self.balls = self.SIZE // 2, 0
        self.ball_row, self.ball_col = 0, int(self.np_random.integers(self.SIZE))
        return self._obs(), {}

    def step(self, action):
        self.paddle = int(np.clip(self.paddle + int(action) - 1, 0, self.SIZE - 1))
        self.ball_row += 1
        reward, terminated = 0.0, False
        if self.ball_row == self.SIZE - 1:
            reward = 1.0 if self.ball_col == self.paddle else -1.0
            self.balls += 1
            terminated = self.balls == 3
            self.ball_row, self.ball_col = 0, int(self.np_random.integers(self.SIZE))
        return self._obs(), reward, terminated, False, {}


CATCH = "rlsoft_test/CatchImage-v0"
if CATCH not in gym.registry:
    gym.register(CATCH, entry_point=CatchImageEnv, max_episode_steps=100)


def _atari_breakout(backend: str) -> dict:
    """A small Breakout DQN (36×36 frames, 2-frame stacks, life-loss terminals, 2 copies)."""
    atari = {"screen_size": 36, "frame_stack": 2, "noop_max": 8, "terminal_on_life_loss": True}
    return {
        "env": {
            "id": "ALE/Breakout-v5",
            "num_envs": 2,
            "max_episode_steps": 600,  # emulator frames: 150 agent steps
            "atari": {**atari, "backend": backend},
        },
        "agent": {**DQN_AGENT, "network": "nature_cnn", "hidden_sizes": [8], "frame_stack": 2},
        "exploration": EPSILON,
        "train": {**DQN_TRAIN, "eval_episodes": 1},
    }


# (config, split steps). Vector runs split at multiples of num_envs (a vector step is
# num_envs environment steps); every other split is off the logging and evaluation grid.
KINDS: dict[str, tuple[dict, tuple[int, ...]]] = {
    "q_learning": (
        {
            "env": {"id": "Taxi-v4"},
            "agent": {"type": "q_learning", "learning_rate": 0.5},
            "exploration": BOLTZMANN,
            "train": TABULAR_TRAIN,
        },
        (1537, 2222),
    ),
    "sarsa": (
        {
            "env": {"id": "CliffWalking-v1", "max_episode_steps": 200},
            "agent": {"type": "sarsa", "learning_rate": 0.5, "gamma": 1.0},
            "exploration": {"policy": "epsilon_greedy", "epsilon": 0.1},
            "train": TABULAR_TRAIN,
        },
        (1537, 2222),
    ),
    "expected_sarsa": (
        {
            "env": {"id": "FrozenLake-v1", "kwargs": {"is_slippery": True}},
            "agent": {
                "type": "expected_sarsa",
                "learning_rate": {"type": "linear", "start": 0.5, "end": 0.05, "duration": 3000},
            },
            "exploration": {
                "policy": "epsilon_greedy",
                "epsilon": {"type": "linear", "start": 1.0, "end": 0.1, "duration": 2000},
            },
            "train": TABULAR_TRAIN,
        },
        (1537, 2222),
    ),
    "double_q_learning": (
        {
            "env": {"id": "Taxi-v4"},
            "agent": {"type": "double_q_learning", "learning_rate": 0.5},
            "exploration": {"policy": "epsilon_greedy", "epsilon": 0.2},
            "train": TABULAR_TRAIN,
        },
        (1537, 2222),
    ),
    # ε-greedy evaluations draw from SeedSequence([seed, step, 1]): the same after a resume.
    "double_q_learning_eval_epsilon": (
        {
            "env": {"id": "Taxi-v4"},
            "agent": {"type": "double_q_learning", "learning_rate": 0.5},
            "exploration": {"policy": "epsilon_greedy", "epsilon": 0.2},
            "train": {**TABULAR_TRAIN, "eval_epsilon": 0.3},
        },
        (1537, 2222),
    ),
    "soft_q_learning": (
        {
            "env": {"id": "Taxi-v4"},
            "agent": {"type": "soft_q_learning", "learning_rate": 0.5, "temperature": 0.1},
            "exploration": BOLTZMANN,
            "train": TABULAR_TRAIN,
        },
        (1537, 2222),
    ),
    # The count bonus's visit counts and bonus window (agent checkpoint) with the εz-greedy
    # option of the single environment (driver state), split mid-option on some seeds.
    "q_learning_count_bonus_ez_greedy": (
        {
            "env": {"id": "rlsoft/RiverSwim-v0", "max_episode_steps": 200},
            "agent": {"type": "q_learning", "learning_rate": 0.3, "count_bonus": 50.0},
            "exploration": {"policy": "ez_greedy", "epsilon": 0.3, "mu": 1.5},
            "train": TABULAR_TRAIN,
        },
        (1537, 2222),
    ),
    "sarsa_count_bonus_optimistic": (
        {
            "env": {"id": "CliffWalking-v1", "max_episode_steps": 200},
            "agent": {"type": "sarsa", "learning_rate": 0.5, "count_bonus": 1.0, "initial_q": 1.0},
            "exploration": {"policy": "ez_greedy", "epsilon": 0.5, "mu": 1.3},
            "train": TABULAR_TRAIN,
        },
        (1537, 2222),
    ),
    "dqn": (_dqn({"num_envs": 2}, EPSILON), (246, 402)),
    "dqn_ez_greedy": (
        _dqn({"num_envs": 3}, {"policy": "ez_greedy", "epsilon": 0.5, "mu": 1.5}),
        (246, 402),
    ),
    "dqn_double_dueling": (_dqn({"num_envs": 2}, EPSILON, double=True, dueling=True), (246, 402)),
    "dqn_n_step_3_envs": (_dqn({"num_envs": 3}, EPSILON, n_step=3), (246, 402)),
    "dqn_c51": (
        _dqn({"num_envs": 2}, EPSILON, head="c51", atoms=11, v_min=0.0, v_max=50.0),
        (246, 402),
    ),
    "dqn_soft_q": (_dqn({"num_envs": 2}, BOLTZMANN, target="soft", loss="mse"), (246, 402)),
    "dqn_munchausen": (_dqn({"num_envs": 2}, BOLTZMANN, target="munchausen"), (246, 402)),
    "dqn_single_env": (_dqn({"num_envs": 1}, EPSILON, n_step=2, tau=0.5), (247, 401)),
    # Bootstrapped DQN: per-copy active heads, the mask generator, masks in the replay, the
    # fixed priors and the ensemble_std window must all resume exactly.
    "dqn_bootstrap_prior": (
        _dqn(
            {"num_envs": 2},
            {"policy": "greedy"},
            n_step=2,
            double=True,
            ensemble={"heads": 3, "mask_prob": 0.5, "prior_scale": 1.0},
        ),
        (246, 402),
    ),
    "dqn_bootstrap_shared_dueling": (
        _dqn(
            {"num_envs": 3},
            EPSILON,
            dueling=True,
            ensemble={"heads": 4, "mask_prob": 0.7, "shared_torso": True, "evaluation": "mean"},
        ),
        (246, 402),
    ),
    "dqn_noisy_double_dueling": (
        _dqn({"num_envs": 2}, {"policy": "greedy"}, noisy=True, double=True, dueling=True),
        (246, 402),
    ),
    "dqn_noisy_c51_mellowmax": (
        _dqn(
            {"num_envs": 3},
            EPSILON,
            noisy=True,
            head="c51",
            atoms=11,
            v_min=0.0,
            v_max=50.0,
            target="mellowmax",
            mellowmax_omega=2.0,
            n_step=2,
        ),
        (246, 402),
    ),
    # A convolutional torso on bool images: compact frame replay, then whole transitions.
    "dqn_minatar_cnn_frame_replay": (
        _dqn({"id": CATCH, "num_envs": 2}, BOLTZMANN, n_step=3, network="minatar_cnn"),
        (246, 402),
    ),
    "dqn_conv_c51_munchausen": (
        _dqn(
            {"id": CATCH, "num_envs": 2},
            BOLTZMANN,
            head="c51",
            atoms=11,
            v_min=-3.0,
            v_max=3.0,
            dueling=True,
            target="munchausen",
            frame_replay="off",
        ),
        (246, 402),
    ),
    # Atari (skipped without ale_py), on ale-py's native vector env (auto for 2 copies) and
    # on the Gymnasium wrapper stack: sticky actions and no-op starts reseeded at every
    # reset, life-loss terminals for learning beside the game's episodes, clipped rewards,
    # and the frame replay of 2-frame stacks.
    "dqn_atari_breakout": (_atari_breakout("native"), (246, 402)),
    "dqn_atari_breakout_gymnasium": (_atari_breakout("gymnasium"), (246, 402)),
    "classifier_mlp_adam": (
        {
            "env": None,
            "agent": {
                "type": "classifier",
                "model": "mlp",
                "hidden_sizes": [16],
                "batch_size": 128,
                "label_smoothing": 0.1,
                "patience": 50,
                "dataset": DIGITS,
            },
            "train": CLASSIFIER_TRAIN,
        },
        (5, 8),
    ),
    "classifier_lbfgs": (
        {
            "env": None,
            "agent": {
                "type": "classifier",
                "optimizer": "lbfgs",
                "weight_decay": 1e-3,
                "patience": None,
                "dataset": DIGITS,
            },
            "train": CLASSIFIER_TRAIN,
        },
        (5, 8),
    ),
}


def _kind_config(root: Path, kind: str, name: str, total: int | None = None) -> dict:
    data = json.loads(json.dumps(KINDS[kind][0]))
    data.update(seed=5, device="cpu", logdir=str(root), run_name=name)
    if total is not None:
        data["train"]["total_steps"] = total
    return data


def _next_second() -> None:
    """Event files are named by the second: the next writer's file must sort after this one."""
    time.sleep(1.02 - time.time() % 1.0)


def _agent_contents(run_dir: Path) -> dict:
    path = agent_file(latest_checkpoint(run_dir))
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    return torch.load(path, weights_only=True)


def assert_identical(a, b, where: str = "agent") -> None:
    """Exact equality of nested checkpoint contents (tensors, arrays, numbers, containers)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            assert_identical(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), f"{where}: tensors differ"
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, f"{where}: dtypes {a.dtype} != {b.dtype}"
        np.testing.assert_array_equal(a, b, err_msg=where, strict=True)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _trainer_state(run_dir: Path) -> dict:
    return json.loads((latest_checkpoint(run_dir) / "trainer.json").read_text())


def assert_same_run(split: Path, continuous: Path, split_steps: tuple[int, ...]) -> None:
    """Agent file, loop state (environments, generators, logging window), evaluation
    history and TensorBoard curves of ``split`` equal those of ``continuous``."""
    assert_identical(_agent_contents(split), _agent_contents(continuous))
    got, want = _trainer_state(split), _trainer_state(continuous)
    assert_identical(got["driver"], want["driver"], "trainer.driver")
    assert got["step"] == want["step"]
    assert got["last_eval"] == want["last_eval"]
    # A segment that ended at its budget evaluated there too (off the evaluation grid); every
    # shared evaluation agrees.
    extra = tuple(set(split_steps) - {step for step, _ in want["eval_history"]})
    assert [e for e in got["eval_history"] if e[0] not in extra] == want["eval_history"]
    summary = json.loads((continuous / "summary.json").read_text())
    resumed = json.loads((split / "summary.json").read_text())
    assert resumed["final_eval"] == summary["final_eval"]
    assert_same_curves(split, continuous, extra_eval=extra)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_agent_kind_split_at_several_steps_equals_the_continuous_run(tmp_path, kind):
    """Train to the first split step, resume (``--set train.total_steps``) to the next, and
    on to the end: the result is bit-identical to one uninterrupted run of the same config,
    tabular agents mid-episode included (the single-environment path replays its episode)."""
    if kind.startswith("dqn_atari"):
        pytest.importorskip("ale_py", reason="Atari is an optional extra")
    config, splits = KINDS[kind]
    total = config["train"]["total_steps"]
    run_experiment(validate_config(_kind_config(tmp_path, kind, "continuous")))
    run_experiment(validate_config(_kind_config(tmp_path, kind, "split", total=splits[0])))
    split = tmp_path / "split"
    mid_episode, mid_option = [], []
    for step in (*splits[1:], total):
        driver = _trainer_state(split)["driver"]
        env_state = driver.get("env")
        if env_state is not None:
            mid_episode.append(any(n > 0 for n in np.ravel(env_state["episode_length"])))
        # εz-greedy: an option still running at the split must carry on after the resume.
        mid_option.append(any(n > 0 for n in driver.get("policy", {}).get("remaining", [])))
        _next_second()
        resume_experiment(split, {"train.total_steps": step})
    assert_same_run(split, tmp_path / "continuous", splits)
    if config["env"] is not None:
        assert any(mid_episode), "no split fell inside an episode: choose other split steps"
    if (config.get("exploration") or {}).get("policy") == "ez_greedy":
        assert any(mid_option), "no split fell inside an εz option: choose other split steps"
    history = json.loads((split / "resume_history.json").read_text())
    assert [entry["step"] for entry in history] == list(splits)
    assert history[-1]["changed"] == {"train.total_steps": {"from": splits[-1], "to": total}}


def test_an_atari_run_from_before_the_backend_setting_resumes_on_the_gymnasium_stack(tmp_path):
    """A run written before ``env.atari.backend`` existed has no such key in its config.yaml
    and its checkpoint holds the Gymnasium stack's episode records: it resumes on that stack
    (not on what ``auto`` means now), exactly."""
    pytest.importorskip("ale_py", reason="Atari is an optional extra")
    kind = "dqn_atari_breakout_gymnasium"
    config, splits = KINDS[kind]
    total = config["train"]["total_steps"]
    run_experiment(validate_config(_kind_config(tmp_path, kind, "continuous")))
    run_experiment(validate_config(_kind_config(tmp_path, kind, "split", total=splits[0])))
    saved = tmp_path / "split" / "config.yaml"
    old = saved.read_text()
    assert "backend: gymnasium\n" in old
    saved.write_text(old.replace("    backend: gymnasium\n", "").replace("    threads: null\n", ""))
    _next_second()
    resume_experiment(tmp_path / "split", {"train.total_steps": total})
    assert_same_run(tmp_path / "split", tmp_path / "continuous", splits[:1])


def test_an_atari_run_resumed_on_other_emulator_threads_equals_the_continuous_run(tmp_path):
    """``env.atari.threads`` may change on resume (a bigger machine): the native env's
    emulators give the same games on any number of threads, so the run stays exact."""
    pytest.importorskip("ale_py.vector_env", reason="Atari is an optional extra")
    kind = "dqn_atari_breakout"
    config, splits = KINDS[kind]
    total = config["train"]["total_steps"]
    continuous = _kind_config(tmp_path, kind, "continuous")
    continuous["env"]["atari"]["threads"] = 2
    run_experiment(validate_config(continuous))
    first = _kind_config(tmp_path, kind, "split", total=splits[0])
    first["env"]["atari"]["threads"] = 1
    run_experiment(validate_config(first))
    _next_second()
    resume_experiment(tmp_path / "split", {"train.total_steps": total, "env.atari.threads": 2})
    assert_same_run(tmp_path / "split", tmp_path / "continuous", splits[:1])
    history = json.loads((tmp_path / "split" / "resume_history.json").read_text())
    assert history[-1]["changed"]["env.atari.threads"] == {"from": 1, "to": 2}


def test_an_atari_run_on_the_shipped_protocol_resumed_after_a_reseed_equals_the_continuous_run(
    tmp_path,
):
    """The protocol of the Atari configs (84×84 frames, 4-frame stacks, 30 no-ops, sticky
    actions, the native backend) on one copy, split after the copy's emulator was reseeded at
    the first game over past ``RESEED_AFTER`` actions (so the checkpoint's record starts at
    that reseed, not at the run's start): bit-identical to the continuous run."""
    pytest.importorskip("ale_py.vector_env", reason="Atari is an optional extra")
    from rlsoft.rl.envs.atari_native import RESEED_AFTER

    total, split = RESEED_AFTER + 900, RESEED_AFTER + 601
    data = {
        "seed": 3,
        "device": "cpu",
        "logdir": str(tmp_path),
        "env": {"id": "ALE/Breakout-v5", "atari": {"backend": "native"}},
        "agent": {
            **DQN_AGENT,
            "network": "nature_cnn",
            "hidden_sizes": [8],
            "batch_size": 8,
            "buffer_size": 3000,
            "learning_starts": RESEED_AFTER - 200,
            "train_freq": 8,
            "target_update_interval": 200,
        },
        "exploration": {"policy": "epsilon_greedy", "epsilon": 1.0},
        "train": {
            **DQN_TRAIN,
            "total_steps": total,
            "eval_every": 0,
            "eval_episodes": 1,
            "eval_epsilon": 1.0,  # an untrained greedy Breakout agent may never fire
        },
    }
    run_experiment(validate_config({**data, "run_name": "continuous"}))
    first = json.loads(json.dumps(data))
    first["train"]["total_steps"] = split
    run_experiment(validate_config({**first, "run_name": "split"}))
    (record,) = _trainer_state(tmp_path / "split")["driver"]["env"]["sub_envs"]
    assert 0 < len(record["actions"]) < split - RESEED_AFTER, "no reseed before the split"
    _next_second()
    resume_experiment(tmp_path / "split", {"train.total_steps": total})
    assert_same_run(tmp_path / "split", tmp_path / "continuous", (split,))


# --------------------------------------------------------------------------------------------
# Ctrl-C and SIGTERM: finish the step, checkpoint, print the resume command, exit 130
# --------------------------------------------------------------------------------------------

SIGNAL_TOTAL = 150_000
SIGNAL_CONFIG = {
    "seed": 11,
    "env": {"id": "CliffWalking-v1", "max_episode_steps": 200},
    "agent": {"type": "sarsa", "learning_rate": 0.5, "gamma": 1.0},
    "exploration": {"policy": "epsilon_greedy", "epsilon": 0.1},
    "train": {
        "total_steps": SIGNAL_TOTAL,
        "eval_every": 50_000,
        "eval_episodes": 3,
        "log_every": 1000,
        "checkpoint_every": 0,  # what compare runs use: only the stop writes a checkpoint
        "progress": "off",
    },
}


def _signal_config(root: Path, name: str) -> dict:
    return {**json.loads(json.dumps(SIGNAL_CONFIG)), "logdir": str(root), "run_name": name}


@pytest.fixture(scope="module")
def continuous_sarsa(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("continuous_sarsa")
    run_experiment(validate_config(_signal_config(root, "continuous")))
    return root / "continuous"


def _start_cli_run(tmp_path: Path, name: str, **popen) -> tuple[subprocess.Popen, Path]:
    import yaml

    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(_signal_config(tmp_path, name)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlsoft.cli", "train", str(config)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )
    run_dir = tmp_path / name
    deadline = time.monotonic() + 120
    while not list(run_dir.glob("events.out.tfevents.*")):  # training has started
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run did not start within 120 s"
        time.sleep(0.01)
    return proc, run_dir


def _assert_stopped_with_checkpoint(proc: subprocess.Popen, run_dir: Path) -> int:
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("rlsoft: interrupted: stopped at step ")
    assert last.endswith(f"continue with: rlsoft train --resume {run_dir}"), last
    step = int(latest_checkpoint(run_dir).name.removeprefix("step_"))
    # The events file exists just before the first step, so on a loaded machine the signal
    # can land before it: a checkpoint at step 0 is then the right answer.
    assert 0 <= step < SIGNAL_TOTAL and not (run_dir / "summary.json").exists()
    assert f"stopped at step {step:,} of {SIGNAL_TOTAL:,}" in last
    return step


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_at_a_random_moment_then_resume_equals_the_continuous_run(
    tmp_path, continuous_sarsa
):
    """SIGINT a CLI run at a random moment: it stops after the current step with a checkpoint
    (although checkpoint_every is 0), prints the resume command and exits 130; running that
    command ends bit-identical to the continuous run."""
    delay = float(np.random.default_rng().uniform(0.0, 0.5))
    proc, run_dir = _start_cli_run(tmp_path, "interrupted")
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    step = _assert_stopped_with_checkpoint(proc, run_dir)
    _next_second()
    done = subprocess.run(
        [sys.executable, "-m", "rlsoft.cli", "train", "--resume", str(run_dir)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"{SIGNAL_TOTAL:,} steps" in done.stdout
    assert_same_run(run_dir, continuous_sarsa, split_steps=(step,))
    history = json.loads((run_dir / "resume_history.json").read_text())
    assert [(entry["step"], entry["changed"]) for entry in history] == [(step, {})], (
        f"SIGINT after {delay:.3f} s"
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_stops_a_cli_run_like_ctrl_c(tmp_path):
    proc, run_dir = _start_cli_run(tmp_path, "terminated")
    proc.send_signal(signal.SIGTERM)
    _assert_stopped_with_checkpoint(proc, run_dir)


WORKER = """
import signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # as rlsoft compare's workers do
import yaml
import agents
from rlsoft.run.config import validate_config
from rlsoft.run.experiment import run_experiment
run_experiment(validate_config(yaml.safe_load(open(sys.argv[1]))))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_terminated_compare_worker_leaves_a_checkpoint_and_exits(tmp_path):
    """A ``rlsoft compare`` worker ignores SIGINT (its parent handles Ctrl-C) and is then
    terminated: the ignored SIGINT stays ignored, and the SIGTERM writes a checkpoint and then
    ends the process as SIGTERM does (so the worker does not go on to its next run)."""
    import yaml

    config = tmp_path / "worker.yaml"
    config.write_text(yaml.safe_dump(_signal_config(tmp_path, "worker")))
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(config)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    run_dir = tmp_path / "worker"
    deadline = time.monotonic() + 120
    while not list(run_dir.glob("events.out.tfevents.*")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    assert proc.poll() is None, "an ignored SIGINT stopped the run"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGTERM, err
    assert not (run_dir / ".rlsoft-pid").exists()  # no stale pid from the terminated worker
    step = int(latest_checkpoint(run_dir).name.removeprefix("step_"))
    assert 0 <= step < SIGNAL_TOTAL and not (run_dir / "summary.json").exists()  # as above
    assert _trainer_state(run_dir)["step"] == step


def test_a_stop_requested_from_another_thread_checkpoints_and_raises(tmp_path):
    """``stop_event`` (the API for runs outside the main thread): the run stops, writes a
    checkpoint at the step it reached and raises RunInterrupted naming the resume command."""
    import threading

    from rlsoft.run.trainer import RunInterrupted

    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    with pytest.raises(RunInterrupted) as caught:
        run_experiment(validate_config(_signal_config(tmp_path, "stopped")), stop_event=stop)
    timer.cancel()
    run_dir = tmp_path / "stopped"
    assert caught.value.run_dir == run_dir
    assert caught.value.resume_command == f"rlsoft train --resume {run_dir}"
    assert latest_checkpoint(run_dir).name == f"step_{caught.value.step:010d}"
    assert _trainer_state(run_dir)["step"] == caught.value.step < SIGNAL_TOTAL


@pytest.mark.parametrize("evaluation", [2, 3], ids=["mid-run", "final"])
def test_a_stop_during_an_evaluation_cuts_it_short_and_the_resume_redoes_it(
    tmp_path, monkeypatch, evaluation
):
    """A stop requested in the middle of an evaluation (an Atari one takes minutes) does not
    wait for its end: the run checkpoints at once with that evaluation pending, logs none of
    it, and the resumed run does it first, ending bit-identical to the continuous run —
    for an evaluation during training and for the final one."""
    import threading

    from rlsoft.rl import collector
    from rlsoft.run.trainer import RunInterrupted

    run_experiment(validate_config(_kind_config(tmp_path, "dqn_single_env", "continuous")))
    original = collector.evaluate_greedy
    calls, episodes = [], []

    def stopping(*args, stop=None, **kwargs):
        calls.append(1)
        if len(calls) == evaluation:  # after the first of its episodes: part way through

            def on_episode(*episode):
                episodes.append(episode)
                stop.set()

            kwargs["on_episode"] = on_episode
        return original(*args, stop=stop, **kwargs)

    monkeypatch.setattr(collector, "evaluate_greedy", stopping)
    config = validate_config(_kind_config(tmp_path, "dqn_single_env", "split"))
    assert config.train.eval_episodes >= 2
    with pytest.raises(RunInterrupted) as caught:
        run_experiment(config, stop_event=threading.Event())
    step = caught.value.step
    assert step == config.train.eval_every * evaluation and len(episodes) == 1
    final = step == config.train.total_steps
    assert str(caught.value).startswith(
        f"stopped during the final evaluation at step {step:,}"
        if final
        else f"stopped at step {step:,} of {config.train.total_steps:,}"
    )
    split = tmp_path / "split"
    state = _trainer_state(split)
    assert state["step"] == step and state["eval_pending"] is True
    assert step not in [s for s, _ in state["eval_history"]]
    assert not (split / "summary.json").exists()
    monkeypatch.setattr(collector, "evaluate_greedy", original)
    _next_second()
    resume_experiment(split)
    assert _trainer_state(split)["eval_pending"] is False
    assert_same_run(split, tmp_path / "continuous", split_steps=(step,))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_second_ctrl_c_aborts_at_once_and_handlers_are_restored(tmp_path, monkeypatch):
    """Two SIGINTs in a row: the second one raises KeyboardInterrupt without waiting for the
    checkpoint; after the run, SIGINT and SIGTERM are handled as before it."""
    from rlsoft.rl.collector import EnvDriver
    from rlsoft.run.trainer import RunInterrupted

    original = EnvDriver.advance
    calls = []

    def advance(self, budget, step):
        calls.append(step)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, budget, step)

    monkeypatch.setattr(EnvDriver, "advance", advance)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt) as caught:
        run_experiment(validate_config(_signal_config(tmp_path, "aborted")))
    assert not isinstance(caught.value, RunInterrupted)
    assert latest_checkpoint(tmp_path / "aborted") is None
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


# --------------------------------------------------------------------------------------------
# What --resume --set may change
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_dqn_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("small_dqn")
    data = _kind_config(root, "dqn", "small", total=200)
    data["agent"]["n_step"] = 2
    run_experiment(validate_config(data))
    return root / "small"


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("agent.gamma=0.5", "agent.gamma"),
        ("agent.n_step=3", "agent.n_step"),
        ("agent.buffer_size=500", "agent.buffer_size"),
        ("env.num_envs=4", "env.num_envs"),
        ("env.id=Acrobot-v1", "env.id"),
        ("exploration.policy=boltzmann", "exploration.policy"),
        ("seed=4", "seed"),
        ("train.torch_threads=2", "train.torch_threads"),
        # Also invalid with the run's n_step 2: refused as a change, not for that clash.
        ("agent.target=soft", "agent.target"),
        # A section: the suggestion sets the changed leaf, not a dict in Python's spelling.
        ("env.kwargs.sutton_barto_reward=true", "env.kwargs"),
    ],
)
def test_resume_refuses_a_change_to_the_learning_problem(small_dqn_run, override, field, capsys):
    from rlsoft.cli import main

    files = {p: p.read_bytes() for p in small_dqn_run.rglob("*") if p.is_file()}
    code = main(["train", "--resume", str(small_dqn_run), "--set", override])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(
        f"rlsoft: error: a resumed run cannot change {field} ("
    ), err
    # The fix it suggests is the override itself, ready to paste.
    assert err.rstrip().endswith(f"start a new run with rlsoft train CONFIG --set {override}")
    assert {p: p.read_bytes() for p in small_dqn_run.rglob("*") if p.is_file()} == files


@pytest.mark.parametrize("override", ["logdir=/tmp/elsewhere", "run_name=other", "name=other"])
def test_resume_keeps_its_run_dir_and_names_without_calling_them_learning(
    small_dqn_run, override, capsys
):
    from rlsoft.cli import main

    files = {p: p.read_bytes() for p in small_dqn_run.rglob("*") if p.is_file()}
    assert main(["train", "--resume", str(small_dqn_run), "--set", override]) == 2
    err = capsys.readouterr().err
    key = override.split("=")[0]
    assert err.startswith(f"rlsoft: error: a resumed run cannot change {key} ("), err
    assert "continues in its own run dir" in err and "what the run learns" not in err
    assert {p: p.read_bytes() for p in small_dqn_run.rglob("*") if p.is_file()} == files


def test_a_section_given_whole_is_refused_where_it_would_reset_other_fields(small_dqn_run, capsys):
    """``--set agent={type: dqn}`` means the same on a resume as on ``rlsoft train``: the
    whole section, the rest of it at the defaults. On a run under way that would silently
    reset fields the user did not name (here n_step 2; for ``train={...}`` the evaluation
    and checkpoint cadence), so it is refused, naming them, for the fields one by one."""
    import rlsoft
    from rlsoft.cli import main
    from rlsoft.cli.api import experiment_config
    from rlsoft.errors import ConfigError

    files = {p: p.read_bytes() for p in small_dqn_run.rglob("*") if p.is_file()}
    config = experiment_config(small_dqn_run / "config.yaml", overrides=["agent={type: dqn}"])
    assert config.agent_config().n_step == 1  # what train makes of it
    assert main(["train", "--resume", str(small_dqn_run), "--set", "agent={type: dqn}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(
        "rlsoft: error: --set gives the whole agent section, which replaces it as on rlsoft "
        "train and so would also change "
    ), err
    assert "more on this resumed run; set the fields to change one by one instead" in err
    assert err.rstrip().endswith("one by one instead")  # agent.type is dqn already
    assert main(["train", "--resume", str(small_dqn_run), "--set", "train={total_steps: 400}"])
    err = capsys.readouterr().err
    assert "gives the whole train section" in err and "train.eval_every" in err, err
    assert err.rstrip().endswith("one by one instead (--set train.total_steps=400)"), err
    with pytest.raises(ConfigError, match=r"overrides gives the whole train section"):
        rlsoft.resume(small_dqn_run, overrides={"train": {"total_steps": 400}})
    # A field the user names is refused as the change it is, before the section's others.
    assert main(["train", "--resume", str(small_dqn_run), "--set", "agent={type: c51}"]) == 2
    assert "a resumed run cannot change agent.type ('dqn' → 'c51')" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in small_dqn_run.rglob("*") if p.is_file()} == files


def test_a_schedule_for_a_number_is_named_whole_in_the_refusal(small_dqn_run, capsys):
    """agent.lr was a number; the override makes it a schedule: the sentence shows both
    values (a flattened comparison would have shown the missing side as None)."""
    from rlsoft.cli import main

    schedule = "agent.lr={type: linear, start: 0.001, end: 0.0001, duration: 300}"
    assert main(["train", "--resume", str(small_dqn_run), "--set", schedule]) == 2
    err = capsys.readouterr().err
    assert "a resumed run cannot change agent.lr (" in err and "None" not in err, err
    assert "→ {'type': 'linear', 'start': 0.001" in err
    # A number that became a section is suggested whole, in --set's YAML, quoted for a shell.
    assert err.rstrip().endswith(
        "--set 'agent.lr={type: linear, start: 0.001, end: 0.0001, duration: 300, begin: 0}'"
    ), err


def test_resume_refuses_to_shorten_a_run(small_dqn_run, capsys):
    from rlsoft.cli import main

    code = main(["train", "--resume", str(small_dqn_run), "--set", "train.total_steps=100"])
    assert code == 2
    assert "a run cannot be shortened" in capsys.readouterr().err


def test_resume_records_a_longer_budget_in_config_and_history(tmp_path, capsys):
    import yaml

    from rlsoft.cli import main

    data = _kind_config(tmp_path, "q_learning", "extended", total=500)
    run_experiment(validate_config(data))
    run_dir = tmp_path / "extended"
    before = json.loads((run_dir / "summary.json").read_text())
    args = ["train", "--resume", str(run_dir), "--set", "train.total_steps=800"]
    assert main([*args, "--set", "train.eval_every=400", "--set", "train.eval_epsilon=0.05"]) == 0
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["train"]["total_steps"] == 800 and config["train"]["eval_every"] == 400
    assert config["train"]["eval_epsilon"] == 0.05  # evaluation only: not the learning problem
    (entry,) = json.loads((run_dir / "resume_history.json").read_text())
    assert entry["step"] == 500 and "T" in entry["time"]
    assert entry["changed"] == {
        "train.eval_epsilon": {"from": 0.0, "to": 0.05},
        "train.eval_every": {"from": 1000, "to": 400},
        "train.total_steps": {"from": 500, "to": 800},
    }
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 800
    # Evaluation time adds up over both attempts, as the wall time does.
    assert 0 < before["eval_seconds"] < summary["eval_seconds"] < summary["seconds"]


def test_a_failed_load_on_resume_closes_the_environments(tmp_path, monkeypatch):
    from rlsoft.errors import RlsoftError
    from rlsoft.rl.collector import EnvDriver

    run_experiment(validate_config(_kind_config(tmp_path, "dqn", "broken", total=100)))
    agent_file(latest_checkpoint(tmp_path / "broken")).write_bytes(b"not a checkpoint")
    # Without the manifest (a checkpoint from before it) the damage shows when loading.
    checkpoint = latest_checkpoint(tmp_path / "broken")
    (checkpoint / "manifest.json").unlink()
    state = json.loads((checkpoint / "trainer.json").read_text())
    state.pop("manifest")
    (checkpoint / "trainer.json").write_text(json.dumps(state))
    closed = []
    original = EnvDriver.close
    monkeypatch.setattr(EnvDriver, "close", lambda self: closed.append(original(self)))
    with pytest.raises(RlsoftError, match=r"agent\.pt"):
        resume_experiment(tmp_path / "broken", {"train.total_steps": 200})
    assert len(closed) == 1


# --------------------------------------------------------------------------------------------
# Timing and environments without a time limit
# --------------------------------------------------------------------------------------------


class _SlowEvalDriver:
    """A driver whose steps take 1 ms each and whose evaluations take 0.2 s."""

    unit = "steps"
    agent_file = "agent.json"

    def advance(self, budget: int, step: int) -> int:
        time.sleep(0.001 * budget)
        return budget

    def sample(self, step: int) -> None:
        pass

    def window_metrics(self, step: int) -> dict[str, float]:
        return {}

    def status(self) -> str:
        return ""

    def evaluate(self, step: int) -> dict[str, float]:
        time.sleep(0.2)
        return {"eval/mean_return": 0.0}

    def save_agent(self, path: Path) -> None:
        path.write_text("{}")

    def load_agent(self, path: Path) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def close(self) -> None:
        pass


def test_sps_counts_training_steps_only_and_evaluations_are_timed_apart(tmp_path):
    from rlsoft.run.trainer import Trainer

    config = validate_config(
        {
            "env": None,
            "agent": {"type": "classifier", "dataset": DIGITS},
            "train": {"total_steps": 100, "log_every": 20, "eval_every": 20, "progress": "off"},
        }
    )
    Trainer(_SlowEvalDriver(), config, tmp_path).run()
    curves = scalars(tmp_path)
    sps = [v for _, v in curves["charts/sps"]]
    # 1,000 steps a second while stepping; with the 0.2 s evaluations counted it would be
    # at most 20 / 0.22 ≈ 91.
    assert len(sps) == 5 and min(sps) > 300, sps
    assert [s for s, _ in curves["charts/eval_seconds"]] == [20, 40, 60, 80, 100]
    assert all(v >= 0.2 for _, v in curves["charts/eval_seconds"])


class _BlasThreadsDriver(_SlowEvalDriver):
    """Records the BLAS libraries' thread counts while the run steps."""

    def __init__(self) -> None:
        self.seen: list[dict[str, int]] = []

    def advance(self, budget: int, step: int) -> int:
        self.seen.append(_blas_threads())
        return budget

    def evaluate(self, step: int) -> dict[str, float]:
        return {"eval/mean_return": 0.0}


def _blas_threads() -> dict[str, int]:
    """Each BLAS library's threads (numpy's OpenBLAS; at some versions scipy's is another)."""
    from threadpoolctl import threadpool_info

    pools = {p["filepath"]: p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}
    assert pools, threadpool_info()  # numpy's OpenBLAS, found
    return pools


@pytest.mark.parametrize("threads", [1, 2])
def test_numpys_blas_threads_follow_torch_threads_during_a_run_only(tmp_path, threads):
    """OpenBLAS threads spinning against torch's made MinAtar runs acting on 4 or more envs
    3.3x slower with two runs on 2 shared cores: a run lowers each BLAS library to
    ``train.torch_threads`` (never raises it) and gives the caller's setting back."""
    from threadpoolctl import threadpool_limits

    from rlsoft.run.trainer import Trainer

    config = validate_config(
        {
            "env": None,
            "agent": {"type": "classifier", "dataset": DIGITS},
            "train": {"total_steps": 40, "log_every": 20, "torch_threads": threads},
        }
    )
    for caller in (3, 1):  # above and below the run's threads
        with threadpool_limits(limits=caller, user_api="blas"):
            before = _blas_threads()  # a library may not go as high as asked
            driver = _BlasThreadsDriver()
            Trainer(driver, config, tmp_path / str(caller)).run()
            lowered = {path: min(n, threads) for path, n in before.items()}
            assert driver.seen and all(seen == lowered for seen in driver.seen), driver.seen
            assert _blas_threads() == before


def test_runs_overlapping_in_threads_share_the_blas_limit_and_give_the_callers_back():
    """The limit is process-wide: the first run to start sets it, the last to end restores
    the caller's, whatever order they end in."""
    from threadpoolctl import threadpool_limits

    from rlsoft.run.trainer import blas_threads_at_most

    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        lowered = {path: 1 for path in before}
        first, second = blas_threads_at_most(1), blas_threads_at_most(1)
        first.__enter__()
        second.__enter__()
        assert _blas_threads() == lowered
        first.__exit__(None, None, None)  # the first ends while the second still runs
        assert _blas_threads() == lowered
        second.__exit__(None, None, None)
        assert _blas_threads() == before


def test_an_episode_too_long_to_record_starts_over_with_a_warning(tmp_path, monkeypatch):
    """CliffWalking-v1 has no time limit: the episode record stops at the cap (so it cannot
    grow without bound), and a resume in such an episode says so and starts it over."""
    from rlsoft.rl.envs import state as envstate

    monkeypatch.setattr(envstate, "MAX_RECORDED_ACTIONS", 50)
    data = {
        "seed": 0,
        "env": {"id": "CliffWalking-v1"},
        "agent": {"type": "q_learning", "learning_rate": 0.5},
        "exploration": {"policy": "epsilon_greedy", "epsilon": 1.0},  # a random walk
        # The greedy evaluation may walk in circles (up to 100,000 steps): one episode only.
        "train": {
            "total_steps": 300,
            "eval_every": 0,
            "eval_episodes": 1,
            "log_every": 100,
            "progress": "off",
        },
        "logdir": str(tmp_path),
        "run_name": "long",
    }
    assert gym.spec("CliffWalking-v1").max_episode_steps is None
    run_experiment(validate_config(data))
    saved = _trainer_state(tmp_path / "long")["driver"]["env"]
    assert saved["episode_length"][0] > 50 and saved["sub_envs"][0]["actions"] is None
    with pytest.warns(RuntimeWarning, match="set env.max_episode_steps for an exact resume"):
        resume_experiment(tmp_path / "long", {"train.total_steps": 400})
    assert json.loads((tmp_path / "long" / "summary.json").read_text())["steps"] == 400


class ShiftedCatchEnv(CatchImageEnv):
    """CatchImage whose ball is drawn ``shift`` columns over, a class-wide setting a test
    changes between a run and its resume: an environment whose replay, in the resumed run,
    does not reach the saved observations (not deterministic given its seed)."""

    shift = 0

    def _obs(self) -> np.ndarray:
        board = super()._obs()
        board[..., 0] = np.roll(board[..., 0], self.shift, axis=1)
        return board


SHIFTED_CATCH = "rlsoft_test/ShiftedCatch-v0"
if SHIFTED_CATCH not in gym.registry:
    gym.register(SHIFTED_CATCH, entry_point=ShiftedCatchEnv, max_episode_steps=100)


@pytest.mark.parametrize("checkpoint_replay", [True, False])
def test_an_environment_that_replays_differently_starts_its_episodes_over(
    tmp_path, monkeypatch, checkpoint_replay
):
    """The replay reaches other observations than were saved: the resumed run says so,
    starts the interrupted episodes over, and the agent's frame replay ends them at their last
    stored transitions, as truncations (the n-step returns of 3 stop there), instead of
    refusing the new episode's frames."""
    monkeypatch.setattr(ShiftedCatchEnv, "shift", 0)
    split, total = 246, 400
    data = _dqn({"id": SHIFTED_CATCH, "num_envs": 2}, BOLTZMANN, n_step=3, network="minatar_cnn")
    data["train"] = {**data["train"], "total_steps": split, "checkpoint_replay": checkpoint_replay}
    data.update(seed=2, device="cpu", logdir=str(tmp_path), run_name="shifted")
    run_experiment(validate_config(data))
    saved = _trainer_state(tmp_path / "shifted")["driver"]["env"]
    assert min(saved["episode_length"]) > 0  # both copies are mid-episode
    monkeypatch.setattr(ShiftedCatchEnv, "shift", 1)
    _next_second()
    with pytest.warns(RuntimeWarning, match="starts the interrupted episode over"):
        resume_experiment(tmp_path / "shifted", {"train.total_steps": total})
    assert json.loads((tmp_path / "shifted" / "summary.json").read_text())["steps"] == total
    replay = torch.load(agent_file(latest_checkpoint(tmp_path / "shifted")), weights_only=True)
    replay = replay["replay"]
    if checkpoint_replay:
        cut = slice(split - 2, split)  # the last vector step before the checkpoint
        assert replay["done"][cut].all() and not replay["terminated"][cut].any()
        assert (replay["episode_step"][split : split + 2] == 0).all()  # new episodes


def test_the_episode_record_is_capped():
    recorder = EpisodeRecorder(gym.make("CliffWalking-v1"), max_actions=5)
    first, _ = recorder.reset(seed=3)
    for _ in range(5):
        recorder.step(0)
    assert recorder.rlsoft_snapshot()["actions"] == [0] * 5
    recorder.step(0)
    snapshot = json.loads(json.dumps(recorder.rlsoft_snapshot()))
    assert snapshot["actions"] is None
    fresh = EpisodeRecorder(gym.make("CliffWalking-v1"), max_actions=5)
    fresh.reset(seed=99)
    assert fresh.rlsoft_restore(snapshot) == first  # the episode starts over


# --------------------------------------------------------------------------------------------
# train.checkpoint_replay: false — checkpoints leave the replay out; a resume refills it
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("frame_replay", ["auto", "off"])
def test_checkpoints_without_the_replay_are_small_and_resume_by_refilling(tmp_path, frame_replay):
    """``checkpoint_replay: false``: the agent file holds no transitions (only the frames of
    the stacks in progress), the run resumes, and gradient steps wait until the new replay
    holds more than ``learning_starts`` transitions — counted here by brute force."""
    split, total = 246, 600

    def config(name: str, keep: bool, steps: int) -> dict:
        data = _dqn(
            {"id": CATCH, "num_envs": 2},
            BOLTZMANN,
            network="minatar_cnn",
            frame_replay=frame_replay,
        )
        data["train"] = {**data["train"], "total_steps": steps, "checkpoint_replay": keep}
        return {**data, "seed": 3, "device": "cpu", "logdir": str(tmp_path), "run_name": name}

    run_experiment(validate_config(config("kept", True, split)))
    run_experiment(validate_config(config("left_out", False, split)))
    kept = agent_file(latest_checkpoint(tmp_path / "kept"))
    left_out = agent_file(latest_checkpoint(tmp_path / "left_out"))
    replay = torch.load(left_out, weights_only=True)["replay"]
    assert replay["kept"] is False
    assert not {"actions", "rewards", "obs", "frames"} & replay.keys()
    assert left_out.stat().st_size < kept.stat().st_size
    # Everything but the replay is the same state as the run that kept it.
    with_replay = torch.load(kept, weights_only=True)
    without = torch.load(left_out, weights_only=True)
    for key in ("online", "target", "optimizer", "rng", "counters"):
        assert_identical(without[key], with_replay[key], key)

    _next_second()
    resume_experiment(tmp_path / "left_out", {"train.total_steps": total})
    assert (tmp_path / "left_out" / "summary.json").exists()
    agent = DQN_AGENT
    updates, stored = 0, 0
    for step in range(0, total, 2):  # vector steps of 2 environments
        after = step + 2
        stored += 2
        if step == split:
            stored = 2  # the replay restarts empty at the resume
        refill = agent["learning_starts"] if step >= split else 0
        if after > agent["learning_starts"] and stored > refill:
            updates += after // agent["train_freq"] - step // agent["train_freq"]
    final = torch.load(agent_file(latest_checkpoint(tmp_path / "left_out")), weights_only=True)
    assert final["counters"]["updates"] == updates
    assert updates < (total - agent["learning_starts"]) // agent["train_freq"]


def test_a_refill_split_by_a_checkpoint_with_the_replay_resumes_exactly(tmp_path):
    """Resumed without its replay at 246, the run waits for 100 new transitions; a
    checkpoint written at 300, mid-refill, with ``train.checkpoint_replay`` switched on must
    carry that wait, so that the run resumed from it equals one resumed once to the end."""
    split, middle, total = 246, 300, 600

    def config(name: str) -> dict:
        data = _dqn({"id": CATCH, "num_envs": 2}, BOLTZMANN, network="minatar_cnn")
        data["train"] = {**data["train"], "total_steps": split, "checkpoint_replay": False}
        return {**data, "seed": 3, "device": "cpu", "logdir": str(tmp_path), "run_name": name}

    for name in ("once", "twice"):
        run_experiment(validate_config(config(name)))
    _next_second()
    resume_experiment(tmp_path / "once", {"train.total_steps": total})
    resume_experiment(
        tmp_path / "twice", {"train.total_steps": middle, "train.checkpoint_replay": True}
    )
    mid = torch.load(agent_file(latest_checkpoint(tmp_path / "twice")), weights_only=True)
    assert mid["replay"].get("kept", True) and len(mid["replay"]["actions"]) == middle - split
    assert mid["counters"]["updates"] == split // 2 - 100 // 2  # none since the split
    resume_experiment(tmp_path / "twice", {"train.total_steps": total})
    once, twice = (
        torch.load(agent_file(latest_checkpoint(tmp_path / name)), weights_only=True)
        for name in ("once", "twice")
    )
    for key in ("online", "target", "optimizer", "counters"):
        assert_identical(twice[key], once[key], key)


# --------------------------------------------------------------------------------------------
# One process at a time trains a run dir
# --------------------------------------------------------------------------------------------


def test_a_run_in_use_by_another_process_is_not_resumed(tmp_path, capsys):
    """A second ``--resume`` of a run that is still training would write every curve and
    checkpoint twice: it is refused, naming the process, and changes nothing."""
    from rlsoft.cli import main

    data = _kind_config(tmp_path, "q_learning", "busy", total=500)
    run_experiment(validate_config(data))
    run_dir = tmp_path / "busy"
    assert not (run_dir / ".rlsoft-pid").exists()  # released and tidied after training
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_RUN_DIR, str(run_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        files = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
        args = ["train", "--resume", str(run_dir), "--set", "train.total_steps=800"]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err == (
            f"rlsoft: error: run dir {str(run_dir)!r} is in use by another process (pid "
            f"{holder.pid}), which is training it; wait for it to finish, or stop it, before "
            "resuming\n"
        )
        assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == files
    finally:
        holder.kill()
        holder.wait()
    # The kernel released the lock with the process (killed, so its pid file stayed behind).
    assert main(["train", "--resume", str(run_dir), "--set", "train.total_steps=800"]) == 0
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 800


def test_a_file_system_without_directory_locks_trains_with_a_warning(tmp_path, monkeypatch):
    """NFS refuses flock on a directory opened read-only (EBADF): the run trains unguarded,
    with a warning that says so, instead of failing."""
    import errno
    import fcntl

    def no_lock(fd, operation):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(fcntl, "flock", no_lock)
    with pytest.warns(RuntimeWarning, match="cannot be locked on this file system"):
        run_experiment(validate_config(_kind_config(tmp_path, "q_learning", "nfs", total=300)))
    assert json.loads((tmp_path / "nfs" / "summary.json").read_text())["steps"] == 300


HOLD_RUN_DIR = """
import sys, time
from pathlib import Path
from rlsoft.run.experiment import hold_run_dir
with hold_run_dir(Path(sys.argv[1])):
    print("holding", flush=True)
    time.sleep(60)
"""
