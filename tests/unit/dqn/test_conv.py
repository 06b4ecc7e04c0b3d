"""Convolutional Q-networks: the papers' architectures counted by hand, the image layouts,
compact replay storage and the conversion to float on the batch, every head and target on
top of a convolutional torso, and the frame replay wired into the agent."""

from __future__ import annotations

import itertools
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from agents.dqn import DQNAgent, DQNConfig
from agents.dqn.conv import ConvTorso, channels_last_planes, plan_network, storage_dtype
from agents.dqn.memory import frame_replay_bytes, parameter_count, replay_bytes
from rlsoft.errors import RlsoftError
from rlsoft.explore.policies import Boltzmann, EpsilonGreedy
from rlsoft.rl.frame_replay import FrameReplayBuffer
from rlsoft.rl.replay import ReplayBuffer

MINATAR = gym.spaces.Box(0, 1, (10, 10, 4), np.bool_)  # MinAtar Breakout: 10×10×4
ATARI = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)  # FrameStackObservation of 84×84 frames
TINY = gym.spaces.Box(0, 1, (5, 5, 2), np.bool_)
SMALL = {
    "batch_size": 8,
    "buffer_size": 256,
    "learning_starts": 16,
    "train_freq": 4,
    "gradient_steps": 2,
    "target_update_interval": 20,
}


def make_agent(space=TINY, n_actions=3, seed=0, num_envs=2, policy=None, **overrides):
    return DQNAgent(
        observation_space=space,
        action_space=gym.spaces.Discrete(n_actions),
        policy=policy or EpsilonGreedy(0.2),
        config=DQNConfig(**{**SMALL, **overrides}),
        rng=np.random.default_rng(seed),
        torch_seed=seed,
        num_envs=num_envs,
    )


def feed(agent, vector_steps, seed=0, start=0, obs=None) -> tuple[list[np.ndarray], np.ndarray]:
    """Drive the agent with random image streams of its space whose consecutive observations
    chain (``next_obs`` is the next ``obs`` unless the episode ended), as a real env's do,
    from ``obs`` when given; returns the actions and the observation to continue from."""
    rng = np.random.default_rng(seed)
    n, shape, dtype = agent.num_envs, agent.obs_shape, agent.obs_dtype

    def draw():
        if dtype == np.bool_:
            return rng.random((n, *shape)) < 0.3
        return rng.integers(0, 256, (n, *shape)).astype(dtype)

    obs, actions = draw() if obs is None else obs, []
    for t in range(start, start + vector_steps):
        a = agent.act(obs, t * n)
        actions.append(a)
        next_obs = draw()
        terminated, truncated = rng.random(n) < 0.05, rng.random(n) < 0.05
        agent.observe(obs, a, rng.normal(size=n), next_obs, terminated, truncated, t * n)
        reset = draw()
        done = (terminated | truncated).reshape(-1, *([1] * len(shape)))
        obs = np.where(done, reset, next_obs)
    return actions, obs


# --------------------------------------------------------------------------------------------
# The papers' architectures, counted by hand
# --------------------------------------------------------------------------------------------


def _conv_shapes(torso: ConvTorso, x: torch.Tensor) -> list[tuple[int, ...]]:
    shapes = []
    x = x.permute(0, 3, 1, 2) if torso.channels_last else x
    for conv in torso.convs:
        x = conv(x)
        shapes.append(tuple(x.shape[1:]))
    return shapes


def test_nature_cnn_is_mnih_et_al_2015():
    """84×84×4 → 32 8×8/4 → 64 4×4/2 → 64 3×3/1 → 512 → A (Mnih et al. 2015, Methods)."""
    agent = make_agent(ATARI, n_actions=6, buffer_size=64)
    assert agent.plan.name == "nature_cnn" and not agent.plan.channels_last
    torso = agent.online.torso
    x = torch.zeros(2, 4, 84, 84)
    # (84 − 8)/4 + 1 = 20, (20 − 4)/2 + 1 = 9, 9 − 3 + 1 = 7
    assert _conv_shapes(torso, x) == [(32, 20, 20), (64, 9, 9), (64, 7, 7)]
    assert torso(x).shape == (2, 64 * 7 * 7)
    expected = (
        (4 * 8 * 8 + 1) * 32  # 8,224
        + (32 * 4 * 4 + 1) * 64  # 32,832
        + (64 * 3 * 3 + 1) * 64  # 36,928
        + (3136 + 1) * 512  # 1,606,144
        + (512 + 1) * 6  # 3,078
    )
    assert expected == 1_687_206
    assert sum(p.numel() for p in agent.online.parameters()) == expected
    assert parameter_count(agent.config, 4 * 84 * 84, 6, ATARI) == expected
    assert agent.online(x).shape == (2, 6)


def test_minatar_cnn_is_young_and_tian_2019():
    """10×10×C → 16 3×3/1 → 128 → A (Young & Tian 2019, their examples/dqn.py)."""
    agent = make_agent(MINATAR, n_actions=3)
    assert agent.plan.name == "minatar_cnn" and agent.plan.channels_last
    torso = agent.online.torso
    x = torch.zeros(5, 10, 10, 4)
    assert _conv_shapes(torso, x) == [(16, 8, 8)]
    expected = (4 * 3 * 3 + 1) * 16 + (16 * 8 * 8 + 1) * 128 + (128 + 1) * 3
    assert expected == 592 + 131_200 + 387
    assert sum(p.numel() for p in agent.online.parameters()) == expected
    assert parameter_count(agent.config, 400, 3, MINATAR) == expected
    for options in ({"dueling": True}, {"head": "c51", "atoms": 11, "dueling": True}):
        config = DQNConfig(**options)
        net = make_agent(MINATAR, n_actions=3, **options).online
        assert parameter_count(config, 400, 3, MINATAR) == sum(p.numel() for p in net.parameters())


def test_channels_last_q_values_match_a_reference_forward_pass():
    """Q(s) of the MinAtar network on H×W×C bools equals the network written out in torch's
    functional API on the transposed C×H×W floats, as MinAtar's own example feeds it."""
    agent = make_agent(MINATAR, n_actions=3, dueling=True)
    obs = np.random.default_rng(0).random((7, 10, 10, 4)) < 0.2
    net = agent.online
    x = torch.from_numpy(np.transpose(obs, (0, 3, 1, 2)).astype(np.float32))
    conv = net.torso.convs[0]
    h = F.relu(F.conv2d(x, conv.weight, conv.bias)).reshape(7, -1)
    h = F.relu(F.linear(h, net.body[0].weight, net.body[0].bias))
    v = F.linear(h, net.value.weight, net.value.bias)
    a = F.linear(h, net.advantage.weight, net.advantage.bias)
    expected = (v + a - a.mean(1, keepdim=True)).detach().numpy()
    np.testing.assert_allclose(agent.q_values(obs), expected, rtol=1e-5, atol=1e-6)


def test_the_nature_network_runs_channels_last_with_the_same_values_and_gradients():
    """The Nature network convolves a channels-last copy of its batch (a speed choice): its
    Q-values and its parameters' autograd gradients equal those of the network written out
    in torch's functional API on contiguous C×H×W floats, and MinAtar's one convolution takes
    its batch as the permuted view it is."""
    agent = make_agent(ATARI, n_actions=4, buffer_size=64)
    net = agent.online
    frames = np.random.default_rng(1).integers(0, 256, (5, 4, 84, 84), dtype=np.uint8)
    x = torch.from_numpy(frames.astype(np.float32) / 255.0)
    assert net.torso.images(x).is_contiguous(memory_format=torch.channels_last)
    assert not x.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(
        agent.q_values(frames), _reference_q(net, x).detach().numpy(), rtol=1e-4, atol=1e-5
    )
    params = list(net.parameters())
    got = torch.autograd.grad(net(x).square().sum(), params)
    want = torch.autograd.grad(_reference_q(net, x).square().sum(), params)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
    minatar = make_agent(MINATAR, n_actions=3).online.torso
    grid = torch.zeros(2, 10, 10, 4)
    assert minatar.images(grid).data_ptr() == grid.data_ptr()


def _bfloat16(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.bfloat16).float()


def test_bfloat16_precision_computes_the_hidden_layers_in_bfloat16_and_the_rest_float32():
    """``agent.precision: bfloat16`` (Kalamkar et al. 2019's mixed precision): each
    convolution and each hidden dense layer is the float32 product of the bfloat16-rounded
    input, weight and bias, its output rounded to bfloat16, written out here in torch's
    functional API; the output layer, the parameters and their gradients stay float32, and
    the gradients point where float32's do."""
    agent = make_agent(ATARI, n_actions=4, buffer_size=64, precision="bfloat16")
    net = agent.online
    assert net.torso.compute_dtype == torch.bfloat16
    frames = np.random.default_rng(2).integers(0, 256, (6, 4, 84, 84), dtype=np.uint8)
    x = torch.from_numpy(frames.astype(np.float32) / 255.0)
    h = x
    for conv in net.torso.convs:
        w, b = _bfloat16(conv.weight), _bfloat16(conv.bias)
        h = _bfloat16(F.relu(F.conv2d(_bfloat16(h), w, b, conv.stride)))
    features = h.reshape(len(h), -1)

    def q_from(bfloat16_dense: bool) -> np.ndarray:
        h = features
        for layer in net.body:
            if bfloat16_dense:
                w, b = _bfloat16(layer.weight), _bfloat16(layer.bias)
                h = _bfloat16(F.relu(F.linear(_bfloat16(h), w, b)))
            else:
                h = F.relu(F.linear(h, layer.weight, layer.bias))
        return F.linear(h, net.head.weight, net.head.bias).detach().numpy()

    emulated, float32_dense = q_from(True), q_from(False)
    q = agent.q_values(frames)
    assert q.dtype == np.float32
    # Summation order inside a product may move a value by one bfloat16 step (2⁻⁸), which
    # moves the Q-values (about 0.05 here) by far less than rounding the hidden layer does.
    np.testing.assert_allclose(q, emulated, rtol=1e-3, atol=2e-6)
    assert np.abs(q - emulated).max() < np.abs(q - float32_dense).max() / 10
    exact = _reference_q(net, x).detach().numpy()
    assert not np.array_equal(q, exact)  # the option changes the arithmetic…
    np.testing.assert_allclose(q, exact, rtol=5e-2, atol=5e-3)  # …by rounding only
    params = list(net.parameters())
    agent.optimizer.zero_grad()
    net(x).square().sum().backward()  # the weights' bfloat16 copies hand the gradients on
    got = [p.grad.clone() for p in params]
    want = torch.autograd.grad(_reference_q(net, x).square().sum(), params)
    assert all(p.dtype == g.dtype == torch.float32 for p, g in zip(params, got, strict=True))
    flat_got, flat_want = torch.cat([g.ravel() for g in got]), torch.cat([w.ravel() for w in want])
    assert F.cosine_similarity(flat_got, flat_want, dim=0) > 0.999


def test_bfloat16_training_is_deterministic_and_refused_where_it_saves_nothing():
    """The same seed gives the same parameters, bit for bit (exact resume relies on it); a
    network without the Nature convolutions refuses the setting in one sentence."""
    space = gym.spaces.Box(0, 255, (4, 40, 40), np.uint8)  # the Nature network's smallest input
    runs = []
    for _ in range(2):
        agent = make_agent(space, n_actions=3, seed=3, network="nature_cnn", precision="bfloat16")
        feed(agent, 40, seed=8)
        runs.append(agent)
    assert runs[0].updates > 0
    torch.testing.assert_close(runs[0]._flat, runs[1]._flat, rtol=0, atol=0)
    for space, network in ((MINATAR, "minatar_cnn"), (gym.spaces.Box(-1, 1, (4,)), "mlp")):
        with pytest.raises(RlsoftError, match=rf"network is {network}, where it saves nothing"):
            make_agent(space, precision="bfloat16")


def _autocast(agent: DQNAgent) -> DQNAgent:
    """``agent``, made to cast its weights under autocast at every pass (no CastCopy)."""
    agent.online.cast_copy = agent.target.cast_copy = None
    agent._online_cast = agent._target_cast = None
    return agent


@pytest.mark.parametrize(
    "variant",
    [{}, {"double": True, "dueling": True}, {"head": "c51", "target": "munchausen"}],
    ids=["dqn", "double-dueling", "c51-munchausen"],
)
def test_bfloat16_weights_cast_once_per_change_give_autocasts_numbers(variant):
    """With ``agent.precision: bfloat16`` the weights are cast once after each change
    (``CastCopy``) instead of at every call under autocast: the Q-values, the gradients and
    a whole training run are the same, bit for bit, as autocast's, through gradient steps,
    target updates and loading a checkpoint."""
    space = gym.spaces.Box(0, 255, (4, 40, 40), np.uint8)
    agent, twin = (
        make_agent(
            space, n_actions=3, seed=3, network="nature_cnn", precision="bfloat16", **variant
        )
        for _ in range(2)
    )
    assert agent.online.cast_copy is not None and agent.target.cast_copy is not None
    _autocast(twin)
    frames = np.random.default_rng(5).integers(0, 256, (7, *space.shape), dtype=np.uint8)

    def same_q() -> None:
        np.testing.assert_array_equal(agent.q_values(frames), twin.q_values(frames))
        x = agent._as_input(torch.from_numpy(frames))
        with torch.no_grad():
            assert torch.equal(agent.target(x), twin.target(x))

    same_q()
    x = agent._as_input(torch.from_numpy(frames))
    for a in (agent, twin):
        a.optimizer.zero_grad()
        a.online(x).square().sum().backward()
    # The same gradients; a written zero may carry the sign that adding to +0 drops.
    assert torch.equal(agent._grads + 0.0, twin._grads + 0.0)
    assert agent._grads.abs().sum() > 0
    obs = None
    for start in (0, 30):  # about 30 gradient steps and 3 target updates each time
        feed(twin, 30, seed=8 + start, start=start, obs=obs)
        _, obs = feed(agent, 30, seed=8 + start, start=start, obs=obs)
        assert agent.updates > 0 and agent.target_updates > 0
        assert torch.equal(agent._flat, twin._flat)
        assert torch.equal(agent._target_flat, twin._target_flat)
        same_q()
    other = make_agent(
        space, n_actions=3, seed=4, network="nature_cnn", precision="bfloat16", **variant
    )
    feed(other, 20, seed=9)
    for a in (agent, twin):
        a.load_state_dict(other.state_dict())
    assert torch.equal(agent._flat, other._flat)
    same_q()
    np.testing.assert_array_equal(agent.q_values(frames), other.q_values(frames))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.uint8])
def test_channels_last_planes_is_torchs_channels_last_copy(dtype):
    """The plane-by-plane copy gives the tensor of torch's own permuting copy: values,
    dtype, shape and memory layout, also from a non-contiguous batch."""
    rng = np.random.default_rng(3)
    for shape in ((32, 4, 84, 84), (1, 4, 84, 84), (3, 2, 5, 7), (2, 1, 3, 3), (0, 4, 84, 84)):
        batch = torch.from_numpy(rng.integers(0, 256, shape, dtype=np.uint8))
        for source in (batch, batch.flip(0), batch.permute(0, 1, 3, 2)):
            want = source.contiguous(memory_format=torch.channels_last).to(dtype)
            got = channels_last_planes(source, dtype)
            assert got.dtype == dtype and got.shape == source.shape
            assert got.is_contiguous(memory_format=torch.channels_last)
            assert torch.equal(got, want)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_an_empty_batch_of_frame_stacks_gives_empty_q_values(precision):
    """A batch of no observations is a batch for the Nature network too: (0, A)."""
    agent = make_agent(ATARI, n_actions=4, buffer_size=64, precision=precision)
    assert agent.q_values(np.zeros((0, 4, 84, 84), dtype=np.uint8)).shape == (0, 4)


def test_frame_stacks_are_converted_into_the_nature_networks_layout_in_one_pass():
    """The Nature network's uint8 batch becomes channels-last float32 scaled by 1/255 in one
    pass: exactly the values of converting and then scaling, and no further copy when the
    network reads it (with bfloat16 convolutions, those values rounded to bfloat16);
    MinAtar's bool grids are converted as they come."""
    agent = make_agent(ATARI, n_actions=4, buffer_size=64)
    frames = torch.from_numpy(
        np.random.default_rng(2).integers(0, 256, (3, 4, 84, 84), dtype=np.uint8)
    )
    x = agent._as_input(frames)
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    scaled = frames.to(torch.float32).mul_(1.0 / 255.0)
    assert torch.equal(x, scaled)
    assert agent.online.torso.images(x).data_ptr() == x.data_ptr()
    # bfloat16: the float32 values rounded once, as autocast rounds them at a convolution.
    low = make_agent(ATARI, n_actions=4, buffer_size=64, precision="bfloat16")._as_input(frames)
    assert low.dtype == torch.bfloat16 and low.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(low, scaled.to(torch.bfloat16))
    minatar = make_agent(MINATAR, n_actions=3)
    grids = torch.from_numpy(np.random.default_rng(3).random((2, 10, 10, 4)) < 0.5)
    y = minatar._as_input(grids)
    assert y.is_contiguous() and torch.equal(y, grids.to(torch.float32))


# --------------------------------------------------------------------------------------------
# Choosing the network and the layout
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "dtype", "network", "image", "channels_last"),
    [
        ((10, 10, 4), np.bool_, "minatar_cnn", (4, 10, 10), True),
        ((10, 10, 10), np.bool_, "minatar_cnn", (10, 10, 10), True),  # MinAtar Seaquest
        ((4, 84, 84), np.uint8, "nature_cnn", (4, 84, 84), False),
        ((84, 84, 4), np.uint8, "nature_cnn", (4, 84, 84), True),
        ((84, 84), np.uint8, "nature_cnn", (1, 84, 84), False),
        ((4,), np.float32, "mlp", None, False),
        ((5, 5), np.float32, "mlp", None, False),  # DeepSea's one-hot grid stays an MLP
        ((3, 3, 1), np.uint8, "minatar_cnn", (1, 3, 3), True),
        ((1, 1, 1), np.uint8, "mlp", None, False),  # no 3×3 patch to convolve
        ((2, 2, 9), np.uint8, "mlp", None, False),
    ],
)
def test_auto_picks_the_network_from_the_space(shape, dtype, network, image, channels_last):
    plan = plan_network(gym.spaces.Box(0, 1, shape, dtype))
    assert (plan.name, plan.image, plan.channels_last) == (network, image, channels_last)


@pytest.mark.parametrize(
    ("shape", "dtype", "network", "image", "channels_last"),
    [
        ((4, 84, 84, 3), np.uint8, "nature_cnn", (12, 84, 84), True),  # stacked RGB frames
        ((4, 84, 84, 1), np.uint8, "nature_cnn", (4, 84, 84), True),  # GrayscaleObservation
        ((3, 2, 40, 36), np.uint8, "nature_cnn", (6, 40, 36), False),  # channels-first frames
        ((2, 10, 10, 4), np.bool_, "minatar_cnn", (8, 10, 10), True),  # stacked MinAtar grids
        ((2, 2, 2, 3), np.uint8, "mlp", None, False),  # no 3×3 patch to convolve
    ],
)
def test_stacks_of_images_are_convolved_as_one_image_of_all_their_channels(
    shape, dtype, network, image, channels_last
):
    plan = plan_network(gym.spaces.Box(0, 1, shape, dtype))
    assert (plan.name, plan.image, plan.channels_last) == (network, image, channels_last)
    assert plan.frames == (shape[0] if image else 1)


def _stacks_as_channels_first(obs: np.ndarray, channels_last: bool) -> np.ndarray:
    """``(N, k, H, W, C)`` or ``(N, k, C, H, W)`` stacks as ``(N, k·C, H, W)`` images whose
    channel ``f·C + c`` is channel c of frame f, built axis by axis in numpy."""
    k = obs.shape[1]
    frames = [
        np.transpose(obs[:, f], (0, 3, 1, 2)) if channels_last else obs[:, f] for f in range(k)
    ]
    return np.concatenate(frames, axis=1)


@pytest.mark.parametrize(
    ("space", "options"),
    [
        (gym.spaces.Box(0, 255, (3, 40, 40, 3), np.uint8), {}),
        (gym.spaces.Box(0, 255, (2, 3, 40, 44), np.uint8), {"dueling": True}),
        (gym.spaces.Box(0, 255, (2, 40, 40, 3), np.uint8), {"precision": "bfloat16"}),
        (gym.spaces.Box(0, 1, (2, 10, 10, 4), np.bool_), {}),  # patches, numpy acting
        (gym.spaces.Box(0, 1, (3, 4, 10, 10), np.bool_), {"dueling": True}),
        (gym.spaces.Box(0, 255, (2, 7, 6, 3), np.uint8), {"noisy": True}),  # torch acting
    ],
    ids=["nature-rgb", "nature-first", "nature-bf16", "minatar-last", "minatar-first", "noisy"],
)
def test_stacks_of_images_give_the_reference_networks_q_values_and_gradients(space, options):
    """A network on stacks of images computes the same Q-values, and autograd the same
    gradients, as the network written out in torch's functional API on the stacks laid out
    as one channels-first image by hand; and a short run through the frame replay trains."""
    agent = make_agent(space, n_actions=3, buffer_size=64, **options)
    net, plan = agent.online, agent.plan
    assert plan.frames == space.shape[0] and isinstance(agent.buffer, FrameReplayBuffer)
    rng = np.random.default_rng(4)
    if space.dtype == np.bool_:
        obs = rng.random((5, *space.shape)) < 0.3
    else:
        obs = rng.integers(0, 256, (5, *space.shape), dtype=np.uint8)
    scale = 1.0 / 255.0 if space.dtype == np.uint8 else 1.0
    chw = torch.from_numpy(_stacks_as_channels_first(obs, plan.channels_last) * np.float32(scale))
    assert chw.shape[1:] == plan.image
    want = _reference_q(net, chw).detach().numpy()
    tolerance = (
        {"rtol": 5e-2, "atol": 5e-3} if "precision" in options else {"rtol": 1e-4, "atol": 1e-5}
    )
    np.testing.assert_allclose(agent.q_values(obs), want, **tolerance)
    if "precision" not in options and "noisy" not in options:
        x = agent._as_input(torch.from_numpy(obs))
        params = list(net.parameters())
        got = torch.autograd.grad(net(x).square().sum(), params)
        expected = torch.autograd.grad(_reference_q(net, chw).square().sum(), params)
        for g, w in zip(got, expected, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
    feed(agent, 30, seed=6)
    assert agent.updates > 0 and np.isfinite(agent.q_values(obs)).all()


def test_channel_axis_override_and_unusable_images_are_one_sentence():
    square = gym.spaces.Box(0, 1, (6, 6, 6), np.uint8)
    assert plan_network(square, "auto", "first").channels_last is False
    assert plan_network(square, "auto", "last").channels_last is True
    cubes = gym.spaces.Box(0, 1, (2, 6, 6, 6), np.uint8)  # a stack: the axis of each image
    assert plan_network(cubes, "auto", "first").channels_last is False
    assert plan_network(cubes, "auto", "last").channels_last is True
    assert plan_network(cubes, "auto", "first").image == (12, 6, 6)
    with pytest.raises(RlsoftError, match=r"nature_cnn needs images of at least 36×36.*"):
        plan_network(MINATAR, "nature_cnn")
    with pytest.raises(RlsoftError, match=r"minatar_cnn needs image observations.*use"):
        plan_network(gym.spaces.Box(-1, 1, (4,), np.float32), "minatar_cnn")
    with pytest.raises(RlsoftError, match=r"minatar_cnn needs images of at least 3×3"):
        plan_network(gym.spaces.Box(0, 1, (2, 2, 9), np.uint8), "minatar_cnn")
    with pytest.raises(ValueError, match="channel_axis 'last' applies to the convolutional"):
        DQNConfig(network="mlp", channel_axis="last")
    # Where there is no channel axis to choose, an explicit one is refused, not ignored.
    for space in (
        gym.spaces.Box(-1, 1, (4,), np.float32),
        gym.spaces.Box(0, 9, (84, 84), np.uint8),
    ):
        with pytest.raises(RlsoftError, match=r"channel_axis first says which axis of a 3-D"):
            plan_network(space, "auto", "first")
    with pytest.raises(RlsoftError, match=r"channel_axis last .* shape \(84, 84\): leave"):
        plan_network(gym.spaces.Box(0, 9, (84, 84), np.uint8), "nature_cnn", "last")


def test_a_channel_axis_reading_more_channels_than_pixels_against_auto_warns():
    stacks = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    with pytest.warns(
        RuntimeWarning,
        match=r"shape \(4, 84, 84\) as 84 channels of 4×84 .*"
        r"auto would read 4 channels of 84×84",
    ):
        plan = plan_network(stacks, "auto", "last")
    assert plan.name == "minatar_cnn" and plan.image == (84, 4, 84)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # The reading auto makes anyway, a square image, and few channels: no warning.
        plan_network(stacks, "auto", "first")
        plan_network(MINATAR, "auto", "last")
        plan_network(gym.spaces.Box(0, 1, (6, 6, 6), np.uint8), "auto", "first")
        plan_network(gym.spaces.Box(0, 1, (12, 10, 8), np.uint8), "auto", "last")
    with pytest.raises(ValueError, match="frame_replay is off"):
        DQNConfig(frame_stack=4, frame_replay="off")
    with pytest.raises(ValueError, match=r"frame_padding zero says how stacks .* frame_stack is 1"):
        DQNConfig(frame_padding="zero")
    assert DQNConfig(frame_stack=4, frame_padding="zero").frame_padding == "zero"
    with pytest.raises(
        RlsoftError, match=r"agent\.frame_stack 4 describes .* \(the observations are floats,"
    ):
        make_agent(gym.spaces.Box(-1, 1, (4, 8, 8), np.float32), frame_stack=4)
    # Stacks of images too small to convolve go to the MLP, which the frame replay does not serve.
    with pytest.raises(RlsoftError, match=r"\(the network is mlp, not a convolutional one\)"):
        make_agent(gym.spaces.Box(0, 1, (2, 2, 2, 4), np.bool_), frame_stack=2)
    with pytest.raises(RlsoftError, match=r"agent\.frame_stack 3 does not fit"):
        make_agent(gym.spaces.Box(0, 255, (4, 40, 40), np.uint8), frame_stack=3)


def test_mlp_on_a_flattened_image_is_still_possible():
    agent = make_agent(MINATAR, network="mlp", hidden_sizes=[8])
    assert agent.online.torso is None and agent._numpy_forward is not None
    assert agent.q_values(np.zeros((2, 10, 10, 4), bool)).shape == (2, 3)


# --------------------------------------------------------------------------------------------
# Compact storage, conversion on the batch
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("frame_replay", ["off", "on"])
@pytest.mark.parametrize("space", [MINATAR, ATARI], ids=["bool", "uint8"])
def test_observations_are_stored_compactly_and_the_estimate_is_exact(space, frame_replay):
    agent = make_agent(space, buffer_size=100, num_envs=3, frame_replay=frame_replay)
    buffer = agent.buffer
    one = int(np.prod(space.shape))  # bytes of one observation at one byte per number
    if frame_replay == "off":
        assert isinstance(buffer, ReplayBuffer)
        assert buffer.obs.dtype == space.dtype and buffer.next_obs.dtype == space.dtype
        arrays = (buffer.obs, buffer.next_obs, buffer.actions, buffer.rewards,
                  buffer.terminated, buffer.done)  # fmt: skip
        nbytes = sum(a.nbytes for a in arrays)
        # 102 transitions (100 rounded up to 3 envs), obs + next_obs at one byte per number
        assert nbytes == 102 * (2 * one + 8 + 4 + 1 + 1)
        assert replay_bytes(100, one, 3, obs_itemsize=1) == nbytes
    else:
        assert isinstance(buffer, FrameReplayBuffer) and buffer.frames.dtype == space.dtype
        # 102 + 1·3 frames in the ring, 16 in the side table, 22 bytes of bookkeeping each
        assert buffer.nbytes == (102 + 3 + 16) * one + 102 * 22
        assert frame_replay_bytes(100, one, 1, 3, obs_itemsize=1) == buffer.nbytes


def test_storage_dtypes():
    assert storage_dtype(MINATAR) == np.bool_ and storage_dtype(ATARI) == np.uint8
    assert storage_dtype(gym.spaces.Box(-5, 5, (3,), np.int16)) == np.int16
    # wider than float32: no saving, so as before (the network computes in float32)
    assert storage_dtype(gym.spaces.Box(-5, 5, (3,), np.int64)) == np.float32
    assert storage_dtype(gym.spaces.Box(-1.0, 1.0, (3,), np.float64)) == np.float32


def test_auto_frame_replay_is_on_for_compact_images_only():
    assert isinstance(make_agent(MINATAR).buffer, FrameReplayBuffer)
    assert isinstance(make_agent(gym.spaces.Box(0, 1, (5, 5, 2))).buffer, ReplayBuffer)
    assert isinstance(make_agent(gym.spaces.Box(0, 255, (6,), np.uint8)).buffer, ReplayBuffer)


def test_batches_stay_compact_until_converted_on_the_device():
    agent = make_agent(ATARI, buffer_size=64, batch_size=4, learning_starts=10**6)
    feed(agent, 12)
    batch = agent._sample(5)
    assert batch["obs"].dtype == torch.uint8 and batch["next_obs"].dtype == torch.uint8
    x = agent._as_input(batch["obs"])
    assert x.dtype == torch.float32 and x.device == agent.device
    np.testing.assert_allclose(x.numpy(), batch["obs"].numpy() / 255.0, rtol=1e-6, atol=0)
    flags = make_agent(MINATAR)
    bools = torch.from_numpy(np.random.default_rng(1).random((3, 10, 10, 4)) < 0.5)
    np.testing.assert_array_equal(flags._as_input(bools).numpy(), bools.numpy().astype(np.float32))


def test_uint8_vectors_are_scaled_on_the_numpy_path_too():
    space = gym.spaces.Box(0, 255, (6,), np.uint8)
    agent = make_agent(space, hidden_sizes=[8])
    obs = np.random.default_rng(2).integers(0, 256, (4, 6)).astype(np.uint8)
    with torch.no_grad():
        expected = agent.online(torch.from_numpy(obs.astype(np.float64) / 255.0).float())
    np.testing.assert_allclose(agent.q_values(obs), expected.numpy(), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Every head, target and exploration rule on a convolutional torso
# --------------------------------------------------------------------------------------------

OPTIONS = [
    {"head": head, "target": target, "dueling": dueling, "double": double}
    for head, target, dueling, double in itertools.product(
        ["q", "c51"], ["standard", "soft", "munchausen"], [False, True], [False, True]
    )
    if not (double and target != "standard") and (dueling == double or target != "standard")
]
for i, options in enumerate(OPTIONS):
    options["n_step"] = 3 if options["target"] == "standard" and i % 2 else 1
    options["tau"] = 0.5 if i % 3 == 0 else 1.0


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_every_head_and_target_trains_on_a_conv_torso(options):
    policy = Boltzmann(1.0) if options["target"] != "standard" else EpsilonGreedy(0.3)
    agent = make_agent(policy=policy, **options)
    actions, _ = feed(agent, 30)
    assert all(a.shape == (2,) for a in actions)
    assert agent.updates > 0
    assert all(np.isfinite(v) for v in agent.metrics().values())
    assert torch.isfinite(agent._flat).all()


def test_frame_replay_and_transition_replay_learn_identically():
    """The frame replay samples the same transitions for the same generator state, so a run
    with it ends with the parameters of a run that stores whole transitions, bit for bit."""
    runs = []
    for frame_replay in ("on", "off"):
        agent = make_agent(seed=4, frame_replay=frame_replay, n_step=3, double=True)
        runs.append((feed(agent, 60, seed=9)[0], agent))
    (acts_a, a), (acts_b, b) = runs
    assert isinstance(a.buffer, FrameReplayBuffer) and isinstance(b.buffer, ReplayBuffer)
    np.testing.assert_array_equal(np.concatenate(acts_a), np.concatenate(acts_b))
    torch.testing.assert_close(a._flat, b._flat, rtol=0, atol=0)


def test_a_stacking_mismatch_is_one_sentence():
    agent = make_agent(gym.spaces.Box(0, 255, (2, 40, 40), np.uint8), frame_stack=2)
    obs = np.zeros((2, 2, 40, 40), np.uint8)
    obs[:, 0] = 7  # not padded with the reset frame: not what FrameStackObservation makes
    with pytest.raises(RlsoftError, match="frame replay cannot store these observations"):
        agent.observe(obs, np.zeros(2, int), np.zeros(2), obs, [False] * 2, [False] * 2, 0)


@pytest.mark.parametrize("options", [{}, {"head": "c51", "frame_replay": "off", "n_step": 2}])
def test_conv_save_load_round_trip_continues_identically(tmp_path, options):
    a = make_agent(MINATAR, seed=1, **options)
    _, last = feed(a, 40, seed=5)
    a.save(tmp_path / "agent.pt")
    b = make_agent(MINATAR, seed=99, **options)
    b.load(tmp_path / "agent.pt")
    acts_a, _ = feed(a, 30, seed=6, start=40, obs=last)
    acts_b, _ = feed(b, 30, seed=6, start=40, obs=last)
    np.testing.assert_array_equal(np.concatenate(acts_a), np.concatenate(acts_b))
    torch.testing.assert_close(a._flat, b._flat, rtol=0, atol=0)
    with pytest.raises(RlsoftError, match=r"different network.*network='auto'"):
        make_agent(MINATAR, network="mlp", **options).load(tmp_path / "agent.pt")


# --------------------------------------------------------------------------------------------
# The hand-written backward pass through a convolutional torso
# --------------------------------------------------------------------------------------------


def _reference_q(net, x):
    """The network written out in torch's functional API on contiguous C×H×W floats, for
    autograd to differentiate (independent of the network's own forward pass)."""
    for conv in net.torso.convs:
        x = F.relu(F.conv2d(x, conv.weight, conv.bias, conv.stride))
    x = x.reshape(len(x), -1)
    for layer in net.body:
        x = F.relu(F.linear(x, layer.weight, layer.bias))
    if not net.dueling:
        return F.linear(x, net.head.weight, net.head.bias)
    v = F.linear(x, net.value.weight, net.value.bias)
    a = F.linear(x, net.advantage.weight, net.advantage.bias)
    return v + a - a.mean(1, keepdim=True)


@pytest.mark.parametrize(
    ("layers", "image", "channels_last", "hidden", "dueling", "loss", "frames"),
    [
        (((16, 3, 1),), (4, 10, 10), True, [128], False, "huber", 1),  # MinAtar's network
        (((16, 3, 1),), (4, 10, 10), True, [128], True, "mse", 1),
        (((16, 3, 1),), (4, 10, 10), False, [], False, "huber", 1),
        (((8, 4, 2),), (3, 17, 15), False, [24, 12], True, "huber", 1),
        (((6, 3, 2),), (2, 12, 12), True, [16], False, "mse", 1),
        (((16, 3, 1),), (8, 10, 10), True, [32], False, "huber", 2),  # stacked MinAtar grids
        (((6, 3, 2),), (6, 9, 11), True, [16], True, "mse", 3),
    ],
)
def test_manual_gradients_equal_autograd_on_conv_torsos(
    layers, image, channels_last, hidden, dueling, loss, frames
):
    from agents.dqn.fastgrad import ManualGradient
    from agents.dqn.networks import QNetwork
    from agents.dqn.optim import flatten_parameters

    torch.manual_seed(0)
    net = QNetwork(
        0,
        5,
        hidden,
        dueling=dueling,
        torso=ConvTorso(layers, image, channels_last=channels_last, frames=frames),
    )
    _, grads = flatten_parameters(net)
    g = torch.Generator().manual_seed(1)
    c, h, w = image
    chw = (torch.rand(9, c, h, w, generator=g) < 0.4).float()
    obs = chw.permute(0, 2, 3, 1).contiguous() if channels_last else chw
    if frames > 1:  # (N, frames, H, W, C / frames): channel f·C / frames + c is frame f's c
        obs = chw.view(9, frames, c // frames, h, w).permute(0, 1, 3, 4, 2).contiguous()
    actions = torch.randint(0, 5, (9,), generator=g)
    with torch.no_grad():
        y = _reference_q(net, chw).gather(1, actions.view(-1, 1)).view(-1)
    y += torch.randn(9, generator=g)  # some |δ| > 1, some < 1: both branches of the Huber loss
    value, q_mean = ManualGradient(net, loss)(obs, actions, y)
    manual = grads.clone()
    grads.zero_()
    q_taken = _reference_q(net, chw).gather(1, actions.view(-1, 1)).view(-1)
    reference = (F.smooth_l1_loss if loss == "huber" else F.mse_loss)(q_taken, y)
    reference.backward()
    assert grads.abs().max() > 0
    torch.testing.assert_close(manual, grads, rtol=1e-5, atol=1e-7)
    # float32 sums in another order (patches and a matrix product, against oneDNN's
    # convolution): equal up to rounding, as the network's outputs below.
    assert value.item() == pytest.approx(reference.item(), rel=1e-5, abs=1e-6)
    assert q_mean.item() == pytest.approx(q_taken.mean().item(), rel=1e-5, abs=1e-6)
    torch.testing.assert_close(net(obs), _reference_q(net, chw), rtol=1e-5, atol=1e-6)


def test_conv_agents_learn_through_the_manual_gradient_where_it_is_measured_to_pay():
    from agents.dqn.fastgrad import ManualGradient

    assert make_agent(MINATAR)._manual_gradient is not None
    assert make_agent(MINATAR, head="c51")._manual_gradient is None
    assert make_agent(MINATAR, noisy=True)._manual_gradient is None
    nature = make_agent(ATARI, num_envs=1, buffer_size=64, frame_replay="off")
    assert nature._manual_gradient is None  # deeper torsos: autograd (bench_pixels --autograd)
    with pytest.raises(ValueError, match="one-convolution torsos"):
        ManualGradient(nature.online, "huber")


@pytest.mark.parametrize(
    ("layers", "image", "channels_last", "dueling", "atoms"),
    [
        (((16, 3, 1),), (4, 10, 10), True, False, None),  # MinAtar's network
        (((16, 3, 1),), (4, 10, 10), True, True, 5),
        (((8, 4, 2),), (3, 17, 15), False, True, None),
        (((6, 3, 2),), (2, 12, 12), True, False, None),
    ],
)
def test_numpy_forward_of_one_convolution_equals_the_functional_network(
    layers, image, channels_last, dueling, atoms
):
    from agents.dqn.networks import NumpyForward, QNetwork
    from agents.dqn.optim import flatten_parameters

    torch.manual_seed(3)
    torso = ConvTorso(layers, image, channels_last=channels_last)
    net = QNetwork(0, 4, [32], dueling=dueling, atoms=atoms, torso=torso)
    flatten_parameters(net)
    forward = NumpyForward(net)
    c, h, w = image
    chw = (torch.rand(6, c, h, w, generator=torch.Generator().manual_seed(4)) < 0.3).float()
    obs = (chw.permute(0, 2, 3, 1) if channels_last else chw).numpy().astype(bool)
    with torch.no_grad():
        expected = _reference_q(net, chw) if atoms is None else None
        if atoms is not None:  # the logits, from the same functional torso
            expected = net(torch.from_numpy(obs).float())
            torch.testing.assert_close(
                net.torso(torch.from_numpy(obs).float()),
                F.relu(
                    F.conv2d(chw, torso.convs[0].weight, torso.convs[0].bias, layers[0][2])
                ).reshape(6, -1),
                rtol=1e-5,
                atol=1e-6,
            )
    np.testing.assert_allclose(forward(obs), expected.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(forward(obs[:1]), expected.numpy()[:1], rtol=1e-5, atol=1e-5)
    empty = torch.zeros(0, *obs.shape[1:])
    assert torso(empty).shape == (0, torso.out_features)  # as F.conv2d takes an empty batch
    with torch.no_grad():  # views of the parameters: an optimiser step is seen at once
        torso.convs[0].bias.add_(1.0)
    assert not np.allclose(forward(obs), expected.numpy(), atol=1e-3)


def test_minatar_agents_act_through_numpy_and_atari_ones_through_torch():
    assert make_agent(MINATAR)._numpy_forward is not None
    nature = make_agent(ATARI, num_envs=1, buffer_size=64, frame_replay="off")
    assert nature._numpy_forward is None


def test_a_checkpoint_of_stacks_on_the_mlp_that_auto_chose_before_goes_on_as_that_mlp():
    """Before 4-D stacks of images were convolved, ``network: auto`` gave them the MLP, and a
    checkpoint records ``auto``: such a checkpoint loads into the MLP it was written by (the
    same Q-values), and the run goes on exactly, through further checkpoints."""
    space = gym.spaces.Box(0, 255, (2, 12, 12, 3), np.uint8)
    old = make_agent(space, hidden_sizes=[16], network="mlp")  # what auto built then
    feed(old, 20, seed=3)
    state = old.state_dict()
    state["config"]["network"] = "auto"  # as the run recorded it
    resumed = make_agent(space, hidden_sizes=[16])
    assert resumed.plan.name == "minatar_cnn"  # auto now
    resumed.load_state_dict(state)
    assert resumed.plan.name == "mlp" and resumed.config.network == "auto"
    probe = np.random.default_rng(0).integers(0, 256, (3, *space.shape), dtype=np.uint8)
    np.testing.assert_array_equal(resumed.q_values(probe), old.q_values(probe))
    feed(old, 20, seed=4, start=20)
    feed(resumed, 20, seed=4, start=20)
    assert torch.equal(resumed._flat, old._flat)
    again = make_agent(space, hidden_sizes=[16])
    again.load_state_dict(resumed.state_dict())
    np.testing.assert_array_equal(again.q_values(probe), old.q_values(probe))
