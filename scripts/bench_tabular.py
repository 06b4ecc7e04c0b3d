"""Tabular speed on Taxi-v4: the bare env, a plain numpy Q-learning loop, and `rlsoft train`.

Everything runs in one process and one run, interleaved over repeats, and the table reports
medians and ratios, because these shared 2-core machines drift by up to 1.5x between runs.

Goals (issue 3): the rlsoft loop (agent + policy + logging) reaches at least 0.5x the bare
env's steps/s, and is no slower than the plain hand-written loop with the same exploration.

    python scripts/bench_tabular.py [--steps 100000] [--repeats 3] [--markdown]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

import agents  # noqa: F401 - registers the tabular agents
from rlsoft.run.config import validate_config
from rlsoft.run.experiment import run_experiment

ENV_ID = "Taxi-v4"
ALPHA, GAMMA, EPSILON, TAU = 0.5, 0.99, 0.1, 1.0


def bare_env(steps: int) -> float:
    """Steps/s of gym.make(ENV_ID) alone, with pre-drawn random actions."""
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(env.action_space.n, size=steps).tolist()
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def plain_qlearning(steps: int, exploration: str) -> float:
    """A hand-written numpy Q-learning loop, as a user would write it without a library."""
    env = gym.make(ENV_ID)
    q = np.zeros((env.observation_space.n, env.action_space.n))
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    n_actions = env.action_space.n
    start = time.perf_counter()
    for _ in range(steps):
        if exploration == "epsilon_greedy":
            if rng.random() < EPSILON:
                action = int(rng.integers(n_actions))
            else:
                action = int(np.argmax(q[obs]))
        else:
            z = q[obs] / TAU
            p = np.exp(z - z.max())
            action = int(rng.choice(n_actions, p=p / p.sum()))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        target = reward if terminated else reward + GAMMA * q[next_obs].max()
        q[obs, action] += ALPHA * (target - q[obs, action])
        if terminated or truncated:
            next_obs, _ = env.reset()
        obs = next_obs
    return steps / (time.perf_counter() - start)


def rlsoft_train(steps: int, exploration: str) -> float:
    """`rlsoft train` through the library: training loop, agent, policy, TensorBoard logging
    every 1,000 steps (with entropy samples), one checkpoint and a 1-episode evaluation."""
    with tempfile.TemporaryDirectory() as logdir:
        config = validate_config(
            {
                "env": {"id": ENV_ID},
                "agent": {"type": "q_learning", "learning_rate": ALPHA, "gamma": GAMMA},
                "exploration": {"policy": exploration, "epsilon": EPSILON, "temperature": TAU},
                "train": {
                    "total_steps": steps,
                    "eval_every": 0,
                    "eval_episodes": 1,
                    "log_every": 1000,
                    "progress": "off",
                },
                "logdir": logdir,
            }
        )
        result = run_experiment(config)
    return steps / result.seconds


def measure(cases: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):  # interleaved, so drift hits every case alike
        for name, case in cases.items():
            samples[name].append(case())
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    n = args.steps
    cases = {
        "bare env (random actions)": lambda: bare_env(n),
        "plain numpy loop, ε-greedy": lambda: plain_qlearning(n, "epsilon_greedy"),
        "plain numpy loop, Boltzmann (rng.choice)": lambda: plain_qlearning(n, "boltzmann"),
        "rlsoft train, ε-greedy": lambda: rlsoft_train(n, "epsilon_greedy"),
        "rlsoft train, Boltzmann": lambda: rlsoft_train(n, "boltzmann"),
    }
    sps = measure(cases, args.repeats)
    bare = sps["bare env (random actions)"]
    rows = []
    for name, value in sps.items():
        rows.append((name, value, value / bare))
    checks = [
        ("rlsoft ε-greedy ≥ 0.5× bare env", sps["rlsoft train, ε-greedy"] / bare, 0.5),
        ("rlsoft Boltzmann ≥ 0.5× bare env", sps["rlsoft train, Boltzmann"] / bare, 0.5),
        (
            "rlsoft ε-greedy ≥ 1.0× plain loop",
            sps["rlsoft train, ε-greedy"] / sps["plain numpy loop, ε-greedy"],
            1.0,
        ),
        (
            "rlsoft Boltzmann ≥ 1.0× plain loop",
            sps["rlsoft train, Boltzmann"] / sps["plain numpy loop, Boltzmann (rng.choice)"],
            1.0,
        ),
    ]
    print(f"Taxi-v4, {n:,} steps per case, median of {args.repeats} interleaved repeats")
    if args.markdown:
        print("\n| case | steps/s | × bare env |\n|---|---:|---:|")
        for name, value, ratio in rows:
            print(f"| {name} | {value:,.0f} | {ratio:.2f} |")
        print("\n| goal | ratio | result |\n|---|---:|---|")
        for name, ratio, goal in checks:
            print(f"| {name} | {ratio:.2f} | {'PASS' if ratio >= goal else 'MISS'} |")
        return
    width = max(len(name) for name, _, _ in rows)
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:>10,.0f} steps/s  {ratio:5.2f}× bare env")
    print()
    for name, ratio, goal in checks:
        print(f"{'PASS' if ratio >= goal else 'MISS'}  {name}: {ratio:.2f}")


if __name__ == "__main__":
    main()
