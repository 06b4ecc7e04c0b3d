"""Greedy (or ε-greedy) evaluation of an agent on a separate environment."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from rlsoft.rl.spaces import discrete_actions

# An environment without a time limit (CliffWalking-v1) and a greedy policy that walks in a
# circle would never end an episode; evaluation stops such an episode here.
MAX_EVAL_EPISODE_STEPS = 100_000

MAX_EVAL_EPISODES = 10_000_000
"""Most episodes one evaluation runs: the returns and lengths are kept, 16 bytes an episode,
and ten million already take days on any environment."""


class EvaluationStopped(Exception):
    """An evaluation gave up part way because a stop was requested (its ``stop`` event was
    set): an Atari evaluation can take minutes, longer than anyone waits after Ctrl-C. The
    trainer checkpoints and redoes the whole evaluation when the run resumes."""


def evaluate_greedy(
    agent: Any,
    env: gym.Env,
    episodes: int,
    seed: int,
    render: bool = False,
    *,
    epsilon: float = 0.0,
    rng: np.random.Generator | None = None,
    on_episode: Callable[[int, float, int], None] | None = None,
    stop: threading.Event | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``episodes`` episodes with ``agent.act_greedy`` and return (returns, lengths).

    Episode i starts from ``env.reset(seed=seed + i)``, so every evaluation of a run (and of
    every run with the same seed) faces the same start states: differences between
    evaluations come from the policy, not from the draw of start states.

    :param epsilon: with probability ε a step takes a uniformly random action instead of the
        greedy one, ``π(a|s) = ε/|A| + (1 − ε)·[a ∈ G(s)]/|G(s)|`` with ``G(s)`` the maximisers
        of Q(s, ·) (``act_greedy`` breaks ties at random): Mnih et al. (2015,
        "Human-level control through deep reinforcement learning", Methods: Evaluation
        procedure) evaluate Atari agents with ε = 0.05. 0: greedy, and nothing is drawn.
    :param rng: the generator of those draws (one uniform per step, then the random action
        when it is below ε); default ``np.random.default_rng(seed)``.
    :param on_episode: called with ``(episode, return, length)`` after each episode (progress).
    :param stop: checked before every step; once set, :class:`EvaluationStopped` is raised.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    n_actions = 0
    if epsilon > 0:
        n_actions = discrete_actions(env.action_space, "ε-greedy evaluation", "evaluate greedily")
    if epsilon > 0 and rng is None:
        rng = np.random.default_rng(seed)
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            if stop is not None and stop.is_set():
                raise EvaluationStopped(f"stopped in evaluation episode {episode + 1}")
            if epsilon > 0 and rng.random() < epsilon:
                action = int(rng.integers(n_actions))
            else:
                action = agent.act_greedy(obs)
            obs, reward, terminated, truncated, _ = env.step(action)
            returns[episode] += float(reward)
            lengths[episode] += 1
            done = terminated or truncated or lengths[episode] >= MAX_EVAL_EPISODE_STEPS
            if render:
                frame = env.render()
                if isinstance(frame, str):  # text renderings (ansi) are printed
                    print(frame)
        if on_episode is not None:
            on_episode(episode, float(returns[episode]), int(lengths[episode]))
    return returns, lengths
