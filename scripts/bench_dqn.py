"""Speed and sample efficiency of rlsoft's DQN against Stable-Baselines3, in one run.

Both libraries train DQN on CartPole-v1 with identical hyperparameters, one after the other in
this process (so they share the machine's conditions), for two settings:

* ``zoo``: the rl-baselines3-zoo CartPole-v1 set — net [256, 256], lr 2.3e-3, batch 64,
  buffer 100k, learning_starts 1000, γ 0.99, hard target update every 10 steps,
  train_freq 256 with 128 gradient steps, ε 1 → 0.04 over the first 16 % of the steps;
* ``defaults``: SB3's DQN defaults — net [64, 64], lr 1e-4, batch 32, buffer 1M,
  learning_starts 100, target update every 10,000 steps, train_freq 4 with 1 gradient step,
  ε 1 → 0.05 over the first 10 %.

Both use the Huber loss, Adam (ε = 1e-8), gradient-norm clipping at 10, one environment and
the CPU. Speed is environment steps per second of training, excluding the periodic greedy
evaluations (timed and subtracted); it is reported on wall-clock time and on the training
thread's CPU time (which moves less when other processes share the cores). Sample efficiency
is measured the same way for both: a greedy evaluation of 10 episodes every ``--eval-every``
steps (the same start states for both libraries) gives the first step whose mean reaches 475
and the final mean return.

SB3 runs with one torch thread by default (``--sb3-threads``): on two cores shared with
other processes its default of two threads was more than ten times slower here, and comparing
against that would flatter rlsoft. rlsoft's agent flushes subnormal floats to zero during
its training rounds only; SB3 runs exactly as shipped.

    python scripts/bench_dqn.py                    # 50k steps, seeds 0-4, both settings
    python scripts/bench_dqn.py --steps 10000 --seeds 0 --settings zoo   # a quick look
    python scripts/bench_dqn.py --gradients        # autograd vs agents/dqn/fastgrad.py only
    python scripts/bench_dqn.py --autograd         # + rlsoft with autograd instead of fastgrad

``--autograd`` adds a third library row, ``rlsoft-ag``: the same rlsoft runs with the
written-out backward pass (agents/dqn/fastgrad.py) switched off, so the end-to-end gain of
keeping it is measured in the same run.

Needs the benchmark extra: ``pip install 'rlsoft[bench]'`` (stable-baselines3).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as `python scripts/bench_dqn.py` from a checkout
    sys.path.insert(0, str(ROOT))

SOLVED = 475.0
ENV_ID = "CartPole-v1"
EVAL_SEED = 10_000

# Hyperparameters in SB3's names; rlsoft's equivalents are derived in rlsoft_config().
SETTINGS: dict[str, dict[str, Any]] = {
    "zoo": {
        "net_arch": [256, 256],
        "learning_rate": 2.3e-3,
        "batch_size": 64,
        "buffer_size": 100_000,
        "learning_starts": 1_000,
        "gamma": 0.99,
        "target_update_interval": 10,
        "train_freq": 256,
        "gradient_steps": 128,
        "exploration_fraction": 0.16,
        "exploration_initial_eps": 1.0,
        "exploration_final_eps": 0.04,
        "max_grad_norm": 10.0,
        "tau": 1.0,
    },
    "defaults": {
        "net_arch": [64, 64],
        "learning_rate": 1e-4,
        "batch_size": 32,
        "buffer_size": 1_000_000,
        "learning_starts": 100,
        "gamma": 0.99,
        "target_update_interval": 10_000,
        "train_freq": 4,
        "gradient_steps": 1,
        "exploration_fraction": 0.1,
        "exploration_initial_eps": 1.0,
        "exploration_final_eps": 0.05,
        "max_grad_norm": 10.0,
        "tau": 1.0,
    },
}


def evaluate(act: Callable[[np.ndarray], int], episodes: int) -> float:
    """Mean greedy return over ``episodes`` episodes with fixed start states."""
    env = gym.make(ENV_ID)
    total = 0.0
    for episode in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED + episode)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            done = terminated or truncated
    env.close()
    return total / episodes


class EvalClock:
    """Runs the periodic evaluations and keeps their time apart from training time."""

    def __init__(self, episodes: int) -> None:
        self.episodes = episodes
        self.history: list[tuple[int, float]] = []
        self.wall = 0.0
        self.cpu = 0.0

    def __call__(self, step: int, act: Callable[[np.ndarray], int]) -> float:
        wall, cpu = time.perf_counter(), time.thread_time()
        value = evaluate(act, self.episodes)
        self.wall += time.perf_counter() - wall
        self.cpu += time.thread_time() - cpu
        self.history.append((step, value))
        return value


def run_sb3(setting: dict[str, Any], steps: int, seed: int, args: argparse.Namespace) -> dict:
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    torch.set_flush_denormal(False)  # as shipped
    if args.sb3_threads != "default":
        torch.set_num_threads(int(args.sb3_threads))
    threads = torch.get_num_threads()
    clock = EvalClock(args.eval_episodes)
    params = {k: v for k, v in setting.items() if k != "net_arch"}
    model = DQN(
        "MlpPolicy",
        gym.make(ENV_ID),
        policy_kwargs={"net_arch": setting["net_arch"]},
        seed=seed,
        device="cpu",
        verbose=0,
        **params,
    )

    def act(obs: np.ndarray) -> int:
        return int(model.predict(obs, deterministic=True)[0])

    class PeriodicEvaluation(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % args.eval_every == 0 and self.num_timesteps < steps:
                clock(self.num_timesteps, act)
            return True

    wall, cpu = time.perf_counter(), time.thread_time()
    model.learn(total_timesteps=steps, callback=PeriodicEvaluation())
    wall, cpu = time.perf_counter() - wall - clock.wall, time.thread_time() - cpu - clock.cpu
    clock(model.num_timesteps, act)  # the final evaluation, outside the timed window
    return _result(model.num_timesteps, wall, cpu, clock, model._n_updates, threads)


def rlsoft_config(
    setting: dict[str, Any],
    steps: int,
    seed: int,
    args: argparse.Namespace,
    epsilon: float | None = None,
) -> Any:
    """rlsoft's config for ``setting``; ``epsilon`` replaces the ε schedule by a constant."""
    from rlsoft.run.config import validate_config

    schedule = {
        "type": "linear",
        "start": setting["exploration_initial_eps"],
        "end": setting["exploration_final_eps"],
        "duration": max(1, round(setting["exploration_fraction"] * steps)),
    }

    return validate_config(
        {
            "name": "bench_dqn",
            "seed": seed,
            "device": "cpu",
            "env": {"id": ENV_ID, "num_envs": 1},
            "agent": {
                "type": "dqn",
                "hidden_sizes": setting["net_arch"],
                "activation": "relu",
                "lr": setting["learning_rate"],
                "adam_eps": 1e-8,
                "batch_size": setting["batch_size"],
                "buffer_size": setting["buffer_size"],
                "learning_starts": setting["learning_starts"],
                "gamma": setting["gamma"],
                "target_update_interval": setting["target_update_interval"],
                "tau": setting["tau"],
                "train_freq": setting["train_freq"],
                "gradient_steps": setting["gradient_steps"],
                "loss": "huber",
                "max_grad_norm": setting["max_grad_norm"],
            },
            "exploration": {
                "policy": "epsilon_greedy",
                "epsilon": schedule if epsilon is None else epsilon,
            },
            "train": {
                "total_steps": steps,
                "eval_every": args.eval_every,
                "eval_episodes": args.eval_episodes,
                "log_every": 1000,
                "checkpoint_every": 0,
                "progress": "off",
                "torch_threads": 1,
            },
        }
    )


def run_rlsoft(
    setting: dict[str, Any],
    steps: int,
    seed: int,
    args: argparse.Namespace,
    autograd: bool = False,
    epsilon: float | None = None,
) -> dict:
    """A normal rlsoft run (TensorBoard logging and the final checkpoint included in the
    time), with the trainer's evaluations replaced by the shared, timed one; ``autograd``
    computes the gradients with autograd instead of agents/dqn/fastgrad.py; ``epsilon`` a
    constant ε instead of the setting's schedule."""
    import torch

    from rlsoft.run.experiment import build_driver, create_run_dir
    from rlsoft.run.trainer import Trainer

    config = rlsoft_config(setting, steps, seed, args, epsilon)
    with tempfile.TemporaryDirectory() as logdir:
        run_dir = create_run_dir(config, logdir)
        driver = build_driver(config)
        clock = EvalClock(args.eval_episodes)

        def timed_evaluate(step: int) -> dict[str, float]:
            return {"eval/mean_return": clock(step, driver.agent.act_greedy)}

        driver.evaluate = timed_evaluate
        if autograd:  # the agent falls back to autograd when it has no written-out backward
            driver.agent._manual_gradient = None
        wall, cpu = time.perf_counter(), time.thread_time()
        result = Trainer(driver, config, run_dir).run()
        wall, cpu = time.perf_counter() - wall - clock.wall, time.thread_time() - cpu - clock.cpu
        return _result(
            result.steps, wall, cpu, clock, driver.agent.updates, torch.get_num_threads()
        )


def _result(
    steps: int, wall: float, cpu: float, clock: EvalClock, updates: int, threads: int
) -> dict:
    first = next((step for step, value in clock.history if value >= SOLVED), None)
    return {
        "steps": steps,
        "train_seconds": round(wall, 3),
        "train_cpu_seconds": round(cpu, 3),
        "steps_per_s": steps / wall,
        "steps_per_cpu_s": steps / cpu,
        "gradient_steps": updates,
        "first_solved_step": first,
        "final_return": clock.history[-1][1],
        "eval_history": clock.history,
        "torch_threads": threads,
    }


# --------------------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _gradient_timers(hidden: list[int], batch: int) -> dict[str, Callable[[], None]]:
    """One minibatch's forward, Huber loss and backward of a ``q`` head, two ways."""
    import torch
    import torch.nn.functional as F

    from agents.dqn.fastgrad import ManualGradient
    from agents.dqn.networks import QNetwork
    from agents.dqn.optim import flatten_parameters

    generator = torch.Generator().manual_seed(0)
    net = QNetwork(4, 2, hidden)
    _, grads = flatten_parameters(net)
    obs = torch.randn(batch, 4, generator=generator)
    actions = torch.randint(0, 2, (batch,), generator=generator)
    y = torch.randn(batch, generator=generator)
    manual = ManualGradient(net, "huber")

    def autograd() -> None:
        grads.zero_()
        q = net(obs).gather(1, actions.view(-1, 1)).squeeze(1)
        F.smooth_l1_loss(q, y).backward()

    def written_out() -> None:
        manual(obs, actions, y)

    return {"autograd": autograd, "written out": written_out}


def time_gradients(repeats: int = 7, number: int = 200) -> None:
    """Forward, Huber loss and backward of the ``q`` head per minibatch: autograd against the
    hand-written pass of ``agents/dqn/fastgrad.py``, one torch thread, best of ``repeats``
    (the two are interleaved, so a change in machine load hits both alike)."""
    import timeit

    import torch

    torch.set_num_threads(1)
    for hidden, batch in (([64, 64], 32), ([256, 256], 64)):
        timers = _gradient_timers(hidden, batch)
        best = dict.fromkeys(timers, float("inf"))
        for _ in range(repeats):
            for name, fn in timers.items():
                best[name] = min(best[name], timeit.timeit(fn, number=number) / number)
        print(
            f"{hidden} batch {batch}: autograd {best['autograd'] * 1e6:.0f} µs, written out "
            f"{best['written out'] * 1e6:.0f} µs per forward + loss + backward"
        )


def bare_env_steps_per_s(steps: int, seed: int) -> float:
    """Steps/s of CartPole alone, random actions (``action_space.sample()``), resets
    included: the floor under every collection figure."""
    env = gym.make(ENV_ID)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    sample, step, reset = env.action_space.sample, env.step, env.reset
    started = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = step(sample())
        if terminated or truncated:
            reset()
    elapsed = time.perf_counter() - started
    env.close()
    return steps / elapsed


COLLECTION_ROWS = ("bare env", "rlsoft ε=1", "rlsoft ε sched", "rlsoft make_vec", "sb3")
"""The collection-only measurements: the bare environment; rlsoft's DQN with updates
disabled, acting with ε = 1 (a random action per step, no forward pass: what SB3 does
before ``learning_starts``), with the defaults setting's ε schedule (a forward pass on the
greedy steps, ~90 % of them), and with ε = 1 through ``gymnasium.make_vec``'s
``SyncVectorEnv`` instead of rlsoft's :class:`~rlsoft.rl.envs.single_vector.SingleVectorEnv`
(what the latter saves); SB3's DQN with updates disabled (random actions)."""


def _through_make_vec(run: Callable[[], dict]) -> dict:
    from rlsoft.rl.envs import factory

    factory.LEAN_SINGLE_ENV = False
    try:
        return run()
    finally:
        factory.LEAN_SINGLE_ENV = True


def time_collection(steps: int, repeats: int, args: argparse.Namespace) -> dict[str, float]:
    """Median steps/s of each of :data:`COLLECTION_ROWS` over ``repeats`` rounds, measured
    in turn within each round so that all rows share the machine's conditions. Updates are
    disabled by ``learning_starts`` beyond the budget; the runs are otherwise the defaults
    setting's, through the same trainer as the learning runs (logging included)."""
    setting = dict(SETTINGS["defaults"], learning_starts=steps + 1)
    quick = argparse.Namespace(**{**vars(args), "eval_every": steps + 1, "eval_episodes": 1})
    runs: dict[str, Callable[[int], float]] = {
        "bare env": lambda seed: bare_env_steps_per_s(steps, seed),
        "rlsoft ε=1": lambda seed: run_rlsoft(setting, steps, seed, quick, epsilon=1.0)[
            "steps_per_s"
        ],
        "rlsoft ε sched": lambda seed: run_rlsoft(setting, steps, seed, quick)["steps_per_s"],
        "rlsoft make_vec": lambda seed: _through_make_vec(
            lambda: run_rlsoft(setting, steps, seed, quick, epsilon=1.0)
        )["steps_per_s"],
        "sb3": lambda seed: run_sb3(setting, steps, seed, quick)["steps_per_s"],
    }
    if args.skip_sb3:
        del runs["sb3"]
    measured: dict[str, list[float]] = {name: [] for name in runs}
    for seed in range(repeats):
        for name, run in runs.items():
            measured[name].append(run(seed))
    return {name: _median(values) for name, values in measured.items()}


def print_collection(rates: dict[str, float], steps: int, goal: float = 0.35) -> None:
    bare = rates["bare env"]
    print(f"\nCollection only ({ENV_ID}, {steps:,} steps, updates disabled; median of rounds)")
    for name, rate in rates.items():
        ratio = rate / bare
        verdict = ""
        if name in ("rlsoft ε=1", "rlsoft ε sched"):
            verdict = f"  goal >= {goal:.2f}x bare: {'PASS' if ratio >= goal else 'FAIL'}"
        print(f"{name:15s} {rate:9.0f} steps/s  {ratio:5.2f}x bare env{verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50_000, help="environment steps per run")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds")
    parser.add_argument("--settings", default="zoo,defaults", help="zoo, defaults or both")
    parser.add_argument("--eval-every", type=int, default=5_000, help="steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument(
        "--sb3-threads",
        default="1",
        help="torch threads for SB3: a number, or 'default' for torch's own choice",
    )
    parser.add_argument("--skip-sb3", action="store_true", help="time rlsoft only")
    parser.add_argument("--out", help="also write the results as JSON to this file")
    parser.add_argument(
        "--autograd",
        action="store_true",
        help="also run rlsoft with autograd instead of its written-out backward (rlsoft-ag)",
    )
    parser.add_argument(
        "--gradients",
        action="store_true",
        help="only time one gradient computation, autograd vs agents/dqn/fastgrad.py",
    )
    parser.add_argument(
        "--collect-steps",
        type=int,
        default=50_000,
        help="steps of each collection-only run (0 skips the collection rows)",
    )
    parser.add_argument(
        "--collect-repeats", type=int, default=3, help="rounds of collection-only runs"
    )
    parser.add_argument("--collect-only", action="store_true", help="only the collection-only rows")
    args = parser.parse_args(argv)
    if args.gradients:
        time_gradients()
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = [s.strip() for s in args.settings.split(",")]
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        parser.error(f"unknown setting(s) {unknown}; choose from {sorted(SETTINGS)}")
    if not args.skip_sb3:
        try:
            import stable_baselines3  # noqa: F401
        except ImportError:
            print(
                "bench_dqn: stable-baselines3 is not installed; install the benchmark extra "
                "(pip install 'rlsoft[bench]') or pass --skip-sb3",
                file=sys.stderr,
            )
            return 2
    import agents  # noqa: F401 - registers rlsoft's agents

    collection: dict[str, float] = {}
    if args.collect_steps > 0:
        collection = time_collection(args.collect_steps, args.collect_repeats, args)
        print_collection(collection, args.collect_steps)
    if args.collect_only:
        return 0
    libraries = ["rlsoft"] if args.skip_sb3 else ["sb3", "rlsoft"]
    if args.autograd:
        libraries.append("rlsoft-ag")
    runners: dict[str, Callable[..., dict]] = {
        "sb3": run_sb3,
        "rlsoft": run_rlsoft,
        "rlsoft-ag": lambda *a: run_rlsoft(*a, autograd=True),
    }
    results: dict[str, dict[str, list[dict]]] = {
        s: {lib: [] for lib in libraries} for s in settings
    }
    started = time.perf_counter()
    for setting in settings:
        for i, seed in enumerate(seeds):
            # Alternate the order so that a drift in machine load does not favour one side.
            for library in libraries if i % 2 == 0 else libraries[::-1]:
                r = runners[library](SETTINGS[setting], args.steps, seed, args)
                results[setting][library].append({"seed": seed, **r})
                print(
                    f"{setting:9s} seed {seed} {library:9s} {r['steps_per_s']:7.0f} steps/s "
                    f"({r['steps_per_cpu_s']:6.0f}/cpu-s, {r['torch_threads']} thread(s), "
                    f"{r['gradient_steps']} updates)  first ≥ {SOLVED:.0f}: "
                    f"{r['first_solved_step']}  final {r['final_return']:.1f}",
                    flush=True,
                )
    print(
        f"\nDQN on {ENV_ID}, {args.steps:,} steps, seeds {seeds} "
        f"({time.perf_counter() - started:.0f} s in all)"
    )
    columns = ("setting", "library", "steps/s", "steps/cpu-s", "solved", "first ≥475", "final")
    print("{:9s} {:9s} {:>8s} {:>11s} {:>7s} {:>11s} {:>7s}".format(*columns))
    for setting in settings:
        for library in libraries:
            rs = results[setting][library]
            firsts = [r["first_solved_step"] for r in rs if r["first_solved_step"] is not None]
            print(
                f"{setting:9s} {library:9s} {_median([r['steps_per_s'] for r in rs]):8.0f} "
                f"{_median([r['steps_per_cpu_s'] for r in rs]):11.0f} "
                f"{len(firsts)}/{len(rs):<5d} {_median(firsts):11.0f} "
                f"{_median([r['final_return'] for r in rs]):7.1f}"
            )
    if not args.skip_sb3:
        print()
        for setting in settings:
            ours, theirs = results[setting]["rlsoft"], results[setting]["sb3"]
            wall = _median([r["steps_per_s"] for r in ours]) / _median(
                [r["steps_per_s"] for r in theirs]
            )
            cpu = _median([r["steps_per_cpu_s"] for r in ours]) / _median(
                [r["steps_per_cpu_s"] for r in theirs]
            )
            print(f"ratio rlsoft/SB3 [{setting}]: {wall:.2f}x steps/s ({cpu:.2f}x per CPU second)")
    if args.autograd:
        print()
        for setting in settings:
            ours = results[setting]["rlsoft"]
            autograd = results[setting]["rlsoft-ag"]
            wall = _median([r["steps_per_s"] for r in ours]) / _median(
                [r["steps_per_s"] for r in autograd]
            )
            cpu = _median([r["steps_per_cpu_s"] for r in ours]) / _median(
                [r["steps_per_cpu_s"] for r in autograd]
            )
            print(
                f"written-out backward / autograd [{setting}]: {wall:.2f}x steps/s "
                f"({cpu:.2f}x per CPU second; keep fastgrad.py if >= 1.15x)"
            )
    if args.out:
        Path(args.out).write_text(
            json.dumps({"args": vars(args), "results": results, "collection": collection}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
