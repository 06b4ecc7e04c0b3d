"""A hand-written backward pass for the Q-value head, the hot path of most DQN runs.

For the small MLPs of value-based RL, autograd's per-operator bookkeeping is a large part of
an update's cost, and writing the backward pass out removes it. It is kept because it pays
end to end: ``python scripts/bench_dqn.py --autograd`` (CartPole-v1, 50k steps, seeds 0–4,
2026-12-05, a machine shared with other jobs) trained 1.15× faster per CPU second with it
than with autograd on the zoo setting ([256, 256], batch 64; 1.03× on wall-clock time, which
the load moved) and 1.26× on SB3's defaults ([64, 64], batch 32; 1.27× wall); an earlier run
on an idle machine gave 1.18× and 1.22×. The bar was 1.15×.
``--gradients`` times the gradient computation alone both ways. The gradients are
the same numbers up to rounding: ``tests/unit/dqn/test_dqn.py`` checks them against autograd for
every supported combination.

Covered: the ``q`` head, plain or dueling, Huber or squared loss, activations whose
derivative follows from their output (relu, tanh, elu, leaky_relu), on an MLP or on a
torso of one convolution (:func:`covers_torso`). Everything else — the categorical head,
trained through :func:`rlsoft.numerics.functional.cross_entropy` and its fused backward,
``silu``, NoisyNet layers, ensembles and deeper convolutional torsos (the Nature network) —
goes through autograd.

On a convolutional torso the dense layers are computed in the operand order of
:func:`agents.dqn.networks.wide_linear`. A torso of one convolution (MinAtar's) is written out
as well, on the patches the forward pass gathered (:meth:`agents.dqn.conv.ConvTorso.patches`):
``∂W = Σ_n g_n·P_nᵀ`` (``W`` the weight as ``filters × C·k·k``), one batched matrix
product. ``python scripts/bench_pixels.py --games minatar --skip-memory --steps 5000
--repeats 3``, run back to back with the previous version (oneDNN's convolution forward and
``torch.nn.grad.conv2d_weight``, torch acting; 2026-12-06, commit 712c60f against this
one), trained MinAtar Breakout at 619 steps/s against 431
(1.44×; SB3 291 and 298 in the same runs), and ``--autograd`` (10,000 steps, median of 3)
measured this pass at 1.12× autograd's steps/s (599 against 533). Deeper torsos (the Nature
network) learn through autograd (:func:`covers_torso` says why).
``tests/unit/dqn/test_conv.py`` checks the gradients against autograd through the network
written out in torch's functional API (both image layouts, strides 1 and 2, dueling, both
losses).

Backpropagation through ``h = act(x·Wᵀ + b)`` with upstream gradient ``g`` (``g ⊙ act′``
formed from ``h``)::

    ∂W = gᵀ·x      ∂b = Σ_rows g      ∂x = g·W

and the loss ``mean_i ℓ(Q(s_i, a_i) − y_i)`` sends ``ℓ′(δ_i)/B`` into column ``a_i`` of row i
(``ℓ′ = clip(δ, −1, 1)`` for Huber with δ-threshold 1, ``2δ`` for the squared error). The
dueling combination ``Q = V + A − mean_a A`` passes ``∂V = Σ_a ∂Q`` and
``∂A = ∂Q − mean_a ∂Q``. A convolution ``y = relu(w ⋆ x + b)`` (cross-correlation, stride s)
with upstream ``g = ∂y ⊙ [y > 0]`` has ``∂w[f, c, i, j] = Σ_{n,u,v} g[n, f, u, v] ·
x[n, c, s·u + i, s·v + j]`` and ``∂b[f] = Σ_{n,u,v} g[n, f, u, v]``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from agents.dqn.conv import ConvTorso
from agents.dqn.networks import QNetwork, wide_linear

__all__ = ["SUPPORTED_ACTIVATIONS", "ManualGradient", "covers_torso"]


def covers_torso(torso: torch.nn.Module | None) -> bool:
    """Whether :class:`ManualGradient` takes a network with this torso: none (an MLP), or a
    :class:`~agents.dqn.conv.ConvTorso` of one convolution (MinAtar's network). Deeper torsos
    keep autograd: a version of this class that covered the Nature network with torch's
    public convolution gradients trained Atari Breakout at 0.95× autograd's steps/s, and one
    that wrote out only its dense layers (autograd differentiating the convolutions from the
    features' gradient) at 1.01× (``python scripts/bench_pixels.py --skip-memory
    --autograd``, 2026-12-05 and, with ``--games atari --repeats 3``, 2026-12-06)."""
    return torso is None or (isinstance(torso, ConvTorso) and torso.patch_index is not None)


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return torch.addmm(bias, x, weight.t())


def _relu(h: torch.Tensor) -> torch.Tensor:
    return h.relu_()


def _relu_grad(g: torch.Tensor, h: torch.Tensor) -> None:
    # h = relu(·) ≥ 0, so sign(h) is the 0/1 mask; a float mask multiplies several times
    # faster than the bool one of h > 0 (which torch converts to float first).
    g.mul_(h.sign())


def _tanh(h: torch.Tensor) -> torch.Tensor:
    return h.tanh_()


def _tanh_grad(g: torch.Tensor, h: torch.Tensor) -> None:
    g.mul_(1.0 - h * h)


def _elu(h: torch.Tensor) -> torch.Tensor:
    return F.elu(h, inplace=True)


def _elu_grad(g: torch.Tensor, h: torch.Tensor) -> None:
    g.mul_(torch.where(h > 0, 1.0, h + 1.0))  # d/dx (eˣ − 1) = eˣ = h + 1 for x < 0


def _leaky_relu(h: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(h, inplace=True)


def _leaky_relu_grad(g: torch.Tensor, h: torch.Tensor) -> None:
    g.mul_(torch.where(h > 0, 1.0, 0.01))


_ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    "relu": (_relu, _relu_grad),
    "tanh": (_tanh, _tanh_grad),
    "elu": (_elu, _elu_grad),
    "leaky_relu": (_leaky_relu, _leaky_relu_grad),
}
SUPPORTED_ACTIVATIONS = frozenset(_ACTIVATIONS)


class ManualGradient:
    """Loss and parameter gradients of a ``q``-head :class:`QNetwork`, without autograd.

    Gradients are *written* (not accumulated) into each parameter's ``.grad``, which must
    exist (see :func:`agents.dqn.optim.flatten_parameters`), so no zeroing is needed.

    :param net: the online network (``atoms`` None, a supported activation).
    :param loss: ``"huber"`` or ``"mse"``.
    """

    def __init__(self, net: QNetwork, loss: str) -> None:
        if net.atoms is not None or net.activation not in _ACTIVATIONS:
            raise ValueError("the manual gradient covers the q head with relu/tanh/elu/leaky_relu")
        if not covers_torso(net.torso):
            raise ValueError("the manual gradient covers MLPs and one-convolution torsos")
        if loss not in ("huber", "mse"):
            raise ValueError(f"unknown loss {loss!r}")
        self.net, self.huber = net, loss == "huber"
        self._act, self._act_grad = _ACTIVATIONS[net.activation]

    @torch.no_grad()
    def __call__(
        self, obs: torch.Tensor, actions: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Set the gradients of the loss on this minibatch; return (loss, mean Q(s, a))."""
        net = self.net
        torso = net.torso
        if torso is None:
            x = obs.reshape(obs.shape[0], -1)
        else:
            patches = torso.patches(obs)
            conv_out = torso.convolve(patches)
            x = conv_out.view(len(conv_out), -1)
        inputs = []
        linear = wide_linear if torso is not None else _linear
        for layer in net.body:
            inputs.append(x)
            x = self._act(linear(x, layer.weight, layer.bias))
        index = actions.view(-1, 1)
        if net.dueling:
            value = torch.addmm(net.value.bias, x, net.value.weight.t())
            adv = torch.addmm(net.advantage.bias, x, net.advantage.weight.t())
            q = value + adv - adv.mean(dim=1, keepdim=True)
        else:
            q = torch.addmm(net.head.bias, x, net.head.weight.t())
        q_taken = q.gather(1, index).view(-1)
        if self.huber:
            loss = F.smooth_l1_loss(q_taken, y)
            d_taken = (q_taken - y).clamp_(-1.0, 1.0)
        else:
            loss = F.mse_loss(q_taken, y)
            d_taken = (q_taken - y).mul_(2.0)
        d_taken.div_(len(q_taken))
        dq = torch.zeros_like(q).scatter_(1, index, d_taken.view(-1, 1))
        if net.dueling:
            dv = dq.sum(dim=1, keepdim=True)
            da = dq - dq.mean(dim=1, keepdim=True)
            self._linear_grads(net.value, dv, x)
            self._linear_grads(net.advantage, da, x)
            g = torch.mm(dv, net.value.weight).addmm_(da, net.advantage.weight)
        else:
            self._linear_grads(net.head, dq, x)
            g = torch.mm(dq, net.head.weight)
        for i in range(len(net.body) - 1, -1, -1):
            self._act_grad(g, x)
            layer, x = net.body[i], inputs[i]
            self._linear_grads(layer, g, x)
            if i or torso is not None:
                g = torch.mm(g, layer.weight)
        if torso is not None:
            self._conv_grads(torso, g, patches, conv_out)
        return loss, q_taken.mean()

    @staticmethod
    def _conv_grads(
        torso: ConvTorso, g: torch.Tensor, patches: torch.Tensor, out: torch.Tensor
    ) -> None:
        """Backpropagate ``g`` (the loss's gradient in the torso's flattened output) through
        the convolution's ReLU, writing the convolution's parameter gradients: with the
        patches ``P`` (:meth:`ConvTorso.patches`), ``∂W = Σ_n g_n·P_nᵀ``."""
        (conv,) = torso.convs
        g = g.view(out.shape)
        _relu_grad(g, out)
        weight_grad = conv.weight.grad.view(conv.out_channels, -1)
        # Σ_n P_n·g_nᵀ, written transposed: bmm is faster with the long axis inside.
        torch.sum(torch.bmm(patches, g.transpose(1, 2)), dim=0, out=weight_grad.t())
        torch.sum(g, dim=(0, 2), out=conv.bias.grad)

    @staticmethod
    def _linear_grads(layer: torch.nn.Linear, g: torch.Tensor, x: torch.Tensor) -> None:
        torch.mm(g.t(), x, out=layer.weight.grad)
        torch.sum(g, dim=0, out=layer.bias.grad)
