"""What a DQN agent's settings need of the environment's spaces, checked before anything is
built, through :meth:`agents.dqn.config.DQNConfig.check_spaces`: by the agent itself, and by
``rlsoft compare`` before its workers start."""

from __future__ import annotations

from collections.abc import Iterable

import gymnasium as gym

from agents.dqn.conv import (
    NetworkPlan,
    input_scale,
    is_image_space,
    plan_network,
    storage_dtype,
    uses_frame_replay,
)
from rlsoft.errors import RlsoftError
from rlsoft.rl.frame_replay import stacks_frames
from rlsoft.rl.spaces import describe_space, discrete_actions, is_tabular_space

__all__ = ["check_observation_space", "check_spaces"]


def check_observation_space(space: gym.Space, who: str) -> tuple[int, ...]:
    """The shape of a Box observation space; anything else is a clear error.

    Vectors (any shape, flattened) feed the MLP; images — ``(H, W, C)``, ``(C, H, W)``, a
    ``uint8`` ``(H, W)`` frame, or a 4-D stack of such images — a convolutional network
    (:func:`agents.dqn.conv.plan_network` chooses, and refuses images the chosen network
    cannot take).
    """
    if isinstance(space, gym.spaces.Box):
        return tuple(int(d) for d in space.shape)
    if is_tabular_space(space):
        hint = (
            "a tabular agent (agent.type: q_learning, sarsa, expected_sarsa, double_q_learning "
            "or soft_q_learning) learns on discrete observations"
        )
    elif (where := _top_level_image(space)) is not None:
        # Flattening would feed the image to the MLP as a vector: keep it whole instead.
        hint = (
            "to train a convolutional network on the image alone, return only it from a "
            "wrapper, e.g. gymnasium.wrappers.TransformObservation(env, lambda obs: "
            f"obs[{where!r}], env.observation_space[{where!r}])"
        )
    else:
        hint = "flatten it into a Box with gymnasium.wrappers.FlattenObservation"
    raise RlsoftError(
        f"{who} needs a Box observation space (a vector or an image), but this environment's is "
        f"{describe_space(space)}; {hint}"
    )


def _top_level_image(space: gym.Space) -> str | int | None:
    """The key (``Dict``) or index (``Tuple``) of the first image among a space's parts: a
    ``Box`` that ``agent.network: auto`` would convolve (:func:`is_image_space`)."""
    if isinstance(space, gym.spaces.Dict):
        items: Iterable[tuple[str | int, gym.Space]] = space.spaces.items()
    elif isinstance(space, gym.spaces.Tuple):
        items = enumerate(space.spaces)
    else:
        return None
    for where, part in items:
        if isinstance(part, gym.spaces.Box) and is_image_space(part):
            return where
    return None


def check_spaces(
    observation_space: gym.Space,
    action_space: gym.Space,
    *,
    network: str,
    channel_axis: str,
    hidden_sizes: list[int] | None,
    precision: str,
    ensemble: bool,
    frame_replay: str,
    frame_stack: int,
) -> tuple[int, NetworkPlan]:
    """``(actions, network plan)`` of a DQN agent with these ``agent.*`` settings on these
    spaces, or the one sentence that says which setting they rule out: a space DQN cannot
    take (not a ``Box`` of observations, not ``Discrete`` actions), a network the images do
    not fit (``nature_cnn`` on MinAtar's 10×10 grids), ``precision: bfloat16`` where the
    network is not ``nature_cnn``, an ``ensemble`` on images or integers, a ``frame_stack``
    that does not describe the observations the frame replay stores.

    :raises RlsoftError: one sentence naming the setting to change.
    """
    who = "the DQN agent"
    n_actions = discrete_actions(
        action_space,
        who,
        "DQN chooses among finitely many actions: discretise the actions with a wrapper, "
        "or use an actor-critic method for continuous control",
    )
    shape = check_observation_space(observation_space, who)
    plan = plan_network(observation_space, network, channel_axis, hidden_sizes)
    if precision != "float32" and plan.name != "nature_cnn":
        raise RlsoftError(
            f"agent.precision {precision} applies to the nature_cnn network's convolutions, "
            f"and this run's network is {plan.name}, where it saves nothing: remove "
            "agent.precision"
        )
    if ensemble and (plan.image is not None or input_scale(observation_space) != 1.0):
        raise RlsoftError(
            "agent.ensemble (Bootstrapped DQN) runs on MLPs of flat float observations, "
            "and this environment's observations are images or integers: drop "
            "agent.ensemble, or flatten and convert the observations with a wrapper"
        )
    dtype = storage_dtype(observation_space)
    k = frame_stack
    if uses_frame_replay(frame_replay, plan, dtype, k) and not stacks_frames(shape, k):
        raise RlsoftError(
            f"agent.frame_stack {k} does not fit observations of shape {shape}, which are "
            f"not stacks of {k} frames (({k}, *frame_shape), newest last); set it to the "
            "stack size of the environment's FrameStackObservation, or 1"
        )
    return n_actions, plan
