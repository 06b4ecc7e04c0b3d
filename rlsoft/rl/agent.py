"""The small interface between the training loop and an agent, and the agent registry.

The loop in :mod:`rlsoft.run.trainer` owns the environments, the logger, evaluation and
checkpoints; an agent only acts and learns. Agent families live in the top-level ``agents``
package and register themselves here with :func:`register_agent`; ``rlsoft`` never imports
them (only the CLI, the composition root, does).

Registration is lazy: the ``agents`` package only names the module of each agent type
(:func:`register_agent_modules`), and :func:`get_agent_spec` imports that module the first
time its type is asked for. A Taxi run so never imports the DQN family (nor torch), and a
config error is reported before any agent module is loaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: importing this module stays cheap (see the docstring)
    import gymnasium as gym
    import numpy as np
    from pydantic import BaseModel

    from rlsoft.explore.policies import Policy

__all__ = [
    "Agent",
    "AgentSpec",
    "BuildContext",
    "agent_names",
    "agent_title",
    "get_agent_spec",
    "register_agent",
    "register_agent_modules",
]


@runtime_checkable
class Agent(Protocol):
    """What the training loop needs from a reinforcement-learning agent.

    Observations and actions come one at a time for a single environment and as batches
    (leading axis = environment) for vectorised ones. Transitions handed to :meth:`observe`
    never cross an episode boundary: ``next_obs`` is the true successor (the final observation
    of an episode that ended), and ``terminated`` / ``truncated`` follow Gymnasium (bootstrap
    from ``next_obs`` on truncation, not on termination).
    """

    policy: Policy
    """The exploration policy; the loop logs its parameter and entropy."""
    # Optional: an agent whose act_greedy breaks ties at random keeps that generator in
    # ``eval_rng: numpy.random.Generator``; the driver reseeds it before every evaluation
    # (rlsoft.rl.collector.reseed_evaluation), so an evaluation depends on the step only, and
    # how often a run was evaluated (or stopped and resumed) changes nothing that follows.
    # Optional too: ``restart_episodes(envs: numpy.ndarray) -> None``, called on resume when
    # the loop starts the episodes of those environments over (one too long to replay, or an
    # environment that did not replay exactly): an agent that links consecutive transitions
    # (a replay forming n-step returns or rebuilding frame stacks) ends those episodes there.

    checkpoint_suffix: str
    """File suffix of :meth:`save` (``".npz"``, ``".pt"``)."""

    def act(self, obs: Any, step: int) -> Any:
        """Exploration action(s) for ``obs`` at global environment step ``step``."""

    def act_greedy(self, obs: Any) -> Any:
        """The greedy action for one observation (evaluation), ties broken at random."""

    def observe(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        next_obs: Any,
        terminated: Any,
        truncated: Any,
        step: int,
    ) -> None:
        """Learn from one transition (or one batch of them, one per environment)."""

    def q_values(self, observations: np.ndarray) -> np.ndarray:
        """Action values ``(n, A)`` for a batch of observations (for entropy logging)."""

    def metrics(self) -> dict[str, float]:
        """Training metrics (TensorBoard tag → value) averaged since the last call."""

    def save(self, path: Path) -> None:
        """Write the full learning state (tables or networks, optimiser, RNG) to ``path``."""

    def load(self, path: Path) -> None:
        """Restore what :meth:`save` wrote."""


@dataclass
class BuildContext:
    """Everything an agent factory may use. ``rng`` and ``torch_seed`` derive from the run's
    root seed, so an agent built twice from the same context behaves identically."""

    config: BaseModel
    observation_space: gym.Space | None
    action_space: gym.Space | None
    policy: Policy | None
    rng: np.random.Generator
    torch_seed: int
    device: str = "cpu"
    num_envs: int = 1
    total_steps: int = 0
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentSpec:
    """A registered agent family member.

    :param name: the ``agent.type`` value in configs.
    :param config_model: pydantic model (``extra="forbid"``) of the ``agent:`` section.
    :param build: factory from a :class:`BuildContext` to an agent.
    :param kind: ``"rl"`` agents are driven through an environment by the loop;
        ``"supervised"`` ones train on a dataset.
    :param uses_torch: the agent computes with torch, so the run resolves ``device`` and
        seeds torch before building it; runs of the other agents never import torch.
    :param title: the algorithm's name in reports (``"Double Q-learning"``); ``name`` when
        empty.
    """

    name: str
    config_model: type[BaseModel]
    build: Callable[[BuildContext], Any]
    kind: Literal["rl", "supervised"] = "rl"
    description: str = ""
    uses_torch: bool = False
    title: str = ""


_REGISTRY: dict[str, AgentSpec] = {}
_MODULES: dict[str, str] = {}
"""Agent type → the module whose import registers it (for types not imported yet)."""


def register_agent(spec: AgentSpec) -> AgentSpec:
    """Add ``spec`` to the registry (re-registering the same name replaces it)."""
    _REGISTRY[spec.name] = spec
    return spec


def register_agent_modules(modules: Mapping[str, str]) -> None:
    """Name, for each agent type, the module whose import calls :func:`register_agent` for
    it; the module is imported the first time :func:`get_agent_spec` asks for that type.

    :param modules: ``{"q_learning": "agents.tabular.agent", "dqn": "agents.dqn", ...}``.
    """
    _MODULES.update(modules)


def get_agent_spec(name: str) -> AgentSpec:
    """Look up a registered agent, importing its module if it is registered lazily; the
    error names the nearest registered one."""
    if name not in _REGISTRY and name in _MODULES:
        importlib.import_module(_MODULES[name])
        if name not in _REGISTRY:  # a wrong entry in the table, not a user mistake
            raise LookupError(f"importing {_MODULES[name]} did not register agent type {name!r}")
    if name in _REGISTRY:
        return _REGISTRY[name]
    from rlsoft.errors import ConfigError, nearest_hint

    names = agent_names()
    raise ConfigError(
        f"unknown agent type {name!r}{nearest_hint(name, names)}; "
        f"registered types: {', '.join(names) or 'none'}"
    )


def agent_title(name: str) -> str:
    """The registered agent's :attr:`AgentSpec.title` (its module is imported if it is
    registered lazily); ``name`` itself for an unknown type or one without a title."""
    if name not in _REGISTRY and name not in _MODULES:
        return name
    return get_agent_spec(name).title or name


def agent_names() -> list[str]:
    """Every agent type, imported or registered lazily."""
    return sorted({*_REGISTRY, *_MODULES})
