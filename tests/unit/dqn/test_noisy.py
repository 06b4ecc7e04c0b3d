"""NoisyNet (Fortunato et al., 2018): the layer against its formula, its initialisation, the
noise cadence of the agent, evaluation on the mean weights, and gradients."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import scipy.stats
import torch
from torch.func import functional_call

from agents.dqn import DQNAgent, DQNConfig
from agents.dqn.networks import QNetwork
from agents.dqn.noisy import NoiseSource, NoisyLinear, mean_abs_sigma, noisy_layers
from rlsoft.explore.policies import Greedy

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
    "noisy": True,
}


def make_agent(seed: int = 0, num_envs: int = 2, **overrides) -> DQNAgent:
    return DQNAgent(
        observation_space=OBS,
        action_space=ACTIONS,
        policy=Greedy(),
        config=DQNConfig(**{**SMALL, **overrides}),
        rng=np.random.default_rng(seed),
        torch_seed=seed,
        num_envs=num_envs,
    )


def feed(agent: DQNAgent, vector_steps: int, seed: int = 0, start: int = 0) -> None:
    rng = np.random.default_rng(seed)
    n = agent.num_envs
    for t in range(start, start + vector_steps):
        obs = rng.uniform(-1, 1, (n, 4)).astype(np.float32)
        a = agent.act(obs, t * n)
        nxt = rng.uniform(-1, 1, (n, 4)).astype(np.float32)
        done = rng.random(n) < 0.05
        agent.observe(obs, a, rng.normal(size=n), nxt, done, np.zeros(n, bool), t * n)


def f(x: np.ndarray) -> np.ndarray:
    """The paper's f(x) = sgn(x)·√|x|."""
    return np.sign(x) * np.sqrt(np.abs(x))


# --------------------------------------------------------------------------------------------
# The layer
# --------------------------------------------------------------------------------------------


def test_forward_is_the_factorised_formula_and_without_noise_the_mean_layer():
    torch.manual_seed(0)
    layer = NoisyLinear(5, 3, sigma0=0.7)
    with torch.no_grad():
        layer.weight_sigma.normal_()  # σ unlike its constant initialisation
        layer.bias_sigma.normal_()
    x = torch.randn(4, 5)
    mu_w, sig_w = layer.weight_mu.detach().numpy(), layer.weight_sigma.detach().numpy()
    mu_b, sig_b = layer.bias_mu.detach().numpy(), layer.bias_sigma.detach().numpy()
    np.testing.assert_allclose(layer(x).detach().numpy(), x.numpy() @ mu_w.T + mu_b, rtol=1e-6)

    layer.sample_noise(torch.Generator().manual_seed(42))
    g = torch.Generator().manual_seed(42)  # the same draws: p inputs, then q outputs
    eps_in, eps_out = torch.randn(5, generator=g).numpy(), torch.randn(3, generator=g).numpy()
    w = mu_w + sig_w * np.outer(f(eps_out), f(eps_in))
    b = mu_b + sig_b * f(eps_out)
    np.testing.assert_allclose(layer(x).detach().numpy(), x.numpy() @ w.T + b, rtol=1e-5)
    # The same sample for every row of the batch.
    np.testing.assert_allclose(
        layer(x[2:3]).detach().numpy(), layer(x).detach().numpy()[2:3], rtol=1e-6
    )


def test_initialisation_follows_the_paper():
    """μ ~ U[−1/√p, 1/√p], σ = σ0/√p (Fortunato et al., 2018, §3.2)."""
    torch.manual_seed(1)
    p, q = 400, 300
    layer = NoisyLinear(p, q)
    bound = 1 / math.sqrt(p)
    mu = layer.weight_mu.detach().numpy().ravel()
    assert np.abs(mu).max() <= bound
    assert scipy.stats.kstest(mu, scipy.stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3
    bias = layer.bias_mu.detach().numpy()
    assert scipy.stats.kstest(bias, scipy.stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3
    np.testing.assert_allclose(layer.weight_sigma.detach().numpy(), 0.5 / math.sqrt(p))
    np.testing.assert_allclose(layer.bias_sigma.detach().numpy(), 0.5 / math.sqrt(p))
    assert NoisyLinear(16, 2, sigma0=0.1).weight_sigma[0, 0].item() == pytest.approx(0.1 / 4)


def test_noise_is_factorised_gaussian():
    """ε_in, ε_out are standard normal; the weight noise ε_w = f(ε_out)f(ε_in)ᵀ has mean 0 and
    variance E|ε|² = 2/π per entry."""
    layer = NoisyLinear(50, 40)
    source = NoiseSource(3)
    samples, eps = [], []
    for _ in range(400):
        source.sample(layer)
        f_in, f_out = layer.noise
        samples.append(torch.outer(f_out, f_in).numpy())
        eps += [(f.sign() * f.square()).numpy() for f in (f_in, f_out)]  # f⁻¹(f(ε)) = ε
    assert scipy.stats.kstest(np.concatenate(eps), "norm").pvalue > 1e-3
    w = np.stack(samples)
    assert abs(w.mean()) < 0.01
    assert w.var() == pytest.approx(2 / math.pi, rel=0.03)
    # Rank one per sample, as factorised noise is.
    assert np.linalg.matrix_rank(w[0]) == 1


def test_gradients_pass_gradcheck_in_float64():
    layer = NoisyLinear(4, 3).double()
    layer.sample_noise(torch.Generator().manual_seed(5))
    layer.noise = tuple(t.double() for t in layer.noise)
    names = ("weight_mu", "weight_sigma", "bias_mu", "bias_sigma")
    params = [getattr(layer, n).detach().clone().requires_grad_(True) for n in names]
    with torch.no_grad():
        params[1].normal_()
        params[3].normal_()
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)

    def run(x, *values):
        return functional_call(layer, dict(zip(names, values, strict=True)), (x,))

    assert torch.autograd.gradcheck(run, (x, *params))
    # And σ's gradient is the mean weights' times the noise: ∂L/∂σ_w = (∂L/∂w) ⊙ ε_w.
    out = run(x, *params)
    upstream = torch.randn_like(out)
    out.backward(upstream)
    f_in, f_out = layer.noise
    d_w = upstream.T @ x.detach()
    torch.testing.assert_close(params[0].grad, d_w)
    torch.testing.assert_close(params[1].grad, d_w * torch.outer(f_out, f_in))
    torch.testing.assert_close(params[3].grad, upstream.sum(0) * f_out)


def test_every_linear_layer_of_the_network_is_noisy_dueling_streams_included():
    net = QNetwork(4, 3, [8, 8], dueling=True, noisy_sigma0=0.5)
    names = [n for n, m in net.named_modules() if isinstance(m, NoisyLinear)]
    assert names == ["body.0", "body.1", "value", "advantage"]
    assert not any(isinstance(m, torch.nn.Linear) for m in net.modules())


# --------------------------------------------------------------------------------------------
# The agent: cadence, independence, evaluation on μ, metrics, checkpoints
# --------------------------------------------------------------------------------------------


class NoiseLog:
    """Records, per draw of the agent's noise source, which network it was for and the
    noise vectors it set."""

    def __init__(self, agent: DQNAgent) -> None:
        self.draws: list[tuple[str, list[np.ndarray]]] = []
        sample = agent._noise.sample
        which = {id(agent.online): "online", id(agent.target): "target"}

        def recording(net):
            sample(net)
            vectors = [t.numpy().copy() for m in noisy_layers(net) for t in m.noise]
            self.draws.append((which[id(net)], vectors))

        agent._noise.sample = recording

    def take(self) -> list[tuple[str, list[np.ndarray]]]:
        out, self.draws = self.draws, []
        return out


def test_noise_is_resampled_per_environment_per_step_and_per_minibatch():
    agent = make_agent(num_envs=3, learning_starts=0, train_freq=3, gradient_steps=4)
    log = NoiseLog(agent)
    obs = np.zeros((3, 4), np.float32)
    agent.act(obs, 0)
    draws = log.take()
    assert [w for w, _ in draws] == ["online"] * 3  # one sample per environment copy
    assert not np.array_equal(draws[0][1][0], draws[1][1][0])
    # A round of 4 gradient steps: a fresh online and target sample for each minibatch.
    agent.observe(obs, np.zeros(3, np.int64), np.ones(3), obs, np.zeros(3, bool), False, 0)
    draws = log.take()
    assert [w for w, _ in draws] == ["online", "target"] * 4
    vectors = [np.concatenate(v) for _, v in draws]
    for i in range(len(vectors)):
        for j in range(i):
            assert not np.array_equal(vectors[i], vectors[j])  # independent draws
    # Between steps the networks are back on their mean weights.
    assert all(m.noise is None for net in (agent.online, agent.target) for m in noisy_layers(net))


def test_acting_is_greedy_on_the_noisy_q_values_of_that_step():
    agent = make_agent(num_envs=1)
    with torch.no_grad():  # large σ: the noise changes the greedy action often
        for m in noisy_layers(agent.online):
            m.weight_sigma.fill_(1.0)
            m.bias_sigma.fill_(1.0)
    obs = np.full((1, 4), 0.3, np.float32)
    layers = noisy_layers(agent.online)
    actions, expected = [], []
    for step in range(60):
        state = agent._noise.generator.get_state()
        actions.append(int(agent.act(obs, step)[0]))
        g = torch.Generator()
        g.set_state(state)
        replayed = []  # the draws the agent made: per layer p inputs, then q outputs
        for m in layers:
            mean_and_sigma = (m.weight_mu, m.weight_sigma, m.bias_mu, m.bias_sigma)
            params = [t.detach().double().numpy() for t in mean_and_sigma]
            eps_in = torch.randn(m.in_features, generator=g).double().numpy()
            eps_out = torch.randn(m.out_features, generator=g).double().numpy()
            replayed.append((*params, f(eps_in), f(eps_out)))
        x = _explicit_forward(replayed, obs.astype(np.float64))
        expected.append(int(np.argmax(x[0])))
    assert actions == expected
    assert len(set(actions)) > 1  # the noise explores


def test_evaluation_and_q_values_use_the_mean_weights_and_draw_no_noise():
    agent = make_agent(dueling=True)
    feed(agent, 30)
    obs = np.random.default_rng(2).uniform(-1, 1, (7, 4)).astype(np.float32)
    state = agent._noise.generator.get_state()
    x = obs.astype(np.float64)
    sd = {k: v.double().numpy() for k, v in agent.online.state_dict().items()}
    for i in range(2):
        x = np.maximum(x @ sd[f"body.{i}.weight_mu"].T + sd[f"body.{i}.bias_mu"], 0.0)
    v = x @ sd["value.weight_mu"].T + sd["value.bias_mu"]
    a = x @ sd["advantage.weight_mu"].T + sd["advantage.bias_mu"]
    expected = v + a - a.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(agent.q_values(obs), expected, rtol=1e-5, atol=1e-6)
    agent._numpy_forward = None  # the torch path (off the CPU) agrees
    np.testing.assert_allclose(agent.q_values(obs), expected, rtol=1e-5, atol=1e-6)
    assert [agent.act_greedy(o) for o in obs] == list(expected.argmax(axis=1))
    assert torch.equal(agent._noise.generator.get_state(), state)


def _snapshot(net: torch.nn.Module) -> list[tuple[np.ndarray, ...]]:
    """(μ_w, σ_w, μ_b, σ_b, f(ε_in), f(ε_out)) of every noisy layer, in float64."""
    out = []
    for m in noisy_layers(net):
        assert m.noise is not None, "a noise sample is set while the targets are computed"
        tensors = (m.weight_mu, m.weight_sigma, m.bias_mu, m.bias_sigma, *m.noise)
        out.append(tuple(t.detach().double().numpy().copy() for t in tensors))
    return out


def _explicit_forward(layers: list[tuple[np.ndarray, ...]], x: np.ndarray) -> np.ndarray:
    """The relu MLP with w = μ_w + σ_w ⊙ f(ε_out)f(ε_in)ᵀ, b = μ_b + σ_b ⊙ f(ε_out)."""
    for k, (mu_w, sig_w, mu_b, sig_b, f_in, f_out) in enumerate(layers):
        x = x @ (mu_w + sig_w * np.outer(f_out, f_in)).T + mu_b + sig_b * f_out
        if k < len(layers) - 1:
            x = np.maximum(x, 0.0)
    return x


@pytest.mark.parametrize("double", [False, True])
def test_noisy_targets_use_the_target_networks_own_sample_per_minibatch(double):
    """What the loss trains toward, recomputed from the noise set at that moment: y = G +
    d·max_a′ Q̄(s′, a′; ξ″) with the target network's own sample ξ″, or with Double DQN
    Q̄(s′, argmax_a′ Q(s′, a′; ξ′); ξ″) with the online sample ξ′ that the loss also uses
    (Fortunato et al., 2018, Algorithm 1)."""
    agent = make_agent(learning_starts=0, double=double, target_update_interval=10**6)
    with torch.no_grad():
        for p in agent.target.parameters():  # target ≠ online
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.3)
    records = []
    targets, loss = agent._targets, agent._loss

    def recording_targets(obs, actions, returns, next_obs, discounts):
        y = targets(obs, actions, returns, next_obs, discounts)
        batch = [t.detach().double().numpy().copy() for t in (returns, next_obs, discounts)]
        records.append({"batch": batch, "y": y.double().numpy().copy()})
        records[-1]["target"] = _snapshot(agent.target)
        records[-1]["online"] = _snapshot(agent.online)
        return y

    def recording_loss(out, actions, y):
        records[-1]["loss_online"] = _snapshot(agent.online)
        return loss(out, actions, y)

    agent._targets, agent._loss = recording_targets, recording_loss
    feed(agent, 12)
    assert len(records) == agent.updates > 4
    for record in records:
        returns, next_obs, discounts = record["batch"]
        q_bar = _explicit_forward(record["target"], next_obs)
        if double:
            best = _explicit_forward(record["online"], next_obs).argmax(axis=1)
            value = q_bar[np.arange(len(best)), best]
        else:
            value = q_bar.max(axis=1)
        np.testing.assert_allclose(record["y"], returns + discounts * value, rtol=1e-5, atol=1e-5)
        # The loss's forward pass ran with the same online sample as the targets.
        for a, b in zip(record["online"], record["loss_online"], strict=True):
            np.testing.assert_array_equal(a[4], b[4])
            np.testing.assert_array_equal(a[5], b[5])
        # Online and target samples are independent draws.
        assert not np.array_equal(record["online"][0][4], record["target"][0][4])
    noise = [r["target"][0][4] for r in records]
    assert all(not np.array_equal(noise[i], noise[i + 1]) for i in range(len(noise) - 1))


def test_noise_sigma_metric_is_the_mean_absolute_sigma():
    agent = make_agent()
    feed(agent, 20)
    sigmas = np.concatenate(
        [
            t.detach().numpy().ravel()
            for m in noisy_layers(agent.online)
            for t in (m.weight_sigma, m.bias_sigma)
        ]
    )
    metrics = agent.metrics()
    assert metrics["exploration/noise_sigma"] == pytest.approx(np.abs(sigmas).mean(), rel=1e-6)
    assert mean_abs_sigma(agent.online) == pytest.approx(np.abs(sigmas).mean(), rel=1e-6)
    assert "exploration/noise_sigma" not in make_agent(noisy=False).metrics()
    # σ is learnt: it moved from its initial σ0/√p.
    for m in noisy_layers(agent.online):
        initial = 0.5 / math.sqrt(m.in_features)
        assert not np.allclose(m.weight_sigma.detach().numpy(), initial, rtol=1e-6, atol=0)


def test_the_noise_generator_is_seeded_checkpointed_and_leaves_torch_alone(tmp_path):
    torch.manual_seed(7)
    before = torch.get_rng_state()
    a = make_agent(seed=3)
    feed(a, 25)
    torch.testing.assert_close(torch.get_rng_state(), before, rtol=0, atol=0)
    a.save(tmp_path / "agent.pt")
    b = make_agent(seed=4)
    b.load(tmp_path / "agent.pt")
    assert torch.equal(a._noise.generator.get_state(), b._noise.generator.get_state())
    obs = np.random.default_rng(0).uniform(-1, 1, (2, 4)).astype(np.float32)
    np.testing.assert_array_equal(a.act(obs, 50), b.act(obs, 50))
    # The same seed draws the same noise; another seed other noise.
    c, d = make_agent(seed=3), make_agent(seed=5)
    assert torch.equal(
        c._noise.generator.get_state(), make_agent(seed=3)._noise.generator.get_state()
    )
    assert not torch.equal(c._noise.generator.get_state(), d._noise.generator.get_state())


def test_a_plain_checkpoint_is_refused_by_a_noisy_agent(tmp_path):
    from rlsoft.errors import RlsoftError

    make_agent(noisy=False).save(tmp_path / "agent.pt")
    with pytest.raises(RlsoftError, match=r"different network \(noisy=False\)"):
        make_agent().load(tmp_path / "agent.pt")


def test_config_refuses_a_nonpositive_sigma0():
    for bad in (0.0, -0.5, math.inf):
        with pytest.raises(ValueError, match="noisy_sigma0"):
            DQNConfig(noisy=True, noisy_sigma0=bad)
