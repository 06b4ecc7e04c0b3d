"""scripts/compare_sb3_minatar.py without training: SB3 gets the config's hyperparameters, the
MinAtar network and the config's ε schedule, checked against the YAML file, a network written
here in plain torch and the schedule's formula."""

from __future__ import annotations

import argparse
import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("stable_baselines3")
pytest.importorskip("minatar")
torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "compare_sb3_minatar.py"
CONFIG = ROOT / "configs" / "minatar_breakout_dqn.yaml"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("compare_sb3_minatar", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def yaml_agent() -> dict:
    return yaml.safe_load(CONFIG.read_text())["agent"]


def _args(**kw) -> argparse.Namespace:
    return argparse.Namespace(**{"eval_every": 10_000, "eval_episodes": 10, **kw})


@pytest.fixture(scope="module")
def config(script):
    return script.load_rlsoft_config(20_000, 3, _args(), "sb3")


def test_sb3_kwargs_are_the_yaml_hyperparameters(script, config, yaml_agent) -> None:
    kwargs = script.sb3_kwargs(config)
    assert kwargs["learning_rate"] == yaml_agent["lr"] == 2.5e-4
    assert kwargs["buffer_size"] == yaml_agent["buffer_size"]
    assert kwargs["learning_starts"] == yaml_agent["learning_starts"]
    assert kwargs["batch_size"] == yaml_agent["batch_size"]
    assert kwargs["tau"] == yaml_agent["tau"]
    assert kwargs["gamma"] == yaml_agent["gamma"]
    assert kwargs["train_freq"] == yaml_agent["train_freq"]
    assert kwargs["gradient_steps"] == yaml_agent["gradient_steps"]
    assert kwargs["n_steps"] == yaml_agent["n_step"]
    assert kwargs["target_update_interval"] == yaml_agent["target_update_interval"]
    assert yaml_agent["max_grad_norm"] is None and kwargs["max_grad_norm"] == math.inf
    assert yaml_agent["loss"] == "huber"  # SB3's DQN loss is smooth_l1_loss
    policy = kwargs["policy_kwargs"]
    assert policy["net_arch"] == []  # the Q head sits directly on the 128 features
    assert policy["features_extractor_kwargs"] == {"features": yaml_agent["hidden_sizes"][-1]}
    assert policy["optimizer_class"] is torch.optim.Adam
    assert policy["optimizer_kwargs"] == {"eps": yaml_agent["adam_eps"]}
    # the budget, seed and bookkeeping come from the script, not the learning problem
    assert config.train.total_steps == 20_000 and config.seed == 3
    assert config.train.torch_threads == 1 and config.device == "cpu"


def test_unsupported_options_are_refused(script) -> None:
    for override in ("agent.double=true", "agent.dueling=true", "agent.loss=mse"):
        from rlsoft.run.config import load_config

        config = load_config(CONFIG, [override])
        with pytest.raises(ValueError, match=r"no SB3 DQN equivalent|Huber"):
            script.sb3_kwargs(config)


def _reference_minatar_q(obs_hwc: np.ndarray, conv, linear, head) -> np.ndarray:
    """Young & Tian (2019)'s network in plain torch on channel-first input, the permutation
    done in numpy: conv 3×3/16, ReLU, flatten, 128, ReLU, linear head."""
    x = torch.as_tensor(np.transpose(obs_hwc, (0, 3, 1, 2)), dtype=torch.float32)
    x = torch.relu(torch.nn.functional.conv2d(x, conv.weight, conv.bias, stride=1))
    x = torch.relu(
        torch.nn.functional.linear(x.reshape(x.shape[0], -1), linear.weight, linear.bias)
    )
    return torch.nn.functional.linear(x, head.weight, head.bias).detach().numpy()


def test_sb3_model_has_the_minatar_network_and_optimizer(script, config, yaml_agent) -> None:
    model = script.make_sb3_model(config, seed=0)
    q_net = model.policy.q_net
    extractor = q_net.features_extractor
    shapes = [tuple(p.shape) for p in q_net.parameters()]
    # 4 channels (Breakout: paddle, ball, trail, brick), 10×10 → 8×8 after a 3×3 convolution
    assert shapes == [(16, 4, 3, 3), (16,), (128, 1024), (128,), (3, 128), (3,)]
    head = q_net.q_net
    assert isinstance(head, torch.nn.Sequential) and len(head) == 1  # net_arch=[]: one layer
    obs = np.random.default_rng(0).random((5, 10, 10, 4)) < 0.3
    with torch.no_grad():
        got = model.policy.q_net(torch.as_tensor(obs).float()).numpy()
    want = _reference_minatar_q(obs, extractor.conv, extractor.linear, head[0])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # greedy evaluation acts on the raw bool observation exactly as on floats
    assert int(model.predict(obs[0], deterministic=True)[0]) == int(np.argmax(want[0]))
    optimizer = model.policy.optimizer
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.param_groups[0]["lr"] == yaml_agent["lr"]
    assert optimizer.param_groups[0]["eps"] == yaml_agent["adam_eps"]
    assert model.max_grad_norm == math.inf
    assert model.n_envs == 1 and str(model.device) == "cpu"


def test_sb3_network_computes_rlsoft_networks_function(script, config) -> None:
    """With rlsoft's parameters copied in, SB3's network gives rlsoft's Q-values: the two
    libraries learn the same function class from the same view of the observation."""
    from agents.dqn.conv import ConvTorso
    from agents.dqn.networks import QNetwork

    torso = ConvTorso(((16, 3, 1),), (4, 10, 10), channels_last=True)
    ours = QNetwork(0, 3, [128], torso=torso)
    model = script.make_sb3_model(config, seed=0)
    theirs = model.policy.q_net
    with torch.no_grad():
        for src, dst in zip(ours.parameters(), theirs.parameters(), strict=True):
            dst.copy_(src)
    obs = torch.as_tensor(np.random.default_rng(1).random((7, 10, 10, 4)) < 0.5).float()
    with torch.no_grad():
        torch.testing.assert_close(theirs(obs), ours(obs), rtol=1e-5, atol=1e-6)


def test_sb3_epsilon_is_the_configs_schedule(script, config) -> None:
    model = script.make_sb3_model(config, seed=0)
    eps = yaml.safe_load(CONFIG.read_text())["exploration"]["epsilon"]
    start, end, begin, duration = eps["start"], eps["end"], eps["begin"], eps["duration"]

    def formula(t: int) -> float:  # Mnih et al. (2015)'s linear annealing, delayed by `begin`
        return start + (end - start) * min(1.0, max(0, t - begin) / duration)

    assert (begin, duration, start, end) == (5_000, 100_000, 1.0, 0.1)
    for t in (0, 4_999, 5_000, 5_001, 55_000, 104_999, 105_000, 200_000):
        model.num_timesteps = t
        assert model.exploration_schedule(0.5) == pytest.approx(formula(t), abs=1e-12)
    model.num_timesteps = 55_000
    assert model.exploration_schedule(0.5) == pytest.approx(0.55)


def test_help_runs_without_training() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert "--steps" in done.stdout and "--out" in done.stdout
