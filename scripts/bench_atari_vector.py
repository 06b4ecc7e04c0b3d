"""Atari environment throughput: rlsoft's two backends and ale-py's bare native vector env.

Steps per second (agent steps, 4 emulator frames each, all copies counted) with uniformly
random actions, for ``num_envs`` 1, 4 and 8, of

* **gymnasium** — ``env.atari.backend: gymnasium``: ``make_vector_env`` of ``ALE/<Game>-v5``
  with the ``env.atari`` protocol (ALE with ``frameskip=1``, ``AtariPreprocessing``,
  ``FrameStackObservation``, rlsoft's learning-signal wrapper, the episode recorder of exact
  resume) in a ``SyncVectorEnv`` (rlsoft's ``SingleVectorEnv`` for one copy) with same-step
  autoreset;
* **rlsoft native** — ``env.atari.backend: native`` (``auto``'s choice for training):
  :class:`rlsoft.rl.envs.atari_native.NativeAtariVectorEnv`, ale-py's C++ env with rlsoft's
  frame stack, learning signal, seeded resets and episode records around it;
* **bare native** — ``ale_py.vector_env.AtariVectorEnv`` alone with the same protocol done
  entirely in C++ (4-frame stacks, its own autoreset), the ceiling of the native backend;

all on ``--threads`` emulator threads for the native ones, and prints the ratios; then what
one Gymnasium ALE env (``ALE/<Game>-v5``, the emulator under the Gymnasium stack) takes for a
reset with a seed (ALE reloads the ROM), a reset without one and a step (4 frames). Run it
alone, e.g. ``nice -n 10 python scripts/bench_atari_vector.py`` (``--steps`` per
measurement, after a warm-up of a tenth of them).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from rlsoft.rl.envs.factory import make_vector_env
from rlsoft.rl.envs.state import EpisodeRecorder
from rlsoft.run.config import EnvConfig


def steps_per_second(env: gym.vector.VectorEnv, steps: int, seed: int = 0) -> float:
    """Agent steps per second over ``steps`` steps in total (all copies counted)."""
    rng = np.random.default_rng(seed)
    n = env.num_envs
    env.reset(seed=seed)
    n_actions = int(env.single_action_space.n)
    for _ in range(max(1, steps // (10 * n))):  # warm-up
        env.step(rng.integers(n_actions, size=n))
    iterations = max(1, steps // n)
    start = time.perf_counter()
    for _ in range(iterations):
        env.step(rng.integers(n_actions, size=n))
    return iterations * n / (time.perf_counter() - start)


def rlsoft_env(game: str, num_envs: int, backend: str, threads: int) -> gym.vector.VectorEnv:
    atari: dict[str, object] = {"backend": backend}
    if backend == "native":  # the Gymnasium stack has no emulator threads to set
        atari["threads"] = threads
    config = EnvConfig(id=f"ALE/{game}-v5", num_envs=num_envs, atari=atari)
    return make_vector_env(config, wrap=EpisodeRecorder)


def bare_native_env(game: str, num_envs: int, threads: int) -> gym.vector.VectorEnv:
    from ale_py.vector_env import AtariVectorEnv

    return AtariVectorEnv(
        game=game.lower(),
        num_envs=num_envs,
        num_threads=threads,
        repeat_action_probability=0.25,
        frameskip=4,
        stack_num=4,
        noop_max=30,
        reward_clipping=False,
        use_fire_reset=False,
        autoreset_mode=AutoresetMode.SAME_STEP,
    )


def reset_costs(game: str, repeats: int = 20, steps: int = 500) -> dict[str, float]:
    """Milliseconds per call of ``reset(seed=…)``, ``reset()`` and ``step`` on one
    ``ALE/<game>-v5`` env (medians over ``repeats`` resets; the mean of ``steps`` steps, each
    timed alone)."""
    import ale_py

    from rlsoft.rl.envs.atari import silence_ale_banner

    gym.register_envs(ale_py)
    silence_ale_banner()
    env = gym.make(f"ALE/{game}-v5")
    env.reset(seed=0)

    def median_ms(call: object) -> float:
        times = []
        for i in range(repeats):
            start = time.perf_counter()
            call(i)  # type: ignore[operator]
            times.append(time.perf_counter() - start)
        return float(np.median(times)) * 1e3

    seeded = median_ms(lambda i: env.reset(seed=i + 1))
    unseeded = median_ms(lambda i: env.reset())
    rng = np.random.default_rng(0)
    stepping = 0.0  # the steps alone: the resets of episodes that end are not counted
    for _ in range(steps):
        action = int(rng.integers(env.action_space.n))
        start = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(action)
        stepping += time.perf_counter() - start
        if terminated or truncated:
            env.reset()
    step = stepping / steps * 1e3
    env.close()
    return {"reset with a seed": seeded, "reset": unseeded, "step": step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--steps", type=int, default=4000, help="agent steps per measurement")
    parser.add_argument("--threads", type=int, default=1, help="native env threads")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()
    print(f"{args.game}: agent steps/s, random actions, {args.steps} steps each")
    print(
        f"{'num_envs':>8} {'gymnasium':>10} {'rlsoft native':>14} {'bare native':>12} "
        f"{'rlsoft native/gym':>18} {'rlsoft/bare':>12}"
    )
    for n in args.num_envs:
        rates = []
        for env in (
            rlsoft_env(args.game, n, "gymnasium", args.threads),
            rlsoft_env(args.game, n, "native", args.threads),
            bare_native_env(args.game, n, args.threads),
        ):
            rates.append(steps_per_second(env, args.steps))
            env.close()
        gym_rate, ours, bare = rates
        print(
            f"{n:>8} {gym_rate:>10.0f} {ours:>14.0f} {bare:>12.0f} "
            f"{ours / gym_rate:>18.2f} {ours / bare:>12.2f}"
        )
    costs = reset_costs(args.game)
    print(
        f"one ALE/{args.game}-v5 env, ms per call: "
        + ", ".join(f"{name} {ms:.2f}" for name, ms in costs.items())
    )


if __name__ == "__main__":
    main()
