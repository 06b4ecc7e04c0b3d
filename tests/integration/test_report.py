"""rlsoft report: reading event files back, grouping runs, and the numbers it writes.

The runs here are synthetic event files written with SummaryWriter (exactly representable
values), so the expected statistics can be computed by hand.
"""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest
import yaml
from torch.utils.tensorboard import SummaryWriter

import agents  # noqa: F401 - registers the agent types (the report names them by their titles)
from rlsoft.cli import main
from rlsoft.compare.report import (
    describe_config,
    discover_run_dirs,
    load_runs,
    read_scalars,
    report,
)
from rlsoft.errors import RlsoftError
from rlsoft.rl import agent as agent_registry
from rlsoft.rl.agent import AgentSpec, register_agent
from rlsoft.run.config import StrictModel


def write_run(run_dir, curve, *, config=None, finished=True, entropy=None, tag="eval/mean_return"):
    """A run dir with ``curve = [(step, value), ...]`` under ``tag``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with SummaryWriter(str(run_dir)) as writer:
        for step, value in curve:
            writer.add_scalar(tag, value, step)
        for step, value in entropy or []:
            writer.add_scalar("exploration/entropy", value, step)
    if config is not None:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
        if finished:
            (run_dir / "summary.json").write_text(json.dumps({"steps": curve[-1][0]}))
    return run_dir


def taxi_config(name, policy="epsilon_greedy", seed=0, **exploration):
    return {
        "name": name,
        "seed": seed,
        "env": {"id": "Taxi-v4"},
        "agent": {"type": "q_learning"},
        "exploration": {"policy": policy, **exploration},
    }


# Final returns per variant (4 seeds each) and the shared curve shape.
FINALS = {"eps": [1.0, 2.0, 3.0, 10.0], "boltz": [4.0, 4.0, 5.0, 7.0]}


@pytest.fixture
def grid_logdir(tmp_path):
    for variant, finals in FINALS.items():
        policy = "epsilon_greedy" if variant == "eps" else "boltzmann"
        for seed, final in enumerate(finals):
            write_run(
                tmp_path / "Taxi-v4" / variant / f"seed_{seed}",
                [(0, -10.0), (100, final)],
                config=taxi_config(variant, policy, seed),
                entropy=[(50, 1.5), (100, 1.0)],
            )
    return tmp_path


def rows_by_key(path):
    with open(path, newline="") as handle:
        return {
            (r["env"], r["metric"], r["statistic"], r["variant"], r["versus"]): r
            for r in csv.DictReader(handle)
        }


def test_report_numbers_match_hand_computations(grid_logdir):
    analysis, written = report(grid_logdir, n_resamples=500)
    rows = rows_by_key(grid_logdir / "summary.csv")
    eps = rows[("Taxi-v4", "final_return", "iqm", "eps", "")]
    assert float(eps["value"]) == pytest.approx(2.5)  # middle two of 1, 2, 3, 10
    assert int(eps["runs"]) == 4
    assert float(rows[("Taxi-v4", "final_return", "mean", "eps", "")]["value"]) == 4.0
    assert float(rows[("Taxi-v4", "final_return", "median", "boltz", "")]["value"]) == 4.5
    # P(boltz > eps): 4, 4, 5, 7 each beat 1, 2, 3 and lose to 10 → 12 wins of 16 pairs
    poi = rows[("Taxi-v4", "final_return", "probability_of_improvement", "boltz", "eps")]
    assert float(poi["value"]) == pytest.approx(12 / 16)
    assert float(poi["ci_low"]) <= 0.75 <= float(poi["ci_high"])
    # AUC: time average of the line from -10 to f = (f - 10) / 2; scores seen: -10 .. 10
    auc = rows[("Taxi-v4", "auc", "mean", "eps", "")]
    expected = np.mean([((f - 10) / 2 + 10) / 20 for f in FINALS["eps"]])
    assert float(auc["value"]) == pytest.approx(expected)
    names = {p.name for p in written}
    assert {
        "summary.csv",
        "summary.md",
        "learning_curves_Taxi-v4.png",
        "final_scores_Taxi-v4.png",
    } <= names
    for png in (p for p in written if p.suffix == ".png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert analysis.variants == ["boltz", "eps"]  # no compare.yaml: sorted


def test_markdown_explains_variants_and_method(grid_logdir):
    report(grid_logdir, n_resamples=200)
    text = (grid_logdir / "summary.md").read_text()
    assert "**eps**: Q-learning, ε-greedy (ε=0.1)" in text
    assert "Boltzmann (τ=1)" in text
    assert "| variant | runs | mean | median | IQM |" in text
    assert "P(X > Y)" in text and "stratified bootstrap" in text
    assert "![learning_curves_Taxi-v4.png](learning_curves_Taxi-v4.png)" in text


def test_report_is_reproducible(grid_logdir):
    report(grid_logdir, n_resamples=300)
    first = (grid_logdir / "summary.csv").read_text()
    report(grid_logdir, n_resamples=300)
    assert (grid_logdir / "summary.csv").read_text() == first


def test_layout_gives_env_variant_seed_and_config_gives_env_id(tmp_path):
    write_run(
        tmp_path / "ALE_Pong-v5" / "v" / "seed_3", [(1, 1.0)], config=taxi_config("v", seed=3)
    )
    runs, skipped = load_runs(tmp_path)
    assert not skipped
    (run,) = runs
    assert (run.env, run.variant, run.seed) == ("Taxi-v4", "v", 3)  # env id from config.yaml


def test_unfinished_and_curveless_runs_are_skipped(tmp_path):
    write_run(tmp_path / "E" / "a" / "seed_0", [(1, 1.0)], config=taxi_config("a"))
    write_run(tmp_path / "E" / "a" / "seed_1", [(1, 1.0)], config=taxi_config("a"), finished=False)
    write_run(tmp_path / "E" / "b" / "seed_0", [(1, 1.0)], tag="charts/sps")
    write_run(tmp_path / "E" / "a" / "seed_2", [(1, 1.0)], config=taxi_config("a"))
    (tmp_path / "E" / "a" / "seed_2" / "summary.json").write_text('{"steps": 1', encoding="utf-8")
    runs, skipped = load_runs(tmp_path)
    assert [r.run_dir.name for r in runs] == ["seed_0"]
    reasons = {p.parent.name + "/" + p.name: why for p, why in skipped}
    assert reasons == {
        "a/seed_1": "unfinished (no summary.json)",
        "a/seed_2": "damaged summary.json (not the summary rlsoft writes)",
        "b/seed_0": "no eval/mean_return scalars",
    }


def test_runs_whose_event_files_are_gone_are_named_with_the_reason(tmp_path, capsys):
    """A finished run dir (config.yaml and summary.json) without its event files is
    reported as skipped for that reason, and when no run is left the error names it."""
    for seed in range(2):
        run = write_run(tmp_path / "E" / "a" / f"seed_{seed}", [(1, 1.0)], config=taxi_config("a"))
        for events in run.glob("events.out.tfevents.*"):
            events.unlink()
    stray = tmp_path / "notes"  # a config.yaml alone is not taken for a run dir
    stray.mkdir()
    (stray / "config.yaml").write_text("x: 1\n")
    runs, skipped = load_runs(tmp_path)
    assert runs == []
    gone = "no TensorBoard event files (deleted or never written)"
    assert skipped == [(tmp_path / "E/a/seed_0", gone), (tmp_path / "E/a/seed_1", gone)]
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "rlsoft: error: found no run to compare: all 2 run dirs were skipped (E/a/seed_0: no "
        "TensorBoard event files (deleted or never written); "
    ), err
    assert err.rstrip().endswith("; train again a run whose event files are gone")
    assert err.count("\n") == 1


def test_a_logdir_of_skipped_runs_gets_each_kind_s_fix(tmp_path, capsys):
    """Unfinished, damaged and outside the comparison: the error lists them and says what
    makes each kind count, once per kind."""
    write_run(tmp_path / "E" / "a" / "seed_0", [(1, 1.0)], config=taxi_config("a"), finished=False)
    write_run(tmp_path / "E" / "a" / "seed_1", [(1, 1.0)], config=taxi_config("a"), finished=False)
    write_run(tmp_path / "E" / "a" / "seed_2", [(1, 1.0)], config=taxi_config("a"))
    (tmp_path / "E" / "a" / "seed_2" / "summary.json").write_text('{"final_eval": 3}')
    write_run(tmp_path / "E" / "b" / "seed_0", [(1, 1.0)], config=taxi_config("b"))
    write_run(tmp_path / "E" / "b" / "seed_1", [(1, 1.0)], config=taxi_config("b", seed=1))
    (tmp_path / "compare.yaml").write_text(yaml.safe_dump({"variants": ["a"], "seeds": [0, 1]}))
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "all 5 run dirs were skipped (E/a/seed_0: unfinished (no summary.json); " in err
    assert "; and 3 more); rlsoft train --resume RUN_DIR finishes an unfinished run; " in err
    assert err.count("finishes an unfinished run") == 1
    assert "; delete a damaged summary.json, then resume that run; " in err
    assert err.rstrip().endswith("report runs outside compare.yaml from a directory of their own")


def test_a_folder_inside_a_comparison_points_to_the_comparisons_report(tmp_path, capsys):
    for seed in range(2):
        write_run(tmp_path / "E" / "a" / f"seed_{seed}", [(1, 1.0)], config=taxi_config("a"))
    (tmp_path / "compare.yaml").write_text(yaml.safe_dump({"variants": ["a"], "seeds": [0, 1]}))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for inner in (tmp_path / "E", tmp_path / "E" / "a"):
        assert main(["report", str(inner)]) == 2
        assert (
            capsys.readouterr()
            .err.rstrip()
            .endswith(
                f"is inside the comparison logdir {str(tmp_path)!r}, whose report covers it (a "
                f"table and plots per environment): run rlsoft report {tmp_path}"
            )
        )
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_hand_made_runs_are_grouped_by_config_name_and_split_by_policy(tmp_path):
    # as rlsoft train names them: <name>__s<seed>__<time>
    for seed in range(2):
        write_run(
            tmp_path / f"taxi_eps__s{seed}__t",
            [(1, 1.0 + seed)],
            config=taxi_config("taxi_eps", seed=seed),
        )
    write_run(tmp_path / "mixed__s0__t", [(1, 0.0)], config=taxi_config("mixed"))
    write_run(tmp_path / "mixed__s1__t", [(1, 0.0)], config=taxi_config("mixed", "boltzmann", 1))
    runs, _ = load_runs(tmp_path)
    groups = sorted({(r.variant, r.seed) for r in runs})
    assert groups == [
        ("mixed:q_learning:boltzmann", 1),
        ("mixed:q_learning:epsilon_greedy", 0),
        ("taxi_eps", 0),
        ("taxi_eps", 1),
    ]


def test_hand_made_runs_of_one_name_that_differ_in_a_setting_are_variants_not_seeds(tmp_path):
    """rlsoft train CONFIG twice, once with --set agent.gamma=0.9: two variants named by the
    setting, each seed kept (not skipped as a repeat of the other's seed); a longer budget or
    another device alone does not make a variant."""
    for seed in range(2):
        write_run(tmp_path / f"taxi__s{seed}__a", [(1, 1.0)], config=taxi_config("taxi", seed=seed))
    longer = {**taxi_config("taxi", seed=1), "train": {"total_steps": 999}, "device": "cuda"}
    write_run(tmp_path / "taxi__s1__b", [(1, 1.0)], config=longer)
    other = taxi_config("taxi", seed=0)
    other["agent"]["gamma"] = 0.9
    write_run(tmp_path / "taxi__s0__c", [(1, 2.0)], config=other)
    runs, _ = load_runs(tmp_path)
    assert sorted((r.variant, r.seed) for r in runs) == [
        ("taxi[agent.gamma=0.99]", 0),  # the default, filled in by validating the config
        ("taxi[agent.gamma=0.99]", 1),
        ("taxi[agent.gamma=0.99]", 1),
        ("taxi[agent.gamma=0.9]", 0),
    ]
    analysis, _ = report(tmp_path)
    kept = {p.name for p, why in analysis.skipped if "same seed" in why}
    assert kept == {"taxi__s1__a"} or kept == {"taxi__s1__b"}  # the repeat of seed 1 only


def test_configs_that_differ_past_the_labels_first_settings_stay_apart(tmp_path, capsys):
    """Three hand-made configs whose first three differing settings (alphabetically) do not
    tell the last two apart: each is its own variant, named by a setting that separates them,
    none taken for another's seed, and the terminal table shows the labels' brackets."""
    base = taxi_config("taxi")
    changed = {"count_bonus": 0.1, "gamma": 0.9, "initial_q": 1.0}
    configs = {
        "a": base,
        "b": {**base, "agent": {**base["agent"], **changed, "learning_rate": 0.3}},
        "c": {**base, "agent": {**base["agent"], **changed, "learning_rate": 0.7}},
    }
    for name, config in configs.items():
        write_run(tmp_path / f"taxi__s0__{name}", [(1, 1.0)], config=config)
    runs, _ = load_runs(tmp_path)
    labels = {r.run_dir.name: r.variant for r in runs}
    assert labels == {
        "taxi__s0__a": "taxi[agent.count_bonus=0.0, agent.gamma=0.99, agent.learning_rate=0.1, "
        "+1 more]",
        "taxi__s0__b": "taxi[agent.count_bonus=0.1, agent.gamma=0.9, agent.learning_rate=0.3, "
        "+1 more]",
        "taxi__s0__c": "taxi[agent.count_bonus=0.1, agent.gamma=0.9, agent.learning_rate=0.7, "
        "+1 more]",
    }
    assert main(["report", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "same seed" not in err
    # Rich reads "[agent.count_bonus=…]" as a style tag unless escaped, and prints "taxi".
    assert "taxi[agent.count_bonus=0.1," in out


def test_a_field_added_since_a_run_was_made_does_not_split_its_variant(tmp_path):
    """A run made before a field existed (its config.yaml lacks agent.frame_padding, say)
    and one made after (which writes the default) are seeds of one variant."""
    old = taxi_config("taxi", seed=0)
    new = taxi_config("taxi", seed=1)
    new["agent"] = {**new["agent"], "gamma": 0.99, "initial_q": 0.0}  # written out: defaults
    write_run(tmp_path / "taxi__s0__a", [(1, 1.0)], config=old)
    write_run(tmp_path / "taxi__s1__b", [(1, 1.0)], config=new)
    runs, _ = load_runs(tmp_path)
    assert sorted((r.variant, r.seed) for r in runs) == [("taxi", 0), ("taxi", 1)]


def test_a_resumed_runs_purged_events_are_dropped_without_tensorboards_notice(tmp_path, caplog):
    """A run killed after logging past its last checkpoint (step 200) and resumed there: its
    stale points (250 and 300 of the first attempt) are dropped, and TensorBoard's "out of
    order event.step … TensorFlow restart" warning for that purge is not printed."""
    import logging

    from rlsoft.run.logger import RunLogger

    first = RunLogger(tmp_path)
    for step in (100, 200, 250, 300):
        first.scalars({"eval/mean_return": float(step)}, step)
        first.hand_off()
    first.close()
    time.sleep(1.1)  # event files are named by the second they were made
    resumed = RunLogger(tmp_path, purge_step=201)
    for step in (300, 400):
        resumed.scalars({"eval/mean_return": -float(step)}, step)
        resumed.hand_off()
    resumed.close()
    with caplog.at_level(logging.WARNING):
        steps, values = read_scalars(tmp_path, ["eval/mean_return"])["eval/mean_return"]
    assert steps.tolist() == [100, 200, 300, 400]
    assert values.tolist() == [100.0, 200.0, -300.0, -400.0]
    assert not [r for r in caplog.records if "out of order" in r.getMessage()]
    # Other TensorBoard warnings still reach the log.
    assert not logging.getLogger("tensorboard").filters


def test_several_envs_get_a_stratified_all_envs_block(tmp_path):
    for env, scale in (("Taxi-v4", 1.0), ("FrozenLake-v1", 0.01)):
        for variant, finals in FINALS.items():
            for seed, final in enumerate(finals):
                cfg = taxi_config(variant, seed=seed)
                cfg["env"]["id"] = env
                write_run(
                    tmp_path / env / variant / f"seed_{seed}",
                    [(0, 0.0), (10, final * scale)],
                    config=cfg,
                )
    analysis, written = report(tmp_path, n_resamples=300)
    assert analysis.blocks() == ["FrozenLake-v1", "Taxi-v4", "all envs"]
    rows = rows_by_key(tmp_path / "summary.csv")
    # normalised per env by its own range (0..10 here), pooled over both envs
    pooled = rows[("all envs", "final_return", "mean", "eps", "")]
    assert float(pooled["value"]) == pytest.approx(np.mean(FINALS["eps"]) / 10)
    assert int(pooled["runs"]) == 8
    assert "final_scores_all_envs.png" in {p.name for p in written}


def test_describe_config_in_words():
    assert describe_config(taxi_config("x", epsilon=0.1)) == "Q-learning, ε-greedy (ε=0.1)"
    decayed = taxi_config(
        "x", epsilon={"type": "linear", "start": 1.0, "end": 0.05, "duration": 30000}
    )
    assert describe_config(decayed) == "Q-learning, ε-greedy (ε 1→0.05 over 30,000 steps)"
    soft = taxi_config(
        "x",
        "boltzmann",
        temperature={"type": "exponential", "start": 5, "end": 0.1, "half_life": 1000},
    )
    soft["agent"] = {"type": "soft_q_learning", "temperature": 0.5}
    assert describe_config(soft) == (
        "soft Q-learning (target τ=0.5), Boltzmann (τ 5→0.1, half-life 1,000 steps)"
    )


def test_describe_config_names_exploration_bonuses_and_ez_greedy():
    config = taxi_config("x", "ez_greedy", epsilon=0.2, mu=1.5)
    config["agent"] = {"type": "q_learning", "initial_q": 10.0, "count_bonus": 0.5}
    assert describe_config(config) == (
        "Q-learning (initial Q 10) (count bonus β=0.5), εz-greedy (ε=0.2, μ=1.5)"
    )
    config["agent"] = {"type": "q_learning", "initial_q": 0.0, "count_bonus": 0.0}  # the defaults
    assert describe_config(config) == "Q-learning, εz-greedy (ε=0.2, μ=1.5)"


def test_describe_config_names_noisynet_and_bootstrapped_dqn():
    config = taxi_config("x", "greedy")
    config["agent"] = {"type": "dqn", "noisy": True}
    assert describe_config(config) == "DQN (NoisyNet), greedy"
    config["agent"] = {"type": "dqn", "ensemble": {"heads": 10, "prior_scale": 3.0}}
    assert describe_config(config) == "DQN (bootstrapped, 10 heads, prior β=3), greedy"
    config["agent"] = {"type": "dqn", "ensemble": {"heads": 4, "prior_scale": 0.0}}
    assert describe_config(config) == "DQN (bootstrapped, 4 heads, no prior), greedy"


def test_describe_config_names_dqn_heads_and_targets():
    config = taxi_config("x", epsilon=0.1)
    agent = {"type": "dqn", "target": "munchausen", "soft_temperature": 0.03}
    config["agent"] = {**agent, "munchausen_alpha": 0.9}
    assert describe_config(config) == "DQN (Munchausen target τ=0.03, α=0.9), ε-greedy (ε=0.1)"
    config["agent"] = {"type": "dqn", "target": "soft"}  # values the config does not hold
    assert describe_config(config) == "DQN (soft target), ε-greedy (ε=0.1)"
    config["agent"] = {"type": "dqn", "head": "c51", "double": True, "target": "standard"}
    assert describe_config(config) == "DQN (C51) (Double), ε-greedy (ε=0.1)"
    config["agent"] = {"type": "dqn", "target": "mellowmax", "mellowmax_omega": 10.0}
    assert describe_config(config) == "DQN (mellowmax target ω=10), ε-greedy (ε=0.1)"
    # compare_atari_precision.yaml's two variants differ in the arithmetic alone
    config["agent"] = {"type": "dqn", "precision": "bfloat16", "n_step": 3, "dueling": True}
    assert describe_config(config) == "DQN (dueling) (3-step) (bfloat16), ε-greedy (ε=0.1)"
    config["agent"] = {"type": "dqn", "precision": "float32", "n_step": 1, "dueling": False}
    assert describe_config(config) == "DQN, ε-greedy (ε=0.1)"


def test_describe_config_names_agents_by_their_registered_title(request):
    """The titles come from the registry: a newly registered agent type is named by its
    title, and an unknown type by itself."""
    # Only the probe's entry is removed afterwards: swapping the whole registry for a copy
    # would also drop an agent family whose lazy import registered it during this test (dqn).
    register_agent(
        AgentSpec(name="report_probe", title="Probe-learning", config_model=StrictModel, build=id)
    )
    request.addfinalizer(lambda: agent_registry._REGISTRY.pop("report_probe", None))
    probe = taxi_config("x", epsilon=0.1)
    probe["agent"] = {"type": "report_probe"}
    assert describe_config(probe) == "Probe-learning, ε-greedy (ε=0.1)"
    probe["agent"] = {"type": "not_registered"}
    assert describe_config(probe) == "not_registered, ε-greedy (ε=0.1)"
    dqn = taxi_config("x", epsilon=0.1)
    dqn["agent"] = {"type": "dqn"}
    assert describe_config(dqn) == "DQN, ε-greedy (ε=0.1)"


def test_report_errors_are_one_sentence(tmp_path):
    with pytest.raises(RlsoftError, match="does not exist"):
        report(tmp_path / "missing")
    with pytest.raises(RlsoftError, match="found no finished run"):
        report(tmp_path)


def test_rlsoft_report_command(grid_logdir, capsys):
    assert main(["report", str(grid_logdir)]) == 0
    out = capsys.readouterr().out
    assert "Taxi-v4: final greedy evaluation return" in out
    assert "probability of improvement" in out
    assert "summary.csv" in out and "tensorboard --logdir" in out
    assert main(["report", str(grid_logdir / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_discover_skips_the_root_and_checkpoints(tmp_path):
    write_run(tmp_path, [(1, 1.0)])  # e.g. the comparison's own dashboard file in the root
    write_run(tmp_path / "r", [(1, 1.0)])
    write_run(tmp_path / "r" / "checkpoints" / "x", [(1, 1.0)])
    assert discover_run_dirs(tmp_path) == [tmp_path / "r"]


def test_one_run_dir_is_refused_with_the_directory_to_pass(tmp_path, capsys):
    run = write_run(tmp_path / "runs" / "taxi__s0__t", [(1, 1.0)], config=taxi_config("taxi"))
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rlsoft: error: {str(run)!r} is one run dir; rlsoft report compares")
    assert f"pass its parent {tmp_path / 'runs'}" in err and "rlsoft eval" in err
    assert not list(run.glob("summary.*[dv]")) and not list(run.glob("*.png"))  # nothing written


def test_the_report_names_the_evaluation_policy_from_the_run_configs(tmp_path, capsys):
    for seed in range(2):
        config = {**taxi_config("atari_like", seed=seed), "train": {"eval_epsilon": 0.05}}
        write_run(tmp_path / "E" / "v" / f"seed_{seed}", [(1, 1.0 + seed)], config=config)
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Taxi-v4: final ε-greedy (ε 0.05) evaluation return" in out and "greedy eval" not in out
    text = (tmp_path / "summary.md").read_text()
    assert "**Final ε-greedy (ε 0.05) evaluation return**" in text
    assert "final evaluation return (ε-greedy (ε 0.05) policy" in text
    write_run(tmp_path / "E" / "w" / "seed_0", [(1, 1.0)], config=taxi_config("w"))
    analysis, _ = report(tmp_path, n_resamples=100)
    assert analysis.evaluation == "greedy or ε-greedy (ε per run: 0, 0.05)"
    # A resume that set train.eval_epsilon after the last evaluation: the summary's ε counts.
    for seed in range(2):
        summary = tmp_path / "E" / "v" / f"seed_{seed}" / "summary.json"
        summary.write_text(json.dumps({"steps": 1, "final_eval_epsilon": 0.0}))
    analysis, _ = report(tmp_path, n_resamples=100)
    assert analysis.evaluation == "greedy"


def test_each_environment_is_headed_by_its_own_evaluation_policy(tmp_path, capsys):
    """A logdir with an ε-greedily evaluated game (Atari's ε 0.05) and a greedily evaluated
    one: each heading, plot axis and summary.md section names its own environment's ε."""
    for seed in range(2):
        atari = {**taxi_config("v", seed=seed), "train": {"eval_epsilon": 0.05}}
        write_run(tmp_path / "A" / "v" / f"seed_{seed}", [(1, 1.0 + seed)], config=atari)
        lake = {**taxi_config("v", seed=seed), "env": {"id": "FrozenLake-v1"}}
        write_run(tmp_path / "B" / "v" / f"seed_{seed}", [(1, 0.5 * seed)], config=lake)
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Taxi-v4: final ε-greedy (ε 0.05) evaluation return" in out
    assert "FrozenLake-v1: final greedy evaluation return" in out
    headings = [line for line in out.splitlines() if ": final " in line]
    assert len(headings) == 3 and not any("ε per run" in line for line in headings)  # + all envs
    sections = (tmp_path / "summary.md").read_text().split("## Method")[0]
    assert "ε per run" not in sections  # the Method section names both
    analysis, _ = report(tmp_path, n_resamples=100)
    assert analysis.evaluation_in("Taxi-v4") == "ε-greedy (ε 0.05)"
    assert analysis.evaluation_in("FrozenLake-v1") == "greedy"
    # Over the whole report (its Method section) both are named.
    assert analysis.evaluation == "greedy or ε-greedy (ε per run: 0, 0.05)"


def test_runs_of_one_variant_and_seed_count_once_the_newest(tmp_path):
    """A config trained three times with seed 0 is one sample, not three: the newest run is
    used, the others are listed as skipped with the reason."""
    import os

    for k, final in enumerate([1.0, 2.0, 3.0]):
        run = write_run(
            tmp_path / f"taxi__s0__2026120{k}", [(0, -5.0), (100, final)], config=taxi_config("t")
        )
        os.utime(run / "summary.json", (1_000_000 + k, 1_000_000 + k))
    write_run(tmp_path / "taxi__s1", [(0, -5.0), (100, 7.0)], config=taxi_config("t", seed=1))
    analysis, _ = report(tmp_path, n_resamples=200)
    used = sorted(run.run_dir.name for run in analysis.runs)
    assert used == ["taxi__s0__20261202", "taxi__s1"]
    reasons = dict(analysis.skipped)
    assert sorted(str(p) for p in reasons) == ["taxi__s0__20261200", "taxi__s0__20261201"]
    assert all("the same seed as taxi__s0__20261202" in r for r in reasons.values())


def test_a_comparison_report_leaves_out_runs_its_config_no_longer_has(grid_logdir):
    """After ``rlsoft compare`` ran again with fewer seeds (compare.yaml says which), the
    runs of the dropped seeds stay on disk but are not counted."""
    meta = {"name": "g", "variants": ["eps", "boltz"], "seeds": [0, 1, 2], "definition": {}}
    (grid_logdir / "compare.yaml").write_text(yaml.safe_dump(meta))
    analysis, _ = report(grid_logdir, n_resamples=200)
    assert sorted({run.seed for run in analysis.runs}) == [0, 1, 2]
    assert sorted(str(p) for p, _ in analysis.skipped) == [
        "Taxi-v4/boltz/seed_3",
        "Taxi-v4/eps/seed_3",
    ]
    assert all(r == "seed not in the comparison (compare.yaml)" for _, r in analysis.skipped)
