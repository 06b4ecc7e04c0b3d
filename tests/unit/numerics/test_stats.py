"""rlsoft.numerics.stats against independent references: hand computations, scipy.stats.mannwhitneyu
and a brute-force numpy bootstrap of fixed data (with a Monte-Carlo tolerance)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu, trim_mean

from rlsoft.numerics import stats

FIXED = np.array([3.0, 7.5, -2.0, 11.0, 4.0, 4.0, 25.0, 0.5, 6.0, 8.0, -9.0, 5.5])
B = 20_000  # resamples for the brute-force references


def brute_force_ci(strata, statistic, *, resamples=B, seed=123, confidence=0.95):
    """Percentile bootstrap by hand: resample every stratum independently (index draws with
    numpy), concatenate, apply ``statistic`` along the last axis, take percentiles."""
    rng = np.random.default_rng(seed)
    drawn = [s[rng.integers(0, len(s), (resamples, len(s)))] for s in strata]
    values = statistic(np.concatenate(drawn, axis=1), axis=-1)
    tail = 100 * (1 - confidence) / 2
    return np.percentile(values, [tail, 100 - tail])


def hand_iqm(x, axis=-1):
    """Mean of the middle half, dropping floor(n/4) values at each end."""
    x = np.sort(np.asarray(x, dtype=float), axis=axis)
    n = x.shape[axis]
    k = n // 4
    return np.take(x, np.arange(k, n - k), axis=axis).mean(axis=axis)


def test_iqm_matches_hand_computation():
    assert stats.iqm(np.arange(1.0, 9.0)) == pytest.approx(4.5)  # middle four of 1..8
    with_outlier = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 1000.0])
    assert stats.iqm(with_outlier) == pytest.approx(np.mean([3, 4, 5, 6, 7, 8]))
    assert stats.iqm(np.array([2.0, 4.0])) == pytest.approx(3.0)  # n < 4: plain mean
    assert stats.iqm(FIXED) == pytest.approx(hand_iqm(FIXED))


def test_iqm_along_an_axis():
    m = np.array([[1.0, 2, 3, 100], [4, 5, 6, 7]])
    np.testing.assert_allclose(stats.iqm(m, axis=-1), [2.5, 5.5])


def test_probability_of_improvement_hand_example_with_a_tie():
    # pairs (1,2) lose, (2,2) tie = ½, (3,2) win: (0 + ½ + 1) / 3
    assert stats.probability_of_improvement([np.array([1.0, 2, 3])], [np.array([2.0])]) == 0.5
    assert stats.probability_of_improvement([np.array([5.0, 6])], [np.array([1.0, 2])]) == 1.0
    assert stats.probability_of_improvement([np.array([1.0, 2])], [np.array([1.0, 2])]) == 0.5


@pytest.mark.parametrize("seed", range(5))
def test_probability_of_improvement_is_mann_whitney_u_over_nm(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, size=7).astype(float)  # small integers: many ties
    y = rng.integers(0, 6, size=9).astype(float)
    u = mannwhitneyu(x, y, alternative="greater").statistic
    assert stats.probability_of_improvement([x], [y]) == pytest.approx(u / (7 * 9))


def test_probability_of_improvement_averages_over_environments():
    x1, y1 = np.array([1.0, 2, 3]), np.array([2.0, 2])
    x2, y2 = np.array([10.0, 0]), np.array([5.0])
    per_env = [
        mannwhitneyu(x1, y1).statistic / 6,
        mannwhitneyu(x2, y2).statistic / 2,
    ]
    assert stats.probability_of_improvement([x1, x2], [y1, y2]) == pytest.approx(np.mean(per_env))


@pytest.mark.parametrize(
    ("name", "reference"),
    [("mean", np.mean), ("median", np.median), ("iqm", hand_iqm)],
)
def test_bootstrap_ci_matches_brute_force_numpy(name, reference):
    interval = stats.aggregate_intervals([FIXED], n_resamples=B, seed=7)[name]
    low, high = brute_force_ci([FIXED], reference)
    assert interval.value == pytest.approx(reference(FIXED))
    width = high - low
    assert interval.low == pytest.approx(low, abs=0.05 * width)
    assert interval.high == pytest.approx(high, abs=0.05 * width)


def test_stratified_bootstrap_matches_brute_force_with_unequal_strata():
    strata = [FIXED[:5], FIXED[5:] * 3.0]
    interval = stats.aggregate_intervals(strata, n_resamples=B, seed=3)["iqm"]
    low, high = brute_force_ci(strata, hand_iqm)
    width = high - low
    assert interval.value == pytest.approx(hand_iqm(np.concatenate(strata)))
    assert interval.low == pytest.approx(low, abs=0.05 * width)
    assert interval.high == pytest.approx(high, abs=0.05 * width)


def test_stratified_resampling_never_mixes_environments():
    # Every stratified resample keeps five zeros and five ones: the pooled mean is always ½.
    # Resampling the ten values as one pool would make it vary.
    zeros, ones = np.zeros(5), np.ones(5)
    stratified = stats.aggregate_intervals([zeros, ones])["mean"]
    assert (stratified.low, stratified.value, stratified.high) == (0.5, 0.5, 0.5)
    pooled = stats.aggregate_intervals([np.concatenate([zeros, ones])])["mean"]
    assert pooled.low < 0.4 and pooled.high > 0.6


def test_probability_of_improvement_ci_matches_brute_force():
    x = np.array([3.0, 5, 6, 6, 8, 9, 2, 7])
    y = np.array([1.0, 4, 6, 5, 2, 3, 6])
    interval = stats.probability_of_improvement_interval([x], [y], n_resamples=B, seed=11)
    rng = np.random.default_rng(5)
    xb = x[rng.integers(0, len(x), (B, len(x)))][:, :, None]
    yb = y[rng.integers(0, len(y), (B, len(y)))][:, None, :]
    values = (xb > yb).mean(axis=(1, 2)) + 0.5 * (xb == yb).mean(axis=(1, 2))
    low, high = np.percentile(values, [2.5, 97.5])
    assert interval.value == pytest.approx(mannwhitneyu(x, y).statistic / 56)
    assert interval.low == pytest.approx(low, abs=0.03)
    assert interval.high == pytest.approx(high, abs=0.03)


def test_dominance_gives_a_certain_probability_of_improvement():
    interval = stats.probability_of_improvement_interval([np.arange(5.0) + 10], [np.arange(5.0)])
    assert (interval.low, interval.value, interval.high) == (1.0, 1.0, 1.0)


def test_single_run_has_no_interval_and_singleton_strata_stay_fixed():
    alone = stats.aggregate_intervals([np.array([3.0])])["mean"]
    assert alone.value == 3.0 and math.isnan(alone.low) and math.isnan(alone.high)
    # The stratum [5] is held fixed; [0, 1] resamples to mean 0, ½ or 1: pooled mean in [5/3, 7/3].
    mixed = stats.aggregate_intervals([np.array([5.0]), np.array([0.0, 1.0])])["mean"]
    assert mixed.value == pytest.approx(2.0)
    assert 5 / 3 - 1e-12 <= mixed.low <= mixed.high <= 7 / 3 + 1e-12
    assert "[" not in alone.format() and "[" in mixed.format()


def test_same_seed_same_interval():
    a = stats.aggregate_intervals([FIXED], seed=stats.stable_seed("Taxi-v4", "eps", "final"))
    b = stats.aggregate_intervals([FIXED], seed=stats.stable_seed("Taxi-v4", "eps", "final"))
    assert a == b
    assert stats.stable_seed("a", "b") != stats.stable_seed("b", "a")


def test_normalised_auc_is_the_time_average_by_the_trapezoid_rule():
    # area: ½·10·10 (0→10) + 20·10 (10→30) = 250 over a span of 30
    assert stats.normalised_auc(np.array([0, 10, 30]), np.array([0.0, 10, 10])) == pytest.approx(
        250 / 30
    )
    assert stats.normalised_auc(np.array([5, 10, 20]), np.array([-3.0, -3, -3])) == pytest.approx(
        -3
    )
    assert stats.normalised_auc(np.array([7]), np.array([2.5])) == 2.5
    with pytest.raises(ValueError, match="same"):
        stats.normalised_auc(np.array([1, 2]), np.array([1.0]))


def test_min_max_normalise():
    np.testing.assert_allclose(
        stats.min_max_normalise(np.array([-10.0, 0, 10]), -10, 10), [0, 0.5, 1]
    )
    np.testing.assert_allclose(stats.min_max_normalise(np.array([4.0, 4.0]), 4, 4), [0, 0])


def test_curve_band_matches_brute_force_joint_resampling_of_curves():
    rng = np.random.default_rng(0)
    curves = rng.normal(size=(6, 4)).cumsum(axis=1)
    centre, low, high = stats.curve_iqm_band(curves, n_resamples=B, seed=1)
    np.testing.assert_allclose(centre, [hand_iqm(curves[:, j]) for j in range(4)])
    rng = np.random.default_rng(2)
    draws = hand_iqm(curves[rng.integers(0, 6, (B, 6))], axis=1)  # whole curves drawn: (B, 4)
    ref_low, ref_high = np.percentile(draws, [2.5, 97.5], axis=0)
    width = ref_high - ref_low
    np.testing.assert_allclose(low, ref_low, atol=0.05 * width.max())
    np.testing.assert_allclose(high, ref_high, atol=0.05 * width.max())
    one = stats.curve_iqm_band(curves[:1])
    np.testing.assert_allclose(one[0], curves[0])
    assert np.isnan(one[1]).all() and np.isnan(one[2]).all()


def test_fewer_than_three_runs_are_too_few():
    assert [stats.too_few_runs(n) for n in range(5)] == [True, True, True, False, False]


@pytest.mark.parametrize("n, m", [(1, 1), (1, 2), (2, 2)])
def test_with_few_runs_probability_of_improvement_is_coarse(n, m):
    """Why few runs are flagged: every P(X > Y) is a multiple of 1/(2·n·m) (all tie patterns
    enumerated on scores 0..2), so one run each can only give 0, 1/2 or 1."""
    import itertools

    seen = set()
    for scores in itertools.product(range(3), repeat=n + m):
        x, y = np.array(scores[:n], float), np.array(scores[n:], float)
        seen.add(round(stats.probability_of_improvement([x], [y]) * 2 * n * m, 9))
    assert all(float(v).is_integer() for v in seen)
    if (n, m) == (1, 1):
        assert seen == {0.0, 1.0, 2.0}  # P in {0, 1/2, 1}


# --------------------------------------------------------------------------------------------
# Time to threshold, censored at the budget
# --------------------------------------------------------------------------------------------


def first_crossing_by_hand(steps, values, threshold, budget):
    for step, value in zip(steps, values, strict=True):
        if value >= threshold:
            return float(step), True
    return float(budget), False


@pytest.mark.parametrize("seed", range(20))
def test_time_to_threshold_is_the_first_evaluation_at_or_above_it(seed):
    rng = np.random.default_rng(seed)
    steps = np.cumsum(rng.integers(1, 50, size=rng.integers(1, 15)))
    values = rng.normal(size=steps.size)
    threshold = float(rng.choice([*values, 0.5, 10.0]))  # often hit exactly: >= counts
    expected = first_crossing_by_hand(steps, values, threshold, steps[-1])
    assert stats.time_to_threshold(steps, values, threshold) == expected
    budget = steps[-1] + 7
    if not expected[1]:
        assert stats.time_to_threshold(steps, values, threshold, budget=budget) == (budget, False)


def test_time_to_threshold_hand_examples_and_errors():
    steps, values = np.array([10, 20, 30]), np.array([0.0, 0.99, 0.5])
    assert stats.time_to_threshold(steps, values, 0.9) == (20.0, True)
    assert stats.time_to_threshold(steps, values, 0.99) == (20.0, True)  # reaching counts
    assert stats.time_to_threshold(steps, values, 1.0) == (30.0, False)  # censored at the end
    with pytest.raises(ValueError, match="same, non-zero length"):
        stats.time_to_threshold(np.array([1, 2]), np.array([1.0]), 0.5)
    with pytest.raises(ValueError, match="finite"):
        stats.time_to_threshold(steps, values, math.nan)


STATISTICS = {
    "mean": np.mean,
    "median": np.median,
    "iqm": lambda x, axis=-1: trim_mean(x, 0.25, axis=axis),
}


@pytest.mark.parametrize("name", list(STATISTICS))
@pytest.mark.parametrize("runs", range(1, 13))
def test_counts_censored_says_whether_the_true_times_could_change_the_statistic(name, runs):
    """Independent reference: give the censored runs several different true times beyond the
    budget; the statistic uses them exactly when its value moves."""
    rng = np.random.default_rng(runs)
    budget = 100.0
    for censored in range(runs + 1):
        reached = rng.uniform(1.0, budget, size=runs - censored)
        at_budget = STATISTICS[name](np.concatenate([reached, np.full(censored, budget)]))
        moved = False
        for _ in range(5):
            true = budget + rng.uniform(1.0, 1000.0, size=censored)
            value = STATISTICS[name](np.concatenate([reached, true]))
            moved |= not math.isclose(value, at_budget, rel_tol=1e-12)
            assert value >= at_budget - 1e-9  # at the budget it is a lower bound
        assert stats.counts_censored(name, runs, censored) == moved, (name, runs, censored)


def test_counts_censored_refuses_impossible_counts():
    with pytest.raises(ValueError, match="between 0 and runs"):
        stats.counts_censored("iqm", 4, 5)
    with pytest.raises(ValueError, match="unknown statistic"):
        stats.counts_censored("mode", 4, 1)


def test_censored_intervals_enter_censored_runs_at_the_budget():
    # ten runs, three never reached the threshold (budget 5,000): the IQM trims the slowest two
    times = np.array([400.0, 900, 1200, 1500, 1800, 2500, 3100, 5000, 5000, 5000])
    censored = times == 5000
    intervals = stats.censored_aggregate_intervals(times, censored, seed=3)
    for name, reference in STATISTICS.items():
        iv = intervals[name]
        assert iv.value == pytest.approx(reference(times))
        low, high = brute_force_ci([times], reference)
        width = high - low
        assert iv.low == pytest.approx(low, abs=0.05 * width)
        assert iv.high == pytest.approx(high, abs=0.05 * width)
        assert (iv.runs, iv.censored, iv.high_lower_bound) == (10, 3, True)
    # 3 censored of 10: mean counts them, the median (positions 4, 5) does not, the IQM
    # (trimming 2 at each end) does
    assert [intervals[n].lower_bound for n in ("mean", "median", "iqm")] == [True, False, True]
    assert intervals["iqm"].format() == (
        f">{trim_mean(times, 0.25):,.0f} [{intervals['iqm'].low:,.0f}, "
        f">{intervals['iqm'].high:,.0f}]"
    )


def test_censored_intervals_without_censoring_are_plain_and_unmarked():
    times = np.array([300.0, 100, 200, 400])
    intervals = stats.censored_aggregate_intervals(times, np.zeros(4, dtype=bool))
    assert not any(iv.lower_bound or iv.high_lower_bound for iv in intervals.values())
    assert intervals["median"].value == 250.0
    assert intervals["mean"].format().startswith("250 [")
    one = stats.censored_aggregate_intervals(np.array([700.0]), np.array([True]))["iqm"]
    assert one.format() == ">700"  # a single run: no interval, and a censored one is a bound
    with pytest.raises(ValueError, match="one entry per run"):
        stats.censored_aggregate_intervals(times, np.zeros(3, dtype=bool))
