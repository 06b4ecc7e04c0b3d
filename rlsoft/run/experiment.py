"""From a validated config to a finished run: run dirs, building the driver, resume, eval."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rlsoft.errors import (
    CheckpointError,
    ConfigError,
    DivergedError,
    ObservationMismatchError,
    RlsoftError,
    a_type,
    shorten,
)
from rlsoft.rl.agent import BuildContext, get_agent_spec
from rlsoft.rl.collector import EnvDriver
from rlsoft.rl.seeding import derive_seeds, seed_torch
from rlsoft.run.checkpoint import (
    CONFIG_FILE,
    SUMMARY_FILE,
    CheckpointWriteError,
    agent_file,
    atomic_write_text,
    latest_checkpoint,
    list_checkpoints,
    read_summary,
    verify_checkpoint,
)
from rlsoft.run.config import (
    PATH_NAME,
    ExperimentConfig,
    apply_overrides,
    check_path_name,
    check_unedited,
    default_name,
    override_paths,
    override_sources,
    parse_yaml,
    read_text_file,
    refuse_learning_changes,
    refuse_section_side_effects,
    replaced_sections,
    resume_changes,
    validate_config,
)
from rlsoft.run.trainer import DIVERGED_FILE, PID_FILE, Driver, RunResult, Trainer, resume_state

if TYPE_CHECKING:
    import gymnasium as gym

RESUME_HISTORY_FILE = "resume_history.json"
SPACES_FILE = "spaces.json"
"""An RL run's observation and action spaces (:func:`rlsoft.rl.spaces.space_to_json`),
written when it starts: loading its checkpoints to act then needs no environment (nor the
environment's package), only to evaluate."""


def resolve_device(name: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without one is an error."""
    if name == "cpu":
        return "cpu"
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if name == "cuda":
        raise RlsoftError(
            "device 'cuda' was asked for but no CUDA GPU is visible; use device: auto or cpu"
        )
    return "cpu"


def default_run_name(config: ExperimentConfig) -> str:
    return f"{config.name or 'run'}__s{config.seed}__{time.strftime('%Y%m%d-%H%M%S')}"


def plan_run_dir(config: ExperimentConfig, logdir: str | None = None) -> Path:
    """``<logdir>/<run_name>``, checked before anything is written: the logdir is a directory
    (or does not exist yet), the run dir resolves to a direct child of it (a name never
    escapes the logdir, whatever it or a symlink holds), and no earlier run is in the way."""
    root = Path(logdir or config.logdir)
    name = config.run_name or default_run_name(config)
    try:
        check_path_name(name, "run name")
    except ValueError as exc:
        raise RlsoftError(f"{exc}; choose another with --set run_name=NAME") from None
    if root.exists() and not root.is_dir():
        raise RlsoftError(
            f"logdir {str(root)!r} is a file, not a directory; pass a --logdir that is a "
            "directory or does not exist yet"
        )
    run_dir = root / name
    if run_dir.resolve().parent != root.resolve():
        raise RlsoftError(
            f"run dir {str(run_dir)!r} resolves outside the logdir {str(root)!r} (through a "
            "symbolic link); choose another name with --set run_name=NAME"
        )
    if config.run_name is None:
        return run_dir  # a default name is made unique when it is created (_claim_new_dir)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise RlsoftError(
            f"run dir {str(run_dir)!r} already exists; resume it with rlsoft train --resume "
            f"{run_dir}, or choose another name with --set run_name=NAME"
        )
    return run_dir


def _first_missing(path: Path) -> Path | None:
    """The outermost ancestor of ``path`` (or ``path`` itself) that does not exist yet."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def create_run_dir(config: ExperimentConfig, logdir: str | None = None) -> Path:
    """``<logdir>/<run_name>``, created empty, with the resolved ``config.yaml`` inside.

    A directory that cannot be made or written (a file in the way, no permission, a full
    disk) is one sentence, and whatever this call created is removed again.
    """
    return _create_run_dir(config, logdir)[0]


def _create_run_dir(config: ExperimentConfig, logdir: str | None) -> tuple[Path, Path | None]:
    """:func:`create_run_dir`, also returning the outermost directory it created."""
    run_dir = plan_run_dir(config, logdir)  # the default name holds the time: plan it once
    data = config.to_dict()  # before any directory exists: a value YAML cannot hold fails here
    created = _first_missing(run_dir if config.run_name else run_dir.parent)
    claimed = config.run_name is not None  # a named run dir is this call's (plan_run_dir)
    try:
        if config.run_name is None:
            run_dir = _claim_new_dir(run_dir)
            claimed = True
            created = created or run_dir
        else:
            _make_dir(run_dir)
        data["logdir"], data["run_name"] = str(run_dir.parent), run_dir.name
        atomic_write_text(run_dir / CONFIG_FILE, yaml.safe_dump(data, sort_keys=False))
    except OSError as exc:
        if claimed:
            _remove_created(run_dir, created)
        else:
            # No name was claimed: run_dir is the taken base name, another run's dir; only
            # the parents made here go, and only while empty.
            _remove_empty_parents(run_dir.parent, created)
        reason = exc.strerror or type(exc).__name__
        raise RlsoftError(
            f"cannot write the run dir {str(run_dir)!r} ({reason}); pass a --logdir you can "
            "write to"
        ) from None
    return run_dir, created


MAX_NAME_SUFFIX = 1000
"""The most ``-2``, ``-3``, … suffixes tried for a default run name already taken."""


def _claim_new_dir(run_dir: Path) -> Path:
    """``run_dir``, or ``run_dir-2``, ``run_dir-3``, … when taken, created here and by no one
    else: ``os.mkdir`` fails on an existing directory, so two runs started in the same second
    (the default name holds the time to the second), by two processes even, never share one.
    """
    _make_dir(run_dir.parent)
    for k in range(1, MAX_NAME_SUFFIX + 1):
        candidate = run_dir if k == 1 else run_dir.with_name(f"{run_dir.name}-{k}")
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        return candidate
    raise RlsoftError(
        f"the run names {run_dir.name} to {run_dir.name}-{MAX_NAME_SUFFIX} are all taken in "
        f"{str(run_dir.parent)!r}; choose a name with --set run_name=NAME"
    )


def prepare_logdir(root: Path, flag: str = "--logdir") -> None:
    """Create the directory ``root`` (and its parents) and check that files can be written
    in it; otherwise one sentence naming ``flag``, with whatever this call made removed."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise RlsoftError(
            f"logdir {str(root)!r} is a file, not a directory; pass a {flag} that is a "
            "directory or does not exist yet"
        )
    created = _first_missing(root)
    probe = root / f".rlsoft-write-test-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise RlsoftError(
            f"cannot write into the logdir {str(root)!r} ({exc.strerror or type(exc).__name__}); "
            f"pass a {flag} you can write to"
        ) from None


def _make_dir(path: Path, attempts: int = 5) -> None:
    """``path.mkdir(parents=True, exist_ok=True)``, tried again when a parent vanished.

    A comparison's runs share parents (``<logdir>/<env>/<variant>``) and a run that fails
    early removes the parents it made once they are empty (:func:`_remove_created`); one
    removed between ``mkdir`` making the parents and making ``path`` is made again.
    """
    for attempt in range(attempts):
        try:
            path.mkdir(parents=True, exist_ok=True)
            return
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise


def _remove_created(run_dir: Path, created: Path | None) -> None:
    """Remove ``run_dir`` and, while they are empty, the parents made for it (``created``:
    the outermost one); a run dir that already existed (empty) is emptied again but kept.

    Parents are removed with ``rmdir``, which refuses a non-empty directory: another run of
    the same comparison may have made its own run dir in them meanwhile, and a recursive
    removal would take that run's files with it.
    """
    if created is not None:
        shutil.rmtree(run_dir, ignore_errors=True)
        if run_dir != created:
            _remove_empty_parents(run_dir.parent, created)
        return
    for child in run_dir.iterdir() if run_dir.is_dir() else ():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _remove_empty_parents(directory: Path, created: Path | None) -> None:
    """``rmdir`` ``directory`` and its parents up to ``created`` (the outermost this call
    made; None: none), stopping at the first that is not empty: another run lives there."""
    if created is None:
        return
    while True:
        try:
            directory.rmdir()
        except OSError:
            return
        if directory == created:
            return
        directory = directory.parent


def _write_run_config(run_dir: Path, data: dict[str, Any]) -> None:
    atomic_write_text(run_dir / CONFIG_FILE, yaml.safe_dump(data, sort_keys=False))


def run_dir_of(path: str | Path) -> Path:
    """The run dir a user named: the directory itself, or its ``config.yaml`` (which a shell's
    tab completion or a file browser hands over as readily)."""
    path = Path(path)
    if path.name == CONFIG_FILE and path.is_file():
        return path.parent
    return path


def _nearby(folder: Path) -> str:
    """What to pass instead of ``folder``, which is not a run dir: the run dir it lies in (a
    checkpoint of it), or those below it (a comparison's logdir), else a run dir's form."""
    for parent in list(folder.resolve().parents)[:2]:
        if (parent / CONFIG_FILE).is_file():
            return (
                f"it is inside run dir {str(parent)!r}, whose newest checkpoint is the one "
                "loaded: pass that run dir"
            )
    with contextlib.suppress(OSError):
        # Three levels, as a comparison lays its runs out (<env>/<variant>/seed_<k>): a
        # directory such as $HOME is not searched through.
        below = sorted(
            p.parent for depth in (1, 2, 3) for p in folder.glob("*/" * depth + CONFIG_FILE)
        )
        if len(below) == 1:
            return f"it holds the run dir {str(below[0])!r}: pass that"
        if below:
            return f"it holds {len(below)} run dirs, such as {str(below[0])!r}: pass one of them"
    return "pass a directory made by rlsoft train, e.g. runs/<run-name>"


def read_run_config(run_dir: Path, *, recorded_spaces: bool = False) -> ExperimentConfig:
    """The run's validated config; ``recorded_spaces``: read to act with the spaces the run
    recorded, so its environment's package need not be installed
    (:data:`rlsoft.run.config.RECORDED_SPACES`)."""
    run_dir = run_dir_of(run_dir)
    path = run_dir / CONFIG_FILE
    if run_dir.is_file():
        raise RlsoftError(
            f"{str(run_dir)!r} is a file, not a run dir; pass the directory made by rlsoft "
            "train, e.g. runs/<run-name>"
        )
    if not run_dir.exists():
        raise RlsoftError(
            f"run dir {str(run_dir)!r} does not exist; pass a directory made by rlsoft train, "
            "e.g. runs/<run-name>"
        )
    if not path.is_file():
        raise RlsoftError(
            f"{str(run_dir)!r} is not a run dir (no {CONFIG_FILE}); {_nearby(run_dir)}"
        )
    text = read_text_file(path, "run config")
    data = parse_yaml(text, str(path))
    if not isinstance(data, dict):
        # rlsoft train writes a mapping: anything else was emptied or overwritten since.
        what = "is empty" if data is None else f"holds {a_type(data)}, not a mapping"
        raise RlsoftError(
            f"run config {str(path)!r} {what}, so the run dir is damaged; restore the file "
            "(it is the training config with logdir and run_name filled in) or train again"
        )
    if isinstance(data, dict):
        # Runs made before names had to be directory-safe (a file stem with a space) stay
        # usable: the run already exists, so its names make no new path.
        for key in ("name", "run_name"):
            if isinstance(data.get(key), str) and not PATH_NAME.match(data[key]):
                data[key] = default_name(data[key])
        _pin_old_atari_backend(data)
    return validate_config(data, str(path), recorded_spaces=recorded_spaces)


def _pin_old_atari_backend(data: dict[str, Any]) -> None:
    """An Atari run written before ``env.atari.backend`` existed stepped the Gymnasium stack;
    its config has no ``backend``, which would now read as ``auto`` (the native env) and make
    its checkpoint's environment records unreplayable. Such a run keeps the Gymnasium stack."""
    env = data.get("env")
    atari = env.get("atari") if isinstance(env, dict) else None
    if isinstance(atari, dict) and "backend" not in atari:
        atari["backend"] = "gymnasium"


def build_driver(
    config: ExperimentConfig,
    *,
    eval_only: bool = False,
    spaces: tuple[gym.Space, gym.Space] | None = None,
) -> Driver:
    """The agent (through the registry) and the driver that runs it.

    :param eval_only: to evaluate or act from a checkpoint: an RL driver then makes no
        training environment.
    :param spaces: an RL agent's ``(observation, action)`` spaces as the run recorded them
        (:data:`SPACES_FILE`); None: probe a copy of the environment. An RL driver keeps
        them as ``spaces``.
    """
    spec = get_agent_spec(config.agent_type)
    seeds = derive_seeds(config.seed)
    # Only torch agents have a device: resolving "auto" imports torch, which a tabular run
    # never needs (1-2 s of start-up).
    device = resolve_device(config.device) if spec.uses_torch else "cpu"
    if spec.kind == "rl" and config.env is None:
        raise RlsoftError(f"agent {spec.name!r} learns from an environment; add an env section")
    if spec.uses_torch:
        _configure_torch(config, seeds.torch)
    observation_space = action_space = None
    if spec.kind == "rl" and spaces is not None:
        observation_space, action_space = spaces
    elif spec.kind == "rl":
        from rlsoft.rl.envs.factory import probe_spaces

        with _missing_render_dependency(config):
            observation_space, action_space = probe_spaces(config.env)
    context = BuildContext(
        config=config.agent_config(),
        observation_space=observation_space,
        action_space=action_space,
        policy=config.exploration.build(),
        rng=seeds.agent_rng(),
        torch_seed=seeds.torch,
        device=device,
        num_envs=config.env.num_envs if config.env else 1,
        total_steps=config.train.total_steps,
        extras={
            "train_run": train_teacher_run,
            "load_run": load_trained,
            "experiment": config,
            "seeds": seeds,
            "eval_only": eval_only,
        },
    )
    built = spec.build(context)
    if spec.kind == "rl":
        with _missing_render_dependency(config):
            driver = EnvDriver(built, config, seeds, training_env=not eval_only)
        driver.spaces = (observation_space, action_space)
        return driver
    return built  # supervised agents build their own driver


@contextlib.contextmanager
def _missing_render_dependency(config: ExperimentConfig) -> Iterator[None]:
    """One sentence for an optional dependency an environment asks for only when it first
    draws: ``env.kwargs.render_mode: human`` imports pygame at the first ``reset``, which
    :func:`~rlsoft.rl.envs.factory.make_env` cannot see when it makes the env."""
    import gymnasium as gym

    try:
        yield
    except gym.error.DependencyNotInstalled as exc:
        env = config.env
        mode = env.kwargs.get("render_mode") if env is not None else None
        reason = " ".join(str(exc).split())
        if mode is None or "pygame" not in reason.lower():
            raise RlsoftError(
                f"environment {env.id!r} needs an optional dependency ({shorten(reason, 160)})"
            ) from None
        raise RlsoftError(
            f"env.kwargs.render_mode {mode!r} makes {env.id} draw every step, which needs pygame "
            "and a display (pygame is not installed: pip install pygame, or pip install "
            "'gymnasium[classic-control]'); remove render_mode to train without drawing and "
            "watch a trained run with rlsoft eval RUN_DIR --render"
        ) from None


def _configure_torch(config: ExperimentConfig, seed: int) -> None:
    """Threads and seed of torch, for an agent that computes with it."""
    import torch

    torch.set_num_threads(config.train.torch_threads)
    seed_torch(seed)


@contextlib.contextmanager
def hold_run_dir(run_dir: Path, before: str = "resuming") -> Iterator[None]:
    """Hold ``run_dir`` for this process while it trains, or refuse in one sentence when
    another process holds it (a second ``--resume`` of a running run would write its curves
    and checkpoints twice).

    The lock is ``flock`` on the directory itself, so nothing is added to a run dir that a
    refused or failed command must leave as it was; the kernel releases it when the process
    ends, however it ends. Where ``fcntl`` does not exist (Windows) nothing is locked.

    :param before: what the refusal says to wait with ("… or stop it, before resuming").
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    try:
        fd = os.open(run_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        yield  # not a directory: the caller's own checks say so
        return
    pid_file = Path(run_dir) / PID_FILE
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RlsoftError(
                f"run dir {str(run_dir)!r} is in use by {_holder(run_dir)}, which is "
                f"training it; wait for it to finish, or stop it, before {before}"
            ) from None
        except OSError as exc:
            # A file system without flock on directories (NFS emulates it with fcntl locks,
            # which need a file open for writing): train unguarded rather than not at all.
            warnings.warn(
                f"run dir {str(run_dir)!r} cannot be locked on this file system "
                f"({exc.strerror or type(exc).__name__}), so a second process could resume it "
                "while this one trains; do not start one",
                RuntimeWarning,
                stacklevel=3,
            )
        with contextlib.suppress(OSError):  # the pid only adds to the message
            pid_file.write_text(str(os.getpid()), encoding="utf-8")
        try:
            yield
        finally:
            pid_file.unlink(missing_ok=True)
    finally:
        os.close(fd)  # releases the lock


def _holder(run_dir: Path) -> str:
    """ "another process (pid N)": the process :func:`hold_run_dir` recorded in the run dir."""
    try:
        return f"another process (pid {int((Path(run_dir) / PID_FILE).read_text('utf-8'))})"
    except (OSError, ValueError):
        return "another process"


def run_dir_holder(run_dir: Path) -> str | None:
    """Who holds ``run_dir`` (:func:`hold_run_dir`), e.g. "another process (pid 4242)", or
    None: free, missing, or on a system or file system without the lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    try:
        fd = os.open(run_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(run_dir)
    except OSError:
        return None
    finally:
        os.close(fd)  # releases the lock, if this took it
    return None


def remove_run_dir(run_dir: Path) -> None:
    """Delete an unfinished attempt's ``run_dir`` to start the run again, holding it while
    deleting, so that a run dir another process is training is refused, not pulled from
    under it.

    :raises RlsoftError: another process holds it (:func:`hold_run_dir`'s sentence).
    """
    with hold_run_dir(run_dir, before="starting the run again"):
        shutil.rmtree(run_dir)


def run_experiment(
    config: ExperimentConfig,
    *,
    logdir: str | None = None,
    hparams_domain: dict[str, Any] | None = None,
    stop_event: threading.Event | None = None,
    on_start: Callable[[], None] | None = None,
) -> RunResult:
    """Train a new run from ``config``; a failure before the first step, bad input that its
    first steps show (an :class:`~rlsoft.errors.RlsoftError` before the trainer's first
    chunk of steps ends), or observations that contradict the config
    (:class:`~rlsoft.errors.ObservationMismatchError`) before the first checkpoint and the
    first evaluation, removes the run dir.

    :param hparams_domain: the HParams experiment shared by a group of runs (a comparison),
        see :meth:`rlsoft.run.logger.RunLogger.hparams`.
    :param on_start: called once every check has passed, just before the first step (the
        command line prints its warnings there, never above a refusal).
    :param stop_event: set it (from any thread) for a graceful stop: the run writes a
        checkpoint and raises :class:`~rlsoft.run.trainer.RunInterrupted`. SIGINT and SIGTERM do
        the same when the run is in the main thread.
    """
    run_dir, created = _create_run_dir(config, logdir)
    with hold_run_dir(run_dir):
        driver = None
        try:
            driver = build_driver(config)
            _record_spaces(run_dir, driver)
            trainer = Trainer(
                driver, config, run_dir, hparams_domain=hparams_domain, stop_event=stop_event
            )
        except BaseException:
            if driver is not None:
                driver.close()
            _remove_created(run_dir, created)
            raise
        if on_start is not None:
            on_start()
        try:
            return trainer.run()
        except RlsoftError as exc:
            # Bad input the first steps showed (observations the frame replay cannot store),
            # before the trainer finished its first chunk of steps: nothing was learned, so no
            # run dir is left. Later failures keep theirs (curves of a long run, with or
            # without a checkpoint), a divergence its record, a failed write its curves.
            # An environment whose reset frames are blank pads zero and reset stacks alike,
            # so a frame_padding mismatch can show only episodes later: still bad input while
            # the run has neither a checkpoint nor an evaluation to keep.
            kept = isinstance(exc, (DivergedError, CheckpointWriteError))
            mismatch = isinstance(exc, ObservationMismatchError) and not trainer.eval_history
            early = trainer.step == 0 or mismatch
            if not kept and early and latest_checkpoint(run_dir) is None:
                _remove_created(run_dir, created)
            raise


def resume_experiment(
    run_dir: Path,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    *,
    stop_event: threading.Event | None = None,
    hparams_domain: dict[str, Any] | None = None,
    override_source: str = "overrides",
    on_start: Callable[[], None] | None = None,
) -> RunResult:
    """Continue ``run_dir`` from its newest checkpoint.

    ``overrides`` (dotted keys to values, or ``key=value`` strings, applied to the run's
    config as ``rlsoft train`` applies them to a new one:
    :func:`~rlsoft.run.config.apply_overrides`) may change only the fields in
    :data:`rlsoft.run.config.RESUME_CHANGEABLE` (a longer budget, another logging cadence);
    a change is written to the run's ``config.yaml`` and every resume is listed in
    ``resume_history.json`` (step, time, the changed fields with their old and new values).

    :param hparams_domain: as for :func:`run_experiment` (a comparison's retried run).
    :param override_source: what an error in an overridden field names (``--set`` from the
        command line).
    :param on_start: as for :func:`run_experiment`.
    :raises ConfigError: an override that would change what the run learns.
    """
    run_dir = run_dir_of(run_dir)
    with hold_run_dir(run_dir):
        return _resume_held(
            run_dir, overrides, stop_event, hparams_domain, override_source, on_start
        )


def _resume_held(
    run_dir: Path,
    overrides: Mapping[str, Any] | Sequence[str] | None,
    stop_event: threading.Event | None,
    hparams_domain: dict[str, Any] | None,
    override_source: str,
    on_start: Callable[[], None] | None = None,
) -> RunResult:
    """:func:`resume_experiment` once this process holds ``run_dir``."""
    saved = read_run_config(run_dir)
    config = saved
    if overrides:
        data = apply_overrides(saved.to_dict(), overrides)
        # The fields the overrides name (a section set empty names none of its own).
        whole = replaced_sections(overrides)
        learned = [f for f in override_paths(overrides) if f not in ("logdir", "run_name", *whole)]
        try:
            config = validate_config(
                copy.deepcopy(data),
                source=str(run_dir / CONFIG_FILE),
                overrides_from=[(override_source, override_sources(overrides))],
            )
        except ConfigError:
            # An override the resume may not make at all is the error to report (changing
            # env.atari.backend is refused as a change, not for a clash it causes).
            # (A bad run name is its own error: the names are not what the run learns.)
            if learned:
                refuse_learning_changes(saved.to_dict(), data, only=learned)
            raise
        # The fields the user named first: agent={type: dqn} on a Q-learning run is refused
        # for agent.type, not for the first of the agent fields it would reset.
        if learned:
            refuse_learning_changes(saved.to_dict(), config.to_dict(), only=learned)
        refuse_section_side_effects(saved.to_dict(), config.to_dict(), overrides, override_source)
    checkpoint, state = _read_checkpoint(run_dir, "resume")
    check_unedited(state.get("config"), saved, str(run_dir / CONFIG_FILE))
    step = int(state["step"])
    changes = resume_changes(saved, config, step)
    if hparams_domain is None and _finished_as_recorded(run_dir, config, state):
        # Nothing to train or evaluate: no environment, no agent, and no new event file
        # holding only a restart marker and a second copy of the run's HParams session.
        if changes:
            _write_run_config(run_dir, config.to_dict())
            _append_resume_history(run_dir, step, changes)
        if on_start is not None:
            on_start()
        return _recorded_result(run_dir, state)
    driver = build_driver(config)
    try:
        # Anything failing from here on closes the environments (and async workers).
        with _damaged_checkpoint(run_dir, checkpoint):
            driver.load_agent(agent_file(checkpoint))
            driver.load_state_dict(state.get("driver", {}))
        trainer = Trainer(
            driver,
            config,
            run_dir,
            start_step=step,
            trainer_state=state,
            stop_event=stop_event,
            hparams_domain=hparams_domain,
        )
    except BaseException:
        driver.close()
        raise
    if changes:
        _write_run_config(run_dir, config.to_dict())
    if not (run_dir / SPACES_FILE).exists():  # a run dir from before the file
        _record_spaces(run_dir, driver)
    if changes or step < config.train.total_steps:  # not a finished run resumed as it was
        _append_resume_history(run_dir, step, changes)
    if (run_dir / SUMMARY_FILE).exists() and step < config.train.total_steps:
        (run_dir / SUMMARY_FILE).unlink()  # no longer finished: the budget grew
    if on_start is not None:
        on_start()
    return trainer.run()


def _finished_as_recorded(run_dir: Path, config: ExperimentConfig, state: dict[str, Any]) -> bool:
    """Whether the checkpoint ``state`` is the run's end as its ``summary.json`` records it:
    the budget reached, the final evaluation done and the summary readable."""
    step = int(state["step"])
    history = state.get("eval_history") or []
    return (
        step >= config.train.total_steps
        and not state.get("eval_pending", False)
        and bool(history)
        and int(history[-1][0]) == step
        and read_summary(run_dir) is not None
    )


def _recorded_result(run_dir: Path, state: dict[str, Any]) -> RunResult:
    """The :class:`RunResult` a trainer resumed from the finished checkpoint ``state`` returns
    (it trains nothing and keeps the evaluation made at that step)."""
    return RunResult(
        run_dir,
        int(state["step"]),
        float(state.get("elapsed", 0.0)),
        dict(state.get("last_eval", {})),
        [tuple(point) for point in state.get("eval_history", [])],
        float(state.get("eval_seconds", 0.0)),
        state.get("last_eval_epsilon"),
    )


def _append_resume_history(run_dir: Path, step: int, changes: dict[str, list[Any]]) -> None:
    """Add ``{step, time, changed}`` to the run's ``resume_history.json`` (a JSON list)."""
    path = run_dir / RESUME_HISTORY_FILE
    history: list[Any] = []
    if path.is_file():
        try:
            history = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            history = []  # unreadable: start the list again rather than refuse to resume
        if not isinstance(history, list):
            history = []
    history.append(
        {
            "step": step,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "changed": {key: {"from": old, "to": new} for key, (old, new) in changes.items()},
        }
    )
    atomic_write_text(path, json.dumps(history, indent=2) + "\n")


def _record_spaces(run_dir: Path, driver: Driver) -> None:
    """Write :data:`SPACES_FILE` for an RL driver whose spaces JSON can hold."""
    from rlsoft.rl.spaces import space_to_json

    spaces = getattr(driver, "spaces", None)
    if spaces is None:
        return
    encoded = [space_to_json(space) for space in spaces]
    if None not in encoded:
        text = json.dumps({"observation": encoded[0], "action": encoded[1]}, indent=1)
        atomic_write_text(run_dir / SPACES_FILE, text + "\n")


def _recorded_spaces(run_dir: Path) -> tuple[gym.Space, gym.Space] | None:
    """The spaces :func:`_record_spaces` wrote, or None (a run dir from before it, or an
    unreadable file, said in a warning: the environment is probed instead, as it was, which
    needs its package installed)."""
    from rlsoft.rl.spaces import space_from_json

    path = run_dir / SPACES_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return space_from_json(data["observation"]), space_from_json(data["action"])
    except (OSError, ValueError, KeyError, TypeError):
        warnings.warn(
            f"{str(path)!r} is damaged, so the run's environment is made to read its spaces "
            "(which needs the environment's package); delete the file, and a resume writes it anew",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


def load_trained(run_dir: Path) -> tuple[ExperimentConfig, Driver]:
    """The run's config and a driver whose agent holds the newest checkpoint (for eval)."""
    config, driver, _ = load_newest_checkpoint(run_dir)
    return config, driver


def load_newest_checkpoint(run_dir: Path) -> tuple[ExperimentConfig, Driver, int]:
    """:func:`load_trained` and the step (epoch, for a classifier) of the checkpoint loaded:
    a run still training may have gone on since."""
    run_dir = run_dir_of(run_dir)
    spaces = _recorded_spaces(run_dir)
    config = read_run_config(run_dir, recorded_spaces=spaces is not None)
    checkpoint, state = _read_checkpoint(run_dir, "evaluate")
    driver = build_driver(config, eval_only=True, spaces=spaces)
    try:
        with _damaged_checkpoint(run_dir, checkpoint):
            driver.load_agent(agent_file(checkpoint))
    except BaseException:
        driver.close()
        raise
    return config, driver, state["step"]


_DAMAGE = (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError)
"""What reading a truncated or edited checkpoint raises (a JSON or UTF-8 decoding error is a
``ValueError``; a missing array is a ``KeyError``)."""


def _read_checkpoint(run_dir: Path, purpose: str) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint of ``run_dir`` and its trainer state (``purpose``: ``resume`` or
    ``evaluate``, for the message when there is none)."""
    diverged = _divergence(run_dir)
    if diverged is not None and latest_checkpoint(run_dir) is None:
        raise RlsoftError(
            f"run dir {str(run_dir)!r} diverged (its values became NaN or infinite) at step "
            f"{diverged.get('step', '?')}, before any checkpoint, so it has none to {purpose}; "
            f"train it again with {diverged.get('fix', 'a lower learning rate')}"
        )
    if latest_checkpoint(run_dir) is None and purpose != "resume":
        raise RlsoftError(
            f"run dir {str(run_dir)!r} has no checkpoint to {purpose} yet (a run writes one when "
            "it ends and every train.checkpoint_every steps); let its training finish first"
        )
    checkpoint = latest_checkpoint(run_dir)
    with _damaged_checkpoint(run_dir, checkpoint):
        if checkpoint is not None:
            verify_checkpoint(checkpoint)
        checkpoint, state = resume_state(run_dir)
        if not isinstance(state, dict) or not isinstance(state.get("step"), int):
            raise ValueError("trainer.json holds no step counter")
    return checkpoint, state


def _divergence(run_dir: Path) -> dict[str, Any] | None:
    """The record :class:`~rlsoft.run.trainer.Trainer` left when the run diverged, if any."""
    try:
        record = json.loads((Path(run_dir) / DIVERGED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


@contextlib.contextmanager
def _damaged_checkpoint(run_dir: Path, checkpoint: Path | None) -> Iterator[None]:
    """Turn the errors of reading a damaged checkpoint into one sentence that says which
    checkpoint is damaged and what to do about it."""
    older = [c for c in list_checkpoints(run_dir) if c != checkpoint]
    fix = (
        f"delete it to use the previous checkpoint {older[-1].name}"
        if older
        else "train the run again"
    )
    try:
        yield
    except CheckpointError as exc:  # the agent named the file; the way out is the run's
        way_out = (
            f"delete the checkpoint dir {str(checkpoint)!r} to fall back to {older[-1].name}, "
            "or train the run afresh"
            if older
            else "train the run afresh from its config (rlsoft train CONFIG)"
        )
        raise RlsoftError(f"{exc}; {way_out}") from None
    except RlsoftError:
        raise  # already one sentence (some are ValueErrors too)
    except _DAMAGE as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, OSError) and exc.filename:  # the file's name, not a cut-off path
            name = Path(exc.filename)
            name = name.relative_to(checkpoint) if name.is_relative_to(checkpoint) else name
            reason = f"{exc.strerror or 'cannot be read'}: {name}"
        raise RlsoftError(
            f"checkpoint {str(checkpoint)!r} is damaged and cannot be read "
            f"({type(exc).__name__}: {shorten(reason)}); {fix}"
        ) from None


def train_teacher_run(
    teacher_config: Path, teacher_run: Path, echo: Callable[[str], None] = print
) -> None:
    """Train the run dir ``teacher_run`` from ``teacher_config`` (run dir name and logdir taken
    from ``teacher_run``), announcing it in one line. The supervised layer gets this through
    ``BuildContext.extras["train_run"]``: it must not import the run layer's orchestration."""
    from rlsoft.run.config import load_config

    overrides = [f"run_name={teacher_run.name}", f"logdir={teacher_run.parent}"]
    config = load_config(teacher_config, overrides)
    echo(
        f"teacher run {teacher_run} not found: training it first from {teacher_config} "
        f"({config.train.total_steps:,} steps)"
    )
    run_experiment(config)
