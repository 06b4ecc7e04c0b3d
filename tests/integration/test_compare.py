"""rlsoft compare: config validation, the grid, the local backend, resume, failures,
report reproduction and the TensorBoard dashboards (checked on a real TensorBoard server)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import agents  # noqa: F401 - registers q_learning for plan validation
from rlsoft.cli import main
from rlsoft.compare.grid import GridProgress
from rlsoft.compare.plan import load_comparison, plan_comparison
from rlsoft.compare.runners import RAY_MISSING, RunOutcome, run_grid, run_one
from rlsoft.errors import ConfigError, RlsoftError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BASE = {
    "env": {"id": "Taxi-v4"},
    "agent": {"type": "q_learning", "learning_rate": 0.5},
    "train": {"total_steps": 3000, "eval_every": 1000, "eval_episodes": 3, "log_every": 500},
}
VARIANTS = {
    "eps": {"exploration.policy": "epsilon_greedy", "exploration.epsilon": 0.2},
    "boltzmann": {"exploration.policy": "boltzmann", "exploration.temperature": 1.0},
}


def plan(logdir, **changes):
    data = {"name": "t", "base": BASE, "seeds": 2, "variants": VARIANTS, **changes}
    return plan_comparison(data, source="t.yaml", logdir=logdir)


def rlsoft(*args):
    """Run the command line in this process, capturing its exit code and output (module
    fixtures cannot use capsys; the workers are separate processes either way)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


# --------------------------------------------------------------------------------------------
# Planning and validation (nothing runs)
# --------------------------------------------------------------------------------------------


def test_grid_has_one_ordinary_run_dir_per_env_variant_seed(tmp_path):
    comparison = plan(logdir=tmp_path, seeds=[3, 5])
    assert [(r.variant, r.seed) for r in comparison.runs] == [
        ("eps", 3),
        ("boltzmann", 3),
        ("eps", 5),
        ("boltzmann", 5),
    ]
    run = comparison.runs[1]
    assert run.run_dir == tmp_path / "Taxi-v4" / "boltzmann" / "seed_3"
    assert run.config["name"] == "boltzmann" and run.config["seed"] == 3
    assert run.config["exploration"]["policy"] == "boltzmann"
    assert run.config["train"]["progress"] == "off"
    assert run.config["agent"]["learning_rate"] == 0.5


def test_overrides_apply_base_then_common_then_variant_then_set(tmp_path):
    data = {
        "name": "t",
        "base": BASE,
        "seeds": 1,
        "overrides": {"train.total_steps": 500, "exploration.epsilon": 0.3},
        "variants": {"a": {"exploration.epsilon": 0.4}, "b": {}},
        "envs": ["Taxi-v4", "FrozenLake-v1"],
    }
    comparison = plan_comparison(data, logdir=tmp_path, overrides=["train.eval_episodes=2"])
    by_key = {(r.env, r.variant): r.config for r in comparison.runs}
    assert by_key[("Taxi-v4", "a")]["exploration"]["epsilon"] == 0.4
    assert by_key[("Taxi-v4", "b")]["exploration"]["epsilon"] == 0.3
    assert by_key[("FrozenLake-v1", "b")]["env"]["id"] == "FrozenLake-v1"
    assert all(c["train"]["total_steps"] == 500 for c in by_key.values())
    assert all(c["train"]["eval_episodes"] == 2 for c in by_key.values())
    assert comparison.envs == ["Taxi-v4", "FrozenLake-v1"]


def test_variants_may_run_on_different_envs_without_an_envs_list(tmp_path):
    comparison = plan(tmp_path, variants={"taxi": {}, "lake": {"env.id": "FrozenLake-v1"}})
    cells = {(r.env, r.variant) for r in comparison.runs}
    assert cells == {("Taxi-v4", "taxi"), ("FrozenLake-v1", "lake")}
    assert comparison.envs == ["Taxi-v4", "FrozenLake-v1"]


def test_shipped_taxi_comparison_is_valid(tmp_path):
    comparison = load_comparison(CONFIGS / "compare_taxi_exploration.yaml", logdir=tmp_path)
    assert comparison.variants == [
        "eps_const",
        "eps_decay",
        "boltzmann_const",
        "boltzmann_anneal",
        "softq",
    ]
    assert comparison.seeds == list(range(10)) and len(comparison.runs) == 50
    budgets = {r.config["train"]["total_steps"] for r in comparison.runs}
    assert budgets == {60000}  # one budget for every variant, the file-based one included
    softq = next(r for r in comparison.runs if r.variant == "softq")
    assert softq.config["agent"]["type"] == "soft_q_learning"
    # Ten periodic checkpoints per run: a killed worker costs at most 6,000 steps of a run.
    assert {r.config["train"]["checkpoint_every"] for r in comparison.runs} == {6000}


@pytest.mark.parametrize(
    "per_run, own, expected",
    [
        (None, 0, 300),  # default: 10 per run, ⌈3000 / 10⌉
        (7, 0, 429),  # ⌈3000 / 7⌉
        (10, 100, 100),  # the run already checkpoints more often: kept
        (10, 1000, 300),  # less often: the comparison's cadence wins
        (0, 0, 0),  # periodic checkpoints off: only the final one
        (0, 500, 500),
        (5000, 0, 1),  # never below one step
    ],
)
def test_runs_checkpoint_periodically(tmp_path, per_run, own, expected):
    base = {**BASE, "train": {**BASE["train"], "checkpoint_every": own}}
    extra = {} if per_run is None else {"checkpoints_per_run": per_run}
    comparison = plan(logdir=tmp_path, base=base, **extra)
    assert {r.config["train"]["checkpoint_every"] for r in comparison.runs} == {expected}


def test_shipped_cartpole_comparison_is_valid(tmp_path):
    needed = ("cartpole_dqn_epsilon.yaml", "cartpole_dqn_boltzmann.yaml")
    missing = [name for name in needed if not (CONFIGS / name).exists()]
    if missing:
        pytest.skip(f"needs the DQN configs {', '.join(missing)}")
    comparison = load_comparison(CONFIGS / "compare_cartpole_exploration.yaml", logdir=tmp_path)
    assert comparison.envs == ["CartPole-v1"] and len(comparison.runs) == 10
    policies = {r.variant: r.config["exploration"]["policy"] for r in comparison.runs}
    assert policies == {"epsilon_greedy": "epsilon_greedy", "boltzmann": "boltzmann"}


def test_progress_shows_failures_with_or_without_a_terminal(capsys):
    failed = RunOutcome("Taxi-v4", "v", 1, "/x", "failed", error="boom")
    done = RunOutcome("Taxi-v4", "v", 0, "/y", "done", final_return=7.5)
    quiet = GridProgress(3, 1, "t", enabled=False)
    quiet.update(done)
    quiet.update(failed)
    quiet.close()
    assert capsys.readouterr().err == "rlsoft: run Taxi-v4/v/seed_1 failed: boom\n"
    shown = GridProgress(3, 1, "t", enabled=True)
    shown.update(done)
    shown.update(failed)
    shown.close()
    err = capsys.readouterr().err
    assert "run Taxi-v4/v/seed_1 failed: boom" in err and "3/3" in err
    assert (shown.done, shown.failures) == (3, 1)


def test_a_retry_says_what_the_next_attempt_does(tmp_path, capsys):
    """Start again (no checkpoint), resume from the newest one (named by its step), or report
    the summary of a run that had finished before its worker died."""
    from types import SimpleNamespace

    from rlsoft.run.checkpoint import checkpoint_path

    run_dir = tmp_path / "seed_0"
    spec = SimpleNamespace(
        label="Taxi-v4/v/seed_0",
        run_dir=run_dir,
        is_done=lambda: (run_dir / "summary.json").is_file(),
    )
    progress = GridProgress(2, 0, "t", enabled=False)
    said = []
    for prepare in (
        lambda: None,
        lambda: checkpoint_path(run_dir, 1500).mkdir(parents=True),
        lambda: checkpoint_path(run_dir, 3000).mkdir(parents=True),
        lambda: (run_dir / "summary.json").write_text("{}"),
    ):
        prepare()
        progress.retry(spec, "worker process died", 2, 3)
        said.append(capsys.readouterr().err.removeprefix("rlsoft: run Taxi-v4/v/seed_0: "))
    assert said == [
        "worker process died; starting it again (it wrote no checkpoint) (attempt 2 of 3)\n",
        "worker process died; resuming it from its checkpoint at step 1,500 (attempt 2 of 3)\n",
        "worker process died; resuming it from its checkpoint at step 3,000 (attempt 2 of 3)\n",
        "worker process died; it had finished, so its summary is reported (attempt 2 of 3)\n",
    ]


def test_base_and_variants_may_be_experiment_files(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    other = {**BASE, "exploration": {"policy": "boltzmann", "temperature": 2.0}}
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    spec = {"base": "base.yaml", "seeds": 1, "variants": {"file": "other.yaml", "inline": {}}}
    (tmp_path / "cmp.yaml").write_text(yaml.safe_dump(spec))
    comparison = load_comparison(tmp_path / "cmp.yaml", logdir=tmp_path / "runs")
    assert comparison.name == "cmp"
    configs = {r.variant: r.config for r in comparison.runs}
    assert configs["file"]["exploration"]["temperature"] == 2.0
    assert configs["inline"]["exploration"]["policy"] == "epsilon_greedy"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"variantz": {}}, "unknown comparison key 'variantz' (did you mean 'variants'?)"),
        ({"seeds": 0}, "seeds must be at least 1"),
        ({"variants": {}}, "name at least one variant"),
        ({"variants": {"a/b": {}}}, "variant name 'a/b'"),
        (
            {"variants": {"bad": {"exploration.polcy": "boltzmann"}}},
            "variant 'bad': config field 'exploration': unknown config key 'exploration.polcy' "
            "(did you mean 'policy'?)",
        ),
        ({"variants": {"bad": {"exploration.epsilon": 2}}}, "variant 'bad'"),
        ({"variants": {"bad": {"agent.type": "q_lerning"}}}, "did you mean 'q_learning'?"),
        ({"variants": {"bad": {"seed": 3}}}, "sets 'seed', which the comparison sets"),
        ({"base": "missing.yaml"}, "base names 'missing.yaml'"),
        (
            {"variants": {"bad": {"exploration.temperature": 2.0}}},
            "variant 'bad' sets exploration.temperature, which exploration.policy "
            "epsilon_greedy ignores",
        ),
        (
            {"overrides": {"exploration.mu": 2.0}},
            "overrides sets exploration.mu, which no variant's policy reads (they use "
            "epsilon_greedy, boltzmann); remove it, or give a variant a policy that uses it "
            "(ez_greedy)",
        ),
        (
            {"base": {**BASE, "exploration": {"temperature": 2.0}}, "variants": {"e": {}}},
            "base sets exploration.temperature, which exploration.policy epsilon_greedy ignores",
        ),
        # A bad value is blamed on the layer that set it, not on the first variant.
        (
            {"overrides": {"train.total_steps": "200"}},
            "t.yaml: overrides: config field 'train.total_steps': expected an integer",
        ),
        (
            {"base": {**BASE, "agent": {**BASE["agent"], "gamma": 3}}},
            "t.yaml: base: config field 'agent.gamma'",
        ),
        ({"envs": ["PongNoFrameskip-v4"]}, "t.yaml: envs: config field 'env.id'"),
    ],
)
def test_bad_comparisons_fail_fast_with_one_sentence(tmp_path, changes, message):
    with pytest.raises(ConfigError) as error:
        plan(tmp_path, **changes)
    text = str(error.value)
    assert "\n" not in text
    assert text.startswith("t.yaml")
    if "exploration.polcy" in message:
        assert "variant 'bad'" in text and "exploration.polcy" in text and "policy" in text
    else:
        assert message in text
    assert not any(tmp_path.iterdir())  # nothing was created


def test_inherited_exploration_settings_need_one_variant_that_reads_them(tmp_path):
    # The base's ε is unused by the Boltzmann variant and the shared temperature by the
    # ε-greedy one: each is read by some variant, so the comparison plans.
    base = {**BASE, "exploration": {"epsilon": 0.3}}
    variants = {"eps": {}, "boltzmann": {"exploration.policy": "boltzmann"}}
    shared = {"exploration.temperature": 2.0}
    comparison = plan(tmp_path, base=base, variants=variants, overrides=shared)
    by_variant = {run.variant: run.config["exploration"] for run in comparison.runs}
    assert by_variant["eps"]["epsilon"] == 0.3
    assert by_variant["boltzmann"]["temperature"] == 2.0
    with pytest.raises(ConfigError, match=r"^--set sets exploration\.mu, which no variant"):
        plan_comparison(
            {"base": BASE, "variants": VARIANTS}, logdir=tmp_path, overrides=["exploration.mu=3"]
        )
    with pytest.raises(ConfigError, match=r"^--set: config field 'agent\.learning_rate'"):
        plan_comparison(
            {"base": BASE, "variants": VARIANTS},
            logdir=tmp_path,
            overrides=["agent.learning_rate=abc"],
        )
    assert not any(tmp_path.iterdir())


DQN_BASE = {
    "env": {"id": "CartPole-v1"},
    "agent": {"type": "dqn", "hidden_sizes": [8], "buffer_size": 500, "learning_starts": 50},
    "train": {"total_steps": 200, "eval_every": 100, "eval_episodes": 1, "log_every": 100},
}
DQN_VARIANTS = {"standard": {}, "munchausen": {"agent.target": "munchausen"}}


def test_agent_settings_need_a_variant_whose_agent_reads_them(tmp_path):
    """As with exploration: a variant's own agent settings must be read by its agent, the
    base's by the base's agent, and a shared one by at least one variant's."""

    def dqn_plan(**changes):
        data = {"name": "t", "base": DQN_BASE, "seeds": 1, "variants": DQN_VARIANTS, **changes}
        return plan_comparison(data, source="t.yaml", logdir=tmp_path / "runs")

    shared = {"agent.munchausen_alpha": 0.5, "agent.soft_temperature": 0.1}
    comparison = dqn_plan(overrides=shared)  # read by the Munchausen variant
    by_variant = {run.variant: run.config["agent"] for run in comparison.runs}
    assert by_variant["munchausen"]["munchausen_alpha"] == 0.5
    with pytest.raises(ConfigError) as error:
        dqn_plan(variants={**DQN_VARIANTS, "c": {"agent.atoms": 11}})
    assert str(error.value) == (
        "t.yaml: variant 'c' sets agent.atoms, which only head: c51 reads (this config has "
        "head q); remove it, or set agent.head: c51"
    )
    # Unread by every variant for one reason: that reason; for several: that none reads it.
    with pytest.raises(ConfigError) as error:
        dqn_plan(overrides={"agent.noisy_sigma0": 0.3})
    assert str(error.value) == (
        "t.yaml: overrides sets agent.noisy_sigma0, which only noisy: true reads (this config "
        "has noisy false); remove it, or set agent.noisy: true"
    )
    mellow = {"standard": {}, "mellowmax": {"agent.target": "mellowmax"}}
    with pytest.raises(ConfigError) as error:
        dqn_plan(variants=mellow, overrides={"agent.soft_temperature": 0.1})
    assert str(error.value) == (
        "t.yaml: overrides sets agent.soft_temperature, which no variant's agent reads; remove "
        "it, or give a variant the setting that reads it (agent.target: soft or munchausen)"
    )
    with pytest.raises(ConfigError, match=r"^--set sets agent\.mellowmax_omega, which no variant"):
        plan_comparison(
            {"base": DQN_BASE, "variants": DQN_VARIANTS},
            logdir=tmp_path / "runs",
            overrides=["agent.mellowmax_omega=2"],
        )
    base = {**DQN_BASE, "agent": {**DQN_BASE["agent"], "munchausen_alpha": 0.5}}
    with pytest.raises(ConfigError, match=r"^t\.yaml: base sets agent\.munchausen_alpha, which"):
        dqn_plan(base=base)
    assert not (tmp_path / "runs").exists()
    # A sweep of the target: the variant's α is read in one cell, whichever comes first.
    alpha = {"alpha": {"agent.munchausen_alpha": 0.5}}
    for targets in (["munchausen", "standard"], ["standard", "munchausen"]):
        sweep = {
            "parameter": "agent.gamma",
            "values": [0.9, 0.99],
            "along": {"agent.target": targets},
        }
        assert dqn_plan(variants=alpha, sweep=sweep).runs
    with pytest.raises(ConfigError, match=r"variant 'c' sets agent\.atoms, which only head: c51"):
        dqn_plan(variants={"c": {"agent.atoms": 11}}, sweep=sweep)


def test_an_experiment_file_as_a_variant_is_checked_against_its_own_policy(tmp_path):
    path = tmp_path / "eps.yaml"
    path.write_text(yaml.safe_dump({**BASE, "exploration": {"temperature": 2.0}}))
    data = {"variants": {"eps": "eps.yaml"}}
    with pytest.raises(ConfigError, match=r"^t\.yaml: variant 'eps' \(eps\.yaml\) sets "):
        plan_comparison(data, source="t.yaml", base_dir=tmp_path, logdir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_command_line_errors_exit_2_with_one_line(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"base": BASE, "variants": {"x": {"exploration.epsilon": 7}}}))
    assert main(["compare", str(cfg), "--logdir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "variant 'x'" in err and "epsilon" in err
    assert main(["compare", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    cfg.write_text(yaml.safe_dump({"base": BASE, "variants": VARIANTS}))
    assert main(["compare", str(cfg), "--address", "ray://x:1"]) == 2
    assert "--backend ray" in capsys.readouterr().err


def test_a_run_dir_another_process_trains_is_refused_before_anything_is_written(tmp_path):
    """A second rlsoft compare on the same logdir (here with another config, which made the
    first compare's unfinished run dir look like a stale attempt to delete) is refused."""
    from rlsoft.run.experiment import hold_run_dir, remove_run_dir

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"name": "t", "base": BASE, "seeds": 1, "variants": VARIANTS}))
    logdir = tmp_path / "runs"
    training = logdir / "Taxi-v4" / "eps" / "seed_0"
    training.mkdir(parents=True)
    (training / "config.yaml").write_text("being written by the other process\n")
    with hold_run_dir(training):  # another open file description: as another process
        result = rlsoft("compare", cfg, "--workers", 1, "--logdir", logdir)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines() == [
            f"rlsoft: error: run dir '{training}' of this comparison is in use by another "
            f"process (pid {os.getpid()}), which is training it (another rlsoft compare on "
            "this logdir, or a worker of one that was stopped); wait for it to finish, or "
            "stop it, and run the comparison again"
        ]
        assert sorted(p.name for p in logdir.iterdir()) == ["Taxi-v4"]  # no compare.yaml
        assert (training / "config.yaml").is_file()
        with pytest.raises(
            RlsoftError, match=r"in use by another .* before starting the run again"
        ):
            remove_run_dir(training)  # what a worker does before training the run anew
        assert (training / "config.yaml").is_file()
    result = rlsoft("compare", cfg, "--workers", 1, "--logdir", logdir)
    assert result.returncode == 0, result.stderr
    assert len(finished_runs(logdir)) == 2


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or __import__("torch").cuda.is_available(),
    reason="needs a machine without a CUDA GPU",
)
def test_cuda_without_a_gpu_is_refused_before_the_logdir_is_made(tmp_path):
    logdir = tmp_path / "runs"
    config = CONFIGS / "compare_cartpole_exploration.yaml"
    result = rlsoft("compare", config, "--logdir", logdir, "--set", "device=cuda")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "rlsoft: error: variant 'epsilon_greedy': device 'cuda' was asked for but no CUDA GPU "
        "is visible; use device: auto or cpu"
    ]
    assert not logdir.exists()


def test_ray_backend_without_ray_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(RlsoftError, match=r"pip install 'rlsoft\[ray\]'"):
        run_grid(plan(logdir=tmp_path).runs, backend="ray")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"base": BASE, "variants": VARIANTS}))
    assert main(["compare", str(cfg), "--backend", "ray", "--logdir", str(tmp_path / "r")]) == 2
    assert RAY_MISSING in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_run_one_turns_a_failure_into_an_outcome(tmp_path):
    comparison = plan(
        logdir=tmp_path, variants={"broken": {"env.kwargs": {"no_such_option": 1}}}, seeds=1
    )
    outcome = run_one(comparison.runs[0].config)
    assert outcome.status == "failed"
    assert "no_such_option" in outcome.error and "\n" not in outcome.error
    assert not (comparison.runs[0].run_dir / "summary.json").exists()


def test_run_one_says_when_it_only_continued_an_earlier_attempt(tmp_path):
    """The local dispatch times grid cells by their fresh runs only (rlsoft/compare/dispatch.py):
    a run continued or reported from an earlier attempt's run dir says so."""
    config = plan(logdir=tmp_path, seeds=1).runs[0].config
    fresh = run_one(config, resume=True)
    assert fresh.status == "done" and not fresh.resumed
    again = run_one(config, resume=True)  # finished already: reported from its summary
    assert again.status == "done" and again.resumed
    assert not run_one(config).resumed  # without resume the run is redone from scratch


def test_a_failing_run_leaves_the_runs_beside_it_alone(tmp_path, monkeypatch):
    """A run that fails before its first step removes its run dir and the parents it made,
    but not a run dir another worker made in those parents meanwhile (CI once lost a
    finished run's config.yaml this way)."""
    from rlsoft.run import experiment
    from rlsoft.run.config import validate_config

    comparison = plan(
        logdir=tmp_path, variants={"broken": {"env.kwargs": {"no_such_option": 1}}}, seeds=1
    )
    broken, neighbour = comparison.runs[0].config, plan(logdir=tmp_path, seeds=1).runs[0]
    build_driver = experiment.build_driver

    def neighbour_starts_then_fail(config, **kwargs):
        # the neighbour makes its run dir in Taxi-v4/, which the broken run made
        experiment.create_run_dir(validate_config(neighbour.config))
        return build_driver(config, **kwargs)

    monkeypatch.setattr(experiment, "build_driver", neighbour_starts_then_fail)
    outcome = run_one(broken)
    assert outcome.status == "failed" and "no_such_option" in outcome.error
    assert (neighbour.run_dir / "config.yaml").is_file()
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "Taxi-v4",
        "Taxi-v4/eps",
        "Taxi-v4/eps/seed_0",
        "Taxi-v4/eps/seed_0/config.yaml",
    ]


# --------------------------------------------------------------------------------------------
# A real grid on the local backend: 3 variants (one broken) × 2 seeds, 2 workers
# --------------------------------------------------------------------------------------------

GRID = {
    "name": "grid",
    "base": BASE,
    "seeds": 2,
    # Accepted by the checks in this process before the grid starts, fails in the workers.
    "variants": {**VARIANTS, "broken": {"env.wrappers": [{"path": "grid_faults:FailsInWorkers"}]}},
}

GRID_FAULTS = """
import multiprocessing

import gymnasium as gym


class FailsInWorkers(gym.Wrapper):
    def __init__(self, env):
        if multiprocessing.parent_process() is not None:
            raise RuntimeError("the broken variant's wrapper fails on purpose")
        super().__init__(env)
"""


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    (root / "grid_faults.py").write_text(GRID_FAULTS)
    sys.path.insert(0, str(root))  # spawned workers inherit sys.path
    cfg = root / "grid.yaml"
    cfg.write_text(yaml.safe_dump(GRID))
    logdir = root / "runs"
    started = time.perf_counter()
    result = rlsoft("compare", cfg, "--workers", 2, "--logdir", logdir)
    seconds = time.perf_counter() - started
    snapshot = {
        name: (logdir / name).read_text()
        for name in ("summary.csv", "summary.md")
        if (logdir / name).exists()
    }
    return {"cfg": cfg, "logdir": logdir, "result": result, "seconds": seconds, "files": snapshot}


def finished_runs(logdir):
    return sorted(
        p.parent.relative_to(logdir).as_posix() for p in logdir.glob("*/*/*/summary.json")
    )


def test_compare_runs_the_grid_and_writes_tables_summaries_plots(grid):
    result, logdir = grid["result"], grid["logdir"]
    assert result.returncode == 1, result.stderr  # the broken variant failed
    assert finished_runs(logdir) == [
        "Taxi-v4/boltzmann/seed_0",
        "Taxi-v4/boltzmann/seed_1",
        "Taxi-v4/eps/seed_0",
        "Taxi-v4/eps/seed_1",
    ]
    for name in (
        "summary.csv",
        "summary.md",
        "learning_curves_Taxi-v4.png",
        "final_scores_Taxi-v4.png",
        "compare.yaml",
    ):
        assert (logdir / name).is_file(), name
    assert "Taxi-v4: final greedy evaluation return" in result.stdout
    assert "eps" in result.stdout and "boltzmann" in result.stdout
    assert "P(X > Y)" in result.stdout
    # Two seeds per variant: every number is marked, and one line says why.
    assert "2 †" in result.stdout and "fewer than 3 finished runs" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "rlsoft: warning: fewer than 3 finished runs for boltzmann (2 runs), eps (2 runs): "
        "their numbers and every P(X > Y) involving them are marked † and are not reliable; "
        "run more seeds"
    ]
    summary = json.loads((logdir / "Taxi-v4/eps/seed_0/summary.json").read_text())
    assert summary["steps"] == 3000 and summary["name"] == "eps"


def test_a_failing_run_is_reported_and_does_not_stop_the_others(grid):
    err = grid["result"].stderr
    assert "run Taxi-v4/broken/seed_0 failed: " in err and "fails on purpose" in err
    assert "run Taxi-v4/broken/seed_1 failed" in err
    assert "2 of 6 runs failed (errors above); the others are reported; run the same" in err
    assert "Traceback" not in err
    assert not (grid["logdir"] / "Taxi-v4" / "broken" / "seed_0").exists()


def test_report_reproduces_the_summaries_from_event_files(grid):
    result = rlsoft("report", grid["logdir"])
    assert result.returncode == 0, result.stderr
    assert "rlsoft: warning: fewer than 3 finished runs for " in result.stderr
    for name, text in grid["files"].items():
        assert (grid["logdir"] / name).read_text() == text, name
    assert "Taxi-v4: final greedy evaluation return" in result.stdout


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(url, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def test_tensorboard_shows_hparams_and_custom_scalars(grid):
    port = _free_port()
    tensorboard = Path(sys.executable).with_name("tensorboard")
    server = subprocess.Popen(
        [tensorboard, "--logdir", grid["logdir"], "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                runs = _http(f"{base}/data/runs")
                if len(runs) >= 5:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("TensorBoard did not serve the runs within 60 s")
            time.sleep(0.5)
        assert "_comparison" in runs and "." not in runs  # the layout's run has a name
        layout = _http(f"{base}/data/plugin/custom_scalars/layout")
        (category,) = layout["category"]
        assert category["title"] == "compare: runs"
        charts = {c["title"]: c for c in category["chart"]}
        # Custom Scalars matches tags, not runs: the charts show tags only this comparison's
        # runs have, copies of their curves under the comparison folder's name.
        assert charts["greedy evaluation return (every variant and seed)"]["multiline"]["tag"] == [
            "^runs/eval/mean_return$"
        ]
        assert charts["exploration parameter ε or τ"]["multiline"]["tag"] == [
            "^runs/exploration/epsilon$",
            "^runs/exploration/temperature$",
        ]
        run = "Taxi-v4/boltzmann/seed_1"
        query = urllib.parse.urlencode({"run": run, "tag": "^runs/eval/mean_return$"})
        served = _http(f"{base}/data/plugin/custom_scalars/scalars?{query}")
        assert served["regex_valid"]
        (points,) = served["tag_to_events"].values()
        on_disk = EventAccumulator(str(grid["logdir"] / run))
        on_disk.Reload()
        expected = [(e.step, e.value) for e in on_disk.Scalars("eval/mean_return")]
        assert [(step, value) for _, step, value in points] == expected  # the same float32s
        assert [step for step, _ in expected] == [1000, 2000, 3000]

        experiment = _http(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""})
        infos = {h["name"]: h for h in experiment["hparamInfos"]}
        assert sorted(infos["name"]["domainDiscrete"]) == ["boltzmann", "broken", "eps"]
        assert {"exploration.policy", "exploration.temperature", "seed"} <= set(infos)
        # the dashboard shows the flagged columns first, five of them: name, the fields that
        # differ (the broken variant's env.wrappers too), env.id and seed
        shown = [name for name, info in infos.items() if info.get("differs")]
        assert sorted(shown) == sorted(
            [
                "name",
                "exploration.policy",
                "exploration.epsilon",
                "exploration.temperature",
                "env.wrappers",
            ]
        )
        # the broken variant keeps the base's ε-greedy policy with its default ε = 0.1
        assert infos["exploration.epsilon"]["domainDiscrete"] == ["0.1", "0.2", "n/a"]
        assert infos["exploration.temperature"]["domainDiscrete"] == ["1", "n/a"]
        metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
        assert "eval/mean_return" in metrics
        groups = _http(
            f"{base}/data/plugin/hparams/session_groups",
            {
                "experimentName": "",
                "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"],
                "colParams": [],
                "startIndex": 0,
                "sliceSize": 100,
            },
        )
        sessions = {g["name"]: g for g in groups["sessionGroups"]}
        assert set(sessions) == {
            "s0·eps (runs)",
            "s1·eps (runs)",
            "s0·boltzmann (runs)",
            "s1·boltzmann (runs)",
        }
        session = sessions["s1·boltzmann (runs)"]
        assert session["hparams"]["name"] == "boltzmann"
        assert session["hparams"]["exploration.epsilon"] == "n/a"  # Boltzmann reads no ε
        assert session["hparams"]["exploration.temperature"] == "1"
        assert session["hparams"]["env.wrappers"] == "[]"  # the base has none
        assert set(session["hparams"]) == set(infos)  # every trial has every column
        values = {m["name"]["tag"]: m["value"] for m in session["metricValues"]}
        assert values["eval/mean_return"] == pytest.approx(expected[-1][1])
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_rerun_skips_finished_runs_and_resumes_unfinished_ones(grid):
    logdir = grid["logdir"]
    kept = logdir / "Taxi-v4/eps/seed_0/summary.json"
    before = kept.stat().st_mtime_ns
    unfinished = logdir / "Taxi-v4/boltzmann/seed_1"
    finished = json.loads((unfinished / "summary.json").read_text())
    # As if the run had been interrupted at step 2700: no summary, no final checkpoint.
    (unfinished / "summary.json").unlink()
    checkpoints = sorted((unfinished / "checkpoints").iterdir())
    assert [p.name for p in checkpoints][-2:] == ["step_0000002700", "step_0000003000"]
    shutil.rmtree(checkpoints[-1])
    result = rlsoft("compare", grid["cfg"], "--workers", 2, "--logdir", logdir)
    assert result.returncode == 1  # the broken variant still fails
    assert "3 already finished" in result.stderr
    assert kept.stat().st_mtime_ns == before
    resumed = json.loads((unfinished / "summary.json").read_text())
    assert resumed["final_eval"] == finished["final_eval"]
    assert resumed["eval_history"] == finished["eval_history"]
    history = json.loads((unfinished / "resume_history.json").read_text())
    assert [entry["step"] for entry in history] == [2700]


def test_rerun_restarts_an_unfinished_run_without_a_checkpoint(grid):
    logdir = grid["logdir"]
    unfinished = logdir / "Taxi-v4/eps/seed_1"
    finished = json.loads((unfinished / "summary.json").read_text())
    (unfinished / "summary.json").unlink()
    shutil.rmtree(unfinished / "checkpoints")
    result = rlsoft("compare", grid["cfg"], "--workers", 2, "--logdir", logdir)
    assert result.returncode == 1
    assert (
        json.loads((unfinished / "summary.json").read_text())["final_eval"]
        == (finished["final_eval"])
    )
    assert not (unfinished / "resume_history.json").exists()
    events = sorted(p.name for p in unfinished.glob("events.out.tfevents.*"))
    assert len(events) == 2, events  # redone from scratch: its own, and the charts' copies


def test_a_changed_checkpoint_cadence_still_reuses_finished_runs(grid):
    """When checkpoints are written changes nothing a run learns."""
    result = rlsoft(
        "compare", grid["cfg"], "--logdir", grid["logdir"], "--set", "train.checkpoint_every=7"
    )
    assert result.returncode == 1, result.stderr  # only the broken variant, as before
    assert "4 already finished" in result.stderr


def test_a_changed_config_does_not_silently_reuse_finished_runs(grid):
    result = rlsoft(
        "compare", grid["cfg"], "--logdir", grid["logdir"], "--set", "train.eval_episodes=4"
    )
    assert result.returncode == 2
    assert "was made with a different config (train.eval_episodes is 3 there and 4 now)" in (
        result.stderr
    )


@pytest.mark.parametrize("damage", ['{"seconds', "[1, 2]", '{"final_eval": [1]}'])
def test_a_damaged_summary_of_a_finished_run_is_refused_before_anything_changes(grid, damage):
    """The comparison would report the run from its summary.json: one that is not a JSON
    mapping is named with the way out, before the logdir is touched."""
    logdir = grid["logdir"]
    summary = logdir / "Taxi-v4/eps/seed_0/summary.json"
    kept = summary.read_text()
    summary.write_text(damage)
    try:
        before = {p: p.stat().st_mtime_ns for p in logdir.rglob("*") if p.is_file()}
        result = rlsoft("compare", grid["cfg"], "--logdir", logdir)
        after = {p: p.stat().st_mtime_ns for p in logdir.rglob("*") if p.is_file()}
    finally:
        summary.write_text(kept)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (
        "seed_0' has a summary.json that cannot be read as the summary rlsoft writes (damaged "
        "or edited); delete that file" in result.stderr
    )
    assert after == before


# --------------------------------------------------------------------------------------------
# Too few runs: flagged wherever their numbers appear
# --------------------------------------------------------------------------------------------


def test_variants_with_fewer_than_three_runs_are_marked_everywhere(tmp_path):
    """A variant with one finished run (the rest killed) must not show a bare "1.00"."""
    import csv

    import numpy as np
    from rich.console import Console

    from rlsoft.compare.analysis import RunRecord, analyse
    from rlsoft.compare.report import print_tables, summary_csv, summary_markdown

    def run(variant, seed, final):
        steps, returns = np.array([0, 100]), np.array([-10.0, final])
        return RunRecord(tmp_path / variant / f"seed_{seed}", "Taxi-v4", variant, seed, "",
                         steps, returns)  # fmt: skip

    runs = [run("one", 0, 9.0)]
    runs += [run("three", s, f) for s, f in enumerate([1.0, 2.0, 3.0])]
    runs += [run("four", s, f) for s, f in enumerate([4.0, 5.0, 6.0, 7.0])]
    analysis = analyse(runs, variant_order=["one", "three", "four"], n_resamples=100)

    text = io.StringIO()
    print_tables(analysis, Console(file=text, width=200))
    lines = text.getvalue().splitlines()
    one = [line for line in lines if "│ one " in line and "│ three" not in line]
    assert [line.count("†") for line in one[:2]] == [4, 4]  # runs, mean, median, IQM
    assert "1 †" in one[0] and "9.00 †" in one[0]
    assert all("†" not in line for line in lines if "│ four " in line and "one" not in line)
    assert any("fewer than 3 finished runs" in line for line in lines)
    pair_lines = [
        line for line in lines if "│ one " in line and ("three" in line or "four" in line)
    ]
    assert pair_lines and all("†" in line for line in pair_lines)
    (three_four,) = [line for line in lines if "│ three" in line and "│ four" in line]
    assert "†" not in three_four

    rows = list(csv.DictReader(io.StringIO(summary_csv(analysis))))
    for row in rows:
        involves_one = "one" in (row["variant"], row["versus"])
        assert row["flag"] == ("n<3" if involves_one else ""), row
        float(row["value"])  # values stay plain numbers
    assert any(r["variant"] == "one" and r["value"] == "9.0" for r in rows)

    markdown = summary_markdown(analysis)
    assert "| one | 1 † | 9.00 † | 9.00 † | 9.00 † |" in markdown
    assert "| four | 4 |" in markdown
    assert "† fewer than 3 finished runs" in markdown
    assert "| one | three | 1.00 [1.00, 1.00] † |" in markdown

    assert analysis.few_runs_warning() == (
        "warning: fewer than 3 finished runs for one (1 run): their numbers and every "
        "P(X > Y) involving them are marked † and are not reliable; run more seeds"
    )
