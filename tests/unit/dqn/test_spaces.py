"""What DQN says of observation spaces it cannot take: the way out that fits the space."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from agents.dqn.spaces import check_observation_space
from rlsoft.errors import RlsoftError

IMAGE = gym.spaces.Box(0, 255, (10, 10, 3), np.uint8)
TABULAR = "a tabular agent (agent.type: q_learning, sarsa, expected_sarsa"
FLATTEN = "flatten it into a Box with gymnasium.wrappers.FlattenObservation"


def image_hint(where: str) -> str:
    return (
        "to train a convolutional network on the image alone, return only it from a wrapper, "
        f"e.g. gymnasium.wrappers.TransformObservation(env, lambda obs: obs[{where}], "
        f"env.observation_space[{where}])"
    )


@pytest.mark.parametrize(
    ("space", "hint"),
    [
        (gym.spaces.Discrete(5), TABULAR),
        (gym.spaces.MultiDiscrete([3, 4]), TABULAR),
        (gym.spaces.Tuple((gym.spaces.Discrete(3), gym.spaces.Discrete(4))), TABULAR),
        # An image inside: no tabular agent takes it, and flattening loses the convolution.
        (gym.spaces.Tuple((gym.spaces.Discrete(3), IMAGE)), image_hint("1")),
        (gym.spaces.Dict({"image": IMAGE, "lives": gym.spaces.Discrete(3)}), image_hint("'image'")),
        (gym.spaces.Dict({"v": gym.spaces.Box(0, 1, (3,)), "d": gym.spaces.Discrete(2)}), FLATTEN),
        (gym.spaces.Tuple((gym.spaces.Box(0, 1, (3,)), gym.spaces.Discrete(2))), FLATTEN),
        (gym.spaces.MultiBinary(4), FLATTEN),
    ],
)
def test_a_space_dqn_cannot_take_is_refused_with_the_way_out_that_fits_it(space, hint):
    with pytest.raises(RlsoftError) as refused:
        check_observation_space(space, "DQN")
    message = str(refused.value)
    assert message.startswith("DQN needs a Box observation space (a vector or an image), but ")
    assert hint in message, message


def test_the_suggested_wrapper_gives_dqn_its_image():
    env = gym.make("CartPole-v1")
    env.observation_space = gym.spaces.Dict({"image": IMAGE, "lives": gym.spaces.Discrete(3)})
    wrapped = gym.wrappers.TransformObservation(
        env, lambda obs: obs["image"], env.observation_space["image"]
    )
    assert check_observation_space(wrapped.observation_space, "DQN") == (10, 10, 3)
