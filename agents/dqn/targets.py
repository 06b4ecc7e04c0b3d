"""Bootstrap targets of the DQN family, as pure functions of torch tensors.

Notation: a batch of (n-step) transitions with return ``G`` (the discounted reward sum),
bootstrap discount ``d`` (γ^m, or 0 when the episode terminated), next state s′ and the
target network's values there.

* standard:   y = G + d · max_a′ Q̄(s′, a′)
* double:     y = G + d · Q̄(s′, argmax_a′ Q(s′, a′))          (online net picks, target evaluates)
* soft:       y = r + d · τ·log Σ_a′ exp(Q̄(s′, a′)/τ)
* munchausen: y = r + α·clip(τ·log π̄(a|s), l0, 0) + d · τ·log Σ_a′ exp(Q̄(s′, a′)/τ),
  π̄ = softmax(Q̄(s)/τ)
* mellowmax:  y = G + d · mm_ω(Q̄(s′, ·)),  mm_ω(x) = log((1/n) Σ_i exp(ω·x_i))/ω
  = logsumexp(ω·x)/ω − log(n)/ω over the n actions (Asadi & Littman, 2017, eq. 2)

The soft and Munchausen targets are one-step (G = r, d = γ or 0), as their papers define
them: soft Q-learning regresses on r_t + γ·V_soft(s_{t+1}) (Haarnoja et al., 2017), and
Munchausen DQN adds the scaled log-policy to the immediate reward of a one-step target
(Vieillard et al., 2020, whose reference implementation runs with ``update_horizon = 1``).
An n-step version would need the policy's entropy at every intermediate state, so the
config refuses ``n_step > 1`` with them (:class:`~agents.dqn.config.DQNConfig`).

Mellowmax replaces the max of the standard target by a non-expansion that lies between the
mean (ω → 0) and the max (ω → ∞) of the next-state values (Asadi & Littman, 2017, §3). It is
the soft value at τ = 1/ω shifted down by τ·log(n), so it is computed by the same
:func:`rlsoft.numerics.functional.logsumexp`; unlike the soft target it adds no entropy to
the rewards, so its n-step return is formed like the standard one's. For the C51 head its
target distribution is the soft target's π̄-mixture (π̄ = softmax(ω·Q̄(s′))) shifted by the
same −τ·log(n), whose mean is mm_ω.

The soft value equals Σ_a′ π̄(a′|s′)·(Q̄(s′,a′) − τ·log π̄(a′|s′)), the entropy-regularised
value of Munchausen DQN (Vieillard et al., 2020). ``τ·log π̄`` comes from
:func:`rlsoft.numerics.functional.log_softmax`, never from the log of a probability, so it stays
finite and exact far into the tail where π̄ underflows.

The categorical (C51) head represents each return distribution on the fixed support
z_i = v_min + i·Δz. A target is a distribution over arbitrary points (values ``v_j`` with
probabilities ``p_j``); :func:`project_onto_support` maps it back onto the support
(Bellemare et al., 2017, eq. 7):

    (Φ p)_i = Σ_j [1 − |clip(v_j, v_min, v_max) − z_i| / Δz]_0^1 · p_j

so each point splits its mass between its two neighbouring atoms in proportion to closeness.
For the soft and Munchausen targets the next-state distribution is the π̄-mixture over actions
of the shifted distributions z − τ·log π̄(a′|s′), whose mean is the soft value above.
"""

from __future__ import annotations

import math

import torch

from rlsoft.numerics import functional

__all__ = [
    "double_values",
    "max_values",
    "mellowmax_values",
    "munchausen_bonus",
    "project_onto_support",
    "soft_values",
]


def max_values(q_next_target: torch.Tensor) -> torch.Tensor:
    """``max_a′ Q̄(s′, a′)`` per row."""
    return q_next_target.amax(dim=1)


def double_values(q_next_target: torch.Tensor, q_next_online: torch.Tensor) -> torch.Tensor:
    """``Q̄(s′, argmax_a′ Q(s′, a′))``: the online network picks, the target evaluates."""
    best = q_next_online.argmax(dim=1, keepdim=True)
    return q_next_target.gather(1, best).squeeze(1)


def soft_values(q_next_target: torch.Tensor, temperature: float) -> torch.Tensor:
    """``τ·log Σ_a′ exp(Q̄(s′, a′)/τ)`` through :func:`rlsoft.numerics.functional.logsumexp`."""
    return functional.logsumexp(q_next_target, axis=1, temperature=temperature)


def mellowmax_values(q_next_target: torch.Tensor, omega: float) -> torch.Tensor:
    """``mm_ω(Q̄(s′, ·)) = logsumexp(ω·Q̄(s′, ·))/ω − log(n)/ω`` per row (n actions).

    Through :func:`rlsoft.numerics.functional.logsumexp` at temperature τ = 1/ω, which is
    ``τ·logsumexp(x/τ)`` shifted by the row maximum, so large ω (→ the max) cannot overflow.
    The subtraction of log(n)/ω costs about ``eps·log(n)/ω`` of absolute precision as ω → 0
    (where mm_ω → the mean).
    """
    if not 0.0 < omega < math.inf:
        raise ValueError(f"omega must be a positive finite number, got {omega!r}")
    n = q_next_target.shape[1]
    return (
        functional.logsumexp(q_next_target, axis=1, temperature=1.0 / omega) - math.log(n) / omega
    )


def munchausen_bonus(
    q_target: torch.Tensor,
    actions: torch.Tensor,
    temperature: float,
    alpha: float,
    clip: float,
) -> torch.Tensor:
    """``α·clip(τ·log π̄(a|s), l0, 0)`` with ``π̄ = softmax(Q̄(s)/τ)``.

    :param q_target: target-network values at the *current* states, ``(B, A)``.
    :param actions: the actions taken, ``(B,)`` int64.
    """
    log_pi = functional.log_softmax(q_target, axis=1, temperature=temperature)
    scaled = temperature * log_pi.gather(1, actions.view(-1, 1)).squeeze(1)
    return alpha * scaled.clamp(min=clip, max=0.0)


def project_onto_support(
    values: torch.Tensor, probs: torch.Tensor, v_min: float, v_max: float, atoms: int
) -> torch.Tensor:
    """Project distributions with mass ``probs[b, j]`` at points ``values[b, j]`` onto the
    support ``linspace(v_min, v_max, atoms)``; returns ``(B, atoms)`` probabilities.

    A point at b = (v − v_min)/Δz between atoms l = ⌊b⌋ and u = l + 1 gives ``(u − b)·p`` to
    l and ``(b − l)·p`` to u; a point exactly on an atom (b integer, including the clipped
    ends) keeps all its mass there. Mass is conserved exactly up to rounding.
    """
    delta = (v_max - v_min) / (atoms - 1)
    position = (values.clamp(v_min, v_max) - v_min) / delta
    position = position.clamp(0.0, atoms - 1)  # rounding of the division must not leave [0, K−1]
    lower = position.floor()
    upper_weight = position - lower
    lower_index = lower.long()
    upper_index = (lower_index + 1).clamp(max=atoms - 1)
    out = torch.zeros(values.shape[0], atoms, dtype=probs.dtype, device=probs.device)
    out.scatter_add_(1, lower_index, probs * (1.0 - upper_weight))
    out.scatter_add_(1, upper_index, probs * upper_weight)
    return out
