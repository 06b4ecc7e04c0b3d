"""From a validated config to a finished run: run dirs, building the driver, resume, eval."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from rlsoft.agent import BuildContext, get_agent_spec
from rlsoft.checkpoint import agent_file, atomic_write_text
from rlsoft.config import ExperimentConfig, parse_yaml, validate_config
from rlsoft.errors import RlsoftError
from rlsoft.rollout import EnvDriver
from rlsoft.seeding import derive_seeds, seed_torch
from rlsoft.training import CONFIG_FILE, SUMMARY_FILE, Driver, RunResult, Trainer, resume_state


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


def create_run_dir(config: ExperimentConfig, logdir: str | None = None) -> Path:
    """``<logdir>/<run_name>``, created empty, with the resolved ``config.yaml`` inside."""
    root = Path(logdir or config.logdir)
    run_dir = root / (config.run_name or default_run_name(config))
    if run_dir.exists() and any(run_dir.iterdir()):
        raise RlsoftError(
            f"run dir {str(run_dir)!r} already exists; resume it with rlsoft train --resume "
            f"{run_dir}, or choose another name with --set run_name=NAME"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    data = config.to_dict()
    data["logdir"], data["run_name"] = str(root), run_dir.name
    atomic_write_text(run_dir / CONFIG_FILE, yaml.safe_dump(data, sort_keys=False))
    return run_dir


def read_run_config(run_dir: Path) -> ExperimentConfig:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise RlsoftError(
            f"{str(run_dir)!r} is not a run dir (no {CONFIG_FILE}); pass a directory made by "
            "rlsoft train, e.g. runs/<run-name>"
        )
    return validate_config(parse_yaml(path.read_text(encoding="utf-8"), str(path)), str(path))


def build_driver(config: ExperimentConfig, *, eval_only: bool = False) -> Driver:
    """The agent (through the registry) and the driver that runs it."""
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
    if spec.kind == "rl":
        from rlsoft.envs import make_env

        probe = make_env(config.env)
        observation_space, action_space = probe.observation_space, probe.action_space
        probe.close()
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
        extras={"experiment": config, "seeds": seeds, "eval_only": eval_only},
    )
    built = spec.build(context)
    if spec.kind == "rl":
        return EnvDriver(built, config, seeds)
    return built  # supervised agents build their own driver


def _configure_torch(config: ExperimentConfig, seed: int) -> None:
    """Threads and seed of torch, for an agent that computes with it."""
    import torch

    torch.set_num_threads(config.train.torch_threads)
    seed_torch(seed)


def run_experiment(
    config: ExperimentConfig,
    *,
    logdir: str | None = None,
    hparams_domain: dict[str, Any] | None = None,
) -> RunResult:
    """Train a new run from ``config``; a failure before the first step removes the run dir.

    :param hparams_domain: the HParams experiment shared by a group of runs (a comparison),
        see :meth:`rlsoft.logger.RunLogger.hparams`.
    """
    run_dir = create_run_dir(config, logdir)
    try:
        driver = build_driver(config)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return Trainer(driver, config, run_dir, hparams_domain=hparams_domain).run()


def resume_experiment(run_dir: Path, overrides: dict[str, Any] | None = None) -> RunResult:
    """Continue ``run_dir`` from its newest checkpoint (a longer budget may be given)."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    if overrides:
        # Deep merge: --set train.total_steps=N must keep the rest of the train section.
        data = _deep_merge(config.model_dump(mode="json"), overrides)
        config = validate_config(data, source=str(run_dir / CONFIG_FILE))
    checkpoint, state = resume_state(run_dir)
    driver = build_driver(config)
    driver.load_agent(agent_file(checkpoint))
    driver.load_state_dict(state.get("driver", {}))
    if (run_dir / SUMMARY_FILE).exists() and state["step"] < config.train.total_steps:
        (run_dir / SUMMARY_FILE).unlink()  # no longer finished: the budget grew
    trainer = Trainer(driver, config, run_dir, start_step=int(state["step"]), trainer_state=state)
    return trainer.run()


def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied key by key into nested sections."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_trained(run_dir: Path) -> tuple[ExperimentConfig, Driver]:
    """The run's config and a driver whose agent holds the newest checkpoint (for eval)."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    checkpoint, _ = resume_state(run_dir)
    driver = build_driver(config, eval_only=True)
    driver.load_agent(agent_file(checkpoint))
    return config, driver
