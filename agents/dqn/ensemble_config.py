"""The ``agent.ensemble:`` section of a DQN config: Bootstrapped DQN with randomized priors.

Kept apart from :mod:`agents.dqn.ensemble` (which imports torch) so that validating a config
stays torch-free, like the rest of :mod:`agents.dqn.config`. The method is described in
:mod:`agents.dqn.ensemble`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rlsoft.run.config import StrictModel

__all__ = ["EnsembleConfig"]


class EnsembleConfig(StrictModel):
    """Bootstrapped DQN (Osband, Blundell, Pritzel & Van Roy, 2016) with randomized prior
    functions (Osband, Aslanides & Cassirer, 2018): K Q-heads Q_k = f_θk + β·p_k, each trained
    on the transitions its Bernoulli(``mask_prob``) bootstrap mask selects, one head (drawn
    uniformly at the start of each episode, per environment copy) acting for a whole episode.
    The exploration policy (``exploration.policy``) acts on the active head's Q-values:
    ``greedy`` is the papers' Thompson-sampling-like behaviour, ``epsilon_greedy`` adds
    bsuite's optional dithering on top. The defaults follow bsuite's ``boot_dqn`` baseline
    (separate networks, ``mask_prob`` 1 as in its ``default_agent``, β = 3 as in its
    ``run.py``) except the number of heads (bsuite: 20).
    """

    heads: int = Field(10, ge=1)
    """K, the number of ensemble members (Q-heads), each with its own target and prior."""
    mask_prob: float = Field(1.0, gt=0.0, le=1.0)
    """p: each head trains on each transition independently with probability p (its
    bootstrap mask m_k ~ Bernoulli(p), drawn when the transition is stored). 1 trains every
    head on all data, leaving the diversity to the random initialisation and the priors
    (bsuite's default); the 2016 paper uses 0.5 as a double-or-nothing bootstrap."""
    prior_scale: float = Field(3.0, ge=0.0)
    """β, the weight of each head's fixed random prior network p_k in Q_k = f_θk + β·p_k
    (0: no prior, plain Bootstrapped DQN). Scale it with the size of the returns."""
    shared_torso: bool = False
    """``true``: the heads share the hidden layers (the 2016 paper's architecture; the
    torso's gradient is the heads' sum scaled by 1/K); ``false``: K separate MLPs (bsuite's
    and the 2018 paper's ensemble). The prior networks have the same architecture."""
    evaluation: Literal["vote", "mean"] = "vote"
    """Greedy action of the ensemble in evaluation and ``predict``: ``vote``, the action most
    heads rank first (a majority vote, ties broken at random; the 2016 paper's ensemble
    policy), or ``mean``, argmax_a of the mean over heads of Q_k(s, a)."""
