"""Tabular agents (Q-learning, SARSA, expected SARSA, soft Q); importing registers them.

Imports: rlsoft.numerics, rlsoft.explore, rlsoft.rl, rlsoft.errors and rlsoft.run.config only
(checked by ``lint-imports``).
"""

from agents.tabular import agent  # noqa: F401  (registers the tabular agents)
