"""scripts/bench_pixels.py: its helpers against independent references, and its smallest runs.

The stacks it builds from recorded frames are compared with Gymnasium's own
``FrameStackObservation``; the SB3 hyperparameters and networks with the config file read
as plain YAML and with parameter counts worked out by hand; the memory child's bytes per
transition with the arithmetic of each layout. The end-to-end runs are the script's smallest
modes (a few seconds each) and skip when stable-baselines3, minatar or ale-py is missing.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench_pixels.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_pixels", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_script()


def _needs(*modules: str) -> None:
    for module in modules:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def test_help_names_every_section() -> None:
    done = _run("--help", timeout=30)
    assert done.returncode == 0, done.stderr
    for flag in ("--games", "--steps", "--collect-steps", "--memory-capacity", "--out"):
        assert flag in done.stdout


def test_unknown_game_and_bad_set_prefix_are_one_sentence(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(["--games", "pong"])
    assert exc.value.code == 2
    assert "--games 'pong'" in capsys.readouterr().err
    _needs("stable_baselines3", "minatar")
    code = bench.main(["--games", "minatar", "--skip-memory", "--set", "pong:agent.lr=1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("bench_pixels: error: --set 'pong:agent.lr=1' names the game 'pong'")


def test_set_prefixes_route_overrides_to_their_game() -> None:
    sets = bench.parse_sets(
        ["seed=3", "atari:agent.batch_size=64", "minatar:agent.lr=0.1"], ["minatar", "atari"]
    )
    assert sets == {
        "minatar": ["seed=3", "agent.lr=0.1"],
        "atari": ["seed=3", "agent.batch_size=64"],
    }
    assert bench.parse_sets(["atari:agent.lr=1"], ["minatar"]) == {"minatar": []}


@pytest.mark.parametrize(
    ("game", "module", "train_freq", "target"),
    [("minatar", "minatar", 1, 1_000), ("atari", "ale_py", 4, 10_000)],
)
def test_sb3_hyperparameters_are_the_config_files(game, module, train_freq, target) -> None:
    """Against the game's config file read as plain YAML."""
    _needs(module)
    raw = yaml.safe_load((ROOT / bench.GAMES[game]).read_text())
    config = bench.bench_config(
        game, [], warmup=100, steps=400, learn=True, buffer_size=5_000, seed=7
    )
    params = bench.sb3_hyperparameters(config)
    agent = raw["agent"]
    assert params["learning_rate"] == agent["lr"]
    assert params["batch_size"] == agent["batch_size"] == 32
    assert params["train_freq"] == agent["train_freq"] == train_freq
    assert params["gradient_steps"] == agent["gradient_steps"] == 1
    assert params["target_update_interval"] == agent["target_update_interval"] == target
    assert params["gamma"] == agent["gamma"] and params["tau"] == agent["tau"]
    assert params["n_steps"] == agent["n_step"] == 1
    assert agent["max_grad_norm"] is None and params["max_grad_norm"] == math.inf
    # The benchmark's window: its own warm-up, buffer and budget, ε fixed at the schedule's end.
    eps_end = raw["exploration"]["epsilon"]["end"]
    assert params["exploration_initial_eps"] == params["exploration_final_eps"] == eps_end
    assert params["learning_starts"] == 100 and params["buffer_size"] == 5_000
    assert config.train.total_steps == 500 and config.seed == 7
    collect = bench.bench_config(
        game, [], warmup=100, steps=400, learn=False, buffer_size=5_000, seed=7
    )
    assert collect.agent_config().learning_starts == 500  # no update within the budget


def test_options_sb3_lacks_are_refused() -> None:
    _needs("minatar")
    config = bench.bench_config(
        "minatar",
        ["agent.double=true"],
        warmup=100,
        steps=100,
        learn=True,
        buffer_size=1000,
        seed=0,
    )
    with pytest.raises(bench.BenchError, match=r"agent\.double: True has no counterpart"):
        bench.sb3_hyperparameters(config)
    stacks = gym.spaces.Box(0, 1, (2, 10, 10, 4), bool)  # FrameStackObservation of grids
    with pytest.raises(bench.BenchError, match=r"\(2, 10, 10, 4\) are stacks of images"):
        bench.sb3_policy(config, stacks)


@pytest.mark.parametrize(
    ("network", "space_shape", "dtype", "actions", "parameters"),
    [
        # conv 4→16 3×3: 4·16·9 + 16; dense 16·8·8 → 128: 1024·128 + 128; out 128·3 + 3.
        ("minatar_cnn", (10, 10, 4), bool, 3, 592 + 131_200 + 387),
        # Nature DQN (README: 1,687,206 parameters with 6 actions) with Breakout's 4.
        ("nature_cnn", (4, 84, 84), np.uint8, 4, 1_687_206 - 2 * 513),
    ],
)
def test_sb3_network_has_the_papers_parameter_count(
    network, space_shape, dtype, actions, parameters
) -> None:
    _needs("stable_baselines3", "minatar")
    import gymnasium as gym
    from stable_baselines3.dqn.policies import CnnPolicy

    hidden = "[128]" if network == "minatar_cnn" else "[512]"
    config = bench.bench_config(
        "minatar",
        [f"agent.network={network}", f"agent.hidden_sizes={hidden}"],
        warmup=100,
        steps=100,
        learn=True,
        buffer_size=1000,
        seed=0,
    )
    high = 1 if dtype is bool else 255
    space = gym.spaces.Box(0, high, space_shape, dtype)
    policy = CnnPolicy(
        space, gym.spaces.Discrete(actions), lambda _: 1e-3, **bench.sb3_policy(config, space)
    )
    assert sum(p.numel() for p in policy.q_net.parameters()) == parameters


@pytest.mark.parametrize("dueling", [False, True])
def test_multiply_adds_are_the_papers_networks_counted_by_hand(dueling) -> None:
    """Nature DQN on 4×84×84 with 4 actions: 20·20·32·(4·8·8) + 9·9·64·(32·4·4) +
    7·7·64·(64·3·3) + 3136·512 + 512·4; MinAtar on 10×10×4 with 3 actions: 8·8·16·(4·3·3) +
    1024·128 + 128·3 (a dueling head: one value unit more). A DQN step of the Atari config
    (batch 32, one gradient step per 4 env steps, ε 0.1) then costs 8·(4F − F₁) + 0.9·F."""
    import gymnasium as gym

    from agents.dqn import DQNAgent, DQNConfig
    from rlsoft.explore.policies import EpsilonGreedy

    def network(shape, dtype, actions):
        agent = DQNAgent(
            observation_space=gym.spaces.Box(0, 255 if dtype == np.uint8 else 1, shape, dtype),
            action_space=gym.spaces.Discrete(actions),
            policy=EpsilonGreedy(0.1),
            config=DQNConfig(buffer_size=64, dueling=dueling),
            rng=np.random.default_rng(0),
            torch_seed=0,
        )
        return agent.online

    value = 512 if dueling else 0
    first = 20 * 20 * 32 * 4 * 8 * 8
    nature = first + 9 * 9 * 64 * 32 * 4 * 4 + 7 * 7 * 64 * 64 * 9 + 3136 * 512 + 512 * 4 + value
    assert bench.forward_multiply_adds(network((4, 84, 84), np.uint8, 4)) == (nature, first)
    conv = 8 * 8 * 16 * 4 * 9
    minatar = conv + 1024 * 128 + 128 * 3 + (128 if dueling else 0)
    assert bench.forward_multiply_adds(network((10, 10, 4), np.bool_, 3)) == (minatar, conv)
    per_step = bench.multiply_adds_per_step(
        nature, first, batch=32, gradient_steps=1, train_freq=4, epsilon=0.1
    )
    assert per_step == pytest.approx(8 * (4 * nature - first) + 0.9 * nature)
    double = bench.multiply_adds_per_step(
        nature, first, batch=32, gradient_steps=1, train_freq=4, epsilon=0.1, double=True
    )
    assert double - per_step == pytest.approx(8 * nature)


def test_recorded_stacks_are_frame_stack_observations() -> None:
    """frame_stacks of recorded frames == what FrameStackObservation returned for the same
    seed and actions, padding after every reset included; the cyclic transitions chain."""
    _needs("ale_py", "cv2")
    import ale_py
    import gymnasium as gym
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    recording = bench.record_frames(400, seed=3)
    assert recording["first"].sum() >= 2, "want at least one reset inside the recording"
    stacks = bench.frame_stacks(recording["frames"], recording["first"])
    gym.register_envs(ale_py)
    env = gym.make(bench.MEMORY_ENV, frameskip=1, repeat_action_probability=0.25)
    env = FrameStackObservation(AtariPreprocessing(env, noop_max=30, frame_skip=4), 4)
    expected = []
    for t in range(len(recording["frames"])):
        if recording["first"][t]:
            obs, _ = env.reset(seed=3) if t == 0 else env.reset()
        else:
            obs, *_ = env.step(int(recording["action"][t]))
        expected.append(obs)
    np.testing.assert_array_equal(stacks, np.stack(expected))

    arrived = int((~recording["first"]).sum())
    transitions = list(bench.cyclic_transitions(recording, arrived + 3, stacks))
    for (_, _, _, next_obs, term, trunc), (obs, *_) in itertools.pairwise(transitions):
        if term or trunc:  # the next transition starts an episode: its stack is one frame
            assert all(np.array_equal(obs[0, 0], obs[0, j]) for j in range(4))
        else:
            np.testing.assert_array_equal(obs, next_obs)
    last = transitions[arrived - 1]
    assert last[4] or last[5], "the recording ends with an episode, so the cycle restarts one"
    np.testing.assert_array_equal(transitions[arrived][0], transitions[0][0])  # wrapped round


def test_memory_children_measure_the_layouts_arithmetic(tmp_path) -> None:
    """Bytes per transition of each buffer, filled with real frames, within 5 % of the
    arithmetic of its layout (84·84 = 7,056 per frame), and the goal ratio below 0.3."""
    _needs("stable_baselines3", "ale_py", "cv2")
    out = tmp_path / "memory.json"
    done = _run(
        "--skip-speed",
        "--frames",
        "300",
        "--memory-capacity",
        "20000",
        "--memory-large",
        "0",
        "--plain-capacity",
        "10000",
        "--out",
        str(out),
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    rows = {row["kind"]: row for row in json.loads(out.read_text())["memory"]}
    per_frame = 84 * 84
    for kind, frames in (("rlsoft", 1), ("sb3", 4), ("sb3-plain", 8)):
        row = rows[kind]
        assert "skipped" not in row, row
        per_transition = row["rss"] / row["capacity"]
        assert frames * per_frame * 0.95 < per_transition < frames * per_frame * 1.05 + 200
    assert rows["rlsoft"]["rss"] / rows["sb3"]["rss"] < 0.3
    assert "extrapolated, not measured" in done.stdout


@pytest.mark.parametrize(
    ("game", "module", "train_freq"), [("minatar", "minatar", 1), ("atari", "ale_py", 4)]
)
def test_smallest_run_trains_both_libraries_equally(tmp_path, game, module, train_freq) -> None:
    """32 timed steps after 32 random ones: both libraries make exactly 32 / train_freq
    gradient steps (the configs' one per round), and so does rlsoft with autograd
    (``--autograd``, MinAtar) and with bfloat16 convolutions, their weights cast once or under
    autocast (``--bfloat16``, Atari); collection makes none."""
    _needs("stable_baselines3", module)
    out = tmp_path / "speed.json"
    done = _run(
        "--games",
        game,
        "--skip-memory",
        "--warmup",
        "32",
        "--steps",
        "32",
        "--collect-steps",
        "100",
        "--speed-buffer",
        "1000",
        "--out",
        str(out),
        *(["--autograd", "--profile", "5"] if game == "minatar" else ["--bfloat16"]),
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    cases = results["speed"][game]
    updates = 32 // train_freq
    assert cases["rlsoft train"][0]["updates"] == cases["sb3 train"][0]["updates"] == updates
    if game == "minatar":  # the same run with autograd: the same number of updates
        assert cases["rlsoft train autograd"][0]["updates"] == updates
        assert any("written-out backward / autograd" in g["what"] for g in results["goals"])
        # --profile 5: one more training run under torch.profiler, its five costliest
        # operators printed, and not among the timed cases.
        title = f"minatar: rlsoft's training under torch.profiler, {updates} updates ("
        assert title in done.stdout
        table = done.stdout.split("torch.profiler", 1)[1].split("Self CPU time total", 1)[0]
        assert len([line for line in table.splitlines() if "aten::" in line]) == 5
        assert "rlsoft profile" not in cases
    assert cases["rlsoft collect"][0]["updates"] == cases["sb3 collect"][0]["updates"] == 0
    for case in bench.CASES:
        run = cases[case][0]
        assert run["steps"] == (32 if "train" in case else 100) and run["steps_per_s"] > 0
    verdicts = {goal["what"]: goal["verdict"] for goal in results["goals"]}
    assert verdicts[f"{game}: rlsoft / SB3 training steps/s"] in ("PASS", "FAIL")
    # rlsoft's collection against the env it steps: ale-py's native one for Atari.
    bare = "bare native env" if game == "atari" else "bare env"
    assert f"{game}: rlsoft collection / {bare} steps/s" in verdicts
    assert f"{game}: sb3 collection / bare env steps/s" in verdicts
    if game == "atari":  # rlsoft on SB3's env too, which separates library from backend
        run = cases["rlsoft train gymnasium env"][0]
        assert run["steps"] == 32 and run["updates"] == updates
        assert cases["bare native env"][0]["steps"] == 100
        assert f"{game}: rlsoft on the Gymnasium env / SB3 training steps/s" in verdicts
        # --bfloat16: the mixed-precision row, reported beside the goal and not as it.
        assert cases["rlsoft train bfloat16"][0]["updates"] == updates
        assert cases["rlsoft train bfloat16"][0]["convolutions"] == "bfloat16"
        assert cases["rlsoft train"][0]["convolutions"] == "float32"
        assert verdicts[f"{game}: rlsoft bfloat16 / SB3 (float32) steps/s"] == "—"
        # and the same under autocast, against which the weights cast once are compared
        autocast = cases["rlsoft train bfloat16 autocast"][0]
        assert autocast["updates"] == updates and autocast["convolutions"] == "bfloat16"
        assert cases["rlsoft train bfloat16"][0]["weights_cast_once"]
        assert not autocast["weights_cast_once"]
        assert not cases["rlsoft train"][0]["weights_cast_once"]
        assert verdicts[f"{game}: rlsoft bfloat16, weights cast once / under autocast"] == "—"
        assert set(results["peak_flops"]) == {"float32", "bfloat16"}
    # The ceiling the network's arithmetic sets at this core's measured peak.
    assert results["peak_flops"]["float32"] > 1e8
    assert verdicts[f"{game}: 2x SB3 / the float32 ceiling with the env"] == "—"
    assert f"{game}: " in done.stdout and "MFLOP of network arithmetic" in done.stdout
