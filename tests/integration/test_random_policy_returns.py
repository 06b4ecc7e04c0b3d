"""scripts/random_policy_returns.py against returns counted here by hand on a tiny chain."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "random_policy_returns.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("random_policy_returns", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_the_returns_are_the_random_episodes_counted_independently(script):
    """FrozenLake 4×4, not slippery: a random walk's return is 1 when it reaches the goal.
    The same seeds replayed here with gymnasium directly give the same episodes."""
    result = script.random_policy_returns("FrozenLake-v1", 200, seed=3)
    env = gym.make("FrozenLake-v1")
    env.action_space.seed(3)
    returns, lengths = [], []
    for episode in range(200):
        env.reset(seed=3 + episode)
        total, steps, done = 0.0, 0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total, steps, done = total + reward, steps + 1, terminated or truncated
        returns.append(total)
        lengths.append(steps)
    assert result.mean == pytest.approx(np.mean(returns))
    assert result.mean_length == pytest.approx(np.mean(lengths))
    p = np.mean(returns)  # returns are 0 or 1: s² = n p (1 − p) / (n − 1)
    assert result.standard_error == pytest.approx(math.sqrt(p * (1 - p) / 199))
    assert 0 < result.mean < 0.2  # the goal is rare for a random walk


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
    )


def test_the_command_prints_a_markdown_row_per_environment():
    done = _script("FrozenLake-v1", "FrozenLake8x8-v1", "--episodes", "5")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) == 3 and "| FrozenLake-v1 | 5 |" in rows[1]  # a header, two games


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["FrozenLake-v1", "--episodes", "0"], "--episodes must be at least 1"),
        (["FrozenLake-v1", "--seed", "-1"], "--seed must be a non-negative integer"),
        (["FrozenLak-v1"], "did you mean 'FrozenLake-v1'?"),
    ],
)
def test_bad_arguments_are_one_sentence(args, message):
    done = _script(*args)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert message in done.stderr and done.stdout == ""
