"""Atari environment throughput: rlsoft's Gymnasium path against ale-py's native vector env.

Steps per second (agent steps, 4 emulator frames each) with uniformly random actions, for
``num_envs`` 1, 4 and 8, of

* **gymnasium** — what rlsoft trains on: ``make_vector_env`` of ``ALE/<Game>-v5`` with the
  ``env.atari`` protocol (ALE with ``frameskip=1``, ``AtariPreprocessing``,
  ``FrameStackObservation``, rlsoft's learning-signal wrapper, the episode recorder of exact
  resume) in a ``SyncVectorEnv`` with same-step autoreset;
* **native** — ``ale_py.vector_env.AtariVectorEnv`` with the same protocol done in C++
  (frame skip 4 with max-pooling, 84×84 grayscale, 4-frame stacks, 30 no-op starts, sticky
  actions 0.25, unclipped rewards, no fire reset), on ``--threads`` threads;

and prints their ratio. Run it alone, e.g. ``nice -n 10 python scripts/bench_atari_vector.py``
(``--steps`` per measurement, after a warm-up of a tenth of them).
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


def gymnasium_env(game: str, num_envs: int) -> gym.vector.VectorEnv:
    return make_vector_env(EnvConfig(id=f"ALE/{game}-v5", num_envs=num_envs), wrap=EpisodeRecorder)


def native_env(game: str, num_envs: int, threads: int) -> gym.vector.VectorEnv:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--steps", type=int, default=4000, help="agent steps per measurement")
    parser.add_argument("--threads", type=int, default=1, help="native env threads")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()
    print(f"{args.game}: agent steps/s, random actions, {args.steps} steps each")
    print(f"{'num_envs':>8} {'gymnasium':>10} {'native':>10} {'native/gym':>10}")
    for n in args.num_envs:
        env = gymnasium_env(args.game, n)
        ours = steps_per_second(env, args.steps)
        env.close()
        env = native_env(args.game, n, args.threads)
        theirs = steps_per_second(env, args.steps)
        env.close()
        print(f"{n:>8} {ours:>10.0f} {theirs:>10.0f} {theirs / ours:>10.2f}")


if __name__ == "__main__":
    main()
