"""MinAtar (Young & Tian 2019) under rlsoft: seeding that makes its episodes replayable.

The ``minatar`` package defines ``MinAtar/<Game>-v0`` (all six actions) and ``-v1`` (the
game's minimal action set) for Gymnasium (``minatar.gym.register_envs``, which rlsoft calls
when a config names such an id: :func:`rlsoft.rl.envs.factory.register_optional_envs`), with
observations
``Box(0, 1, (10, 10, C), bool)``. Its games draw every random number (sticky actions, spawns,
the ball's start) from their own ``numpy.random.RandomState``, which ``reset(seed=s)`` reseeds
and ``reset()`` leaves running. That state is invisible to Gymnasium's ``np_random``, so an
episode started by an unseeded reset could not be replayed from the environment's generator
(:mod:`rlsoft.rl.envs.state`, exact resume). :class:`MinAtarSeeding` closes the gap: every
reset reseeds the game from the environment's ``np_random`` (itself seeded by a seeded
reset), so each episode is a function of that generator's state and the actions.

One more piece of state crosses episodes: sticky actions (Machado et al. 2018) repeat the
game's ``last_action``, which MinAtar's reset leaves at the previous episode's last action, so
a fresh copy replaying an episode (which starts from 0) could take another first action. The
wrapper sets it to 0, the no-op, at every reset, as the ALE does for its sticky actions.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.utils import seeding

__all__ = ["MINATAR_KEYWORDS", "MinAtarSeeding"]

MINATAR_KEYWORDS = ("sticky_action_prob", "difficulty_ramping")
"""The keyword arguments of a MinAtar game (``minatar.Environment``) that ``env.kwargs`` may
set; the game and the action set come from the id."""


class MinAtarSeeding(gym.Wrapper):
    """Reseed a MinAtar game from ``env.unwrapped.np_random`` and start its sticky action
    from the no-op at every reset."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        base = self.unwrapped
        if seed is not None:
            base.np_random, _ = seeding.np_random(seed)
        # MinAtar seeds its RandomState with this integer (any value below 2**32).
        game_seed = int(base.np_random.integers(2**32))
        game = getattr(base, "game", None)  # minatar.gym.BaseEnv's minatar.Environment
        if game is not None and hasattr(game, "last_action"):
            game.last_action = 0
        return self.env.reset(seed=game_seed, options=options)
