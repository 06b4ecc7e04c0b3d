"""DQN family: targets against independent formulas, heads, optimiser, spaces, checkpoints."""

from __future__ import annotations

import collections
import itertools
import os
import pickle

import gymnasium as gym
import mpmath
import numpy as np
import pytest
import scipy.special
import torch
from hypothesis import given
from hypothesis import strategies as st

from agents.dqn import DQNAgent, DQNConfig
from agents.dqn.agent import denormals_flushed
from agents.dqn.networks import NumpyForward, QNetwork
from agents.dqn.optim import FlatAdam, clip_scale, flatten_parameters
from agents.dqn.targets import project_onto_support
from rlsoft.errors import ConfigError, RlsoftError
from rlsoft.explore.policies import Boltzmann, EpsilonGreedy

OBS = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
ACTIONS = gym.spaces.Discrete(3)
SMALL = {
    "hidden_sizes": [16, 16],
    "batch_size": 8,
    "buffer_size": 256,
    "learning_starts": 16,
    "train_freq": 4,
    "gradient_steps": 2,
    "target_update_interval": 20,
}


def make_agent(seed: int = 0, num_envs: int = 2, policy=None, **overrides) -> DQNAgent:
    return DQNAgent(
        observation_space=OBS,
        action_space=ACTIONS,
        policy=policy or EpsilonGreedy(0.2),
        config=DQNConfig(**{**SMALL, **overrides}),
        rng=np.random.default_rng(seed),
        torch_seed=seed,
        num_envs=num_envs,
    )


def feed(agent: DQNAgent, vector_steps: int, seed: int = 0, start: int = 0) -> list[np.ndarray]:
    """Drive the agent with a random but reproducible transition stream; returns its actions."""
    rng = np.random.default_rng(seed)
    n = agent.num_envs
    actions = []
    for t in range(start, start + vector_steps):
        obs = rng.uniform(-1, 1, (n, 4)).astype(np.float32)
        a = agent.act(obs, t * n)
        actions.append(a)
        agent.observe(
            obs,
            a,
            rng.normal(size=n),
            rng.uniform(-1, 1, (n, 4)).astype(np.float32),
            rng.random(n) < 0.05,
            rng.random(n) < 0.05,
            t * n,
        )
    return actions


# --------------------------------------------------------------------------------------------
# C51 projection
# --------------------------------------------------------------------------------------------


def brute_force_projection(values, probs, v_min, v_max, atoms):
    """(Φ p)_i = Σ_j [1 − |clip(v_j) − z_i| / Δz]_0^1 p_j, written as three loops."""
    z = np.linspace(v_min, v_max, atoms)
    dz = (v_max - v_min) / (atoms - 1)
    out = np.zeros((len(values), atoms))
    for b in range(len(values)):
        for v, p in zip(values[b], probs[b], strict=True):
            v = min(max(v, v_min), v_max)
            for i in range(atoms):
                out[b, i] += max(0.0, 1.0 - abs(v - z[i]) / dz) * p
    return out


def test_projection_matches_a_hand_computed_example():
    # Support {-1, 0, 1}; target r + γz with r = 0.5, γ = 0.5 over p = (0.2, 0.3, 0.5):
    # points 0 (→ atom 0), 0.5 (half to atoms 0 and 1) and 1 (→ atom 1).
    z = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    values = (0.5 + 0.5 * z)[None]
    probs = torch.tensor([[0.2, 0.3, 0.5]], dtype=torch.float64)
    out = project_onto_support(values, probs, -1.0, 1.0, 3)
    np.testing.assert_allclose(out.numpy(), [[0.0, 0.35, 0.65]], atol=1e-12)
    # Clipping at both ends, and a point a quarter of the way from atom 0 to atom 1.
    out = project_onto_support(
        torch.tensor([[5.0, -7.0, -0.75]], dtype=torch.float64),
        torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64),
        -1.0,
        1.0,
        3,
    )
    np.testing.assert_allclose(out.numpy(), [[0.25 + 0.1875, 0.0625, 0.5]], atol=1e-12)


@given(
    atoms=st.integers(2, 21),
    points=st.integers(1, 12),
    seed=st.integers(0, 2**31 - 1),
)
def test_projection_matches_brute_force_and_conserves_mass(atoms, points, seed):
    rng = np.random.default_rng(seed)
    values = rng.uniform(-15, 15, (4, points))
    values[:, 0] = np.linspace(-10, 10, atoms)[rng.integers(atoms)]  # exactly on an atom
    probs = rng.dirichlet(np.ones(points), size=4)
    out = project_onto_support(torch.tensor(values), torch.tensor(probs), -10.0, 10.0, atoms)
    np.testing.assert_allclose(
        out.numpy(), brute_force_projection(values, probs, -10.0, 10.0, atoms), atol=1e-12
    )
    np.testing.assert_allclose(out.sum(dim=1).numpy(), 1.0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Targets through the agent, against numpy / scipy formulas
# --------------------------------------------------------------------------------------------


def _batch(seed: int = 0, n: int = 6):
    g = torch.Generator().manual_seed(seed)
    obs, next_obs = torch.rand(n, 4, generator=g) * 2 - 1, torch.rand(n, 4, generator=g) * 2 - 1
    actions = torch.randint(0, 3, (n,), generator=g)
    returns = torch.randn(n, generator=g)
    discounts = torch.tensor([0.99, 0.0, 0.99**3, 0.99, 0.0, 0.99])[:n]
    return obs, actions, returns, next_obs, discounts


def _perturb(net: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.5)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def test_standard_and_double_targets():
    obs, actions, returns, next_obs, discounts = _batch()
    plain = make_agent()
    _perturb(plain.target, 1)
    q_next = _np(plain.target(next_obs))
    y = plain._targets(obs, actions, returns, next_obs, discounts)
    expected = _np(returns) + _np(discounts) * q_next.max(axis=1)
    np.testing.assert_allclose(_np(y), expected, rtol=1e-5)

    double = make_agent(double=True)
    _perturb(double.target, 1)
    chosen = _np(double.online(next_obs)).argmax(axis=1)
    q_next = _np(double.target(next_obs))
    y = double._targets(obs, actions, returns, next_obs, discounts)
    expected = _np(returns) + _np(discounts) * q_next[np.arange(6), chosen]
    np.testing.assert_allclose(_np(y), expected, rtol=1e-5)
    # The online net picks an action the target net does not rank first somewhere.
    assert (chosen != q_next.argmax(axis=1)).any()


@pytest.mark.parametrize("tau", [0.03, 1.0, 7.0])
def test_soft_and_munchausen_targets_match_scipy(tau):
    obs, actions, returns, next_obs, discounts = _batch(2)
    for kind in ("soft", "munchausen"):
        agent = make_agent(
            target=kind, soft_temperature=tau, munchausen_alpha=0.9, munchausen_clip=-1.0
        )
        _perturb(agent.target, 3)
        q_next, q_now = _np(agent.target(next_obs)), _np(agent.target(obs))
        soft_value = tau * scipy.special.logsumexp(q_next / tau, axis=1)
        expected = _np(returns) + _np(discounts) * soft_value
        if kind == "munchausen":
            log_pi = scipy.special.log_softmax(q_now / tau, axis=1)
            bonus = np.clip(tau * log_pi[np.arange(6), _np(actions).astype(int)], -1.0, 0.0)
            expected = expected + 0.9 * bonus
        y = agent._targets(obs, actions, returns, next_obs, discounts)
        np.testing.assert_allclose(_np(y), expected, rtol=1e-5, atol=1e-5)


def test_soft_value_is_the_entropy_regularised_expectation():
    q = np.random.default_rng(0).normal(size=(5, 4)) * 3
    for tau in (0.05, 1.0, 10.0):
        pi = scipy.special.softmax(q / tau, axis=1)
        regularised = (pi * (q - tau * np.log(pi))).sum(axis=1)
        np.testing.assert_allclose(
            tau * scipy.special.logsumexp(q / tau, axis=1), regularised, rtol=1e-10
        )


def test_munchausen_bonus_is_clipped_and_finite_when_the_policy_underflows():
    agent = make_agent(target="munchausen", soft_temperature=0.01, munchausen_clip=-1.0)
    with torch.no_grad():
        agent._target_flat.zero_()
        agent.target.head.bias.copy_(torch.tensor([0.0, -50.0, 0.0]))  # π(1) ≈ e^-5000
    obs, _, returns, next_obs, discounts = _batch(4, 3)
    y = agent._targets(obs, torch.tensor([1, 0, 2]), returns, next_obs, discounts)
    soft_next = 0.01 * np.log(2.0)  # two tied actions at 0, one at −50
    bonus = 0.9 * np.array([-1.0, 0.01 * np.log(0.5), 0.01 * np.log(0.5)])
    expected = _np(returns) + bonus + _np(discounts) * soft_next
    assert torch.isfinite(y).all()
    np.testing.assert_allclose(_np(y), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["standard", "double", "munchausen"])
def test_categorical_targets_match_brute_force(kind):
    cfg = {"head": "c51", "atoms": 11, "v_min": -3.0, "v_max": 3.0}
    if kind == "double":
        cfg["double"] = True
    elif kind == "munchausen":
        cfg.update(target="munchausen", soft_temperature=0.5)
    agent = make_agent(**cfg)
    _perturb(agent.target, 5)
    obs, actions, returns, next_obs, discounts = _batch(6)
    z = np.linspace(-3, 3, 11)
    p_next = scipy.special.softmax(_np(agent.target(next_obs)), axis=2)  # (B, A, K)
    q_next = p_next @ z
    r, d = _np(returns), _np(discounts)
    if kind == "munchausen":
        q_now = scipy.special.softmax(_np(agent.target(obs)), axis=2) @ z
        log_pi_now = scipy.special.log_softmax(q_now / 0.5, axis=1)
        r = r + 0.9 * np.clip(0.5 * log_pi_now[np.arange(6), _np(actions).astype(int)], -1, 0)
        log_pi = scipy.special.log_softmax(q_next / 0.5, axis=1)
        values = r[:, None, None] + d[:, None, None] * (z[None, None] - 0.5 * log_pi[:, :, None])
        probs = np.exp(log_pi)[:, :, None] * p_next
        values, probs = values.reshape(6, -1), probs.reshape(6, -1)
    else:
        chooser = q_next
        if kind == "double":
            chooser = scipy.special.softmax(_np(agent.online(next_obs)), axis=2) @ z
        best = chooser.argmax(axis=1)
        values = r[:, None] + d[:, None] * z[None]
        probs = p_next[np.arange(6), best]
    expected = brute_force_projection(values, probs, -3.0, 3.0, 11)
    got = agent._targets(obs, actions, returns, next_obs, discounts)
    np.testing.assert_allclose(_np(got), expected, atol=1e-5)


def test_categorical_loss_is_cross_entropy_from_logits():
    agent = make_agent(head="c51", atoms=5, v_min=-1.0, v_max=1.0)
    obs, actions, *_ = _batch(7)
    target = torch.softmax(torch.randn(6, 5), dim=1)
    out = agent.online(obs)
    loss, _ = agent._loss(out, actions, target)
    logits = _np(out)[np.arange(6), _np(actions).astype(int)]
    expected = -(_np(target) * scipy.special.log_softmax(logits, axis=1)).sum(axis=1).mean()
    assert loss.item() == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------


def test_dueling_head_is_identifiable_and_shaped():
    net = QNetwork(4, 3, [8], dueling=True)
    _perturb(net, 0)
    x = torch.randn(5, 4)
    q = net(x)
    assert q.shape == (5, 3)
    hidden = torch.relu(net.body[0](x))
    np.testing.assert_allclose(_np(q.mean(dim=1)), _np(net.value(hidden)[:, 0]), atol=1e-6)
    c51 = QNetwork(4, 3, [8], dueling=True, atoms=7)
    _perturb(c51, 1)
    logits = c51(x)
    assert logits.shape == (5, 3, 7)
    hidden = torch.relu(c51.body[0](x))
    np.testing.assert_allclose(_np(logits.mean(dim=1)), _np(c51.value(hidden)), atol=1e-6)


@pytest.mark.parametrize(
    ("activation", "dueling", "atoms"),
    list(
        itertools.product(["relu", "tanh", "elu", "silu", "leaky_relu"], [False, True], [None, 5])
    ),
)
def test_numpy_forward_matches_torch(activation, dueling, atoms):
    net = QNetwork(4, 3, [16, 8], activation, dueling=dueling, atoms=atoms)
    _perturb(net, 2)
    x = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32) * 3
    expected = net(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(NumpyForward(net)(x), expected, rtol=1e-5, atol=1e-5)


def test_numpy_forward_follows_parameter_updates():
    net = QNetwork(4, 2, [8])
    flatten_parameters(net)
    forward = NumpyForward(net)
    x = np.ones((1, 4), np.float32)
    before = forward(x).copy()
    with torch.no_grad():
        net.head.bias.add_(1.0)
    np.testing.assert_allclose(forward(x), before + 1.0, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Optimiser and target updates
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("max_norm", [None, 0.05])
def test_flat_adam_matches_torch_adam_with_clipping(fused, max_norm):
    torch.manual_seed(0)
    ours, ref = QNetwork(4, 3, [16, 16]), QNetwork(4, 3, [16, 16])
    ref.load_state_dict(ours.state_dict())
    flat, grads = flatten_parameters(ours)
    opt = FlatAdam(flat, grads, lr=0.01, eps=1e-6, fused=fused)
    ref_opt = torch.optim.Adam(ref.parameters(), lr=0.01, eps=1e-6)
    for step in range(20):
        x = torch.randn(8, 4)
        opt.zero_grad()
        ours(x).pow(2).mean().backward()
        scale = None
        if max_norm is not None:
            _, scale = clip_scale(grads, max_norm)
        opt.step(grad_scale=scale)
        ref_opt.zero_grad()
        ref(x).pow(2).mean().backward()
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_(ref.parameters(), max_norm)
        ref_opt.step()
        for a, b in zip(ours.parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"step {step}")


def test_hard_and_polyak_target_updates():
    hard = make_agent(tau=1.0)
    _perturb(hard.online, 0)
    hard.update_target()
    torch.testing.assert_close(hard._target_flat, hard._flat, rtol=0, atol=0)
    soft = make_agent(tau=0.1)
    before = soft._target_flat.clone()
    _perturb(soft.online, 0)
    soft.update_target()
    torch.testing.assert_close(soft._target_flat, 0.9 * before + 0.1 * soft._flat)
    assert soft.target_updates == 1


def test_k_polyak_updates_at_once_equal_k_in_a_row():
    """update_target(k) uses the closed form θ′ ← θ + (1 − τ)^k·(θ′ − θ)."""
    one, many = make_agent(tau=0.3), make_agent(tau=0.3)
    for agent in (one, many):
        _perturb(agent.online, 0)
    for _ in range(5):
        one.update_target()
    many.update_target(5)
    torch.testing.assert_close(many._target_flat, one._target_flat, rtol=1e-6, atol=1e-7)
    assert many.target_updates == one.target_updates == 5
    with pytest.raises(ValueError, match="at least 1"):
        many.update_target(0)


@pytest.mark.parametrize("num_envs", [1, 4, 16])
def test_polyak_target_after_a_fixed_number_of_steps_does_not_depend_on_num_envs(num_envs):
    """With the online network held fixed (no training yet), 48 environment steps with an
    update every 2 are 24 updates θ′ ← τθ + (1 − τ)θ′, however the steps are vectorised: a
    vector step of 16 environments crosses 8 intervals."""
    agent = make_agent(num_envs=num_envs, tau=0.1, target_update_interval=2, learning_starts=10**6)
    _perturb(agent.online, 0)
    theta, expected = _np(agent._flat), _np(agent._target_flat)
    assert np.abs(theta - expected).max() > 0.1
    for env_step in range(1, 49):  # brute force, one environment step at a time
        if env_step % 2 == 0:
            expected = 0.1 * theta + 0.9 * expected
    feed(agent, 48 // num_envs)
    assert agent.updates == 0 and agent.target_updates == 24
    np.testing.assert_allclose(_np(agent._target_flat), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("num_envs", [1, 4, 16])
def test_polyak_updates_while_training_match_a_step_by_step_simulation(num_envs):
    """Training moves the online network between vector steps. Each environment step that
    completes an interval applies one update with the online parameters of its vector step
    (taken before that step's gradient rounds, which run after the target update)."""
    agent = make_agent(
        num_envs=num_envs,
        tau=0.2,
        target_update_interval=3,
        learning_starts=8,
        train_freq=4,
        gradient_steps=1,
        lr=0.01,
    )
    _perturb(agent.online, 0)
    expected = _np(agent._target_flat)
    rng = np.random.default_rng(0)
    for t in range(0, 96, num_envs):
        theta = _np(agent._flat)
        for env_step in range(t + 1, t + num_envs + 1):
            if env_step % 3 == 0:
                expected = 0.2 * theta + 0.8 * expected
        obs, next_obs = (rng.uniform(-1, 1, (num_envs, 4)).astype(np.float32) for _ in "ab")
        actions, rewards = rng.integers(0, 3, num_envs), rng.normal(size=num_envs)
        ends = np.zeros(num_envs, dtype=bool)
        agent.observe(obs, actions, rewards, next_obs, ends, ends, t)
    assert agent.updates > 0 and agent.target_updates == 32
    np.testing.assert_allclose(_np(agent._target_flat), expected, rtol=1e-5, atol=1e-6)


def test_target_updates_and_training_follow_the_environment_step_cadence():
    agent = make_agent(num_envs=2, learning_starts=16, train_freq=4, gradient_steps=2)
    feed(agent, 20)  # 40 env steps: trains at 20, 24, ..., 40 → 6 rounds of 2 steps
    assert agent.updates == 12
    assert agent.target_updates == 2  # every 20 env steps: at 20 and 40


def test_training_restores_the_callers_subnormal_mode():
    """Training rounds flush subnormals to zero for speed, then restore the caller's mode:
    the flag also governs every later float operation of the thread."""
    tiny = np.nextafter(0.0, 1.0)  # 5e-324, a subnormal
    agent = make_agent()
    feed(agent, 20)
    assert agent.updates > 0
    assert tiny + tiny > 0.0 and float(np.float64(tiny) * 2.0) > 0.0  # still exact
    assert not denormals_flushed()
    # A caller that flushes subnormals itself keeps doing so after a training round.
    assert torch.set_flush_denormal(True), "this CPU cannot flush subnormals"
    try:
        assert denormals_flushed()
        updates = agent.updates
        feed(agent, 20, start=20)
        assert agent.updates > updates
        assert denormals_flushed()
        assert float(np.float64(tiny) * 2.0) == 0.0
    finally:
        torch.set_flush_denormal(False)
    assert not denormals_flushed() and tiny + tiny > 0.0


# --------------------------------------------------------------------------------------------
# Acting, options, spaces
# --------------------------------------------------------------------------------------------


def test_actions_are_batched_ints_and_greedy_evaluation_returns_one_int():
    agent = make_agent(num_envs=3)
    obs = np.zeros((3, 4), np.float32)
    actions = agent.act(obs, 0)
    assert actions.shape == (3,) and actions.dtype == np.int64
    assert isinstance(agent.act_greedy(np.zeros(4, np.float32)), int)
    c51 = make_agent(head="c51", atoms=5, policy=Boltzmann(1.0))
    q = c51.q_values(np.zeros((6, 4), np.float32))
    assert q.shape == (6, 3)
    logits = c51.online(torch.zeros(6, 4))
    expected = (torch.softmax(logits, -1) * c51.support).sum(-1)
    np.testing.assert_allclose(q, expected.detach().numpy(), rtol=1e-5, atol=1e-6)


# Every valid head × target × dueling × double combination; n-step and the loss alternate.
OPTIONS = [
    {"head": head, "target": target, "dueling": dueling, "double": double}
    for head, target, dueling, double in itertools.product(
        ["q", "c51"], ["standard", "soft", "munchausen", "mellowmax"], [False, True], [False, True]
    )
    if not (double and target != "standard")
]
for i, options in enumerate(OPTIONS):
    n_step_ok = options["target"] in ("standard", "mellowmax")
    options["n_step"] = 1 + 2 * (i % 2) if n_step_ok else 1
    options["loss"] = "mse" if i % 4 >= 2 else "huber"
    options["noisy"] = i % 3 == 0  # NoisyNet with a third of them, every head and target


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_every_option_combination_trains(options):
    agent = make_agent(
        **options, tau=0.5, lr={"type": "linear", "start": 1e-3, "end": 1e-4, "duration": 50}
    )
    feed(agent, 30)
    assert agent.updates > 0
    assert all(np.isfinite(v) for v in agent.metrics().values())
    assert torch.isfinite(agent._flat).all()


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="double applies to the standard"):
        DQNConfig(double=True, target="soft")
    for target in ("soft", "munchausen"):
        with pytest.raises(ValueError, match=f"n_step must be 1 with target '{target}'"):
            DQNConfig(n_step=3, target=target)
        assert DQNConfig(n_step=1, target=target).n_step == 1
    with pytest.raises(ValueError, match="v_min must be smaller"):
        DQNConfig(v_min=1.0, v_max=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        DQNConfig(batch_size=100, buffer_size=10)
    with pytest.raises(ValueError, match="lr"):
        DQNConfig(lr=0.0)
    from rlsoft.run.config import validate_config

    with pytest.raises(ConfigError, match=r"agent\.hidden_size.*did you mean 'hidden_sizes'"):
        validate_config(
            {"env": {"id": "CartPole-v1"}, "agent": {"type": "dqn", "hidden_size": [4]}}
        )


def test_discrete_observations_suggest_a_tabular_agent():
    with pytest.raises(RlsoftError, match=r"Box .*observation space.*tabular agent"):
        DQNAgent(
            observation_space=gym.spaces.Discrete(500),
            action_space=ACTIONS,
            policy=EpsilonGreedy(0.1),
            config=DQNConfig(),
            rng=np.random.default_rng(0),
        )


def test_continuous_actions_are_a_clear_error():
    with pytest.raises(RlsoftError, match=r"Discrete action space.*Box"):
        DQNAgent(
            observation_space=OBS,
            action_space=gym.spaces.Box(-2.0, 2.0, (1,)),
            policy=EpsilonGreedy(0.1),
            config=DQNConfig(),
            rng=np.random.default_rng(0),
        )


def test_cli_reports_unsupported_spaces_in_one_sentence(tmp_path, capsys):
    from rlsoft.cli import main

    for env_id, words in (("Taxi-v4", "tabular agent"), ("Pendulum-v1", "Discrete action space")):
        config = tmp_path / f"{env_id}.yaml"
        config.write_text(f"env: {{id: {env_id}}}\nagent: {{type: dqn}}\n")
        assert main(["train", str(config), "--logdir", str(tmp_path / "runs")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("rlsoft: error:") and words in err and "Traceback" not in err


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"head": "c51", "n_step": 3, "dueling": True},
        {"noisy": True, "dueling": True, "double": True},
        {"noisy": True, "head": "c51", "target": "mellowmax", "n_step": 2},
    ],
)
def test_save_load_round_trip_continues_identically(tmp_path, options):
    a = make_agent(
        seed=1, lr={"type": "linear", "start": 1e-3, "end": 0.0, "duration": 200}, **options
    )
    feed(a, 40, seed=5)
    a.save(tmp_path / "agent.pt")
    b = make_agent(
        seed=99, lr={"type": "linear", "start": 1e-3, "end": 0.0, "duration": 200}, **options
    )
    b.load(tmp_path / "agent.pt")
    assert b.metrics() == a.metrics()
    acts_a = feed(a, 40, seed=6, start=40)
    acts_b = feed(b, 40, seed=6, start=40)
    np.testing.assert_array_equal(np.concatenate(acts_a), np.concatenate(acts_b))
    torch.testing.assert_close(a._flat, b._flat, rtol=0, atol=0)
    torch.testing.assert_close(a._target_flat, b._target_flat, rtol=0, atol=0)
    assert a.act_greedy(np.zeros(4, np.float32)) == b.act_greedy(np.zeros(4, np.float32))
    assert not list(tmp_path.glob(".agent.pt.tmp*"))  # written through a temporary file


def test_loading_leaves_torchs_global_random_state_alone(tmp_path):
    """The agent draws nothing from torch's global generator, so a load must not reset the
    caller's (rlsoft.load in a notebook, an evaluation script seeding its own runs)."""
    torch.manual_seed(1)
    a = make_agent()
    feed(a, 20)
    a.save(tmp_path / "agent.pt")
    torch.manual_seed(2)
    torch.rand(3)
    before = torch.get_rng_state()
    b = make_agent(seed=5)
    b.load(tmp_path / "agent.pt")
    torch.testing.assert_close(torch.get_rng_state(), before, rtol=0, atol=0)
    feed(b, 20, start=20)  # neither does training
    torch.testing.assert_close(torch.get_rng_state(), before, rtol=0, atol=0)


def test_loading_into_a_different_network_is_refused(tmp_path):
    make_agent(hidden_sizes=[8]).save(tmp_path / "agent.pt")
    with pytest.raises(RlsoftError, match=r"different network.*hidden_sizes"):
        make_agent(hidden_sizes=[16]).load(tmp_path / "agent.pt")


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_malicious_pickle_is_refused_without_running_it(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "agent.pt"
    payload = {"format": "rlsoft.dqn/1", "online": _Evil(str(marker))}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as handle:
            pickle.dump(payload, handle)
    with pytest.raises(RlsoftError, match="refusing to load"):
        make_agent().load(path)
    assert not marker.exists()


def test_a_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "agent.pt"
    make_agent().save(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(RlsoftError, match="is corrupt or unreadable"):
        make_agent().load(path)


def test_torch_acting_path_matches_the_numpy_one():
    """Off the CPU the agent acts through torch; both paths give the same Q-values."""
    for options in ({}, {"head": "c51", "atoms": 7, "dueling": True}, {"noisy": True}):
        agent = make_agent(**options)
        _perturb(agent.online, 4)
        obs = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
        fast = agent.q_values(obs)
        agent._numpy_forward = None
        np.testing.assert_allclose(agent.q_values(obs), fast, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------
# rlsoft eval on a DQN run
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from rlsoft.run.config import validate_config
    from rlsoft.run.experiment import run_experiment

    root = tmp_path_factory.mktemp("dqn_eval")
    config = {
        "env": {"id": "CartPole-v1", "num_envs": 2},
        "agent": {"type": "dqn", **SMALL},
        "train": {"total_steps": 300, "eval_every": 0, "eval_episodes": 2, "progress": "off"},
        "logdir": str(root),
        "run_name": "tiny",
    }
    run_experiment(validate_config(config))
    return root / "tiny"


def test_eval_reports_mean_and_std_of_the_greedy_policy(tiny_run, capsys):
    from rlsoft.cli import main

    assert main(["eval", str(tiny_run), "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "mean return" in out and "±" in out and "over 3 episodes on CartPole-v1" in out


def test_eval_records_video_or_says_how_to_get_it(tiny_run, tmp_path, capsys, monkeypatch):
    import sys

    from rlsoft.cli import main

    pytest.importorskip("moviepy")
    pytest.importorskip("pygame")
    assert main(["eval", str(tiny_run), "--episodes", "1", "--video", str(tmp_path / "video")]) == 0
    assert list((tmp_path / "video").glob("*.mp4"))
    monkeypatch.setitem(sys.modules, "moviepy", None)  # as if the extra were not installed
    assert main(["eval", str(tiny_run), "--video", str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'rlsoft[video]'" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("activation", "dueling", "loss", "hidden"),
    [
        (act, dueling, loss, hidden)
        for act, dueling, loss, hidden in itertools.product(
            ["relu", "tanh", "elu", "leaky_relu"], [False, True], ["huber", "mse"], [[16, 8], []]
        )
    ],
)
def test_manual_gradients_equal_autograd(activation, dueling, loss, hidden):
    from agents.dqn.fastgrad import ManualGradient

    net = QNetwork(4, 3, hidden, activation, dueling=dueling)
    _perturb(net, 3)
    _, grads = flatten_parameters(net)
    obs, actions, *_ = _batch(8)
    y = torch.randn(6) * 3  # some |δ| > 1, some < 1: both branches of the Huber loss
    value, q_mean = ManualGradient(net, loss)(obs, actions, y)
    manual = grads.clone()
    grads.zero_()
    q_taken = net(obs).gather(1, actions.view(-1, 1)).squeeze(1)
    reference = (
        torch.nn.functional.smooth_l1_loss if loss == "huber" else torch.nn.functional.mse_loss
    )(q_taken, y)
    reference.backward()
    torch.testing.assert_close(manual, grads, rtol=1e-5, atol=1e-7)
    assert value.item() == pytest.approx(reference.item(), rel=1e-6)
    assert q_mean.item() == pytest.approx(q_taken.mean().item(), rel=1e-6)


def test_update_rule_matches_stable_baselines3():
    """The same data through SB3's DQN.train and through ours gives the same network: the
    benchmark compares the speed of one algorithm, not two (SB3 is a benchmark extra)."""
    sb3 = pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    env = gym.make("CartPole-v1")
    model = sb3.DQN(
        "MlpPolicy",
        env,
        learning_rate=2.3e-3,
        batch_size=16,
        policy_kwargs={"net_arch": [32, 32]},
        seed=0,
        device="cpu",
        max_grad_norm=10,
    )
    model.set_logger(configure(None, [""]))
    config = DQNConfig(
        hidden_sizes=[32, 32], lr=2.3e-3, batch_size=16, learning_starts=0, max_grad_norm=10.0
    )
    ours = DQNAgent(
        observation_space=env.observation_space,
        action_space=env.action_space,
        policy=EpsilonGreedy(0.0),
        config=config,
        rng=np.random.default_rng(0),
    )
    names = {"0": "body.0", "2": "body.1", "4": "head"}

    def renamed(state):
        return {f"{names[k.split('.')[0]]}.{k.split('.')[1]}": v for k, v in state.items()}

    ours.online.load_state_dict(renamed(model.q_net.q_net.state_dict()))
    ours.target.load_state_dict(renamed(model.q_net_target.q_net.state_dict()))
    rng = np.random.default_rng(0)
    steps, n = 10, 160
    obs, next_obs = (rng.normal(size=(n, 4)).astype(np.float32) for _ in range(2))
    actions, rewards = rng.integers(0, 2, n), (rng.normal(size=n) * 5).astype(np.float32)
    terminated = rng.random(n) < 0.2
    batches = iter(
        ReplayBufferSamples(
            *(torch.tensor(a[i * 16 : (i + 1) * 16]) for a in (obs,)),
            torch.tensor(actions[i * 16 : (i + 1) * 16]).view(-1, 1),
            torch.tensor(next_obs[i * 16 : (i + 1) * 16]),
            torch.tensor(terminated[i * 16 : (i + 1) * 16], dtype=torch.float32).view(-1, 1),
            torch.tensor(rewards[i * 16 : (i + 1) * 16]).view(-1, 1),
        )
        for i in range(steps)
    )
    model.replay_buffer.sample = lambda *args, **kwargs: next(batches)
    model.train(steps, 16)
    ours._sample = lambda _: {
        "obs": torch.tensor(obs),
        "actions": torch.tensor(actions),
        "returns": torch.tensor(rewards),
        "next_obs": torch.tensor(next_obs),
        "discounts": torch.tensor(np.where(terminated, 0.0, 0.99), dtype=torch.float32),
    }
    ours.train(steps, 0)
    for name, value in renamed(model.q_net.q_net.state_dict()).items():
        torch.testing.assert_close(ours.online.state_dict()[name], value, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# What the loss trains toward, on a tiny MDP run through the real vector-env driver, against
# targets computed by brute force from the environments' own record of what happened
# --------------------------------------------------------------------------------------------

TINY_ID = "rlsoft-test/TinyMDP-v0"
TINY_STATES, TINY_TERMINAL = 5, 4


class TinyMDP(gym.Env):
    """Five one-hot states (4 is terminal), three actions, random successors, episodes cut
    off (truncated) after ``limit`` steps. Every step is logged as
    ``(s, a, r, s′, terminated, truncated)``: the ground truth the brute force walks."""

    observation_space = gym.spaces.Box(0.0, 1.0, (TINY_STATES,), np.float32)
    action_space = gym.spaces.Discrete(3)

    def __init__(self, limit: int = 4) -> None:
        self.limit = limit
        self.log: list[tuple[int, int, float, int, bool, bool]] = []
        self.state, self.t = 0, 0

    def _obs(self, state: int) -> np.ndarray:
        return np.eye(TINY_STATES, dtype=np.float32)[state]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state, self.t = int(self.np_random.integers(0, TINY_TERMINAL)), 0
        return self._obs(self.state), {}

    def step(self, action):
        s, a = self.state, int(action)
        coin = int(self.np_random.random() < 0.5)
        nxt = (s + a + coin) % TINY_STATES
        reward = float(np.float32(np.sin(3.0 * s + a) + 0.25 * coin))  # as the replay stores it
        self.t += 1
        terminated = nxt == TINY_TERMINAL
        truncated = not terminated and self.t >= self.limit
        self.log.append((s, a, reward, nxt, terminated, truncated))
        self.state = nxt
        return self._obs(nxt), reward, terminated, truncated, {}


if TINY_ID not in gym.envs.registry:
    gym.register(id=TINY_ID, entry_point=TinyMDP)


class TargetRecorder:
    """Wraps a DQN agent to record what each gradient step trains toward: the replay indices
    of a round's rows, the target network's outputs on every state at the start of the round
    (it is fixed during a round), and per step the target ``y`` the loss received, the
    actions, and the online network's outputs on every state at that moment (Double DQN)."""

    def __init__(self, agent: DQNAgent) -> None:
        self.rounds: list[dict] = []
        self._states = torch.eye(TINY_STATES)
        sample_indices = agent.buffer.sample_indices

        def recording_sample(rng, n):
            idx = sample_indices(rng, n)
            with torch.no_grad():
                table = _np(agent.target(self._states))
            stored = agent.buffer.pos  # rows written so far (the test's buffer never wraps)
            self.rounds.append({"idx": idx.copy(), "stored": stored, "target": table, "steps": []})
            return idx

        agent.buffer.sample_indices = recording_sample
        manual, loss = agent._manual_gradient, agent._loss

        def record(actions, y):
            with torch.no_grad():
                online = _np(agent.online(self._states))
            self.rounds[-1]["steps"].append((_np(actions).astype(int), _np(y), online))

        if manual is not None:

            def recording_manual(obs, actions, y):
                record(actions, y)
                return manual(obs, actions, y)

            agent._manual_gradient = recording_manual

        def recording_loss(out, actions, y):
            record(actions, y)
            return loss(out, actions, y)

        agent._loss = recording_loss


def brute_force_return(stream, start, stored, n, gamma):
    """Walk one environment's log from ``start``: (G, bootstrap discount, s′, why it ended),
    stopping at a termination (discount 0), a truncation, n rewards or the newest stored
    transition."""
    total, k, j = 0.0, 0, start
    while True:
        _, _, reward, nxt, terminated, truncated = stream[j]
        total += gamma**k * reward
        k += 1
        if terminated:
            return total, 0.0, nxt, "terminated"
        if truncated:
            return total, gamma**k, nxt, "truncated"
        if k == n:
            return total, gamma**k, nxt, "n rewards"
        if j + 1 >= stored:
            return total, gamma**k, nxt, "newest"
        j += 1


def soft_value(q_row, tau):
    """τ·log Σ_a exp(q_a/τ) in 50-digit arithmetic."""
    mpmath.mp.dps = 50
    return float(tau * mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(q) / tau) for q in q_row)))


def brute_force_softmax(row):
    """softmax over a 1-d sequence in 50-digit arithmetic."""
    mpmath.mp.dps = 50
    weights = [mpmath.exp(mpmath.mpf(float(v))) for v in row]
    total = mpmath.fsum(weights)
    return [float(w / total) for w in weights]


def mellowmax(q_row, omega):
    """log((1/n) Σ_a exp(ω·q_a))/ω (Asadi & Littman, 2017) in 50-digit arithmetic."""
    mpmath.mp.dps = 50
    total = mpmath.fsum(mpmath.exp(omega * mpmath.mpf(float(q))) for q in q_row)
    return float(mpmath.log(total / len(q_row)) / omega)


def brute_force_target(kind, head, tables, s, a, ret, disc, nxt, cfg, counts):
    """The target of one transition, by the formulas of the papers, with explicit loops."""
    target, online = tables
    tau, alpha, l0 = cfg["soft_temperature"], cfg["munchausen_alpha"], cfg["munchausen_clip"]
    if kind == "mellowmax":
        tau = 1.0 / cfg["mellowmax_omega"]
    actions = range(target.shape[1])
    if head == "c51":
        z = np.linspace(cfg["v_min"], cfg["v_max"], cfg["atoms"])
        p_next = [brute_force_softmax(target[nxt, b]) for b in actions]
        q_next = [sum(p * zi for p, zi in zip(p_next[b], z, strict=True)) for b in actions]
        q_now = [
            sum(p * zi for p, zi in zip(brute_force_softmax(target[s, b]), z, strict=True))
            for b in actions
        ]
    else:
        q_next, q_now = list(target[nxt]), list(target[s])
    if kind == "munchausen":
        scaled_log_pi = q_now[a] - soft_value(q_now, tau)  # τ·log π̄(a|s)
        counts["clipped" if scaled_log_pi < l0 else "unclipped"] += 1
        ret = ret + alpha * min(max(scaled_log_pi, l0), 0.0)
    if head == "q":
        if kind == "standard":
            return ret + disc * max(q_next)
        if kind == "double":
            best = max(actions, key=lambda b: online[nxt, b])
            return ret + disc * q_next[best]
        if kind == "mellowmax":
            return ret + disc * mellowmax(q_next, cfg["mellowmax_omega"])
        return ret + disc * soft_value(q_next, tau)
    points, masses = [], []
    if kind in ("standard", "double"):
        chooser = q_next
        if kind == "double":
            p_online = [brute_force_softmax(online[nxt, b]) for b in actions]
            chooser = [sum(p * zi for p, zi in zip(p_online[b], z, strict=True)) for b in actions]
        best = max(actions, key=lambda b: chooser[b])
        for i, zi in enumerate(z):
            points.append(ret + disc * zi)
            masses.append(p_next[best][i])
    else:  # the π̄-mixture of z − τ·log π̄(b|s′) (mellowmax: − τ·log n too) over next actions b
        value = soft_value(q_next, tau)
        shift = tau * np.log(len(actions)) if kind == "mellowmax" else 0.0
        for b in actions:
            log_pi = (q_next[b] - value) / tau
            for i, zi in enumerate(z):
                points.append(ret + disc * (zi - tau * log_pi - shift))
                masses.append(np.exp(log_pi) * p_next[b][i])
    return brute_force_projection([points], [masses], cfg["v_min"], cfg["v_max"], cfg["atoms"])[0]


TARGET_CASES = [
    ("standard", "q", 1, 1),
    ("standard", "q", 3, 3),
    ("double", "q", 3, 2),
    ("soft", "q", 1, 3),
    ("munchausen", "q", 1, 3),
    ("standard", "c51", 3, 3),
    ("double", "c51", 2, 2),
    ("soft", "c51", 1, 2),
    ("munchausen", "c51", 1, 2),
    ("mellowmax", "q", 3, 2),
    ("mellowmax", "c51", 2, 3),
]


@pytest.mark.parametrize(("kind", "head", "n_step", "num_envs"), TARGET_CASES, ids=lambda v: str(v))
def test_the_loss_trains_toward_the_brute_force_target(kind, head, n_step, num_envs):
    """Every target the agent supports, as the loss receives it during real training on
    vector environments with same-step autoreset, against a brute-force computation from
    the environments' own logs: n-step returns that stop at terminations (no bootstrap),
    truncations (bootstrap from the final observation, not the next episode's first) and
    the newest stored transition."""
    from rlsoft.run.config import validate_config
    from rlsoft.run.experiment import build_driver

    agent_cfg = {
        "hidden_sizes": [8],
        "head": head,
        "atoms": 7,
        "v_min": -2.0,
        "v_max": 2.0,
        "gamma": 0.9,
        "n_step": n_step,
        "target": "standard" if kind == "double" else kind,
        "double": kind == "double",
        "soft_temperature": 0.3,
        "munchausen_alpha": 0.9,
        "munchausen_clip": -0.5,
        "mellowmax_omega": 2.5,
        "lr": 0.01,
        "batch_size": 16,
        "buffer_size": 1024,
        "learning_starts": 24,
        "train_freq": 6,
        "gradient_steps": 2,
        "target_update_interval": 10**6,  # the target stays the perturbed network below
    }
    config = validate_config(
        {
            "env": {"id": TINY_ID, "num_envs": num_envs},
            "agent": {"type": "dqn", **agent_cfg},
            "exploration": {"policy": "epsilon_greedy", "epsilon": 0.5},
            "device": "cpu",
        }
    )
    driver = build_driver(config)
    agent = driver.agent
    _perturb(agent.target, 11)  # target ≠ online, and Q-values spread enough to clip
    _perturb(agent.online, 12)
    recorder = TargetRecorder(agent)
    driver.advance(150, 0)
    logs = [env.unwrapped.log for env in driver.env.envs]
    driver.env.close()
    counts = collections.Counter()
    checked = 0
    for round_ in recorder.rounds:
        idx, stored = round_["idx"], round_["stored"]
        assert round_["steps"], "every sampled round reaches the loss"
        for step, (actions, y, online) in enumerate(round_["steps"]):
            rows = idx[step * 16 : (step + 1) * 16]
            for i, flat in enumerate(rows):
                stream = logs[flat % num_envs]
                start = flat // num_envs
                s, a = stream[start][:2]
                assert actions[i] == a  # the recorded indices are the rows the loss saw
                ret, disc, nxt, why = brute_force_return(stream, start, stored, n_step, 0.9)
                counts[why] += 1
                expected = brute_force_target(
                    kind, head, (round_["target"], online), s, a, ret, disc, nxt, agent_cfg, counts
                )
                np.testing.assert_allclose(y[i], expected, rtol=1e-5, atol=2e-5)
                checked += 1
    assert checked >= 300
    # Every way a return can end occurred (so each was checked).
    assert counts["terminated"] and counts["truncated"]
    if n_step > 1:
        assert counts["n rewards"] and counts["newest"]
    if kind == "munchausen":
        assert counts["clipped"] and counts["unclipped"]


def test_non_finite_inputs_are_named_instead_of_divergence():
    """Q-values that are not numbers are a divergence only when the inputs were finite: an
    observation acted on, an observation or a reward in the replay that is NaN or infinite
    is named instead (ε = 0: every step computes Q-values)."""
    from rlsoft.errors import DivergedError

    agent = make_agent(policy=EpsilonGreedy(0.0))
    feed(agent, 4)
    obs = np.zeros((2, 4), np.float32)
    obs[1, 2] = np.inf
    with (
        np.errstate(invalid="ignore"),  # inf − inf inside the product, as the message says
        pytest.raises(RlsoftError, match=r"^the environment gave an observation containing an "),
    ):
        agent.act(obs, 100)
    obs[1, 2] = np.nan
    with pytest.raises(RlsoftError, match=r"an observation containing NaN, so the Q-values"):
        agent.act_greedy(obs[1])
    finite = np.zeros((2, 4), np.float32)
    agent.act(finite, 100)  # inputs blamed only when the Q-values are not numbers
    agent.buffer.rewards[3] = np.nan  # a stored reward, then parameters trained into NaN
    with torch.no_grad():
        agent.online.head.weight.fill_(np.nan)
    with pytest.raises(RlsoftError, match=r"^the environment gave a reward of NaN"):
        agent.act(finite, 100)
    agent.buffer.rewards[3] = 0.0  # finite inputs: a divergence, as before
    with pytest.raises(DivergedError):
        agent.act(finite, 100)
