"""A comparison's TensorBoard dashboards, without a server: the HParams columns and trials,
the Custom Scalars layout and the copies of the runs' curves it charts (the browser test in
tests/integration/test_tensorboard_browser.py checks what a person sees)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, metadata
from torch.utils.tensorboard import SummaryWriter

import agents  # noqa: F401 - registers the agents for plan validation
from rlsoft.compare.dashboards import (
    EVAL_METRICS,
    MIRRORED_TAGS,
    add_finished_run,
    dashboard_layout,
    hparam_values,
    hparams_domain,
    mirror_curves,
    write_dashboards,
)
from rlsoft.compare.plan import load_comparison, plan_comparison
from rlsoft.run.logger import RunLogger, experiment_summary, trial_key

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
TAXI_VARIANTS = ["eps_const", "eps_decay", "boltzmann_const", "boltzmann_anneal", "softq"]


@pytest.fixture(scope="module")
def taxi(tmp_path_factory):
    """The shipped Taxi comparison, planned (nothing runs), with 2 seeds."""
    logdir = tmp_path_factory.mktemp("taxi") / "compare_taxi_exploration"
    comparison = load_comparison(CONFIGS / "compare_taxi_exploration.yaml", seeds=2, logdir=logdir)
    return comparison, hparams_domain(comparison.runs, "compare_taxi_exploration")


def test_a_schedule_is_one_value_and_an_unread_exploration_parameter_is_not_applicable():
    config = {
        "name": "decay",
        "seed": 3,
        "logdir": "runs/x",
        "run_name": "seed_3",
        "env": {"id": "Taxi-v4", "kwargs": {}},
        "agent": {"type": "q_learning", "learning_rate": 0.5},
        "exploration": {
            "policy": "epsilon_greedy",
            "epsilon": {"type": "linear", "start": 1.0, "end": 0.05, "duration": 30000},
            "temperature": 1.0,
        },
    }
    assert hparam_values(config) == {
        "name": "decay",
        "seed": 3,
        "env.id": "Taxi-v4",
        "agent.type": "q_learning",
        "agent.learning_rate": 0.5,
        "exploration.policy": "epsilon_greedy",
        "exploration.epsilon": "linear 1→0.05 over 30,000 steps",
        "exploration.temperature": "n/a",  # the default τ, which ε-greedy never reads
    }
    config["exploration"] = {
        "policy": "boltzmann",
        "epsilon": 0.1,
        "temperature": {"type": "exponential", "start": 5.0, "end": 0.5, "half_life": 2500.0},
    }
    values = hparam_values(config)
    assert values["exploration.epsilon"] == "n/a"
    assert values["exploration.temperature"] == "exponential 5→0.5, half-life 2,500 steps"
    # εz-greedy reads ε and the zeta exponent μ; the others never read μ.
    config["exploration"] = {"policy": "ez_greedy", "epsilon": 0.1, "temperature": 1.0, "mu": 2.0}
    values = hparam_values(config)
    assert (values["exploration.epsilon"], values["exploration.mu"]) == (0.1, 2.0)
    assert values["exploration.temperature"] == "n/a"
    config["exploration"]["policy"] = "boltzmann"
    assert hparam_values(config)["exploration.mu"] == "n/a"


def test_every_trial_has_every_column(taxi):
    comparison, domain = taxi
    columns = {c["name"]: c for c in domain["columns"]}
    assert len(domain["trials"]) == len(comparison.runs) == 10
    for trial in domain["trials"].values():
        assert set(trial["hparams"]) == set(columns)
    by_variant = {}
    for spec in comparison.runs:
        by_variant.setdefault(spec.variant, []).append(
            domain["trials"][trial_key(spec.run_dir)]["hparams"]
        )
    # soft Q-learning's target temperature exists only in its trials: the others say n/a
    assert {t["agent.temperature"] for t in by_variant["softq"]} == {"0.1"}
    for variant in ("eps_const", "eps_decay", "boltzmann_const", "boltzmann_anneal"):
        assert {t["agent.temperature"] for t in by_variant[variant]} == {"n/a"}
    assert columns["agent.temperature"]["type"] == "string"
    assert columns["agent.temperature"]["values"] == ["0.1", "n/a"]
    assert {t["exploration.epsilon"] for t in by_variant["eps_decay"]} == {
        "linear 1→0.05 over 30,000 steps"
    }
    assert {t["exploration.epsilon"] for t in by_variant["boltzmann_anneal"]} == {"n/a"}
    assert {t["exploration.temperature"] for t in by_variant["boltzmann_anneal"]} == {
        "linear 10→0.1 over 30,000 steps"
    }
    # a field every trial has as a number stays a number column
    assert columns["agent.learning_rate"] == {
        "name": "agent.learning_rate",
        "type": "number",
        "min": 0.5,
        "max": 0.5,
    }
    assert columns["seed"]["type"] == "number"
    assert (columns["seed"]["min"], columns["seed"]["max"]) == (0, 1)
    assert columns["name"]["values"] == sorted(TAXI_VARIANTS)


def test_the_default_columns_tell_the_variants_apart(taxi):
    _, domain = taxi
    shown = [c["name"] for c in domain["columns"] if c.get("default")]
    # five at most (the dashboard's own number): the name, then what differs between the
    # variants, exploration first; env.id and seed stay one click away
    assert sorted(shown) == sorted(
        [
            "name",
            "exploration.policy",
            "exploration.epsilon",
            "exploration.temperature",
            "agent.type",
        ]
    )
    rows = {tuple(trial["hparams"][name] for name in shown) for trial in domain["trials"].values()}
    assert len(rows) == len(TAXI_VARIANTS)  # the shown columns alone separate the variants


def test_env_and_seed_are_shown_when_few_fields_differ(tmp_path):
    base = {
        "env": {"id": "Taxi-v4"},
        "agent": {"type": "q_learning"},
        "exploration": {"policy": "epsilon_greedy"},
    }
    variants = {"low": {"exploration.epsilon": 0.05}, "high": {"exploration.epsilon": 0.3}}
    comparison = plan_comparison(
        {"name": "eps", "base": base, "seeds": 3, "variants": variants}, logdir=tmp_path
    )
    domain = hparams_domain(comparison.runs)
    shown = sorted(c["name"] for c in domain["columns"] if c.get("default"))
    assert shown == ["env.id", "exploration.epsilon", "name", "seed"]
    epsilon = next(c for c in domain["columns"] if c["name"] == "exploration.epsilon")
    assert epsilon["type"] == "number" and (epsilon["min"], epsilon["max"]) == (0.05, 0.3)


def test_trial_ids_are_short_distinct_and_name_seed_and_variant(taxi, tmp_path):
    comparison, domain = taxi
    ids = {
        trial_key(spec.run_dir): f"s{spec.seed}·{spec.variant} (compare_taxi_exploration)"
        for spec in comparison.runs
    }
    assert {key: trial["group"] for key, trial in domain["trials"].items()} == ids
    assert len(set(ids.values())) == len(ids)
    several = plan_comparison(
        {
            "name": "envs",
            "base": {"agent": {"type": "q_learning"}},
            "envs": ["Taxi-v4", "FrozenLake-v1"],
            "seeds": 1,
            "variants": {"a": {}},
        },
        logdir=tmp_path,
    )
    groups = sorted(t["group"] for t in hparams_domain(several.runs)["trials"].values())
    assert groups == ["s0·FrozenLake-v1·a", "s0·Taxi-v4·a"]


def test_the_experiment_flags_exactly_the_default_columns():
    columns = [
        {"name": "name", "type": "string", "values": ["a", "b"], "default": True},
        {"name": "agent.gamma", "type": "number", "min": 0.9, "max": 0.99},
        {"name": "flag", "type": "bool", "values": [False, True]},
    ]
    summary = experiment_summary(columns, ["eval/mean_return"])
    (value,) = summary.value
    assert value.tag == metadata.EXPERIMENT_TAG
    experiment = metadata.parse_experiment_plugin_data(value.metadata.plugin_data.content)
    infos = {h.name: h for h in experiment.hparam_infos}
    assert [h.name for h in experiment.hparam_infos] == ["name", "agent.gamma", "flag"]
    assert [infos[n].differs for n in ("name", "agent.gamma", "flag")] == [True, False, False]
    assert infos["name"].type == api_pb2.DATA_TYPE_STRING
    assert list(infos["name"].domain_discrete) == ["a", "b"]
    assert infos["agent.gamma"].type == api_pb2.DATA_TYPE_FLOAT64
    interval = infos["agent.gamma"].domain_interval
    assert (interval.min_value, interval.max_value) == (0.9, 0.99)
    assert list(infos["flag"].domain_discrete) == [False, True]
    assert [m.name.tag for m in experiment.metric_infos] == ["eval/mean_return"]
    with pytest.raises(ValueError, match="hparam column type"):
        experiment_summary([{"name": "x", "type": "list"}], [])


def test_a_grid_run_writes_its_trial_and_not_the_experiment(tmp_path):
    run_dir = tmp_path / "Taxi-v4" / "a" / "seed_0"
    domain = {
        "columns": [],
        "trials": {trial_key(run_dir): {"group": "s0·a", "hparams": {"name": "a", "x": "n/a"}}},
    }
    logger = RunLogger(run_dir)
    logger.scalars({"eval/mean_return": 7.0}, 100)
    logger.hparams({"name": "a", "seed": 0}, {"eval/mean_return": 7.0}, domain=domain)
    logger.close()
    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    content = accumulator.PluginTagToContent("hparams")
    assert metadata.EXPERIMENT_TAG not in content  # the comparison writes it, once
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    assert start.group_name == "s0·a"
    assert {k: v.string_value for k, v in start.hparams.items()} == {"name": "a", "x": "n/a"}
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    assert end.status == api_pb2.STATUS_SUCCESS


@pytest.mark.parametrize("prefix", ["compare_taxi_exploration", "cmp+1.v2", "a(b)"])
def test_layout_regexes_match_only_the_comparisons_copies(prefix):
    layout = dashboard_layout(prefix)
    (charts,) = layout.values()
    regexes = [regex for _, tags in charts.values() for regex in tags]
    assert len(regexes) == len(MIRRORED_TAGS)
    for tag in MIRRORED_TAGS:
        # TensorBoard's Custom Scalars applies each regex with re.match to every run's tags
        matching = [r for r in regexes if re.match(r, f"{prefix}/{tag}")]
        assert len(matching) == 1, tag
        for other in (tag, f"other/{tag}", f"x{prefix}/{tag}", f"{prefix}/{tag}/x"):
            assert not any(re.match(r, other) for r in regexes), other


def test_mirror_copies_the_charted_curves_with_steps_and_wall_times(tmp_path):
    run_dir = tmp_path / "run"
    writer = SummaryWriter(str(run_dir))
    written = {}
    for step, value in [(10, 1.0), (20, 2.5), (30, -4.0)]:
        writer.add_scalar("eval/mean_return", value, step, walltime=1000.0 + step)
        written[step] = value
    writer.add_scalar("exploration/epsilon", 0.5, 10, walltime=1010.0)
    writer.add_scalar("losses/td_loss", 3.0, 10)  # not charted: not copied
    writer.close()
    mirror_curves(run_dir, "cmp")
    first = sorted(run_dir.glob("events.out.tfevents.*.rlsoft-compare"))
    assert len(first) == 1
    mirror_curves(run_dir, "cmp")  # again: replaces its copy
    assert len(list(run_dir.glob("events.out.tfevents.*.rlsoft-compare"))) == 1
    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    assert {"cmp/eval/mean_return", "cmp/exploration/epsilon"} <= tags
    assert "cmp/losses/td_loss" not in tags
    copied = accumulator.Scalars("cmp/eval/mean_return")
    assert [(e.step, e.value, e.wall_time) for e in copied] == [
        (step, value, 1000.0 + step) for step, value in written.items()
    ]
    (tmp_path / "no_charted_tags").mkdir()
    assert mirror_curves(tmp_path / "no_charted_tags", "cmp") is None


def test_a_finished_run_with_a_new_final_metric_extends_the_experiment(tmp_path):
    comparison = plan_comparison(
        {
            "name": "m",
            "base": {"env": {"id": "Taxi-v4"}, "agent": {"type": "q_learning"}},
            "seeds": 1,
            "variants": {"a": {}},
        },
        logdir=tmp_path / "m",
    )
    assert write_dashboards(comparison) == tmp_path / "m" / "_comparison"
    (spec,) = comparison.runs
    writer = SummaryWriter(str(spec.run_dir))
    writer.add_scalar("eval/mean_return", 5.0, 100)
    writer.close()
    final = {"eval/mean_return": 5.0, "eval/teacher_mean_return": 8.0, "eval/note": "text"}
    (spec.run_dir / "summary.json").write_text(json.dumps({"final_eval": final}))

    def experiment_metrics() -> list[str]:
        accumulator = EventAccumulator(str(tmp_path / "m" / "_comparison"))
        accumulator.Reload()
        content = accumulator.PluginTagToContent("hparams")[metadata.EXPERIMENT_TAG]
        return [m.name.tag for m in metadata.parse_experiment_plugin_data(content).metric_infos]

    assert experiment_metrics() == list(EVAL_METRICS)
    metrics = add_finished_run(comparison, spec.run_dir, list(EVAL_METRICS))
    assert metrics == [*EVAL_METRICS, "eval/teacher_mean_return"]
    assert experiment_metrics() == metrics
    assert (spec.run_dir / "summary.json").is_file()
    assert len(list(spec.run_dir.glob("*.rlsoft-compare"))) == 1  # its charted curves' copy
