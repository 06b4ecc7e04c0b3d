"""How much memory a DQN agent will allocate, checked before it allocates it.

The two large allocations are the replay buffer (host memory,
:class:`rlsoft.rl.replay.ReplayBuffer`) and the networks (on the agent's device). Per stored
transition the buffer holds the observation and the next observation as float32 plus an int64
action, a float32 reward and two booleans::

    replay bytes  = capacity · (2 · 4 · obs_dim + 8 + 4 + 1 + 1 + K)

with the capacity rounded up to a multiple of ``num_envs`` (K: the bootstrap masks of an
ensemble of K heads, one byte each; 0 without an ensemble). The networks hold P parameters
(:func:`parameter_count`) six times over in float32: the online network, its gradients, the
target network, Adam's first and second moments, and one transient copy while the
parameters are gathered into one flat buffer (:func:`agents.dqn.optim.flatten_parameters`)::

    network bytes = 6 · 4 · P + 2 · 4 · P_prior

where an ensemble's fixed prior networks (P_prior parameters, :mod:`agents.dqn.ensemble`) are
held twice, in the online and the target network, and never trained.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import gymnasium as gym

from agents.dqn.config import DQNConfig
from rlsoft.rl.agent import BuildContext
from rlsoft.rl.memory import check_fits, mlp_parameters

__all__ = ["check_dqn_memory", "network_bytes", "parameter_count", "replay_bytes"]

FLOAT_BYTES = 4
NETWORK_COPIES = 6
TRANSITION_OVERHEAD = 8 + 4 + 1 + 1  # action (int64), reward (float32), terminated, done
FIX = "lower agent.buffer_size or agent.hidden_sizes"


def replay_bytes(capacity: int, obs_dim: int, num_envs: int = 1, mask_size: int = 0) -> int:
    """Bytes of a replay buffer of ``capacity`` transitions of ``obs_dim`` floats each (and
    ``mask_size`` mask booleans)."""
    stored = math.ceil(capacity / num_envs) * num_envs
    return stored * (2 * FLOAT_BYTES * obs_dim + TRANSITION_OVERHEAD + mask_size)


def parameter_count(config: DQNConfig, obs_dim: int, n_actions: int) -> int:
    """Parameters of :class:`agents.dqn.networks.QNetwork`: the MLP body, then a head of
    ``n_actions · K`` outputs (K atoms for C51, else 1) plus, when dueling, a value stream of
    K outputs. A noisy network (``noisy``) has a σ for every weight and bias: twice as many."""
    hidden: Sequence[int] = list(config.hidden_sizes)
    per_action = config.atoms if config.head == "c51" else 1
    last = hidden[-1] if hidden else obs_dim
    body = mlp_parameters([obs_dim, *hidden])
    head = mlp_parameters([last, n_actions * per_action])
    value = mlp_parameters([last, per_action]) if config.dueling else 0
    ensemble = config.ensemble
    if ensemble is not None:  # K heads on one torso, or K whole MLPs
        bodies = 1 if ensemble.shared_torso else ensemble.heads
        return bodies * body + ensemble.heads * (head + value)
    return (body + head + value) * (2 if config.noisy else 1)  # NoisyNet: μ and σ


def prior_parameter_count(config: DQNConfig, obs_dim: int, n_actions: int) -> int:
    """Numbers in an ensemble's fixed prior networks (as many as the trained ones; 0 without
    an ensemble or with ``prior_scale: 0``)."""
    if config.ensemble is None or config.ensemble.prior_scale == 0:
        return 0
    return parameter_count(config, obs_dim, n_actions)


def network_bytes(config: DQNConfig, obs_dim: int, n_actions: int) -> int:
    trained = NETWORK_COPIES * parameter_count(config, obs_dim, n_actions)
    return FLOAT_BYTES * (trained + 2 * prior_parameter_count(config, obs_dim, n_actions))


def check_dqn_memory(ctx: BuildContext) -> None:
    """Refuse a DQN whose replay buffer and networks cannot fit (see :mod:`rlsoft.rl.memory`).

    Spaces DQN cannot use are left to the agent's own, more specific error.
    """
    obs, actions = ctx.observation_space, ctx.action_space
    if not isinstance(obs, gym.spaces.Box) or not isinstance(actions, gym.spaces.Discrete):
        return
    if not isinstance(ctx.config, DQNConfig):
        return
    obs_dim = int(math.prod(obs.shape))
    masks = ctx.config.ensemble.heads if ctx.config.ensemble else 0
    replay = replay_bytes(ctx.config.buffer_size, obs_dim, ctx.num_envs, masks)
    networks = network_bytes(ctx.config, obs_dim, int(actions.n))
    if str(ctx.device).startswith("cuda"):
        import torch

        check_fits({"replay buffer": replay}, FIX)
        free, _ = torch.cuda.mem_get_info()
        check_fits({"networks": networks}, FIX, available=int(free), memory="GPU memory")
    else:
        check_fits({"replay buffer": replay, "networks": networks}, FIX)
