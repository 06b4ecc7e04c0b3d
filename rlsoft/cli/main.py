"""The ``rlsoft`` command line: train, eval, compare, report.

This is the composition root: the only module of ``rlsoft`` that imports ``agents`` (whose
import registers every agent family). User mistakes end with one sentence on stderr and exit
code 2; Ctrl-C ends with exit code 130 (while training: after a checkpoint, with the command
that resumes the run).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import select
import shlex
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from rlsoft import __version__
from rlsoft.errors import RlsoftError, count

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EVAL_EPISODES = 100
EVAL_SEED = 12345
MESSAGE_LIMIT = 500
"""Longest error sentence printed; values echoed inside it are already cut to 80 characters,
so this only guards against a message that quotes something unexpectedly long."""


class _Parser(argparse.ArgumentParser):
    """``argparse`` with rlsoft's error style: one line ``rlsoft: error: …`` naming the
    subcommand's ``--help`` instead of the usage block, and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"rlsoft: error: {message}; see {self.prog} --help\n")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train an agent from a YAML config",
        description="Train an agent from a YAML config and write a TensorBoard run dir "
        "(<logdir>/<run-name>/ with event files, config.yaml, checkpoints and summary.json).",
    )
    p.add_argument(
        "config", nargs="?", help="YAML experiment file, e.g. configs/taxi_qlearning_boltzmann.yaml"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a config value (repeatable), e.g. --set train.total_steps=20000",
    )
    p.add_argument("--seed", type=int, help="root seed (overrides the config's seed)")
    p.add_argument(
        "--logdir", help="parent directory of the run dir (default: the config's, runs/)"
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue RUN_DIR from its newest checkpoint; --set may change only the budget "
        "and the cadence of logging, evaluation and checkpoints (e.g. train.total_steps=N)",
    )


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a trained run's greedy (or ε-greedy) policy",
        description="Load the newest checkpoint of RUN_DIR and report the greedy policy's mean ± "
        "std return over N episodes (ε-greedy with --epsilon or the run's train.eval_epsilon; "
        "the test accuracy for classifiers).",
    )
    p.add_argument("run_dir", help="a run dir made by rlsoft train")
    # Defaults are None so that a flag a classifier cannot use is told apart from its default.
    p.add_argument("--episodes", type=int, help=f"evaluation episodes (default {EVAL_EPISODES})")
    p.add_argument(
        "--seed", type=int, help=f"seed of the first episode's reset (default {EVAL_SEED})"
    )
    p.add_argument(
        "--epsilon",
        type=float,
        help="act ε-greedily with this ε (default: the run's train.eval_epsilon, 0 = greedy)",
    )
    p.add_argument("--render", action="store_true", help="render episodes (text for toy-text envs)")
    p.add_argument(
        "--video", metavar="DIR", help="record every episode as MP4 into DIR (needs rlsoft[video])"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rlsoft",
        description="Q-learning with softmax exploration on one stable numerics core.",
    )
    parser.add_argument("--version", action="version", version=f"rlsoft {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_eval(sub)
    from rlsoft.cli import compare as compare_cli

    compare_cli.add_commands(sub)
    return parser


# --------------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from rlsoft.cli import api

    if args.seed is not None and args.seed < 0:
        raise RlsoftError(f"--seed must be a non-negative integer, got {args.seed}")
    api.check_logdir(args.logdir, "--logdir")
    if args.resume:
        if args.config:
            raise RlsoftError("give either a CONFIG or --resume RUN_DIR, not both")
        if args.seed is not None or args.logdir is not None:
            raise RlsoftError("--seed and --logdir cannot change a resumed run; it keeps its own")
        finished_at = _finished_steps(args.resume)
        # Read before the resume, which may rewrite config.yaml: the checkpoint being resumed
        # was written under the run's setting until now.
        note = _replay_left_out(args.resume)
        if finished_at is not None and not _budget_set(args.overrides, finished_at):
            note = None  # nothing will train
        result = api.resume(
            args.resume,
            overrides=args.overrides,
            on_start=(lambda: print(note, file=sys.stderr)) if note else None,
        )
        if finished_at is not None and result.steps <= finished_at:
            print(
                f"rlsoft: the run had already reached its train.total_steps ({finished_at:,}), "
                "so nothing was trained; pass --set train.total_steps=N with a larger N to "
                "train it further",
                file=sys.stderr,
            )
    else:
        if not args.config:
            raise RlsoftError("rlsoft train needs a CONFIG file (or --resume RUN_DIR)")
        # progress=None: the config's train.progress (auto: a bar on a terminal) decides.
        config = api.experiment_config(
            args.config, overrides=args.overrides, seed=args.seed, progress=None
        )
        # Worded now, printed once the run has passed every check (never above a refusal).
        notes = [line for line in (_uneven_budget(config), _no_learning(config)) if line]

        def show_notes() -> None:
            for line in notes:
                print(line, file=sys.stderr)

        result = api.train(config, logdir=args.logdir, progress=None, on_start=show_notes)
    print(_summary_line(result))
    return 0


def _uneven_budget(config) -> str | None:
    """The warning when vector steps cannot end exactly at ``train.total_steps``."""
    if config.env is None:
        return None
    total, n = config.train.total_steps, config.env.num_envs
    if not total % n:
        return None
    steps = -(-total // n) * n
    return (
        f"rlsoft: warning: train.total_steps ({total:,}) is not a multiple of env.num_envs "
        f"({n}); every vector step takes {n} steps, so the run ends after {steps:,}"
    )


def _no_learning(config) -> str | None:
    """The warning when a replay agent's learning would start only after the budget: the run
    would end with the network as initialised (a short trial of a shipped config)."""
    starts = getattr(config.agent_config(), "learning_starts", None)
    total = config.train.total_steps
    copies = config.env.num_envs if config.env is not None else 1
    # Updates start once a step's count passes learning_starts; the last vector step ends at
    # total_steps rounded up to whole vector steps.
    if starts is None or starts < -(-total // copies) * copies:
        return None
    return (
        f"rlsoft: warning: agent.learning_starts ({starts:,}) is not below "
        f"train.total_steps ({total:,}), so no gradient step will run and the network "
        "stays as initialised; lower agent.learning_starts or raise train.total_steps"
    )


def _budget_set(overrides: list[str], finished_at: int) -> bool:
    """Whether the ``--set`` overrides take a finished run's ``train.total_steps`` beyond
    ``finished_at``."""
    from rlsoft.run.config import apply_overrides, get_dotted

    try:
        total = get_dotted(apply_overrides({}, list(overrides or ())), "train.total_steps")
    except RlsoftError:
        return False  # the resume reports it
    return isinstance(total, int) and total > finished_at


def _replay_left_out(run_dir: str) -> str | None:
    """The line to print when the run's checkpoints leave the replay out (the pixel configs'
    ``train.checkpoint_replay: false``): the resumed run refills it before learning again."""
    from rlsoft.run.experiment import read_run_config, run_dir_of

    try:
        config = read_run_config(run_dir_of(run_dir))
        agent = config.agent_config()
    except (RlsoftError, OSError, ValueError):
        return None  # the resume itself names what is wrong with the run dir
    starts = getattr(agent, "learning_starts", None)
    if config.train.checkpoint_replay or starts is None:
        return None
    wait = min(starts, agent.buffer_size - 1)
    return (
        "rlsoft: the checkpoint this run resumes from holds no replay (it was written with "
        "train.checkpoint_replay: false): it resumes with an empty replay, and gradient steps "
        f"wait until it holds more than {wait:,} new transitions, as at the start of the run"
    )


def _finished_steps(run_dir: str) -> int | None:
    """The steps of a finished run (its ``summary.json``), or None: not finished, unreadable
    (the resume itself reports a bad run dir)."""
    from rlsoft.run.checkpoint import read_summary
    from rlsoft.run.experiment import run_dir_of

    steps = (read_summary(run_dir_of(run_dir)) or {}).get("steps")
    return steps if isinstance(steps, int) and not isinstance(steps, bool) else None


def _summary_line(result) -> str:
    final = result.final_eval
    sps = result.steps / max(result.seconds, 1e-9)
    if "eval/mean_return" in final:
        spread = final.get("eval/std_return", 0.0)
        # The ε the shown evaluation used: a resume that changed only train.eval_epsilon
        # keeps the evaluation made before it, with the old ε.
        epsilon = getattr(result, "eval_epsilon", None)
        if epsilon is None:
            train = getattr(getattr(result, "config", None), "train", None)
            epsilon = getattr(train, "eval_epsilon", 0.0)
        kind = _policy_kind(epsilon)
        score = f"{kind} eval return {final['eval/mean_return']:.2f} ± {spread:.2f}"
    elif "eval/accuracy" in final:
        score = f"test accuracy {final['eval/accuracy']:.4f}"
    else:
        score = "no evaluation"
    rate = f"{sps:,.0f}/s"
    evaluating = result.eval_seconds
    if evaluating >= max(1.0, 0.1 * result.seconds) and result.seconds - evaluating > 0:
        # Slow evaluations (Atari's greedy games) would hide the training speed.
        training = result.steps / (result.seconds - evaluating)
        rate += f"; {training:,.0f}/s outside {evaluating:.1f} s of evaluation"
    return (
        f"done: {result.steps:,} steps in {result.seconds:.1f} s ({rate}); {score}; "
        # Quoted: a logdir with a space must paste into a shell as one argument.
        f"run dir {result.run_dir} (tensorboard --logdir {shlex.quote(str(result.run_dir.parent))})"
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from rlsoft.cli import api
    from rlsoft.rl.evaluation import MAX_EVAL_EPISODES

    if args.episodes is not None and not 1 <= args.episodes <= MAX_EVAL_EPISODES:
        raise RlsoftError(
            f"--episodes must be from 1 to {MAX_EVAL_EPISODES:,}, got {args.episodes:,}"
        )
    if args.seed is not None and args.seed < 0:
        raise RlsoftError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.epsilon is not None and not 0.0 <= args.epsilon <= 1.0:
        raise RlsoftError(f"--epsilon must be in [0, 1], got {args.epsilon}")
    if args.render and args.video:
        raise RlsoftError(
            "--render shows the episodes and --video records them, one rendering each: pass "
            "one of the two"
        )
    if args.video:
        _check_video_dir(Path(args.video))
    agent = api.load(args.run_dir)
    with agent:
        config = agent.config
        if agent.kind == "classifier":
            if args.epsilon is not None:
                raise RlsoftError(
                    "--epsilon sets an RL agent's ε-greedy evaluation; a classifier is "
                    "evaluated on its test set or greedily in its teacher's environment"
                )
            driver = agent.agent
            policy_eval = getattr(driver, "policy_eval", None)
            _refuse_unused_classifier_flags(args, policy_eval is not None)
            if policy_eval is not None:  # a behaviour-cloned policy: run --episodes of it
                driver.policy_eval = dataclasses.replace(
                    policy_eval,
                    episodes=args.episodes or EVAL_EPISODES,
                    seed=EVAL_SEED if args.seed is None else args.seed,
                )
            result = driver.evaluate(0)
            print("  ".join(f"{k.removeprefix('eval/')} {v:.4f}" for k, v in result.items()))
            return 0
        args.episodes = args.episodes or EVAL_EPISODES
        args.seed = EVAL_SEED if args.seed is None else args.seed
        env = _eval_env(config, args)
        finished: list[float] = []
        progress = _episode_progress(args.episodes)

        def on_episode(episode: int, episode_return: float, length: int) -> None:
            finished.append(episode_return)
            if progress is not None:
                progress(episode, episode_return, length)

        try:
            stats = api.evaluate(
                agent,
                env,
                args.episodes,
                seed=args.seed,
                render=args.render,
                epsilon=args.epsilon,
                on_episode=on_episode,
            )
        except KeyboardInterrupt:
            env.close()  # a recorder writes the unfinished episode's video here
            env = None
            _report_interrupted_eval(finished, args)
            raise
        finally:
            if env is not None:
                env.close()
    print(
        f"{_policy_kind(stats.epsilon)} policy of {agent.run_dir}{_at_step(agent.step)}: "
        f"mean return {stats.mean_return:.2f} ± {stats.std_return:.2f} over "
        f"{count(args.episodes, 'episode')} on {config.env.id}"
    )
    return 0


def _report_interrupted_eval(finished: list[float], args: argparse.Namespace) -> None:
    """After Ctrl-C in ``rlsoft eval``: the episodes that finished, and with ``--video`` only
    their videos (the unfinished episode's recording, cut short, is removed)."""
    import numpy as np

    removed = False
    if args.video:
        for video in Path(args.video).glob("rl-video-episode-*.mp4"):
            number = video.stem.rsplit("-", 1)[-1]
            if number.isdigit() and int(number) >= len(finished):
                video.unlink(missing_ok=True)
                removed = True
    if finished:
        returns = np.asarray(finished, dtype=float)
        line = (
            f"rlsoft: eval stopped after {len(finished)} of {count(args.episodes, 'episode')}: "
            f"mean return {returns.mean():.2f} ± {returns.std():.2f} over those"
        )
    else:
        line = "rlsoft: eval stopped before its first episode ended"
    if removed:
        line += "; the unfinished episode's video was removed"
    if sys.stderr.isatty() and finished:
        line = "\n" + line  # after the progress line, which has no newline of its own
    print(line, file=sys.stderr)


def _check_video_dir(folder: Path) -> None:
    """``--video DIR`` must be a directory that is new or empty, or one that can be made: a
    folder holding other files would mix them with this evaluation's videos (Gymnasium
    overwrites ``rl-video-episode-N.mp4`` by number), and a run dir would gain MP4s."""
    if folder.exists():
        if not folder.is_dir():
            raise RlsoftError(f"--video {str(folder)!r} is a file; pass a directory for the videos")
        held = sorted(p.name for p in folder.iterdir())
        if held:
            shown = ", ".join(held[:3]) + (", …" if len(held) > 3 else "")
            raise RlsoftError(
                f"--video {str(folder)!r} is not empty (it holds {shown}); "
                "pass a new or empty directory, so that it holds this evaluation's videos only"
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise RlsoftError(f"--video {str(folder)!r} is not writable; pass another directory")
        return
    parent = folder.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise RlsoftError(
            f"--video {str(folder)!r} cannot be created: {str(parent)!r} is not a writable "
            "directory; pass a directory you can write to"
        )


def _at_step(step: int | None) -> str:
    return "" if step is None else f" (checkpoint at step {step:,})"


def _episode_progress(episodes: int):
    """On a terminal, a line on stderr updated after every episode (an Atari game can take
    half a minute; 100 of them would otherwise pass in silence); elsewhere nothing."""
    if not sys.stderr.isatty():
        return None
    total = 0.0

    def show(episode: int, episode_return: float, length: int) -> None:
        nonlocal total
        total += episode_return
        done = episode + 1
        end = "\n" if done == episodes else ""
        print(
            f"\r\033[Kepisode {done}/{episodes}: return {episode_return:g} in {length:,} "
            f"steps; mean so far {total / done:.2f}",
            end=end,
            file=sys.stderr,
            flush=True,
        )

    return show


def _refuse_unused_classifier_flags(args: argparse.Namespace, is_policy: bool) -> None:
    """A classifier of a data set is scored on its test set: episodes, their seed and their
    pictures do not exist for it (a behaviour-cloned one plays episodes, but draws none)."""
    unused = [] if is_policy else [f for f in ("episodes", "seed") if getattr(args, f) is not None]
    unused += [f for f in ("render", "video") if getattr(args, f)]
    if unused:
        flags = " and ".join(f"--{f}" for f in unused)
        what = (
            "a behaviour-cloned classifier's episodes are evaluated without rendering"
            if is_policy
            else "a classifier is scored on its test set, with no episodes"
        )
        raise RlsoftError(f"{flags} cannot apply here: {what}; leave {flags} out")


def _policy_kind(epsilon: float) -> str:
    """How an evaluation acted: ``greedy``, or ``ε-greedy (ε 0.05)``."""
    return f"ε-greedy (ε {epsilon:g})" if epsilon else "greedy"


ALE_FRAMES_PER_SECOND = 60
"""The Atari 2600's frame rate (NTSC), which ALE emulates frame by frame."""


def _video_fps(env: Any) -> int | None:
    """Frames per second of an evaluation video that plays in real time: for an ``ALE/`` id
    one frame per agent step, each ``env.atari.frame_skip`` emulator frames (15 at the
    protocol's 4; ALE declares 30, a 2600's 60 Hz halved, which would play such a video twice
    as fast); elsewhere the env's own ``render_fps`` (None: RecordVideo's default)."""
    atari = getattr(env, "atari", None)
    if atari is None:
        return None
    return max(1, round(ALE_FRAMES_PER_SECOND / atari.frame_skip))


def _eval_env(config, args: argparse.Namespace):
    import gymnasium as gym

    from rlsoft.cli.api import missing_display, quiet_missing_render_fps, render_mode_to_show
    from rlsoft.rl.envs.factory import make_env
    from rlsoft.rl.envs.video import VideoFrames

    if args.video:
        try:
            import moviepy  # noqa: F401
        except ImportError:
            raise RlsoftError(
                "--video needs moviepy; install the video extra: pip install 'rlsoft[video]'"
            ) from None
        probe = make_env(config.env)
        modes = probe.metadata.get("render_modes") or []
        probe.close()
        if "rgb_array" not in modes:
            raise RlsoftError(
                f"--video records rgb_array frames, which {config.env.id} does not render "
                f"(it has {', '.join(modes) or 'no render modes'})"
                + ("; show it as text with --render instead" if "ansi" in modes else "")
            )
        if missing_display("pygame"):
            # Frames are drawn off screen: SDL's dummy driver, instead of its complaint that
            # there is no display (XDG_RUNTIME_DIR) on a headless machine.
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        env = make_env(config.env, render_mode="rgb_array")
        quiet_missing_render_fps(env)
        try:
            # Made here: an OSError inside RecordVideo's constructor would leave a half-made
            # recorder whose __del__ fails too (Gymnasium 1.0 prints that traceback).
            os.makedirs(args.video, exist_ok=True)
            with warnings.catch_warnings():
                # The directory is empty (checked with the arguments): nothing to overwrite,
                # whatever Gymnasium's warning about an existing folder says.
                warnings.filterwarnings("ignore", message=r".*Overwriting existing videos")
                return gym.wrappers.RecordVideo(
                    VideoFrames(env),
                    args.video,
                    episode_trigger=lambda _: True,
                    disable_logger=True,
                    fps=_video_fps(config.env),
                )
        except OSError as exc:  # what the checks could not foresee: /proc, a read-only mount
            env.close()
            raise RlsoftError(
                f"--video {args.video!r} cannot be created ({exc.strerror}); pass a directory "
                "you can write to"
            ) from None
    if not args.render:
        return make_env(config.env)
    probe = make_env(config.env)
    try:
        mode = render_mode_to_show(probe, record="record it with --video DIR")
    except RlsoftError as exc:
        raise RlsoftError("--render" + str(exc).removeprefix("rendering")) from None
    finally:
        probe.close()
    quiet_missing_render_fps(probe)  # this process is the command's: for its whole run
    return make_env(config.env, render_mode=mode)


COMMANDS = {"train": cmd_train, "eval": cmd_eval}


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (e.g. from a job scheduler) ends a command as Ctrl-C does: a training run
    stops after a checkpoint and says how to resume, a comparison stops its workers. Only in
    the main thread, only where SIGTERM has its default action, and only for the command."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL
    ):
        yield
        return
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def one_line(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """``message`` on one line and at most ``limit`` characters (cut with ``…``)."""
    text = " ".join(message.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _stdout_reader_gone() -> bool:
    """Whether standard output is a pipe whose reading end is closed (``poll`` reports an
    error on the writing end then); False where that cannot be told."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False  # replaced by an object without a descriptor (a test's capture)
    if not hasattr(select, "poll"):
        return True  # Windows: no poll; a broken pipe while writing output is ours
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(event & select.POLLERR for _, event in poller.poll(0))


def _is_own_code(filename: str) -> bool:
    """Whether ``filename`` is a module of rlsoft or of its agents package."""
    path = Path(filename).resolve()
    for package in ("rlsoft", "agents"):
        module = sys.modules.get(package)
        location = getattr(module, "__file__", None)
        if location and path.is_relative_to(Path(location).resolve().parent):
            return True
    return False


@contextlib.contextmanager
def _own_warnings_as_lines() -> Iterator[None]:
    """Show the warnings rlsoft itself raises as ``rlsoft: warning: …`` lines, like the CLI's
    own, instead of Python's ``file:line: RuntimeWarning`` with the source line; other
    libraries' warnings keep their format."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if not _is_own_code(filename):
            shown(message, category, filename, lineno, file, line)
            return
        print(f"rlsoft: warning: {one_line(str(message))}", file=file or sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


def main(argv: Sequence[str] | None = None) -> int:
    # rlsoft's config models need no pydantic plugins, and looking for them scans every
    # installed distribution's entry points at the first model (about 8 ms of the 0.3 s a
    # config error may take, scripts/bench_startup.py). PYDANTIC_DISABLE_PLUGINS is pydantic's
    # documented switch; a value the user set is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _sigterm_as_interrupt(), _own_warnings_as_lines():
            import agents  # noqa: F401 - registers every agent family

            handler = COMMANDS.get(args.command) or args.handler
            return handler(args)
    except RlsoftError as exc:
        print(f"rlsoft: error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise  # another pipe (an async env's worker): not the reader of our output
        # The reader went away (rlsoft report | head -1): no traceback, and no second error
        # when Python flushes stdout at exit (the way the Python docs recommend, as rich does).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt as exc:
        # A training run stopped gracefully (rlsoft.run.trainer.RunInterrupted) says where it
        # stopped and how to resume; recognised by its attribute, so that importing the CLI
        # (and --help) does not import the trainer.
        stopped = getattr(exc, "resume_command", None)
        print(f"rlsoft: interrupted: {exc}" if stopped else "rlsoft: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
