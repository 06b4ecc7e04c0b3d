"""Benchmark rlsoft's softmax family against scipy.special, plain numpy and torch.

Run from the repository root::

    .venv/bin/python scripts/bench_functional.py              # full run (~1-2 min)
    .venv/bin/python scripts/bench_functional.py --quick      # short run (~15-25 s)
    .venv/bin/python scripts/bench_functional.py --markdown   # Markdown table for the README

What is timed, on shapes (1, 6) (one Q-row per environment step), (256, 6), (4096, 1000) and
(64, 50000), in float32 and float64:

* numpy: ``rlsoft.softmax / logsumexp / log_softmax`` against ``scipy.special`` and a plain
  numpy max-shift implementation;
* torch: the same rlsoft functions on tensors against ``torch.softmax / logsumexp /
  log_softmax``, and ``rlsoft.cross_entropy`` forward + backward against
  ``torch.nn.functional.cross_entropy`` (class-index targets, mean reduction);
* ``rlsoft.explore.policies.Boltzmann(1.0).select(q, rng)`` on one (6,) row against a plain
  max-shift softmax followed by ``rng.choice(6, p=p)``;
* cross-entropy forward + backward on the shapes rlsoft's own agents train on
  (``TRAINING_CE``): the C51 head's (batch, 51) rows against projected probability targets,
  the digits MLP's (64, 10) minibatches with label smoothing 0.1, full-batch softmax
  regression on (1078, 10) float64 and behaviour cloning's (128, 2). These decided where the
  custom autograd function in ``rlsoft/numerics/_torch_cross_entropy.py`` is used (index
  targets with 10 classes or more, where it is faster) and where ``F.cross_entropy`` is
  (probability targets, fewer classes). Goal: within 1.3× of ``F.cross_entropy`` on each;
  where rlsoft calls torch's kernel, what remains is the API's own checks (a class index of
  −100, which torch would silently skip, and a non-finite loss from masked classes), a few µs.

Method: each callable is warmed up and calibrated so that one timing covers a few
milliseconds (``timeit``, garbage collector off; calls of 10 ms and more are timed one by
one). A round times every contender of one case back to back, in a rotating order, each as the
best of 3 timings (a timing that lost its time slice to another process only reads slower);
the rounds are repeated (15, or 5 with best of 2 for ``--quick``). A time is the median over
rounds (µs per call) and a ratio is the median over rounds of the per-round ratio
``rlsoft / peer`` (< 1 means rlsoft is faster): pairing within a round keeps ratios fair on a
shared, noisy machine where absolute times drift by up to 1.5× between runs. torch uses the
same thread count on both sides (``--threads``, default 1: on a small shared machine a second
thread mostly adds noise); numpy and scipy run these ufuncs on one thread.

Goal lines give the interquartile range of the per-round ratios next to the median: a range
that straddles the threshold is a tie within the noise (for scale, rlsoft's torch softmax,
which just calls ``torch.softmax``, reads 0.97-1.05 against it).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy
import scipy.special
import torch
import torch.nn.functional as torch_f

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rlsoft
from rlsoft.explore.policies import Boltzmann

SHAPES: list[tuple[int, ...]] = [(1, 6), (256, 6), (4096, 1000), (64, 50000)]
LARGE_SHAPES = [(4096, 1000), (64, 50000)]
CE_GOAL_SHAPES = [(4096, 1000), (64, 50000), (256, 6)]
DTYPES = ["float32", "float64"]
SMALL_BUDGET_US = 3.0  # goal: per-step softmax / logsumexp / Boltzmann select on (1, 6)
CE_RATIO_GOAL = 1.5  # goal: torch cross-entropy fwd+bwd within 1.5× of F.cross_entropy
TRAINING_CE_GOAL = 1.3  # goal on the shapes rlsoft trains on (TRAINING_CE)
SCIPY_RATIO_GOAL = 1.0  # goal: large numpy shapes no slower than scipy.special


# --------------------------------------------------------------------------------------------
# plain peers
# --------------------------------------------------------------------------------------------


def np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_logsumexp(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))[..., 0]


def np_log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


# --------------------------------------------------------------------------------------------
# measurement
# --------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One operation on one input: rlsoft and its peers, timed in interleaved rounds."""

    op: str
    backend: str
    shape: tuple[int, ...]
    dtype: str
    rlsoft: Callable[[], object]
    peers: dict[str, Callable[[], object]]
    times: dict[str, list[float]] = field(default_factory=dict)  # µs per call, per round

    @property
    def label(self) -> str:
        return f"{self.op} {self.backend} {self.shape} {self.dtype}"


def calibrate(fn: Callable[[], object], target_s: float) -> int:
    """Warm ``fn`` up and return a loop count whose timing takes about ``target_s``."""
    for _ in range(3):
        fn()
    timer = timeit.Timer(fn)
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= target_s / 5 or number >= 100_000:
            return max(1, round(number * target_s / max(elapsed, 1e-9)))
        number *= 10


def run_case(case: Case, rounds: int, best_of: int, target_s: float) -> None:
    """Time the contenders of ``case`` in ``rounds`` interleaved rounds.

    Within a round each contender gets the best of ``best_of`` back-to-back timings: a timing
    that lost a time slice to another process only ever reads slower, so the minimum filters
    that out, while the median over rounds (and the per-round ratios) absorbs slower drift.
    """
    contenders = {"rlsoft": case.rlsoft, **case.peers}
    timers = {name: (timeit.Timer(fn), calibrate(fn, target_s)) for name, fn in contenders.items()}
    case.times = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            timer, number = timers[name]
            best = min(timer.repeat(repeat=best_of, number=number))
            case.times[name].append(best / number * 1e6)


def median_time(case: Case, name: str) -> float:
    return statistics.median(case.times[name])


def round_ratios(case: Case, peer: str) -> list[float]:
    """rlsoft / peer in each round (both timed back to back)."""
    return [a / b for a, b in zip(case.times["rlsoft"], case.times[peer], strict=True)]


def median_ratio(case: Case, peer: str) -> float:
    """Median over rounds of rlsoft / peer, each ratio taken within one round."""
    return statistics.median(round_ratios(case, peer))


def ratio_text(case: Case, peer: str) -> str:
    """The median ratio with the interquartile range of the per-round ratios (its spread)."""
    ratios = round_ratios(case, peer)
    if len(ratios) < 2:
        return f"ratio {statistics.median(ratios):.2f}"
    low, _, high = statistics.quantiles(ratios, n=4)
    return f"ratio {statistics.median(ratios):.2f} (IQR {low:.2f}–{high:.2f})"


# --------------------------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------------------------


def make_input(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (3.0 * rng.standard_normal(shape)).astype(dtype)


def check_close(label: str, got: object, want: object, dtype: str) -> None:
    """Sanity: the contenders of a case compute the same thing (else the timing is moot)."""
    got = got.detach().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    rtol = 1e-4 if dtype == "float32" else 1e-10
    if got.shape != want.shape or not np.allclose(got, want, rtol=rtol, atol=rtol):
        print(f"WARNING: {label}: rlsoft and peer disagree", file=sys.stderr)


def numpy_cases(shapes: list[tuple[int, ...]]) -> list[Case]:
    cases = []
    for shape in shapes:
        for dtype in DTYPES:
            x = make_input(shape, dtype)
            specs = [
                ("softmax", rlsoft.softmax, scipy.special.softmax, np_softmax),
                ("logsumexp", rlsoft.logsumexp, scipy.special.logsumexp, np_logsumexp),
                ("log_softmax", rlsoft.log_softmax, scipy.special.log_softmax, np_log_softmax),
            ]
            for op, ours, sp, plain in specs:
                case = Case(
                    op,
                    "numpy",
                    shape,
                    dtype,
                    lambda ours=ours, x=x: ours(x),
                    {
                        "scipy.special": lambda sp=sp, x=x: sp(x, axis=-1),
                        "numpy max-shift": lambda plain=plain, x=x: plain(x),
                    },
                )
                check_close(case.label, case.rlsoft(), case.peers["scipy.special"](), dtype)
                cases.append(case)
    return cases


def torch_cases(shapes: list[tuple[int, ...]]) -> list[Case]:
    cases = []
    for shape in shapes:
        for dtype in DTYPES:
            x = torch.from_numpy(make_input(shape, dtype))
            specs = [
                ("softmax", rlsoft.softmax, torch.softmax, "torch.softmax"),
                ("logsumexp", rlsoft.logsumexp, torch.logsumexp, "torch.logsumexp"),
                ("log_softmax", rlsoft.log_softmax, torch.log_softmax, "torch.log_softmax"),
            ]
            for op, ours, theirs, peer in specs:
                case = Case(
                    op,
                    "torch",
                    shape,
                    dtype,
                    lambda ours=ours, x=x: ours(x),
                    {peer: lambda theirs=theirs, x=x: theirs(x, -1)},
                )
                check_close(case.label, case.rlsoft(), case.peers[peer](), dtype)
                cases.append(case)

            logits = x.clone().requires_grad_(True)
            generator = torch.Generator().manual_seed(1)
            target = torch.randint(0, shape[-1], shape[:-1], generator=generator)

            def ours_ce(z=logits, y=target):
                z.grad = None
                rlsoft.cross_entropy(z, y).backward()

            def torch_ce(z=logits, y=target):
                z.grad = None
                torch_f.cross_entropy(z, y).backward()

            case = Case(
                "cross_entropy fwd+bwd",
                "torch",
                shape,
                dtype,
                ours_ce,
                {"F.cross_entropy": torch_ce},
            )
            ours_ce()
            ours_grad = logits.grad.clone()
            torch_ce()
            check_close(case.label, ours_grad, logits.grad, dtype)
            check_close(
                case.label,
                rlsoft.cross_entropy(logits, target),
                torch_f.cross_entropy(logits, target),
                dtype,
            )
            cases.append(case)
    return cases


TRAINING_CE: list[tuple[str, tuple[int, int], str, str, float]] = [
    # (who trains on it, shape, dtype, target type, label smoothing)
    ("C51 head, cartpole_c51", (128, 51), "float32", "probabilities", 0.0),
    ("C51 head, batch 32", (32, 51), "float32", "probabilities", 0.0),
    ("digits MLP", (64, 10), "float32", "indices", 0.1),
    ("softmax regression", (1078, 10), "float64", "indices", 0.0),
    ("behaviour cloning", (128, 2), "float32", "indices", 0.0),
]


def training_ce_cases() -> list[Case]:
    """rlsoft.cross_entropy against F.cross_entropy on the shapes rlsoft trains on."""
    cases = []
    for who, shape, dtype, kind, smoothing in TRAINING_CE:
        logits = torch.from_numpy(make_input(shape, dtype)).requires_grad_(True)
        generator = torch.Generator().manual_seed(2)
        if kind == "probabilities":
            raw = torch.rand(shape, generator=generator, dtype=logits.dtype)
            target = raw / raw.sum(-1, keepdim=True)
        else:
            target = torch.randint(0, shape[-1], shape[:-1], generator=generator)

        def ours(z=logits, y=target, eps=smoothing):
            z.grad = None
            rlsoft.cross_entropy(z, y, label_smoothing=eps).backward()

        def theirs(z=logits, y=target, eps=smoothing):
            z.grad = None
            torch_f.cross_entropy(z, y, label_smoothing=eps).backward()

        case = Case(
            f"CE fwd+bwd, {who} ({kind})", "torch", shape, dtype, ours, {"F.cross_entropy": theirs}
        )
        ours()
        ours_grad = logits.grad.clone()
        theirs()
        check_close(case.label, ours_grad, logits.grad, dtype)
        cases.append(case)
    return cases


def select_cases() -> list[Case]:
    q = make_input((6,), "float64")
    policy = Boltzmann(1.0)
    ours_rng = np.random.default_rng(0)
    peer_rng = np.random.default_rng(0)

    def plain_select(q=q, rng=peer_rng):
        e = np.exp(q - q.max())
        return rng.choice(6, p=e / e.sum())

    return [
        Case(
            "Boltzmann select",
            "numpy",
            (6,),
            "float64",
            lambda: policy.select(q, ours_rng),
            {"rng.choice(6, p=softmax)": plain_select},
        )
    ]


# --------------------------------------------------------------------------------------------
# goals and report
# --------------------------------------------------------------------------------------------


@dataclass
class Goal:
    text: str
    value: str
    passed: bool


def find(cases: list[Case], op: str, backend: str, shape: tuple[int, ...], dtype: str) -> Case:
    for case in cases:
        if (case.op, case.backend, case.shape, case.dtype) == (op, backend, shape, dtype):
            return case
    raise KeyError((op, backend, shape, dtype))


def evaluate_goals(cases: list[Case]) -> list[Goal]:
    goals = []
    for op in ("softmax", "logsumexp"):
        for dtype in DTYPES:
            t = median_time(find(cases, op, "numpy", (1, 6), dtype), "rlsoft")
            goals.append(
                Goal(
                    f"{op} (1, 6) {dtype} ≤ {SMALL_BUDGET_US:g} µs",
                    f"{t:.2f} µs",
                    t <= SMALL_BUDGET_US,
                )
            )
    t = median_time(find(cases, "Boltzmann select", "numpy", (6,), "float64"), "rlsoft")
    goals.append(
        Goal(f"Boltzmann select (6,) ≤ {SMALL_BUDGET_US:g} µs", f"{t:.2f} µs", t <= SMALL_BUDGET_US)
    )
    for op in ("softmax", "logsumexp", "log_softmax"):
        for shape in LARGE_SHAPES:
            for dtype in DTYPES:
                case = find(cases, op, "numpy", shape, dtype)
                r = median_ratio(case, "scipy.special")
                goals.append(
                    Goal(
                        f"{op} numpy {shape} {dtype} no slower than scipy.special",
                        ratio_text(case, "scipy.special"),
                        r <= SCIPY_RATIO_GOAL,
                    )
                )
    for who, shape, dtype, kind, _ in TRAINING_CE:
        case = find(cases, f"CE fwd+bwd, {who} ({kind})", "torch", shape, dtype)
        r = median_ratio(case, "F.cross_entropy")
        goals.append(
            Goal(
                f"CE fwd+bwd {who} {shape} {dtype} within {TRAINING_CE_GOAL:g}× of F.cross_entropy",
                ratio_text(case, "F.cross_entropy"),
                r <= TRAINING_CE_GOAL,
            )
        )
    for shape in CE_GOAL_SHAPES:
        for dtype in DTYPES:
            case = find(cases, "cross_entropy fwd+bwd", "torch", shape, dtype)
            r = median_ratio(case, "F.cross_entropy")
            goals.append(
                Goal(
                    f"cross_entropy fwd+bwd {shape} {dtype} within {CE_RATIO_GOAL:g}× of "
                    "F.cross_entropy",
                    ratio_text(case, "F.cross_entropy"),
                    r <= CE_RATIO_GOAL,
                )
            )
    return goals


def fmt_us(t: float) -> str:
    if t >= 100:
        return f"{t:,.0f}"
    if t >= 10:
        return f"{t:.1f}"
    return f"{t:.2f}"


def table_rows(cases: list[Case]) -> list[list[str]]:
    rows = []
    for case in cases:
        ours = fmt_us(median_time(case, "rlsoft"))
        for peer in case.peers:
            rows.append(
                [
                    case.op,
                    case.backend,
                    str(case.shape),
                    case.dtype,
                    ours,
                    peer,
                    fmt_us(median_time(case, peer)),
                    f"{median_ratio(case, peer):.2f}",
                ]
            )
    return rows


HEADER = ["op", "backend", "shape", "dtype", "rlsoft µs", "peer", "peer µs", "ratio"]


def environment(rounds: int, best_of: int) -> str:
    return (
        f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"torch {torch.__version__}; {os.cpu_count()} CPUs; torch threads {torch.get_num_threads()}"
        f" (both sides); median of {rounds} interleaved rounds, each the best of {best_of}"
    )


def print_plain(cases: list[Case], goals: list[Goal], env: str) -> None:
    rows = [HEADER, *table_rows(cases)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    right = {4, 6, 7}
    print(env)
    print("ratio = rlsoft time / peer time (< 1: rlsoft faster)\n")
    for k, row in enumerate(rows):
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print_goals(goals)


def print_markdown(cases: list[Case], goals: list[Goal], env: str) -> None:
    print(f"Median µs per call; ratio = rlsoft / peer (< 1: rlsoft faster). {env}.\n")
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "|".join("---:" if i in (4, 6, 7) else "---" for i in range(len(HEADER))) + "|")
    for row in table_rows(cases):
        print("| " + " | ".join(row) + " |")
    print()
    print("| goal | measured | result |")
    print("|---|---:|---|")
    for goal in goals:
        print(f"| {goal.text} | {goal.value} | {'PASS' if goal.passed else 'MISS'} |")


def print_goals(goals: list[Goal]) -> None:
    print("\nGoals")
    width = max(len(g.text) for g in goals)
    for goal in goals:
        print(f"  {'PASS' if goal.passed else 'MISS'}  {goal.text.ljust(width)}  {goal.value}")
    missed = sum(not g.passed for g in goals)
    print(f"\n{len(goals) - missed}/{len(goals)} goals met")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (~20 s)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch.set_num_threads for both sides (default 1)"
    )
    parser.add_argument("--rounds", type=int, default=None, help="override the number of rounds")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    rounds = args.rounds or (5 if args.quick else 15)
    best_of = 2 if args.quick else 3
    target_s = 0.001 if args.quick else 0.003

    start = time.perf_counter()
    cases = [
        *numpy_cases(SHAPES),
        *select_cases(),
        *torch_cases(SHAPES),
        *training_ce_cases(),
    ]
    gc.collect()
    progress = sys.stderr.isatty()
    for k, case in enumerate(cases, 1):
        if progress:
            print(f"[{k}/{len(cases)}] {case.label}".ljust(60), file=sys.stderr, end="\r")
        run_case(case, rounds, best_of, target_s)
    if progress:
        print(" " * 60, file=sys.stderr, end="\r")
    goals = evaluate_goals(cases)
    env = environment(rounds, best_of)
    if args.markdown:
        print_markdown(cases, goals, env)
    else:
        print_plain(cases, goals, env)
    print(f"\n(benchmark took {time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
