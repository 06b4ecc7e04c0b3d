"""End to end through the CLI: runs, run dirs, eval, determinism and one-sentence errors."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlsoft.cli import main
from rlsoft.run.checkpoint import latest_checkpoint, list_checkpoints, write_checkpoint

CONFIG = """
seed: 0
env: {id: Taxi-v4}
agent: {type: q_learning, learning_rate: 0.5}
exploration: {policy: epsilon_greedy, epsilon: 0.1}
train: {total_steps: 5000, eval_every: 2500, eval_episodes: 3, log_every: 500,
        checkpoint_every: 2000, keep_checkpoints: 2, progress: "off"}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cli.yaml"
    path.write_text(CONFIG)
    return path


def _single_run(logdir: Path) -> Path:
    (run_dir,) = logdir.iterdir()
    return run_dir


def test_train_writes_a_complete_run_dir(config: Path, tmp_path: Path, capsys) -> None:
    assert main(["train", str(config), "--logdir", str(tmp_path / "runs")]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("done: 5,000 steps") and "greedy eval return" in line
    run_dir = _single_run(tmp_path / "runs")
    assert run_dir.name.startswith("cli__s0__")
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["agent"] == {
        "type": "q_learning",
        "learning_rate": 0.5,
        "gamma": 0.99,
        "initial_q": 0.0,
        "count_bonus": 0.0,
    }
    assert resolved["train"]["total_steps"] == 5000
    # checkpoints every 2000 steps and at the end, the newest two kept, each complete
    assert [p.name for p in list_checkpoints(run_dir)] == ["step_0000004000", "step_0000005000"]
    with np.load(latest_checkpoint(run_dir) / "agent.npz", allow_pickle=False) as data:
        assert data["table_q"].shape == (500, 6)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [step for step, _ in summary["eval_history"]] == [2500, 5000]
    events = EventAccumulator(str(run_dir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"charts/episodic_return", "exploration/epsilon", "losses/td_loss"} <= tags
    assert [e.step for e in events.Scalars("charts/sps")] == list(range(500, 5001, 500))


def test_same_config_and_seed_give_identical_runs(config: Path, tmp_path: Path) -> None:
    histories, tables = [], []
    for name in ("a", "b"):
        assert main(["train", str(config), "--logdir", str(tmp_path / name)]) == 0
        run_dir = _single_run(tmp_path / name)
        histories.append(json.loads((run_dir / "summary.json").read_text())["eval_history"])
        with np.load(latest_checkpoint(run_dir) / "agent.npz", allow_pickle=False) as data:
            tables.append(data["table_q"].copy())
    assert histories[0] == histories[1]
    np.testing.assert_array_equal(tables[0], tables[1])
    assert main(["train", str(config), "--seed", "1", "--logdir", str(tmp_path / "c")]) == 0
    with np.load(latest_checkpoint(_single_run(tmp_path / "c")) / "agent.npz") as data:
        assert not np.array_equal(data["table_q"], tables[0])


def test_eval_reports_mean_and_std(config: Path, tmp_path: Path, capsys) -> None:
    main(["train", str(config), "--logdir", str(tmp_path / "runs")])
    run_dir = _single_run(tmp_path / "runs")
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--episodes", "5"]) == 0
    out = capsys.readouterr().out
    assert "mean return" in out and "±" in out and "over 5 episodes on Taxi-v4" in out


def test_eval_render_prints_text_frames(config: Path, tmp_path: Path, capsys) -> None:
    main(["train", str(config), "--logdir", str(tmp_path / "runs")])
    capsys.readouterr()
    assert main(["eval", str(_single_run(tmp_path / "runs")), "--episodes", "1", "--render"]) == 0
    assert "+---------+" in capsys.readouterr().out  # the Taxi grid


def test_render_and_video_name_the_render_modes_an_env_lacks(tmp_path: Path, capsys) -> None:
    """RiverSwim draws nothing: --render, --video and evaluate(render=True) say so in one
    sentence (Gymnasium's own error was blamed on env.kwargs)."""
    import rlsoft
    from rlsoft.errors import RlsoftError

    argv = ["train", "configs/taxi_qlearning_epsilon.yaml", "--set", "env.id=rlsoft/RiverSwim-v0"]
    assert main([*argv, "--set", "train.total_steps=300", "--logdir", str(tmp_path)]) == 0
    run_dir = str(_single_run(tmp_path))
    capsys.readouterr()
    assert main(["eval", run_dir, "--render", "--episodes", "1"]) == 2
    assert capsys.readouterr().err == (
        "rlsoft: error: --render needs a render mode rlsoft/RiverSwim-v0 does not have (it has "
        "none)\n"
    )
    with pytest.raises(RlsoftError, match="rendering needs a render mode"):
        rlsoft.evaluate(rlsoft.load(run_dir), episodes=1, render=True)
    pytest.importorskip("moviepy", reason="--video needs the video extra")
    assert main(["eval", run_dir, "--video", str(tmp_path / "v"), "--episodes", "1"]) == 2
    assert "--video records rgb_array frames, which rlsoft/RiverSwim-v0 does not render" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "v").exists()


@pytest.mark.skipif(
    importlib.util.find_spec("minatar") is None or importlib.util.find_spec("pygame") is None,
    reason="needs the minatar and video extras",
)
def test_eval_render_of_a_minatar_game_shows_no_gymnasium_fps_warning(tmp_path: Path) -> None:
    """MinAtar paces its own matplotlib window but declares no render fps; Gymnasium's
    warning about it is nothing a user can act on."""
    import rlsoft

    run = rlsoft.train(
        "configs/minatar_breakout_dqn.yaml",
        overrides={"train.total_steps": 100, "agent.learning_starts": 50, "train.eval_episodes": 1},
        logdir=tmp_path,
    )
    done = subprocess.run(
        [sys.executable, "-m", "rlsoft.cli", "eval", str(run.run_dir), "--render", "--episodes",
         "1"],
        capture_output=True,
        text=True,
        env={**os.environ, "MPLBACKEND": "Agg"},
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "render fps" not in done.stderr, done.stderr
    assert "over 1 episode on MinAtar/Breakout-v1" in done.stdout


@contextlib.contextmanager
def _x_port() -> Iterator[int]:
    """A TCP port listening on 127.0.0.1 where an X server of display N would (6000 + N);
    yields N."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        if port <= 6000:  # Linux hands out 32768 and up
            pytest.skip(f"the free port {port} is below 6000, where no display number maps")
        server.listen()
        yield port - 6000


def test_a_window_needs_a_display_or_a_driver_the_user_chose(monkeypatch) -> None:
    from rlsoft.cli.api import missing_display

    monkeypatch.setattr(sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER", "MPLBACKEND"):
        monkeypatch.delenv(name, raising=False)
    assert "no display" in missing_display("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # pygame's choice, not matplotlib's
    assert missing_display("pygame") is None and "no display" in missing_display("matplotlib")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    assert missing_display("matplotlib") is None
    monkeypatch.delenv("SDL_VIDEODRIVER")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert missing_display("pygame") is None
    monkeypatch.delenv("WAYLAND_DISPLAY")
    # An X display: a local one must have its server's socket; a remote one is not checked.
    monkeypatch.setenv("DISPLAY", ":987")
    assert missing_display("pygame") == (
        "DISPLAY is ':987', where no X server runs (there is no /tmp/.X11-unix/X987)"
    )
    assert missing_display("matplotlib") is None  # MPLBACKEND: the user's choice
    monkeypatch.delenv("MPLBACKEND")
    assert "no X server" in missing_display("matplotlib")
    # A remote one (ssh -X's form) must have its server's TCP port, 6000 + N, listening.
    with _x_port() as number:
        monkeypatch.setenv("DISPLAY", f"127.0.0.1:{number}.0")
        assert missing_display("pygame") is None
    monkeypatch.setenv("DISPLAY", f"localhost:{number}.0")  # closed now
    assert missing_display("pygame") == (
        f"DISPLAY is 'localhost:{number}.0', where no X server answers (localhost port "
        f"{6000 + number}: connection refused; an ssh -X session forwards it only while it lasts)"
    )
    monkeypatch.setenv("DISPLAY", "bad..host:0")  # an empty label: not even looked up
    assert missing_display("pygame").startswith("DISPLAY is 'bad..host:0', where no X server")
    monkeypatch.setenv("DISPLAY", "[::1]:0")  # a form it does not check
    assert missing_display("pygame") is None
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.delenv("DISPLAY")
    assert missing_display("pygame") is None


@pytest.mark.skipif(importlib.util.find_spec("minatar") is None, reason="needs the minatar extra")
def test_a_minatar_window_is_drawn_by_matplotlib_and_needs_no_pygame(monkeypatch) -> None:
    from rlsoft.cli.api import render_mode_to_show
    from rlsoft.rl.envs.factory import make_env
    from rlsoft.run.config import EnvConfig

    env = make_env(EnvConfig(id="MinAtar/Breakout-v1"))
    monkeypatch.setitem(sys.modules, "pygame", None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)  # nothing installed
    with _x_port() as number:  # ssh -X's form, its port listening
        monkeypatch.setenv("DISPLAY", f"localhost:{number}.0")
        assert render_mode_to_show(env) == "human"
    env.close()


@pytest.mark.parametrize("command", [["eval", "--episodes", "20", "--render"], ["report"]])
def test_a_reader_that_stops_early_ends_the_command_quietly(
    config: Path, tmp_path: Path, command: list[str]
) -> None:
    """``rlsoft eval RUN --render | head -1`` and ``rlsoft report RUNS | head -1``: the closed
    pipe ends the command with exit code 1 and nothing on stderr, not a traceback."""
    main(["train", str(config), "--logdir", str(tmp_path / "runs")])
    target = _single_run(tmp_path / "runs") if command[0] == "eval" else tmp_path / "runs"
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the first line: every write fails
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rlsoft.cli", command[0], str(target), *command[1:]],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env={**os.environ, "COLUMNS": "120"},
            timeout=120,
        )
    finally:
        os.close(write_end)
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "missing.yaml"], "does not exist"),
        (["train", "{config}", "--set", "agent.lerning_rate=0.1"], "did you mean 'learning_rate'"),
        (["train", "{config}", "--set", "exploration.epsilon=2"], "epsilon must be in [0, 1]"),
        (["train", "{config}", "--set", "env.id=Pendulum-v1"], "Discrete action space"),
        (["train", "{config}", "--set", "env.id=CartPole-v1"], "DQN"),
        (["train"], "needs a CONFIG"),
        (["eval", "{tmp}"], "not a run dir"),
        (["train", "--resume", "{tmp}"], "not a run dir"),
    ],
)
def test_user_mistakes_get_one_sentence_and_exit_2(
    args: list[str], expected: str, config: Path, tmp_path: Path, capsys
) -> None:
    logdir = tmp_path / "runs"
    args = [a.format(config=config, tmp=tmp_path) for a in args]
    if args[0] == "train" and "--resume" not in args:
        args += ["--logdir", str(logdir)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rlsoft: error: ") and expected in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not logdir.exists() or not any(logdir.iterdir())  # nothing half-made left behind


def test_existing_run_dir_is_not_overwritten(config: Path, tmp_path: Path, capsys) -> None:
    args = ["train", str(config), "--logdir", str(tmp_path), "--set", "run_name=fixed"]
    assert main(args) == 0
    assert main(args) == 2
    assert "already exists; resume it" in capsys.readouterr().err


def test_crash_while_saving_leaves_no_checkpoint(tmp_path: Path) -> None:
    def failing_save(path: Path) -> None:
        path.write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_checkpoint(tmp_path, 100, failing_save, "agent.npz", {"step": 100})
    assert list_checkpoints(tmp_path) == []
    assert latest_checkpoint(tmp_path) is None


def test_a_directory_named_like_a_checkpoint_without_a_step_is_not_one(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, 100, lambda path: path.write_bytes(b"x"), "agent.npz", {})
    for stray in ("step_abc", "step_", "step_0000000100_copy", ".replaced_step_old"):
        (tmp_path / "checkpoints" / stray).mkdir()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_0000000100"]


@pytest.mark.parametrize("command", [[], ["train"], ["eval"]])
def test_help(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rlsoft.cli", *command, "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "usage: rlsoft" in result.stdout


def test_the_done_line_gives_the_training_speed_apart_from_slow_evaluations() -> None:
    """An Atari greedy game can take longer than the training; the speed then also appears
    without it, and a run whose evaluations are quick gets the one figure."""
    from types import SimpleNamespace

    def run(seconds: float, eval_seconds: float) -> SimpleNamespace:
        return SimpleNamespace(
            steps=2_000,
            seconds=seconds,
            eval_seconds=eval_seconds,
            final_eval={"eval/mean_return": 1.0, "eval/std_return": 0.0},
            run_dir=Path("runs/x"),
        )

    from rlsoft.cli.main import _summary_line

    slow = _summary_line(run(40.0, 30.0))
    assert "2,000 steps in 40.0 s (50/s; 200/s outside 30.0 s of evaluation)" in slow
    quick = _summary_line(run(40.0, 1.0))
    assert "(50/s);" in quick and "outside" not in quick


def test_eval_epsilon_from_the_run_or_the_command_line(
    config: Path, tmp_path: Path, capsys
) -> None:
    """train.eval_epsilon: the done line names it, rlsoft eval uses it unless --epsilon says
    otherwise, and a bad --epsilon is one sentence with exit 2."""
    args = ["--set", "train.eval_epsilon=0.5", "--logdir", str(tmp_path / "runs")]
    assert main(["train", str(config), *args]) == 0
    assert "ε-greedy (ε 0.5) eval return" in capsys.readouterr().out
    run_dir = str(_single_run(tmp_path / "runs"))
    assert main(["eval", run_dir, "--episodes", "3"]) == 0
    assert capsys.readouterr().out.startswith("ε-greedy (ε 0.5) policy of ")
    assert main(["eval", run_dir, "--episodes", "3", "--epsilon", "0"]) == 0
    assert capsys.readouterr().out.startswith("greedy policy of ")
    assert main(["eval", run_dir, "--epsilon", "1.5"]) == 2
    assert "--epsilon must be in [0, 1], got 1.5" in capsys.readouterr().err


def test_eval_takes_the_run_config_path_and_counts_one_episode_in_the_singular(
    config: Path, tmp_path: Path, capsys
) -> None:
    main(["train", str(config), "--logdir", str(tmp_path / "runs")])
    run_dir = _single_run(tmp_path / "runs")
    capsys.readouterr()
    assert main(["eval", str(run_dir / "config.yaml"), "--episodes", "1"]) == 0
    out = capsys.readouterr().out
    steps = yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["total_steps"]
    assert f"policy of {run_dir} (checkpoint at step {steps:,}): " in out  # the run dir
    assert "over 1 episode on Taxi-v4" in out
    assert main(["eval", str(run_dir / "summary.json")]) == 2
    assert "is a file, not a run dir" in capsys.readouterr().err


def test_a_checkpoint_or_a_logdir_given_for_a_run_dir_names_the_run_dir(
    config: Path, tmp_path: Path, capsys
) -> None:
    logdir = tmp_path / "runs"
    main(["train", str(config), "--logdir", str(logdir)])
    run_dir = _single_run(logdir)
    checkpoint = list_checkpoints(run_dir)[-1]
    capsys.readouterr()
    for argv in (["eval", str(checkpoint)], ["train", "--resume", str(checkpoint)]):
        assert main(argv) == 2
        assert (
            capsys.readouterr()
            .err.rstrip()
            .endswith(
                f"is not a run dir (no config.yaml); it is inside run dir {str(run_dir)!r}, whose "
                "newest checkpoint is the one loaded: pass that run dir"
            )
        )
    assert main(["eval", str(logdir)]) == 2
    assert (
        capsys.readouterr()
        .err.rstrip()
        .endswith(f"it holds the run dir {str(run_dir)!r}: pass that")
    )
    main(["train", str(config), "--logdir", str(logdir), "--seed", "1"])
    capsys.readouterr()
    assert main(["eval", str(tmp_path)]) == 2
    assert "it holds 2 run dirs, such as " in capsys.readouterr().err


def test_the_tensorboard_hint_is_quoted_for_the_shell(config: Path, tmp_path: Path, capsys):
    logdir = tmp_path / "my runs"
    assert main(["train", str(config), "--logdir", str(logdir)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.endswith(f"(tensorboard --logdir '{logdir}')")


def test_runs_started_in_the_same_second_get_their_own_run_dirs(
    config: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """The default name holds the time to the second: a second run gets ``-2``, not the
    first one's dir or an error telling it to resume a run it never made."""
    import rlsoft
    from rlsoft.run import experiment

    monkeypatch.setattr(experiment, "default_run_name", lambda config: "same__s0__second")
    logdir = tmp_path / "runs"
    assert main(["train", str(config), "--logdir", str(logdir)]) == 0
    assert main(["train", str(config), "--logdir", str(logdir)]) == 0
    run = rlsoft.train(str(config), logdir=logdir)
    assert "already exists" not in capsys.readouterr().err
    names = sorted(p.name for p in logdir.iterdir())
    assert names == ["same__s0__second", "same__s0__second-2", "same__s0__second-3"]
    assert run.run_dir == logdir / "same__s0__second-3"
    saved = yaml.safe_load((run.run_dir / "config.yaml").read_text())
    assert saved["run_name"] == run.config.run_name == "same__s0__second-3"
    assert saved["logdir"] == run.config.logdir == str(logdir)


def test_a_run_dir_is_claimed_by_one_process_only(tmp_path: Path) -> None:
    """Two processes that plan the same default name: ``os.mkdir`` lets one have it."""
    from rlsoft.run.experiment import _claim_new_dir

    planned = tmp_path / "runs" / "x__s0__t"
    first, second = _claim_new_dir(planned), _claim_new_dir(planned)
    assert (first, second) == (planned, planned.with_name("x__s0__t-2"))
    assert first.is_dir() and second.is_dir()


@pytest.mark.parametrize("fresh_logdir", [False, True])
def test_a_failed_claim_leaves_the_run_that_has_the_name_alone(
    config: Path, tmp_path: Path, monkeypatch, capsys, fresh_logdir: bool
) -> None:
    """The default name is taken (another run of the same second) and making ``-2`` fails
    (a full disk): one sentence, and the other run's dir keeps its files, whether or not
    this call made the logdir."""
    import errno

    from rlsoft.run import experiment

    monkeypatch.setattr(experiment, "default_run_name", lambda config: "same__s0__second")
    logdir = tmp_path / "runs"
    other = logdir / "same__s0__second"
    other.mkdir(parents=True)
    (other / "config.yaml").write_text("seed: 0\n")
    real_mkdir = os.mkdir

    def full_disk(path, *args, **kwargs):
        if str(path).endswith("-2"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(experiment.os, "mkdir", full_disk)
    target = tmp_path / "new" / "runs" if fresh_logdir else logdir
    if fresh_logdir:  # the taken name is in a logdir this call makes (a second process's)
        target.mkdir(parents=True)
        (target / "same__s0__second").mkdir()
        (target / "same__s0__second" / "config.yaml").write_text("seed: 0\n")
        other = target / "same__s0__second"
    assert main(["train", str(config), "--logdir", str(target)]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert (other / "config.yaml").read_text() == "seed: 0\n"


def test_a_runs_own_config_trains_a_new_run(config: Path, tmp_path: Path, capsys) -> None:
    """A run's config.yaml lists every exploration field, the unused ones included: it is
    what the messages send users back to (train the run afresh), so it must train."""
    import rlsoft

    assert main(["train", str(config), "--logdir", str(tmp_path / "runs")]) == 0
    saved = _single_run(tmp_path / "runs") / "config.yaml"
    assert {"epsilon", "temperature", "mu"} <= set(yaml.safe_load(saved.read_text())["exploration"])
    assert main(["train", str(saved), "--logdir", str(tmp_path / "again")]) == 0, (
        capsys.readouterr().err
    )
    run = rlsoft.train(str(saved), logdir=tmp_path / "api")
    assert rlsoft.train(run.config.to_dict() | {"run_name": None}, logdir=tmp_path / "api")


def test_resuming_a_finished_run_says_that_nothing_was_trained(
    config: Path, tmp_path: Path, capsys
) -> None:
    assert main(["train", str(config), "--logdir", str(tmp_path / "runs")]) == 0
    run_dir = _single_run(tmp_path / "runs")
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir)]) == 0
    err = capsys.readouterr().err
    assert "had already reached its train.total_steps" in err and "nothing was trained" in err
    steps = json.loads((run_dir / "summary.json").read_text())["steps"]
    args = ["train", "--resume", str(run_dir), "--set", f"train.total_steps={steps + 500}"]
    assert main(args) == 0
    assert "nothing was trained" not in capsys.readouterr().err


def test_the_done_line_names_the_policy_of_the_evaluation_it_shows(
    config: Path, tmp_path: Path, capsys
) -> None:
    """A resume that changes only train.eval_epsilon has no steps left to evaluate: it shows
    the greedy evaluation made before, and must call it greedy."""
    assert main(["train", str(config), "--logdir", str(tmp_path / "runs")]) == 0
    first = capsys.readouterr().out.strip().splitlines()[-1]
    run_dir = _single_run(tmp_path / "runs")
    args = ["train", "--resume", str(run_dir), "--set", "train.eval_epsilon=0.5"]
    assert main(args) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    shown = first.split("; ")[1]
    assert shown.startswith("greedy eval return") and shown in line and "ε" not in line
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final_eval_epsilon"] == 0.0
    # Given more steps, the final evaluation is the ε-greedy one, and is named so.
    args = ["train", "--resume", str(run_dir), "--set", "train.total_steps=5500"]
    assert main(args) == 0
    assert "ε-greedy (ε 0.5) eval return" in capsys.readouterr().out


DIVERGING_DQN = """
seed: 0
device: cpu
env: {id: CartPole-v1}
agent: {type: dqn, hidden_sizes: [16], buffer_size: 1000, batch_size: 16, learning_starts: 50,
        lr: 1.0e+30, max_grad_norm: null}
exploration: {policy: epsilon_greedy, epsilon: 0.1}
train: {total_steps: 2000, eval_every: 0, eval_episodes: 1, log_every: 100, progress: "off"}
"""


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_a_diverged_run_says_so_to_eval_and_resume(tmp_path: Path, capsys) -> None:
    config = tmp_path / "diverging.yaml"
    config.write_text(DIVERGING_DQN)
    args = ["train", str(config), "--logdir", str(tmp_path), "--set", "run_name=nan"]
    assert main(args) == 2
    assert "training has diverged" in capsys.readouterr().err
    run_dir = tmp_path / "nan"
    record = json.loads((run_dir / "diverged.json").read_text())
    assert 50 < record["step"] < 2000 and "NaN" in record["message"]
    for command in (["eval", str(run_dir)], ["train", "--resume", str(run_dir)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert f"run dir {str(run_dir)!r} diverged (its values became NaN or infinite)" in err
        assert f"at step {record['step']}, before any checkpoint" in err
        assert (
            "train it again with a lower agent.lr (it was 1e+30) or with agent.max_grad_norm "
            "set" in err
        )
        assert "let its training finish" not in err


def test_a_resume_says_once_when_its_replay_was_left_out(tmp_path: Path, capsys) -> None:
    """train.checkpoint_replay: false (the pixel configs'): the resumed run refills its replay
    before learning, which one line says; a run with its replay, or finished, says nothing,
    and resuming a finished run as it was adds nothing to its resume history."""
    config = "configs/cartpole_dqn_epsilon.yaml"
    base = ["--logdir", str(tmp_path), "--set", "train.total_steps=300"]
    for replay in ("false", "true"):
        main(["train", config, *base, "--set", f"train.checkpoint_replay={replay}",
              "--set", "agent.learning_starts=100"])  # fmt: skip
        run_dir = max(tmp_path.glob("cartpole_dqn_epsilon__*"), key=lambda p: p.stat().st_mtime)
        capsys.readouterr()
        assert main(["train", "--resume", str(run_dir), "--set", "train.total_steps=400"]) == 0
        notes = [line for line in capsys.readouterr().err.splitlines() if "replay" in line]
        if replay == "false":
            assert notes == [
                "rlsoft: the checkpoint this run resumes from holds no replay (it was written "
                "with train.checkpoint_replay: false): it resumes with an empty replay, and "
                "gradient steps wait until it holds more than 100 new transitions, as at the "
                "start of the run"
            ]
        else:
            assert notes == []
        history = (run_dir / "resume_history.json").read_text()
        assert main(["train", "--resume", str(run_dir)]) == 0  # finished: nothing to train
        assert "checkpoint_replay" not in capsys.readouterr().err
        assert (run_dir / "resume_history.json").read_text() == history
        time.sleep(0.01)  # the next run dir's name differs by its time stamp


@pytest.mark.skipif(
    importlib.util.find_spec("moviepy") is None or importlib.util.find_spec("pygame") is None,
    reason="needs the video extra",
)
def test_an_interrupted_eval_reports_its_finished_episodes_and_keeps_only_their_videos(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """Ctrl-C in the third of five episodes: exit 130, the two finished episodes' mean, and
    their two videos; the third's recording, cut short on close, is removed."""
    import gymnasium as gym

    cli = sys.modules["rlsoft.cli.main"]  # the module; rlsoft.cli.main is its function

    main(["train", "configs/cartpole_dqn_epsilon.yaml", "--logdir", str(tmp_path / "runs"),
          "--set", "train.total_steps=300"])  # fmt: skip
    run_dir = _single_run(tmp_path / "runs")
    capsys.readouterr()
    made = cli._eval_env

    class CtrlC(gym.Wrapper):
        """Ctrl-C after 5 steps of the third episode."""

        resets = steps = 0

        def reset(self, **kwargs):
            self.resets, self.steps = self.resets + 1, 0
            return self.env.reset(**kwargs)

        def step(self, action):
            self.steps += 1
            if self.resets == 3 and self.steps == 5:
                raise KeyboardInterrupt
            return self.env.step(action)

    monkeypatch.setattr(cli, "_eval_env", lambda config, args: CtrlC(made(config, args)))
    folder = tmp_path / "videos"
    argv = ["eval", str(run_dir), "--episodes", "5", "--video", str(folder)]
    assert main(argv) == 130
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("rlsoft: eval stopped after 2 of 5 episodes: mean return "), err
    assert err[0].endswith(" over those; the unfinished episode's video was removed"), err
    assert err[1] == "rlsoft: interrupted"
    videos = sorted(p.name for p in folder.iterdir())
    assert videos == ["rl-video-episode-0.mp4", "rl-video-episode-1.mp4"]


@pytest.mark.skipif(
    importlib.util.find_spec("moviepy") is None or importlib.util.find_spec("pygame") is None,
    reason="needs the video extra",
)
@pytest.mark.parametrize("made", [False, True])
def test_eval_video_records_into_a_new_or_empty_directory_without_noise(
    tmp_path: Path, made: bool
) -> None:
    """--video DIR on a headless machine: one MP4 per episode, and nothing on stderr from
    Gymnasium (an empty directory made beforehand is not "overwriting existing videos") or
    SDL (no display)."""
    main(["train", "configs/cartpole_dqn_epsilon.yaml", "--logdir", str(tmp_path / "runs"),
          "--set", "train.total_steps=300"])  # fmt: skip
    run_dir = _single_run(tmp_path / "runs")
    folder = tmp_path / "videos" / "new"
    if made:
        folder.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("SDL_VIDEODRIVER", None)
    done = subprocess.run(
        [sys.executable, "-m", "rlsoft.cli", "eval", str(run_dir), "--episodes", "2", "--video",
         str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    videos = sorted(p.name for p in folder.iterdir())
    assert videos == ["rl-video-episode-0.mp4", "rl-video-episode-1.mp4"]


def test_an_atari_video_plays_in_real_time(tmp_path: Path) -> None:
    """One video frame per agent step of 4 emulator frames at the 2600's 60 Hz: 15 frames a
    second, so a game lasts as long on video as it did on the console (ALE declares 30)."""
    pytest.importorskip("ale_py", reason="Atari is an optional extra")
    moviepy = pytest.importorskip("moviepy", reason="videos need the video extra")
    main(["train", "configs/atari_pong_dqn.yaml", "--logdir", str(tmp_path / "runs"),
          "--set", "train.total_steps=40", "--set", "agent.buffer_size=1000",
          "--set", "env.max_episode_steps=400", "--set", "train.eval_episodes=1"])  # fmt: skip
    run_dir = _single_run(tmp_path / "runs")
    folder = tmp_path / "videos"
    main(["eval", str(run_dir), "--episodes", "1", "--epsilon", "1", "--video", str(folder)])
    (video,) = folder.iterdir()
    clip = moviepy.VideoFileClip(str(video))
    try:
        assert clip.fps == 15
        # 400 emulator frames, 6.7 s on the console, less the up to 30 no-op frames that
        # start the episode (played before the first agent step, so not on video).
        assert (400 - 30) / 60 - 0.1 <= clip.duration <= 400 / 60 + 0.1
    finally:
        clip.close()
