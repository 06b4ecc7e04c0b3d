"""RiverSwim, the six-state chain of Strehl & Littman (2008).

A. L. Strehl and M. L. Littman, "An analysis of model-based Interval Estimation for Markov
Decision Processes", Journal of Computer and System Sciences 74(8), 2008, Figure 2.

A swimmer in states 0 … 5 of a river that flows left. Swimming *left* (action 0) always
succeeds: it moves one state left, and in state 0 it stays and pays 5. Swimming *right*
(action 1) against the current moves right with probability 0.3, stays with 0.6 and is
swept left with 0.1; in state 0 it stays with 0.7, and in state 5 it stays with 0.3 — paying
10,000 — and is swept left with 0.7. Episodes start in state 1 or 2 with equal probability.
The small sure reward at the shore is what dithering exploration settles on; the optimal
policy swims right everywhere.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

N_STATES = 6
LEFT, RIGHT = 0, 1


def transition_table(
    left_reward: float = 5.0, right_reward: float = 10_000.0
) -> tuple[np.ndarray, np.ndarray]:
    """``P[s, a, s']`` and ``R[s, a, s']`` of the paper's Figure 2."""
    p = np.zeros((N_STATES, 2, N_STATES))
    r = np.zeros((N_STATES, 2, N_STATES))
    for s in range(N_STATES):
        p[s, LEFT, max(s - 1, 0)] = 1.0
        p[s, RIGHT, min(s + 1, N_STATES - 1)] += 0.3
        p[s, RIGHT, s] += 0.6
        p[s, RIGHT, max(s - 1, 0)] += 0.1
    p[N_STATES - 1, RIGHT] = 0.0
    p[N_STATES - 1, RIGHT, N_STATES - 1] = 0.3
    p[N_STATES - 1, RIGHT, N_STATES - 2] = 0.7
    r[0, LEFT, 0] = left_reward
    r[N_STATES - 1, RIGHT, N_STATES - 1] = right_reward
    return p, r


class RiverSwimEnv(gym.Env[int, int]):
    """RiverSwim with the paper's probabilities and rewards.

    :param left_reward: paid for swimming left in state 0 (paper: 5).
    :param right_reward: paid for staying in state 5 while swimming right (paper: 10,000).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, *, left_reward: float = 5.0, right_reward: float = 10_000.0) -> None:
        self.transitions, self.rewards = transition_table(left_reward, right_reward)
        self._cumulative = np.cumsum(self.transitions, axis=-1)
        self.observation_space = gym.spaces.Discrete(N_STATES)
        self.action_space = gym.spaces.Discrete(2)
        self._state = 1

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Start in state 1 or 2 with equal probability, or in ``options["state"]`` if given."""
        super().reset(seed=seed)
        start = (options or {}).get("state")
        if start is None:
            self._state = 1 + int(self.np_random.random() < 0.5)
        elif isinstance(start, (int, np.integer)) and 0 <= start < N_STATES:
            self._state = int(start)
        else:
            raise ValueError(f"options['state'] must be a state 0..{N_STATES - 1}, got {start!r}")
        return self._state, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(f"RiverSwim actions are 0 (left) and 1 (right), got {action!r}")
        s, a = self._state, int(action)
        u = self.np_random.random()
        # searchsorted on the cumulative row: the first s' whose cumulative mass exceeds u.
        nxt = min(int(np.searchsorted(self._cumulative[s, a], u, side="right")), N_STATES - 1)
        self._state = nxt
        return nxt, float(self.rewards[s, a, nxt]), False, False, {}
