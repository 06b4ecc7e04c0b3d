"""Checks and encodings of Gymnasium spaces for the agent families."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from rlsoft.errors import RlsoftError


def describe_space(space: gym.Space) -> str:
    return repr(space)


def discrete_actions(space: gym.Space, agent: str, suggestion: str) -> int:
    """Number of actions of a ``Discrete`` action space; any other space is a clear error."""
    if isinstance(space, gym.spaces.Discrete):
        if space.start != 0:
            raise RlsoftError(
                f"{agent} needs actions numbered from 0, but the action space is "
                f"{describe_space(space)}"
            )
        return int(space.n)
    raise RlsoftError(
        f"{agent} needs a Discrete action space, but this environment's is "
        f"{describe_space(space)}; {suggestion}"
    )


def discrete_state_encoder(
    space: gym.Space, agent: str = "a tabular agent"
) -> tuple[int, Callable[[Any], int]]:
    """``(n_states, encode)`` mapping each observation of a finite discrete space to an index.

    ``Discrete(n)`` maps to ``obs − start``; ``Tuple`` of ``Discrete`` parts and
    ``MultiDiscrete`` flatten row-major: for parts of sizes (n₁, …, n_k),
    ``index = ((o₁·n₂ + o₂)·n₃ + …)·n_k + o_k``.
    """
    hint = (
        "tabular agents need a finite Discrete, Tuple-of-Discrete or MultiDiscrete "
        "observation space; use the DQN agent (agent.type: dqn) for Box observations"
    )
    if isinstance(space, gym.spaces.Discrete):
        start = int(space.start)
        if start == 0:
            return int(space.n), int
        return int(space.n), lambda obs: int(obs) - start
    if isinstance(space, gym.spaces.Tuple) and all(
        isinstance(part, gym.spaces.Discrete) for part in space.spaces
    ):
        sizes = [int(part.n) for part in space.spaces]
        starts = [int(part.start) for part in space.spaces]
    elif isinstance(space, gym.spaces.MultiDiscrete) and space.nvec.ndim == 1:
        sizes = [int(n) for n in space.nvec]
        starts = [int(s) for s in np.broadcast_to(space.start, space.nvec.shape)]
    else:
        raise RlsoftError(
            f"{agent} cannot use the observation space {describe_space(space)}; {hint}"
        )
    n_states = int(np.prod(sizes))
    strides = [int(np.prod(sizes[i + 1 :])) for i in range(len(sizes))]
    parts = list(zip(strides, starts, strict=True))

    def encode(obs: Any) -> int:
        return sum(stride * (int(o) - start) for (stride, start), o in zip(parts, obs, strict=True))

    return n_states, encode
