"""Every bad input a user may give the command line, in one table.

Each case runs the real CLI (``rlsoft.cli.main``; a few also in a subprocess) and must end
with exactly one line ``rlsoft: error: <sentence>`` on stderr, exit code 2, no traceback, a
bounded length, and the working directory exactly as it was: no new run dir, no half file, no
changed checkpoint. Add a row for every new mistake found; the table can only grow.

Placeholders in ``argv``: ``{tmp}`` the case's directory (also the working directory),
``{logdir}`` ``{tmp}/runs``, ``{run}`` a copy of a finished run (``run="tabular"`` or
``"dqn"``). ``files`` are written into ``{tmp}`` first (a name ending in ``/`` is a
directory). Available memory is fixed at 16 GiB so the memory checks do not depend on the
machine.
"""

from __future__ import annotations

import errno
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import rlsoft
import rlsoft.rl.memory
from rlsoft.cli import main
from rlsoft.run.checkpoint import latest_checkpoint

MAX_LINE = 500
FAKE_AVAILABLE = 16 * rlsoft.rl.memory.GIB

TABULAR = """\
seed: 0
env: {id: Taxi-v4}
agent: {type: q_learning, learning_rate: 0.5}
exploration: {policy: epsilon_greedy, epsilon: 0.1}
train: {total_steps: 2000, eval_every: 1000, eval_episodes: 2, log_every: 500, progress: "off"}
"""

DQN = """\
seed: 0
env: {id: CartPole-v1}
agent: {type: dqn, hidden_sizes: [16], buffer_size: 1000, batch_size: 16, learning_starts: 50}
exploration: {policy: epsilon_greedy, epsilon: 0.1}
train: {total_steps: 200, eval_every: 0, eval_episodes: 1, log_every: 100, progress: "off"}
"""

ATARI = """\
seed: 0
env: {id: ALE/Pong-v5}
agent: {type: dqn, frame_stack: 4, buffer_size: 1000, batch_size: 16, learning_starts: 50}
train: {total_steps: 200, eval_every: 0, eval_episodes: 1, log_every: 100, progress: "off"}
"""

COMPARISON = """\
name: cmp
base: c.yaml
variants:
  eps: {exploration.epsilon: 0.2}
seeds: 1
"""

# 600 bytes that expand to 9^9 ≈ 387 million strings (the "billion laughs").
ALIAS_BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [
        f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]"
        for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
    ]
)


def _files(**overrides: str | bytes | None) -> dict[str, str | bytes | None]:
    return {"c.yaml": TABULAR, "dqn.yaml": DQN, **overrides}


# -- damage done to a copied run --------------------------------------------------------------


def _before_manifests(damage: Callable[[Path], None]) -> Callable[[Path], None]:
    """``damage`` done to a checkpoint written before rlsoft kept a manifest (none to catch
    it first): what each loader makes of the damage itself."""

    def damaged(run: Path) -> None:
        for checkpoint in latest_checkpoint(run).parent.iterdir():
            (checkpoint / "manifest.json").unlink(missing_ok=True)
            state = json.loads((checkpoint / "trainer.json").read_text(encoding="utf-8"))
            state.pop("manifest")  # nor did trainer.json say it had one
            (checkpoint / "trainer.json").write_text(json.dumps(state), encoding="utf-8")
        damage(run)

    damaged.__name__ = damage.__name__
    return damaged


def _flip_agent_byte(run: Path) -> None:
    """One byte changed in the middle of the agent file: same size, still loadable."""
    path = next((latest_checkpoint(run)).glob("agent.*"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _edit_run_gamma(run: Path) -> None:
    path = run / "config.yaml"
    text = path.read_text(encoding="utf-8")
    assert "gamma: 0.99" in text
    path.write_text(text.replace("gamma: 0.99", "gamma: 0.5"), encoding="utf-8")


def _delete_manifest(run: Path) -> None:
    (latest_checkpoint(run) / "manifest.json").unlink()
    _flip_agent_byte(run)


def _edit_trainer_step(run: Path) -> None:
    path = latest_checkpoint(run) / "trainer.json"
    state = json.loads(path.read_text(encoding="utf-8"))
    state["step"] += 1000
    path.write_text(json.dumps(state), encoding="utf-8")


def _break_trainer_json(run: Path) -> None:
    path = latest_checkpoint(run) / "trainer.json"
    path.write_text(path.read_text(encoding="utf-8").rstrip().removesuffix("}"), encoding="utf-8")


def _truncate_agent(run: Path) -> None:
    path = next((latest_checkpoint(run)).glob("agent.*"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_trainer_json(run: Path) -> None:
    (latest_checkpoint(run) / "trainer.json").write_text('{"step": 20', encoding="utf-8")


def _no_trainer_json(run: Path) -> None:
    (latest_checkpoint(run) / "trainer.json").unlink()


def _trainer_json_not_a_mapping(run: Path) -> None:
    (latest_checkpoint(run) / "trainer.json").write_text("[1, 2]", encoding="utf-8")


def _foreign_npz(run: Path) -> None:
    np.savez(latest_checkpoint(run) / "agent.npz", weights=np.zeros(3))


def _junk_npz(run: Path) -> None:
    (latest_checkpoint(run) / "agent.npz").write_text("junk\n", encoding="utf-8")


def _junk_npz_after_a_good_checkpoint(run: Path) -> None:
    newest = latest_checkpoint(run).parent / "step_0000009999"
    shutil.copytree(latest_checkpoint(run), newest)
    _junk_npz(run)


def _no_checkpoints(run: Path) -> None:
    shutil.rmtree(run / "checkpoints")


def _bad_yaml_run_config(run: Path) -> None:
    (run / "config.yaml").write_text("seed: [0\n", encoding="utf-8")


def _empty_run_config(run: Path) -> None:
    (run / "config.yaml").write_text("", encoding="utf-8")


def _latin1_run_config(run: Path) -> None:
    (run / "config.yaml").write_bytes(b"name: caf\xe9\n")


class _RunsCode:
    """Pickles as a call to print: torch.load(weights_only=True) must refuse it."""

    def __reduce__(self):
        return (print, ("this ran",))


def _malicious_pt(run: Path) -> None:
    import torch

    torch.save({"format": "rlsoft.dqn/1", "x": _RunsCode()}, latest_checkpoint(run) / "agent.pt")


# -- setups and patches ---------------------------------------------------------------------


def _symlinked_run_dir(tmp: Path) -> None:
    (tmp / "elsewhere").mkdir()
    (tmp / "runs").mkdir()
    (tmp / "runs" / "link").symlink_to(tmp / "elsewhere", target_is_directory=True)


def _unwritable(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a read-only logdir does (root ignores permission bits, so it is faked)."""

    def refuse(path: Path, text: str) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("rlsoft.run.experiment.atomic_write_text", refuse)


def _report_unwritable(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(analysis: object, logdir: Path) -> list[Path]:
        raise PermissionError(13, "Permission denied", str(logdir))

    monkeypatch.setattr("rlsoft.compare.report.write_outputs", refuse)


class _HugeGrid(gym.Env):
    """10^12 discrete states: no table fits."""

    observation_space = gym.spaces.MultiDiscrete([1000] * 4)
    action_space = gym.spaces.Discrete(4)


def _huge_grid_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = gym.envs.registration.EnvSpec("HugeGridTest-v0", entry_point=_HugeGrid)
    monkeypatch.setitem(gym.envs.registry, spec.id, spec)


class _ScaledRewardEnv(gym.Env):
    """Stores ``scale`` unchecked and uses it at the first step, as MinAtar's
    ``sticky_action_prob`` is: a value of the wrong type fails only when the env steps."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 1.0 * self.scale, False, False, {}


def _scaled_reward_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = gym.envs.registration.EnvSpec("ScaledRewardTest-v0", entry_point=_ScaledRewardEnv)
    monkeypatch.setitem(gym.envs.registry, spec.id, spec)


def _without(module: str) -> Callable[[pytest.MonkeyPatch], None]:
    def patch(monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError

    return patch


def _headless(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Linux session with no X or Wayland display and no video driver chosen (SSH, CI),
    where pygame is installed (whether or not this test environment has the video extra)."""
    monkeypatch.setattr(sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER", "MPLBACKEND"):
        monkeypatch.delenv(name, raising=False)
    find_spec = importlib.util.find_spec

    def installed(name: str, *args: object):
        if name == "pygame":
            return importlib.machinery.ModuleSpec("pygame", None)
        return find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", installed)


def _read_only_video_mount(monkeypatch: pytest.MonkeyPatch) -> None:
    """Making a directory named ``ro-videos`` fails as on a read-only mount (or /proc), where
    moviepy is installed (a stand-in where this test environment lacks the video extra: the
    directory fails before any frame is encoded)."""
    if importlib.util.find_spec("moviepy") is None:
        monkeypatch.setitem(sys.modules, "moviepy", types.ModuleType("moviepy"))
    makedirs = os.makedirs

    def refuse(path, *args, **kwargs):
        if "ro-videos" in str(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return makedirs(path, *args, **kwargs)

    monkeypatch.setattr(os, "makedirs", refuse)


def _without_ale(monkeypatch: pytest.MonkeyPatch) -> None:
    """ale_py not installed: its ALE/ ids unregistered and its import failing."""
    for env_id in [k for k in gym.envs.registry if k.startswith("ALE/")]:
        monkeypatch.delitem(gym.envs.registry, env_id)
    monkeypatch.setitem(sys.modules, "ale_py", None)


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    expected: str
    """A substring of the one-line error."""
    files: Mapping[str, str | bytes | None] = field(default_factory=_files)
    run: str | None = None
    damage: Callable[[Path], None] | None = None
    setup: Callable[[Path], None] | None = None
    patch: Callable[[pytest.MonkeyPatch], None] | None = None
    forbidden: tuple[str, ...] = ()
    """Substrings the error must not contain (misleading wording)."""
    subprocess: bool = False
    """Also run it as ``python -m rlsoft.cli`` (it needs no patch)."""
    marks: tuple = ()


def C(id: str, argv: str | list[str], expected: str, **kw) -> Case:
    args = tuple(argv.split()) if isinstance(argv, str) else tuple(argv)
    return Case(id, args, expected, **kw)


TRAIN = "train {tmp}/c.yaml --logdir {logdir}"
ATARI_TRAIN = "train {tmp}/atari.yaml --logdir {logdir}"
needs_ale = pytest.mark.skipif(
    importlib.util.find_spec("ale_py") is None, reason="Atari is an optional extra"
)
DQN_TRAIN = "train {tmp}/dqn.yaml --logdir {logdir}"
MINATAR_TRAIN = f"{DQN_TRAIN} --set env.id=MinAtar/Breakout-v1"
needs_minatar = pytest.mark.skipif(
    importlib.util.find_spec("minatar") is None, reason="MinAtar is an optional extra"
)
no_cuda = pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="needs a machine without a GPU"
)

CASES = [
    # ---- the command line itself (argparse) ----
    C("no-command", [], "the following arguments are required: COMMAND", subprocess=True),
    C("unknown-command", "trian", "invalid choice: 'trian'"),
    C("unknown-option", f"{TRAIN} --bogus", "unrecognized arguments: --bogus"),
    C("seed-not-int", f"{TRAIN} --seed abc", "invalid int value: 'abc'", subprocess=True),
    C("eval-no-run-dir", "eval", "the following arguments are required: run_dir"),
    C("episodes-not-int", "eval {tmp} --episodes many", "invalid int value: 'many'"),
    C("workers-not-int", "compare {tmp}/cmp.yaml --workers x", "invalid int value: 'x'"),
    C("compare-no-config", "compare", "the following arguments are required: config"),
    # ---- the config file ----
    C("train-no-config", "train", "needs a CONFIG"),
    C("config-missing", "train missing.yaml", "'missing.yaml' does not exist", subprocess=True),
    C("config-is-directory", "train {tmp}/adir", "is a directory", files=_files(**{"adir/": None})),
    C(
        "config-not-utf8",
        "train {tmp}/latin1.yaml",
        "is not UTF-8 text (byte 0xe9",
        files=_files(**{"latin1.yaml": b"seed: 0\nname: caf\xe9\n"}),
        subprocess=True,
    ),
    C("config-empty", "train {tmp}/e.yaml", "is empty", files=_files(**{"e.yaml": ""})),
    C(
        "config-only-comments",
        "train {tmp}/e.yaml",
        "is empty",
        files=_files(**{"e.yaml": "# nothing yet\n"}),
        forbidden=("NoneType",),
    ),
    C(
        "config-is-a-list",
        "train {tmp}/l.yaml",
        "must be a mapping of sections",
        files=_files(**{"l.yaml": "- seed: 0\n"}),
    ),
    C(
        "config-bad-yaml",
        "train {tmp}/b.yaml",
        "is not valid YAML at line",
        files=_files(**{"b.yaml": "seed: [0\nagent: {type: q_learning}\n"}),
    ),
    C(
        "config-duplicate-key",
        "train {tmp}/d.yaml",
        "duplicate key 'seed' at lines 1 and 4",
        files=_files(
            **{"d.yaml": "seed: 0\nenv: {id: Taxi-v4}\nagent: {type: q_learning}\nseed: 1\n"}
        ),
    ),
    C(
        "config-duplicate-key-same-line",
        "train {tmp}/d.yaml",
        "duplicate key 'type' at line 1",
        files=_files(**{"d.yaml": "agent: {type: q_learning, type: sarsa}\n"}),
    ),
    C(
        "config-alias-bomb",
        "train {tmp}/bomb.yaml",
        "expands to more than",
        files=_files(**{"bomb.yaml": ALIAS_BOMB}),
        subprocess=True,
    ),
    C(
        "config-recursive-alias",
        "train {tmp}/r.yaml",
        "refers to a node that contains it",
        files=_files(**{"r.yaml": "agent: &a {type: q_learning, again: *a}\n"}),
    ),
    C(
        "config-typo-top-level",
        "train {tmp}/t.yaml",
        "did you mean 'seed'",
        files=_files(**{"t.yaml": "sed: 0\nagent: {type: q_learning}\n"}),
    ),
    C(
        "config-no-agent",
        "train {tmp}/n.yaml",
        "'agent' is required but missing",
        files=_files(**{"n.yaml": "seed: 0\n"}),
    ),
    C(
        "config-agent-without-type",
        "train {tmp}/n.yaml",
        "needs a 'type'",
        files=_files(**{"n.yaml": "agent: {learning_rate: 0.5}\n"}),
    ),
    # ---- --set ----
    C("set-empty", [*TRAIN.split(), "--set", ""], "--set expects key.path=value"),
    C("set-no-equals", f"{TRAIN} --set train.total_steps", "--set expects key.path=value"),
    C("set-no-key", f"{TRAIN} --set =5", "--set expects key.path=value"),
    C("set-empty-part", f"{TRAIN} --set train..total_steps=5", "has an empty part"),
    C("set-value-not-section", f"{TRAIN} --set seed.x=1", "'seed' is a value, not a section"),
    C("set-bad-yaml", f"{TRAIN} --set agent.learning_rate=[0.1", "is not valid YAML"),
    C("set-typo", f"{TRAIN} --set agent.lerning_rate=0.1", "did you mean 'learning_rate'"),
    C(
        "dqn-learning-rate-is-lr",
        f"{DQN_TRAIN} --set agent.learning_rate=0.1",
        "unknown config key 'agent.learning_rate' (did you mean 'lr'?)",
    ),
    C(
        "dqn-misspelt-learning-rate-is-lr",  # not learning_starts, the nearer in spelling
        f"{DQN_TRAIN} --set agent.lerning_rate=0.1",
        "unknown config key 'agent.lerning_rate' (did you mean 'lr'?)",
    ),
    C(
        "tabular-lr-is-learning-rate",
        f"{TRAIN} --set agent.lr=0.1",
        "(did you mean 'learning_rate'?)",
    ),
    C("agent-epsilon", f"{TRAIN} --set agent.epsilon=0.1", "(did you mean 'exploration.epsilon'?)"),
    C("sb3-buffer-name", f"{DQN_TRAIN} --set agent.replay_size=5", "(did you mean 'buffer_size'?)"),
    C(
        "sb3-target-update-name",
        f"{DQN_TRAIN} --set agent.target_update_freq=5",
        "(did you mean 'target_update_interval'?)",
    ),
    C(
        "sb3-exploration-fraction",
        f"{DQN_TRAIN} --set agent.exploration_fraction=0.1",
        "(did you mean an exploration.epsilon schedule such as {type: linear",
    ),
    C("sb3-total-timesteps", f"{DQN_TRAIN} --set agent.total_timesteps=5", "'train.total_steps'"),
    C("seed-in-train", f"{TRAIN} --set train.seed=1", "(did you mean the top-level 'seed'?)"),
    C(
        "exploration-temperature-with-epsilon-greedy",
        f"{TRAIN} --set exploration.temperature=3",
        "--set sets exploration.temperature, which exploration.policy epsilon_greedy ignores "
        "(it reads only epsilon); remove it, or choose a policy that uses it (boltzmann)",
    ),
    C("exploration-mu-with-epsilon-greedy", f"{TRAIN} --set exploration.mu=3", "(ez_greedy)"),
    C(
        "agent-type-switched-under-its-settings",
        f"{DQN_TRAIN} --set agent.type=q_learning",
        "agent.type is q_learning, but the agent section has settings of dqn (",
    ),
    C(
        "wrapper-as-a-bare-path",
        f"{TRAIN} --set env.wrappers=[gymnasium.wrappers:RecordEpisodeStatistics]",
        "config field 'env.wrappers.0': a wrapper is a mapping such as {path: ",
    ),
    C(
        "choice-misspelt",
        f"{TRAIN} --set exploration.policy=boltzman",
        "(got 'boltzman') (did you mean 'boltzmann'?)",
    ),
    C(
        "exploration-unused-in-the-file",
        "train {tmp}/t.yaml",
        "t.yaml sets exploration.epsilon, which exploration.policy boltzmann ignores",
        files=_files(**{"t.yaml": TABULAR.replace("policy: epsilon_greedy", "policy: boltzmann")}),
    ),
    C(
        "set-not-a-number",
        f"{TRAIN} --set agent.learning_rate=abc",
        "config field 'agent.learning_rate': expected a number, got the string 'abc'",
        forbidden=("without quotes",),
    ),
    C(
        "env-kwarg-misspelt",
        f"{TRAIN} --set env.id=FrozenLake-v1 --set env.kwargs.is_slipery=false",
        "environment 'FrozenLake-v1' takes no keyword argument 'is_slipery' (did you mean "
        "'is_slippery'?); remove env.kwargs.is_slipery",
    ),
    C(
        "eval-too-many-episodes",
        "eval {run} --episodes 99999999999999999999",
        "--episodes must be from 1 to 10,000,000",
        run="tabular",
    ),
    C(
        "compare-env-kwarg-the-env-rejects",
        "compare {tmp}/cmp.yaml --logdir {logdir}",
        "variant 'bad': environment 'Taxi-v4' takes no keyword argument 'size'",
        files=_files(
            **{
                "cmp.yaml": COMPARISON.replace(
                    "variants:", "variants:\n  bad: {env.kwargs: {size: 3}}"
                )
            }
        ),
    ),
    C(
        # network: auto picks the MLP for CartPole, which only the env's space tells: the
        # comparison refuses the variant before its runs start, not in a worker.
        "compare-bfloat16-variant-where-the-network-is-an-mlp",
        "compare {tmp}/cmp.yaml --logdir {logdir}",
        "variant 'bf16': agent.precision bfloat16 applies to the nature_cnn network's "
        "convolutions, and this run's network is mlp",
        files=_files(
            **{
                "cmp.yaml": COMPARISON.replace("base: c.yaml", "base: dqn.yaml").replace(
                    "variants:", "variants:\n  bf16: {agent.precision: bfloat16}"
                )
            }
        ),
    ),
    C(
        # Each worker would build its agent and fail: said once, before any run starts.
        "compare-dqn-on-continuous-actions",
        "compare {tmp}/cmp.yaml --logdir {logdir}",
        "variant 'eps': the DQN agent needs a Discrete action space, but this environment's "
        "is Box(",
        files=_files(
            **{
                "cmp.yaml": COMPARISON.replace("base: c.yaml", "base: dqn.yaml").replace(
                    "seeds: 1", "seeds: 1\nenvs: [CartPole-v1, Pendulum-v1]"
                )
            }
        ),
    ),
    *(
        C(
            f"compare-minatar-{name}",
            "compare {tmp}/cmp.yaml --logdir {logdir}",
            f"variant '{name}': {message}",
            files=_files(
                **{
                    "cmp.yaml": COMPARISON.replace("base: c.yaml", "base: dqn.yaml").replace(
                        "variants:",
                        f"envs: [MinAtar/Breakout-v1]\nvariants:\n  {name}: {{{setting}}}",
                    )
                }
            ),
            marks=(needs_minatar,),
        )
        for name, setting, message in (
            (
                "nature",
                "agent.network: nature_cnn",
                "agent.network nature_cnn needs images of at least 36×36 pixels",
            ),
            (
                "boot",
                "agent.ensemble: {heads: 3}",
                "agent.ensemble (Bootstrapped DQN) runs on MLPs of flat float observations",
            ),
            (
                "stack",
                "agent.frame_stack: 4",
                "agent.frame_stack 4 does not fit observations of shape (10, 10, 4)",
            ),
        )
    ),
    C(
        "set-null-value",
        f"{TRAIN} --set train.total_steps=null",
        "--set: config field 'train.total_steps' has no value (null or empty); give one, or "
        "leave the key out for its default",
    ),
    C(
        "set-empty-value",
        f"{TRAIN} --set seed=",
        "--set: config field 'seed' has no value (null or empty)",
    ),
    C(
        "set-quoted-number",
        [*TRAIN.split(), "--set", 'train.total_steps="500"'],
        "expected an integer, got the string '500'; write the number without quotes",
    ),
    C("set-fraction-for-int", f"{TRAIN} --set train.total_steps=1.5", "valid integer"),
    C("set-negative-steps", f"{TRAIN} --set train.total_steps=-5", "greater than or equal to 1"),
    C("set-zero-steps", f"{TRAIN} --set train.total_steps=0", "greater than or equal to 1"),
    C(
        "checkpoint-replay-without-replay",
        f"{TRAIN} --set train.checkpoint_replay=false",
        "train.checkpoint_replay: false leaves a replay buffer out of checkpoints, but agent",
    ),
    C("set-negative-seed", f"{TRAIN} --set seed=-1", "config field 'seed'"),
    C("epsilon-out-of-range", f"{TRAIN} --set exploration.epsilon=2", "epsilon must be in [0, 1]"),
    C("temperature-zero", f"{TRAIN} --set exploration.temperature=0", "temperature must be"),
    C("unknown-policy", f"{TRAIN} --set exploration.policy=softmax", "'boltzmann'"),
    C(
        "unknown-schedule-type",
        [*TRAIN.split(), "--set", "exploration.epsilon={type: cosine, start: 1, end: 0}"],
        "unknown schedule type 'cosine'; valid schedule types are 'linear', 'exponential'",
        forbidden=("valid number",),
    ),
    C(
        "schedule-without-type",
        [*TRAIN.split(), "--set", "exploration.epsilon={start: 1, end: 0}"],
        "a schedule needs a 'type' key",
    ),
    C(
        "schedule-missing-duration",
        [*TRAIN.split(), "--set", "exploration.epsilon={type: linear, start: 1.0, end: 0.1}"],
        "'exploration.epsilon.duration' is required but missing",
    ),
    C("epsilon-nan", f"{TRAIN} --set exploration.epsilon=.nan", "finite number (got nan)"),
    C("learning-rate-inf", f"{TRAIN} --set agent.learning_rate=.inf", "finite number (got inf)"),
    C("steps-overflow", f"{TRAIN} --set train.total_steps=1e400", "'train.total_steps'"),
    C(
        "config-tab-indent",
        "train {tmp}/tab.yaml",
        "is not valid YAML at line 2: found character '\\t'",
        files=_files(**{"tab.yaml": "seed: 0\n\tagent: {type: q_learning}\n"}),
    ),
    C("unknown-device", f"{TRAIN} --set device=gpu", "'cuda'"),
    C("unknown-progress", f"{TRAIN} --set train.progress=maybe", "'auto'"),
    C("agent-not-mapping", f"{TRAIN} --set agent=5", "config field 'agent'"),
    C(
        "unknown-agent-type",
        f"{TRAIN} --set agent.type=q_lerning",
        "--set: config field 'agent.type': unknown agent type 'q_lerning'",
    ),
    C(
        "unknown-env-id",
        f"{TRAIN} --set env.id=Taxi-v9",
        "unknown environment id 'Taxi-v9' (did you mean 'Taxi-v4'?)",
        forbidden=("(got",),
    ),
    C(
        "long-value-is-cut",
        [*TRAIN.split(), "--set", "env.id=" + "A" * 5000],
        "unknown environment id 'AAAA",
        forbidden=("A" * 100,),
    ),
    C(
        "huge-list-is-cut",
        [*TRAIN.split(), "--set", "agent.learning_rate=[" + ",".join(["1"] * 5000) + "]"],
        "config field 'agent.learning_rate'",
    ),
    C(
        "seed-negative-cli",
        f"{TRAIN} --seed -1",
        "--seed must be a non-negative integer",
        forbidden=("c.yaml",),
    ),
    C(
        "env-kwargs-unknown",
        f"{TRAIN} --set env.kwargs.bogus=1",
        "environment 'Taxi-v4' takes no keyword argument 'bogus'; remove env.kwargs.bogus",
    ),
    C(
        "env-kwargs-bad-value",
        f"{TRAIN} --set env.id=FrozenLake-v1 --set env.kwargs.map_name=9x9",
        "rejected its arguments {'map_name': '9x9'} (KeyError",
    ),
    C("env-kwargs-not-mapping", f"{TRAIN} --set env.kwargs=5", "config field 'env.kwargs'"),
    C(
        "max-episode-steps-zero",
        f"{TRAIN} --set env.max_episode_steps=0",
        "'env.max_episode_steps'",
    ),
    C("torch-threads-zero", f"{TRAIN} --set train.torch_threads=0", "'train.torch_threads'"),
    C(
        "section-given-a-list",  # pydantic's message named the class (instance of TrainConfig)
        f"{TRAIN} --set train=[1]",
        "rlsoft: error: --set: config field 'train' is a section of keys, so it needs a "
        "mapping such as {key: value}, got [1]",
    ),
    C(
        "kwargs-given-a-list",
        f"{TRAIN} --set env.kwargs=[1]",
        "rlsoft: error: --set: config field 'env.kwargs' needs a mapping such as {key: value}, "
        "got [1]",
    ),
    C(
        "integer-given-a-mapping",
        [*TRAIN.split(), "--set", "train.log_every={a: 1}"],
        "rlsoft: error: --set: config field 'train.log_every': Input should be a valid "
        "integer (got {'a': 1})",
    ),
    C(
        "integer-given-a-list",
        f"{TRAIN} --set train.log_every=[5,5]",
        "rlsoft: error: --set: config field 'train.log_every': Input should be a valid "
        "integer (got [5, 5])",
    ),
    C(
        "keep-checkpoints-zero",
        f"{TRAIN} --set train.keep_checkpoints=0",
        "'train.keep_checkpoints'",
    ),
    # ---- agent and environment that do not fit together ----
    C("tabular-on-box", f"{TRAIN} --set env.id=CartPole-v1", "use the DQN agent"),
    C("tabular-continuous-actions", f"{TRAIN} --set env.id=Pendulum-v1", "Discrete action space"),
    C("tabular-no-env", f"{TRAIN} --set env=null", "add an env section"),
    C("dqn-on-discrete-obs", f"{DQN_TRAIN} --set env.id=Taxi-v4", "needs a Box"),
    C(
        "dqn-batch-above-buffer",
        f"{DQN_TRAIN} --set agent.batch_size=5000",
        "cannot exceed buffer_size",
    ),
    C(
        "dqn-network-null",
        f"{DQN_TRAIN} --set agent.network=null",
        "config field 'agent.network': Input should be 'auto', 'mlp', 'nature_cnn' or "
        "'minatar_cnn' (got null)",
    ),
    C(
        "dqn-precision-a-list",
        f"{DQN_TRAIN} --set agent.precision=[bfloat16]",
        "config field 'agent.precision': Input should be 'float32' or 'bfloat16' (got "
        "['bfloat16'])",
    ),
    C(
        "dqn-n-step-above-buffer",
        f"{DQN_TRAIN} --set agent.buffer_size=50 --set agent.batch_size=8 --set agent.n_step=60",
        "n_step (60) cannot exceed buffer_size (50): the replay would never hold a window",
    ),
    C(
        "dqn-bfloat16-on-an-mlp",
        f"{DQN_TRAIN} --set agent.precision=bfloat16",
        "agent.precision bfloat16 applies to the nature_cnn network's convolutions, and this "
        "run's network is mlp, where it saves nothing: remove agent.precision",
    ),
    C(
        "dqn-precision-float16",
        f"{DQN_TRAIN} --set agent.precision=float16",
        "'agent.precision': Input should be 'float32' or 'bfloat16' (got 'float16')",
    ),
    C(
        "dqn-precision-float64-is-no-misspelling",
        f"{DQN_TRAIN} --set agent.precision=float64",
        "'agent.precision': Input should be 'float32' or 'bfloat16' (got 'float64')",
        forbidden=("did you mean",),
    ),
    C(
        "dqn-double-soft",
        f"{DQN_TRAIN} --set agent.double=true --set agent.target=soft",
        "double applies",
    ),
    C(
        "num-envs-above-budget",
        f"{DQN_TRAIN} --set env.num_envs=8 --set train.total_steps=4",
        "env.num_envs (8) exceeds train.total_steps (4)",
    ),
    C(
        "dqn-buffer-too-big",
        f"{DQN_TRAIN} --set agent.buffer_size=1e12",
        "needs about 42,841 GiB of memory (replay buffer 42,841 GiB, networks < 0.01 GiB, "
        "training batches < 0.01 GiB)",
        subprocess=False,
    ),
    C(
        # Learning would never start (a warning), but the run is refused first: the refusal
        # is the only line.
        "dqn-replay-too-big-and-learning-never-starts",
        f"{DQN_TRAIN} --set agent.buffer_size=1e12 --set agent.learning_starts=500",
        "needs about 42,841 GiB of memory",
        subprocess=False,
    ),
    C(
        "dqn-network-too-big",
        [*DQN_TRAIN.split(), "--set", "agent.hidden_sizes=[200000, 200000]"],
        # (4+1)·200000 + (200000+1)·200000 + (200000+1)·2 parameters, 6 float32 copies each
        # plus a round's activations: 4·(200000 + 200000 + 2)·(3·16 + 16) bytes
        "needs about 894 GiB of memory (replay buffer < 0.01 GiB, networks 894 GiB, training "
        "batches 0.0954 GiB) but only 16 GiB are available; lower agent.buffer_size, "
        "agent.batch_size or agent.hidden_sizes",
    ),
    C(
        "tabular-table-too-big",
        f"{TRAIN} --set env.id=HugeGridTest-v0",
        # one learned table: 56 + 8·S + S·(56 + 32·A) bytes; the float64 copy 8·S·A bytes
        "(Q-tables 178,814 GiB, checkpoint copy 29,802 GiB) but only 16 GiB are available",
        patch=_huge_grid_registered,
    ),
    C(
        "cuda-without-gpu",
        f"{DQN_TRAIN} --set device=cuda",
        "no CUDA GPU is visible",
        marks=(no_cuda,),
    ),
    # ---- where the run goes ----
    C(
        "run-name-escapes",
        f"{TRAIN} --set run_name=../../escaped_run",
        "run_name '../../escaped_run' must start with a letter or digit",
        subprocess=True,
    ),
    C("name-escapes", f"{TRAIN} --set name=../../escaped_name", "name '../../escaped_name'"),
    C("run-name-separator", f"{TRAIN} --set run_name=a/b", "run_name 'a/b'"),
    C("run-name-hidden", f"{TRAIN} --set run_name=.hidden", "run_name '.hidden'"),
    C("run-name-dotdot", f"{TRAIN} --set run_name=..", "run_name '..'"),
    C(
        "run-name-symlink-out",
        f"{TRAIN} --set run_name=link",
        "resolves outside the logdir",
        setup=_symlinked_run_dir,
    ),
    C(
        "run-dir-exists",
        f"{TRAIN} --set run_name=fixed",
        "already exists; resume it",
        files=_files(**{"runs/fixed/config.yaml": "seed: 0\n"}),
    ),
    C(
        "empty-run-dir-is-kept-empty",
        f"{TRAIN} --set run_name=ready --set env=null",
        "add an env section",
        files=_files(**{"runs/ready/": None}),
    ),
    C(
        "logdir-is-file",
        "train {tmp}/c.yaml --logdir {tmp}/c.yaml",
        "is a file, not a directory",
        subprocess=True,
    ),
    C(
        "logdir-under-file",
        "train {tmp}/c.yaml --logdir {tmp}/c.yaml/sub",
        "cannot write the run dir",
    ),
    C(
        "logdir-not-writable",
        TRAIN,
        "(Permission denied); pass a --logdir you can write to",
        patch=_unwritable,
    ),
    # ---- eval ----
    C("eval-missing-dir", "eval {tmp}/nope", "run dir '{tmp}/nope' does not exist"),
    C("eval-not-a-run", "eval {tmp}", "is not a run dir"),
    C(
        "eval-episodes-zero",
        "eval {run} --episodes 0",
        "--episodes must be from 1 to 10,000,000, got 0",
        run="tabular",
    ),
    C(
        "eval-seed-negative",
        "eval {run} --seed -1",
        "--seed must be a non-negative integer",
        run="tabular",
    ),
    C(
        "eval-no-checkpoint",
        "eval {run}",
        "has no checkpoint to evaluate yet",
        run="tabular",
        damage=_no_checkpoints,
        forbidden=("resum",),
    ),
    C(
        "eval-truncated-npz",
        "eval {run}",
        "is damaged and cannot be read (BadZipFile",
        run="tabular",
        damage=_before_manifests(_truncate_agent),
        subprocess=True,
    ),
    C(
        "eval-junk-npz",
        "eval {run}",
        "agent.npz' is corrupt or unreadable (it is not a NumPy archive); train the run afresh",
        run="tabular",
        damage=_before_manifests(_junk_npz),
        forbidden=("allow_pickle",),
    ),
    C(
        "resume-junk-npz-falls-back",
        "train --resume {run}",
        "step_0000009999' to fall back to step_0000002000",
        run="tabular",
        damage=_junk_npz_after_a_good_checkpoint,
        forbidden=("allow_pickle",),
    ),
    C(
        "eval-corrupt-trainer-json",
        "eval {run}",
        "is damaged and cannot be read (JSONDecodeError",
        run="tabular",
        damage=_before_manifests(_corrupt_trainer_json),
    ),
    C(
        "eval-missing-trainer-json",
        "eval {run}",
        "is damaged: trainer.json is missing; train the run afresh",  # named by the manifest
        run="tabular",
        damage=_no_trainer_json,
    ),
    C(
        "eval-foreign-npz",
        "eval {run}",
        "is not a tabular-agent checkpoint",
        run="tabular",
        damage=_before_manifests(_foreign_npz),
    ),
    C(
        "eval-bad-run-config",
        "eval {run}",
        "is not valid YAML",
        run="tabular",
        damage=_bad_yaml_run_config,
    ),
    C(
        "eval-empty-run-config",
        "eval {run}",
        "config.yaml' is empty, so the run dir is damaged",
        run="tabular",
        damage=_empty_run_config,
        forbidden=("valid dictionary",),
    ),
    C(
        "resume-empty-run-config",
        "train --resume {run}",
        "config.yaml' is empty, so the run dir is damaged",
        run="tabular",
        damage=_empty_run_config,
    ),
    C(
        "eval-latin1-run-config",
        "eval {run}",
        "is not UTF-8 text",
        run="tabular",
        damage=_latin1_run_config,
    ),
    C(
        "eval-truncated-pt",
        "eval {run}",
        "is corrupt or unreadable",
        run="dqn",
        damage=_before_manifests(_truncate_agent),
    ),
    C(
        "eval-malicious-pickle",
        "eval {run}",
        "refusing to load",
        run="dqn",
        damage=_before_manifests(_malicious_pt),
        forbidden=("weights_only=False", "will likely succeed"),
    ),
    C(
        "eval-render-without-pygame",
        "eval {run} --render --episodes 1",
        "pip install 'rlsoft[video]'",
        run="dqn",
        patch=_without("pygame"),
    ),
    C(
        "eval-render-without-a-display",
        "eval {run} --render --episodes 1",
        "--render shows CartPole-v1 in a window, but this session has no display (neither "
        "DISPLAY nor WAYLAND_DISPLAY is set); record it with --video DIR instead",
        run="dqn",
        patch=_headless,
    ),
    C(
        "eval-video-without-moviepy",
        "eval {run} --video {tmp}/v --episodes 1",
        "pip install 'rlsoft[video]'",
        run="tabular",
        patch=_without("moviepy"),
    ),
    C(
        "eval-video-into-a-file",
        "eval {run} --video {tmp}/f.txt --episodes 1",
        "--video '{tmp}/f.txt' is a file; pass a directory for the videos",
        run="tabular",
        files=_files(**{"f.txt": "notes"}),
    ),
    C(
        "eval-video-under-a-file",
        "eval {run} --video {tmp}/f.txt/videos --episodes 1",
        "--video '{tmp}/f.txt/videos' cannot be created: '{tmp}/f.txt' is not a writable directory",
        run="tabular",
        files=_files(**{"f.txt": "notes"}),
    ),
    C(
        "eval-video-into-the-run-dir",
        "eval {run} --video {run} --episodes 1",
        "--video '{tmp}/run' is not empty (it holds checkpoints, config.yaml, ",
        run="tabular",
    ),
    C(
        "eval-video-on-a-read-only-mount",
        "eval {run} --video {tmp}/ro-videos --episodes 1",
        "--video '{tmp}/ro-videos' cannot be created (Read-only file system); pass a directory",
        run="tabular",
        patch=_read_only_video_mount,
    ),
    C(
        "eval-render-and-video",
        "eval {run} --render --video {tmp}/v --episodes 1",
        "--render shows the episodes and --video records them, one rendering each: pass one",
        run="tabular",
    ),
    # ---- resume ----
    C("resume-missing-dir", "train --resume {tmp}/nope", "run dir '{tmp}/nope' does not exist"),
    C("resume-with-config", "train {tmp}/c.yaml --resume {run}", "not both", run="tabular"),
    C(
        "resume-with-seed",
        "train --resume {run} --seed 3",
        "cannot change a resumed run",
        run="tabular",
    ),
    C(
        "resume-no-checkpoint",
        "train --resume {run}",
        "no complete checkpoint to resume from",
        run="tabular",
        damage=_no_checkpoints,
    ),
    C(
        "resume-truncated-npz",
        "train --resume {run} --set train.total_steps=4000",
        "is damaged and cannot be read (BadZipFile",
        run="tabular",
        damage=_before_manifests(_truncate_agent),
    ),
    C(
        "resume-corrupt-trainer-json",
        "train --resume {run} --set train.total_steps=4000",
        "is damaged and cannot be read (JSONDecodeError",
        run="tabular",
        damage=_before_manifests(_corrupt_trainer_json),
    ),
    C(
        "resume-trainer-json-not-mapping",
        "train --resume {run}",
        "holds no step counter",
        run="tabular",
        damage=_before_manifests(_trainer_json_not_a_mapping),
    ),
    C(
        "resume-bad-budget",
        "train --resume {run} --set train.total_steps=abc",
        "expected an integer, got the string 'abc'",
        run="tabular",
    ),
    C(
        "resume-typo",
        "train --resume {run} --set agent.lerning_rate=0.1",
        "did you mean 'learning_rate'",
        run="tabular",
    ),
    C(
        "resume-escaping-name",
        "train --resume {run} --set run_name=../x",
        "run_name '../x'",
        run="tabular",
    ),
    # ---- compare ----
    C("compare-missing", "compare nope.yaml", "comparison file 'nope.yaml' does not exist"),
    C(
        "compare-workers-zero",
        "compare {tmp}/cmp.yaml --workers 0",
        "--workers must be at least 1, got 0",
        files=_files(**{"cmp.yaml": COMPARISON}),
        subprocess=True,
    ),
    C(
        "compare-workers-negative",
        "compare {tmp}/cmp.yaml --workers -2",
        "--workers must be at least 1",
        files=_files(**{"cmp.yaml": COMPARISON}),
    ),
    C(
        "compare-seeds-zero",
        "compare {tmp}/cmp.yaml --seeds 0",
        "--seeds must be at least 1",
        files=_files(**{"cmp.yaml": COMPARISON}),
    ),
    C(
        "compare-address-without-ray",
        "compare {tmp}/cmp.yaml --address ray://x:1",
        "use it with --backend ray",
        files=_files(**{"cmp.yaml": COMPARISON}),
    ),
    C(
        "compare-set-managed",
        "compare {tmp}/cmp.yaml --set run_name=x",
        "which the comparison sets",
        files=_files(**{"cmp.yaml": COMPARISON}),
    ),
    C(
        "compare-variant-escapes",
        "compare {tmp}/cmp.yaml",
        "variant name '../x'",
        files=_files(**{"cmp.yaml": COMPARISON.replace("  eps:", "  ../x:")}),
    ),
    C(
        "compare-no-variants",
        "compare {tmp}/cmp.yaml",
        "name at least one variant",
        files=_files(**{"cmp.yaml": "base: c.yaml\nvariants: {}\n"}),
    ),
    C(
        "compare-variant-sets-seed",
        "compare {tmp}/cmp.yaml",
        "which the comparison sets",
        files=_files(**{"cmp.yaml": COMPARISON.replace("exploration.epsilon: 0.2", "seed: 3")}),
    ),
    C(
        "train-a-comparison",
        "train {tmp}/cmp.yaml",
        "cmp.yaml is a comparison (it has a variants: section), not one run's config: run it "
        "with rlsoft compare",
        files=_files(**{"cmp.yaml": COMPARISON}),
    ),
    C(
        "compare-a-training-config",
        "compare {tmp}/c.yaml",
        "c.yaml is one run's config (it has an agent: section and no variants:), not a "
        "comparison: train it with rlsoft train",
    ),
    C(
        # The clash of a variant's setting with --set is blamed on both.
        "compare-set-clashes-with-a-variant",
        "compare {tmp}/cmp.yaml --set agent.n_step=3",
        "--set and {tmp}/cmp.yaml: variant 'soft': config field 'agent': n_step must be 1 with "
        "target 'soft' (got 3)",
        files=_files(
            **{
                "cmp.yaml": COMPARISON.replace("c.yaml", "dqn.yaml").replace(
                    "  eps: {exploration.epsilon: 0.2}", "  soft: {agent.target: soft}"
                )
            }
        ),
    ),
    C(
        "compare-variant-typo",
        "compare {tmp}/cmp.yaml",
        "did you mean 'learning_rate'",
        files=_files(
            **{"cmp.yaml": COMPARISON.replace("exploration.epsilon", "agent.lerning_rate")}
        ),
    ),
    C(
        "compare-base-missing",
        "compare {tmp}/cmp.yaml",
        "neither a file",
        files=_files(**{"cmp.yaml": COMPARISON.replace("base: c.yaml", "base: gone.yaml")}),
    ),
    C(
        "compare-duplicate-key",
        "compare {tmp}/cmp.yaml",
        "duplicate key 'seeds' at lines 5 and 6",
        files=_files(**{"cmp.yaml": COMPARISON + "seeds: 2\n"}),
    ),
    C(
        "compare-name-escapes",
        "compare {tmp}/cmp.yaml",
        "comparison name '../../escaped'",
        files=_files(**{"cmp.yaml": COMPARISON.replace("name: cmp", "name: ../../escaped")}),
    ),
    C(
        "compare-logdir-is-file",
        "compare {tmp}/cmp.yaml --logdir {tmp}/c.yaml",
        "logdir '{tmp}/c.yaml' is a file, not a directory",
        files=_files(**{"cmp.yaml": COMPARISON}),
    ),
    C(
        "compare-logdir-under-file",
        "compare {tmp}/cmp.yaml --logdir {tmp}/c.yaml/sub",
        "cannot write into the logdir",
        files=_files(**{"cmp.yaml": COMPARISON}),
    ),
    # ---- report ----
    C("report-missing", "report {tmp}/nope", "does not exist"),
    C("report-file", "report {tmp}/c.yaml", "is a file, not a directory"),
    C(
        "report-not-writable",
        "report {tmp}",
        "cannot write the report into '{tmp}' (Permission denied)",
        run="tabular",
        patch=_report_unwritable,
    ),
    C(
        "report-empty",
        "report {tmp}/empty",
        "found no finished run",
        files=_files(**{"empty/": None}),
    ),
    # ---- Atari (env.atari; the runs would need ale_py, the errors come first) ----
    C(
        "atari-frame-skip-zero",
        f"{ATARI_TRAIN} --set env.atari.frame_skip=0",
        "env.atari.frame_skip",
        files=_files(**{"atari.yaml": ATARI}),
        marks=(needs_ale,),
    ),
    C(
        "atari-sticky-probability-one",
        f"{ATARI_TRAIN} --set env.atari.repeat_action_probability=1",
        "env.atari.repeat_action_probability",
        files=_files(**{"atari.yaml": ATARI}),
        marks=(needs_ale,),
    ),
    C(
        "atari-unknown-option",
        f"{ATARI_TRAIN} --set env.atari.sticky_actions=false",
        "env.atari.sticky_actions",
        files=_files(**{"atari.yaml": ATARI}),
        marks=(needs_ale,),
    ),
    C(
        "atari-kwargs-frameskip",
        f"{ATARI_TRAIN} --set env.kwargs.frameskip=4",
        "env.kwargs.frameskip is set by the Atari protocol",
        files=_files(**{"atari.yaml": ATARI}),
        marks=(needs_ale,),
    ),
    C(
        "atari-kwargs-obs-type",
        f"{ATARI_TRAIN} --set env.kwargs.obs_type=ram",
        "env.kwargs.obs_type is set by the Atari protocol",
        files=_files(**{"atari.yaml": ATARI}),
        marks=(needs_ale,),
    ),
    C(
        "atari-bad-game-mode",
        f"{ATARI_TRAIN} --set env.kwargs.mode=99",
        "env.kwargs.mode 99 is not one of ALE/Pong-v5's modes (0, 1); pick one, or remove it "
        "for the game's default",
        files=_files(**{"atari.yaml": ATARI}),
        marks=(needs_ale,),
    ),
    C(
        "atari-bad-difficulty",
        f"{ATARI_TRAIN} --set env.kwargs.difficulty=7",
        "env.kwargs.difficulty 7 is not one of ALE/Pong-v5's difficulties (0, 1, 2, 3); pick one",
        files=_files(**{"atari.yaml": ATARI}),
        marks=(needs_ale,),
    ),
    C(
        "atari-game-mode-quoted",
        [*ATARI_TRAIN.split(), "--set", "env.kwargs.mode='0'"],
        "env.kwargs.mode must be a whole number from 0 (one of the game's modes) or null, got '0'",
        files=_files(**{"atari.yaml": ATARI}),
        forbidden=("setMode",),
        marks=(needs_ale,),
    ),
    C(
        "atari-mode-beyond-a-c-int",
        f"{ATARI_TRAIN} --set env.kwargs.mode=99999999999999999999",
        "env.kwargs.mode must be at most 2,147,483,647 (ALE takes a C int), got 99999999999",
        files=_files(**{"atari.yaml": ATARI}),
        forbidden=("setMode",),
        marks=(needs_ale,),
    ),
    C(
        "atari-sound-observations",
        f"{ATARI_TRAIN} --set env.kwargs.sound_obs=true",
        "env.kwargs.sound_obs cannot be used here (the protocol's observations are the screen "
        "only); remove it",
        files=_files(**{"atari.yaml": ATARI}),
        marks=(needs_ale,),
    ),
    C(
        "atari-continuous-actions",
        f"{ATARI_TRAIN} --set env.kwargs.continuous_action_threshold=.inf",
        "env.kwargs.continuous_action_threshold cannot be used here",
        files=_files(**{"atari.yaml": ATARI}),
        marks=(needs_ale,),
    ),
    C(
        # null would be ALE's no limit at all, not the -v5 ids' 108,000 frames
        "atari-frame-limit-null",
        f"{ATARI_TRAIN} --set env.kwargs.max_num_frames_per_episode=null",
        "env.kwargs.max_num_frames_per_episode must be a whole number from 1 (leave it out for "
        "the id's own limit), got None",
        files=_files(**{"atari.yaml": ATARI}),
        marks=(needs_ale,),
    ),
    C(
        "atari-continuous-false",
        f"{ATARI_TRAIN} --set env.kwargs.continuous=false",
        "env.kwargs.continuous cannot be used here (DQN chooses among the game's discrete "
        "actions); remove it",
        files=_files(**{"atari.yaml": ATARI}),
        marks=(needs_ale,),
    ),
    C(
        "atari-frame-limit-zero",
        f"{ATARI_TRAIN} --set env.kwargs.max_num_frames_per_episode=0",
        "env.kwargs.max_num_frames_per_episode must be a whole number from 1 (leave it out for "
        "the id's own limit), got 0",
        files=_files(**{"atari.yaml": ATARI}),
        marks=(needs_ale,),
    ),
    C(
        "atari-frame-stack-mismatch",
        f"{ATARI_TRAIN} --set agent.frame_stack=2",
        "agent.frame_stack (2) must equal env.atari.frame_stack (4)",
        files=_files(**{"atari.yaml": ATARI}),
        marks=(needs_ale,),
    ),
    C(
        "atari-gym-era-id",
        f"{ATARI_TRAIN} --set env.id=PongNoFrameskip-v4",
        # "unknown environment id", or "a gym-era Atari id" once ale_py registered it
        "rlsoft runs Atari games as ALE/<Game>-v5 ids with the standard protocol (env.atari): "
        "use env.id ALE/Pong-v5",
        files=_files(**{"atari.yaml": ATARI}),
        marks=(needs_ale,),
    ),
    C(
        "atari-id-without-prefix",
        f"{ATARI_TRAIN} --set env.id=SpaceInvaders-v5",
        "use env.id ALE/SpaceInvaders-v5",
        files=_files(**{"atari.yaml": ATARI}),
        forbidden=("did you mean",),
        marks=(needs_ale,),
    ),
    C(
        "atari-unread-agent-setting-beside-a-null",
        ATARI_TRAIN,
        "atari.yaml sets agent.atoms, which only head: c51 reads",
        files=_files(
            **{"atari.yaml": ATARI.replace("frame_stack: 4", "frame_stack: null, atoms: 11")}
        ),
        marks=(needs_ale,),
    ),
    C(
        "atari-render-mode-in-kwargs",
        [*ATARI_TRAIN.split(), "--set", "env.kwargs={render_mode: human}"],
        "env.kwargs.render_mode makes every Atari copy (training and evaluation) open its own "
        "window, which crashes ALE; remove it",
        files=_files(**{"atari.yaml": ATARI}),
        marks=(needs_ale,),
    ),
    # ---- MinAtar keywords (stored unchecked by MinAtar, used at the first step) ----
    C(
        "minatar-sticky-not-a-number",
        [*MINATAR_TRAIN.split(), "--set", "env.kwargs={sticky_action_prob: abc}"],
        "env.kwargs.sticky_action_prob must be a probability from 0 to below 1 (MinAtar's "
        "default is 0.1; at 1 no action ever takes effect), got 'abc'",
        marks=(needs_minatar,),
    ),
    C(
        "minatar-sticky-above-one",
        f"{MINATAR_TRAIN} --set env.kwargs.sticky_action_prob=2.0",
        "env.kwargs.sticky_action_prob must be a probability from 0 to below 1",
        marks=(needs_minatar,),
    ),
    C(
        "minatar-sticky-one",  # every action replaced by the first no-op
        f"{MINATAR_TRAIN} --set env.kwargs.sticky_action_prob=1.0",
        "env.kwargs.sticky_action_prob must be a probability from 0 to below 1",
        marks=(needs_minatar,),
    ),
    C(
        "minatar-ramping-not-a-bool",
        f"{MINATAR_TRAIN} --set env.kwargs.difficulty_ramping=1",
        "env.kwargs.difficulty_ramping must be true or false, got 1",
        marks=(needs_minatar,),
    ),
    C(
        "minatar-game-in-kwargs",
        f"{MINATAR_TRAIN} --set env.kwargs.game=asterix",
        "env.kwargs.game is set by the id MinAtar/Breakout-v1: name the game in env.id",
        marks=(needs_minatar,),
    ),
    C(
        "env-kwarg-fails-at-the-first-step",
        f"{DQN_TRAIN} --set env.id=ScaledRewardTest-v0 --set env.kwargs.scale=abc",
        "environment 'ScaledRewardTest-v0' failed its first step with env.kwargs {'scale': 'abc'} "
        "(TypeError: \"can't multiply sequence by non-int of type 'float'\"); check env.kwargs",
        patch=_scaled_reward_registered,
    ),
    C(
        "atari-block-on-cartpole",
        f"{DQN_TRAIN} --set env.atari.noop_max=0",
        # A check of the whole env section, blamed on the --set that wrote env.atari.
        "rlsoft: error: --set: config field 'env': env.atari applies to ALE/ ids only",
        marks=(needs_ale,),
    ),
    C(
        "dqn-activation-without-hidden-layers",
        f"{DQN_TRAIN} --set agent.hidden_sizes=[] --set agent.activation=tanh",
        "--set sets agent.activation, which only hidden_sizes: [n, ...] reads (this config has "
        "hidden_sizes [])",
    ),
    C(
        "set-two-agent-fields-that-conflict",
        f"{DQN_TRAIN} --set agent.n_step=3 --set agent.target=munchausen",
        "rlsoft: error: --set: config field 'agent': n_step must be 1 with target 'munchausen'",
    ),
    C(
        "set-one-field-against-the-files-other",
        f"{DQN_TRAIN} --set agent.buffer_size=10",
        "rlsoft: error: --set: config field 'agent': batch_size (16) cannot exceed buffer_size "
        "(10)",
    ),
    C(
        # --set wrote env.atari.noop_max; the error names env.atari.threads, the file's.
        "file-atari-threads-with-another-atari-set",
        "train {tmp}/b.yaml --set env.atari.noop_max=0",
        "rlsoft: error: {tmp}/b.yaml: config field 'env': env.atari.threads",
        files=_files(
            **{
                "b.yaml": ATARI.replace(
                    "env: {id: ALE/Pong-v5}",
                    "env: {id: ALE/Pong-v5, atari: {threads: 2, backend: gymnasium}}",
                )
            }
        ),
        marks=(needs_ale,),
    ),
    C(
        "file-section-check-with-an-unrelated-set",
        "train {tmp}/b.yaml --set train.total_steps=300",
        "rlsoft: error: {tmp}/b.yaml: config field 'agent': batch_size (16) cannot exceed",
        files=_files(**{"b.yaml": DQN.replace("buffer_size: 1000", "buffer_size: 10")}),
    ),
    C(
        "render-human-without-pygame",
        [*DQN_TRAIN.split(), "--set", "env.kwargs={render_mode: human}"],
        "env.kwargs.render_mode 'human' makes CartPole-v1 draw every step, which needs pygame",
        patch=_without("pygame"),
    ),
    C(
        "deep-sea-too-big",
        f"{DQN_TRAIN} --set env.id=rlsoft/DeepSea-v0 --set env.kwargs.size=100000",
        "(DeepSea's N×N action map 74.5 GiB, one N×N grid observation 37.3 GiB) but only 16 GiB",
        forbidden=("Unable to allocate",),
    ),
    C(
        "set-bad-value-names-the-set",
        f"{TRAIN} --set train.total_steps=abc",
        "--set: config field 'train.total_steps': expected an integer, got the string 'abc'",
        forbidden=("c.yaml",),
    ),
    C(
        "resume-set-bad-value-names-the-set",
        "train --resume {run} --set train.eval_every=-5",
        "--set: config field 'train.eval_every': Input should be greater than or equal to 0",
        run="tabular",
        forbidden=("config.yaml",),
    ),
    C(
        "resume-set-unknown-key-names-the-set",
        "train --resume {run} --set train.bogus=1",
        "--set: unknown config key 'train.bogus'",
        run="tabular",
        forbidden=("config.yaml",),
    ),
    C(
        "set-agent-setting-the-agent-ignores",
        f"{DQN_TRAIN} --set agent.munchausen_alpha=0.5",
        "--set sets agent.munchausen_alpha, which only target: munchausen reads (this config "
        "has target standard); remove it, or set agent.target: munchausen",
    ),
    C(
        "set-loss-of-a-c51-head",
        f"{DQN_TRAIN} --set agent.head=c51 --set agent.loss=mse",
        "--set sets agent.loss, which only head: q reads (this config has head c51)",
    ),
    C(
        "file-agent-setting-the-agent-ignores",
        DQN_TRAIN,
        "dqn.yaml sets agent.atoms, which only head: c51 reads (this config has head q)",
        files=_files(
            **{"dqn.yaml": DQN.replace("learning_starts: 50}", "learning_starts: 50, atoms: 11}")}
        ),
    ),
    C(
        "eval-flipped-byte-npz",
        "eval {run}",
        "is damaged: agent.npz has changed since it was written",
        run="tabular",
        damage=_flip_agent_byte,
    ),
    C(
        "resume-flipped-byte-pt",
        "train --resume {run} --set train.total_steps=400",
        "is damaged: agent.pt has changed since it was written",
        run="dqn",
        damage=_flip_agent_byte,
    ),
    C(
        "resume-after-config-yaml-was-edited",
        "train --resume {run} --set train.total_steps=9000",
        "config.yaml was edited after the checkpoint it resumes from: agent.gamma is 0.5 there "
        "but was 0.99, which changes what the run learns",
        run="tabular",
        damage=_edit_run_gamma,
    ),
    C(
        "eval-deleted-manifest",
        "eval {run}",
        "is damaged: its manifest.json is missing",
        run="tabular",
        damage=_delete_manifest,
    ),
    C(
        "resume-edited-step",
        "train --resume {run} --set train.total_steps=9000",
        "is damaged: trainer.json has changed since it was written",
        run="tabular",
        damage=_edit_trainer_step,
    ),
    C(
        "eval-trainer-json-edited-into-invalid-json",
        "eval {run}",
        "is damaged: trainer.json has changed since it was written",
        run="dqn",
        damage=_break_trainer_json,
    ),
    C(
        "resume-edited-step-before-manifests",
        "train --resume {run} --set train.total_steps=9000",
        "its trainer.json says step 3,000, but the checkpoint is of step 2,000",
        run="tabular",
        damage=_before_manifests(_edit_trainer_step),
    ),
    C("seed-twice", f"{TRAIN} --seed 5 --set seed=6", "the seed is given twice, as 5"),
    C("logdir-empty", ["train", "{tmp}/c.yaml", "--logdir", ""], "--logdir is empty"),
    C(
        "resume-logdir-empty",
        ["train", "--resume", "{run}", "--logdir", ""],
        "--logdir is empty",
        run="tabular",
    ),
    C("compare-logdir-empty", ["compare", "{tmp}/cmp.yaml", "--logdir", " "], "--logdir is empty"),
    C(
        "atari-extra-missing",
        ATARI_TRAIN,
        "install it with: pip install 'rlsoft[atari]'",
        files=_files(**{"atari.yaml": ATARI}),
        patch=_without_ale,
    ),
]


# --------------------------------------------------------------------------------------------
# The harness
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One finished tabular run and one finished DQN run, copied into the cases that need
    them (the copies are damaged, never these)."""
    root = tmp_path_factory.mktemp("trained")
    runs = {}
    for kind, text in (("tabular", TABULAR), ("dqn", DQN)):
        config = root / f"{kind}.yaml"
        config.write_text(text, encoding="utf-8")
        code = main(["train", str(config), "--logdir", str(root), "--set", f"run_name={kind}"])
        assert code == 0
        runs[kind] = root / kind
    return runs


def _prepare(case: Case, tmp: Path, trained: dict[str, Path]) -> list[str]:
    for name, content in case.files.items():
        path = tmp / name
        if name.endswith("/"):
            path.mkdir(parents=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content or "", encoding="utf-8")
    if case.setup:
        case.setup(tmp)
    run = tmp / "run"
    if case.run:
        shutil.copytree(trained[case.run], run, symlinks=True)
        if case.damage:
            case.damage(run)
    values = {"{tmp}": str(tmp), "{logdir}": str(tmp / "runs"), "{run}": str(run)}
    out = []
    for arg in case.argv:
        for key, value in values.items():
            arg = arg.replace(key, value)
        out.append(arg)
    return out


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with, for files, size and modification time."""
    out = {}
    for path in sorted(root.rglob("*")):
        stat = path.lstat()
        out[str(path.relative_to(root))] = (
            ("dir",)
            if path.is_dir() and not path.is_symlink()
            else (stat.st_size, stat.st_mtime_ns)
        )
    return out


def _check_error(stderr: str, case: Case, tmp: Path) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("rlsoft: error: "), line
    assert len(line) <= MAX_LINE, f"{len(line)} characters: {line[:200]}…"
    assert case.expected.replace("{tmp}", str(tmp)) in line, line
    for text in case.forbidden:
        assert text not in line, line
    return line


def _params(cases: list[Case]) -> list:
    return [pytest.param(c, id=c.id, marks=c.marks) for c in cases]


def test_the_table_has_unique_ids() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 50


@pytest.mark.parametrize("case", _params(CASES))
def test_bad_input_is_one_sentence_exit_2_and_leaves_nothing(
    case: Case,
    tmp_path: Path,
    trained: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(rlsoft.rl.memory, "available_memory", lambda: FAKE_AVAILABLE)
    argv = _prepare(case, tmp_path, trained)
    if case.patch:
        case.patch(monkeypatch)
    before = _snapshot(tmp_path)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    captured = capsys.readouterr()
    assert code == 2, captured.err
    _check_error(captured.err, case, tmp_path)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("case", _params([c for c in CASES if c.subprocess]))
def test_bad_input_through_a_real_process(
    case: Case, tmp_path: Path, trained: dict[str, Path]
) -> None:
    argv = _prepare(case, tmp_path, trained)
    before = _snapshot(tmp_path)
    repo = str(Path(rlsoft.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "rlsoft.cli", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    _check_error(result.stderr, case, tmp_path)
    assert _snapshot(tmp_path) == before


def test_an_uneven_vector_budget_is_one_warning_and_the_steps_it_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "dqn.yaml"
    config.write_text(DQN, encoding="utf-8")
    argv = ["train", str(config), "--logdir", str(tmp_path), "--set", "env.num_envs=3"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "rlsoft: warning: train.total_steps (200) is not a multiple of env.num_envs (3); every "
        "vector step takes 3 steps, so the run ends after 201"
    ]
    assert captured.out.splitlines()[-1].startswith("done: 201 steps")  # 67 vector steps of 3


def test_a_budget_that_ends_before_learning_starts_is_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A short trial of a shipped config (learning_starts 5,000 against 3,000 steps) trains
    nothing: said once, and the run still completes as asked."""
    config = tmp_path / "dqn.yaml"
    config.write_text(DQN, encoding="utf-8")
    argv = ["train", str(config), "--logdir", str(tmp_path), "--set", "agent.learning_starts=200"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "rlsoft: warning: agent.learning_starts (200) is not below train.total_steps (200), so "
        "no gradient step will run and the network stays as initialised; lower "
        "agent.learning_starts or raise train.total_steps"
    ]
    assert captured.out.splitlines()[-1].startswith("done: 200 steps")
    # One step fewer to wait: the last step updates, and nothing is said.
    argv[-1] = "agent.learning_starts=199"
    assert main(argv) == 0
    assert capsys.readouterr().err == ""


def test_rlsofts_own_warnings_are_rlsoft_warning_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A warning the library raises (here the channel axis read against ``auto``'s reading)
    reaches the command line as one ``rlsoft: warning:`` line, not as Python's
    ``file:line: RuntimeWarning`` followed by a source line."""
    pytest.importorskip("minatar", reason="MinAtar is an optional extra")
    config = Path(__file__).resolve().parents[2] / "configs/minatar_breakout_dqn.yaml"
    argv = ["train", str(config), "--logdir", str(tmp_path)]
    for item in ("agent.channel_axis=first", "train.total_steps=100", "agent.learning_starts=50",
                 "train.eval_episodes=1"):  # fmt: skip
        argv += ["--set", item]
    assert main(argv) == 0
    assert capsys.readouterr().err.splitlines() == [
        "rlsoft: warning: agent.channel_axis first reads observations of shape (10, 10, 4) as "
        "10 channels of 10×4 images, more channels than pixels along a side (auto would read "
        "4 channels of 10×10); set agent.channel_axis to auto if the channels are on the other "
        "axis"
    ]


def test_a_run_made_before_names_were_checked_can_still_be_evaluated(
    tmp_path: Path, trained: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "old run"
    shutil.copytree(trained["tabular"], run)
    text = (run / "config.yaml").read_text(encoding="utf-8")
    text = text.replace("run_name: tabular", "run_name: my old run")
    text = text.replace("name: tabular", "name: my old")
    assert text.startswith("name: my old\n") and "\nrun_name: my old run\n" in text
    (run / "config.yaml").write_text(text, "utf-8")
    assert main(["eval", str(run), "--episodes", "1"]) == 0
    assert "mean return" in capsys.readouterr().out
