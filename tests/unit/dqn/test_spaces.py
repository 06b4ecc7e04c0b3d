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
        # Discrete, but not a space a tabular agent indexes: flattening works for DQN.
        (gym.spaces.Dict({"a": gym.spaces.Discrete(3), "b": gym.spaces.Discrete(4)}), FLATTEN),
        (gym.spaces.Tuple((gym.spaces.Discrete(3), gym.spaces.MultiDiscrete([2, 2]))), FLATTEN),
        (gym.spaces.MultiDiscrete([[2, 2], [3, 3]]), FLATTEN),
        # A 2-D float array (positions of objects) is not an image: auto gives it the MLP.
        (gym.spaces.Dict({"xy": gym.spaces.Box(0, 1, (5, 3))}), FLATTEN),
    ],
)
def test_a_space_dqn_cannot_take_is_refused_with_the_way_out_that_fits_it(space, hint):
    with pytest.raises(RlsoftError) as refused:
        check_observation_space(space, "DQN")
    message = str(refused.value)
    assert message.startswith("DQN needs a Box observation space (a vector or an image), but ")
    assert hint in message, message


class ImageAndLives(gym.Env):
    """A Dict observation: an image and a count."""

    observation_space = gym.spaces.Dict({"image": IMAGE, "lives": gym.spaces.Discrete(3)})
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def test_the_wrapper_the_message_suggests_gives_dqn_its_image():
    """The wrapper written in the refusal, evaluated as it reads, turns the env into one DQN
    takes, whose observations are the images."""
    env = ImageAndLives()
    with pytest.raises(RlsoftError) as refused:
        check_observation_space(env.observation_space, "DQN")
    expression = str(refused.value).split("e.g. ", 1)[1]
    wrapped = eval(expression, {"gymnasium": gym, "env": env})  # the message is our own text
    assert check_observation_space(wrapped.observation_space, "DQN") == (10, 10, 3)
    obs, _ = wrapped.reset(seed=0)
    assert obs.shape == (10, 10, 3) and obs.dtype == np.uint8
    assert wrapped.step(0)[0].shape == (10, 10, 3)
