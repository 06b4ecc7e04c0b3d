"""The ``agent:`` section of a DQN config: one validated, documented field per option."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import gymnasium as gym
from pydantic import Field, field_validator, model_validator

from agents.dqn.ensemble_config import EnsembleConfig
from rlsoft.run.config import NumberOrSchedule, StrictModel, schedule_endpoints

if TYPE_CHECKING:
    from agents.dqn.conv import NetworkPlan

__all__ = ["ACTIVATIONS", "DQNConfig"]

ACTIVATIONS = ("relu", "tanh", "elu", "silu", "leaky_relu")


class DQNConfig(StrictModel):
    """Hyperparameters of the DQN family (``agent.type: dqn``). Every option combines with
    every other one, except that Double DQN applies to the standard (max) target only and
    ``n_step > 1`` to the standard and mellowmax targets (see ``n_step`` for why the soft
    and Munchausen targets are one-step).

    Step counts (``train_freq``, ``learning_starts``, ``target_update_interval``) are
    *environment* steps summed over all vectorised copies, so ``env.num_envs`` changes only
    the speed of collection, not the schedule of learning.
    """

    # -- network -------------------------------------------------------------------------
    network: Literal["auto", "mlp", "nature_cnn", "minatar_cnn"] = "auto"
    """The Q-network's torso (``agents/dqn/conv.py``): ``mlp`` flattens the observation;
    ``nature_cnn`` is Mnih et al. (2015)'s three convolutions for 84×84 frames (images of at
    least 36×36); ``minatar_cnn`` is Young & Tian (2019)'s one 3×3 convolution with 16
    filters for MinAtar's 10×10×C grids. ``auto`` picks a convolutional network for images
    (3-D ``Box`` spaces, 4-D stacks of them convolved as one image of all their channels, and
    2-D ``uint8`` ones; ``nature_cnn`` when both sides are ≥ 36) and the MLP for everything
    else."""
    channel_axis: Literal["auto", "first", "last"] = "auto"
    """Where a 3-D image observation (or each image of a 4-D stack) keeps its channels:
    ``first`` (C, H, W), as ``FrameStackObservation`` stacks grayscale frames; ``last``
    (H, W, C), Gymnasium's image convention and MinAtar's; ``auto``: first when the first axis
    is strictly the shortest, else last."""
    precision: Literal["float32", "bfloat16"] = "float32"
    """The arithmetic of the ``nature_cnn`` network. ``float32`` (default) computes
    everything in float32, as SB3, CleanRL and the papers do. ``bfloat16`` runs the three
    convolutions and the hidden dense layers, forward and backward, in both the online and
    the target network, in bfloat16 with ``torch.autocast``'s arithmetic (mixed precision:
    the weights, their gradients, Adam, the output layer, the targets and the loss stay
    float32; Kalamkar et al. 2019, "A Study of BFLOAT16 for Deep Learning Training"), the
    weights cast once after each change (:class:`agents.dqn.networks.CastCopy`). On an AMD
    EPYC with AVX512-BF16 and one thread, Atari training ran at 1.48× float32's steps/s
    (147 against 99; 2.23× SB3's, which ranged from 1.68× to 2.23× over three runs as the
    machine's speed drifted; ``scripts/bench_pixels.py --bfloat16``, 2026-12-07, see
    README). The Q-values it learns differ in rounding from float32's, so runs are
    reproducible given the seed and resume exactly, but are not bit-identical to float32
    runs. CPUs without bfloat16 instructions emulate it, slower; a GPU without bfloat16
    (before Ampere) is refused. Applies to ``nature_cnn`` only (MinAtar's one small
    convolution gains nothing)."""
    hidden_sizes: list[int] | None = None
    """Widths of the dense hidden layers after the torso, e.g. ``[256, 256]`` (``[]``: a
    linear model on the features). Unset: the network's own, ``[256, 256]`` for the MLP,
    ``[512]`` for ``nature_cnn`` and ``[128]`` for ``minatar_cnn`` (their papers')."""
    activation: Literal["relu", "tanh", "elu", "silu", "leaky_relu"] = "relu"
    """Non-linearity after each hidden layer."""
    head: Literal["q", "c51"] = "q"
    """``q``: one value per action, trained by regression on the TD target. ``c51``: a
    categorical distribution over ``atoms`` fixed returns per action (softmax over atoms),
    trained with cross-entropy against the projected target distribution; it acts on the
    expected value Σ_i p_i·z_i."""
    dueling: bool = False
    """Dueling head: Q(s,a) = V(s) + A(s,a) − mean_a′ A(s,a′) (per atom for ``c51``)."""
    atoms: int = Field(51, ge=2)
    """Number of support atoms z_i of the ``c51`` head."""
    v_min: float = -10.0
    """Smallest return on the ``c51`` support (returns below are clipped to it)."""
    v_max: float = 10.0
    """Largest return on the ``c51`` support; z_i = v_min + i·(v_max − v_min)/(atoms − 1)."""
    noisy: bool = False
    """NoisyNet (Fortunato et al., 2018): every linear layer becomes a factorised Gaussian
    noisy layer w = μ + σ ⊙ f(ε_out)f(ε_in)ᵀ (:mod:`agents.dqn.noisy`), with fresh noise
    before every action (one sample per environment copy) and per minibatch (independent for
    the online and target networks); evaluation uses the mean weights μ. The paper acts
    greedily on the noisy Q-values (``exploration.policy: greedy``); ε-greedy and Boltzmann
    still apply, to the noisy Q-values, for experiments that add dithering on top."""
    noisy_sigma0: float = Field(0.5, gt=0.0, allow_inf_nan=False)
    """σ0 of the noisy layers: σ starts at σ0/√p for a layer with p inputs (the paper's 0.5);
    only used with ``noisy: true``."""

    # -- targets -------------------------------------------------------------------------
    gamma: float = Field(0.99, ge=0.0, le=1.0)
    """Discount factor γ."""
    n_step: int = Field(1, ge=1)
    """Length n of the bootstrapped return Σ_{k<n} γ^k r_{t+k} + γ^n·V(s_{t+n}); shorter at
    the end of an episode, which it never crosses. ``target: standard`` or ``mellowmax``
    (mellowmax only replaces the max at the bootstrap state, as Asadi & Littman, 2017, replace
    it in the backup, and adds nothing to the rewards in between, so its n-step return is
    formed as the standard one's); not with the soft and
    Munchausen targets are defined for one-step transitions (Haarnoja et al., 2017, train
    soft Q-learning on r_t + γ·V_soft(s_{t+1}); Vieillard et al., 2020, add the Munchausen
    term to the immediate reward and use no n-step returns, nor does their reference
    code), and an n-step soft return would need the policy's entropy at every intermediate
    state, which the replay buffer does not keep."""
    target: Literal["standard", "soft", "munchausen", "mellowmax"] = "standard"
    """Next-state value: ``standard`` max_a′ Q_target(s′,a′); ``soft`` the log-sum-exp
    τ·log Σ_a′ exp(Q_target(s′,a′)/τ); ``munchausen`` the soft value plus the bonus
    α·clip(τ·log π(a|s), l0, 0) with π = softmax(Q_target(s)/τ) added to the reward;
    ``mellowmax`` mm_ω = log((1/n) Σ_a′ exp(ω·Q_target(s′,a′)))/ω over the n actions (Asadi &
    Littman, 2017), between the mean (ω → 0) and the max (ω → ∞)."""
    double: bool = False
    """Double DQN: pick argmax_a′ with the online network, evaluate it with the target network
    (``target: standard`` only)."""
    soft_temperature: float = Field(0.03, gt=0.0)
    """τ of the ``soft`` and ``munchausen`` targets (τ → 0 recovers the max)."""
    munchausen_alpha: float = Field(0.9, ge=0.0, le=1.0)
    """α, the scale of the Munchausen bonus (0 reduces it to the ``soft`` target)."""
    munchausen_clip: float = Field(-1.0, lt=0.0)
    """l0 < 0, the lower clip of τ·log π(a|s) (log π is unbounded below)."""
    mellowmax_omega: float = Field(10.0, gt=0.0, allow_inf_nan=False)
    """ω > 0 of the ``mellowmax`` target, in 1/(units of Q): mm_ω is within log(n)/ω below
    the max and tends to the mean as ω → 0 (float32 keeps about 1e-7·log(n)/ω absolute
    precision, so very small ω loses digits)."""

    # -- optimisation --------------------------------------------------------------------
    lr: NumberOrSchedule = 1e-3
    """Adam learning rate: a number > 0 or a linear/exponential schedule over environment steps
    (which may decay to 0; a decay towards the end keeps a solved policy from collapsing)."""
    adam_eps: float = Field(1e-8, gt=0.0)
    """Adam's ε (added to the denominator)."""
    loss: Literal["huber", "mse"] = "huber"
    """Regression loss of the ``q`` head (Huber with δ = 1, or squared error); the ``c51``
    head always uses cross-entropy."""
    max_grad_norm: float | None = Field(10.0, gt=0.0)
    """Clip the gradient's global L2 norm to this value before each step (null: no clip)."""
    batch_size: int = Field(64, ge=1)
    """Transitions per gradient step."""
    buffer_size: int = Field(100_000, ge=1)
    """Replay capacity in transitions (the oldest are overwritten)."""
    frame_replay: Literal["auto", "on", "off"] = "auto"
    """Store every observation frame once (``FrameReplayBuffer``, in
    ``rlsoft/rl/frame_replay.py``; stacks rebuilt when sampling) instead of each transition's
    ``obs`` and ``next_obs``: half the observation memory for ``frame_stack: 1``,
    ``1/(2k)`` of it for stacks of k frames, with the same samples. ``auto``: on for images
    stored compactly (``uint8`` or bool observations with a convolutional network), off
    otherwise."""
    frame_stack: int = Field(1, ge=1)
    """The observations are stacks of this many frames on their first axis, newest last, as
    ``FrameStackObservation(env, stack_size=k)`` makes them (padding by repeating the reset
    frame, its default); the frame replay stores each frame once. 1: every observation is
    one frame (MinAtar). Left out or null on an ``ALE/`` id with the frame replay, it takes
    ``env.atari.frame_stack`` (4); elsewhere 1. Needs ``frame_replay`` on or auto."""
    frame_padding: Literal["reset", "zero"] = "reset"
    """How the environment fills an episode's first stacks, before ``frame_stack`` frames
    exist: ``reset`` repeats the reset frame, ``zero`` uses zero frames — the
    ``padding_type`` of its ``FrameStackObservation`` (``reset``, Gymnasium's default, or
    ``zero``). The frame replay rebuilds those stacks the same way. Needs ``frame_stack``
    above 1."""
    learning_starts: int = Field(1_000, ge=0)
    """No gradient steps until more than this many environment steps were collected."""
    train_freq: int = Field(4, ge=1)
    """Run ``gradient_steps`` gradient steps every this many environment steps."""
    gradient_steps: int = Field(1, ge=1)
    """Gradient steps per training round."""
    target_update_interval: int = Field(1_000, ge=1)
    """Update the target network every this many environment steps."""
    tau: float = Field(1.0, gt=0.0, le=1.0)
    """Target update θ′ ← τ·θ + (1 − τ)·θ′: 1 is a hard copy, smaller values Polyak
    averaging."""

    # -- exploration in the network --------------------------------------------------------
    ensemble: EnsembleConfig | None = None
    """Bootstrapped DQN with randomized prior functions (see
    :class:`~agents.dqn.ensemble_config.EnsembleConfig`), e.g. ``{heads: 10, prior_scale:
    3}``; null: one Q-network. ``q`` head only (plain or dueling), with any target, Double
    DQN and n-step."""

    def check_spaces(
        self, spaces: Callable[[], tuple[gym.Space, gym.Space]]
    ) -> tuple[int, NetworkPlan]:
        """Refuse settings the environment's spaces rule out (see
        :func:`agents.dqn.spaces.check_spaces`); ``spaces`` makes ``(observation_space,
        action_space)``, an environment probe. ``rlsoft compare`` calls this before its
        workers start, so a network that cannot take one of its games is one sentence, not
        a failed run per seed.

        :returns: the number of actions and the network the observations get.
        :raises RlsoftError: one sentence naming the setting to change.
        """
        from agents.dqn.spaces import check_spaces

        return check_spaces(
            *spaces(),
            network=self.network,
            channel_axis=self.channel_axis,
            hidden_sizes=self.hidden_sizes,
            precision=self.precision,
            ensemble=self.ensemble is not None,
            frame_replay=self.frame_replay,
            frame_stack=self.frame_stack,
        )

    def unread_fields(self) -> dict[str, tuple[str, str]]:
        """The fields this configuration ignores, each with the setting that would read it
        and this configuration's value of that setting (``munchausen_alpha`` →
        ``("target: munchausen", "target standard")``): a value written for one of them
        looks like a setting that worked (see :func:`rlsoft.run.config.check_agent_keys`)."""
        unread: dict[str, tuple[str, str]] = {}
        if self.head != "c51":
            for name in ("atoms", "v_min", "v_max"):
                unread[name] = ("head: c51", f"head {self.head}")
        else:  # the distributional head always trains by cross-entropy
            unread["loss"] = ("head: q", "head c51")
        if not self.noisy:
            unread["noisy_sigma0"] = ("noisy: true", "noisy false")
        if self.target not in ("soft", "munchausen"):
            unread["soft_temperature"] = ("target: soft or munchausen", f"target {self.target}")
        if self.target != "munchausen":
            for name in ("munchausen_alpha", "munchausen_clip"):
                unread[name] = ("target: munchausen", f"target {self.target}")
        if self.target != "mellowmax":
            unread["mellowmax_omega"] = ("target: mellowmax", f"target {self.target}")
        if self.hidden_sizes == []:  # no hidden layer; the convolutions are ReLU's
            unread["activation"] = ("hidden_sizes: [n, ...]", "hidden_sizes []")
        return unread

    @field_validator("hidden_sizes")
    @classmethod
    def _positive_widths(cls, value: list[int] | None) -> list[int] | None:
        for width in value or ():
            if width < 1:
                raise ValueError(f"hidden layer widths must be at least 1, got {value}")
        return value

    @field_validator("frame_stack", mode="before")
    @classmethod
    def _null_frame_stack(cls, value: object) -> object:
        # null (--set agent.frame_stack=null) removes a file's frame_stack: one frame.
        return 1 if value is None else value

    @field_validator("lr")
    @classmethod
    def _lr_positive(cls, value: NumberOrSchedule) -> NumberOrSchedule:
        start, *rest = schedule_endpoints(value)
        if not 0.0 < start < math.inf:
            raise ValueError(f"lr must be a positive finite number, got {start}")
        for v in rest:  # a schedule may decay to 0 at its end
            if not 0.0 <= v < math.inf:
                raise ValueError(f"lr schedule end must be a finite number >= 0, got {v}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DQNConfig:
        if not self.v_min < self.v_max:
            raise ValueError(
                f"v_min must be smaller than v_max, got v_min={self.v_min}, v_max={self.v_max}"
            )
        if self.double and self.target != "standard":
            raise ValueError(
                f"double applies to the standard max target only, not to target "
                f"{self.target!r}: the {self.target} target averages over all actions"
            )
        if self.n_step > 1 and self.target in ("soft", "munchausen"):
            raise ValueError(
                f"n_step must be 1 with target {self.target!r} (got {self.n_step}): the "
                f"{self.target} target is defined for one-step transitions only, so use "
                "n_step: 1, or target: standard or mellowmax"
            )
        if self.ensemble is not None and self.head == "c51":
            raise ValueError(
                "ensemble needs head: q: a bootstrapped C51 would add a prior network's "
                "values to logits, which has no meaning as a return distribution"
            )
        if self.ensemble is not None and self.noisy:
            raise ValueError(
                "noisy and ensemble are two exploration methods that rlsoft does not combine "
                "(each ensemble head would need noisy layers of its own): remove one of them"
            )
        if self.network == "mlp" and self.channel_axis != "auto":
            raise ValueError(
                f"channel_axis {self.channel_axis!r} applies to the convolutional networks, not "
                "to network 'mlp' (which flattens the observation): leave it at auto"
            )
        if self.precision != "float32" and self.network in ("mlp", "minatar_cnn"):
            raise ValueError(
                f"agent.precision {self.precision} applies to the nature_cnn network's "
                f"convolutions, not to agent.network {self.network}: remove agent.precision"
            )
        if self.frame_stack > 1 and self.frame_replay == "off":
            raise ValueError(
                f"frame_stack {self.frame_stack} tells the frame replay how observations are "
                "stacked, but frame_replay is off: set frame_replay to on or auto, or drop "
                "frame_stack (set it to null)"
            )
        if self.frame_padding != "reset" and self.frame_stack == 1:
            raise ValueError(
                f"frame_padding {self.frame_padding} says how stacks of frames are padded, but "
                "frame_stack is 1 (one frame per observation): set agent.frame_stack to the "
                "environment's stack size, or remove frame_padding"
            )
        if self.batch_size > self.buffer_size:
            raise ValueError(
                f"batch_size ({self.batch_size}) cannot exceed buffer_size ({self.buffer_size})"
            )
        if self.n_step > self.buffer_size:
            raise ValueError(
                f"n_step ({self.n_step}) cannot exceed buffer_size ({self.buffer_size}): the "
                "replay would never hold a window of that many steps"
            )
        return self
