"""A worker killed during a comparison (as the OOM killer would: SIGKILL) costs one run's
time at most: only its run is retried — from scratch before its first checkpoint, from the
checkpoint after one — every run finishes, and the results equal an undisturbed grid's."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import agents  # noqa: F401 - registers q_learning for plan validation
from rlsoft.compare.grid import run_comparison
from rlsoft.compare.plan import plan_comparison
from rlsoft.compare.runners import run_grid

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

# The runs' agents are the ordinary ones, wrapped to write the pid of the process that builds
# them into the run dir: the test then knows which worker to kill, on either backend.
PID_AGENTS = """
import os
from pathlib import Path

from rlsoft.rl.agent import AgentSpec, get_agent_spec, register_agent


def wrap(inner_name):
    inner = get_agent_spec(inner_name)

    def build(context):
        experiment = context.extras["experiment"]
        run_dir = Path(experiment.logdir) / experiment.run_name
        tmp = run_dir / "worker.pid.tmp"
        tmp.write_text(str(os.getpid()))
        os.replace(tmp, run_dir / "worker.pid")
        return inner.build(context)

    register_agent(
        AgentSpec(name="pid_" + inner_name, config_model=inner.config_model, build=build)
    )


wrap("q_learning")
wrap("dqn")
"""
MODULES = ("agents", "pid_agents")

# Four tabular runs of a few seconds each, with no periodic checkpoint: a run killed midway
# starts over, so its result must be bit-for-bit the undisturbed one (this does not depend on
# how exactly a tabular run resumes).
TAXI = {
    "name": "faults",
    "base": {
        "env": {"id": "Taxi-v4"},
        "agent": {"type": "pid_q_learning", "learning_rate": 0.5},
        "train": {"total_steps": 40000, "eval_every": 10000, "eval_episodes": 3},
    },
    "seeds": 2,
    "checkpoints_per_run": 0,
    "variants": {"eps": {}, "boltzmann": {"exploration.policy": "boltzmann"}},
}
# DQN on two vectorised CartPoles (a path whose resume is exact), checkpointing every 1,500
# steps: a run killed after its first checkpoint continues from it.
DQN = {
    "name": "faults_dqn",
    "base": {
        "env": {"id": "CartPole-v1", "num_envs": 2, "vectorization": "sync"},
        "agent": {
            "type": "pid_dqn",
            "hidden_sizes": [32],
            "batch_size": 32,
            "buffer_size": 4000,
            "learning_starts": 500,
            "target_update_interval": 200,
        },
        "train": {"total_steps": 6000, "eval_every": 1500, "eval_episodes": 2, "log_every": 500},
    },
    "seeds": 2,
    "checkpoints_per_run": 4,
    "variants": {"dqn": {}},
}
KILLED = "worker process died (SIGKILL, possibly out of memory)"


@pytest.fixture(scope="module")
def pid_agents(tmp_path_factory):
    """``pid_agents`` importable here, in spawned workers (sys.path) and in Ray workers
    (PYTHONPATH, read when Ray starts its workers)."""
    where = tmp_path_factory.mktemp("modules")
    (where / "pid_agents.py").write_text(PID_AGENTS)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(where))
        path = os.environ.get("PYTHONPATH")
        patch.setenv("PYTHONPATH", str(where) + (os.pathsep + path if path else ""))
        import pid_agents  # noqa: F401 - registers pid_q_learning and pid_dqn here

        yield


def grid(data: dict, logdir: Path, backend: str = "local"):
    comparison = plan_comparison(data, source=f"{data['name']}.yaml", logdir=logdir)
    return run_comparison(comparison, backend=backend, workers=2, modules=MODULES)


class Killer(threading.Thread):
    """SIGKILLs the worker of ``run_dir`` as soon as ``ready(run_dir)`` holds, while the run
    has not finished (runs take seconds; this polls every 10 ms)."""

    def __init__(self, run_dir: Path, ready) -> None:
        super().__init__(daemon=True)
        self.run_dir, self.ready = run_dir, ready
        self.killed: int | None = None
        self.late = False
        self.stop = threading.Event()

    def run(self) -> None:
        pid_file = self.run_dir / "worker.pid"
        while not self.stop.is_set():
            if (self.run_dir / "summary.json").exists():
                self.late = True
                return
            if pid_file.exists() and self.ready(self.run_dir):
                self.killed = int(pid_file.read_text())
                os.kill(self.killed, signal.SIGKILL)
                return
            time.sleep(0.01)

    def __enter__(self) -> Killer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join()
        assert not self.late, f"{self.run_dir} finished before the kill"
        assert self.killed is not None, f"{self.run_dir} never became ready to be killed"


def started(run_dir: Path) -> bool:
    return any(run_dir.glob("events.out.tfevents.*"))


def checkpointed(run_dir: Path) -> bool:
    return any((run_dir / "checkpoints").glob("step_*"))


def results(logdir: Path) -> dict[str, dict]:
    """What each run learned (its summary without the wall-clock seconds), by run dir."""
    out = {}
    for path in sorted(logdir.glob("*/*/seed_*/summary.json")):
        summary = json.loads(path.read_text())
        summary.pop("seconds")
        summary.pop("eval_seconds")
        out[path.parent.relative_to(logdir).as_posix()] = summary
    return out


def assert_same_grid(result, undisturbed: Path, runs: int) -> None:
    assert [o.status for o in result.outcomes] == ["done"] * runs
    logdir = result.comparison.logdir
    got, expected = results(logdir), results(undisturbed)
    assert len(expected) == runs
    assert got == expected
    # The statistics recomputed from the event files: every number identical.
    from rlsoft.compare.report import report, summary_csv

    ours, _ = report(logdir, run_dirs=result.finished_dirs())
    theirs, _ = report(undisturbed)
    assert summary_csv(ours) == summary_csv(theirs)


@pytest.fixture(scope="module")
def undisturbed_taxi(tmp_path_factory, pid_agents) -> Path:
    logdir = tmp_path_factory.mktemp("undisturbed") / "runs"
    assert not grid(TAXI, logdir).failed
    return logdir


# --------------------------------------------------------------------------------------------


def test_local_worker_killed_before_the_first_checkpoint(tmp_path, undisturbed_taxi, capfd):
    logdir = tmp_path / "runs"
    with Killer(logdir / "Taxi-v4" / "eps" / "seed_0", started):
        result = grid(TAXI, logdir)
    err = capfd.readouterr().err
    # Only the killed run was retried; before the fix, BrokenProcessPool failed every run
    # still pending.
    assert err.count("starting it again") == 1, err
    # It died before its first checkpoint, so the message promises no resume.
    line = f"run Taxi-v4/eps/seed_0: {KILLED}; starting it again (it wrote no checkpoint) "
    assert line + "(attempt 2 of 3)" in err, err
    assert "resuming" not in err, err
    assert_same_grid(result, undisturbed_taxi, runs=4)


def test_local_worker_killed_after_a_checkpoint_resumes_from_it(tmp_path, pid_agents, capfd):
    assert not grid(DQN, tmp_path / "calm").failed
    logdir = tmp_path / "runs"
    victim = logdir / "CartPole-v1" / "dqn" / "seed_0"
    with Killer(victim, checkpointed):
        result = grid(DQN, logdir)
    err = capfd.readouterr().err
    line = re.search(r"run CartPole-v1/dqn/seed_0: (.*)", err)
    assert line, err
    said = re.fullmatch(
        re.escape(KILLED)
        + r"; resuming it from its checkpoint at step ([\d,]+) \(attempt 2 of 3\)",
        line.group(1),
    )
    assert said, line.group(1)
    # The step it names is where the next attempt resumed.
    resumed = json.loads((victim / "resume_history.json").read_text())
    assert [entry["step"] for entry in resumed] == [int(said.group(1).replace(",", ""))]
    # Resumed, not restarted: the killed attempt's event file is still there, next to the
    # resumed attempt's (a restart would have removed the run dir); the comparison's chart
    # copies (``.rlsoft-compare``) are a file of their own.
    own = [p for p in victim.glob("events.out.tfevents.*") if not p.name.endswith("-compare")]
    assert len(own) == 2
    assert_same_grid(result, tmp_path / "calm", runs=2)


def test_ray_worker_killed_mid_run(tmp_path, undisturbed_taxi):
    pytest.importorskip("ray")
    logdir = tmp_path / "runs"
    with Killer(logdir / "Taxi-v4" / "boltzmann" / "seed_1", started) as killer:
        result = grid(TAXI, logdir, backend="ray")
    with pytest.raises(ProcessLookupError):
        os.kill(killer.killed, 0)  # that Ray worker is gone; Ray retried its task elsewhere
    assert_same_grid(result, undisturbed_taxi, runs=4)


def test_a_run_that_keeps_killing_its_worker_fails_alone_with_the_cause(tmp_path, monkeypatch):
    """A run whose worker dies on every attempt is retried a bounded number of times, then
    reported with the cause; the other run of the grid is unaffected."""
    (tmp_path / "oom_agent.py").write_text(
        textwrap.dedent(
            """
            import os
            import signal

            from agents.tabular.agent import QLearningConfig
            from rlsoft.rl.agent import AgentSpec, register_agent


            def build(context):
                os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does


            register_agent(AgentSpec(name="oom", config_model=QLearningConfig, build=build))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers inherit sys.path
    import oom_agent  # noqa: F401 - registers "oom" here, for validation

    grid = {**TAXI, "seeds": 1, "variants": {"eps": {}, "oom": {"agent.type": "oom"}}}
    grid["base"] = {
        **TAXI["base"],
        "agent": {"type": "q_learning"},
        "train": {**TAXI["base"]["train"], "total_steps": 2000},
    }
    comparison = plan_comparison(grid, source="t.yaml", logdir=tmp_path / "runs")
    retried = []
    outcomes = run_grid(
        comparison.runs,
        workers=2,
        modules=("agents", "oom_agent"),
        retries=2,
        on_retry=lambda spec, cause, attempt: retried.append((spec.variant, cause, attempt)),
    )
    by_variant = {o.variant: o for o in outcomes}
    assert by_variant["eps"].status == "done"
    assert by_variant["oom"].status == "failed"
    cause = "worker process died (SIGKILL, possibly out of memory)"
    assert by_variant["oom"].error == f"{cause}; gave up after 3 attempts"
    assert retried == [("oom", cause, 2), ("oom", cause, 3)]
