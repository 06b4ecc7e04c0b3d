"""Convolutional torsos for image observations, and the choice of network from the space.

Two architectures, each as its paper gives it (convolutions without padding, ReLU after each
layer; the dense layers after them are ``agent.hidden_sizes``, whose default is the paper's):

* ``nature_cnn`` — Mnih et al. (2015), "Human-level control through deep reinforcement
  learning", *Nature* 518, Methods: for 84×84×4 inputs, 32 filters 8×8 stride 4, 64 filters
  4×4 stride 2, 64 filters 3×3 stride 1, then a dense layer of 512 rectifier units and a linear
  output per action. It needs images of at least 36×36 (the third convolution must see 3×3).
* ``minatar_cnn`` — Young & Tian (2019), "MinAtar: An Atari-Inspired Testbed for Thorough and
  Reproducible Reinforcement Learning Experiments" (and ``examples/dqn.py`` of their
  repository): for 10×10×C inputs, one convolution of 16 filters 3×3 stride 1, then 128
  rectifier units and the linear output. It needs images of at least 3×3.

A convolution of kernel k and stride s maps a side of n pixels to ``⌊(n − k)/s⌋ + 1``, so the
Nature network maps 84×84 to 20×20, 9×9 and 7×7 (3,136 features into the 512 units) and the
MinAtar one 10×10 to 8×8 (1,024 features into the 128 units).

**Image layout.** A 3-D ``Box`` observation is an image either channels first, ``(C, H, W)``
(what ``FrameStackObservation`` makes of grayscale frames: ``(4, 84, 84)``), or channels last,
``(H, W, C)`` (Gymnasium's image convention, MinAtar's ``10×10×C``). ``channel_axis: auto``
reads it as channels first when the first axis is strictly the shortest and as channels last
otherwise (so MinAtar Seaquest's square ``10×10×10`` is channels last, as MinAtar defines it);
``first`` or ``last`` says it outright. A 2-D ``uint8`` ``Box`` is one grayscale frame
``(H, W)``. A 4-D ``Box`` is a stack of k such images on its first axis, ``(k, H, W, C)`` or
``(k, C, H, W)`` (``FrameStackObservation`` over colour frames or MinAtar grids; the channel
axis of each image read as above), convolved as one image of ``k·C`` channels: channel
``f·C + c`` is channel c of frame f, the newest frame last, as a stack of grayscale frames
gives frame f channel f. Channels-last inputs are permuted to torch's ``(N, C, H, W)`` in the
forward pass, on the batch, without a copy (the permuted view is a channels-last tensor, which
``torch.nn.functional.conv2d`` takes as it is); channels-last stacks are copied once, into
``(N, H, W, k·C)``.

**Inputs.** Bool and integer observations (up to 32 bits) are stored as they come (``uint8``
frames, MinAtar's ``bool`` channels) and converted to float32 on the agent's device, one
batch at a time (:meth:`agents.dqn.agent.DQNAgent._as_input`): ``uint8`` observations whose
bounds are ``[0, 255]`` (pixels) are scaled by 1/255, everything else keeps its values
(bool → 0/1).

**Speed.** A torso of one convolution (MinAtar's) gathers each observation's patches with
one ``index_select`` (:func:`patch_index`) and convolves them as one matrix product per
observation (:meth:`ConvTorso.convolve`), which also hands the weight gradient its operand;
it acts through :class:`agents.dqn.networks.NumpyForward` on the CPU, as MLPs do (NoisyNet
acting excepted), and learns through the hand-written backward pass of
:mod:`agents.dqn.fastgrad` (the ``q`` head without NoisyNet). The Nature network convolves
channels-last copies of its batches with oneDNN, acts through torch and learns through
autograd, as C51 and NoisyNet do. The dense layer after the torso is computed in the operand
order of :func:`agents.dqn.networks.wide_linear`, faster on the CPU for these widths.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlsoft.errors import RlsoftError

__all__ = [
    "CONV_LAYERS",
    "DENSE_SIZES",
    "ConvTorso",
    "NetworkPlan",
    "channels_last_planes",
    "conv_output_shape",
    "input_scale",
    "patch_index",
    "plan_network",
    "storage_dtype",
    "uses_frame_replay",
]

ConvLayers = tuple[tuple[int, int, int], ...]
"""``(filters, kernel, stride)`` per convolution."""

CONV_LAYERS: dict[str, ConvLayers] = {
    "nature_cnn": ((32, 8, 4), (64, 4, 2), (64, 3, 1)),  # Mnih et al. (2015), Methods
    "minatar_cnn": ((16, 3, 1),),  # Young & Tian (2019), their DQN network
}
DENSE_SIZES: dict[str, tuple[int, ...]] = {
    "mlp": (256, 256),
    "nature_cnn": (512,),
    "minatar_cnn": (128,),
}
"""The dense layers each network has when ``agent.hidden_sizes`` is left unset."""

NETWORKS = ("mlp", "nature_cnn", "minatar_cnn")


def conv_output_shape(layers: ConvLayers, channels: int, height: int, width: int) -> tuple:
    """``(C, H, W)`` after ``layers`` (no padding): each side n becomes ``⌊(n − k)/s⌋ + 1``.

    Raises ``ValueError`` when a side shrinks below one pixel.
    """
    for filters, kernel, stride in layers:
        if height < kernel or width < kernel:
            raise ValueError(f"a {kernel}×{kernel} convolution needs at least {kernel}×{kernel}")
        channels, height, width = (
            filters,
            (height - kernel) // stride + 1,
            (width - kernel) // stride + 1,
        )
    return channels, height, width


def min_side(layers: ConvLayers) -> int:
    """The smallest image side the convolutions accept (inverting ``⌊(n − k)/s⌋ + 1 ≥ m``)."""
    side = 1
    for _, kernel, stride in reversed(layers):
        side = (side - 1) * stride + kernel
    return side


@dataclass(frozen=True)
class NetworkPlan:
    """The network chosen for an observation space.

    :ivar name: ``mlp``, ``nature_cnn`` or ``minatar_cnn``.
    :ivar image: ``(C, H, W)`` for a convolutional network, None for the MLP.
    :ivar channels_last: the observations are ``(H, W, C)`` (permuted in the forward pass, or
        gathered from that layout by a one-convolution torso).
    :ivar dense: widths of the dense layers after the torso (or of the MLP).
    :ivar frames: the observations are stacks of this many images on their first axis,
        ``(frames, H, W, C / frames)`` or ``(frames, C / frames, H, W)``, convolved as one
        image of ``C`` channels (1: a single image).
    """

    name: str
    image: tuple[int, int, int] | None
    channels_last: bool
    dense: tuple[int, ...]
    frames: int = 1

    @property
    def features(self) -> int | None:
        """Length of the torso's flattened output (None for the MLP)."""
        if self.image is None:
            return None
        return int(np.prod(conv_output_shape(CONV_LAYERS[self.name], *self.image)))


def _layout(shape: tuple[int, ...], channel_axis: str) -> tuple[tuple[int, int, int], bool, int]:
    """``((C, H, W), channels_last, frames)`` of an image shape or a stack of images (see the
    module docstring): a stack of k images of c channels is one image of ``k·c`` channels."""
    if len(shape) == 2:
        return (1, shape[0], shape[1]), False, 1
    if len(shape) == 4:
        (c, h, w), last, _ = _layout(shape[1:], channel_axis)
        return (shape[0] * c, h, w), last, shape[0]
    first = channel_axis == "first" or (
        channel_axis == "auto" and shape[0] < shape[1] and shape[0] < shape[2]
    )
    if first:
        return (shape[0], shape[1], shape[2]), False, 1
    return (shape[2], shape[0], shape[1]), True, 1


def _check_channel_axis(shape: tuple[int, ...], channel_axis: str) -> None:
    """Refuse an explicit ``channel_axis`` where there is no channel axis to choose (not a 3-D
    image or a 4-D stack of them), and warn where it reads more channels than pixels along a
    side while ``auto`` would read the strictly shortest axis as the channels: (4, 84, 84)
    frame stacks read channels last are 84 channels of 4×84 images, on which ``auto`` would
    then pick ``minatar_cnn``."""
    if len(shape) not in (3, 4):
        raise RlsoftError(
            f"agent.channel_axis {channel_axis} says which axis of a 3-D image (or of each "
            f"image of a 4-D stack) holds the channels, but this environment's observations "
            f"have shape {shape}: leave agent.channel_axis at auto"
        )
    image = shape[-3:]
    (c, h, w), _, _ = _layout(image, channel_axis)
    other, _, _ = _layout(image, "auto")
    if other != (c, h, w) and c > min(h, w) and other[0] < min(other[1:]):
        what = f"{c} channels of {h}×{w} images"
        if len(shape) == 4:
            what = f"stacks of {shape[0]} images, each {c} channels of {h}×{w}"
        warnings.warn(
            f"agent.channel_axis {channel_axis} reads observations of shape {shape} as {what}, "
            "more channels than pixels along a side "
            f"(auto would read {other[0]} channels of {other[1]}×{other[2]}); set "
            "agent.channel_axis to auto if the channels are on the other axis",
            RuntimeWarning,
            stacklevel=2,  # one location, so one warning however often the plan is made
        )


def is_image_space(space: gym.spaces.Box) -> bool:
    """Whether ``auto`` convolves observations of ``space``: 3-D images, 4-D stacks of them,
    and 2-D ``uint8`` ones (a grayscale frame)."""
    shape = space.shape
    return len(shape) in (3, 4) or (len(shape) == 2 and space.dtype == np.uint8)


def plan_network(
    space: gym.spaces.Box,
    network: str = "auto",
    channel_axis: str = "auto",
    hidden_sizes: Sequence[int] | None = None,
) -> NetworkPlan:
    """The network for observations of ``space`` (a ``Box``), or one sentence saying why not.

    ``auto`` picks a convolutional network for images — 3-D spaces, 4-D stacks of them, and
    2-D ``uint8`` ones (a grayscale frame) — namely ``nature_cnn`` when both sides are at least
    36 pixels, ``minatar_cnn`` when they are at least 3, and the MLP for smaller ones (a 1×1
    or 2×2 image has no 3×3 patch to convolve); every other space is flattened into the MLP (a
    2-D float space such as DeepSea's one-hot grid included).
    """
    shape = tuple(int(d) for d in space.shape)
    image_like = is_image_space(space)
    if channel_axis != "auto":
        _check_channel_axis(shape, channel_axis)
    if network == "auto":
        if not image_like:
            network = "mlp"
        else:
            (_, h, w), _, _ = _layout(shape, channel_axis)
            fitting = [
                n for n in ("nature_cnn", "minatar_cnn") if min(h, w) >= min_side(CONV_LAYERS[n])
            ]
            network = fitting[0] if fitting else "mlp"
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; expected auto or one of {NETWORKS}")
    dense = tuple(DENSE_SIZES[network] if hidden_sizes is None else hidden_sizes)
    if network == "mlp":
        return NetworkPlan("mlp", None, False, dense)
    if len(shape) not in (2, 3, 4):
        raise RlsoftError(
            f"agent.network {network} needs image observations (H×W×C, C×H×W, H×W or a "
            f"stack of such images on a first axis), but this environment's have shape "
            f"{shape}; use agent.network: mlp or auto"
        )
    image, channels_last, frames = _layout(shape, channel_axis)
    need = min_side(CONV_LAYERS[network])
    if min(image[1:]) < need:
        hint = "minatar_cnn" if network == "nature_cnn" else "mlp"
        raise RlsoftError(
            f"agent.network {network} needs images of at least {need}×{need} pixels, but this "
            f"environment's are {image[1]}×{image[2]} (as C×H×W {image}); use agent.network: "
            f"{hint}, or set agent.channel_axis if the channels were read from the wrong axis"
        )
    return NetworkPlan(network, image, channels_last, dense, frames)


def storage_dtype(space: gym.spaces.Box) -> np.dtype:
    """How the replay memory stores observations of ``space``: bool observations and integers
    of at most four bytes in their own dtype (compact: a ``uint8`` pixel or a bool channel
    takes one byte against float32's four), everything else (floats, 64-bit integers) as
    float32, which the network computes in anyway."""
    dtype = np.dtype(space.dtype)
    if dtype == np.bool_ or (np.issubdtype(dtype, np.integer) and dtype.itemsize <= 4):
        return dtype
    return np.dtype(np.float32)


def input_scale(space: gym.spaces.Box) -> float:
    """The factor observations are multiplied by after conversion to float: 1/255 for
    ``uint8`` pixels (bounds ``[0, 255]``, as Atari frames), 1 for everything else."""
    if np.dtype(space.dtype) == np.uint8 and np.all(space.low == 0) and np.all(space.high == 255):
        return 1.0 / 255.0
    return 1.0


def patch_index(
    image: tuple[int, int, int], kernel: int, stride: int, channels_last: bool, frames: int = 1
) -> torch.Tensor:
    """Where each pixel of every convolution patch sits in one flattened observation.

    For a ``k×k`` convolution of stride s on a ``(C, H, W)`` image, output position
    ``(u, v)`` sees pixel ``(c, y, x) = (c, s·u + i, s·v + j)`` through weight
    ``[:, c, i, j]``. The result holds, for every ``(c, i, j)`` (row-major, torch's weight
    order) and within it every ``(u, v)`` (row-major), that pixel's offset in the flattened
    observation: ``(c·H + y)·W + x`` channels first, ``(y·W + x)·C + c`` channels last
    (``C·k²·H′·W′`` indices). For a channels-last stack of ``frames`` images of
    ``C′ = C / frames`` channels each, ``(F, H, W, C′)``, channel ``c = f·C′ + c′`` sits at
    ``((f·H + y)·W + x)·C′ + c′`` (a channels-first stack is the image's own layout).
    Gathering them turns the convolution into one matrix product per observation
    (:meth:`ConvTorso.convolve`).
    """
    c, h, w = image
    _, oh, ow = conv_output_shape(((1, kernel, stride),), c, h, w)
    ch = torch.arange(c).view(c, 1, 1, 1, 1)
    i = torch.arange(kernel).view(1, kernel, 1, 1, 1)
    j = torch.arange(kernel).view(1, 1, kernel, 1, 1)
    y = stride * torch.arange(oh).view(1, 1, 1, oh, 1) + i
    x = stride * torch.arange(ow).view(1, 1, 1, 1, ow) + j
    if channels_last:
        per_frame = c // frames
        frame, channel = ch // per_frame, ch % per_frame
        flat = ((frame * h + y) * w + x) * per_frame + channel
    else:
        flat = (ch * h + y) * w + x
    return flat.reshape(-1)


class ConvTorso(nn.Module):
    """Convolutions with ReLU, flattened: ``(N, C, H, W)`` or ``(N, H, W, C)`` float inputs
    to ``(N, features)``.

    :param layers: ``(filters, kernel, stride)`` per convolution (:data:`CONV_LAYERS`).
    :param image: ``(C, H, W)`` of one observation.
    :param channels_last: inputs arrive as ``(N, H, W, C)``: permuted (a view) for a deeper
        torso, gathered from that layout by a one-convolution one.
    :param frames: inputs are stacks of this many images, ``(N, frames, H, W, C / frames)``
        channels last (copied once into ``(N, H, W, C)``, channel ``f·C / frames + c``) or
        ``(N, frames, C / frames, H, W)`` channels first (a view).

    A torso of one convolution (MinAtar's network) does not call oneDNN: it gathers each
    observation's patches with one ``index_select`` (:meth:`patches`, :func:`patch_index`)
    and multiplies them by the weight (:meth:`convolve`), whose output is already in torch's
    flattening order, and the hand-written backward pass reuses the patches for the weight
    gradient. For a batch of 32 MinAtar grids oneDNN's convolution costs more in fixed
    overhead than in arithmetic; ``python scripts/bench_pixels.py --games minatar
    --skip-memory --steps 5000 --repeats 3`` trained MinAtar Breakout at 619 steps/s with
    this path (and numpy acting, :class:`agents.dqn.networks.NumpyForward`) against 431 with
    oneDNN's (1.44×, back to back, 2026-12-06; see :mod:`agents.dqn.fastgrad`).

    A torso of more than one convolution (the Nature network) convolves its batch in torch's
    ``channels_last`` memory format: the values and the order of the flattened features are
    the same, and oneDNN's kernels run faster on that layout: ``python scripts/bench_pixels.py
    --games atari --skip-memory`` trained Atari Breakout at 150 steps/s with it and 128
    without (1.17×; back to back on an idle machine, 2026-12-06, one torch thread).
    """

    def __init__(
        self,
        layers: ConvLayers,
        image: tuple[int, int, int],
        *,
        channels_last: bool,
        frames: int = 1,
    ) -> None:
        super().__init__()
        if image[0] % frames:
            raise ValueError(f"{image[0]} channels are not {frames} frames' worth")
        self.image, self.channels_last, self.frames = tuple(image), channels_last, frames
        convs, channels = [], image[0]
        for filters, kernel, stride in layers:
            convs.append(nn.Conv2d(channels, filters, kernel, stride))
            channels = filters
        self.convs = nn.ModuleList(convs)
        self.memory_format = torch.channels_last if len(convs) > 1 else None
        self.compute_dtype: torch.dtype | None = None
        """Where set (``agent.precision: bfloat16``), the convolutions run in this dtype and
        the features return in it (the hidden dense layers of
        :class:`agents.dqn.networks.QNetwork` take them as they are): under
        ``torch.autocast``, or on the weights of the network's
        :class:`agents.dqn.networks.CastCopy` (the same numbers) where the agent gave it one."""
        self.out_features = int(np.prod(conv_output_shape(layers, *image)))
        self.out_positions = self.out_features // convs[-1].out_channels
        """``H′·W′``: the output positions of each filter."""
        one = len(convs) == 1
        index = patch_index(image, *layers[0][1:], channels_last, frames) if one else None
        self.patch_index: torch.Tensor | None
        # Not persistent: derived from the shape, so checkpoints stay as they were.
        self.register_buffer("patch_index", index, persistent=False)

    def images(self, obs: torch.Tensor) -> torch.Tensor:
        """The batch as ``(N, C, H, W)``: a view, permuted when the inputs are channels last
        (a stack of channels-last images is copied once, into ``(N, H, W, C)``); a deeper
        torso's copied to channels-last memory unless it is so already."""
        c, h, w = self.image
        if self.channels_last and self.frames > 1:
            stacks = obs.reshape(-1, self.frames, h, w, c // self.frames)
            x = stacks.permute(0, 2, 3, 1, 4).reshape(-1, h, w, c).permute(0, 3, 1, 2)
        elif self.channels_last:
            x = obs.reshape(-1, h, w, c).permute(0, 3, 1, 2)
        else:
            x = obs.reshape(-1, c, h, w)
        if self.memory_format is None:
            return x
        return x.contiguous(memory_format=self.memory_format)

    def patches(self, obs: torch.Tensor) -> torch.Tensor:
        """A one-convolution torso's input patches, ``(N, C·k·k, H′·W′)``: entry
        ``[n, (c, i, j), (u, v)]`` is pixel ``(c, s·u + i, s·v + j)`` of observation n
        (:func:`patch_index`)."""
        if self.patch_index is None:
            raise ValueError("patches are formed for a torso of one convolution only")
        c, h, w = self.image
        flat = obs.reshape(-1, c * h * w)
        return torch.index_select(flat, 1, self.patch_index).view(
            len(flat), len(self.patch_index) // self.out_positions, self.out_positions
        )

    def convolve(self, patches: torch.Tensor) -> torch.Tensor:
        """``relu(w ⋆ x + b)`` of a one-convolution torso from its :meth:`patches`, as
        ``(N, filters, H′·W′)``: one matrix product ``W·P`` per observation, with ``W`` the
        weight viewed as ``(filters, C·k·k)`` (torch's ``(filters, C, k, k)`` order)."""
        (conv,) = self.convs
        weight = conv.weight.view(1, conv.out_channels, -1).expand(len(patches), -1, -1)
        # bmm on the expanded weight: torch.matmul would fold the batch with a copy.
        return torch.baddbmm(conv.bias.view(1, -1, 1), weight, patches).relu_()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.patch_index is not None:
            out = self.convolve(self.patches(obs))
            return out.view(len(out), self.out_features)  # (filters, H′, W′): torch's flatten
        x = self.images(obs)
        if self.compute_dtype is None:
            for conv in self.convs:
                x = torch.relu(conv(x))
            return x.flatten(1)
        with torch.autocast(x.device.type, dtype=self.compute_dtype):
            for conv in self.convs:
                x = torch.relu(conv(x))
        return x.flatten(1)


def channels_last_planes(batch: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``batch`` ``(N, C, H, W)`` converted to ``dtype`` in torch's ``channels_last`` memory
    format, written one channel plane at a time.

    The same tensor as ``batch.contiguous(memory_format=torch.channels_last).to(dtype)``:
    torch's general permuting copy moves one element at a time, while the copy of one plane
    into every C-th element is a strided copy it vectorises. For a batch of 32 Atari frame
    stacks (4×84×84 ``uint8``), on one thread of an AMD EPYC (2026-12-07): 342 µs against
    596 µs into float32 (with the 1/255 scaling after either), 515 µs against 774 µs into
    bfloat16.
    """
    n, c, h, w = batch.shape
    out = torch.empty((n, h, w, c), dtype=dtype, device=batch.device)
    # Sizes spelled out: an empty batch has no -1 to infer.
    planes, source = out.view(n, h * w, c), batch.reshape(n, c, h * w)
    for i in range(c):
        planes[:, :, i].copy_(source[:, i])
    return out.permute(0, 3, 1, 2)


def bfloat16_on(device: torch.device) -> torch.dtype:
    """``torch.bfloat16`` for ``agent.precision: bfloat16`` on ``device``, or one sentence
    where the device has no bfloat16 arithmetic (a GPU before Ampere: V100, T4), on which
    autocast would fail at the first forward pass."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise RlsoftError(
            f"agent.precision bfloat16 needs a GPU with bfloat16 arithmetic, and "
            f"{torch.cuda.get_device_name(device)} has none: remove agent.precision"
        )
    return torch.bfloat16


def uses_frame_replay(setting: str, plan: NetworkPlan, dtype: np.dtype, frame_stack: int) -> bool:
    """Whether the agent stores each frame once (``agent.frame_replay``): ``on``/``off`` as
    said; ``auto`` for images stored compactly (a convolutional network on ``uint8`` or bool
    observations). ``frame_stack > 1`` without it is one sentence."""
    if setting == "auto":
        used = plan.image is not None and np.dtype(dtype) != np.float32
    else:
        used = setting == "on"
    if frame_stack > 1 and not used:
        why = (
            f"the network is {plan.name}, not a convolutional one"
            if plan.image is None
            else "the observations are floats, not compact uint8 or bool images"
        )
        raise RlsoftError(
            f"agent.frame_stack {frame_stack} describes stacked frames for the frame replay, "
            f"which auto leaves off here ({why}); set agent.frame_replay: on, or drop "
            "agent.frame_stack"
        )
    return used
