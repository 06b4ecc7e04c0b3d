"""DeepSea, the deep-exploration benchmark of bsuite.

Osband, Van Roy, Russo & Wen (2019), "Deep exploration via randomized value functions", JMLR
(arXiv:1703.07608), and Osband et al. (2018), "Randomized prior functions for deep
reinforcement learning" (arXiv:1806.03335); the definition matched here is bsuite's
``bsuite/environments/deep_sea.py`` (Osband et al. 2020, "Behaviour Suite for Reinforcement
Learning").

The agent starts at the top-left cell of an N×N grid and falls one row per step, so an episode
lasts exactly N steps. In every cell, one of the two actions moves it one column right and the
other one column left (clipped at the walls); which action is "right" is drawn once per cell,
each with probability ½, from ``mapping_seed`` — it is part of the MDP, not of an episode (a
mapping seed gives the same mapping as bsuite's ``DeepSea(mapping_seed=...)``).
Moving right costs ``unscaled_move_cost / N``; acting "right" in the last column pays +1 (the
last column can only be reached in the last row). The only way to the treasure is N rights in
a row, so the optimal return is ``1 − unscaled_move_cost`` (0.99), every other policy returns
at most 0, and a dithering policy finds the treasure with probability about 2⁻ᴺ per episode.

With ``deterministic=False`` (bsuite's stochastic variant) "right" succeeds with probability
1 − 1/N, and the reward of the last step gets N(0, 1) noise in the two end cells of the last
row (columns 0 and N − 1).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from rlsoft.rl.memory import check_fits


class DeepSeaEnv(gym.Env[np.ndarray, int]):
    """bsuite's DeepSea(N) as a Gymnasium environment.

    :param size: N, the side of the grid and the length of every episode (N ≥ 1).
    :param deterministic: bsuite's default; ``False`` makes "right" fail with probability 1/N
        and adds unit Gaussian noise to the final reward at the two end cells.
    :param unscaled_move_cost: the cost of one move right is this divided by N (bsuite: 0.01).
    :param randomize_actions: ``False`` is bsuite's debugging mode, where action 1 is "right"
        everywhere; the benchmark is only DeepSea with random per-cell mappings.
    :param mapping_seed: seed of the per-cell action mapping (bsuite's sweep uses 42). Every
        copy of the environment built with the same seed — training and evaluation alike — is
        the same MDP; vary it (``env.kwargs.mapping_seed``) to average over mappings.
    :param observation: ``"grid"`` (bsuite's observation: an N×N float32 one-hot of the
        position, all zeros after the last step) for function approximation, or ``"index"``
        (``Discrete(N·N + 1)``, ``row·N + column`` and N·N after the last step) for tabular
        agents.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        size: int = 10,
        *,
        deterministic: bool = True,
        unscaled_move_cost: float = 0.01,
        randomize_actions: bool = True,
        mapping_seed: int = 42,
        observation: str = "grid",
        render_mode: str | None = None,
    ) -> None:
        if not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"DeepSea size must be a positive integer, got {size!r}")
        if observation not in ("grid", "index"):
            raise ValueError(f"observation must be 'grid' or 'index', got {observation!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        # The per-cell action map (int64) and each grid observation (float32) are N×N: a
        # size of 10^5 would need 112 GiB, refused here rather than as numpy's MemoryError.
        parts = {"DeepSea's N×N action map": 8.0 * size * size}
        if observation == "grid":
            parts["one N×N grid observation"] = 4.0 * size * size
        check_fits(parts, f"lower env.kwargs.size ({size:,}: DeepSea holds N×N arrays)")
        self.size = int(size)
        self.deterministic = bool(deterministic)
        self.move_cost = float(unscaled_move_cost) / self.size
        self.observation = observation
        self.render_mode = render_mode
        if randomize_actions:
            # numpy's legacy RandomState, drawn as bsuite draws it, so that a mapping seed
            # gives the very MDP bsuite builds from it (its sweep uses mapping_seed=42).
            mapping = np.random.RandomState(mapping_seed).binomial(1, 0.5, (size, size))
        else:
            mapping = np.ones((size, size), dtype=np.int64)
        self.action_right = mapping.astype(np.int64, copy=False)  # no second N×N copy
        """``action_right[row, column]`` is the action that moves right in that cell."""
        no_cost = 1.0 if self.deterministic else (1.0 - 1.0 / self.size) ** (self.size - 1)
        self.optimal_return = no_cost - float(unscaled_move_cost)
        """Expected return of the optimal policy (always "right"), as bsuite defines it."""
        self.action_space = gym.spaces.Discrete(2)
        if observation == "grid":
            self.observation_space = gym.spaces.Box(0.0, 1.0, (size, size), np.float32)
        else:
            self.observation_space = gym.spaces.Discrete(size * size + 1)
        self._row = self._column = 0
        self.bad_episode = False
        """True once the agent left the diagonal, the only path to the treasure."""

    def _observe(self) -> np.ndarray | int:
        if self.observation == "index":
            if self._row >= self.size:
                return self.size * self.size
            return self._row * self.size + self._column
        grid = np.zeros((self.size, self.size), dtype=np.float32)
        if self._row < self.size:
            grid[self._row, self._column] = 1.0
        return grid

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray | int, dict[str, Any]]:
        super().reset(seed=seed)
        self._row = self._column = 0
        self.bad_episode = False
        return self._observe(), {}

    def step(self, action: int) -> tuple[np.ndarray | int, float, bool, bool, dict[str, Any]]:
        if self._row >= self.size:
            raise RuntimeError("DeepSea episode has ended; call reset() first")
        if not self.action_space.contains(action):
            raise ValueError(f"DeepSea actions are 0 and 1, got {action!r}")
        n, row, column = self.size, self._row, self._column
        right = int(action) == self.action_right[row, column]
        reward = 1.0 if column == n - 1 and right else 0.0
        if not self.deterministic and row == n - 1 and column in (0, n - 1):
            reward += float(self.np_random.standard_normal())
        if right:
            if self.deterministic or self.np_random.random() > 1.0 / n:
                self._column = min(column + 1, n - 1)
            reward -= self.move_cost
        else:
            if row == column:
                self.bad_episode = True
            self._column = max(column - 1, 0)
        self._row += 1
        terminated = self._row == n
        info = {"bad_episode": self.bad_episode} if terminated else {}
        return self._observe(), reward, terminated, False, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        rows = []
        for r in range(self.size):
            cells = ["@" if (r, c) == (self._row, self._column) else "." for c in range(self.size)]
            cells[-1] = "$" if r == self.size - 1 and cells[-1] == "." else cells[-1]
            rows.append("".join(cells))
        return "\n".join(rows)
