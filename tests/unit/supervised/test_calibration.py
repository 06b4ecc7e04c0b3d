"""Calibration: ECE against a hand computation, temperature scaling against a brute-force grid.

The references are written independently of :mod:`rlsoft.supervised.calibration` (explicit Python
loops over bins, scipy.special.log_softmax for the NLL), never by calling the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import log_softmax as scipy_log_softmax

from rlsoft.supervised.calibration import (
    calibration_report,
    classification_metrics,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)


def ece_by_hand(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    """Guo et al.'s ECE, one sample and one bin at a time: bin m holds (m/M, (m+1)/M]."""
    n = len(labels)
    bins: list[list[tuple[float, bool]]] = [[] for _ in range(n_bins)]
    for row, label in zip(probs.tolist(), labels.tolist(), strict=True):
        confidence = max(row)
        predicted = row.index(confidence)  # first maximum
        m = 0
        while m < n_bins - 1 and confidence > (m + 1) / n_bins:
            m += 1
        bins[m].append((confidence, predicted == label))
    total = 0.0
    for members in bins:
        if members:
            accuracy = sum(c for _, c in members) / len(members)
            confidence = sum(p for p, _ in members) / len(members)
            total += len(members) / n * abs(accuracy - confidence)
    return total


def nll_scipy(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    log_p = scipy_log_softmax(logits / temperature, axis=1)
    return float(-log_p[np.arange(len(labels)), labels].mean())


def overconfident_sample(n: int, k: int, true_temperature: float, seed: int):
    """Logits and labels drawn from softmax(logits / true_temperature): the NLL-optimal
    temperature is close to ``true_temperature`` for large n."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=4.0, size=(n, k))
    p = np.exp(scipy_log_softmax(logits / true_temperature, axis=1))
    labels = np.array([rng.choice(k, p=row) for row in p])
    return logits, labels


# --------------------------------------------------------------------------------------------
# ECE
# --------------------------------------------------------------------------------------------


def test_ece_worked_example() -> None:
    # 4 samples, 5 bins of width 0.2:
    #   conf 0.90, right -> bin 4 (0.8, 1.0]     conf 0.95, wrong -> bin 4
    #   conf 0.50, right -> bin 2 (0.4, 0.6]     conf 0.35, wrong (first max is class 0) -> bin 1
    # bin 4: accuracy 1/2, mean confidence 0.925 -> 2/4 · 0.425 = 0.2125
    # bin 2: accuracy 1,   confidence 0.5       -> 1/4 · 0.5   = 0.125
    # bin 1: accuracy 0,   confidence 0.35      -> 1/4 · 0.35  = 0.0875
    probs = np.array([[0.9, 0.05, 0.05], [0.95, 0.05, 0.0], [0.2, 0.5, 0.3], [0.35, 0.35, 0.3]])
    labels = np.array([0, 1, 1, 2])
    expected = 0.2125 + 0.125 + 0.0875
    assert expected_calibration_error(probs, labels, n_bins=5) == pytest.approx(expected)
    assert ece_by_hand(probs, labels, 5) == pytest.approx(expected)


def test_ece_edges_belong_to_the_lower_bin() -> None:
    # Confidence 0.6 lies on an edge of 5 bins: it belongs to (0.4, 0.6], apart from 0.7.
    # Apart: |0 − 0.6|/2 + |1 − 0.7|/2 = 0.45; in one bin it would be |0.5 − 0.65| = 0.15.
    probs = np.array([[0.6, 0.4], [0.7, 0.3]])
    labels = np.array([1, 0])
    assert expected_calibration_error(probs, labels, n_bins=5) == pytest.approx(0.45)


@given(
    n=st.integers(1, 60),
    k=st.integers(2, 6),
    n_bins=st.sampled_from([1, 3, 10, 15]),
    seed=st.integers(0, 10_000),
)
def test_ece_matches_the_hand_computation(n: int, k: int, n_bins: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(k, 0.5), size=n)
    labels = rng.integers(k, size=n)
    assert expected_calibration_error(probs, labels, n_bins=n_bins) == pytest.approx(
        ece_by_hand(probs, labels, n_bins), abs=1e-12
    )


def test_ece_is_zero_for_a_perfectly_calibrated_bin_and_one_for_confident_mistakes() -> None:
    # Two samples at confidence 0.5 in the same bin, one right: accuracy 0.5 = confidence.
    probs = np.array([[0.5, 0.5], [0.5, 0.5]])
    assert expected_calibration_error(probs, np.array([0, 1])) == pytest.approx(0.0)
    confident = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(confident, np.array([1, 0])) == pytest.approx(1.0)


def test_ece_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        expected_calibration_error(np.ones((3, 2)) / 2, np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(np.ones((3, 2)) / 2, np.zeros(3, dtype=int), n_bins=0)


# --------------------------------------------------------------------------------------------
# NLL and temperature scaling
# --------------------------------------------------------------------------------------------


def test_nll_matches_scipy_at_any_temperature() -> None:
    logits, labels = overconfident_sample(200, 5, 2.0, seed=1)
    for t in (0.3, 1.0, 2.7):
        assert negative_log_likelihood(logits, labels, temperature=t) == pytest.approx(
            nll_scipy(logits, labels, t), rel=1e-12
        )


@pytest.mark.parametrize(("true_t", "seed"), [(0.5, 0), (1.0, 1), (2.5, 2), (6.0, 3)])
def test_temperature_matches_a_brute_force_grid_search(true_t: float, seed: int) -> None:
    logits, labels = overconfident_sample(400, 6, true_t, seed)
    grid = np.geomspace(0.05, 20.0, 3001)  # log-spacing ≈ 0.2 %
    nll = np.array([nll_scipy(logits, labels, t) for t in grid])
    best = grid[np.argmin(nll)]
    fitted = fit_temperature(logits, labels)
    step = math.log(grid[1] / grid[0])
    assert abs(math.log(fitted / best)) <= 2 * step
    assert nll_scipy(logits, labels, fitted) <= nll.min() + 1e-9
    assert fitted == pytest.approx(true_t, rel=0.35)  # the generating temperature, roughly


def test_perfectly_separated_data_goes_to_the_cold_end() -> None:
    # The NLL decreases towards 0 as τ → 0; it underflows to exactly 0 for τ ≲ 0.14 here
    # (5/τ ≥ 37 makes log(1 + e^(−5/τ)) round to 0), so any τ in that flat stretch is optimal.
    logits = np.array([[5.0, 0.0], [0.0, 5.0]])
    labels = np.array([0, 1])
    fitted = fit_temperature(logits, labels, bounds=(0.1, 10.0))
    assert 0.1 <= fitted < 0.2
    assert nll_scipy(logits, labels, fitted) < 1e-10


def test_temperature_scaling_keeps_accuracy_and_report_has_the_tags() -> None:
    logits, labels = overconfident_sample(300, 4, 3.0, seed=5)
    val, test = slice(0, 150), slice(150, 300)
    report = calibration_report(logits[val], labels[val], logits[test], labels[test])
    assert report.after.accuracy == report.before.accuracy
    assert report.temperature > 1.5  # the logits are over-confident by a factor ≈ 3
    assert report.after.nll < report.before.nll
    assert report.after.ece < report.before.ece
    scalars = report.scalars()
    for tag in ("eval/accuracy", "eval/nll", "eval/ece", "calibration/temperature"):
        assert tag in scalars
    assert scalars["eval/ece_calibrated"] == report.after.ece
    text = "\n".join(report.lines())
    assert "ECE (15 bins)" in text and f"{report.temperature:.4f}" in text


def test_classification_metrics_use_argmax_and_softmax_with_temperature() -> None:
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    labels = np.array([0, 1])
    m = classification_metrics(logits, labels, temperature=2.0)
    assert m.accuracy == 0.5
    assert m.nll == pytest.approx(nll_scipy(logits, labels, 2.0))
    p = np.exp(scipy_log_softmax(logits / 2.0, axis=1))
    assert m.ece == pytest.approx(ece_by_hand(p, labels, 15))


def test_a_separated_validation_split_keeps_the_temperature_at_one() -> None:
    # Validation: every label has the largest logit, so its NLL has no minimiser (it falls to
    # 0 as τ → 0) and the bare fit runs to the bound; test: one confident mistake.
    val_logits = np.array([[4.0, 0.0, 1.0], [0.0, 3.0, 2.0], [1.0, 0.0, 2.5]])
    val_labels = np.array([0, 1, 2])
    assert fit_temperature(val_logits, val_labels) < 0.05  # the flat, underflowed end
    test_logits = np.array([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    test_labels = np.array([0, 0])
    report = calibration_report(val_logits, val_labels, test_logits, test_labels)
    assert report.separated and report.temperature == 1.0
    assert report.after.nll == pytest.approx(nll_scipy(test_logits, test_labels, 1.0))
    assert "no minimum" in report.lines()[0]


def test_one_validation_mistake_is_enough_to_fit() -> None:
    val_logits = np.array([[4.0, 0.0], [0.0, 3.0], [2.0, 0.0]])
    val_labels = np.array([0, 1, 1])
    grid = np.exp(np.linspace(math.log(1e-2), math.log(1e2), 4001))
    best = grid[np.argmin([nll_scipy(val_logits, val_labels, t) for t in grid])]
    report = calibration_report(val_logits, val_labels, val_logits, val_labels)
    assert not report.separated
    assert report.temperature == pytest.approx(best, rel=5e-3)
