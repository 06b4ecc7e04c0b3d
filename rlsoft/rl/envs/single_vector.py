"""A vector environment of exactly one copy, for DQN runs with ``num_envs: 1``.

DQN acts on batches, so even one environment goes through the vector API. Gymnasium's
``SyncVectorEnv`` is general: per step it iterates the batched action, merges every info
dict into masked arrays, concatenates observations into a shared buffer and deep-copies the
result. For one CartPole copy that is most of the collection step's overhead:
``python scripts/bench_dqn.py --collect-only`` (2026-12-05, idle machine, 50k steps, median of
3) collected with updates disabled and ε = 1 at 74.0k steps/s through this class and 45.3k
through ``SyncVectorEnv`` (0.49× and 0.30× the bare environment's 150k), so it is kept.

:class:`SingleVectorEnv` returns exactly what ``SyncVectorEnv`` with same-step autoreset
returns for ``num_envs=1`` — batched observations of the single space's dtype (fresh arrays
each step), ``float64`` rewards, ``bool`` flags, the reset seed ``seed`` for the copy, and on
an episode's end ``final_obs``/``final_info`` in the infos with their ``_key`` masks — so a
run gives bit-identical results with either (``tests/unit/rl/test_single_vector.py`` checks
both side by side).
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array

__all__ = ["SingleVectorEnv"]


def _batched_info(info: dict[str, Any], into: dict[str, Any] | None = None) -> dict[str, Any]:
    """``info`` of the single copy in Gymnasium's vector layout, merged into ``into``: a
    length-1 array per key (typed for numbers and arrays, ``object`` otherwise and always for
    ``final_obs``), nested dicts recursively, and ``True`` under ``_key``."""
    out = {} if into is None else into
    for key, value in info.items():
        if isinstance(value, dict) and key != "final_obs":
            array: Any = _batched_info(value, out.get(key))
        elif key == "final_obs" or not (
            type(value) in (int, float, bool) or isinstance(value, (np.number, np.ndarray))
        ):
            array = np.full(1, None, dtype=object)
            array[0] = value
        else:
            array = np.array(
                [value], dtype=value.dtype if isinstance(value, np.ndarray) else type(value)
            )
        out[key] = array
        out[f"_{key}"] = np.ones(1, dtype=np.bool_)
    return out


class SingleVectorEnv(gym.vector.VectorEnv):
    """One environment behind the vector API, with same-step autoreset.

    :param env: the environment (already wrapped); ``env.close()`` closes it.
    """

    def __init__(self, env: gym.Env) -> None:
        self.env = env
        self.envs = [env]
        self.num_envs = 1
        self.single_observation_space = env.observation_space
        self.single_action_space = env.action_space
        self.observation_space = batch_space(env.observation_space, 1)
        self.action_space = batch_space(env.action_space, 1)
        self.metadata = {**env.metadata, "autoreset_mode": AutoresetMode.SAME_STEP}
        self.spec = env.spec
        self.render_mode = env.render_mode
        space = env.observation_space
        # Box observations are batched by one cheap copy; other spaces the general way.
        self._box_dtype = space.dtype if isinstance(space, gym.spaces.Box) else None
        self._buffer = None if self._box_dtype is not None else create_empty_array(space, 1)

    def _batch(self, obs: Any) -> Any:
        if self._box_dtype is not None:
            return np.array(obs, dtype=self._box_dtype)[None]
        return deepcopy(concatenate(self.single_observation_space, [obs], self._buffer))

    def reset(
        self,
        *,
        seed: int | list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        if isinstance(seed, list):
            if len(seed) != 1:
                raise ValueError(f"a vector of one environment takes one seed, got {len(seed)}")
            seed = seed[0]
        obs, info = self.env.reset(seed=seed, options=options)
        return self._batch(obs), _batched_info(info) if info else {}

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        obs, reward, terminated, truncated, info = self.env.step(actions[0])
        if terminated or truncated:
            infos = _batched_info({"final_obs": obs, "final_info": info})
            obs, reset_info = self.env.reset()
            if reset_info:
                _batched_info(reset_info, infos)
        else:
            infos = _batched_info(info) if info else {}
        return (
            self._batch(obs),
            np.array([reward], dtype=np.float64),
            np.array([terminated], dtype=np.bool_),
            np.array([truncated], dtype=np.bool_),
            infos,
        )

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        attribute = self.env.get_wrapper_attr(name)
        return (attribute(*args, **kwargs) if callable(attribute) else attribute,)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        return (self.env.get_wrapper_attr(name),)

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | Any) -> None:
        if isinstance(values, (list, tuple)):
            if len(values) != 1:
                raise ValueError(f"a vector of one environment takes one value, got {len(values)}")
            values = values[0]
        self.env.set_wrapper_attr(name, values)

    def render(self) -> Any:
        return self.env.render()

    def close_extras(self, **kwargs: Any) -> None:
        self.env.close()
