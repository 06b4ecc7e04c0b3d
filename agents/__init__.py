"""Agent families built on rlsoft.

Importing this package registers every agent with :func:`rlsoft.agent.register_agent`, so a
config's ``agent.type`` can name it. The CLI (the composition root) is the only part of rlsoft
that imports it.
"""

from agents import classifier, dqn, tabular

__all__ = ["classifier", "dqn", "tabular"]
