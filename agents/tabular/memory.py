"""How much memory a tabular agent's Q-tables will take, checked before they are made.

A table is a Python list of ``n_states`` rows, each a list of ``n_actions`` floats
(:meth:`agents.tabular.agent.TabularAgent._new_table`; plain lists are faster than numpy for one
entry at a time). In CPython a list of n items takes 56 + 8·n bytes and every distinct float
24 bytes; once learned, each entry is its own float, so one table takes::

    table bytes = 56 + 8·S + S · (56 + 8·A + 24·A)

for S states and A actions, and saving a checkpoint makes one float64 copy (8·S·A bytes) of
every table. Double Q-learning keeps three tables (the mean and Q_A, Q_B).
"""

from __future__ import annotations

import math

import gymnasium as gym

from rlsoft.rl.agent import BuildContext
from rlsoft.rl.memory import check_fits
from rlsoft.rl.spaces import is_tabular_space

__all__ = ["check_tabular_memory", "state_count", "table_bytes"]

LIST_HEADER = 56
POINTER = 8
FLOAT_OBJECT = 24
FLOAT64 = 8
FIX = "use a smaller observation space, or the DQN agent (agent.type: dqn), which generalises"


def state_count(space: gym.Space) -> int | None:
    """Rows of the table for ``space`` (exact, without integer overflow), or None for a space
    a tabular agent cannot use (its own error names it)."""
    if not is_tabular_space(space):
        return None
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.Tuple):
        return math.prod(int(part.n) for part in space.spaces)
    return math.prod(int(n) for n in space.nvec)


def table_bytes(n_states: int, n_actions: int) -> int:
    """Bytes of one learned table as a list of lists of floats (see the module docstring)."""
    row = LIST_HEADER + POINTER * n_actions + FLOAT_OBJECT * n_actions
    return LIST_HEADER + POINTER * n_states + n_states * row


def check_tabular_memory(ctx: BuildContext, tables: int) -> None:
    """Refuse ``tables`` Q-tables that cannot fit (see :mod:`rlsoft.rl.memory`)."""
    if not isinstance(ctx.action_space, gym.spaces.Discrete) or ctx.observation_space is None:
        return
    n_states = state_count(ctx.observation_space)
    if n_states is None:
        return
    n_actions = int(ctx.action_space.n)
    check_fits(
        {
            "Q-tables": tables * table_bytes(n_states, n_actions),
            "checkpoint copy": tables * FLOAT64 * n_states * n_actions,
        },
        FIX,
    )
