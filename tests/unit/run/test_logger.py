"""RunLogger: one event per scalars() call, buffered hand-off, nothing lost on flush/close."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from rlsoft.run.logger import RunLogger


def _events(run_dir: Path) -> list:
    files = sorted(run_dir.glob("events.out.tfevents.*"))
    return [event for path in files for event in EventFileLoader(str(path)).Load()]


def _scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_one_call_is_one_event_and_tensorboard_reads_every_tag(tmp_path):
    logger = RunLogger(tmp_path)
    logger.scalars({"charts/sps": 100.0, "losses/td_loss": 0.5, "eval/mean_return": 7.5}, 10)
    logger.scalars({"charts/sps": 200.0, "losses/td_loss": 0.25}, 20)
    logger.close()
    with_values = [e for e in _events(tmp_path) if e.summary.value]
    assert [len(e.summary.value) for e in with_values] == [3, 2]
    assert _scalars(tmp_path) == {
        "charts/sps": [(10, 100.0), (20, 200.0)],
        "losses/td_loss": [(10, 0.5), (20, 0.25)],
        "eval/mean_return": [(10, 7.5)],
    }


def test_non_finite_and_missing_values_are_skipped(tmp_path):
    logger = RunLogger(tmp_path)
    logger.scalars({"a": math.nan, "b": math.inf, "c": None, "d": 1.0}, 1)
    logger.scalars({"a": math.nan}, 2)  # nothing finite: no event at all
    logger.close()
    assert _scalars(tmp_path) == {"d": [(1, 1.0)]}
    assert sum(1 for e in _events(tmp_path) if e.summary.value) == 1


def test_scalars_wait_for_the_hand_off_and_flush_writes_them(tmp_path):
    logger = RunLogger(tmp_path, hand_off_seconds=3600.0)
    logger.scalars({"x": 1.0}, 1)  # the first scalars go out at once
    logger.scalars({"x": 2.0}, 2)
    logger.writer.flush()
    assert _scalars(tmp_path) == {"x": [(1, 1.0)]}  # the second is still buffered
    logger.flush()  # what the trainer calls before every checkpoint
    assert _scalars(tmp_path) == {"x": [(1, 1.0), (2, 2.0)]}
    logger.close()


def test_closing_twice_or_flushing_after_close_writes_no_new_file(tmp_path):
    logger = RunLogger(tmp_path)
    logger.scalars({"x": 1.0}, 1)
    logger.close()
    files = sorted(tmp_path.iterdir())
    logger.close()
    logger.flush()
    assert sorted(tmp_path.iterdir()) == files


def test_the_trainer_hands_off_before_every_evaluation(tmp_path, monkeypatch):
    import agents  # noqa: F401 - registers the tabular agents
    from rlsoft.rl.collector import EnvDriver
    from rlsoft.run.config import validate_config
    from rlsoft.run.experiment import run_experiment

    calls: list[str] = []
    hand_off, evaluate = RunLogger.hand_off, EnvDriver.evaluate
    monkeypatch.setattr(
        RunLogger, "hand_off", lambda self: (calls.append("hand_off"), hand_off(self))[1]
    )
    monkeypatch.setattr(
        EnvDriver,
        "evaluate",
        lambda self, step: (calls.append("evaluate"), evaluate(self, step))[1],
    )
    config = validate_config(
        {
            "env": {"id": "FrozenLake-v1"},
            "agent": {"type": "q_learning"},
            "exploration": {"policy": "epsilon_greedy", "epsilon": 0.5},
            "train": {
                "total_steps": 300,
                "eval_every": 100,
                "eval_episodes": 2,
                "log_every": 50,
                "progress": "off",
            },
            "logdir": str(tmp_path),
        }
    )
    run_experiment(config)
    evaluations = [i for i, call in enumerate(calls) if call == "evaluate"]
    assert len(evaluations) == 3
    assert all(calls[i - 1] == "hand_off" for i in evaluations)


def test_hand_off_happens_after_the_interval(tmp_path):
    logger = RunLogger(tmp_path, hand_off_seconds=0.0)
    logger.scalars({"x": 1.0}, 1)
    logger.writer.flush()
    assert _scalars(tmp_path) == {"x": [(1, 1.0)]}
    logger.close()


def test_buffered_events_keep_their_own_wall_time(tmp_path):
    logger = RunLogger(tmp_path, hand_off_seconds=3600.0)
    logger.scalars({"x": 0.0}, 0)  # handed off at once; the next two wait in the buffer
    before = time.time()
    logger.scalars({"x": 1.0}, 1)
    time.sleep(0.2)
    logger.scalars({"x": 2.0}, 2)
    time.sleep(0.3)
    logger.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    _, first, second = acc.Scalars("x")
    assert before <= first.wall_time < second.wall_time
    assert second.wall_time - first.wall_time == pytest.approx(0.2, abs=0.1)


def test_hparams_and_text_come_after_the_buffered_scalars(tmp_path):
    logger = RunLogger(tmp_path, hand_off_seconds=3600.0)
    logger.scalars({"charts/sps": 1.0}, 4)
    logger.scalars({"eval/mean_return": 3.0}, 5)  # buffered
    logger.text("notes", "hello")
    logger.hparams({"lr": 0.1}, {"eval/mean_return": 3.0})
    logger.close()
    events = [e for e in _events(tmp_path) if e.summary.value]
    tags = [v.tag for e in events for v in e.summary.value]
    assert tags[:2] == ["charts/sps", "eval/mean_return"]
    assert "_hparams_/experiment" in tags


def test_purge_step_hides_the_interrupted_runs_later_events(tmp_path):
    first = RunLogger(tmp_path, hand_off_seconds=0.0)
    for step in range(1, 6):
        first.scalars({"x": float(step)}, step)
    first.close()
    time.sleep(1.1)  # event files are named by the second they were made in, and read in order
    resumed = RunLogger(tmp_path, purge_step=3, hand_off_seconds=0.0)
    resumed.scalars({"x": 30.0}, 3)
    resumed.scalars({"x": 40.0}, 4)
    resumed.close()
    # Steps 3, 4 and 5 of the first file are stale: TensorBoard shows the resumed ones only.
    assert _scalars(tmp_path) == {"x": [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]}


def test_writing_after_close_is_an_error_not_a_new_file(tmp_path):
    logger = RunLogger(tmp_path, hand_off_seconds=3600.0)
    logger.scalars({"x": 1.0}, 1)
    logger.close()
    logger.scalars({"x": 2.0}, 2)  # buffered only
    with pytest.raises(RuntimeError, match="closed"):
        logger.hand_off()
    assert len(list(tmp_path.iterdir())) == 1


def _plugin_values(run_dir: Path, plugin: str) -> dict[str, object]:
    return {
        value.tag: value
        for event in _events(run_dir)
        for value in event.summary.value
        if value.metadata.plugin_data.plugin_name == plugin
    }


def test_hparams_of_a_lone_run_are_typed_by_value_with_the_session_values(tmp_path):
    # A run outside a comparison writes its own experiment: one column per value, typed by
    # it, its value the column's domain (a comparison's domain:
    # tests/unit/compare/test_dashboards.py).
    from tensorboard.plugins.hparams import api_pb2, metadata

    logger = RunLogger(tmp_path)
    run = {"lr": 0.5, "policy": "boltzmann", "double": True, "steps": 100}
    logger.hparams(run, {"eval/mean_return": 3.0, "eval/std_return": math.nan})
    logger.close()
    values = _plugin_values(tmp_path, metadata.PLUGIN_NAME)
    experiment = metadata.parse_experiment_plugin_data(
        values[metadata.EXPERIMENT_TAG].metadata.plugin_data.content
    )
    infos = {info.name: info for info in experiment.hparam_infos}
    assert {name: info.type for name, info in infos.items()} == {
        "lr": api_pb2.DATA_TYPE_FLOAT64,
        "policy": api_pb2.DATA_TYPE_STRING,
        "double": api_pb2.DATA_TYPE_BOOL,
        "steps": api_pb2.DATA_TYPE_FLOAT64,
    }
    assert [v.string_value for v in infos["policy"].domain_discrete.values] == ["boltzmann"]
    assert [v.bool_value for v in infos["double"].domain_discrete.values] == [True]
    assert infos["lr"].domain_interval.min_value == infos["lr"].domain_interval.max_value == 0.5
    assert [m.name.tag for m in experiment.metric_infos] == ["eval/mean_return"]  # NaN skipped
    start = metadata.parse_session_start_info_plugin_data(
        values[metadata.SESSION_START_INFO_TAG].metadata.plugin_data.content
    )
    assert start.hparams["lr"].number_value == 0.5
    assert start.hparams["policy"].string_value == "boltzmann"
    assert start.hparams["double"].bool_value is True
    end = metadata.parse_session_end_info_plugin_data(
        values[metadata.SESSION_END_INFO_TAG].metadata.plugin_data.content
    )
    assert end.status == api_pb2.STATUS_SUCCESS


def test_custom_scalars_layout_round_trips(tmp_path):
    from tensorboard.plugins.custom_scalar import layout_pb2, metadata

    logger = RunLogger(tmp_path, filename_suffix=".dash")
    logger.custom_scalars(
        {
            "cmp": {
                "returns": ("Multiline", ["eval/mean_return"]),
                "band": ("Margin", ["v", "lo", "hi"]),
            }
        }
    )
    logger.close()
    (path,) = tmp_path.iterdir()
    assert path.name.endswith(".dash")
    value = _plugin_values(tmp_path, metadata.PLUGIN_NAME)[metadata.CONFIG_SUMMARY_TAG]
    layout = layout_pb2.Layout.FromString(value.tensor.string_val[0])
    (category,) = layout.category
    assert category.title == "cmp"
    multiline, margin = category.chart
    assert (multiline.title, list(multiline.multiline.tag)) == ("returns", ["eval/mean_return"])
    (series,) = margin.margin.series
    assert (margin.title, series.value, series.lower, series.upper) == ("band", "v", "lo", "hi")
    other = RunLogger(tmp_path / "other")
    with pytest.raises(ValueError, match="Multiline"):
        other.custom_scalars({"c": {"t": ("Pie", ["x"])}})
    other.close()
