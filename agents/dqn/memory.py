"""How much memory a DQN agent will allocate, checked before it allocates it.

The two large allocations are the replay buffer (host memory,
:class:`rlsoft.rl.replay.ReplayBuffer`) and the networks (on the agent's device). Per stored
transition the buffer holds the observation and the next observation in their storage dtype
(:func:`agents.dqn.conv.storage_dtype`: ``b = 4`` bytes for float32, 1 for ``uint8`` and
bool, the integer dtype's size otherwise) plus an int64 action, a float32 reward and two
booleans::

    replay bytes  = capacity · (2 · b · obs_dim + 8 + 4 + 1 + 1 + K)

with the capacity rounded up to a multiple of ``num_envs`` (K: the bootstrap masks of an
ensemble of K heads, one byte each; 0 without an ensemble). The networks hold P parameters
(:func:`parameter_count`: the convolutions Σ (C_in·k·k + 1)·filters of a convolutional
torso, then the dense layers and the head) six times over in float32: the online network,
its gradients, the target network, Adam's first and second moments, and one transient copy
while the parameters are gathered into one flat buffer
(:func:`agents.dqn.optim.flatten_parameters`)::

    network bytes = 6 · 4 · P + 2 · 4 · P_prior

where an ensemble's fixed prior networks (P_prior parameters, :mod:`agents.dqn.ensemble`) are
held twice, in the online and the target network, and never trained. With the frame replay
(``agent.frame_replay``) each frame is stored once instead: :func:`frame_replay_bytes`. A round
of gradient steps also holds its minibatches and the network's activations on them
(:func:`batch_bytes`), which a huge ``agent.batch_size`` makes the largest part.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym

from agents.dqn.config import DQNConfig
from rlsoft.rl.agent import BuildContext
from rlsoft.rl.memory import check_fits, conv_parameters, mlp_parameters

__all__ = [
    "activation_numbers",
    "batch_bytes",
    "check_dqn_memory",
    "frame_replay_bytes",
    "network_bytes",
    "parameter_count",
    "replay_bytes",
]

FLOAT_BYTES = 4
NETWORK_COPIES = 6
TRANSITION_OVERHEAD = 8 + 4 + 1 + 1  # action (int64), reward (float32), terminated, done
FIX = "lower agent.buffer_size, agent.batch_size or agent.hidden_sizes"
TARGET_BLOCK = 512
"""Rows the target network computes at a time in a round (``agents.dqn.agent``)."""


def replay_bytes(
    capacity: int, obs_dim: int, num_envs: int = 1, obs_itemsize: int = 4, mask_size: int = 0
) -> int:
    """Bytes of a replay buffer of ``capacity`` transitions of ``obs_dim`` numbers each,
    stored with ``obs_itemsize`` bytes per number (4: float32; 1: ``uint8`` or bool), and
    ``mask_size`` mask booleans."""
    stored = math.ceil(capacity / num_envs) * num_envs
    return stored * (2 * obs_itemsize * obs_dim + TRANSITION_OVERHEAD + mask_size)


def frame_replay_bytes(
    capacity: int, frame_dim: int, frame_stack: int, num_envs: int = 1, obs_itemsize: int = 1
) -> int:
    """Bytes of a :class:`rlsoft.rl.frame_replay.FrameReplayBuffer` when created: the frame
    ring of ``C + k·E`` frames (C the capacity rounded up to a multiple of E = ``num_envs``),
    the initial side table of ``max(16, 2E)`` final frames, and 22 bytes of bookkeeping per
    transition (action 8, reward 4, two flags, episode position 4, side-table index 4). The
    side table grows by doubling with the episode ends held (one frame each), which this
    does not foresee."""
    stored = math.ceil(capacity / num_envs) * num_envs
    frames = stored + frame_stack * num_envs + max(16, 2 * num_envs)
    return frames * frame_dim * obs_itemsize + stored * (TRANSITION_OVERHEAD + 8)


def _network(config: DQNConfig, space: gym.spaces.Box | None) -> tuple[Any, list[int]]:
    """The network plan for observations of ``space`` (:func:`agents.dqn.conv.plan_network`;
    None without ``space``: the MLP on a flat input) and its dense layers' widths."""
    from agents.dqn.conv import DENSE_SIZES, plan_network

    if space is None:
        widths = DENSE_SIZES["mlp"] if config.hidden_sizes is None else config.hidden_sizes
        return None, list(widths)
    plan = plan_network(space, config.network, config.channel_axis, config.hidden_sizes)
    return plan, list(plan.dense)


def parameter_count(
    config: DQNConfig, obs_dim: int, n_actions: int, space: gym.spaces.Box | None = None
) -> int:
    """Parameters of :class:`agents.dqn.networks.QNetwork`: the torso's convolutions (when
    ``space`` makes :func:`agents.dqn.conv.plan_network` choose a convolutional network),
    the dense layers, then a head of ``n_actions · K`` outputs (K atoms for C51, else 1)
    plus, when dueling, a value stream of K outputs. Without ``space`` the network is the
    MLP on ``obs_dim`` inputs. A noisy network (``noisy``) has a σ for every weight and bias:
    twice as many; an ensemble K heads (and K torsos unless shared)."""
    from agents.dqn.conv import CONV_LAYERS

    plan, hidden = _network(config, space)
    conv = 0
    if plan is not None and plan.image is not None:
        conv = conv_parameters(plan.image[0], CONV_LAYERS[plan.name])
        obs_dim = int(plan.features or 0)
    per_action = config.atoms if config.head == "c51" else 1
    last = hidden[-1] if hidden else obs_dim
    body = mlp_parameters([obs_dim, *hidden])
    head = mlp_parameters([last, n_actions * per_action])
    value = mlp_parameters([last, per_action]) if config.dueling else 0
    ensemble = config.ensemble
    if ensemble is not None:  # K heads on one torso, or K whole MLPs
        bodies = 1 if ensemble.shared_torso else ensemble.heads
        return bodies * body + ensemble.heads * (head + value)
    return conv + (body + head + value) * (2 if config.noisy else 1)  # NoisyNet: μ and σ


def prior_parameter_count(
    config: DQNConfig, obs_dim: int, n_actions: int, space: gym.spaces.Box | None = None
) -> int:
    """Numbers in an ensemble's fixed prior networks (as many as the trained ones; 0 without
    an ensemble or with ``prior_scale: 0``)."""
    if config.ensemble is None or config.ensemble.prior_scale == 0:
        return 0
    return parameter_count(config, obs_dim, n_actions, space)


def activation_numbers(
    config: DQNConfig, obs_dim: int, n_actions: int, space: gym.spaces.Box | None = None
) -> int:
    """Numbers one row of a minibatch produces in the network: each convolution's output
    ``C′·H′·W′`` (:func:`agents.dqn.conv.conv_output_shape`) — and for a torso of one
    convolution the ``C·k²·H′·W′`` patches it gathers (:meth:`agents.dqn.conv.ConvTorso.patches`)
    — each dense layer's width (per network of an ensemble without a shared torso) and the
    head's ``n_actions · K`` outputs and a dueling value stream's K (per ensemble head; three
    times for C51, whose log-probabilities and projected targets have that shape too)."""
    from agents.dqn.conv import CONV_LAYERS, conv_output_shape

    plan, hidden = _network(config, space)
    conv = 0
    if plan is not None and plan.image is not None:
        layers = CONV_LAYERS[plan.name]
        for i in range(1, len(layers) + 1):
            conv += math.prod(conv_output_shape(layers[:i], *plan.image))
        if len(layers) == 1:  # the gathered patches, kept for the weight's gradient
            _, kernel, _ = layers[0]
            positions = math.prod(conv_output_shape(layers, *plan.image)[1:])
            conv += plan.image[0] * kernel * kernel * positions
    per_action = config.atoms if config.head == "c51" else 1
    ensemble = config.ensemble
    heads = ensemble.heads if ensemble is not None else 1
    bodies = 1 if ensemble is None or ensemble.shared_torso else heads
    head = n_actions * per_action + (per_action if config.dueling else 0)
    if config.head == "c51":
        head *= 3
    return conv + bodies * sum(hidden) + heads * head


def batch_bytes(
    config: DQNConfig,
    obs_dim: int,
    n_actions: int,
    space: gym.spaces.Box | None = None,
    obs_itemsize: int = 4,
) -> int:
    """Bytes a round of gradient steps holds (an estimate from above): its
    ``n = gradient_steps · batch_size`` sampled observations and next observations, gathered
    in the storage dtype (``b`` bytes a number), converted to float32 and copied once more
    into the convolutions' layout, and the activations (:func:`activation_numbers`, ``a``
    per row) of the trained minibatch — the forward values, autograd's saved inputs and the
    gradients — and of a block of the target network's pass::

        batch bytes = 2·n·obs_dim·(b + 2·4) + 4·a·(3·batch_size + min(n, max(batch_size, 512)))
    """
    n = config.gradient_steps * config.batch_size
    inputs = 2 * n * obs_dim * (obs_itemsize + 2 * FLOAT_BYTES)
    rows = 3 * config.batch_size + min(n, max(config.batch_size, TARGET_BLOCK))
    return inputs + FLOAT_BYTES * activation_numbers(config, obs_dim, n_actions, space) * rows


def network_bytes(
    config: DQNConfig, obs_dim: int, n_actions: int, space: gym.spaces.Box | None = None
) -> int:
    trained = NETWORK_COPIES * parameter_count(config, obs_dim, n_actions, space)
    priors = 2 * prior_parameter_count(config, obs_dim, n_actions, space)
    return FLOAT_BYTES * (trained + priors)


def check_dqn_memory(ctx: BuildContext) -> None:
    """Refuse a DQN whose replay buffer and networks cannot fit (see :mod:`rlsoft.rl.memory`).

    Spaces DQN cannot use are left to the agent's own, more specific error.
    """
    obs, actions = ctx.observation_space, ctx.action_space
    if not isinstance(obs, gym.spaces.Box) or not isinstance(actions, gym.spaces.Discrete):
        return
    if not isinstance(ctx.config, DQNConfig):
        return
    # Imports torch, which building the agent does next anyway.
    from agents.dqn.conv import plan_network, storage_dtype, uses_frame_replay

    cfg = ctx.config
    obs_dim = int(math.prod(obs.shape))
    dtype = storage_dtype(obs)
    plan = plan_network(obs, cfg.network, cfg.channel_axis, cfg.hidden_sizes)
    if uses_frame_replay(cfg.frame_replay, plan, dtype, cfg.frame_stack):
        frame = obs_dim // cfg.frame_stack
        replay = frame_replay_bytes(
            cfg.buffer_size, frame, cfg.frame_stack, ctx.num_envs, dtype.itemsize
        )
    else:
        masks = cfg.ensemble.heads if cfg.ensemble else 0
        replay = replay_bytes(cfg.buffer_size, obs_dim, ctx.num_envs, dtype.itemsize, masks)
    networks = network_bytes(cfg, obs_dim, int(actions.n), obs)
    batches = batch_bytes(cfg, obs_dim, int(actions.n), obs, dtype.itemsize)
    if str(ctx.device).startswith("cuda"):
        import torch

        check_fits({"replay buffer": replay, "training batches": batches}, FIX)
        free, _ = torch.cuda.mem_get_info()
        on_gpu = {"networks": networks, "training batches": batches}
        check_fits(on_gpu, FIX, available=int(free), memory="GPU memory")
    else:
        parts = {"replay buffer": replay, "networks": networks, "training batches": batches}
        check_fits(parts, FIX)
