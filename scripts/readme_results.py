"""Re-run the learning results README.md reports, and print them as its tables' rows.

Every learning figure in README's results tables comes from this script (the speed figures
come from ``scripts/bench_*.py``). Each *group* is one config trained on a list of seeds
with the config's own budget and evaluation; the script prints, per group, every seed's final
greedy evaluation, the first evaluation step that reached the group's threshold, and the best
evaluation, and writes the raw histories to ``<logdir>/results.json``::

    python scripts/readme_results.py                     # every group (about 20 min on 2 cores)
    python scripts/readme_results.py --only taxi cartpole  # groups whose name contains a word
    python scripts/readme_results.py --list

Runs go to a pool of worker processes (``--workers``, default 2), each a fresh
``rlsoft.run.experiment.run_experiment`` call — the code path of ``rlsoft train``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Group:
    name: str
    config: str
    seeds: tuple[int, ...]
    threshold: float | None = None
    """First evaluation at or above this value is reported (``None``: not reported)."""
    overrides: tuple[str, ...] = ()
    extra: str | None = None
    """The pip extra a group needs, e.g. ``box2d``; skipped with a note when missing."""
    module: str | None = None
    """A module that must import for the group to run (the extra's package)."""


SEEDS5 = tuple(range(5))
GROUPS: tuple[Group, ...] = (
    Group("taxi_boltzmann", "taxi_qlearning_boltzmann.yaml", SEEDS5, 7.0),
    Group("taxi_epsilon", "taxi_qlearning_epsilon.yaml", SEEDS5, 7.0),
    Group("taxi_softq", "taxi_softq.yaml", SEEDS5, 7.0),
    Group(
        "frozenlake_expected_sarsa",
        "frozenlake_expected_sarsa.yaml",
        SEEDS5,
        overrides=("train.eval_episodes=1000",),
    ),
    Group("cliffwalking_sarsa", "cliffwalking_sarsa.yaml", (0,)),
    Group("cliffwalking_qlearning", "cliffwalking_qlearning.yaml", (0,)),
    Group("blackjack_qlearning", "blackjack_qlearning.yaml", (0,)),
    Group("cartpole_dqn_epsilon", "cartpole_dqn_epsilon.yaml", SEEDS5, 475.0),
    Group("cartpole_dqn_boltzmann", "cartpole_dqn_boltzmann.yaml", SEEDS5, 475.0),
    Group("cartpole_double_dueling", "cartpole_double_dueling.yaml", (0, 1), 475.0),
    Group("cartpole_c51", "cartpole_c51.yaml", (0, 1), 475.0),
    Group("cartpole_munchausen", "cartpole_munchausen.yaml", (0, 1), 475.0),
    Group("cartpole_noisy", "cartpole_noisy.yaml", SEEDS5, 475.0),
    Group("acrobot_dqn", "acrobot_dqn.yaml", (0, 1), -100.0),
    Group("mountaincar_dqn", "mountaincar_dqn.yaml", (0, 1), -130.0),
    Group("lunarlander_dqn", "lunarlander_dqn.yaml", (0, 1), 200.0, extra="box2d", module="Box2D"),
    Group("digits_softmax_regression", "digits_softmax_regression.yaml", tuple(range(10))),
    Group("digits_mlp", "digits_mlp.yaml", SEEDS5),
    Group("cartpole_behavior_cloning", "cartpole_behavior_cloning.yaml", (0,)),
)


@dataclass
class Outcome:
    seed: int
    final: dict[str, float]
    history: list[tuple[int, float]]
    seconds: float
    error: str | None = None
    first: int | None = field(default=None)


def _train(config: str, seed: int, overrides: tuple[str, ...], logdir: str) -> Outcome:
    import agents  # noqa: F401  (registers the agents, as the CLI does)
    from rlsoft.run.config import load_config
    from rlsoft.run.experiment import run_experiment

    started = time.perf_counter()
    run_name = f"{Path(config).stem}__s{seed}"
    cfg = load_config(
        ROOT / "configs" / config,
        [f"logdir={logdir}", f"run_name={run_name}", "train.progress=off", *overrides],
        seed=seed,
    )
    result = run_experiment(cfg)
    history = [(int(step), float(value)) for step, value in result.eval_history]
    return Outcome(seed, dict(result.final_eval), history, time.perf_counter() - started)


def _available(group: Group) -> bool:
    if group.module is None:
        return True
    try:
        __import__(group.module)
    except ImportError:
        return False
    return True


def _headline(final: dict[str, float]) -> float:
    return final.get("eval/mean_return", final.get("eval/accuracy", math.nan))


def _row(group: Group, outcomes: list[Outcome]) -> str:
    finals = [_headline(o.final) for o in outcomes]
    parts = [f"`{group.config}`", f"seeds {group.seeds[0]}–{group.seeds[-1]}"]
    parts.append("final " + ", ".join(f"{v:.4g}" for v in finals))
    if len(finals) > 1:
        parts.append(f"mean {sum(finals) / len(finals):.4g}")
    if group.threshold is not None:
        firsts = [next((s for s, v in o.history if v >= group.threshold), None) for o in outcomes]
        reached = [f for f in firsts if f is not None]
        parts.append(
            f"≥ {group.threshold:g} on {len(reached)}/{len(outcomes)} seeds, first at "
            + ", ".join("never" if f is None else f"{f:,}" for f in firsts)
        )
    parts.append("best " + ", ".join(f"{max(v for _, v in o.history):.4g}" for o in outcomes))
    extras = sorted(
        {k for o in outcomes for k in o.final if k.startswith("eval/")}
        - {"eval/mean_return", "eval/accuracy"}
    )
    for key in extras:
        parts.append(f"{key} " + ", ".join(f"{o.final.get(key, math.nan):.4g}" for o in outcomes))
    parts.append(f"{sum(o.seconds for o in outcomes):.0f} s of runs")
    return f"| {group.name} | " + " | ".join(parts) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="words a group name contains")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--logdir", default="runs/readme_results")
    parser.add_argument("--list", action="store_true", help="list the groups and exit")
    args = parser.parse_args(argv)
    groups = [g for g in GROUPS if args.only is None or any(word in g.name for word in args.only)]
    if args.list:
        for g in groups:
            print(f"{g.name}: {g.config} seeds {list(g.seeds)}")
        return 0
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    logdir = Path(args.logdir).resolve()
    logdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, list[Outcome]] = {}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = {}
        for group in groups:
            if not _available(group):
                print(f"skipped {group.name}: needs pip install 'rlsoft[{group.extra}]'")
                continue
            for seed in group.seeds:
                key = (group.name, seed)
                futures[key] = pool.submit(
                    _train, group.config, seed, group.overrides, str(logdir / group.name)
                )
        for group in groups:
            outcomes = [
                futures[(group.name, s)].result() for s in group.seeds if (group.name, s) in futures
            ]
            if outcomes:
                results[group.name] = outcomes
                print(_row(group, outcomes), flush=True)
    payload = {name: [o.__dict__ for o in outcomes] for name, outcomes in results.items()}
    (logdir / "results.json").write_text(json.dumps(payload, indent=1))
    print(
        f"all groups: {time.perf_counter() - started:.0f} s wall; histories in "
        f"{logdir / 'results.json'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
