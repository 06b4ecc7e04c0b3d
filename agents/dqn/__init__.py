"""The DQN family on rlsoft's shared core: ``agent.type: dqn``.

One agent with freely combinable options (see :class:`~agents.dqn.config.DQNConfig`):
Double DQN, a dueling head, n-step returns, Huber or squared loss, gradient clipping, hard or
Polyak target updates, a categorical C51 head, and soft or Munchausen targets. Modules:

* :mod:`agents.dqn.config`   — the validated ``agent:`` section;
* :mod:`agents.dqn.networks` — the MLP with its plain, dueling or C51 head (+ a numpy forward
  pass for fast acting);
* :mod:`agents.dqn.targets`  — bootstrap targets and the C51 projection, as pure functions;
* :mod:`agents.dqn.agent`    — acting, replay, the update and checkpoints;
* :mod:`agents.dqn.memory`   — the memory a configuration will need, checked before building.
"""

from agents.dqn.agent import DQNAgent
from agents.dqn.config import DQNConfig
from agents.dqn.memory import check_dqn_memory
from rlsoft.agent import AgentSpec, BuildContext, register_agent

__all__ = ["SPEC", "DQNAgent", "DQNConfig"]


def build(ctx: BuildContext) -> DQNAgent:
    """Check that the replay buffer and networks fit in memory, then build the agent."""
    check_dqn_memory(ctx)
    return DQNAgent.from_context(ctx)


SPEC = register_agent(
    AgentSpec(
        name=DQNAgent.name,
        config_model=DQNConfig,
        build=build,
        kind="rl",
        description="DQN family: Double, dueling, n-step, C51, soft and Munchausen targets",
    )
)
