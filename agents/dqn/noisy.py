"""NoisyNet: factorised Gaussian noisy linear layers (Fortunato et al., 2018).

"Noisy Networks for Exploration" (Fortunato et al., ICLR 2018) replaces a linear layer
``y = w·x + b`` by one whose weights are random with learnt parameters::

    w = μ_w + σ_w ⊙ ε_w        b = μ_b + σ_b ⊙ ε_b

and, for DQN and Dueling (their §3 (b) and §3.1), with *factorised* Gaussian noise: p unit
Gaussians ε_in for the inputs and q for the outputs, combined through
``f(x) = sgn(x)·√|x|`` into::

    ε_w = f(ε_out) f(ε_in)ᵀ  (q × p)        ε_b = f(ε_out)

Initialisation (their §3.2, factorised case): μ ~ U[−1/√p, 1/√p] for weights and biases and
σ = σ0/√p with σ0 = 0.5, p the number of inputs of the layer. σ is trained by the TD loss
with μ (the gradient flows through ``σ ⊙ ε``), so the network learns how much to explore.

How rlsoft's DQN uses them (:class:`agents.dqn.agent.DQNAgent` with ``agent.noisy: true``),
following the paper's NoisyNet-DQN (§3.1 and its Algorithm 1):

* every fully connected layer of the Q-network is noisy (the paper makes all of them noisy in
  DQN; the MLP here has no other kind), the value and advantage streams of a dueling head
  included;
* acting: fresh noise before every action ("the noisy network parameters are re-sampled
  before every action"), and the action greedy with respect to the noisy Q-values (ε-greedy
  is no longer used). With ``num_envs`` copies each copy gets its own noise sample, as
  independent actors would;
* learning: one noise sample for the online network per minibatch, held fixed across the
  batch ("for replay, the current noisy network parameter sample is held fixed across the
  batch"), used for Q(s, a) and, with Double DQN, for the argmax at s′ (Algorithm 1, its
  Dueling branch), and an independent sample for the target network;
* evaluation, :meth:`~agents.dqn.agent.DQNAgent.q_values` and the Python API use the mean
  weights μ (a layer without noise set *is* the linear layer ``μ_w·x + μ_b``).

All noise comes from one seeded ``torch.Generator`` (:class:`NoiseSource`) whose state is
saved in the agent's checkpoints, so a resumed run draws exactly the noise of an
uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NoiseSource", "NoisyLinear", "mean_abs_sigma", "noisy_layers", "scaled_noise"]


def scaled_noise(size: int, generator: torch.Generator) -> torch.Tensor:
    """``f(ε) = sgn(ε)·√|ε|`` of ``size`` standard Gaussians ε drawn from ``generator``."""
    eps = torch.randn(size, generator=generator)
    return eps.sign() * eps.abs().sqrt()


class NoisyLinear(nn.Module):
    """A linear layer with factorised Gaussian noise on its weights and biases.

    Parameters ``weight_mu`` (q × p), ``weight_sigma``, ``bias_mu`` (q), ``bias_sigma``.
    :attr:`weight` and :attr:`bias` are the *effective* values: the mean μ while
    :attr:`noise` is None, else ``μ + σ ⊙ ε`` with the factorised ε of that noise, so code
    written for ``nn.Linear`` (``F.linear(x, layer.weight, layer.bias)``) runs the noisy
    layer unchanged, and reads the mean weights when no noise is set.

    :param in_features: p, the input width.
    :param out_features: q, the output width.
    :param sigma0: σ0 > 0; σ starts at σ0/√p (Fortunato et al., 2018, §3.2: σ0 = 0.5).
    """

    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"layer widths must be at least 1, got {in_features, out_features}")
        if not 0.0 < sigma0 < math.inf:
            raise ValueError(f"sigma0 must be a positive finite number, got {sigma0!r}")
        self.in_features, self.out_features, self.sigma0 = in_features, out_features, sigma0
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_sigma = nn.Parameter(torch.empty(out_features, in_features))
        self.bias_mu = nn.Parameter(torch.empty(out_features))
        self.bias_sigma = nn.Parameter(torch.empty(out_features))
        self.noise: tuple[torch.Tensor, torch.Tensor] | None = None
        """``(f(ε_in), f(ε_out))`` while a noise sample is set, else None (mean weights)."""
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """μ ~ U[−1/√p, 1/√p] (from torch's global generator, as ``nn.Linear`` draws its
        initialisation), σ = σ0/√p."""
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight_mu.uniform_(-bound, bound)
        self.bias_mu.uniform_(-bound, bound)
        self.weight_sigma.fill_(self.sigma0 * bound)
        self.bias_sigma.fill_(self.sigma0 * bound)

    @property
    def weight(self) -> torch.Tensor:
        """``μ_w + σ_w ⊙ (f(ε_out) f(ε_in)ᵀ)``, or ``μ_w`` without noise."""
        if self.noise is None:
            return self.weight_mu
        f_in, f_out = self.noise
        return torch.addcmul(self.weight_mu, self.weight_sigma, torch.outer(f_out, f_in))

    @property
    def bias(self) -> torch.Tensor:
        """``μ_b + σ_b ⊙ f(ε_out)``, or ``μ_b`` without noise."""
        if self.noise is None:
            return self.bias_mu
        return torch.addcmul(self.bias_mu, self.bias_sigma, self.noise[1])

    def sample_noise(self, generator: torch.Generator) -> None:
        """Draw a new factorised sample: p Gaussians for the inputs, then q for the outputs."""
        f_in = scaled_noise(self.in_features, generator)
        f_out = scaled_noise(self.out_features, generator)
        device = self.weight_mu.device
        self.noise = (f_in.to(device), f_out.to(device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        sizes = f"in_features={self.in_features}, out_features={self.out_features}"
        return f"{sizes}, sigma0={self.sigma0}"


def noisy_layers(net: nn.Module) -> list[NoisyLinear]:
    """The noisy layers of ``net``, in registration order (the order noise is drawn in)."""
    return [m for m in net.modules() if isinstance(m, NoisyLinear)]


def mean_abs_sigma(net: nn.Module) -> float:
    """Mean |σ| over every σ (weights and biases) of ``net``'s noisy layers: the
    ``exploration/noise_sigma`` curve; NaN when ``net`` has none."""
    sigmas = [p for m in noisy_layers(net) for p in (m.weight_sigma, m.bias_sigma)]
    if not sigmas:
        return math.nan
    with torch.no_grad():
        total = sum(p.abs().sum() for p in sigmas)
        return float(total) / sum(p.numel() for p in sigmas)


class NoiseSource:
    """The one random stream of a noisy agent: a seeded CPU ``torch.Generator``.

    Noise vectors are small (p + q numbers per layer), so they are drawn on the CPU and
    moved to the network's device; the stream is so the same on every device.

    :param seed: derived from the agent's torch seed (:meth:`from_torch_seed`).
    """

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(int(seed))

    @classmethod
    def from_torch_seed(cls, torch_seed: int) -> NoiseSource:
        """A stream of its own, independent of the network initialisation that ``torch_seed``
        seeds (both derive from it through a ``numpy.random.SeedSequence``)."""
        state = np.random.SeedSequence((int(torch_seed), 0x4E6F697379)).generate_state(2)
        return cls((int(state[0]) << 31) ^ int(state[1]))

    def sample(self, net: nn.Module) -> None:
        """A fresh noise sample for every noisy layer of ``net``."""
        for layer in noisy_layers(net):
            layer.sample_noise(self.generator)

    @contextlib.contextmanager
    def sampled(self, *nets: nn.Module) -> Iterator[None]:
        """Run the block with one fresh, independent noise sample per network (drawn in the
        order given); the networks return to their mean weights afterwards."""
        try:
            for net in nets:
                self.sample(net)
            yield
        finally:
            for net in nets:
                clear_noise(net)

    def state_dict(self) -> torch.Tensor:
        """The generator's state (a uint8 tensor, ``weights_only``-safe)."""
        return self.generator.get_state()

    def load_state_dict(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


def clear_noise(net: nn.Module) -> None:
    """Return every noisy layer of ``net`` to its mean weights μ."""
    for layer in noisy_layers(net):
        layer.noise = None
