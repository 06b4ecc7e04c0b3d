"""rlsoft's DQN against Stable-Baselines3's DQN on MinAtar Breakout, identical hyperparameters.

For each seed, both libraries train DQN on ``MinAtar/Breakout-v1`` (Young & Tian 2019) with the
hyperparameters of ``configs/minatar_breakout_dqn.yaml`` (the MinAtar paper's DQN with Adam),
and both are evaluated greedily by the same code: every ``--eval-every`` environment steps,
``--eval-episodes`` episodes started by ``reset(seed=EVAL_SEED + i)`` on the same environment
(rlsoft's ``make_env`` of the config: ``gymnasium.make('MinAtar/Breakout-v1')`` plus rlsoft's
MinAtar seeding adapter, :mod:`rlsoft.rl.envs.minatar`), greedy = argmax of Q (no ε).

What SB3 gets, mapped field by field from the rlsoft config (:func:`sb3_kwargs`):

* the network: the MinAtar network as an SB3 features extractor (:func:`minatar_extractor`) —
  the bool 10×10×C observation (cast to float by SB3, as rlsoft does) is permuted to
  channel-first, one 3×3 convolution with 16 filters (stride 1, no padding), ReLU, flatten,
  128 units, ReLU — and ``net_arch=[]``, so the Q head is one linear layer on the 128 units,
  as rlsoft's ``minatar_cnn``; PyTorch's default initialisation in both;
* Adam with the config's ``lr`` and ``adam_eps``; batch, replay size, ``learning_starts``,
  ``train_freq``, ``gradient_steps``, the hard target copy every ``target_update_interval``
  environment steps (τ = 1), γ, n-step 1, the Huber loss (both: ``smooth_l1_loss``, β = 1);
* gradient clipping: none in both. The config has ``max_grad_norm: null``; SB3 always calls
  ``clip_grad_norm_``, so it gets ``max_grad_norm=inf``, whose clip factor is exactly 1;
* ε: the config's schedule exactly — 1 for the first 5,000 steps (``begin``), then linear to
  0.1 over 100,000 steps. SB3's own schedule decays from step 0 as a fraction of the budget,
  so its ``exploration_schedule`` is replaced by rlsoft's schedule object evaluated at the
  model's step count (:class:`RlsoftEpsilon`); before ``learning_starts`` both act uniformly
  at random (SB3 by its rule, rlsoft because ε = 1 there);
* one environment, the CPU, one torch thread, the same seed.

Output, under ``--out`` (keep it out of git): ``MinAtar_Breakout-v1/{rlsoft,sb3}/seed_<k>/`` run
dirs in the layout of ``rlsoft compare`` (``config.yaml``, ``summary.json`` and TensorBoard
``eval/mean_return`` scalars; SB3's ``config.yaml`` is the same rlsoft config, the
hyperparameters it was given), and ``results/<library>_seed<k>.json`` with each run's
evaluation curve and speed. When all runs are done the script calls ``rlsoft report`` on the
directory (:func:`rlsoft.compare.report.report`: IQM with 95% stratified-bootstrap CIs,
``summary.md``, learning-curve PNGs) and prints the table of final greedy returns and
training speed (environment steps per wall-clock second, evaluations excluded, median over
seeds). Runs whose results file exists are not run again, so an interrupted call continues.
Runs go ``--jobs`` at a time as child processes, each under ``nice -n 10`` with one thread.

    python scripts/compare_sb3_minatar.py --steps 120000 --out /tmp/sb3minatar_runs \
        --png docs/compare_sb3_minatar_breakout.png
    python scripts/compare_sb3_minatar.py --steps 2000 --seeds 0 --eval-every 1000 \
        --out /tmp/sb3minatar_probe           # a quick look at both libraries' speed
    rlsoft report /tmp/sb3minatar_runs        # the report again, from the run dirs

Needs the benchmark and MinAtar extras: ``pip install 'rlsoft[bench,minatar]'``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as `python scripts/compare_sb3_minatar.py`
    sys.path.insert(0, str(ROOT))

from scripts.benchlib import sb3_dqn_hyperparameters  # noqa: E402

CONFIG = ROOT / "configs" / "minatar_breakout_dqn.yaml"
EVAL_SEED = 10_000
LIBRARIES = ("rlsoft", "sb3")
RANDOM_RETURN = 0.5  # MinAtar's README: the random policy's return on Breakout


def load_rlsoft_config(steps: int, seed: int, args: argparse.Namespace, library: str) -> Any:
    """The config file with the budget, seed, evaluation cadence and bookkeeping set; the
    learning hyperparameters are the file's."""
    import agents  # noqa: F401 - registers rlsoft's agents (the config's agent.type: dqn)
    from rlsoft.run.config import load_config

    overrides = [
        f"name={library}",
        f"run_name=seed_{seed}",
        "device=cpu",
        f"train.total_steps={steps}",
        f"train.eval_every={args.eval_every}",
        f"train.eval_episodes={args.eval_episodes}",
        "train.checkpoint_every=0",
        "train.progress=off",
        "train.torch_threads=1",
    ]
    return load_config(CONFIG, overrides, seed=seed)


def sb3_kwargs(config: Any) -> dict[str, Any]:
    """SB3 ``DQN(...)`` keyword arguments equal to the rlsoft config's hyperparameters.

    Everything the MinAtar config uses is mapped; an option SB3's DQN does not have (double
    Q, dueling, distributional heads, prioritised replay, NoisyNet, ...) left at a non-default
    value is refused, so the two libraries never silently differ. The network and the ε
    schedule are set separately (:func:`minatar_extractor`, :class:`RlsoftEpsilon`).
    """
    import torch

    agent = config.agent_config()
    # what the comparison's network and learner are: anything else has no SB3 DQN equivalent
    expected = {
        "network": ("auto", "minatar_cnn"),
        "activation": ("relu",),
        "head": ("q",),
        "dueling": (False,),
        "noisy": (False,),
        "target": ("standard",),
        "double": (False,),
        "ensemble": (None,),
        "frame_stack": (1,),
        "loss": ("huber",),
    }
    for field, allowed in expected.items():
        value = getattr(agent, field)
        if value not in allowed:
            raise ValueError(f"agent.{field}={value!r} has no SB3 DQN equivalent here")
    if not isinstance(agent.lr, (int, float)) or not agent.hidden_sizes:
        raise ValueError("this comparison needs a constant agent.lr and agent.hidden_sizes")
    if config.env.num_envs != 1:
        raise ValueError("this comparison runs one environment (env.num_envs: 1)")
    return {
        **sb3_dqn_hyperparameters(agent),
        "policy_kwargs": {
            "net_arch": [],
            "features_extractor_kwargs": {"features": agent.hidden_sizes[-1]},
            "features_extractor_class": minatar_extractor(),
            "optimizer_class": torch.optim.Adam,
            "optimizer_kwargs": {"eps": agent.adam_eps},
            "normalize_images": False,
        },
    }


def minatar_extractor() -> type:
    """The MinAtar network's torso (Young & Tian 2019, their ``examples/dqn.py``) as an SB3
    features extractor: ``(N, 10, 10, C)`` channel-last float input → permute to
    ``(N, C, 10, 10)`` → Conv2d(C, 16, 3, stride 1) → ReLU → flatten (16·8·8 = 1024) →
    Linear(1024, features) → ReLU."""
    import torch
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class MinAtarExtractor(BaseFeaturesExtractor):
        def __init__(self, observation_space: Any, features: int = 128) -> None:
            super().__init__(observation_space, features)
            height, width, channels = observation_space.shape
            self.conv = torch.nn.Conv2d(channels, 16, kernel_size=3, stride=1)
            self.linear = torch.nn.Linear(16 * (height - 2) * (width - 2), features)

        def forward(self, observations: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.conv(observations.permute(0, 3, 1, 2)))
            return torch.relu(self.linear(x.flatten(1)))

    return MinAtarExtractor


class RlsoftEpsilon:
    """SB3's ``exploration_schedule`` replaced by rlsoft's ε schedule of the config, read at
    the model's environment step (SB3 calls it with its remaining progress, which is ignored).
    SB3 sets ε after each step for the next action, as rlsoft reads ε at the step it acts."""

    def __init__(self, config: Any, model: Any) -> None:
        from rlsoft.run.config import build_schedule

        self.schedule = build_schedule(config.exploration.epsilon)
        self.model = model

    def __call__(self, _progress_remaining: float) -> float:
        return float(self.schedule(self.model.num_timesteps))


def make_sb3_model(config: Any, seed: int) -> Any:
    """An SB3 DQN on rlsoft's environment for the config, with the mapped hyperparameters."""
    from stable_baselines3 import DQN

    from rlsoft.rl.envs.factory import make_env

    kwargs = sb3_kwargs(config)
    model = DQN("MlpPolicy", make_env(config.env), seed=seed, device="cpu", verbose=0, **kwargs)
    model.exploration_schedule = RlsoftEpsilon(config, model)
    return model


class Evaluations:
    """The shared greedy evaluation, timed apart from training and logged for ``rlsoft
    report``: ``episodes`` episodes, episode ``i`` from ``reset(seed=EVAL_SEED + i)``."""

    def __init__(self, config: Any, episodes: int) -> None:
        from rlsoft.rl.envs.factory import make_env

        self.env = make_env(config.env)
        self.episodes = episodes
        self.curve: list[tuple[int, float]] = []
        self.seconds = 0.0

    def __call__(self, step: int, act: Callable[[np.ndarray], int]) -> float:
        started = time.perf_counter()
        total = 0.0
        for episode in range(self.episodes):
            obs, _ = self.env.reset(seed=EVAL_SEED + episode)
            done = False
            while not done:
                obs, reward, terminated, truncated, _ = self.env.step(act(obs))
                total += float(reward)
                done = terminated or truncated
        value = total / self.episodes
        self.curve.append((step, value))
        self.seconds += time.perf_counter() - started
        return value


def _write_sb3_run_dir(run_dir: Path, config: Any, curve: list[tuple[int, float]]) -> None:
    import yaml

    from rlsoft.run.logger import RunLogger

    run_dir.mkdir(parents=True, exist_ok=False)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    logger = RunLogger(run_dir)
    for step, value in curve:
        logger.scalars({"eval/mean_return": value}, step)
    logger.close()


def run_sb3(config: Any, seed: int, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    torch.set_num_threads(1)
    steps = config.train.total_steps
    evaluations = Evaluations(config, args.eval_episodes)
    model = make_sb3_model(config, seed)

    def act(obs: np.ndarray) -> int:
        return int(model.predict(obs, deterministic=True)[0])

    class PeriodicEvaluation(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % args.eval_every == 0 and self.num_timesteps < steps:
                evaluations(self.num_timesteps, act)
            return True

    started = time.perf_counter()
    model.learn(total_timesteps=steps, callback=PeriodicEvaluation())
    seconds = time.perf_counter() - started - evaluations.seconds
    evaluations(model.num_timesteps, act)  # the final evaluation, outside the timed window
    run_dir = out / "MinAtar_Breakout-v1" / "sb3" / f"seed_{seed}"
    _write_sb3_run_dir(run_dir, config, evaluations.curve)
    result = _result(model.num_timesteps, seconds, evaluations, torch.get_num_threads())
    (run_dir / "summary.json").write_text(json.dumps(result, indent=2))
    return result


def run_rlsoft(config: Any, seed: int, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """A normal rlsoft run whose trainer evaluations are the shared ones."""
    import torch

    from rlsoft.run.experiment import build_driver, create_run_dir
    from rlsoft.run.trainer import Trainer

    run_dir = create_run_dir(config, str(out / "MinAtar_Breakout-v1" / "rlsoft"))
    driver = build_driver(config)
    evaluations = Evaluations(config, args.eval_episodes)

    def evaluate(step: int) -> dict[str, float]:
        return {"eval/mean_return": evaluations(step, driver.agent.act_greedy)}

    driver.evaluate = evaluate
    started = time.perf_counter()
    trained = Trainer(driver, config, run_dir).run()
    seconds = time.perf_counter() - started - evaluations.seconds
    return _result(trained.steps, seconds, evaluations, torch.get_num_threads())


def _result(steps: int, seconds: float, evaluations: Evaluations, threads: int) -> dict:
    return {
        "steps": steps,
        "train_seconds": round(seconds, 3),
        "steps_per_s": steps / seconds,
        "eval_seconds": round(evaluations.seconds, 3),
        "curve": evaluations.curve,
        "final_return": evaluations.curve[-1][1],
        "torch_threads": threads,
    }


def run_one(library: str, seed: int, args: argparse.Namespace) -> None:
    """Train one run (in this process) and write its results file."""
    out = Path(args.out)
    config = load_rlsoft_config(args.steps, seed, args, library)
    runner = run_sb3 if library == "sb3" else run_rlsoft
    result = runner(config, seed, out, args)
    path = out / "results" / f"{library}_seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"library": library, "seed": seed, **result}, indent=2))
    print(
        f"{library:6s} seed {seed}: {result['steps_per_s']:6.0f} steps/s, final greedy return "
        f"{result['final_return']:.2f}",
        flush=True,
    )


def _child_command(library: str, seed: int, args: argparse.Namespace) -> list[str]:
    return [
        "nice", "-n", str(args.nice), sys.executable, str(Path(__file__).resolve()),
        "--single", f"{library}:{seed}", "--steps", str(args.steps),
        "--eval-every", str(args.eval_every), "--eval-episodes", str(args.eval_episodes),
        "--out", str(args.out),
    ]  # fmt: skip


def run_all(pending: list[tuple[str, int]], args: argparse.Namespace) -> None:
    """The pending runs, ``args.jobs`` child processes at a time."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    running: list[tuple[subprocess.Popen, str]] = []
    queue = list(pending)
    failed = []
    while queue or running:
        while queue and len(running) < args.jobs:
            library, seed = queue.pop(0)
            running.append((subprocess.Popen(_child_command(library, seed, args), env=env),
                            f"{library}:{seed}"))  # fmt: skip
        time.sleep(1.0)
        for proc, name in list(running):
            if proc.poll() is not None:
                running.remove((proc, name))
                if proc.returncode != 0:
                    failed.append(name)
    if failed:
        raise SystemExit(f"compare_sb3_minatar: runs failed: {', '.join(failed)}")


LAST_EVALUATIONS = 3


def last_evaluations_mean(curve: list[list[float]]) -> float:
    """Mean greedy return of a run's last :data:`LAST_EVALUATIONS` evaluations
    (``curve``: ``[step, mean return]`` pairs in step order)."""
    return float(np.mean([value for _, value in curve[-LAST_EVALUATIONS:]]))


def summarize(args: argparse.Namespace, seeds: list[int], wall: float, ran: int) -> None:
    """``rlsoft report`` on the run dirs, then the table of the README."""
    import yaml

    from rlsoft.compare.report import print_tables, report
    from rlsoft.numerics import stats

    out = Path(args.out)
    # what `rlsoft report` reads from a comparison's logdir: its title, the variants' order
    # and the return threshold of the time-to-threshold table (10× the random policy's)
    meta = {
        "name": "rlsoft vs SB3, same DQN hyperparameters",
        "variants": list(LIBRARIES),
        "definition": {"analysis": {"return_threshold": 10 * RANDOM_RETURN}},
    }
    (out / "compare.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    analysis, plots = report(out)
    results = {
        library: [json.loads((out / "results" / f"{library}_seed{s}.json").read_text())
                  for s in seeds]
        for library in LIBRARIES
    }  # fmt: skip
    print_tables(analysis)  # the tables `rlsoft report` prints
    block = analysis.blocks()[0]
    print(
        f"\nDQN on MinAtar/Breakout-v1: {args.steps:,} environment steps per run, seeds "
        f"{seeds}, greedy evaluation of {args.eval_episodes} episodes every "
        f"{args.eval_every:,} steps; "
        + (f"{wall / 60:.0f} min of wall time for {ran} runs" if ran else "no run was pending")
    )
    ci = f"{analysis.confidence:.0%} CI"
    print(
        f"| library | runs | final greedy return, IQM [{ci}] | mean [{ci}] "
        "| training steps/s (median) |"
    )
    print("|---|---|---|---|---|")
    for library in LIBRARIES:
        result = analysis.result(block, library)
        metric = result.metrics["final_return"]
        speed = statistics.median(r["steps_per_s"] for r in results[library])
        print(
            f"| {library} | {result.runs} | {metric['iqm'].format(2)} | "
            f"{metric['mean'].format(2)} | {speed:.0f} |"
        )
    print(f"| random policy | | {RANDOM_RETURN} | | |")
    for library in LIBRARIES:
        finals = ", ".join(f"{r['final_return']:.2f}" for r in results[library])
        print(f"{library} final greedy returns by seed: {finals}")
    print(
        f"\nThe last {LAST_EVALUATIONS} evaluations of each run averaged (one evaluation of "
        f"{args.eval_episodes} episodes swings between neighbouring evaluations), IQM and "
        f"mean with their stratified bootstrap {ci}s:"
    )
    for library in LIBRARIES:
        last = np.array([last_evaluations_mean(r["curve"]) for r in results[library]])
        intervals = stats.aggregate_intervals([last], confidence=analysis.confidence)
        print(
            f"{library}: IQM {intervals['iqm'].format(2)}, mean {intervals['mean'].format(2)}; "
            f"by seed {', '.join(f'{x:.2f}' for x in last)}"
        )
    for path in plots:
        print(f"written: {path}")
    if args.png:
        curves = out / "learning_curves_MinAtar_Breakout-v1.png"
        Path(args.png).write_bytes(curves.read_bytes())
        print(f"learning curves copied to {args.png}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=120_000, help="environment steps per run")
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8,9", help="comma-separated seeds")
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--nice", type=int, default=10, help="niceness of the runs")
    parser.add_argument("--out", required=True, help="directory of the run dirs (not in git)")
    parser.add_argument("--png", help="also copy the learning curves' PNG to this file")
    parser.add_argument("--single", help=argparse.SUPPRESS)  # LIBRARY:SEED, in this process
    args = parser.parse_args(argv)
    if args.steps < 1 or args.eval_every < 1 or args.eval_episodes < 1 or args.jobs < 1:
        parser.error("--steps, --eval-every, --eval-episodes and --jobs must be at least 1")
    try:
        import minatar  # noqa: F401
        import stable_baselines3  # noqa: F401
    except ImportError as exc:
        print(
            f"compare_sb3_minatar: error: {exc.name} is not installed; install the extras "
            "with pip install 'rlsoft[bench,minatar]'",
            file=sys.stderr,
        )
        return 2
    if args.single:
        library, seed = args.single.split(":")
        run_one(library, int(seed), args)
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    pending = [
        (library, seed)
        for seed in seeds
        for library in LIBRARIES
        if not (out / "results" / f"{library}_seed{seed}.json").is_file()
    ]
    started = time.perf_counter()
    run_all(pending, args)
    summarize(args, seeds, time.perf_counter() - started, len(pending))
    return 0


if __name__ == "__main__":
    sys.exit(main())
