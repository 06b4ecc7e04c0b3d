"""DQN from pixels, rlsoft against Stable-Baselines3 in one run: training speed, collection
speed, and the resident memory of an Atari replay filled with real frames.

**Speed** (``--games minatar,atari``). Each game's hyperparameters come from its rlsoft config
(``configs/minatar_breakout_dqn.yaml``: the MinAtar network, batch 32, one gradient step per
environment step, target copy every 1,000 steps, Adam, Huber;
``configs/atari_breakout_dqn.yaml``: the Nature network, batch 32, one gradient step every 4
agent steps, target copy every 10,000, Adam, Huber), read through rlsoft's config API with the
``--set [GAME:]key=value`` overrides applied, and SB3's ``DQN`` gets the same values: its
``CnnPolicy`` with ``NatureCNN`` (512 features, no further layers: the Nature network) for
Atari, and a features extractor that *is* the MinAtar network (one 3×3 convolution with 16
filters, 128 units) for MinAtar, whose bool 10×10×C grids SB3's own CNN does not take; Adam
with the config's ε, the Huber loss (SB3's only one), no gradient clipping when the config has
none (SB3 clips at ``max_grad_norm``, given ``inf``). SB3 steps the environment built by
rlsoft's env factory from the config (for Atari the standard protocol: ``AtariPreprocessing``
84×84 grayscale with frame skip 4, a 4-frame ``FrameStackObservation``, sticky actions 0.25 —
the frames SB3's ``AtariWrapper`` would give, through Gymnasium's wrappers; SB3 additionally
gets the rewards clipped to their sign when the config clips them, as ``AtariWrapper`` does).
rlsoft trains on what the config gives it: the same env for MinAtar, and for Atari its
default backend, ale-py's native env, whose observations are the same bytes
(``env.atari.backend``; ``tests/unit/rl/test_atari_native.py``); the Atari rows add rlsoft
on the Gymnasium env too, which separates the library's speed from the backend's. One
environment, the CPU and one torch thread (``torch.set_num_threads(1)``), one after the
other in this process.

Each training run takes ``--warmup`` steps without updates (``learning_starts``; not timed:
start-up, the first replay contents) and then ``--steps`` timed training steps. ε is held at
the config's final value (0.1 in both configs) in both libraries, the regime of most of a run:
with the initial ε = 1 both would skip the forward pass while acting (each computes Q-values on
greedy steps only), which is not what a long run measures. The replay holds ``--speed-buffer``
transitions in both (default 100k: the window fills a few thousand, and SB3's 1M Atari replay
does not fit in this machine's memory). SB3 uses ``optimize_memory_usage=True`` in the speed
runs too (``--sb3-plain-replay`` for its default buffer). rlsoft runs its normal loop
(``Trainer``, TensorBoard logging included) with the final greedy evaluation and checkpoint
stubbed out (both after the timed window; an untrained greedy Breakout agent can play 27k steps
without firing); SB3 runs ``learn``. Steps/s are on wall-clock time and on the process's CPU
time, all its threads counted (ale-py's native env steps in a thread of its own; CPU time moves
less when other processes share the cores).

**Collection only.** The same runs with updates disabled (``learning_starts`` beyond the
budget; for SB3, ``gradient_steps=0`` after its warm-up, as it acts at random before
``learning_starts``): ``--collect-steps`` steps of rlsoft's DQN collection (ε-greedy acting,
a forward pass on its greedy steps, and storing in the frame replay) and of SB3's (likewise a
forward pass on its greedy steps), against the bare environment stepping pre-drawn random
actions, all timed in the same run. The ratio *collection / bare env* is the share of the
environment's speed a run keeps when learning costs nothing.

**Memory** (Atari; ``--memory-capacity``, ``--memory-large``, ``--plain-capacity``). The growth
of the resident set (``VmRSS``) of a fresh subprocess from just before a replay is built to just
after it is full, for rlsoft's ``FrameReplayBuffer`` (each 84×84 frame once), SB3's
``ReplayBuffer(optimize_memory_usage=True)`` (one 4×84×84 stack per transition) and SB3's
default ``ReplayBuffer`` (``obs`` and ``next_obs`` stacks). The frames are real: ``--frames``
agent steps of ``ALE/Breakout-v5`` under the protocol above with random actions, recorded once
(episodes, game overs and all) and written into every buffer cyclically, episode by episode.
Cycling real frames is equivalent to unique frames for the resident set: every slot of every
buffer is written once, and a written page of anonymous memory is resident whatever bytes it
holds (Linux neither compresses nor merges such pages without swap or ``madvise``, and numpy
asks for neither), so the measurement counts exactly the pages the buffer touches; the
buffers' episode bookkeeping (rlsoft's final frames, one per game over) sees real episode
lengths. SB3 at 1M transitions with ``optimize_memory_usage`` needs ≈ 28 GB and does not fit
here: it is measured at ``--memory-capacity`` (default 250k), where rlsoft is too, and rlsoft
also at ``--memory-large`` (1M); the table prints bytes per transition and, labelled as such,
SB3's extrapolation to 1M. Before each measurement the script checks ``MemAvailable`` and skips
one whose estimate exceeds ``--memory-limit-gb`` (default 10) or what is free.

Goals (issue 13): rlsoft ≥ 2× SB3's training steps/s on both games; rlsoft's replay ≤ 0.3× the
memory of SB3's with ``optimize_memory_usage``; the collection ratio reported.

    python scripts/bench_pixels.py                                  # a few minutes
    python scripts/bench_pixels.py --games minatar --skip-memory    # MinAtar speed only
    python scripts/bench_pixels.py --steps 20000 --repeats 3 --out pixels.json   # longer
    python scripts/bench_pixels.py --skip-speed --memory-large 0    # memory at 250k only
    python scripts/bench_pixels.py --set atari:agent.batch_size=64  # a config override
    python scripts/bench_pixels.py --autograd --skip-memory    # + rlsoft with autograd
    python scripts/bench_pixels.py --games atari --skip-memory --bfloat16   # + bfloat16
    python scripts/bench_pixels.py --games atari --skip-memory --profile 12  # where time goes

``--bfloat16`` adds an Atari row of rlsoft with ``agent.precision: bfloat16`` (the Nature
network's convolutions and hidden layer in mixed precision), and its ratio to SB3 is
reported beside the goal, not as it: SB3 computes in float32, and the goal compares the same
arithmetic. It also times the same training with the weights cast under ``torch.autocast``
at every pass instead of once after each change (:class:`agents.dqn.networks.CastCopy`; the
same numbers) and reports the ratio of the two.

**Arithmetic ceiling.** After the speed runs the script times one torch thread at its
best (:func:`peak_flops`: the faster of a 1024×1024 matrix product and a large channels-last
convolution, float32, and bfloat16 with ``--bfloat16``). It counts the multiply-adds of the
config's network per environment step (:func:`multiply_adds_per_step`: the gradient steps'
forward and backward passes, the target network's pass and acting's) and prints the steps/s
that arithmetic alone allows at that peak, alone and with the bare environment's time per
step added. The reported row *2x SB3 / the float32 ceiling with the env* near 1 says the
goal needs every flop at the kernels' best; above 1, that no float32 implementation of the
same network, batch and number of updates can meet it on this core. Below 1 it rules
nothing out: memory traffic is not in the ceiling.

Needs the benchmark extra (``pip install 'rlsoft[bench]'``: stable-baselines3) and the games
(``pip install 'rlsoft[minatar,atari]'``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as `python scripts/bench_pixels.py` from a checkout
    sys.path.insert(0, str(ROOT))

from scripts.benchlib import (  # noqa: E402
    GB,
    available_bytes,
    median,
    rss_bytes,
    sb3_dqn_hyperparameters,
)

GAMES: dict[str, str] = {
    "minatar": "configs/minatar_breakout_dqn.yaml",
    "atari": "configs/atari_breakout_dqn.yaml",
}
"""Game → its rlsoft config (relative to the checkout)."""
PACKAGES: dict[str, tuple[str, str]] = {
    "minatar": ("minatar", "minatar"),
    "atari": ("ale_py", "atari"),
}
"""Game → (the module it needs, rlsoft's extra that installs it)."""
MEMORY_ENV = "ALE/Breakout-v5"
FRAME = (84, 84)
STACK = 4
SPEED_GOAL = 2.0
MEMORY_GOAL = 0.3
CASES = ("bare env", "sb3 collect", "rlsoft collect", "sb3 train", "rlsoft train")
NATIVE_CASES = ("bare native env", "rlsoft train gymnasium env")
CASE_NAMES = {
    "bare env": "bare env, random actions",
    "bare native env": "bare native env, random actions",
    "sb3 collect": "SB3 collection (no updates)",
    "rlsoft collect": "rlsoft collection (no updates)",
    "sb3 train": "SB3 training",
    "rlsoft train": "rlsoft training",
    "rlsoft train autograd": "rlsoft training, autograd",
    "rlsoft train gymnasium env": "rlsoft training, Gymnasium env",
    "rlsoft train bfloat16": "rlsoft training, bfloat16",
    "rlsoft train bfloat16 autocast": "rlsoft training, bfloat16, autocast",
}

CASE_WIDTH = max(len(name) for name in CASE_NAMES.values())


class BenchError(Exception):
    """A user mistake or a missing package: one sentence, exit 2."""


# -------------------------------------------------------------------------------- configs


def parse_sets(items: list[str], games: list[str]) -> dict[str, list[str]]:
    """``--set [GAME:]key=value`` → the overrides of each game (no prefix: every game)."""
    sets: dict[str, list[str]] = {game: [] for game in games}
    for item in items:
        if ":" not in item.partition("=")[0]:
            for overrides in sets.values():
                overrides.append(item)
            continue
        game, _, override = item.partition(":")
        if game not in GAMES:
            raise BenchError(
                f"--set {item!r} names the game {game!r}; use one of {sorted(GAMES)} or no "
                "prefix (every game)"
            )
        if game in sets:
            sets[game].append(override)
    return sets


def final_epsilon(exploration: Any) -> float:
    """The ε a run settles at: the schedule's end value, or the constant."""
    epsilon = exploration.epsilon
    return float(epsilon) if isinstance(epsilon, (int, float)) else float(epsilon.end)


def bench_config(
    game: str,
    overrides: list[str],
    *,
    warmup: int,
    steps: int,
    learn: bool,
    buffer_size: int,
    seed: int,
    config_path: str | None = None,
) -> Any:
    """The game's rlsoft config with the user's overrides, then the benchmark's window: ``warmup``
    random steps and ``steps`` more (training when ``learn``, else collection only), constant
    final ε, the CPU, one torch thread, no evaluations or checkpoints in between."""
    import agents  # noqa: F401 - registers rlsoft's agents (the DQN config)
    from rlsoft.errors import RlsoftError
    from rlsoft.run.config import apply_overrides, load_config_dict, set_dotted, validate_config

    path = Path(config_path or ROOT / GAMES[game])
    if not path.is_file():
        raise BenchError(
            f"{path} does not exist; pass --{game}-config with a {game} DQN config, or leave "
            f"{game} out of --games"
        )
    try:
        data = apply_overrides(load_config_dict(path), overrides)
        epsilon = final_epsilon(validate_config(data, source=str(path)).exploration)
        total = warmup + steps
        window = {
            "name": f"bench_pixels_{game}",
            "seed": seed,
            "device": "cpu",
            "agent.learning_starts": warmup if learn else total,
            "agent.buffer_size": buffer_size,
            "exploration.epsilon": epsilon,
            "train.total_steps": total,
            "train.eval_every": 0,
            "train.checkpoint_every": 0,
            "train.progress": "off",
            "train.torch_threads": 1,
        }
        for key, value in window.items():
            set_dotted(data, key, value, "bench_pixels")
        config = validate_config(data, source=str(path))
    except RlsoftError as exc:
        raise BenchError(str(exc)) from None
    if config.agent_type != "dqn" or config.exploration.policy != "epsilon_greedy":
        raise BenchError(
            f"{path}: the benchmark compares DQN with ε-greedy exploration (SB3's only one), "
            f"not {config.agent_type} with {config.exploration.policy}"
        )
    return config


def sb3_hyperparameters(config: Any) -> dict[str, Any]:
    """SB3 ``DQN`` keyword arguments equal to the rlsoft config's agent section, or one
    sentence naming an option SB3's DQN does not have. The network is :func:`sb3_policy`'s."""
    agent = config.agent_config()
    unsupported = {
        "head": (agent.head, "q"),
        "dueling": (agent.dueling, False),
        "noisy": (agent.noisy, False),
        "double": (agent.double, False),
        "target": (agent.target, "standard"),
        "loss": (agent.loss, "huber"),
        "activation": (agent.activation, "relu"),
        "ensemble": (agent.ensemble, None),
    }
    for name, (value, plain) in unsupported.items():
        if value != plain:
            raise BenchError(
                f"agent.{name}: {value} has no counterpart in SB3's DQN; benchmark with "
                f"agent.{name}: {plain}"
            )
    if not isinstance(agent.lr, (int, float)):
        raise BenchError("agent.lr is a schedule; the benchmark needs a constant step size")
    epsilon = final_epsilon(config.exploration)
    return {
        **sb3_dqn_hyperparameters(agent),
        "exploration_initial_eps": epsilon,
        "exploration_final_eps": epsilon,
    }


def sb3_policy(config: Any, observation_space: Any) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` giving the same network as rlsoft's for this space (its Adam ε
    included): ``NatureCNN`` whose 512 features are the Nature network's dense layer, or the
    MinAtar network as a features extractor."""
    import torch
    from stable_baselines3.common.torch_layers import NatureCNN

    from agents.dqn.conv import plan_network

    agent = config.agent_config()
    plan = plan_network(observation_space, agent.network, agent.channel_axis, agent.hidden_sizes)
    if plan.name == "mlp" or not plan.dense:
        raise BenchError(
            f"{config.env.id}: the benchmark is for convolutional networks with a dense layer, "
            f"not {plan.name} {list(plan.dense)}"
        )
    if plan.frames > 1:  # SB3's extractors take one image
        raise BenchError(
            f"{config.env.id}: observations of shape {tuple(observation_space.shape)} are "
            "stacks of images, which SB3's feature extractors do not take; benchmark without "
            "the FrameStackObservation wrapper"
        )
    if plan.name == "nature_cnn":
        if plan.channels_last:
            raise BenchError("the Nature network's frames must be channels first (k, 84, 84)")
        extractor: Any = NatureCNN
        extractor_kwargs: dict[str, Any] = {"features_dim": plan.dense[0]}
        normalize = True  # uint8 pixels / 255 in both
    else:
        extractor = minatar_extractor()
        extractor_kwargs = {
            "features_dim": plan.dense[0],
            "image": plan.image,
            "channels_last": plan.channels_last,
        }
        normalize = False  # bool channels as 0/1 in both
    return {
        "features_extractor_class": extractor,
        "features_extractor_kwargs": extractor_kwargs,
        "net_arch": list(plan.dense[1:]),
        "normalize_images": normalize,
        "optimizer_class": torch.optim.Adam,
        "optimizer_kwargs": {"eps": agent.adam_eps},
    }


def minatar_extractor() -> type:
    """Young & Tian (2019)'s network before its output layer as an SB3 features extractor:
    a 3×3 convolution with 16 filters and ReLU, flattened, then ``features_dim`` ReLU units
    (``agents/dqn/conv.py``'s ``minatar_cnn`` with its dense layer)."""
    import torch
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from torch import nn

    class MinAtarCNN(BaseFeaturesExtractor):
        def __init__(
            self,
            observation_space: Any,
            features_dim: int = 128,
            image: tuple[int, int, int] = (4, 10, 10),
            channels_last: bool = True,
        ) -> None:
            super().__init__(observation_space, features_dim)
            c, h, w = image
            self.image, self.channels_last = (c, h, w), channels_last
            self.conv = nn.Conv2d(c, 16, 3, 1)
            self.linear = nn.Linear(16 * (h - 2) * (w - 2), features_dim)

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            x = obs.permute(0, 3, 1, 2) if self.channels_last else obs
            x = torch.relu(self.conv(x)).flatten(1)
            return torch.relu(self.linear(x))

    return MinAtarCNN


# -------------------------------------------------------------------------------- speed


def bare_env(config: Any, steps: int, seed: int) -> dict[str, Any]:
    """Steps/s of the config's environment alone (the Gymnasium stack SB3 steps), with
    pre-drawn random actions."""
    from rlsoft.rl.envs.factory import make_env

    env = make_env(config.env)
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(env.action_space.n, size=steps).tolist()
    wall, cpu = time.perf_counter(), time.process_time()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    env.close()
    return _speed(steps, wall, cpu, 0)


def bare_native_env(config: Any, steps: int, seed: int) -> dict[str, Any]:
    """Steps/s of the Atari env rlsoft trains on (ale-py's native vector env of one copy,
    ``env.atari.backend``), with pre-drawn random actions."""
    from rlsoft.rl.envs.factory import make_vector_env

    env = make_vector_env(config.env)
    env.reset(seed=seed)
    n = int(env.single_action_space.n)
    actions = np.random.default_rng(seed).integers(n, size=(steps, env.num_envs))
    wall, cpu = time.perf_counter(), time.process_time()
    for action in actions:
        env.step(action)  # same-step autoreset
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    env.close()
    return _speed(steps * env.num_envs, wall, cpu, 0)


def gymnasium_backend(config: Any) -> Any:
    """``config`` with ``env.atari.backend: gymnasium``: rlsoft on the env SB3 steps."""
    atari = config.env.atari.model_copy(update={"backend": "gymnasium"})
    return config.model_copy(update={"env": config.env.model_copy(update={"atari": atari})})


def bfloat16_network(config: Any) -> Any:
    """``config`` with ``agent.precision: bfloat16``: the Nature network's convolutions and
    hidden layer in mixed precision (SB3 has no such setting; its row stays float32)."""
    agent = {**config.agent, "precision": "bfloat16"}
    return config.model_copy(update={"agent": agent})


def run_rlsoft(
    config: Any,
    warmup: int,
    *,
    autograd: bool = False,
    autocast: bool = False,
    profile_rows: int = 0,
) -> dict[str, Any]:
    """rlsoft's normal training loop, timed from the first step at or after ``warmup`` to the
    end of the last environment step (the final evaluation and checkpoint are stubbed);
    ``autograd`` computes the gradients with autograd instead of agents/dqn/fastgrad.py;
    ``autocast`` casts a bfloat16 network's weights under autocast at every pass instead of
    once after each change (agents.dqn.networks.CastCopy); ``profile_rows`` > 0 records the
    timed window with ``torch.profiler`` and returns, as ``profile``, a table of that many
    operators by their own time, per input shape (the profiler's overhead slows the run: its
    steps/s are not comparable)."""
    import torch

    from rlsoft.run.experiment import build_driver, create_run_dir
    from rlsoft.run.trainer import Trainer

    marks: list[tuple[int, float, float]] = []
    with tempfile.TemporaryDirectory() as logdir:
        run_dir = create_run_dir(config, logdir)
        driver = build_driver(config)
        torch.set_num_threads(1)
        written_out = driver.agent._manual_gradient is not None
        torso = getattr(driver.agent.online, "torso", None)
        compute = str(getattr(torso, "compute_dtype", None) or torch.float32).removeprefix("torch.")
        if autograd:  # the agent falls back to autograd when it has no written-out backward
            driver.agent._manual_gradient = None
        if autocast:  # the networks fall back to autocast when they have no cast copy
            driver.agent.online.cast_copy = driver.agent.target.cast_copy = None
            driver.agent._online_cast = driver.agent._target_cast = None
        cast_once = getattr(driver.agent.online, "cast_copy", None) is not None
        driver.evaluate = lambda step: {"eval/mean_return": 0.0}  # outside the window
        driver.save_agent = lambda path: Path(path).write_bytes(b"")  # ditto
        advance = driver.advance
        profiler = torch.profiler.profile(record_shapes=True) if profile_rows else None
        profiling: list[bool] = []  # started

        def timed_advance(budget: int, step: int) -> int:
            done = 0
            if step < warmup < step + budget:  # split so that a mark falls on the warm-up's end
                done = advance(warmup - step, step)  # the same as one call: exact resume
                marks.append((step + done, time.perf_counter(), time.process_time()))
            if profiler is not None and step + done >= warmup and not profiling:
                profiler.start()
                profiling.append(True)
            done += advance(budget - done, step + done)
            marks.append((step + done, time.perf_counter(), time.process_time()))
            return done

        driver.advance = timed_advance
        Trainer(driver, config, run_dir).run()
        table = None
        if profiler is not None and profiling:
            profiler.stop()
            table = profiler.key_averages(group_by_input_shape=True).table(
                sort_by="self_cpu_time_total",
                row_limit=profile_rows,
                max_name_column_width=28,
                max_shapes_column_width=60,
            )
        updates = int(driver.agent.updates)
        forward, first = forward_multiply_adds(driver.agent.online)
        agent = driver.agent.config
        per_step = multiply_adds_per_step(
            forward,
            first,
            batch=agent.batch_size,
            gradient_steps=agent.gradient_steps,
            train_freq=agent.train_freq,
            epsilon=final_epsilon(config.exploration),
            double=agent.double,
        )
    return {
        **_window(marks, warmup, updates),
        "multiply_adds_per_step": per_step,
        "written_out": written_out and not autograd,
        "convolutions": compute,  # the dtype the network's convolutions computed in
        "weights_cast_once": cast_once,  # bfloat16 weights from a CastCopy, not autocast
    } | ({"profile": table, "updates_profiled": updates} if table is not None else {})


def run_sb3(config: Any, warmup: int, *, optimize_memory: bool) -> dict[str, Any]:
    """SB3's ``DQN.learn`` on the same environment and hyperparameters, timed from step
    ``warmup`` to the end of ``learn``."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    from rlsoft.rl.envs.factory import make_env

    torch.set_num_threads(1)
    env = make_env(config.env)
    atari = getattr(config.env, "atari", None)
    if atari is not None and getattr(atari, "clip_rewards", False):
        env = gym.wrappers.TransformReward(env, lambda r: float(np.sign(r)))  # as AtariWrapper
    params = sb3_hyperparameters(config)
    total = config.train.total_steps
    if params["learning_starts"] >= total:
        # Collection only. SB3 acts at random before learning_starts, so it starts at the
        # warm-up as in training, and gradient_steps 0 is SB3's "collect, do not train".
        params["learning_starts"], params["gradient_steps"] = warmup, 0
    model = DQN(
        "CnnPolicy",
        env,
        policy_kwargs=sb3_policy(config, env.observation_space),
        optimize_memory_usage=optimize_memory,
        # SB3 refuses its timeout handling together with the memory optimisation.
        replay_buffer_kwargs={"handle_timeout_termination": not optimize_memory},
        exploration_fraction=1.0,  # ε is constant anyway
        seed=config.seed,
        device="cpu",
        verbose=0,
        **params,
    )
    marks: list[tuple[int, float, float]] = []
    updates = [0]
    train = model.train

    def counted_train(gradient_steps: int, batch_size: int = 100) -> None:
        updates[0] += gradient_steps
        train(gradient_steps, batch_size)

    model.train = counted_train

    class Window(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps == warmup:
                marks.append((self.num_timesteps, time.perf_counter(), time.process_time()))
            return True

    model.learn(total_timesteps=total, callback=Window())
    marks.append((model.num_timesteps, time.perf_counter(), time.process_time()))
    env.close()
    return _window(marks, warmup, updates[0])


def _window(marks: list[tuple[int, float, float]], warmup: int, updates: int) -> dict[str, Any]:
    start = next(mark for mark in marks if mark[0] >= warmup)
    end = marks[-1]
    return _speed(end[0] - start[0], end[1] - start[1], end[2] - start[2], updates)


def _speed(steps: int, wall: float, cpu: float, updates: int) -> dict[str, Any]:
    return {
        "steps": steps,
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "steps_per_s": steps / wall,
        "steps_per_cpu_s": steps / cpu if cpu > 0 else math.nan,
        "updates": updates,
    }


def forward_multiply_adds(net: Any) -> tuple[int, int]:
    """``(F, F₁)``: the multiply-adds of one observation's forward pass through ``net`` (a
    :class:`agents.dqn.networks.QNetwork`), and of its first layer alone.

    A convolution of ``C`` input channels and ``k×k`` kernels costs ``C·k²`` per output
    element (``H′·W′·filters`` of them, ``H′ = ⌊(H − k)/s⌋ + 1``); a dense layer ``in·out``.
    The ReLUs, biases and the loss are left out: they are a vanishing share of the work.
    """
    from torch import nn

    counts = []
    if net.torso is not None:
        _, h, w = net.torso.image
        for conv in net.torso.convs:
            (k, _), (s, _) = conv.kernel_size, conv.stride
            h, w = (h - k) // s + 1, (w - k) // s + 1
            counts.append(h * w * conv.out_channels * conv.in_channels * k * k)
    counts += [m.in_features * m.out_features for m in net.modules() if isinstance(m, nn.Linear)]
    return sum(counts), counts[0]


def multiply_adds_per_step(
    forward: int,
    first: int,
    *,
    batch: int,
    gradient_steps: int,
    train_freq: int,
    epsilon: float,
    double: bool = False,
) -> float:
    """The multiply-adds of DQN (a standard target) per environment step:

    ``(g/f)·B·(4F − F₁) + (1 − ε)·F`` — each of the ``g`` gradient steps every ``f``
    environment steps runs the online network forward and backward on ``B`` observations
    (forward ``F``, the weights' gradients ``F``, the inputs' gradients ``F − F₁``: the
    first layer's input needs none) and the target network forward on ``B`` next
    observations (``F``); acting runs one forward pass on each greedy step (``1 − ε``).
    Double DQN adds the online network's pass on the next observations, ``B·F`` per
    gradient step.
    """
    per_gradient_step = batch * (4 * forward - first + (forward if double else 0))
    return gradient_steps / train_freq * per_gradient_step + (1 - epsilon) * forward


def peak_flops(dtype_name: str, size: int = 1024, repeats: int = 5) -> float:
    """Floating-point operations per second of one torch thread at its best: the faster of a
    product of two ``size × size`` matrices (``2·size³`` flops; MKL's kernels in torch's x86
    builds) and a 3×3 convolution of 256 channels on a 56×56 channels-last image into 256
    (``2·56²·256²·9`` flops; oneDNN's kernels), each the best of ``repeats`` timings of 10
    calls. The two libraries reach different fractions of a core: on the AMD EPYC with
    AVX-512 these benchmarks ran on, MKL's float32 product measured about 100 GFLOP/s and
    oneDNN's convolution about 220 (2026-12-07), so the matrix product alone understated the
    core's float32 peak by half."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    dtype = getattr(torch, dtype_name)
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    image = torch.randn(1, 256, 56, 56).to(dtype).contiguous(memory_format=torch.channels_last)
    kernel = torch.randn(256, 256, 3, 3).to(dtype).contiguous(memory_format=torch.channels_last)
    work = {
        2 * size**3: lambda: a @ b,
        2 * 56 * 56 * 256 * 256 * 9: lambda: F.conv2d(image, kernel, padding=1),
    }
    best_rate = 0.0
    for flops, call in work.items():
        call()  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(10):
                call()
            best_rate = max(best_rate, flops * 10 / (time.perf_counter() - start))
    return best_rate


def speed_cases(game: str, args: argparse.Namespace, sets: list[str]) -> dict[str, Callable]:
    """The measurements of one game, each a function returning :func:`_speed`'s dict: the
    five of :data:`CASES`, autograd, and where rlsoft trains on ale-py's native env
    (``env.atari.backend``) the bare native env and rlsoft on the Gymnasium env SB3 steps."""
    from rlsoft.rl.envs.factory import uses_native_atari

    common = {"buffer_size": args.speed_buffer, "seed": args.seed}
    path = getattr(args, f"{game}_config")
    train = bench_config(
        game, sets, warmup=args.warmup, steps=args.steps, learn=True, config_path=path, **common
    )
    collect = bench_config(
        game,
        sets,
        warmup=args.warmup,
        steps=args.collect_steps,
        learn=False,
        config_path=path,
        **common,
    )
    optimize = not args.sb3_plain_replay
    return {
        "bare env": lambda: bare_env(collect, args.collect_steps, args.seed),
        "sb3 collect": lambda: run_sb3(collect, args.warmup, optimize_memory=optimize),
        "rlsoft collect": lambda: run_rlsoft(collect, args.warmup),
        "sb3 train": lambda: run_sb3(train, args.warmup, optimize_memory=optimize),
        "rlsoft train": lambda: run_rlsoft(train, args.warmup),
        "rlsoft train autograd": lambda: run_rlsoft(train, args.warmup, autograd=True),
        "rlsoft profile": lambda: run_rlsoft(
            train, args.warmup, profile_rows=getattr(args, "profile", 0) or 12
        ),
        "rlsoft train bfloat16": lambda: run_rlsoft(bfloat16_network(train), args.warmup),
        "rlsoft train bfloat16 autocast": lambda: run_rlsoft(
            bfloat16_network(train), args.warmup, autocast=True
        ),
    } | (
        {
            "bare native env": lambda: bare_native_env(collect, args.collect_steps, args.seed),
            "rlsoft train gymnasium env": lambda: run_rlsoft(gymnasium_backend(train), args.warmup),
        }
        if uses_native_atari(collect.env)
        else {}
    )


# -------------------------------------------------------------------------------- memory


def record_frames(n_frames: int, seed: int = 0, env_id: str = MEMORY_ENV) -> dict[str, Any]:
    """``n_frames`` (or a few more, to finish the last episode) real 84×84 frames of
    ``env_id`` under the standard preprocessing (``AtariPreprocessing``: 30 no-op starts at
    most, frame skip 4 with the max over the last two frames, grayscale; sticky actions 0.25),
    random actions, whole episodes.

    Returns ``frames`` ``(N, 84, 84)`` and, per frame, ``first`` (an episode's reset frame)
    and the transition that led to it: ``action``, ``reward``, ``terminated`` (game over)
    and ``truncated`` (the time limit, or the end of the recording).
    """
    import ale_py
    import gymnasium as gym
    from gymnasium.wrappers import AtariPreprocessing

    gym.register_envs(ale_py)
    env = gym.make(env_id, frameskip=1, repeat_action_probability=0.25)
    env = AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=FRAME[0])
    rng = np.random.default_rng(seed)
    columns: dict[str, list] = {
        key: [] for key in ("frames", "first", "action", "reward", "terminated", "truncated")
    }

    def push(frame: np.ndarray, first: bool, action: int, reward: float, term: bool, trunc: bool):
        for key, value in zip(columns, (frame, first, action, reward, term, trunc), strict=True):
            columns[key].append(value)

    obs, _ = env.reset(seed=seed)
    push(obs, True, 0, 0.0, False, False)
    limit = n_frames + 100_000  # a random policy ends Breakout long before this
    while True:
        action = int(rng.integers(env.action_space.n))
        obs, reward, terminated, truncated, _ = env.step(action)
        truncated = truncated or (len(columns["frames"]) + 1 >= limit and not terminated)
        push(obs, False, action, float(reward), terminated, truncated)
        if terminated or truncated:
            if len(columns["frames"]) >= n_frames:
                break
            obs, _ = env.reset()
            push(obs, True, 0, 0.0, False, False)
    env.close()
    return {
        "frames": np.stack(columns["frames"]),
        "first": np.array(columns["first"]),
        "action": np.array(columns["action"], np.int64),
        "reward": np.array(columns["reward"], np.float32),
        "terminated": np.array(columns["terminated"]),
        "truncated": np.array(columns["truncated"]),
    }


def frame_stacks(frames: np.ndarray, first: np.ndarray, k: int = STACK) -> np.ndarray:
    """The ``k``-frame stack ending at each frame, newest last, padded at an episode's start
    with its reset frame (``FrameStackObservation``'s default ``padding_type="reset"``):
    entry ``j`` of the stack at frame ``t`` (position ``p`` in its episode) is frame
    ``t − min(k − 1 − j, p)``."""
    index = np.arange(len(frames))
    start = np.maximum.accumulate(np.where(first, index, 0))
    position = index - start
    back = np.arange(k - 1, -1, -1)
    rows = index[:, None] - np.minimum(back[None, :], position[:, None])
    return frames[rows]


def cyclic_transitions(
    recording: dict[str, Any], count: int, stacks: np.ndarray | None = None
) -> Iterator[tuple]:
    """``count`` transitions ``(obs, action, reward, next_obs, terminated, truncated)`` of the
    recording, its episodes in order and then again from the first (each observation a
    ``(1, k, 84, 84)`` view of ``stacks``, by default :func:`frame_stacks` of the recording)."""
    if stacks is None:
        stacks = frame_stacks(recording["frames"], recording["first"])
    arrived = np.flatnonzero(~recording["first"])  # frames reached by a transition
    action, reward = recording["action"], recording["reward"]
    terminated, truncated = recording["terminated"], recording["truncated"]
    for i in range(count):
        t = int(arrived[i % len(arrived)])
        yield (
            stacks[t - 1 : t],
            int(action[t]),
            float(reward[t]),
            stacks[t : t + 1],
            bool(terminated[t]),
            bool(truncated[t]),
        )


MEMORY_KINDS = {
    "rlsoft": "rlsoft FrameReplayBuffer (frames once)",
    "sb3": "SB3 ReplayBuffer optimize_memory_usage=True",
    "sb3-plain": "SB3 ReplayBuffer (obs + next_obs)",
}


def arithmetic_bytes(kind: str, capacity: int) -> int:
    """Observation bytes a buffer must hold: each frame once, each stack once, or twice."""
    frame = FRAME[0] * FRAME[1]
    return capacity * frame * {"rlsoft": 1, "sb3": STACK, "sb3-plain": 2 * STACK}[kind]


def measure_memory(kind: str, capacity: int, frames_file: str) -> dict[str, Any]:
    """In this (fresh) process: RSS growth of one buffer of ``capacity`` transitions filled
    with the recorded frames."""
    loaded = np.load(frames_file)
    recording = {key: loaded[key] for key in loaded.files}
    # The stacks exist before the baseline: only the buffer's own pages are counted.
    stacks = frame_stacks(recording["frames"], recording["first"])
    transitions = cyclic_transitions(recording, capacity, stacks)
    shape = (STACK, *FRAME)
    if kind == "rlsoft":
        from rlsoft.rl.frame_replay import FrameReplayBuffer

        before = rss_bytes()
        started = time.perf_counter()
        buf = FrameReplayBuffer(capacity, shape, frame_stack=STACK)
        for obs, action, reward, next_obs, terminated, truncated in transitions:
            buf.add(obs, [action], [reward], next_obs, [terminated], [truncated])
        nbytes = buf.nbytes
    else:
        import torch
        from gymnasium import spaces
        from stable_baselines3.common.buffers import ReplayBuffer

        torch.set_num_threads(1)
        optimize = kind == "sb3"
        before = rss_bytes()
        started = time.perf_counter()
        buf = ReplayBuffer(
            capacity,
            spaces.Box(0, 255, shape, np.uint8),
            spaces.Discrete(4),
            device="cpu",
            n_envs=1,
            optimize_memory_usage=optimize,
            handle_timeout_termination=not optimize,  # SB3 refuses both together
        )
        for obs, action, reward, next_obs, terminated, truncated in transitions:
            buf.add(
                obs,
                next_obs,
                np.array([action]),
                np.array([reward]),
                np.array([terminated or truncated]),
                [{"TimeLimit.truncated": truncated and not terminated}],
            )
        nbytes = buf.observations.nbytes + (0 if optimize else buf.next_observations.nbytes)
    after = rss_bytes()
    return {
        "kind": kind,
        "capacity": capacity,
        "rss": after - before,
        "nbytes": int(nbytes),
        "fill_seconds": round(time.perf_counter() - started, 2),
    }


def run_memory_child(kind: str, capacity: int, frames_file: str, limit_gb: float) -> dict[str, Any]:
    """:func:`measure_memory` in a fresh subprocess, unless it would not fit (a dict with
    ``skipped`` saying why)."""
    need = arithmetic_bytes(kind, capacity) * 1.05 + 0.5 * GB
    free = available_bytes()
    if need > limit_gb * GB:
        return {
            "kind": kind,
            "capacity": capacity,
            "skipped": f"needs ~{need / GB:.1f} GB > --memory-limit-gb {limit_gb:g}",
        }
    if need > free - 2 * GB:
        return {
            "kind": kind,
            "capacity": capacity,
            "skipped": f"needs ~{need / GB:.1f} GB, {free / GB:.1f} GB available",
        }
    command = [
        sys.executable,
        __file__,
        "--memory-child",
        kind,
        "--memory-capacity",
        str(capacity),
        "--frames-file",
        frames_file,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {kind} memory measurement failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_section(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Record the frames, then measure each buffer, one subprocess at a time."""
    plan = [("rlsoft", args.memory_capacity), ("sb3", args.memory_capacity)]
    if args.memory_large:
        plan.append(("rlsoft", args.memory_large))
    if args.plain_capacity:
        plan.append(("sb3-plain", args.plain_capacity))
    with tempfile.TemporaryDirectory() as tmp:
        frames_file = str(Path(tmp) / "frames.npz")
        started = time.perf_counter()
        recording = record_frames(args.frames, seed=args.seed)
        np.savez(frames_file, **recording)
        episodes = int(recording["first"].sum())
        print(
            f"memory: {len(recording['frames']):,} real frames of {MEMORY_ENV} ({episodes} "
            f"episodes, random actions) recorded in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        rows = []
        for kind, capacity in plan:
            row = run_memory_child(kind, capacity, frames_file, args.memory_limit_gb)
            rows.append(row)
            if "skipped" in row:
                print(f"memory: {MEMORY_KINDS[kind]} at {capacity:,}: skipped ({row['skipped']})")
            else:
                print(
                    f"memory: {MEMORY_KINDS[kind]} at {capacity:,}: {row['rss'] / GB:.3f} GB "
                    f"(filled in {row['fill_seconds']:.0f} s)",
                    flush=True,
                )
    return rows


# -------------------------------------------------------------------------------- report


def reported(what: str, ratio: float) -> dict[str, Any]:
    """A ratio the report prints without a goal or a verdict."""
    return {"what": what, "ratio": ratio, "goal": "reported", "verdict": "—"}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def arithmetic_ceiling(
    game: str, cases: dict[str, list[dict]], sps: dict[str, float], peaks: dict[str, float]
) -> dict[str, Any]:
    """Print the steps/s the network's arithmetic allows at this core's peak
    (:func:`multiply_adds_per_step` × 2 flops, over :func:`peak_flops`), alone and with the
    bare environment's time per step added (the env rlsoft steps), and the share of the
    float32 peak rlsoft's training reached; return the reported row: the goal's steps/s (2×
    SB3's) over the float32 ceiling with the env. Near 1, the goal needs every flop at the
    kernels' best; above 1, no float32 implementation of the same network, batch and number
    of updates reaches it on this core. The ceiling counts arithmetic only: memory traffic
    (the 3,136 → 512 layer's weights, gradient and Adam moments, about 6.4 MB each) is not in
    it."""
    flops = 2 * cases["rlsoft train"][0]["multiply_adds_per_step"]
    env = sps.get("bare native env", sps["bare env"])
    alone = {dtype: peak / flops for dtype, peak in peaks.items()}
    with_env = {dtype: 1 / (1 / ceiling + 1 / env) for dtype, ceiling in alone.items()}
    goal = SPEED_GOAL * sps["sb3 train"]
    ceilings = "; ".join(
        f"{dtype} ({peaks[dtype] / 1e9:.0f} GFLOP/s): {alone[dtype]:,.0f} steps/s, "
        f"{with_env[dtype]:,.0f} with the env's {1e3 / env:.2f} ms per step"
        for dtype in peaks
    )
    share = sps["rlsoft train"] * flops / peaks["float32"]
    print(
        f"{game}: {flops / 1e6:,.1f} MFLOP of network arithmetic per environment step; at "
        f"this core's peak, {ceilings}. The goal is {goal:,.0f} steps/s; rlsoft's "
        f"float32 training ran its arithmetic at {share:.0%} of the float32 peak."
    )
    return reported(
        f"{game}: {SPEED_GOAL:g}x SB3 / the float32 ceiling with the env",
        goal / with_env["float32"],
    )


def report(
    speed: dict[str, dict[str, list[dict]]],
    memory: list[dict],
    args: argparse.Namespace,
    peaks: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Print the tables and return the goal rows (also for ``--out``); ``peaks`` are
    :func:`peak_flops` by dtype name, for the arithmetic ceilings."""
    goals: list[dict[str, Any]] = []
    if speed:
        print(
            f"\nSpeed: {args.steps:,} training steps after {args.warmup:,} random ones; "
            f"{args.collect_steps:,} collection steps; one env, CPU, one torch thread; "
            f"median of {args.repeats}"
        )
        width = CASE_WIDTH
        print(f"{'game':8} {'case':{width}} {'steps/s':>9} {'steps/cpu-s':>12} {'updates':>8}")
        for game, cases in speed.items():
            for case, runs in cases.items():
                print(
                    f"{game:8} {CASE_NAMES[case]:{width}} "
                    f"{median([r['steps_per_s'] for r in runs]):9.0f} "
                    f"{median([r['steps_per_cpu_s'] for r in runs]):12.0f} "
                    f"{median([r['updates'] for r in runs]):8.0f}"
                )
        for game, cases in speed.items():
            sps = {case: median([r["steps_per_s"] for r in runs]) for case, runs in cases.items()}
            cpu = {
                case: median([r["steps_per_cpu_s"] for r in runs]) for case, runs in cases.items()
            }
            ratio = sps["rlsoft train"] / sps["sb3 train"]
            goals.append(
                {
                    "what": f"{game}: rlsoft / SB3 training steps/s",
                    "ratio": ratio,
                    "goal": f">= {SPEED_GOAL:g}x",
                    "verdict": verdict(ratio >= SPEED_GOAL),
                }
            )
            goals.append(
                reported(
                    f"{game}: the same per CPU second (less moved by load)",
                    cpu["rlsoft train"] / cpu["sb3 train"],
                )
            )
            # Only where the agent has a written-out backward (MinAtar's network); elsewhere
            # both rows would be autograd.
            if "rlsoft train autograd" in sps and cases["rlsoft train"][0]["written_out"]:
                goals.append(
                    reported(
                        f"{game}: rlsoft written-out backward / autograd steps/s",
                        sps["rlsoft train"] / sps["rlsoft train autograd"],
                    )
                )
            if "rlsoft train bfloat16" in sps:
                goals.append(
                    reported(
                        f"{game}: rlsoft bfloat16 / SB3 (float32) steps/s",
                        sps["rlsoft train bfloat16"] / sps["sb3 train"],
                    )
                )
            if "rlsoft train bfloat16 autocast" in sps:
                goals.append(
                    reported(
                        f"{game}: rlsoft bfloat16, weights cast once / under autocast",
                        sps["rlsoft train bfloat16"] / sps["rlsoft train bfloat16 autocast"],
                    )
                )
            if "rlsoft train gymnasium env" in sps:
                goals.append(
                    reported(
                        f"{game}: rlsoft on the Gymnasium env / SB3 training steps/s",
                        sps["rlsoft train gymnasium env"] / sps["sb3 train"],
                    )
                )
            if peaks and "float32" in peaks:
                goals.append(arithmetic_ceiling(game, cases, sps, peaks))
            # Each library against the env it steps: rlsoft's native env where it trains on it.
            for library, bare in (("rlsoft", "bare native env"), ("sb3", "bare env")):
                bare = bare if bare in sps else "bare env"
                goals.append(
                    reported(
                        f"{game}: {library} collection / {bare} steps/s",
                        sps[f"{library} collect"] / sps[bare],
                    )
                )
    if memory:
        print(f"\nMemory: {MEMORY_ENV} replay of 4×84×84 uint8 stacks, real frames, RSS growth")
        print(
            f"{'buffer':45} {'transitions':>12} {'RSS':>9} {'bytes/transition':>17} "
            f"{'arithmetic':>11}"
        )
        measured = {}
        for row in memory:
            kind, capacity = row["kind"], row["capacity"]
            arithmetic = arithmetic_bytes(kind, capacity) / capacity
            if "skipped" in row:
                print(f"{MEMORY_KINDS[kind]:45} {capacity:12,} skipped: {row['skipped']}")
                continue
            measured[(kind, capacity)] = row["rss"]
            print(
                f"{MEMORY_KINDS[kind]:45} {capacity:12,} {row['rss'] / GB:6.2f} GB "
                f"{row['rss'] / capacity:17,.0f} {arithmetic:11,.0f}"
            )
        per = {kind: rss / capacity for (kind, capacity), rss in measured.items()}
        for kind in ("sb3", "sb3-plain"):
            if kind in per:
                print(
                    f"extrapolated, not measured: {MEMORY_KINDS[kind]} at 1,000,000 "
                    f"transitions ≈ {per[kind] * 1e6 / GB:.1f} GB (bytes/transition × 1M)"
                )
        same = args.memory_capacity
        if ("rlsoft", same) in measured and ("sb3", same) in measured:
            ratio = measured[("rlsoft", same)] / measured[("sb3", same)]
            goals.append(
                {
                    "what": f"memory at {same:,}: rlsoft / SB3 optimize_memory_usage",
                    "ratio": ratio,
                    "goal": f"<= {MEMORY_GOAL:g}x",
                    "verdict": verdict(ratio <= MEMORY_GOAL),
                }
            )
        large = args.memory_large
        if large and ("rlsoft", large) in measured and "sb3" in per:
            ratio = measured[("rlsoft", large)] / (per["sb3"] * large)
            goals.append(
                {
                    "what": f"memory at {large:,}: rlsoft measured / SB3 extrapolated",
                    "ratio": ratio,
                    "goal": f"<= {MEMORY_GOAL:g}x",
                    "verdict": verdict(ratio <= MEMORY_GOAL),
                }
            )
    if goals:
        print(f"\n{'goal':58} {'ratio':>7} {'target':>9}  verdict")
        for goal in goals:
            print(f"{goal['what']:58} {goal['ratio']:6.2f}x {goal['goal']:>9}  {goal['verdict']}")
    return goals


# -------------------------------------------------------------------------------- main


def check_packages(games: list[str], speed: bool, memory: bool) -> None:
    """One sentence naming the first missing package the chosen sections need."""
    needed = []
    if speed:
        needed += [("stable_baselines3", "bench")] + [PACKAGES[game] for game in games]
    if memory:
        needed += [("stable_baselines3", "bench"), PACKAGES["atari"]]
    for module, extra in needed:
        if importlib.util.find_spec(module) is None:
            raise BenchError(
                f"{module} is not installed; install it with pip install 'rlsoft[{extra}]'"
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    speed = parser.add_argument_group("speed")
    speed.add_argument(
        "--games", default="minatar,atari", help="minatar, atari or minatar,atari (default: both)"
    )
    speed.add_argument("--warmup", type=int, default=1_000, help="random steps before timing")
    speed.add_argument("--steps", type=int, default=2_000, help="timed training steps")
    speed.add_argument("--collect-steps", type=int, default=4_000, help="timed collection steps")
    speed.add_argument("--repeats", type=int, default=1, help="runs of each case (median)")
    speed.add_argument("--speed-buffer", type=int, default=100_000, help="replay capacity")
    speed.add_argument(
        "--sb3-plain-replay",
        action="store_true",
        help="SB3's default replay (obs and next_obs) instead of optimize_memory_usage=True",
    )
    speed.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="[GAME:]KEY=VALUE",
        help="a config override, e.g. atari:agent.batch_size=64 (no GAME: every game)",
    )
    speed.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="ROWS",
        help="after the timed runs, train rlsoft once more under torch.profiler and print "
        "the ROWS operators that took the most time, per input shape (not timed; the "
        "profiler can inflate some operators' times many-fold: where to look, not how long)",
    )
    speed.add_argument(
        "--autograd",
        action="store_true",
        help="also time rlsoft training with autograd instead of its written-out backward",
    )
    speed.add_argument(
        "--bfloat16",
        action="store_true",
        help="also time rlsoft's Atari training with agent.precision: bfloat16 (mixed precision; "
        "reported beside the float32 goal, not instead of it)",
    )
    speed.add_argument("--minatar-config", help=f"instead of {GAMES['minatar']}")
    speed.add_argument("--atari-config", help=f"instead of {GAMES['atari']}")
    memory = parser.add_argument_group("memory")
    memory.add_argument("--memory-capacity", type=int, default=250_000, help="rlsoft and SB3")
    memory.add_argument("--memory-large", type=int, default=1_000_000, help="rlsoft only; 0: no")
    memory.add_argument(
        "--plain-capacity", type=int, default=100_000, help="SB3's default replay; 0: no"
    )
    memory.add_argument("--frames", type=int, default=5_000, help="real frames recorded")
    memory.add_argument(
        "--memory-limit-gb", type=float, default=10.0, help="skip a buffer estimated above this"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--out", help="also write the results as JSON to this file")
    parser.add_argument("--memory-child", choices=sorted(MEMORY_KINDS), help=argparse.SUPPRESS)
    parser.add_argument("--frames-file", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.memory_child:
        print(json.dumps(measure_memory(args.memory_child, args.memory_capacity, args.frames_file)))
        return 0
    games = [g.strip() for g in args.games.split(",") if g.strip()]
    if not games or any(g not in GAMES for g in games):
        parser.error(f"--games {args.games!r}: choose from {sorted(GAMES)}")
    positive = {
        "--steps": args.steps,
        "--collect-steps": args.collect_steps,
        "--repeats": args.repeats,
        "--frames": args.frames,
        "--memory-capacity": args.memory_capacity,
    }
    for flag, value in positive.items():
        if value < 1:
            parser.error(f"{flag} must be positive, got {value}")
    if args.bfloat16 and ("atari" not in games or args.skip_speed):
        parser.error("--bfloat16 times Atari training: use it with --games atari or minatar,atari")
    if args.profile < 0:
        parser.error(f"--profile must be 0 (off) or a number of rows, got {args.profile}")
    if args.memory_large < 0 or args.plain_capacity < 0:
        parser.error("--memory-large and --plain-capacity must be 0 (off) or positive")
    try:
        check_packages(games, not args.skip_speed, not args.skip_memory)
        sets = parse_sets(args.set, games)
        started = time.perf_counter()
        speed: dict[str, dict[str, list[dict]]] = {}
        if not args.skip_speed:
            for game in games:
                cases = speed_cases(game, args, sets[game])
                native = tuple(c for c in NATIVE_CASES if c in cases)
                chosen = CASES + native + (("rlsoft train autograd",) if args.autograd else ())
                if args.bfloat16 and game == "atari":  # MinAtar's network has one small conv
                    chosen += ("rlsoft train bfloat16", "rlsoft train bfloat16 autocast")
                speed[game] = {case: [] for case in chosen}
                for repeat in range(args.repeats):
                    # Alternate the order so that a drift in machine load favours no one.
                    for case in chosen if repeat % 2 == 0 else chosen[::-1]:
                        result = cases[case]()
                        speed[game][case].append(result)
                        print(
                            f"{game:8} {CASE_NAMES[case]:{CASE_WIDTH}} "
                            f"{result['steps_per_s']:8.0f} "
                            f"steps/s ({result['steps_per_cpu_s']:.0f}/cpu-s, "
                            f"{result['updates']} updates)",
                            flush=True,
                        )
                if args.profile:
                    profiled = cases["rlsoft profile"]()
                    print(
                        f"\n{game}: rlsoft's training under torch.profiler, "
                        f"{profiled['updates_profiled']} updates (the times are "
                        "totals over the timed window: divide by the updates for one "
                        "update's):\n"
                        f"{profiled['profile']}",
                        flush=True,
                    )
    except BenchError as exc:
        print(f"bench_pixels: error: {exc}", file=sys.stderr)
        return 2
    # The arithmetic ceilings: this core's peak, measured in the same run.
    dtypes = ("float32", "bfloat16") if args.bfloat16 else ("float32",)
    peaks = {dtype: peak_flops(dtype) for dtype in dtypes} if speed else {}
    memory = [] if args.skip_memory else memory_section(args)
    goals = report(speed, memory, args, peaks)
    print(f"\n({time.perf_counter() - started:.0f} s in all)")
    if args.out:
        results = {
            "args": vars(args),
            "speed": speed,
            "memory": memory,
            "peak_flops": peaks,
            "goals": goals,
        }
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
