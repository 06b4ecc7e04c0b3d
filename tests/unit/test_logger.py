"""RunLogger: one event per scalars() call, buffered hand-off, nothing lost on flush/close."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from rlsoft.logger import RunLogger


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
    from rlsoft.config import validate_config
    from rlsoft.experiment import run_experiment
    from rlsoft.rollout import EnvDriver

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
