"""A comparison that sweeps an environment parameter, with the time-to-threshold statistic:
planning (cells, their settings, refusals), the report from event files (tables, CSV,
Markdown, the scaling plot, ``rlsoft report --threshold``), and one small grid run end to end
whose times are checked against the runs' own ``summary.json`` evaluation histories."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import trim_mean
from torch.utils.tensorboard import SummaryWriter

import agents  # noqa: F401 - registers the agent types for plan validation
import rlsoft
from rlsoft.cli import main
from rlsoft.compare.plan import cell_name, load_comparison, plan_comparison
from rlsoft.compare.report import report
from rlsoft.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BASE = {
    "env": {"id": "rlsoft/DeepSea-v0", "kwargs": {"observation": "index"}},
    "agent": {"type": "q_learning", "learning_rate": 0.5},
    "exploration": {"policy": "epsilon_greedy", "epsilon": 0.3},
    "train": {"total_steps": 300, "eval_episodes": 1},
}
SWEEP = {
    "parameter": "env.kwargs.size",
    "values": [2, 3],
    "along": {
        "train.total_steps": [200, 300],
        "train.eval_every": [20, 30],
        "train.log_every": [20, 30],
    },
}
VARIANTS = {"eps": {"exploration.epsilon": 0.3}, "eps_low": {"exploration.epsilon": 0.05}}


def plan(logdir, **changes):
    data = {"name": "t", "base": BASE, "seeds": 2, "variants": VARIANTS, "sweep": SWEEP,
            "analysis": {"return_threshold": 0.5}, **changes}  # fmt: skip
    return plan_comparison(data, source="t.yaml", logdir=logdir)


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------


def test_every_swept_value_is_a_cell_with_its_settings(tmp_path):
    comparison = plan(tmp_path)
    cells = ["rlsoft/DeepSea-v0 size=2", "rlsoft/DeepSea-v0 size=3"]
    assert comparison.envs == cells
    assert len(comparison.runs) == 2 * 2 * 2
    for spec in comparison.runs:
        size = spec.config["env"]["kwargs"]["size"]
        assert spec.env == f"rlsoft/DeepSea-v0 size={size}"
        assert spec.config["env"]["id"] == "rlsoft/DeepSea-v0"
        assert spec.config["env"]["kwargs"]["observation"] == "index"  # the base's kwargs stay
        assert spec.config["train"]["total_steps"] == 100 * size
        assert spec.config["train"]["eval_every"] == spec.config["train"]["log_every"] == 10 * size
        assert spec.run_dir == tmp_path / f"rlsoft_DeepSea-v0_size_{size}" / spec.variant / (
            f"seed_{spec.seed}"
        )
    assert comparison.definition["analysis"] == {"return_threshold": 0.5}


def test_cell_names_do_not_depend_on_int_or_float():
    assert cell_name("E-v0", "env.kwargs.size", 4) == cell_name("E-v0", "a.size", 4.0)
    assert cell_name("E-v0", "env.kwargs.p", 0.25) == "E-v0 p=0.25"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sweep": {**SWEEP, "values": []}}, "at least one value"),
        ({"sweep": {**SWEEP, "values": [2, 2.0]}}, "distinct"),
        ({"sweep": {**SWEEP, "values": [True, 3]}}, "'sweep.values.0': expected an"),
        ({"sweep": {**SWEEP, "along": {"train.total_steps": [1]}}}, "one per swept value"),
        ({"sweep": {**SWEEP, "along": {"env.kwargs.size": [1, 2]}}}, "swept parameter"),
        ({"sweep": {**SWEEP, "parameter": "seed"}}, "sets 'seed'"),
        ({"sweep": {**SWEEP, "parameter": "env..size"}}, "dotted config key"),
        ({"variants": {"a": {"env.kwargs.size": 5}}}, "sweep: sets in every cell"),
        ({"overrides": {"train.total_steps": 5}}, "sweep: sets in every cell"),
        ({"analysis": {"return_threshold": "high"}}, "return_threshold"),
        ({"analysis": {"threshold": 0.5}}, "threshold"),
    ],
)
def test_bad_sweeps_fail_fast_with_one_sentence(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message) as info:
        plan(tmp_path, **changes)
    assert "\n" not in str(info.value)
    assert not any(tmp_path.iterdir())  # nothing left behind


def test_a_swept_key_set_by_set_is_refused(tmp_path):
    data = {"name": "t", "base": BASE, "variants": VARIANTS, "sweep": SWEEP}
    with pytest.raises(ConfigError, match=r"--set sets 'env\.kwargs\.size'"):
        plan_comparison(data, overrides=["env.kwargs.size=7"], logdir=tmp_path)


def test_shipped_deepsea_comparison_is_valid(tmp_path):
    comparison = load_comparison(
        CONFIGS / "compare_deepsea_exploration.yaml", logdir=tmp_path / "x"
    )
    sizes = [4, 6, 8, 10, 12]
    assert comparison.envs == [f"rlsoft/DeepSea-v0 size={n}" for n in sizes]
    # the methods issue 14 names: two dithering ones, NoisyNet, Bootstrapped DQN without and
    # with randomized priors
    methods = ["epsilon_greedy", "boltzmann", "noisynet", "bootstrapped", "bootstrapped_prior"]
    assert comparison.variants == methods
    assert len(comparison.seeds) >= 5
    assert len(comparison.runs) == len(sizes) * len(methods) * len(comparison.seeds)
    for spec in comparison.runs:
        n, train = spec.config["env"]["kwargs"]["size"], spec.config["train"]
        assert spec.config["agent"]["type"] == "dqn"
        ensemble = spec.config["agent"].get("ensemble")
        if spec.variant.startswith("bootstrapped"):
            assert ensemble["prior_scale"] == (3.0 if spec.variant.endswith("prior") else 0.0)
        else:
            assert ensemble is None
        assert train["total_steps"] == 1000 * n  # the same 1,000-episode budget at every size
        assert train["eval_every"] == train["log_every"] == 10 * n
    assert 0 < comparison.definition["analysis"]["return_threshold"] < 0.99


# --------------------------------------------------------------------------------------------
# The report, from event files written here
# --------------------------------------------------------------------------------------------


def write_run(run_dir, size, solved_at, budget=100, seed=0, variant="eps"):
    """A finished run of DeepSea(size): evaluations every 10 episodes, 0.99 from episode
    ``solved_at`` on (``None``: never), and the episode counter at every evaluation."""
    run_dir.mkdir(parents=True)
    with SummaryWriter(str(run_dir)) as writer:
        for episodes in range(10, budget + 1, 10):
            solved = solved_at is not None and episodes >= solved_at
            writer.add_scalar("eval/mean_return", 0.99 if solved else 0.0, episodes * size)
            writer.add_scalar("charts/episodes", episodes, episodes * size)
    config = {"name": variant, "seed": seed, "env": {"id": "rlsoft/DeepSea-v0",
              "kwargs": {"size": size}}, "agent": {"type": "dqn"}}  # fmt: skip
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    (run_dir / "summary.json").write_text(json.dumps({"steps": budget * size}))


SOLVED = {4: [10, 20, 30, 40], 8: [50, None, None, 90]}


@pytest.fixture
def swept_logdir(tmp_path):
    for size, solved in SOLVED.items():
        for seed, at in enumerate(solved):
            write_run(tmp_path / f"rlsoft_DeepSea-v0_size_{size}" / "eps" / f"seed_{seed}",
                      size, at, seed=seed)  # fmt: skip
    meta = {"name": "deep", "variants": ["eps"], "definition": {
        "sweep": {"parameter": "env.kwargs.size", "values": [4, 8]},
        "analysis": {"return_threshold": 0.9}}}  # fmt: skip
    (tmp_path / "compare.yaml").write_text(yaml.safe_dump(meta))
    return tmp_path


def csv_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_report_gives_times_per_cell_with_censoring(swept_logdir):
    analysis, written = report(swept_logdir, n_resamples=300)
    assert analysis.threshold == 0.9 and analysis.sweep_parameter == "env.kwargs.size"
    assert {p.name for p in written} >= {"scaling_rlsoft_DeepSea-v0.png", "summary.csv"}
    rows = {(r["env"], r["metric"], r["statistic"]): r for r in csv_rows(written[0])}
    for size, solved in SOLVED.items():
        env = f"rlsoft/DeepSea-v0 size={size}"
        episodes = np.array([100 if s is None else s for s in solved], dtype=float)
        for metric, times in (("episodes", episodes), ("steps", episodes * size)):
            iqm = rows[(env, f"{metric}_to_threshold", "iqm")]
            assert float(iqm["value"]) == pytest.approx(trim_mean(times, 0.25))
            censored = sum(s is None for s in solved)
            assert int(iqm["censored"]) == censored and iqm["runs"] == "4"
            # four runs: the IQM trims one at each end, so two censored runs enter it
            assert iqm["lower_bound"] == ("value ci_high" if censored >= 2 else "")
            mean = rows[(env, f"{metric}_to_threshold", "mean")]
            assert float(mean["value"]) == pytest.approx(times.mean())
    # the other metrics' rows leave the new columns empty
    final = rows[("rlsoft/DeepSea-v0 size=4", "final_return", "iqm")]
    assert final["censored"] == "" and final["lower_bound"] == ""

    markdown = (swept_logdir / "summary.md").read_text()
    assert "Steps to reach an evaluation return ≥ 0.9" in markdown
    assert "| eps | 4 | 2/4 | >" in markdown  # size 8: two of four censored, IQM a bound
    assert "| eps | 4 | 0/4 | 25 [" in markdown.replace(",", "")  # size 4 episodes: exact
    assert "lower bound" in markdown and "censored at its budget" in markdown
    assert "![scaling_rlsoft_DeepSea-v0.png](scaling_rlsoft_DeepSea-v0.png)" in markdown


def test_rlsoft_report_prints_times_and_takes_a_threshold(swept_logdir, capsys):
    assert main(["report", str(swept_logdir)]) == 0
    out = capsys.readouterr().out
    assert "steps to reach an evaluation return ≥ 0.9" in out
    assert "2/4" in out and "Censored" in out
    # a threshold nobody reaches: every run censored at its budget
    assert main(["report", str(swept_logdir), "--threshold", "2"]) == 0
    rows = csv_rows(swept_logdir / "summary.csv")
    times = [r for r in rows if r["metric"] == "steps_to_threshold" and r["statistic"] == "iqm"]
    assert [(r["censored"], float(r["value"])) for r in times] == [("4", 400.0), ("4", 800.0)]
    assert main(["report", str(swept_logdir), "--threshold", "nan"]) == 2
    assert "rlsoft: error: --threshold must be a finite number" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# End to end: a small grid run
# --------------------------------------------------------------------------------------------


def test_a_swept_grid_runs_and_its_times_match_the_runs_histories(tmp_path, capsys):
    path = tmp_path / "deep.yaml"
    path.write_text(yaml.safe_dump({"name": "deep", "base": BASE, "seeds": 2,
                                    "variants": {"eps": {}}, "sweep": SWEEP,
                                    "analysis": {"return_threshold": 0.5}}))  # fmt: skip
    logdir = tmp_path / "runs"
    assert main(["compare", str(path), "--workers", "2", "--logdir", str(logdir)]) == 0
    captured = capsys.readouterr()
    assert "(1 variant × 2 seeds × 2 swept cells)" in captured.err
    assert "rlsoft/DeepSea-v0 size=3: steps to reach" in captured.out
    assert (logdir / "scaling_rlsoft_DeepSea-v0.png").stat().st_size > 0
    rows = {(r["env"], r["metric"], r["statistic"], r["variant"]): r
            for r in csv_rows(logdir / "summary.csv")}  # fmt: skip
    for size in (2, 3):
        times, censored = [], 0
        for seed in (0, 1):
            run = logdir / f"rlsoft_DeepSea-v0_size_{size}" / "eps" / f"seed_{seed}"
            history = json.loads((run / "summary.json").read_text())["eval_history"]
            hits = [step for step, value in history if value >= 0.5]
            times.append(hits[0] if hits else 100 * size)
            censored += not hits
        row = rows[(f"rlsoft/DeepSea-v0 size={size}", "steps_to_threshold", "mean", "eps")]
        assert float(row["value"]) == pytest.approx(np.mean(times))
        assert int(row["censored"]) == censored

    # the Python API: every run is finished, so this only reports; its rows are the file's
    result = rlsoft.compare(str(path), workers=1, logdir=logdir)
    typed = [r for r in result.rows if r["metric"] == "steps_to_threshold"]
    assert len(typed) == 2 * 3  # two cells × mean, median, IQM
    for r in typed:
        line = rows[(r["env"], r["metric"], r["statistic"], r["variant"])]
        assert r["censored"] == int(line["censored"]) and r["lower_bound"] == line["lower_bound"]
        assert r["value"] == pytest.approx(float(line["value"]), abs=1e-6)
