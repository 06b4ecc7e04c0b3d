"""The DQN family on rlsoft's shared core: ``agent.type: dqn``.

One agent with freely combinable options (see :class:`~agents.dqn.config.DQNConfig`):
Double DQN, a dueling head, n-step returns, Huber or squared loss, gradient clipping, hard or
Polyak target updates, a categorical C51 head, soft, Munchausen or mellowmax targets, and
NoisyNet layers. Modules:

* :mod:`agents.dqn.config`   — the validated ``agent:`` section;
* :mod:`agents.dqn.networks` — the MLP with its plain, dueling or C51 head (+ a numpy forward
  pass for fast acting);
* :mod:`agents.dqn.noisy`    — NoisyNet's factorised Gaussian noisy layers and their noise;
* :mod:`agents.dqn.conv`     — convolutional torsos for image observations (Nature DQN,
  MinAtar) and the choice of network, layout and replay storage from the space;
* :mod:`agents.dqn.targets`  — bootstrap targets and the C51 projection, as pure functions;
* :mod:`agents.dqn.ensemble` — Bootstrapped DQN with randomized prior functions (its
  ``agent.ensemble:`` section in :mod:`agents.dqn.ensemble_config`);
* :mod:`agents.dqn.agent`    — acting, replay, the update and checkpoints;
* :mod:`agents.dqn.memory`   — the memory a configuration will need, checked before building.

Registering needs only the config model: :mod:`agents.dqn.agent` (and with it torch) is
imported when an agent is built, so validating a DQN config takes no torch import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.dqn.config import DQNConfig
from agents.dqn.memory import check_dqn_memory
from rlsoft.rl.agent import AgentSpec, BuildContext, register_agent

if TYPE_CHECKING:
    from agents.dqn.agent import DQNAgent

__all__ = ["SPEC", "DQNAgent", "DQNConfig"]


def _build(context: BuildContext) -> DQNAgent:
    """Check that the replay buffer and networks fit in memory, then build the agent."""
    from agents.dqn.agent import DQNAgent

    check_dqn_memory(context)
    return DQNAgent.from_context(context)


SPEC = register_agent(
    AgentSpec(
        name="dqn",
        title="DQN",
        config_model=DQNConfig,
        build=_build,
        kind="rl",
        description=(
            "DQN family: Double, dueling, n-step, C51, soft, Munchausen and mellowmax "
            "targets, NoisyNet"
        ),
        uses_torch=True,
    )
)


def __getattr__(name: str) -> Any:
    """``agents.dqn.DQNAgent``, imported on first use (PEP 562): it imports torch."""
    if name == "DQNAgent":
        from agents.dqn.agent import DQNAgent

        return DQNAgent
    raise AttributeError(f"module 'agents.dqn' has no attribute {name!r}")
