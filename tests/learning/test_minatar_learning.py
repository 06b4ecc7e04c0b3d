"""DQN from pixels on MinAtar (slow; ``pytest -m slow``; skipped without the minatar extra).

The ``test_ci_*`` one is the small budget CI runs (``pytest -m slow -k ci_``): the shipped
``minatar_breakout_dqn.yaml`` — the MinAtar network on 10×10×4 bool frames stored once each,
the MinAtar paper's DQN hyperparameters — for a short budget, against the random policy's
return measured in the test on the same game.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import agents  # noqa: F401 - registers the agents
from rlsoft.rl.envs.factory import make_env
from rlsoft.run.config import EnvConfig, load_config
from rlsoft.run.experiment import run_experiment

pytest.importorskip("minatar", reason="MinAtar is an optional extra: pip install 'rlsoft[minatar]'")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BUDGET = 30_000

pytestmark = pytest.mark.slow


def random_policy_return(env_id: str, episodes: int, seed: int = 0) -> float:
    """Mean return of uniformly random actions (MinAtar's README: 0.5 on Breakout)."""
    env = make_env(EnvConfig(id=env_id))  # registers minatar's ids
    env.action_space.seed(seed)
    returns = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def test_ci_minatar_breakout_dqn_beats_the_random_policy(tmp_path):
    random_return = random_policy_return("MinAtar/Breakout-v1", 200)
    assert 0.2 < random_return < 1.0  # MinAtar's README: 0.5 ± 0.02 over 1,000 episodes
    config = load_config(
        CONFIGS / "minatar_breakout_dqn.yaml",
        [
            f"logdir={tmp_path}",
            "train.progress=off",
            "train.checkpoint_every=0",
            f"train.total_steps={BUDGET}",
            "train.eval_every=10000",
            "train.eval_episodes=20",
            # The paper's schedule, compressed into the short budget: ε reaches 0.1 at 20k.
            "exploration.epsilon.duration=15000",
        ],
        seed=0,
    )
    history = run_experiment(config).eval_history
    best = max(value for _, value in history)
    # Seed 0 evaluated 0.05, 2.2 and 5.45 at 10k, 20k and 30k steps (2026-12-07, random 0.4);
    # seeds 1 and 2 reached 5.05 and 4.75 at 30k (2.35, 3.15 at 20k), about ten times the
    # random policy. The bar leaves room for another CPU's rounding to follow a different
    # trajectory.
    assert best >= 3 * random_return, (random_return, history)
