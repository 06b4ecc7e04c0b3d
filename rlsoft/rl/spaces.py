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


def is_tabular_space(space: gym.Space) -> bool:
    """Whether a tabular agent can index ``space``'s observations
    (:func:`discrete_state_encoder`): ``Discrete``, a ``Tuple`` of ``Discrete`` parts, or a
    1-D ``MultiDiscrete``."""
    if isinstance(space, gym.spaces.Discrete):
        return True
    if isinstance(space, gym.spaces.Tuple):
        return all(isinstance(part, gym.spaces.Discrete) for part in space.spaces)
    return isinstance(space, gym.spaces.MultiDiscrete) and space.nvec.ndim == 1


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
    if not is_tabular_space(space):
        raise RlsoftError(
            f"{agent} cannot use the observation space {describe_space(space)}; {hint}"
        )
    if isinstance(space, gym.spaces.Discrete):
        start = int(space.start)
        if start == 0:
            return int(space.n), int
        return int(space.n), lambda obs: int(obs) - start
    if isinstance(space, gym.spaces.Tuple):
        sizes = [int(part.n) for part in space.spaces]
        starts = [int(part.start) for part in space.spaces]
    else:
        sizes = [int(n) for n in space.nvec]
        starts = [int(s) for s in np.broadcast_to(space.start, space.nvec.shape)]
    n_states = int(np.prod(sizes))
    strides = [int(np.prod(sizes[i + 1 :])) for i in range(len(sizes))]
    parts = list(zip(strides, starts, strict=True))

    def encode(obs: Any) -> int:
        return sum(stride * (int(o) - start) for (stride, start), o in zip(parts, obs, strict=True))

    return n_states, encode


def space_to_json(space: gym.Space) -> dict[str, Any] | None:
    """``space`` as plain JSON data that :func:`space_from_json` turns back into an equal
    space, or None for a kind it does not cover (``Text``, ``Graph``, ``Sequence``, …).

    ``Box`` bounds are one number when every element shares it (an image's 0 and 255), else
    nested lists; infinite bounds are written as JSON's ``Infinity`` (Python's ``json``
    reads and writes it). ``Tuple`` and ``Dict`` hold their parts' encodings.
    """

    def bound(values: np.ndarray) -> Any:
        if values.size and np.all(values == values.flat[0]):
            return values.flat[0].item()
        return values.tolist()

    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": space.dtype.name,
            "low": bound(space.low),
            "high": bound(space.high),
        }
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": space.nvec.tolist(),
            "start": space.start.tolist(),
            "dtype": space.dtype.name,
        }
    if isinstance(space, gym.spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    parts: list[Any] | dict[str, Any]
    if isinstance(space, gym.spaces.Tuple):
        parts = [space_to_json(part) for part in space.spaces]
        return None if None in parts else {"type": "Tuple", "spaces": parts}
    if isinstance(space, gym.spaces.Dict):
        parts = {key: space_to_json(part) for key, part in space.spaces.items()}
        return None if None in parts.values() else {"type": "Dict", "spaces": parts}
    return None


def space_from_json(data: dict[str, Any]) -> gym.Space:
    """The space :func:`space_to_json` encoded (its bounds, shapes and dtypes)."""
    kind = data["type"]
    if kind == "Box":
        shape, dtype = tuple(data["shape"]), np.dtype(data["dtype"])
        low = np.broadcast_to(np.asarray(data["low"], dtype=dtype), shape)
        high = np.broadcast_to(np.asarray(data["high"], dtype=dtype), shape)
        return gym.spaces.Box(low, high, shape, dtype)
    if kind == "Discrete":
        return gym.spaces.Discrete(data["n"], start=data["start"])
    if kind == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(data["nvec"], dtype=data["dtype"], start=data["start"])
    if kind == "MultiBinary":
        return gym.spaces.MultiBinary(data["n"])
    if kind == "Tuple":
        return gym.spaces.Tuple([space_from_json(part) for part in data["spaces"]])
    if kind == "Dict":
        return gym.spaces.Dict({key: space_from_json(part) for key, part in data["spaces"].items()})
    raise ValueError(f"unknown space type {kind!r}")
