"""``agent.precision: bfloat16`` learns what float32 learns, on a task small enough for CI
(slow; ``pytest -m slow``; the ``test_ci_*`` one is in CI's budget).

The task is a one-step image bandit for the Nature network: a 40×40 grayscale frame of
noise holds one bright 8×8 square in its left or its right half, and the action that names
the half earns 1 (the other 0). With γ = 0 the optimal Q-values are exactly 1 and 0, so
what each precision learned can be compared with the truth and with each other. The
unit tests in ``tests/unit/dqn/test_conv.py`` check the bfloat16 arithmetic itself; this
one checks that training through it ends where float32's does.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.dqn import DQNAgent, DQNConfig
from rlsoft.explore.policies import EpsilonGreedy

pytestmark = pytest.mark.slow

FRAME = gym.spaces.Box(0, 255, (1, 40, 40), np.uint8)  # the Nature network's smallest input
STEPS = 600


def frames(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` frames and the half (0: left, 1: right) each one's square is in."""
    side = rng.integers(0, 2, n)
    x = rng.integers(0, 60, (n, 1, 40, 40)).astype(np.uint8)
    for i in range(n):
        row, col = rng.integers(0, 33), rng.integers(0, 13) + 20 * side[i]
        x[i, 0, row : row + 8, col : col + 8] = 255
    return x, side


def train(precision: str, seed: int) -> DQNAgent:
    agent = DQNAgent(
        observation_space=FRAME,
        action_space=gym.spaces.Discrete(2),
        policy=EpsilonGreedy(0.2),
        config=DQNConfig(
            network="nature_cnn",
            precision=precision,
            gamma=0.0,
            lr=5e-4,
            batch_size=32,
            buffer_size=5_000,
            learning_starts=200,
            train_freq=1,
            target_update_interval=100,
        ),
        rng=np.random.default_rng(seed),
        torch_seed=seed,
        num_envs=1,
    )
    rng = np.random.default_rng(seed + 100)
    obs, side = frames(rng, 1)
    for step in range(STEPS):
        action = agent.act(obs, step)
        following, following_side = frames(rng, 1)
        reward = (action == side).astype(np.float64)
        agent.observe(obs, action, reward, following, np.array([True]), np.array([False]), step)
        obs, side = following, following_side
    return agent


def test_ci_bfloat16_network_learns_the_q_values_float32_learns():
    torch.set_num_threads(1)
    held_out, sides = frames(np.random.default_rng(12345), 300)
    truth = np.stack([sides == 0, sides == 1], axis=1).astype(np.float32)
    for seed in range(3):
        learned = {p: train(p, seed).q_values(held_out) for p in ("float32", "bfloat16")}
        for precision, q in learned.items():
            accuracy = float(np.mean(q.argmax(1) == sides))
            assert accuracy >= 0.95, (precision, seed, accuracy)
            assert np.abs(q - truth).mean() < 0.05, (precision, seed)  # measured: 0.017–0.019
        gap = np.abs(learned["bfloat16"] - learned["float32"])
        assert gap.mean() < 0.02, (seed, gap.mean())  # the same function (measured: 0.005)
