"""Greedy evaluation of an agent on a separate environment."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

# An environment without a time limit (CliffWalking-v1) and a greedy policy that walks in a
# circle would never end an episode; evaluation stops such an episode here.
MAX_EVAL_EPISODE_STEPS = 100_000


def evaluate_greedy(
    agent: Any, env: gym.Env, episodes: int, seed: int, render: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``episodes`` episodes with ``agent.act_greedy`` and return (returns, lengths).

    Episode i starts from ``env.reset(seed=seed + i)``, so every evaluation of a run (and of
    every run with the same seed) faces the same start states: differences between
    evaluations come from the policy, not from the draw of start states.
    """
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.act_greedy(obs))
            returns[episode] += float(reward)
            lengths[episode] += 1
            done = terminated or truncated or lengths[episode] >= MAX_EVAL_EPISODE_STEPS
            if render:
                frame = env.render()
                if isinstance(frame, str):  # text renderings (ansi) are printed
                    print(frame)
    return returns, lengths
