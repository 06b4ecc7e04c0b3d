"""Bootstrapped DQN with randomized prior functions: an ensemble of K Q-functions that explores
by acting greedily with one of them for a whole episode.

Osband, Blundell, Pritzel & Van Roy (2016), "Deep Exploration via Bootstrapped DQN" (NeurIPS;
arXiv:1602.04621), and Osband, Aslanides & Cassirer (2018), "Randomized Prior Functions for
Deep Reinforcement Learning" (NeurIPS; arXiv:1806.03335). The details not fixed by the papers
follow their authors' reference implementation, bsuite's ``baselines/jax/boot_dqn/agent.py``.

Each member k of the ensemble is

    Q_k(s, a) = f_θk(s, a) + β · p_k(s, a)

with f_θk trained and p_k a randomly initialised network of the same architecture that is
never trained: its weights are buffers, not parameters (no gradient, not in the optimiser,
the same in the online and the target network, saved in every checkpoint). Without data the
ensemble disagrees as much as the priors do; where data is plentiful each f_θk learns to
cancel its prior's error, so the disagreement — the agent's uncertainty — shrinks only where
it has been.

**Training.** Every stored transition carries a bootstrap mask m ∈ {0, 1}^K, m_k ~
Bernoulli(p) independently (``mask_prob``; stored in the replay, see
:class:`rlsoft.rl.replay.ReplayBuffer`). For a minibatch of B (n-step) transitions with
return G_i, bootstrap discount d_i and masks m_ik, head k regresses on its own target, from
its own target network with its prior included (bsuite: ``network.apply(target_params, o_t)``
of the whole prior-augmented network)::

    y_ik = G_i + d_i · max_a′ Q̄_k(s′_i, a′)        (Double DQN: Q̄_k(s′_i, argmax_a′ Q_k(s′_i, a′)))
    L_k  = (1/B) Σ_i m_ik · ℓ(Q_k(s_i, a_i) − y_ik)
    L    = Σ_k L_k

normalised by the batch size B, not by the number Σ_i m_ik of selected transitions, as
bsuite's ``jnp.mean(m_t * td_error**2)`` (so a masked transition contributes exactly zero,
and a head's expected gradient is p times that of a head trained on everything). The soft and
Munchausen targets apply per head the same way. With a shared torso the heads' gradients add
up in it; Osband et al. (2016, their Atari implementation) normalise the gradient flowing into
the torso by 1/K so that its effective learning rate does not grow with K, as done here
(:class:`_ScaleGradient`). ``losses/td_loss`` reports the mean over heads, L/K.

**Acting.** Each vector-environment copy has its own active head, drawn uniformly at random
when training starts and again whenever that copy's episode ends; the exploration policy acts
on the active head's Q-values (greedy in the papers). **Evaluation** uses the whole ensemble:
a majority vote of the heads' greedy actions or the argmax of their mean Q
(:class:`~agents.dqn.ensemble_config.EnsembleConfig`).

**Speed.** The K members run as one batched matrix product per layer (``torch.matmul`` over a
leading K axis), forward and backward through autograd: the numpy forward pass
(:class:`~agents.dqn.networks.NumpyForward`) and the hand-written backward pass
(:mod:`agents.dqn.fastgrad`) of the single network do not cover ensembles, which take this
torch path instead.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.dqn.config import DQNConfig
from agents.dqn.ensemble_config import EnsembleConfig
from agents.dqn.networks import _TORCH_ACTIVATIONS
from rlsoft.errors import RlsoftError
from rlsoft.explore.policies import Greedy
from rlsoft.numerics import functional

__all__ = ["Bootstrap", "EnsembleQNetwork", "vote"]


class _ScaleGradient(torch.autograd.Function):
    """The identity forward; multiplies the incoming gradient by ``scale`` backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


class _EnsembleMLP(nn.Module):
    """K MLPs (or one shared torso with K output layers) evaluated together.

    Weights are stored as ``(in, out)`` matrices (``(K, in, out)`` per member) so that a layer
    is one ``matmul`` with a leading K axis. Initialisation is ``torch.nn.Linear``'s default:
    weights and biases uniform on ±1/√fan_in.

    :param trainable: register the tensors as parameters (else as buffers: a fixed prior).
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden_sizes: list[int],
        activation: str,
        *,
        heads: int,
        shared_torso: bool,
        dueling: bool,
        trainable: bool,
    ) -> None:
        super().__init__()
        self.heads, self.shared_torso, self.dueling = heads, shared_torso, dueling
        self.n_actions = n_actions
        self._act = _TORCH_ACTIVATIONS[activation]
        self._trainable = trainable
        widths = [obs_dim, *hidden_sizes]
        self.torso: list[tuple[str, str]] = []
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
            batch = () if shared_torso else (heads,)
            self.torso.append(self._layer(f"torso{i}", batch, fan_in, fan_out))
        outputs = {"advantage": n_actions, "value": 1} if dueling else {"q": n_actions}
        self.outputs = {
            name: self._layer(name, (heads,), widths[-1], size) for name, size in outputs.items()
        }

    def _layer(self, name: str, batch: tuple[int, ...], fan_in: int, fan_out: int) -> tuple:
        bound = 1.0 / math.sqrt(fan_in)
        weight = torch.empty(*batch, fan_in, fan_out).uniform_(-bound, bound)
        bias = torch.empty(*batch, 1, fan_out).uniform_(-bound, bound)
        if not batch:
            bias = bias.view(fan_out)
        for suffix, tensor in (("weight", weight), ("bias", bias)):
            if self._trainable:
                self.register_parameter(f"{name}_{suffix}", nn.Parameter(tensor))
            else:
                self.register_buffer(f"{name}_{suffix}", tensor)
        return f"{name}_weight", f"{name}_bias"

    def _linear(self, names: tuple[str, str], x: torch.Tensor) -> torch.Tensor:
        weight, bias = getattr(self, names[0]), getattr(self, names[1])
        return torch.matmul(x, weight) + bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Q-values ``(K, B, A)`` for flat observations ``(B, D)``."""
        for names in self.torso:
            x = self._act(self._linear(names, x))
        if self.shared_torso and self.heads > 1 and torch.is_grad_enabled():
            # The K heads' gradients add up in the shared torso: rescale by 1/K
            # (as Osband et al., 2016, do in their Atari implementation).
            x = _ScaleGradient.apply(x, 1.0 / self.heads)
        if not self.dueling:
            return self._linear(self.outputs["q"], x)
        value = self._linear(self.outputs["value"], x)
        adv = self._linear(self.outputs["advantage"], x)
        return value + adv - adv.mean(dim=-1, keepdim=True)


class EnsembleQNetwork(nn.Module):
    """K Q-functions Q_k = f_θk + β·p_k from a flat observation; ``forward`` returns
    ``(B, K, A)``.

    :param obs_dim: length of the flattened observation.
    :param n_actions: number of discrete actions A.
    :param hidden_sizes: hidden layer widths (of f and of the priors p).
    :param activation: a key of the supported activations (``relu``, ``tanh``, …).
    :param heads: K.
    :param shared_torso: one torso with K output layers, else K separate MLPs.
    :param dueling: each head combines V_k + A_k − mean_a A_k.
    :param prior_scale: β; 0 builds no prior network.
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden_sizes: list[int],
        activation: str = "relu",
        *,
        heads: int,
        shared_torso: bool = False,
        dueling: bool = False,
        prior_scale: float = 0.0,
    ) -> None:
        super().__init__()
        self.obs_dim, self.n_actions, self.heads = obs_dim, n_actions, heads
        self.prior_scale = float(prior_scale)
        kwargs = {
            "heads": heads,
            "shared_torso": shared_torso,
            "dueling": dueling,
        }
        self.members = _EnsembleMLP(
            obs_dim, n_actions, hidden_sizes, activation, trainable=True, **kwargs
        )
        self.prior = (
            _EnsembleMLP(obs_dim, n_actions, hidden_sizes, activation, trainable=False, **kwargs)
            if self.prior_scale > 0
            else None
        )

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.reshape(obs.shape[0], -1)
        q = self.members(x)
        if self.prior is not None:
            with torch.no_grad():  # the prior is never trained (bsuite: lax.stop_gradient)
                prior = self.prior(x)
            q = q + self.prior_scale * prior
        return q.transpose(0, 1)


def vote(head_actions: np.ndarray, n_actions: int, rng: np.random.Generator) -> int:
    """The action chosen by most heads (``head_actions``: each head's greedy action), ties
    between equally popular actions broken uniformly at random."""
    counts = np.bincount(head_actions, minlength=n_actions).astype(np.float64)
    return int(Greedy().select(counts, rng))


class Bootstrap:
    """The ensemble's state outside the network: each environment copy's active head, the
    generator of bootstrap masks and head draws, and the ``exploration/ensemble_std`` window.

    :param config: the agent's config (``config.ensemble`` set).
    :param net: the online :class:`EnsembleQNetwork`.
    :param num_envs: environment copies, each with its own active head.
    :param rng: a generator of its own (the agent spawns it), saved in checkpoints.
    """

    def __init__(
        self, config: DQNConfig, net: EnsembleQNetwork, *, num_envs: int, rng: np.random.Generator
    ) -> None:
        if config.ensemble is None:
            raise ValueError("Bootstrap needs a config with an ensemble section")
        self.config: DQNConfig = config
        self.settings: EnsembleConfig = config.ensemble
        self.net = net
        self.heads = self.settings.heads
        self.num_envs = int(num_envs)
        self.rng = rng
        self.active = self.rng.integers(0, self.heads, self.num_envs)
        """``active[e]``: the head acting in environment copy e during its current episode."""
        self._greedy = Greedy()
        self._std_sum = 0.0
        self._std_count = 0

    # -- acting ----------------------------------------------------------------------------

    @torch.no_grad()
    def all_q(self, obs: np.ndarray) -> np.ndarray:
        """Every head's Q-values ``(n, K, A)`` (float32) for observations ``(n, ...)``."""
        device = next(self.net.parameters()).device
        return self.net(torch.as_tensor(obs, dtype=torch.float32, device=device)).cpu().numpy()

    def behaviour_q(self, obs: np.ndarray) -> np.ndarray:
        """The active heads' Q-values ``(num_envs, A)``, one row per copy; records the std
        across heads at these (visited) states for ``exploration/ensemble_std``."""
        q = self.all_q(obs)
        if len(q) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} observations, one per copy, got {len(q)}")
        self._std_sum += float(q.std(axis=1, dtype=np.float64).mean(axis=1).sum())
        self._std_count += len(q)
        return q[np.arange(len(q)), self.active]

    def mean_q(self, obs: np.ndarray) -> np.ndarray:
        """The mean over heads of Q_k, ``(n, A)``: the ensemble's Q-value estimate."""
        return self.all_q(obs).mean(axis=1)

    def greedy_action(self, obs: np.ndarray, rng: np.random.Generator) -> int:
        """The ensemble's greedy action for one observation (``evaluation``: vote or mean)."""
        q = self.all_q(obs)[0]  # (K, A)
        if self.settings.evaluation == "mean":
            return int(self._greedy.select(q.mean(axis=0), rng))
        head_actions = np.asarray(self._greedy.select(q, rng), dtype=np.int64)
        return vote(head_actions, q.shape[1], rng)

    def draw_masks(self) -> np.ndarray:
        """Bootstrap masks ``(num_envs, K)`` for one vector step: m_k ~ Bernoulli(p) (U < p
        with U uniform on [0, 1) has probability exactly p)."""
        p = self.settings.mask_prob
        if p == 1.0:  # every head trains on everything: no draws needed
            return np.ones((self.num_envs, self.heads), dtype=np.bool_)
        return self.rng.random((self.num_envs, self.heads)) < p

    def episodes_ended(self, done: np.ndarray) -> None:
        """Draw a new active head, uniformly, for every copy whose episode just ended."""
        ended = np.flatnonzero(done)
        if len(ended):
            self.active[ended] = self.rng.integers(0, self.heads, len(ended))

    # -- learning --------------------------------------------------------------------------

    def targets(
        self,
        target: EnsembleQNetwork,
        online: EnsembleQNetwork,
        obs: torch.Tensor,
        actions: torch.Tensor,
        returns: torch.Tensor,
        next_obs: torch.Tensor,
        discounts: torch.Tensor,
    ) -> torch.Tensor:
        """Per-head TD targets ``(B, K)``: head k bootstraps from its own target network
        (prior included), with the configured target rule applied per head."""
        cfg = self.config
        next_q = target(next_obs)  # (B, K, A)
        returns = returns[:, None]
        if cfg.target == "munchausen":
            log_pi = functional.log_softmax(target(obs), axis=-1, temperature=cfg.soft_temperature)
            index = actions.view(-1, 1, 1).expand(-1, self.heads, 1)
            scaled = cfg.soft_temperature * log_pi.gather(2, index).squeeze(2)
            returns = returns + cfg.munchausen_alpha * scaled.clamp(min=cfg.munchausen_clip, max=0)
        if cfg.target != "standard":
            values = functional.logsumexp(next_q, axis=-1, temperature=cfg.soft_temperature)
        elif cfg.double:
            best = online(next_obs).argmax(dim=-1, keepdim=True)
            values = next_q.gather(2, best).squeeze(2)
        else:
            values = next_q.amax(dim=-1)
        return returns + discounts[:, None] * values

    def loss(
        self, out: torch.Tensor, actions: torch.Tensor, y: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(L, L/K, mean Q(s, a))`` for Q-values ``out`` ``(B, K, A)``, targets and masks
        ``(B, K)``: L = Σ_k (1/B) Σ_i m_ik·ℓ(Q_k(s_i, a_i) − y_ik) is minimised, L/K (the
        mean head's loss) is reported."""
        index = actions.view(-1, 1, 1).expand(-1, self.heads, 1)
        q_taken = out.gather(2, index).squeeze(2)  # (B, K)
        if self.config.loss == "huber":
            per = F.smooth_l1_loss(q_taken, y, reduction="none")
        else:
            per = F.mse_loss(q_taken, y, reduction="none")
        total = (per * masks).sum() / len(per)
        return total, total.detach() / self.heads, q_taken.detach().mean()

    # -- metrics and checkpoints -----------------------------------------------------------

    def metrics(self) -> dict[str, float]:
        """``exploration/ensemble_std``: the standard deviation over heads of Q_k(s, a),
        averaged over actions and over the states acted in since the last call."""
        if not self._std_count:
            return {}
        out = {"exploration/ensemble_std": self._std_sum / self._std_count}
        self._std_sum, self._std_count = 0.0, 0
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "active": torch.from_numpy(self.active.astype(np.int64)),
            "rng": json.dumps(self.rng.bit_generator.state),
            "std_sum": self._std_sum,
            "std_count": self._std_count,
        }

    def load_state_dict(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        active = state["active"].numpy().astype(np.int64)
        if active.shape != (self.num_envs,) or active.min() < 0 or active.max() >= self.heads:
            raise RlsoftError(
                f"checkpoint {source!r} holds active heads {active.tolist()} that do not fit "
                f"{self.num_envs} environment copies and {self.heads} heads"
            )
        self.active = active
        try:
            self.rng.bit_generator.state = json.loads(state["rng"])
        except (ValueError, TypeError) as exc:
            raise RlsoftError(
                f"checkpoint {source!r} holds an unusable ensemble random state: {exc}"
            ) from None
        self._std_sum = float(state["std_sum"])
        self._std_count = int(state["std_count"])
