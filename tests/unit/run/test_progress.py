"""The progress line fits 80- and 120-column terminals with every field visible."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from rlsoft.run.progress import RunProgress, format_count, format_duration

RUN_NAME = "taxi_qlearning_boltzmann__s0__20261205-075132"  # 45 characters, as train names it


def _shown(width: int, name: str, total: int, done: int, status: str, rate: float) -> str:
    """What a terminal of ``width`` columns shows once the bar stops (a non-interactive
    console prints the final line)."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=False, color_system=None)
    progress = RunProgress(total, name, True, console=console)
    progress.update(done, status, rate=rate)
    progress.close()
    return buffer.getvalue()


@pytest.mark.parametrize("width", [80, 120])
def test_a_run_line_fits_and_shows_counter_rate_return_and_eta(width):
    text = _shown(width, RUN_NAME, 100_000, 12_000, "return -120.30", 85_120.4)
    lines = text.splitlines()
    assert len(lines) == 1 and len(lines[0]) <= width
    line = lines[0]
    assert "12,000/100,000" in line
    assert "85,120/s" in line
    assert "return -120.30" in line
    # ETA = (100,000 − 12,000) / 85,120.4 s = 1.03 s
    assert line.rstrip().endswith("0:00:01")
    if width == 120:
        assert RUN_NAME in line
    else:  # shortened in the middle: the config's name and the start time stay readable
        name = line.split(" ")[0]
        assert "…" in name and len(name) < len(RUN_NAME)
        head, tail = name.split("…")
        assert RUN_NAME.startswith(head) and RUN_NAME.endswith(tail)
        assert len(head) >= 5 and len(tail) >= 5


@pytest.mark.parametrize("width", [80, 120])
def test_a_long_dqn_run_fits(width):
    text = _shown(
        width,
        "cartpole_dqn_epsilon__s3__20261205-075132",
        10_000_000,
        1_234_567,
        "return 212.45",
        1234.5,
    )
    (line,) = text.splitlines()
    assert len(line) <= width
    assert "1.23M/10M" in line and "1,234/s" in line and "return 212.45" in line
    # ETA = 8,765,433 / 1,234.5 s = 7,100.4 s = 1 h 58 min 20 s
    assert line.rstrip().endswith("1:58:20")


def test_a_status_too_long_for_80_columns_is_cut_last_with_an_ellipsis():
    status = "val nll 0.1234  val acc 0.9500  best @ 12 and a much longer explanation"
    (line,) = _shown(80, RUN_NAME, 100_000, 50_000, status, 10_000.0).splitlines()
    assert len(line) <= 80
    assert "50,000/100,000" in line and "10,000/s" in line and line.rstrip().endswith("0:00:05")
    assert "val nll 0.1234" in line and "…" in line


def test_disabled_progress_draws_nothing():
    buffer = io.StringIO()
    progress = RunProgress(10, RUN_NAME, False, console=Console(file=buffer, width=80))
    progress.update(5, "return 1.00", rate=1.0)
    progress.print("a line")
    progress.close()
    assert buffer.getvalue() == ""


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0"), (999_999, "999,999"), (1_000_000, "1M"), (1_234_567, "1.23M"), (2.5e9, "2.5G")],
)
def test_format_count(n, text):
    assert format_count(n) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "-:--:--"), (0.4, "0:00:00"), (61, "0:01:01"), (3725, "1:02:05")]
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_a_run_moves_its_bar_between_log_windows(tmp_path, monkeypatch):
    """With one log window for the whole run (the Atari configs log every 10,000 steps) the
    bar still counts the steps as they are taken, a chunk at a time."""
    import rlsoft
    import rlsoft.run.trainer

    shown: list[int] = []

    class Recorder:
        def __init__(self, total, description, enabled, **kwargs):
            pass

        def update(self, completed, status="", *, rate=None):
            shown.append(completed)

        def print(self, text):
            pass

        def close(self):
            pass

    monkeypatch.setattr(rlsoft.run.trainer, "RunProgress", Recorder)
    rlsoft.train(
        "configs/taxi_qlearning_epsilon.yaml",
        overrides={"train.total_steps": 2000, "train.log_every": 2000, "train.eval_every": 0},
        logdir=tmp_path,
    )
    between = [n for n in shown if 0 < n < 2000]
    assert len(between) >= 5 and between == sorted(between) and shown[-1] == 2000
