"""The Q-network: an MLP body with a plain, dueling or categorical (C51) head.

``QNetwork.forward`` returns Q-values ``(B, A)`` for the ``q`` head and logits ``(B, A, K)``
over the K support atoms for the ``c51`` head. The dueling variant splits the last layer into
a value stream V (one output, or K logits) and an advantage stream A and combines them as

    Q(s, a) = V(s) + A(s, a) − mean_a′ A(s, a′)

which makes the split identifiable: the mean over actions of Q is exactly V.

:class:`NumpyForward` runs the same network in numpy on views of the torch parameters (CPU
only; MLPs and torsos of one convolution). Acting needs one forward pass per environment
step on a handful of observations, where torch's fixed cost per operator dominates: numpy
does the same arithmetic in about a third of the time, and the views follow every optimiser
step without copying.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.dqn.noisy import NoisyLinear
from rlsoft.numerics import functional

__all__ = ["CastCopy", "NumpyForward", "QNetwork", "wide_linear"]

_TORCH_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,  # the C function: F.relu adds a Python wrapper per call
    "tanh": torch.tanh,
    "elu": F.elu,
    "silu": F.silu,
    "leaky_relu": F.leaky_relu,  # negative slope 0.01
}


def _np_relu(h: np.ndarray) -> None:
    np.maximum(h, 0.0, out=h)


def _np_tanh(h: np.ndarray) -> None:
    np.tanh(h, out=h)


def _np_elu(h: np.ndarray) -> None:
    np.copyto(h, np.expm1(h), where=h < 0)


def _np_silu(h: np.ndarray) -> None:
    h *= 1.0 / (1.0 + np.exp(-h))


def _np_leaky_relu(h: np.ndarray) -> None:
    np.copyto(h, h * np.float32(0.01), where=h < 0)


_NUMPY_ACTIVATIONS: dict[str, Callable[[np.ndarray], None]] = {
    "relu": _np_relu,
    "tanh": _np_tanh,
    "elu": _np_elu,
    "silu": _np_silu,
    "leaky_relu": _np_leaky_relu,
}


def wide_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x·Wᵀ + b`` computed as ``(b + W·xᵀ)ᵀ``; the result is a transposed view.

    The same numbers up to rounding as :func:`torch.nn.functional.linear`, for the wide dense
    layer after a convolutional torso, where torch 2.13's CPU matmul (MKL, one thread) is
    much faster in this operand order: a batch of 32 through MinAtar's 1,024 → 128 layer
    takes 70 µs against 122 µs, and through Nature DQN's 3,136 → 512 layer 721 µs against
    951 µs (2026-12-05, this machine's 2-core Xeon; for MLP widths the two orders are within
    a few µs, and a batch of 1 is memory-bound either way).
    """
    return torch.addmm(bias.unsqueeze(1), weight, x.t()).t()


class QNetwork(nn.Module):
    """MLP from a flat observation (or a torso's features) to Q-values or per-action return
    distributions.

    :param obs_dim: length of the flattened observation (ignored with a ``torso``).
    :param n_actions: number of discrete actions A.
    :param hidden_sizes: hidden layer widths.
    :param activation: a key of ``rlsoft``'s supported activations (``relu``, ``tanh``, …).
    :param dueling: use a value and an advantage stream.
    :param atoms: K for a categorical head, None for plain Q-values.
    :param noisy_sigma0: σ0 to make every linear layer a factorised noisy layer
        (:class:`agents.dqn.noisy.NoisyLinear`, whose ``weight``/``bias`` are the mean
        weights until noise is sampled, so the forward passes below serve both); None: plain.
    :param torso: a feature extractor run first (a :class:`agents.dqn.conv.ConvTorso`); its
        ``out_features`` feed the dense layers.
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden_sizes: list[int],
        activation: str = "relu",
        *,
        dueling: bool = False,
        atoms: int | None = None,
        noisy_sigma0: float | None = None,
        torso: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.torso = torso
        if torso is not None:
            obs_dim = int(torso.out_features)
        self.obs_dim, self.n_actions, self.atoms = obs_dim, n_actions, atoms
        self.activation, self.dueling = activation, dueling
        self._act = _TORCH_ACTIVATIONS[activation]
        widths = [obs_dim, *hidden_sizes]
        linear: Callable[[int, int], nn.Module] = nn.Linear
        if noisy_sigma0 is not None:
            linear = functools.partial(NoisyLinear, sigma0=noisy_sigma0)
        self.body = nn.ModuleList(linear(a, b) for a, b in itertools.pairwise(widths))
        per_action = atoms or 1
        if dueling:
            self.value = linear(widths[-1], per_action)
            self.advantage = linear(widths[-1], n_actions * per_action)
        else:
            self.head = linear(widths[-1], n_actions * per_action)
        self.cast_copy: CastCopy | None = None
        """Where set, a torso with a ``compute_dtype`` and the hidden layers compute with its
        weights instead of casting theirs under autocast."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.torso is None:
            x = self._hidden(obs.reshape(obs.shape[0], -1), F.linear)
        elif self.torso.compute_dtype is None:
            x = self._hidden(self.torso(obs), wide_linear)
        elif self.cast_copy is not None:
            x = self._cast_hidden(obs, self.cast_copy.weights()).float()
        else:  # agent.precision: the hidden layers too; the output layers stay float32
            with torch.autocast(obs.device.type, dtype=self.torso.compute_dtype):
                x = self._hidden(self.torso(obs), wide_linear)
            x = x.float()
        if not self.atoms:
            if not self.dueling:
                return F.linear(x, self.head.weight, self.head.bias)
            value = F.linear(x, self.value.weight, self.value.bias)
            adv = F.linear(x, self.advantage.weight, self.advantage.bias)
            return value + adv - adv.mean(dim=1, keepdim=True)
        k = self.atoms
        if self.dueling:
            value = F.linear(x, self.value.weight, self.value.bias).view(-1, 1, k)
            adv = F.linear(x, self.advantage.weight, self.advantage.bias).view(
                -1, self.n_actions, k
            )
            return value + adv - adv.mean(dim=1, keepdim=True)
        return F.linear(x, self.head.weight, self.head.bias).view(-1, self.n_actions, k)

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        """:meth:`torch.nn.Module.load_state_dict`, which also marks :attr:`cast_copy` out
        of date."""
        result = super().load_state_dict(*args, **kwargs)
        if self.cast_copy is not None:
            self.cast_copy.invalidate()
        return result

    def _hidden(self, x: torch.Tensor, linear: Callable[..., torch.Tensor]) -> torch.Tensor:
        """The hidden layers: ``h ← act(W·h + b)`` for each of ``body``."""
        for layer in self.body:
            x = self._act(linear(x, layer.weight, layer.bias))
        return x

    def _cast_hidden(self, obs: torch.Tensor, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        """The torso and the hidden layers on :attr:`cast_copy`'s weights: the calls autocast
        makes, each operand already in the compute dtype, so the same numbers."""
        torso = self.torso
        x = torso.images(obs).to(torso.compute_dtype)  # autocast's cast of a float32 batch
        for i, conv in enumerate(torso.convs):
            w, b = weights[f"torso.convs.{i}.weight"], weights[f"torso.convs.{i}.bias"]
            x = torch.relu(F.conv2d(x, w, b, conv.stride, conv.padding, conv.dilation))
        x = x.flatten(1)
        for i, _ in enumerate(self.body):
            w, b = weights[f"body.{i}.weight"], weights[f"body.{i}.bias"]
            x = self._act(wide_linear(x, w, b))
        return x


def _hand_on(copy: CastCopy, param: torch.Tensor, cast: torch.Tensor) -> None:
    """Move the gradient of ``cast`` (one of ``copy``'s weights) to ``param``, converted to
    its dtype: written into ``param.grad`` where ``copy.overwrite`` says it is zero (one
    conversion: for the 3,136 → 512 layer's gradient, 0.28 ms a call against 3.3 ms for
    adding the bfloat16 tensor into the float32 one, in a profile of the Atari config's
    training on one thread of an AMD EPYC, 2026-12-07), else accumulated as autograd does."""
    if param.grad is None:
        param.grad = cast.grad.to(param.dtype)
    elif copy.overwrite:
        param.grad.copy_(cast.grad)
    else:
        param.grad.add_(cast.grad.to(param.dtype))
    cast.grad = None


class CastCopy:
    """A low-precision copy of a network's parameters, cast once after each change and used by
    every forward pass until the next (``agent.precision: bfloat16``).

    Autocast casts each weight at each call, and its backward pass casts each weight's
    gradient back to float32 into a fresh tensor, which autograd then adds into ``.grad``:
    for the Nature network's 3,136 → 512 layer that is 1.6M values converted for every
    acting step and every target-network pass, and twice per gradient step, although the
    online weights change only at a gradient step and the target's only at a target update.
    Here one pass over the flat parameter buffer casts them after such a change, and each
    cast weight is a leaf whose gradient a hook converts into its parameter's ``.grad``.
    ``python scripts/bench_pixels.py --games atari --skip-memory --bfloat16 --repeats 3``
    times both in one run: Atari Breakout trained at 147 steps/s with the copies and 126 with
    autocast's casts (1.17×; one thread of an AMD EPYC with AVX512-BF16, 2026-12-07).

    The numbers are autocast's: a bfloat16 operation on the same rounded weights gives the
    same values, and the gradients reach the parameters as autocast's backward pass delivers
    them, computed in bfloat16 and converted to float32. ``loss.backward()`` fills the
    parameters' ``.grad`` as before; ``torch.autograd.grad`` with respect to the parameters
    does not see them (differentiate with respect to :meth:`weights` instead).

    The owner calls :meth:`invalidate` whenever the parameters change (a gradient step, a
    target update); :meth:`weights` recasts on its next call. ``QNetwork.load_state_dict``
    invalidates by itself.

    :param net: the network; its ``cast_copy`` is set to this copy.
    :param flat: the float32 buffer all of ``net``'s parameters are views of, in the order of
        ``net.parameters()`` (:func:`agents.dqn.optim.flatten_parameters`).
    :param dtype: the dtype to cast to.
    """

    def __init__(self, net: QNetwork, flat: torch.Tensor, dtype: torch.dtype) -> None:
        self.flat = flat
        self.copy = torch.empty_like(flat, dtype=dtype)
        self.current = False
        self.overwrite = False
        """Each backward pass writes the parameters' gradients instead of adding to them:
        for an owner that zeroes them before every backward pass, which is the same."""
        self._views: dict[str, torch.Tensor] = {}
        offset = 0
        for name, p in net.named_parameters():
            if p.data_ptr() != flat[offset:].data_ptr():
                raise ValueError(f"parameter {name} is not at offset {offset} of the flat buffer")
            view = self.copy[offset : offset + p.numel()].view_as(p)
            if p.requires_grad:
                # A leaf of its own (a view of a buffer that needs no gradient): the backward
                # pass accumulates its gradient, which the hook hands on to the parameter.
                view.requires_grad_(True)
                view.register_post_accumulate_grad_hook(functools.partial(_hand_on, self, p))
            self._views[name] = view
            offset += p.numel()
        net.cast_copy = self

    def invalidate(self) -> None:
        """The parameters changed: recast them before the next use."""
        self.current = False

    def weights(self) -> dict[str, torch.Tensor]:
        """Every parameter in the copy's dtype, by ``named_parameters`` name."""
        if not self.current:
            with torch.no_grad():
                self.copy.copy_(self.flat)
            self.current = True
        return self._views


class NumpyForward:
    """The forward pass of a CPU :class:`QNetwork` in numpy, for acting.

    Weights are numpy views of the torch parameters (shared memory), so they are always
    current. Intermediate results go to buffers allocated once per batch size by torch, whose
    allocator aligns them to 64 bytes: BLAS kernels can then never take a different code path
    (and round differently) from one run to the next.

    For a noisy network (:mod:`agents.dqn.noisy`) the views are of the mean weights μ, so this
    computes the evaluation Q-values; acting with noise goes through torch.

    A torso of one convolution is computed as :class:`agents.dqn.conv.ConvTorso` computes
    it: the patches gathered by its ``patch_index`` (``np.take``), times the weight viewed as
    ``(filters, C·k·k)``, plus the bias, through a ReLU. Deeper torsos act in torch.
    """

    def __init__(self, net: QNetwork) -> None:
        if any(p.device.type != "cpu" for p in net.parameters()):
            raise ValueError("NumpyForward needs a network on the CPU")
        torso = net.torso
        if torso is not None and getattr(torso, "patch_index", None) is None:
            raise ValueError(
                "NumpyForward runs MLPs and one-convolution torsos; deeper ones act in torch"
            )
        self.net = net
        self._conv = None
        if torso is not None:  # relu(W·P + b) on the patches P, as ConvTorso.convolve
            (conv,) = torso.convs
            self._conv = (
                self._view(conv.weight).reshape(conv.out_channels, -1),
                self._view(conv.bias).reshape(-1, 1),
                torso.patch_index.numpy(),
            )
        self._act = _NUMPY_ACTIVATIONS[net.activation]
        self._layers = [(self._view(m.weight).T, self._view(m.bias)) for m in net.body]
        if net.dueling:
            self._value = (self._view(net.value.weight).T, self._view(net.value.bias))
            self._advantage = (self._view(net.advantage.weight).T, self._view(net.advantage.bias))
        else:
            self._head = (self._view(net.head.weight).T, self._view(net.head.bias))
        self._buffers: dict[int, list[np.ndarray]] = {}

    @staticmethod
    def _view(param: torch.Tensor) -> np.ndarray:
        return param.detach().numpy()

    def _scratch(
        self, n: int
    ) -> tuple[np.ndarray, list[tuple], list[np.ndarray], list[np.ndarray]]:
        """For batch size ``n``: the input buffer, the plan ``(weight_t, bias, out, activate)``
        of the hidden layers (and of a plain head, whose ``activate`` is None), the value
        and advantage buffers of a dueling head, and the patch and output buffers of a
        convolution."""
        scratch = self._buffers.get(n)
        if scratch is None:
            net = self.net

            def empty(*shape: int) -> np.ndarray:
                return torch.empty(shape, dtype=torch.float32).numpy()

            plan = [(w, b, empty(n, w.shape[1]), self._act) for w, b in self._layers]
            dueling = []
            if net.dueling:
                dueling = [empty(n, self._value[0].shape[1]), empty(n, self._advantage[0].shape[1])]
            else:
                plan.append((*self._head, empty(n, self._head[0].shape[1]), None))
            conv = []
            inputs = net.obs_dim
            if self._conv is not None:
                weight, _, index = self._conv
                inputs = int(np.prod(net.torso.image))
                positions = len(index) // weight.shape[1]
                conv = [empty(n, weight.shape[1], positions), empty(n, weight.shape[0], positions)]
            scratch = (empty(n, inputs), plan, dueling, conv)
            if len(self._buffers) > 8:  # odd batch sizes (evaluation, logging) come and go
                self._buffers.clear()
            self._buffers[n] = scratch
        return scratch

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Q-values ``(n, A)`` or logits ``(n, A, K)`` for observations ``(n, ...)``."""
        n = obs.shape[0]
        x, plan, dueling, conv = self._scratch(n)
        np.copyto(x, obs.reshape(x.shape), casting="unsafe")  # (n, inputs): n may be 0
        if conv:
            (weight, bias, index), (patches, out) = self._conv, conv
            flat_patches = patches.reshape(n, len(index))
            np.take(x, index, axis=1, out=flat_patches, mode="clip")  # all in range
            np.matmul(weight, patches, out=out)
            out += bias
            np.maximum(out, 0.0, out=out)
            x = out.reshape(n, out.shape[1] * out.shape[2])
        for weight_t, bias, out, activate in plan:
            np.matmul(x, weight_t, out=out)
            out += bias
            if activate is not None:
                activate(out)
            x = out
        net = self.net
        if not net.dueling:
            return (x.reshape(n, net.n_actions, net.atoms) if net.atoms else x).copy()
        k = net.atoms or 1
        value, adv = dueling
        np.matmul(x, self._value[0], out=value)
        value += self._value[1]
        np.matmul(x, self._advantage[0], out=adv)
        adv += self._advantage[1]
        adv3 = adv.reshape(n, net.n_actions, k)
        out = value.reshape(n, 1, k) + (adv3 - adv3.mean(axis=1, keepdims=True))
        return out if net.atoms else out.reshape(n, net.n_actions)


def expected_q_numpy(logits: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Σ_i softmax(logits)_i · z_i over the last axis (the C51 head's Q-values)."""
    return functional.softmax(logits) @ support
