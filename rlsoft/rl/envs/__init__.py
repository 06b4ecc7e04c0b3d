"""Environments rlsoft ships, registered with Gymnasium under the ``rlsoft/`` namespace.

Importing this package registers them, so ``gymnasium.make("rlsoft/DeepSea-v0", size=10)``
works, and so does a config's ``env.id: rlsoft/DeepSea-v0``:

* ``rlsoft/DeepSea-v0`` — :class:`DeepSeaEnv`, bsuite's deep-exploration grid (Osband et al.);
* ``rlsoft/RiverSwim-v0`` — :class:`RiverSwimEnv`, the six-state chain of Strehl & Littman
  (2008), with a 1,000-step time limit.
"""

from __future__ import annotations

import gymnasium as gym

from rlsoft.rl.envs.deep_sea import DeepSeaEnv
from rlsoft.rl.envs.river_swim import RiverSwimEnv

__all__ = ["DeepSeaEnv", "RiverSwimEnv", "register_envs"]

_IDS = {
    "rlsoft/DeepSea-v0": ("rlsoft.rl.envs.deep_sea:DeepSeaEnv", None),
    "rlsoft/RiverSwim-v0": ("rlsoft.rl.envs.river_swim:RiverSwimEnv", 1000),
}


def register_envs() -> None:
    """Register rlsoft's environments with Gymnasium (idempotent)."""
    for env_id, (entry_point, max_episode_steps) in _IDS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, max_episode_steps=max_episode_steps)


register_envs()
