"""Benchmark the classification baseline against scikit-learn and torch, in one run.

    .venv/bin/python scripts/bench_classifier.py [--repeats 15] [--seed 0] [--markdown]

1. **Softmax regression vs scikit-learn.** ``configs/digits_softmax_regression.yaml`` is built
   exactly as ``rlsoft train`` builds it (same digits split, same standardisation from the
   training split); scikit-learn's ``LogisticRegression`` (lbfgs, ``C = 1/(λ·n_train)`` so
   both minimise the same objective, ``tol = 1e-4``) is fitted on the same standardised
   training split, on one thread like our torch (``threadpoolctl``; its default of one
   thread per core is shown too, for information: on a loaded 2-core machine it is usually
   slower). Reported: test accuracy, NLL and ECE, and the fit time. Our fit time is
   :meth:`rlsoft.supervised.driver.SupervisedDriver.fit` (every epoch until L-BFGS converges,
   validation scoring included; the data set, the model and the TensorBoard writer are built
   before the clock starts), scikit-learn's is ``LogisticRegression.fit``. Fits alternate,
   ours then theirs, ``--repeats`` times; times are medians and the ratio is the median of
   the per-pair ratios against the one-thread fit, because these shared machines drift by up
   to 1.5× between runs.
2. **Cross-entropy forward + backward.** ``rlsoft.numerics.functional.cross_entropy`` (the fused
   ``p − y`` backward of :mod:`rlsoft.numerics._torch_cross_entropy`) against
   ``torch.nn.functional.cross_entropy`` on float32 logits (N, K) with class-index targets
   and mean reduction, N ∈ {64, 4096}, K ∈ {10, 1000}; rounds alternate the two.

Goals (issue 5): test accuracy at least scikit-learn's, fit time within 2× of it. Each goal
prints PASS or MISS.
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
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import agents  # noqa: E402, F401 - registers the classifier
from rlsoft.numerics.functional import cross_entropy  # noqa: E402
from rlsoft.run.config import load_config  # noqa: E402
from rlsoft.run.experiment import build_driver  # noqa: E402
from rlsoft.supervised.calibration import classification_metrics  # noqa: E402

CONFIG = ROOT / "configs" / "digits_softmax_regression.yaml"


# --------------------------------------------------------------------------------------------
# 1. softmax regression vs scikit-learn
# --------------------------------------------------------------------------------------------


def _ours(seed: int):
    """A fresh driver for the config (not timed) and the seconds its fit takes."""
    driver = build_driver(load_config(CONFIG, seed=seed))
    driver.echo = lambda _: None
    gc.collect()
    start = time.perf_counter()
    driver.fit()
    return driver, time.perf_counter() - start


def _sklearn(x: np.ndarray, y: np.ndarray, c: float, threads: int | None):
    """A fitted LogisticRegression and its fit seconds, its BLAS/OpenMP pools limited to
    ``threads`` (None: scikit-learn's default, one thread per core)."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    model = LogisticRegression(C=c, tol=1e-4, max_iter=5000)
    gc.collect()
    with threadpool_limits(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        model.fit(x, y)
        seconds = time.perf_counter() - start
    return model, seconds


def bench_fit(seed: int, repeats: int) -> dict:
    config = load_config(CONFIG, seed=seed)
    weight_decay = config.agent_config().weight_decay
    ours_times, theirs_times, default_times, ratios = [], [], [], []
    for _ in range(repeats):
        driver, ours_s = _ours(seed)
        splits = driver.splits
        mean, std = splits.standardization()
        c = 1.0 / (weight_decay * len(splits.y_train))
        x = (splits.x_train - mean) / std
        model, theirs_s = _sklearn(x, splits.y_train, c, threads=1)
        default_times.append(_sklearn(x, splits.y_train, c, threads=None)[1])
        ours_times.append(ours_s)
        theirs_times.append(theirs_s)
        ratios.append(ours_s / theirs_s)
    ours = classification_metrics(driver.logits(splits.x_test), splits.y_test)
    theirs = classification_metrics(
        model.decision_function((splits.x_test - mean) / std), splits.y_test
    )
    return {
        "split": splits.describe(),
        "C": c,
        "epochs": driver.epoch,
        "sklearn_iterations": int(np.max(model.n_iter_)),
        "ours": ours,
        "theirs": theirs,
        "ours_s": statistics.median(ours_times),
        "theirs_s": statistics.median(theirs_times),
        "ratio": statistics.median(ratios),
        "default_threads_s": statistics.median(default_times),
    }


# --------------------------------------------------------------------------------------------
# 2. cross-entropy forward + backward
# --------------------------------------------------------------------------------------------


def _fwd_bwd(loss_fn: Callable, logits: torch.Tensor, target: torch.Tensor) -> Callable:
    def run() -> None:
        logits.grad = None
        loss_fn(logits, target).backward()

    return run


def _per_call(fn: Callable[[], None], seconds: float = 0.02) -> tuple[int, float]:
    """Calls per timing so one timing lasts about ``seconds``, and one timing's µs per call."""
    fn()
    number, elapsed = 1, 0.0
    while True:
        elapsed = timeit.timeit(fn, number=number)
        if elapsed >= seconds or number >= 1 << 20:
            return number, elapsed / number * 1e6
        number *= 2


def bench_cross_entropy(rounds: int) -> list[dict]:
    rows = []
    generator = torch.Generator().manual_seed(0)
    for n in (64, 4096):
        for k in (10, 1000):
            logits = torch.randn(n, k, generator=generator).requires_grad_(True)
            target = torch.randint(0, k, (n,), generator=generator)
            ours = _fwd_bwd(cross_entropy, logits, target)
            theirs = _fwd_bwd(F.cross_entropy, logits, target)
            ours_n, _ = _per_call(ours)
            theirs_n, _ = _per_call(theirs)
            ours_us, theirs_us, ratios = [], [], []
            for r in range(rounds):
                order = [(ours, ours_n, ours_us), (theirs, theirs_n, theirs_us)]
                for fn, number, sink in order if r % 2 == 0 else order[::-1]:
                    sink.append(timeit.timeit(fn, number=number) / number * 1e6)
                ratios.append(ours_us[-1] / theirs_us[-1])
            rows.append(
                {
                    "shape": f"({n}, {k})",
                    "ours_us": statistics.median(ours_us),
                    "theirs_us": statistics.median(theirs_us),
                    "ratio": statistics.median(ratios),
                }
            )
    return rows


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(fit: dict, ce_rows: list[dict], markdown: bool) -> None:
    ours, theirs = fit["ours"], fit["theirs"]
    print(f"\n## Softmax regression vs scikit-learn LogisticRegression ({fit['split']})\n")
    print(
        f"λ = 1/(C·n_train) with C = {fit['C']:.3f}; ours: {fit['epochs']} L-BFGS epochs, "
        f"scikit-learn: {fit['sklearn_iterations']} lbfgs iterations\n"
    )
    header = ["", "rlsoft", "scikit-learn", "ratio"]
    rows = [
        ["test accuracy", f"{ours.accuracy:.4f}", f"{theirs.accuracy:.4f}", ""],
        ["test NLL", f"{ours.nll:.4f}", f"{theirs.nll:.4f}", ""],
        ["test ECE (15 bins)", f"{ours.ece:.4f}", f"{theirs.ece:.4f}", ""],
        [
            "fit time, 1 thread (median)",
            f"{fit['ours_s'] * 1e3:.1f} ms",
            f"{fit['theirs_s'] * 1e3:.1f} ms",
            f"{fit['ratio']:.2f}×",
        ],
        [
            "scikit-learn, default threads",
            "",
            f"{fit['default_threads_s'] * 1e3:.1f} ms",
            f"{fit['ours_s'] / fit['default_threads_s']:.2f}×",
        ],
    ]
    _table(header, rows, markdown)
    accuracy_ok = ours.accuracy >= theirs.accuracy
    time_ok = fit["ratio"] <= 2.0
    print(
        f"\n{_verdict(accuracy_ok)}  accuracy at least scikit-learn's "
        f"({ours.accuracy:.4f} vs {theirs.accuracy:.4f})"
    )
    print(f"{_verdict(time_ok)}  fit time within 2× of scikit-learn's ({fit['ratio']:.2f}×)")
    print("\n## Cross-entropy forward + backward, float32, class-index targets, mean\n")
    rows = [
        [r["shape"], f"{r['ours_us']:.1f}", f"{r['theirs_us']:.1f}", f"{r['ratio']:.2f}×"]
        for r in ce_rows
    ]
    _table(["logits (N, K)", "rlsoft µs", "F.cross_entropy µs", "ratio"], rows, markdown)
    print("\n(ratio = rlsoft / peer, median of paired rounds; < 1 means rlsoft is faster)")


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        print(
            "  ".join(
                str(x).rjust(w) if i else str(x).ljust(w)
                for i, (x, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="paired fits (default 15)")
    parser.add_argument("--rounds", type=int, default=15, help="paired CE timings per shape")
    parser.add_argument("--seed", type=int, default=0, help="run seed (the digits split)")
    parser.add_argument("--markdown", action="store_true", help="Markdown tables")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import sklearn

    print(
        f"python {platform.python_version()}, torch {torch.__version__} (1 thread), "
        f"scikit-learn {sklearn.__version__}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    started = time.perf_counter()
    fit = bench_fit(args.seed, args.repeats)
    ce_rows = bench_cross_entropy(args.rounds)
    report(fit, ce_rows, args.markdown)
    print(f"\nbenchmark took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
