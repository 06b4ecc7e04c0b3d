"""Agent families built on rlsoft.

Importing this package registers every agent type with
:func:`rlsoft.rl.agent.register_agent_modules`: the table below names the module of each type,
and that module is imported (and calls :func:`rlsoft.rl.agent.register_agent`) the first time a
config asks for its type. So importing :mod:`agents` is cheap, and a tabular run never loads
the DQN family or torch. The CLI (the composition root) is the only part of rlsoft that
imports this package. A new family adds its types here (``tests/unit/rl/test_registry.py``
checks that each module registers exactly the types listed for it).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from rlsoft.rl.agent import register_agent_modules

__all__ = ["AGENT_MODULES", "classifier", "dqn", "tabular"]

AGENT_MODULES: dict[str, str] = {
    "q_learning": "agents.tabular.agent",
    "sarsa": "agents.tabular.agent",
    "expected_sarsa": "agents.tabular.agent",
    "double_q_learning": "agents.tabular.agent",
    "soft_q_learning": "agents.tabular.agent",
    "dqn": "agents.dqn",
    "classifier": "agents.classifier.agent",
}
"""Agent type → the module that registers it."""

register_agent_modules(AGENT_MODULES)

_SUBMODULES = ("classifier", "dqn", "tabular")


def __getattr__(name: str) -> ModuleType:
    """``agents.tabular`` and friends, imported on first use (PEP 562)."""
    if name in _SUBMODULES:
        return importlib.import_module(f"agents.{name}")
    raise AttributeError(f"module 'agents' has no attribute {name!r}")
