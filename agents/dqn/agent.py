"""The DQN agent: acting on batches from vector environments, replay, and the update.

One class covers the family (plain, Double, dueling, n-step, C51, soft, Munchausen,
mellowmax, NoisyNet): the options only change the network (:mod:`agents.dqn.networks`,
:mod:`agents.dqn.noisy`) and the bootstrap target (:mod:`agents.dqn.targets`). The training
loop of rlsoft drives it through the agent interface; per vector step it calls
:meth:`DQNAgent.act` then :meth:`DQNAgent.observe`, which stores the transitions and, on the
configured cadence, updates the target network and runs a round of gradient steps.

Where the time goes, and what is done about it (measured with pyinstrument on CartPole):

* Acting runs one forward pass per vector step on a few observations. torch's fixed cost per
  operator (a few µs each) dominates there, so acting uses :class:`NumpyForward`, the same
  network in numpy on shared-memory views of the parameters (CPU only; MLPs and MinAtar's
  one-convolution network, while the Nature network acts in torch). NoisyNet acting
  (``noisy``) needs a fresh noise sample per environment and runs in torch instead; the
  numpy pass still serves its mean-weight Q-values (evaluation, logging).
* A training round of ``gradient_steps`` steps samples all its minibatches with one call to
  the generator and gathers them with ``np.take`` into preallocated, torch-owned buffers, so a
  round converts nothing and allocates nothing per step.
* The target network only changes between rounds (it is updated on the environment-step
  cadence), so without Double DQN (or NoisyNet, whose target network draws noise per
  minibatch) the targets of a whole round are computed before its first step,
  gradient-free, in blocks of 512 rows (large enough to amortise per-call costs, small enough
  that the activations stay in the CPU cache).
* Each network's parameters (and gradients) live in one flat buffer, so zeroing, clipping,
  Adam and the target update are a few whole-buffer operations (:mod:`agents.dqn.optim`:
  ``torch.optim.Adam.step`` spends most of its time in per-call Python). Metrics stay on the
  device as tensors and are read once per logging window (no ``.item()`` per step).
* Subnormal floats are flushed to zero on the CPU during training rounds
  (``torch.set_flush_denormal``): the Adam moments of dead ReLU units decay into them, and
  x86 handles them slowly.
* One torch thread (``train.torch_threads``): on two shared cores a second thread makes these
  small kernels wait for the other core.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
import re
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from agents.dqn import targets
from agents.dqn.config import DQNConfig
from agents.dqn.conv import (
    CONV_LAYERS,
    ConvTorso,
    bfloat16_on,
    channels_last_planes,
    input_scale,
    storage_dtype,
    uses_frame_replay,
)
from agents.dqn.ensemble import Bootstrap, EnsembleQNetwork
from agents.dqn.fastgrad import SUPPORTED_ACTIVATIONS, ManualGradient, covers_torso
from agents.dqn.memory import TARGET_BLOCK
from agents.dqn.networks import CastCopy, NumpyForward, QNetwork, expected_q_numpy
from agents.dqn.noisy import NoiseSource, clear_noise, mean_abs_sigma
from agents.dqn.optim import FlatAdam, clip_scale, flatten_parameters
from rlsoft.errors import CheckpointError, DivergedError, ObservationMismatchError, RlsoftError
from rlsoft.explore.policies import Greedy, Policy
from rlsoft.explore.schedules import ConstantSchedule
from rlsoft.numerics import functional
from rlsoft.rl.agent import BuildContext
from rlsoft.rl.frame_replay import FramePaddingError, FrameReplayBuffer
from rlsoft.rl.replay import ReplayBatch, ReplayBuffer
from rlsoft.run.checkpoint import atomic_write
from rlsoft.run.config import build_schedule

__all__ = ["DQNAgent", "denormals_flushed"]

CHECKPOINT_FORMAT = "rlsoft.dqn/1"
_ARCHITECTURE = (
    "network",
    "channel_axis",
    "hidden_sizes",
    "activation",
    "head",
    "dueling",
    "atoms",
    "v_min",
    "v_max",
    "noisy",
    "ensemble",  # Bootstrapped DQN: its heads, torso and priors
)
# for checkpoints written before the option existed
_ARCHITECTURE_DEFAULTS = {
    "noisy": False,
    "ensemble": None,
    "network": "auto",
    "channel_axis": "auto",
}


# The smallest positive subnormal double and the smallest normal one. Module globals, not
# literals, so that no expression of them is folded when the module is compiled.
_SUBNORMAL = float.fromhex("0x0.0000000000001p-1022")
_NORMAL = float.fromhex("0x1p-1022")


def denormals_flushed() -> bool:
    """Whether this thread flushes subnormal floats to zero (``torch.set_flush_denormal``).

    torch has a setter for the flag but no getter. It sets the CPU's floating-point mode
    (DAZ and FTZ on x86, FZ on ARM), which Python's own float arithmetic runs under too, so
    the mode shows in two operations: a subnormal operand read as zero (DAZ, FZ), and an
    inexact subnormal result written as zero (FTZ). Either means the flag is on.
    """
    return _SUBNORMAL * 1.0 == 0.0 or _NORMAL / 3.0 == 0.0


def _non_finite_word(array: np.ndarray) -> str:
    """``NaN`` or ``an infinite value``: what makes ``array`` (holding one) not finite."""
    return "NaN" if np.isnan(array).any() else "an infinite value"


class DQNAgent:
    """Deep Q-learning with an MLP or a convolutional network, experience replay and a target
    network.

    :param observation_space: a ``Box``: vectors are flattened into the MLP's input, images go
        through a convolutional torso (``config.network``, :mod:`agents.dqn.conv`); bool and
        integer observations are stored compactly and converted to float on the device.
    :param action_space: ``Discrete`` starting at 0.
    :param policy: the exploration policy; it sees the (expected) Q-values of each batch.
    :param config: the validated hyperparameters (:class:`~agents.dqn.config.DQNConfig`).
    :param rng: numpy generator for exploration and replay sampling.
    :param torch_seed: seeds the network initialisation (without touching torch's global
        generator).
    :param num_envs: environments stepped together; ``observe`` gets one transition each.
    :param device: ``cpu`` or ``cuda`` (the replay buffer stays in host memory).
    """

    name: ClassVar[str] = "dqn"
    vectorized = True
    checkpoint_suffix = ".pt"

    def __init__(
        self,
        *,
        observation_space: gym.Space,
        action_space: gym.Space,
        policy: Policy,
        config: DQNConfig,
        rng: np.random.Generator,
        torch_seed: int = 0,
        num_envs: int = 1,
        device: str = "cpu",
        stacks_on_mlp: bool = False,
    ) -> None:
        """:param stacks_on_mlp: build the MLP that ``network: auto`` chose for 4-D stacks of
        images before rlsoft convolved them (a checkpoint of such a run, see
        :meth:`load_state_dict`)."""
        self._init_args = {
            "observation_space": observation_space,
            "action_space": action_space,
            "policy": policy,
            "rng": rng,
            "torch_seed": torch_seed,
            "num_envs": num_envs,
            "device": device,
        }
        planned = config.model_copy(update={"network": "mlp"}) if stacks_on_mlp else config
        self.n_actions, self.plan = planned.check_spaces(lambda: (observation_space, action_space))
        self.obs_shape = tuple(int(d) for d in observation_space.shape)
        self.config = config
        self.policy = policy
        self.rng = rng
        # Evaluation breaks ties from its own stream, so evaluating never shifts training.
        self.eval_rng = np.random.default_rng(int(rng.integers(2**63)))
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self.categorical = config.head == "c51"
        obs_dim = int(np.prod(self.obs_shape))
        self.obs_dtype = storage_dtype(observation_space)
        self._input_scale = input_scale(observation_space)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch_seed)
            torso = None
            if self.plan.image is not None:
                torso = ConvTorso(
                    CONV_LAYERS[self.plan.name],
                    self.plan.image,
                    channels_last=self.plan.channels_last,
                    frames=self.plan.frames,
                )
            if config.precision != "float32":  # nature_cnn: check_spaces saw to it
                torso.compute_dtype = bfloat16_on(self.device)
            # The layout a channels-first batch is converted into (None: as it comes), and
            # its dtype: the one the convolutions compute in.
            self._input_format = (
                torso.memory_format if torso is not None and not self.plan.channels_last else None
            )
            self._input_dtype = (torso is not None and torso.compute_dtype) or torch.float32
            self.online = self._ensemble_network(obs_dim) or QNetwork(
                obs_dim,
                self.n_actions,
                list(self.plan.dense),
                config.activation,
                dueling=config.dueling,
                atoms=config.atoms if self.categorical else None,
                noisy_sigma0=config.noisy_sigma0 if config.noisy else None,
                torso=torso,
            )
        self.online.to(self.device)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        # Each network's parameters live in one flat buffer (see agents.dqn.optim).
        self._flat, self._grads = flatten_parameters(self.online)
        self._target_flat, _ = flatten_parameters(self.target, gradients=False)
        # agent.precision: the networks compute with weights cast once after each change
        # (agents.dqn.networks.CastCopy); NoisyNet's noisy weights are formed per pass, so it
        # keeps autocast's casts.
        self._online_cast = self._target_cast = None
        if torso is not None and torso.compute_dtype is not None and not config.noisy:
            self._online_cast = CastCopy(self.online, self._flat, torso.compute_dtype)
            self._online_cast.overwrite = True  # optimizer.zero_grad() precedes each backward
            self._target_cast = CastCopy(self.target, self._target_flat, torso.compute_dtype)
        self.support = (
            torch.linspace(config.v_min, config.v_max, config.atoms, device=self.device)
            if self.categorical
            else None
        )
        self._support_np = None if self.support is None else self.support.cpu().numpy()
        self._lr_schedule = build_schedule(config.lr)
        self._lr = self._lr_schedule(0)
        self._lr_constant = isinstance(self._lr_schedule, ConstantSchedule)
        self.optimizer = FlatAdam(self._flat, self._grads, lr=self._lr, eps=config.adam_eps)
        self.buffer = self._make_buffer()
        # Transitions the buffer must hold before gradient steps: 0, except after resuming
        # from a checkpoint that left the replay out (train.checkpoint_replay: false).
        self._min_fill = 0
        # Whether checkpoints include the replay: the driver sets it from
        # train.checkpoint_replay (a setting of the run, not of what the agent learns).
        self.checkpoint_replay = True
        # Bootstrapped DQN: its masks and head draws come from a generator of its own.
        self._bootstrap = (
            Bootstrap(
                config,
                self.online,
                num_envs=self.num_envs,
                rng=np.random.default_rng(int(rng.integers(2**63))),
            )
            if config.ensemble
            else None
        )
        # NoisyNet draws all its noise from its own generator, saved in checkpoints.
        self._noise = NoiseSource.from_torch_seed(torch_seed) if config.noisy else None
        # The numpy forward pass and the hand-written backward pass cover single MLPs and
        # MinAtar's one-convolution network (agents.dqn.fastgrad.covers_torso); the Nature
        # network acts through torch and learns through autograd, as do ensembles.
        single = self._bootstrap is None
        self._numpy_forward = (
            NumpyForward(self.online)
            if self.device.type == "cpu" and single and covers_torso(torso)
            else None
        )
        manual = single and not self.categorical and config.activation in SUPPORTED_ACTIVATIONS
        manual = manual and covers_torso(torso)
        manual = manual and not config.noisy  # σ's gradients go through autograd
        self._manual_gradient = ManualGradient(self.online, config.loss) if manual else None
        self._select = policy.select
        self._select_lazily = policy.select_lazily
        # One environment without noise or heads: the policy may skip the forward pass.
        self._acts_lazily = self.num_envs == 1 and self._bootstrap is None and self._noise is None
        self._greedy = Greedy()
        self._batch: tuple[int, ReplayBatch, dict[str, torch.Tensor]] | None = None
        self.updates = 0
        self.target_updates = 0
        self._reset_metrics()

    # -- construction ----------------------------------------------------------------------

    def _ensemble_network(self, obs_dim: int) -> EnsembleQNetwork | None:
        """The Bootstrapped DQN ensemble (:mod:`agents.dqn.ensemble`), if configured."""
        cfg, ensemble = self.config, self.config.ensemble
        if ensemble is None:
            return None  # (check_spaces refused an ensemble on images or integers)
        return EnsembleQNetwork(
            obs_dim,
            self.n_actions,
            list(self.plan.dense),
            cfg.activation,
            heads=ensemble.heads,
            shared_torso=ensemble.shared_torso,
            dueling=cfg.dueling,
            prior_scale=ensemble.prior_scale,
        )

    @classmethod
    def from_context(cls, ctx: BuildContext) -> DQNAgent:
        """Build from the training loop's :class:`~rlsoft.rl.agent.BuildContext`."""
        if ctx.observation_space is None or ctx.action_space is None:
            raise RlsoftError("the DQN agent needs an environment (an env: section in the config)")
        if not isinstance(ctx.config, DQNConfig):
            raise TypeError(f"expected a DQNConfig, got {type(ctx.config).__name__}")
        return cls(
            observation_space=ctx.observation_space,
            action_space=ctx.action_space,
            policy=ctx.policy or Greedy(),
            config=ctx.config,
            rng=ctx.rng,
            torch_seed=ctx.torch_seed,
            num_envs=ctx.num_envs,
            device=ctx.device,
        )

    def _make_buffer(self) -> ReplayBuffer | FrameReplayBuffer:
        """The replay memory: each frame once (``agent.frame_replay``) or whole transitions;
        both sample the same transitions for the same generator state."""
        cfg = self.config
        common = {"num_envs": self.num_envs, "n_step": cfg.n_step, "gamma": cfg.gamma}
        if not uses_frame_replay(cfg.frame_replay, self.plan, self.obs_dtype, cfg.frame_stack):
            masks = cfg.ensemble.heads if cfg.ensemble else 0  # Bootstrapped DQN's masks
            return ReplayBuffer(
                cfg.buffer_size,
                self.obs_shape,
                obs_dtype=self.obs_dtype,
                mask_size=masks,
                **common,
            )
        return FrameReplayBuffer(  # (check_spaces saw that the stacks fit frame_stack)
            cfg.buffer_size,
            self.obs_shape,
            frame_stack=cfg.frame_stack,
            obs_dtype=self.obs_dtype,
            padding=cfg.frame_padding,
            **common,
        )

    # -- acting ----------------------------------------------------------------------------

    def q_values(self, observations: Any) -> np.ndarray:
        """Q-values ``(n, A)`` of the online network (expected values for C51; the mean over
        heads for an ensemble)."""
        if self._bootstrap is not None:
            obs = np.asarray(observations, dtype=np.float32).reshape(-1, *self.obs_shape)
            return self._bootstrap.mean_q(obs)
        if self._numpy_forward is not None:
            # The forward pass copies (and converts) the batch into its own float32 buffer.
            obs = np.asarray(observations).reshape(-1, *self.obs_shape)
            if self._input_scale != 1.0:
                obs = obs.astype(np.float32) * np.float32(self._input_scale)
            out = self._numpy_forward(obs)
            return expected_q_numpy(out, self._support_np) if self.categorical else out
        obs = np.asarray(observations).reshape(-1, *self.obs_shape)
        with torch.inference_mode():
            out = self.online(self._as_input(torch.as_tensor(obs, device=self.device)))
            if self.categorical:
                out = self._expected_q(out)
            return out.cpu().numpy()

    def _noisy_q_values(self, observations: Any) -> np.ndarray:
        """Q-values ``(n, A)`` with a fresh noise sample per row (NoisyNet acting), in torch:
        the numpy forward pass holds the mean weights only."""
        obs = np.asarray(observations).reshape(-1, *self.obs_shape)
        x = self._as_input(torch.as_tensor(obs, device=self.device))
        rows = []
        with torch.inference_mode():
            for i in range(len(x)):
                with self._noise.sampled(self.online):
                    rows.append(self.online.forward(x[i : i + 1]))
            out = torch.cat(rows)
            if self.categorical:
                out = self._expected_q(out)
            return out.cpu().numpy()

    def act(self, obs: Any, step: int) -> np.ndarray:
        """One exploration action per environment, from the policy on the batch's Q-values
        (an ensemble's: each copy's active head's; noisy ones, freshly sampled per environment,
        with ``noisy``). One environment's Q-values are computed only when the policy needs
        them (ε-greedy's exploratory steps do not).

        Q-values that are not numbers stop the run as a divergence, unless what the network
        was given is to blame: an observation, stored or current, or a stored reward that is
        NaN or infinite (:meth:`_non_finite_inputs`) is named instead."""
        try:
            if self._acts_lazily:
                action = self._select_lazily(
                    lambda: self.q_values(obs)[0], self.n_actions, self.rng, step=step
                )
                return np.array([action], dtype=np.int64)
            if self._bootstrap is not None:
                q = self._bootstrap.behaviour_q(
                    np.asarray(obs, np.float32).reshape(-1, *self.obs_shape)
                )
            elif self._noise is not None:
                q = self._noisy_q_values(obs)
            else:
                q = self.q_values(obs)
            if q.shape[0] == 1:  # the policy's fast path for a single row
                return np.array([self._select(q[0], self.rng, step=step)], dtype=np.int64)
            return np.asarray(self._select(q, self.rng, step=step), dtype=np.int64)
        except DivergedError:
            self._blame_inputs(obs)
            raise

    def _blame_inputs(self, obs: Any) -> None:
        """Raise one sentence naming a NaN or infinite input (:meth:`_non_finite_inputs`) if
        there is one: Q-values that are not numbers came from it, not from divergence."""
        blamed = self._non_finite_inputs(obs)
        if blamed is not None:
            raise RlsoftError(
                f"the environment gave {blamed}, so the Q-values are not numbers and no action "
                "can be chosen; make the environment (or a wrapper of it) return finite "
                "observations and rewards"
            ) from None

    def _non_finite_inputs(self, obs: Any) -> str | None:
        """What the network was given that is NaN or infinite — the observation acted on, or
        an observation or reward in the replay — in words; None when everything is finite.
        Run only after Q-values turned out not to be numbers (it scans the replay)."""
        current = np.asarray(obs)
        if current.dtype.kind == "f" and not np.isfinite(current).all():
            return f"an observation containing {_non_finite_word(current)}"
        buffer = self.buffer
        stored = len(buffer)
        # The frame replay's frames are zeros where nothing was written yet: finite.
        arrays = [getattr(buffer, name, None) for name in ("obs", "next_obs")]
        observations = [a[:stored] for a in arrays if a is not None]
        if isinstance(buffer, FrameReplayBuffer):
            observations += [buffer.frames, buffer.final_frames]
        for array in observations:
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                return f"an observation containing {_non_finite_word(array)}"
        if not np.isfinite(buffer.rewards[:stored]).all():
            return f"a reward of {_non_finite_word(buffer.rewards[:stored])}"
        return None

    def _as_input(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations as the network takes them: float32, ``uint8`` pixels scaled by 1/255
        (:func:`agents.dqn.conv.input_scale`). Compact (bool, integer) batches are converted
        here, on the device; float32 ones pass through untouched. A batch of frame stacks
        for the Nature network is converted and laid out channels-last in one pass
        (:func:`agents.dqn.conv.channels_last_planes`), then scaled in place. With
        ``agent.precision: bfloat16`` the batch is written in bfloat16: uint8 is exact in
        bfloat16, whose multiplication computes in float32 and rounds once, so the values are
        the float32 batch's rounded once, as autocast would round them at the first
        convolution."""
        if obs.dtype == torch.float32:
            return obs
        if self._input_format is not None:  # (N, H, W) frames and (N, k, C, H, W) stacks too
            images = obs.reshape(len(obs), *self.plan.image)
            return channels_last_planes(images, self._input_dtype).mul_(self._input_scale)
        x = obs.to(torch.float32)
        if self._input_scale != 1.0:
            x.mul_(self._input_scale)
        return x

    def act_greedy(self, obs: Any) -> int:
        """argmax_a Q(obs, a) for one observation, ties broken at random (an ensemble's vote
        or mean, see :class:`~agents.dqn.ensemble_config.EnsembleConfig`)."""
        try:
            if self._bootstrap is not None:
                rows = np.asarray(obs, dtype=np.float32).reshape(-1, *self.obs_shape)
                return self._bootstrap.greedy_action(rows, self.eval_rng)
            return int(self._greedy.select(self.q_values(obs)[0], self.eval_rng))
        except DivergedError:
            self._blame_inputs(obs)
            raise

    # -- learning --------------------------------------------------------------------------

    def observe(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        next_obs: Any,
        terminated: Any,
        truncated: Any,
        step: int,
    ) -> None:
        """Store one transition per environment; update the target and train on cadence.

        ``step`` is the global environment step before this vector step, so the steps done
        after it are ``step + num_envs``; an event due every ``k`` steps fires once for each
        multiple of ``k`` that count crosses (several when ``num_envs > k``), so the schedule
        of learning does not depend on ``num_envs``.
        """
        try:
            if self._bootstrap is None:
                self.buffer.add(obs, action, reward, next_obs, terminated, truncated)
            else:
                masks = self._bootstrap.draw_masks()
                self.buffer.add(obs, action, reward, next_obs, terminated, truncated, masks)
                self._bootstrap.episodes_ended(np.logical_or(terminated, truncated).reshape(-1))
        except ValueError as exc:
            if not isinstance(self.buffer, FrameReplayBuffer):
                raise
            if isinstance(exc, FramePaddingError):
                padding = self.config.frame_padding
                raise ObservationMismatchError(
                    "the frame replay cannot store these observations: an episode's first "
                    f"stack is not padded as agent.frame_padding ({padding}) says; set "
                    "agent.frame_padding to the padding_type of the environment's "
                    "FrameStackObservation (reset or zero), or agent.frame_replay: off"
                ) from None
            raise ObservationMismatchError(
                f"the frame replay cannot store these observations ({exc}); set "
                "agent.frame_stack to the environment's stack size, or agent.frame_replay: off"
            ) from None
        cfg = self.config
        before, after = step, step + self.num_envs
        crossed = after // cfg.target_update_interval - before // cfg.target_update_interval
        if crossed:
            self.update_target(crossed)
        if after > cfg.learning_starts and len(self.buffer) > self._min_fill:
            rounds = after // cfg.train_freq - before // cfg.train_freq
            if rounds:
                self.train(rounds * cfg.gradient_steps, after)

    def restart_episodes(self, envs: np.ndarray) -> None:
        """The loop started these environments' episodes over (a resume that could not replay
        them): their last stored transitions end their episodes, as truncations, and
        bootstrapped DQN draws their active heads anew, as at any episode's end."""
        self.buffer.end_streams([int(e) for e in envs])
        if self._bootstrap is not None:
            done = np.zeros(self.num_envs, dtype=bool)
            done[envs] = True
            self._bootstrap.episodes_ended(done)

    @torch.no_grad()
    def update_target(self, times: int = 1) -> None:
        """``times`` target updates θ′ ← τ·θ + (1 − τ)·θ′ at once (a hard copy for τ = 1).

        The online parameters θ do not change between them (the vector step's gradient
        rounds run afterwards), so ``k`` updates in a row are exactly one with the weight
        τ_k = 1 − (1 − τ)^k: θ′ ← θ + (1 − τ)^k·(θ′ − θ). Without this a vector step that
        crosses several update intervals (``num_envs > target_update_interval``) would apply
        one update only and shrink the effective τ as ``num_envs`` grows.
        """
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        tau = self.config.tau
        if tau == 1.0:
            self._target_flat.copy_(self._flat)
        else:
            self._target_flat.lerp_(self._flat, 1.0 - (1.0 - tau) ** times)
        if self._target_cast is not None:
            self._target_cast.invalidate()
        self.target_updates += times

    def train(self, gradient_steps: int, step: int) -> None:
        """Run ``gradient_steps`` gradient steps on fresh minibatches from the replay buffer.

        On the CPU, subnormal floats are flushed to zero during the round: Adam's moments of
        rarely active units decay into them, and x86 CPUs handle them in slow microcode
        assists (how much that costs depends on the CPU, so no number is quoted here). The
        flag is per thread and also governs Python's own float arithmetic, so the caller's
        setting is restored afterwards: a caller that flushes keeps flushing, one that does
        not gets exact subnormals back.
        """
        flush = (
            self.device.type == "cpu" and not denormals_flushed() and torch.set_flush_denormal(True)
        )
        try:
            self._train_round(gradient_steps, step)
        finally:
            if flush:
                torch.set_flush_denormal(False)
            if self._noise is not None:  # back to the mean weights for acting and evaluation
                clear_noise(self.online)
                clear_noise(self.target)

    def _train_round(self, gradient_steps: int, step: int) -> None:
        if not self._lr_constant:
            self._lr = float(self._lr_schedule(step))
        batch_size = self.config.batch_size
        batch = self._sample(gradient_steps * batch_size)
        obs, actions = self._as_input(batch["obs"]), batch["actions"]
        returns, discounts = batch["returns"], batch["discounts"]
        next_obs = self._as_input(batch["next_obs"])
        precomputed = None
        noise = self._noise
        # The target network is fixed during a round (but a noisy one draws noise per batch).
        if not self.config.double and noise is None:
            precomputed = self._round_targets(obs, actions, returns, next_obs, discounts)
        losses, q_means, norms = self._terms
        max_norm = self.config.max_grad_norm
        manual = self._manual_gradient
        for start in range(0, gradient_steps * batch_size, batch_size):
            rows = slice(start, start + batch_size)
            if noise is not None:  # one sample per network per minibatch (agents.dqn.noisy)
                noise.sample(self.online)
                noise.sample(self.target)
            if precomputed is None:
                with torch.no_grad():
                    y = self._targets(
                        obs[rows], actions[rows], returns[rows], next_obs[rows], discounts[rows]
                    )
            else:
                y = precomputed[rows]
            if manual is not None:  # the same gradients, without autograd's overhead
                loss, q_mean = manual(obs[rows], actions[rows], y)
            elif self._bootstrap is not None:
                objective, loss, q_mean = self._bootstrap.loss(
                    self.online(obs[rows]), actions[rows], y, batch["masks"][rows]
                )
                self.optimizer.zero_grad()
                objective.backward()
            else:
                loss, q_mean = self._loss(self.online(obs[rows]), actions[rows], y)
                self.optimizer.zero_grad()
                loss.backward()
            scale = None
            if max_norm is not None:
                norm, scale = clip_scale(self._grads, max_norm)
                norms.append(norm)
            self.optimizer.step(self._lr, grad_scale=scale)
            if self._online_cast is not None:
                self._online_cast.invalidate()
            losses.append(loss.detach())
            q_means.append(q_mean)
        self.updates += gradient_steps
        self._metric_count += gradient_steps
        if len(losses) > 4096:  # bound the memory of a long logging window
            self._fold_metrics()

    @torch.no_grad()
    def _round_targets(self, *batch: torch.Tensor) -> torch.Tensor:
        """:meth:`_targets` for a whole round, in blocks of about ``TARGET_BLOCK`` rows: the
        intermediate activations of one block stay in the CPU cache, which one pass over a
        round's 8,192 rows would flush."""
        n = len(batch[0])
        block = max(self.config.batch_size, TARGET_BLOCK)
        if n <= block:
            return self._targets(*batch)
        parts = [self._targets(*(t[i : i + block] for t in batch)) for i in range(0, n, block)]
        return torch.cat(parts)

    def _sample(self, n: int) -> dict[str, torch.Tensor]:
        """``n`` transitions gathered into reusable torch-owned buffers (moved to the device)."""
        if self._batch is None or self._batch[0] != n:
            # Observations keep their storage dtype (bool, uint8, float32) until _as_input.
            stored = torch.from_numpy(np.empty(0, dtype=self.obs_dtype)).dtype
            shapes = {
                "obs": ((n, *self.obs_shape), stored),
                "actions": ((n,), torch.int64),
                "returns": ((n,), torch.float32),
                "next_obs": ((n, *self.obs_shape), stored),
                "discounts": ((n,), torch.float32),
                "terminated": ((n,), torch.bool),
                "steps": ((n,), torch.int64),
            }
            if self._bootstrap is not None:
                shapes["masks"] = ((n, self._bootstrap.heads), torch.bool)
            tensors = {k: torch.empty(shape, dtype=dtype) for k, (shape, dtype) in shapes.items()}
            views = ReplayBatch(**{k: t.numpy() for k, t in tensors.items() if k != "masks"})
            self._batch = (n, views, tensors)
        _, views, tensors = self._batch
        idx = self.buffer.sample_indices(self.rng, n)
        self.buffer.gather(idx, out=views)
        if self._bootstrap is not None:
            self.buffer.gather_masks(idx, out=tensors["masks"].numpy())
        if self.device.type == "cpu":
            return tensors
        return {k: t.to(self.device, non_blocking=True) for k, t in tensors.items()}

    # -- targets and losses ----------------------------------------------------------------

    def _expected_q(self, logits: torch.Tensor) -> torch.Tensor:
        return functional.softmax(logits, axis=-1) @ self.support

    def _targets(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        returns: torch.Tensor,
        next_obs: torch.Tensor,
        discounts: torch.Tensor,
    ) -> torch.Tensor:
        """TD targets ``(B,)`` for the ``q`` head, projected target distributions ``(B, K)``
        for ``c51`` (see :mod:`agents.dqn.targets`)."""
        cfg = self.config
        if self._bootstrap is not None:
            return self._bootstrap.targets(
                self.target, self.online, obs, actions, returns, next_obs, discounts
            )
        next_out = self.target.forward(next_obs)  # no hooks to run: skip Module.__call__
        if cfg.target == "munchausen":
            current = self.target(obs)
            if self.categorical:
                current = self._expected_q(current)
            returns = returns + targets.munchausen_bonus(
                current, actions, cfg.soft_temperature, cfg.munchausen_alpha, cfg.munchausen_clip
            )
        if not self.categorical:
            if cfg.target == "mellowmax":
                values = targets.mellowmax_values(next_out, cfg.mellowmax_omega)
            elif cfg.target != "standard":
                values = targets.soft_values(next_out, cfg.soft_temperature)
            elif cfg.double:
                values = targets.double_values(next_out, self.online(next_obs))
            else:
                values = targets.max_values(next_out)
            return torch.addcmul(returns, discounts, values)
        return self._categorical_targets(returns, next_obs, discounts, next_out)

    def _categorical_targets(
        self,
        returns: torch.Tensor,
        next_obs: torch.Tensor,
        discounts: torch.Tensor,
        next_logits: torch.Tensor,
    ) -> torch.Tensor:
        cfg, z = self.config, self.support
        next_probs = functional.softmax(next_logits, axis=-1)  # (B, A, K)
        next_q = next_probs @ z  # (B, A)
        if cfg.target == "standard":
            chooser = self._expected_q(self.online(next_obs)) if cfg.double else next_q
            best = chooser.argmax(dim=1)
            probs = next_probs[torch.arange(len(best), device=best.device), best]  # (B, K)
            values = returns[:, None] + discounts[:, None] * z
        else:
            # The π̄-mixture over next actions of z shifted by −τ·log π̄(a′|s′) (mellowmax: τ = 1/ω
            # and a further −τ·log n, see agents.dqn.targets).
            mellow = cfg.target == "mellowmax"
            tau = 1.0 / cfg.mellowmax_omega if mellow else cfg.soft_temperature
            log_pi = functional.log_softmax(next_q, axis=1, temperature=tau)  # (B, A)
            probs = (log_pi.exp()[:, :, None] * next_probs).flatten(1)
            if mellow:
                log_pi = log_pi + math.log(next_q.shape[1])
            shifted = z[None, None, :] - tau * log_pi[:, :, None]
            values = (returns[:, None, None] + discounts[:, None, None] * shifted).flatten(1)
        return targets.project_onto_support(values, probs, cfg.v_min, cfg.v_max, cfg.atoms)

    def _loss(
        self, out: torch.Tensor, actions: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss and the mean (expected) Q-value of the taken actions."""
        if self.categorical:
            logits = out[torch.arange(len(actions), device=actions.device), actions]  # (B, K)
            loss = functional.cross_entropy(logits, y)
            with torch.no_grad():
                q_mean = self._expected_q(logits).mean()
            return loss, q_mean
        q_taken = out.gather(1, actions.view(-1, 1)).squeeze(1)
        if self.config.loss == "huber":
            loss = F.smooth_l1_loss(q_taken, y)
        else:
            loss = F.mse_loss(q_taken, y)
        return loss, q_taken.detach().mean()

    # -- metrics ---------------------------------------------------------------------------

    def _reset_metrics(self) -> None:
        # Per-step values (0-d tensors) are collected in lists and summed when read, so a
        # gradient step adds no tensor operation for its metrics.
        self._terms: tuple[list, list, list] = ([], [], [])
        self._sums = torch.zeros(3, device=self.device)
        self._metric_count = 0

    def _fold_metrics(self) -> torch.Tensor:
        """Add the collected per-step values into the running sums (loss, Q, grad norm)."""
        for i, terms in enumerate(self._terms):
            if terms:
                self._sums[i] += torch.stack(terms).sum()
                terms.clear()
        return self._sums

    def metrics(self) -> dict[str, float]:
        """Averages over the gradient steps since the last call (read with one sync)."""
        out: dict[str, float] = {
            "losses/learning_rate": float(self._lr),
            "charts/gradient_steps": float(self.updates),
        }
        if self._metric_count:
            loss, q, norm = self._fold_metrics().tolist()
            n = self._metric_count
            out["losses/td_loss"] = loss / n
            out["losses/q_mean"] = q / n
            if self.config.max_grad_norm is not None:
                out["losses/grad_norm"] = norm / n
            self._reset_metrics()
        if self._bootstrap is not None:
            out.update(self._bootstrap.metrics())
        if self._noise is not None:
            out["exploration/noise_sigma"] = mean_abs_sigma(self.online)
        return out

    # -- checkpoints -----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The full learning state as tensors and plain containers (``weights_only``-safe).

        The agent draws no numbers from torch's global generator (the network is initialised
        from a forked one; exploration and replay sampling use numpy generators), so none is
        saved and :meth:`load` leaves the caller's torch random state as it was. (Checkpoints
        written before held it under ``rng.torch``; it is ignored.)
        """
        replay = {
            k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
            for k, v in self._replay_state().items()
        }
        # An ensemble's active heads, mask generator and std window (its priors are buffers
        # of the networks, saved with them).
        ensemble = {} if self._bootstrap is None else {"bootstrap": self._bootstrap.state_dict()}
        return {
            "format": CHECKPOINT_FORMAT,
            "agent": self.name,
            "config": self.config.model_dump(mode="json"),
            "spaces": {"obs_shape": list(self.obs_shape), "n_actions": self.n_actions},
            "online": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "replay": replay,
            "rng": {
                "numpy": json.dumps(self.rng.bit_generator.state),
                "eval": json.dumps(self.eval_rng.bit_generator.state),
                **({"noise": self._noise.state_dict()} if self._noise is not None else {}),
            },
            # min_fill: a refill in progress (resumed without the replay) carries on in a
            # checkpoint that holds the replay again.
            "counters": {
                "updates": self.updates,
                "target_updates": self.target_updates,
                "min_fill": self._min_fill,
            },
            # The window's per-step values are saved unsummed: folding them into the sums
            # here would round differently from the uninterrupted run, which folds them when
            # the window is logged.
            "metrics": {
                "count": self._metric_count,
                "sums": self._sums.cpu().clone(),
                "terms": [
                    torch.stack(terms).cpu() if terms else torch.zeros(0) for terms in self._terms
                ],
                "lr": self._lr,
            },
            **ensemble,
        }

    def _replay_state(self) -> dict[str, Any]:
        """The replay's part of a checkpoint: all of it, or with ``checkpoint_replay: false``
        only what an empty buffer needs to continue the episodes in progress."""
        if self.checkpoint_replay:
            return self.buffer.state_dict()
        streams = self.buffer.stream_state() if isinstance(self.buffer, FrameReplayBuffer) else {}
        return {"kept": False, **streams}

    def _load_replay(self, replay: dict[str, Any]) -> None:
        if replay.get("kept", True):
            self.buffer.load_state_dict(replay)
            return
        # The replay was left out: start an empty one that continues the current stacks,
        # and wait for it to refill before sampling again.
        self.buffer = self._make_buffer()
        if isinstance(self.buffer, FrameReplayBuffer):
            self.buffer.continue_streams(replay)
        self._min_fill = min(self.config.learning_starts, self.buffer.capacity - 1)

    def save(self, path: str | Path) -> None:
        """Write :meth:`state_dict` to ``path`` atomically
        (:func:`rlsoft.run.checkpoint.atomic_write`)."""
        state = self.state_dict()
        atomic_write(Path(path), lambda handle: torch.save(state, handle))

    def load(self, path: str | Path) -> None:
        """Restore what :meth:`save` wrote; training then continues exactly.

        Read with ``torch.load(weights_only=True)``: only tensors and plain containers are
        accepted, so a tampered file cannot run code.
        """
        path = Path(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            # Name the offending object only: torch's own text suggests switching the
            # protection off, which would run the file's code.
            found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
            what = f" (it names {found.group(1)})" if found else ""
            raise RlsoftError(
                f"refusing to load {str(path)!r}: it holds objects other than tensors and "
                f"plain containers{what}, which could run code when loaded; use a checkpoint "
                "written by rlsoft train"
            ) from None
        except (OSError, RuntimeError, EOFError, ValueError) as exc:
            reason = " ".join(str(exc).split())[:80] or type(exc).__name__
            raise CheckpointError(
                f"checkpoint file {str(path)!r} is corrupt or unreadable ({reason})"
            ) from None
        self.load_state_dict(state, source=str(path))

    def load_state_dict(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise RlsoftError(f"{source!r} is not a DQN checkpoint of rlsoft")
        online = state.get("online")
        if (
            self.config.network == "auto"
            and len(self.obs_shape) == 4
            and self.plan.image is not None
            and isinstance(online, dict)
            and not any(str(key).startswith("torso.") for key in online)
        ):
            # Written before auto convolved 4-D stacks of images, when it chose the MLP for
            # them: the run goes on with that network.
            self.__init__(**self._init_args, config=self.config, stacks_on_mlp=True)
        saved, mine = state["config"], self.config.model_dump(mode="json")
        changed = [
            k for k in _ARCHITECTURE if saved.get(k, _ARCHITECTURE_DEFAULTS.get(k)) != mine.get(k)
        ]
        spaces = {"obs_shape": list(self.obs_shape), "n_actions": self.n_actions}
        if changed or state["spaces"] != spaces:
            what = (
                ", ".join(f"{k}={saved.get(k)!r}" for k in changed) or f"spaces {state['spaces']}"
            )
            raise RlsoftError(
                f"checkpoint {source!r} was written by a different network ({what}) and cannot "
                "be loaded into this agent"
            )
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._load_replay(
            {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in state["replay"].items()}
        )
        rng = state["rng"]
        try:
            self.rng.bit_generator.state = json.loads(rng["numpy"])
            self.eval_rng.bit_generator.state = json.loads(rng["eval"])
            if self._noise is not None:
                self._noise.load_state_dict(rng["noise"])
        except (ValueError, TypeError, KeyError, RuntimeError) as exc:
            raise RlsoftError(
                f"checkpoint {source!r} holds an unusable random state: {exc}"
            ) from None
        self.updates = int(state["counters"]["updates"])
        self.target_updates = int(state["counters"]["target_updates"])
        if state["replay"].get("kept", True):  # else _load_replay set the wait for a refill
            self._min_fill = int(state["counters"].get("min_fill", 0))
        metrics = state["metrics"]
        self._reset_metrics()
        self._sums.copy_(metrics["sums"])
        for terms, saved_terms in zip(self._terms, metrics.get("terms", ()), strict=False):
            terms.extend(saved_terms.to(self.device).unbind())
        self._metric_count = int(metrics["count"])
        self._lr = float(metrics["lr"])
        if self._bootstrap is not None:
            self._bootstrap.load_state_dict(state["bootstrap"], source)
