"""Time to threshold in the comparison analysis and the scaling plot's data, against times
computed by hand in this file and scipy/numpy statistics of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import trim_mean

from rlsoft.compare.analysis import RunRecord, analyse, run_time
from rlsoft.compare.plan import cell_name
from rlsoft.compare.plots import scaling_series

THRESHOLD = 0.9
EVAL_EVERY = 10  # episodes between evaluations


def deep_sea_run(size, variant, seed, solved_episode, budget_episodes=100):
    """A DeepSea-like run: one evaluation every 10 episodes of ``size`` steps, returning 0.99
    from episode ``solved_episode`` on (``None``: never), and the episode counter logged at
    every evaluation step."""
    episodes = np.arange(EVAL_EVERY, budget_episodes + 1, EVAL_EVERY)
    steps = episodes * size
    returns = np.where(
        episodes >= (solved_episode if solved_episode is not None else np.inf), 0.99, 0.0
    )
    env = "rlsoft/DeepSea-v0"
    return RunRecord(
        run_dir=Path(f"/runs/{size}/{variant}/seed_{seed}"),
        env=cell_name(env, "env.kwargs.size", size),
        variant=variant,
        seed=seed,
        description="",
        steps=steps,
        returns=returns,
        episode_steps=steps,
        episodes=episodes.astype(float),
        env_id=env,
        sweep_value=float(size),
    )


# solved episode per (size, variant), one entry per seed (None: never within 100 episodes)
SOLVED = {
    (4, "eps"): [10, 20, 20, 30, 60],
    (8, "eps"): [40, 70, None, None, None],
    (12, "eps"): [None, None, None, None, None],
    (4, "boot"): [10, 10, 20, 20, 20],
    (8, "boot"): [20, 30, 30, 40, 50],
    (12, "boot"): [30, 40, 40, 60, None],
}


@pytest.fixture(scope="module")
def analysis():
    runs = [
        deep_sea_run(size, variant, seed, solved)
        for (size, variant), solved_list in SOLVED.items()
        for seed, solved in enumerate(solved_list)
    ]
    return analyse(
        runs,
        title="t",
        variant_order=["eps", "boot"],
        n_resamples=500,
        threshold=THRESHOLD,
        sweep_parameter="env.kwargs.size",
    )


def hand_times(size, variant):
    """(episodes, steps, censored) per seed: a never-solved run sits at its budget."""
    episodes = np.array([s if s is not None else 100 for s in SOLVED[(size, variant)]], float)
    censored = np.array([s is None for s in SOLVED[(size, variant)]])
    return episodes, episodes * size, censored


def test_run_time_is_the_first_evaluation_at_the_threshold_in_steps_and_episodes():
    solved = run_time(deep_sea_run(8, "eps", 0, 30), THRESHOLD)
    assert (solved.steps, solved.episodes, solved.reached) == (240.0, 30.0, True)
    never = run_time(deep_sea_run(8, "eps", 0, None), THRESHOLD)
    assert (never.steps, never.episodes, never.reached) == (800.0, 100.0, False)


def test_episodes_between_logging_steps_are_the_last_count_logged():
    record = deep_sea_run(4, "eps", 0, 10)
    record.episode_steps = np.array([40.0, 120.0])
    record.episodes = np.array([10.0, 30.0])
    assert [record.episodes_at(s) for s in (0, 39, 40, 119, 120, 400)] == [0, 0, 10, 10, 30, 30]
    record.episodes = record.episode_steps = np.zeros(0)
    assert record.episodes_at(40) is None


@pytest.mark.parametrize(("size", "variant"), list(SOLVED))
def test_every_cell_reports_censored_times_with_hand_statistics(analysis, size, variant):
    episodes, steps, censored = hand_times(size, variant)
    env = cell_name("rlsoft/DeepSea-v0", "env.kwargs.size", size)
    result = analysis.time_result(env, variant)
    assert (result.runs, result.censored) == (5, int(censored.sum()))
    for unit, times in (("episodes", episodes), ("steps", steps)):
        ivs = result.metrics[unit]
        assert ivs["mean"].value == pytest.approx(np.mean(times))
        assert ivs["median"].value == pytest.approx(np.median(times))
        assert ivs["iqm"].value == pytest.approx(trim_mean(times, 0.25))
        # five runs: the IQM drops one at each end, so two or more censored make it a bound
        assert ivs["iqm"].lower_bound == (censored.sum() >= 2)
        assert ivs["mean"].lower_bound == bool(censored.any())
        assert ivs["median"].lower_bound == (censored.sum() >= 3)
        assert ivs["iqm"].low <= ivs["iqm"].value <= ivs["iqm"].high
    assert analysis.time_units(env) == ["steps", "episodes"]


def test_without_a_threshold_there_are_no_times(analysis):
    plain = analyse(analysis.runs, n_resamples=100)
    assert plain.times == [] and plain.threshold is None
    assert scaling_series(plain) == {}


@pytest.mark.parametrize("unit", ["steps", "episodes"])
def test_scaling_series_is_the_iqm_time_per_swept_value_per_variant(analysis, unit):
    series = scaling_series(analysis, unit)
    assert list(series) == ["rlsoft/DeepSea-v0"]
    lines = series["rlsoft/DeepSea-v0"]
    assert list(lines) == ["eps", "boot"]  # the comparison's variant order
    for variant, line in lines.items():
        np.testing.assert_array_equal(line.x, [4.0, 8.0, 12.0])
        for i, size in enumerate((4, 8, 12)):
            episodes, steps, censored = hand_times(size, variant)
            times = episodes if unit == "episodes" else steps
            assert line.iqm[i] == pytest.approx(trim_mean(times, 0.25))
            assert line.low[i] <= line.iqm[i] <= line.high[i]
            assert line.lower_bound[i] == (censored.sum() > 1)
            assert line.censored[i] == censored.sum() and line.runs[i] == 5
            assert line.budget[i] == (100 if unit == "episodes" else 100 * size)
    # ε-greedy at N=12 never solves: the point sits at the budget, marked as a lower bound
    assert lines["eps"].iqm[2] == lines["eps"].budget[2] and lines["eps"].lower_bound[2]
    with pytest.raises(ValueError, match="unit must be one of"):
        scaling_series(analysis, "seconds")


def test_scaling_series_leaves_out_runs_without_a_swept_value(analysis):
    runs = [r for r in analysis.runs if r.sweep_value != 12.0]
    extra = deep_sea_run(12, "eps", 9, 10)
    extra.env, extra.env_id, extra.sweep_value = "Other-v0", "Other-v0", None
    result = analyse([*runs, extra], n_resamples=100, threshold=THRESHOLD)
    lines = scaling_series(result, "steps")
    assert list(lines) == ["rlsoft/DeepSea-v0"]
    np.testing.assert_array_equal(lines["rlsoft/DeepSea-v0"]["boot"].x, [4.0, 8.0])
