"""The ``rlsoft compare`` and ``rlsoft report`` subcommands.

Part of the command line (the composition root): ``compare`` tells the workers to import
``agents``, which registers every agent family, so no rlsoft library module has to.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import sys
from pathlib import Path

from rlsoft.errors import count

EXIT_RUNS_FAILED = 1
EXIT_INTERRUPTED = 130


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``compare`` and ``report``; each parser's ``handler`` default runs it."""
    p = sub.add_parser(
        "compare",
        help="run a grid of variants × seeds and compare them with honest statistics",
        description="Run every (variant, seed[, env]) of a comparison config as an ordinary run "
        "dir <logdir>/<env>/<variant>/seed_<k>, in parallel; finished runs are skipped and "
        "unfinished ones redone when the same command runs again; a run whose worker process "
        "dies (killed, out of memory) is retried from its newest checkpoint, twice at most. "
        "Then print per-variant mean, median and IQM with 95% stratified bootstrap CIs and the "
        "probability of improvement of every pair (marked † where a variant has fewer than 3 "
        "finished runs), and write summary.csv, summary.md, plots and TensorBoard "
        "dashboards (HParams, Custom Scalars) into the logdir. Configs that name an env "
        "entry point or wrappers (module:Name) import that code; the modules are listed "
        "before anything runs.",
    )
    p.add_argument("config", help="comparison YAML, e.g. configs/compare_taxi_exploration.yaml")
    p.add_argument(
        "--workers",
        type=int,
        help=f"parallel runs (default: the number of cores, {_cores()} here)",
    )
    p.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local worker processes (default) or Ray tasks (needs rlsoft[ray])",
    )
    p.add_argument(
        "--address",
        metavar="ADDR",
        help="an existing Ray cluster, e.g. ray://head:10001 (default: start a local one); the "
        "logdir must be on a filesystem every node shares",
    )
    p.add_argument("--logdir", help="where the run dirs go (default: the config's, runs/<name>)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a value in every run (repeatable), e.g. --set train.total_steps=20000",
    )
    p.add_argument(
        "--seeds", type=int, metavar="N", help="use seeds 0..N-1 instead of the config's"
    )
    p.set_defaults(handler=cmd_compare)

    r = sub.add_parser(
        "report",
        help="recompute a comparison's statistics and plots from the event files on disk",
        description="Read eval/mean_return (and exploration/entropy) from the TensorBoard event "
        "files under LOGDIR — a comparison's logdir, or runs made by hand with rlsoft train, "
        "grouped by their config name and split by the settings in which their configs differ "
        "(name[agent.gamma=0.9]) — and write summary.csv, summary.md and the plots there.",
    )
    r.add_argument("logdir", help="a directory of run dirs, e.g. runs/compare_taxi_exploration")
    r.add_argument(
        "--threshold",
        type=float,
        metavar="RETURN",
        help="report every run's time to reach this greedy evaluation return (runs that never "
        "do are censored at their budget); default: the comparison's analysis.return_threshold",
    )
    r.set_defaults(handler=cmd_report)


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def cmd_compare(args: argparse.Namespace) -> int:
    from rlsoft.cli import api
    from rlsoft.compare.grid import GridInterrupted
    from rlsoft.compare.report import print_tables
    from rlsoft.compare.runners import RAY_MISSING
    from rlsoft.errors import RlsoftError
    from rlsoft.run.progress import progress_enabled

    # Checked before the plan is printed, so a mistake is the only line on stderr.
    if args.workers is not None and args.workers < 1:
        raise RlsoftError(
            f"--workers must be at least 1, got {args.workers}; leave it out to use every core"
        )
    api.check_logdir(args.logdir, "--logdir")
    if args.address and args.backend != "ray":
        raise RlsoftError("--address names a Ray cluster; use it with --backend ray")
    if args.backend == "ray" and importlib.util.find_spec("ray") is None:
        raise RlsoftError(RAY_MISSING)
    comparison = api.plan_compare(
        args.config, overrides=args.overrides, seeds=args.seeds, logdir=args.logdir
    )
    # Entry points in the configs import code: say which before importing any of it.
    api.describe_imports(comparison)
    total = len(comparison.runs)
    already = sum(spec.is_done() for spec in comparison.runs)
    where = (
        f"Ray ({args.address})"
        if args.backend == "ray" and args.address
        else f"{args.workers or _cores()} {args.backend} worker(s)"
        + (" on a local Ray instance" if args.backend == "ray" else "")
    )
    cells = len(comparison.envs)
    grid = f"{count(len(comparison.variants), 'variant')} × {count(len(comparison.seeds), 'seed')}"
    # A variant with an env.id of its own is not a cell of every variant: no product then.
    if len(comparison.variants) * len(comparison.seeds) * cells == total:
        grid += f" × {cells} {'swept cells' if comparison.definition.get('sweep') else 'env(s)'}"

    def announce() -> None:  # after the checks: what would fail in the workers comes first
        print(
            f"rlsoft compare {comparison.name}: {count(total, 'run')} ({grid}), {already} "
            f"already finished; running on {where}; logdir {comparison.logdir}",
            file=sys.stderr,
            flush=True,
        )

    try:
        result = api.run_compare(
            comparison,
            on_start=announce,
            backend=args.backend,
            workers=args.workers,
            address=args.address,
            progress=progress_enabled("auto"),
        )
    except GridInterrupted as exc:
        print(
            f"rlsoft: interrupted: {exc.finished} of {exc.total} runs are finished; run the same "
            "command again to resume the unfinished ones",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if result.analysis is not None:
        print_tables(result.analysis)
        _print_written(result.written, comparison.logdir)
        _warn_few_runs(result.analysis)
    if result.failed:
        reported = "the others are reported; " if result.analysis is not None else ""
        print(
            f"rlsoft: {len(result.failed)} of {total} runs failed (errors above); {reported}"
            "run the same command again to retry the failed ones",
            file=sys.stderr,
        )
        return EXIT_RUNS_FAILED
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from rlsoft.compare.report import print_tables, report

    logdir = Path(args.logdir)
    analysis, written = report(logdir, threshold=args.threshold)
    for path, reason in analysis.skipped:
        print(f"rlsoft: skipped {path}: {reason}", file=sys.stderr)
    print_tables(analysis)
    _print_written(written, logdir)
    _warn_few_runs(analysis)
    return 0


def _warn_few_runs(analysis) -> None:
    warning = analysis.few_runs_warning()
    if warning:
        print(f"rlsoft: {warning}", file=sys.stderr)


def _print_written(written: list[Path], logdir: Path) -> None:
    names = ", ".join(p.name for p in written)
    print(f"wrote {names} in {logdir}")
    print(
        "TensorBoard (HParams, Custom Scalars, every curve): tensorboard --logdir "
        f"{shlex.quote(str(logdir))}"
    )
