"""Bootstrapped DQN with randomized prior functions, checked against independent references:
a numpy forward pass and brute-force losses and targets written here, the binomial and χ²
laws of the masks and head draws, and the papers' formulas."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import scipy.stats
import torch
from pydantic import ValidationError

from agents.dqn import DQNAgent, DQNConfig
from agents.dqn.ensemble import EnsembleQNetwork
from rlsoft.explore.policies import EpsilonGreedy, Greedy

OBS_DIM, N_ACTIONS = 4, 3
OBS = gym.spaces.Box(-1.0, 1.0, (OBS_DIM,), np.float32)
ACTIONS = gym.spaces.Discrete(N_ACTIONS)
SMALL = {
    "hidden_sizes": [16, 16],
    "batch_size": 8,
    "buffer_size": 512,
    "learning_starts": 16,
    "train_freq": 2,
    "gradient_steps": 2,
    "target_update_interval": 20,
}


def make_agent(
    ensemble: dict | None = None, seed: int = 0, num_envs: int = 2, policy=None, **overrides
) -> DQNAgent:
    config = DQNConfig(**{**SMALL, "ensemble": {"heads": 5, **(ensemble or {})}, **overrides})
    return DQNAgent(
        observation_space=OBS,
        action_space=ACTIONS,
        policy=policy or Greedy(),
        config=config,
        rng=np.random.default_rng(seed),
        torch_seed=seed,
        num_envs=num_envs,
    )


def feed(agent: DQNAgent, vector_steps: int, seed: int = 0, start: int = 0, done_p: float = 0.1):
    """A reproducible random transition stream; returns the actions and the episode ends."""
    rng = np.random.default_rng(seed)
    n = agent.num_envs
    actions, dones = [], []
    for t in range(start, start + vector_steps):
        obs = rng.uniform(-1, 1, (n, OBS_DIM)).astype(np.float32)
        a = agent.act(obs, t * n)
        terminated, truncated = rng.random(n) < done_p / 2, rng.random(n) < done_p / 2
        agent.observe(
            obs,
            a,
            rng.normal(size=n),
            rng.uniform(-1, 1, (n, OBS_DIM)).astype(np.float32),
            terminated,
            truncated,
            t * n,
        )
        actions.append(a)
        dones.append(terminated | truncated)
    return actions, dones


# --------------------------------------------------------------------------------------------
# An independent forward pass: the MLPs written out in numpy from the state dict
# --------------------------------------------------------------------------------------------


def numpy_members(state: dict, prefix: str, x: np.ndarray, heads: int, cfg: dict) -> np.ndarray:
    """``(B, K, A)`` of one ``_EnsembleMLP`` (``prefix`` members or prior), head by head."""
    w = {
        k.removeprefix(prefix): v.double().numpy() for k, v in state.items() if k.startswith(prefix)
    }
    layers = len(cfg["hidden_sizes"])
    out = []
    for k in range(heads):
        h = x.astype(np.float64)
        for i in range(layers):
            weight, bias = w[f"torso{i}_weight"], w[f"torso{i}_bias"]
            if not cfg.get("shared_torso", False):
                weight, bias = weight[k], bias[k, 0]
            h = np.maximum(h @ weight + bias, 0.0)
        if cfg.get("dueling", False):
            value = h @ w["value_weight"][k] + w["value_bias"][k, 0]
            adv = h @ w["advantage_weight"][k] + w["advantage_bias"][k, 0]
            out.append(value + adv - adv.mean(axis=1, keepdims=True))
        else:
            out.append(h @ w["q_weight"][k] + w["q_bias"][k, 0])
    return np.stack(out, axis=1)


def numpy_q(net: EnsembleQNetwork, x: np.ndarray, cfg: dict) -> np.ndarray:
    """Q_k = f_θk + β·p_k in float64 numpy."""
    state = net.state_dict()
    q = numpy_members(state, "members.", x, net.heads, cfg)
    if net.prior is not None:
        q = q + net.prior_scale * numpy_members(state, "prior.", x, net.heads, cfg)
    return q


NETWORKS = [
    {"hidden_sizes": [8, 8], "shared_torso": False, "dueling": False, "prior_scale": 3.0},
    {"hidden_sizes": [8], "shared_torso": True, "dueling": True, "prior_scale": 0.5},
    {"hidden_sizes": [8, 6], "shared_torso": True, "dueling": False, "prior_scale": 0.0},
]


def build(cfg: dict, heads: int = 4, seed: int = 0) -> EnsembleQNetwork:
    torch.manual_seed(seed)
    return EnsembleQNetwork(OBS_DIM, N_ACTIONS, activation="relu", heads=heads, **cfg)


@pytest.mark.parametrize("cfg", NETWORKS)
def test_forward_is_the_members_plus_the_scaled_prior(cfg):
    net = build(cfg)
    x = np.random.default_rng(0).normal(size=(7, OBS_DIM)).astype(np.float32)
    with torch.no_grad():
        got = net(torch.from_numpy(x)).double().numpy()
    assert got.shape == (7, 4, N_ACTIONS)
    np.testing.assert_allclose(got, numpy_q(net, x, cfg), rtol=1e-5, atol=1e-5)
    assert (net.prior is None) == (cfg["prior_scale"] == 0)
    # The heads differ (else the ensemble could not disagree).
    assert np.ptp(got, axis=1).min() > 0


# --------------------------------------------------------------------------------------------
# The masked, per-head loss against a brute force; the 1/K torso gradient
# --------------------------------------------------------------------------------------------


def brute_force_loss_and_grads(net: EnsembleQNetwork, cfg, obs, actions, y, masks, huber):
    """L = Σ_k (1/B) Σ_{i: m_ik = 1} ℓ(Q_k(s_i, a_i) − y_ik), the gradients of each L_k
    separately from a torch re-implementation of the forward pass (leaf copies of the
    weights), and the per-head losses."""
    leaves = {
        k: v.detach().clone().double().requires_grad_(k.startswith("members."))
        for k, v in net.state_dict().items()
    }
    layers = len(cfg["hidden_sizes"])
    batch, heads = len(obs), net.heads
    x = torch.from_numpy(obs).double()

    def member(prefix: str, k: int, s: torch.Tensor) -> torch.Tensor:
        h = s
        for i in range(layers):
            weight, bias = leaves[f"{prefix}torso{i}_weight"], leaves[f"{prefix}torso{i}_bias"]
            if not cfg["shared_torso"]:
                weight, bias = weight[k], bias[k, 0]
            h = torch.relu(h @ weight + bias)
        if cfg["dueling"]:
            v = h @ leaves[f"{prefix}value_weight"][k] + leaves[f"{prefix}value_bias"][k, 0]
            a = h @ leaves[f"{prefix}advantage_weight"][k] + leaves[f"{prefix}advantage_bias"][k, 0]
            return v + a - a.mean()
        return h @ leaves[f"{prefix}q_weight"][k] + leaves[f"{prefix}q_bias"][k, 0]

    per_head, grads = [], []
    for k in range(heads):
        total = torch.zeros((), dtype=torch.float64)
        for i in range(batch):
            if not masks[i, k]:
                continue
            q = member("members.", k, x[i])
            if net.prior is not None:
                q = q + net.prior_scale * member("prior.", k, x[i])
            delta = q[actions[i]] - float(y[i, k])
            if huber:
                total = total + (0.5 * delta**2 if abs(delta) < 1 else abs(delta) - 0.5)
            else:
                total = total + delta**2
        loss_k = total / batch
        trained = [(n, v) for n, v in leaves.items() if v.requires_grad]
        if loss_k.requires_grad:  # else no transition selects this head: zero gradients
            g = torch.autograd.grad(loss_k, [v for _, v in trained], allow_unused=True)
        else:
            g = [None] * len(trained)
        grads.append(
            {
                name: torch.zeros_like(p) if gk is None else gk
                for (name, p), gk in zip(trained, g, strict=True)
            }
        )
        per_head.append(float(loss_k.detach()))
    return per_head, grads


@pytest.mark.parametrize("cfg", NETWORKS)
@pytest.mark.parametrize("loss", ["huber", "mse"])
def test_each_head_trains_only_on_its_masked_transitions(cfg, loss):
    heads, batch = 4, 12
    agent = make_agent(
        {
            "heads": heads,
            "shared_torso": cfg["shared_torso"],
            "prior_scale": cfg["prior_scale"],
        },
        hidden_sizes=cfg["hidden_sizes"],
        dueling=cfg["dueling"],
        loss=loss,
    )
    net, boot = agent.online, agent._bootstrap
    rng = np.random.default_rng(3)
    obs = rng.normal(size=(batch, OBS_DIM)).astype(np.float32)
    actions = rng.integers(0, N_ACTIONS, batch)
    y = rng.normal(scale=2.0, size=(batch, heads)).astype(np.float32)
    masks = rng.random((batch, heads)) < 0.5
    masks[0] = False  # a transition no head trains on
    masks[:, 1] = False  # a head that trains on nothing

    def run(targets: np.ndarray) -> tuple[float, dict[str, torch.Tensor]]:
        for p in net.parameters():
            p.grad = None
        objective, reported, _ = boot.loss(
            net(torch.from_numpy(obs)),
            torch.from_numpy(actions),
            torch.from_numpy(targets),
            torch.from_numpy(masks),
        )
        objective.backward()
        grads = {f"members.{n}": p.grad.clone() for n, p in net.members.named_parameters()}
        return float(reported), grads

    reported, grads = run(y)
    per_head, head_grads = brute_force_loss_and_grads(
        net, {**cfg}, obs, actions, y, masks, loss == "huber"
    )
    assert reported == pytest.approx(sum(per_head) / heads, rel=1e-5)
    assert per_head[1] == 0.0
    for name, got in grads.items():
        shared = cfg["shared_torso"] and "torso" in name
        # Heads get their own loss's gradient; a shared torso the heads' sum over K.
        want = sum(g[name] for g in head_grads) / (heads if shared else 1)
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-6, msg=name)
    # Masked targets may be anything: nothing changes.
    garbage = np.where(masks, y, np.float32(1e6)).astype(np.float32)
    reported_garbage, grads_garbage = run(garbage)
    assert reported_garbage == reported
    for name in grads:
        torch.testing.assert_close(grads_garbage[name], grads[name], rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# Masks and head draws against their laws
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.3, 0.5])
def test_bootstrap_masks_are_independent_bernoulli_p(p):
    heads, num_envs = 6, 4
    agent = make_agent({"heads": heads, "mask_prob": p}, num_envs=num_envs, learning_starts=10**6)
    feed(agent, 250, seed=1)
    masks = agent.buffer.masks[: len(agent.buffer)]
    n = masks.size
    # All bits: Binomial(n, p); each head's column too (Bonferroni over the heads).
    assert scipy.stats.binomtest(int(masks.sum()), n, p).pvalue > 1e-3
    for k in range(heads):
        assert scipy.stats.binomtest(int(masks[:, k].sum()), len(masks), p).pvalue > 1e-3 / heads
    # Independence between two heads: the 2×2 contingency table of their bits.
    table = np.array(
        [[np.sum((masks[:, 0] == a) & (masks[:, 1] == b)) for b in (0, 1)] for a in (0, 1)]
    )
    assert scipy.stats.chi2_contingency(table).pvalue > 1e-3


def test_mask_prob_one_trains_every_head_on_everything():
    agent = make_agent({"mask_prob": 1.0}, learning_starts=10**6)
    feed(agent, 20)
    assert agent.buffer.masks[: len(agent.buffer)].all()


def test_each_copy_draws_its_head_uniformly_at_its_own_episode_ends():
    heads, num_envs = 5, 3
    agent = make_agent({"heads": heads}, num_envs=num_envs, learning_starts=10**6)
    rng = np.random.default_rng(0)
    draws = []
    for t in range(3000):
        before = agent._bootstrap.active.copy()
        obs = rng.uniform(-1, 1, (num_envs, OBS_DIM)).astype(np.float32)
        acts = agent.act(obs, t)
        # Acting is greedy with each copy's own active head (an independent forward pass).
        q = numpy_q(agent.online, obs, {"hidden_sizes": [16, 16]})
        np.testing.assert_array_equal(acts, q[np.arange(num_envs), before].argmax(axis=1))
        done = rng.random(num_envs) < 0.3
        agent.observe(obs, acts, np.zeros(num_envs), obs, done, np.zeros(num_envs, bool), t)
        after = agent._bootstrap.active
        np.testing.assert_array_equal(after[~done], before[~done])  # mid-episode: unchanged
        draws.extend(after[done])
    counts = np.bincount(draws, minlength=heads)
    assert scipy.stats.chisquare(counts).pvalue > 1e-3


def test_copies_hold_different_heads_and_a_single_env_works_too():
    agent = make_agent({"heads": 10}, num_envs=8, learning_starts=10**6)
    assert len(set(agent._bootstrap.active.tolist())) > 1
    single = make_agent(num_envs=1, policy=EpsilonGreedy(0.1))
    actions, _ = feed(single, 60)
    assert all(a.shape == (1,) for a in actions)


# --------------------------------------------------------------------------------------------
# Evaluation: vote and mean against numpy
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("evaluation", ["vote", "mean"])
def test_greedy_evaluation_is_the_vote_or_the_mean_of_the_heads(evaluation):
    agent = make_agent({"heads": 7, "evaluation": evaluation, "prior_scale": 1.0})
    rng = np.random.default_rng(5)
    for _ in range(200):
        obs = rng.normal(scale=2.0, size=(1, OBS_DIM)).astype(np.float32)
        q = numpy_q(agent.online, obs, {"hidden_sizes": [16, 16]})[0]  # (K, A)
        got = agent.act_greedy(obs[0])
        if evaluation == "mean":
            assert got == int(np.argmax(q.mean(axis=0)))
            continue
        votes = np.bincount(q.argmax(axis=1), minlength=N_ACTIONS)
        winners = np.flatnonzero(votes == votes.max())
        assert got in winners
    np.testing.assert_allclose(
        agent.q_values(obs), q.mean(axis=0, keepdims=True), rtol=1e-5, atol=1e-5
    )


def test_a_tied_vote_is_broken_uniformly_at_random():
    from agents.dqn.ensemble import vote

    rng = np.random.default_rng(0)
    picks = [vote(np.array([0, 2, 2, 0, 1]), 3, rng) for _ in range(2000)]
    counts = np.bincount(picks, minlength=3)
    assert counts[1] == 0
    assert scipy.stats.binomtest(int(counts[0]), 2000, 0.5).pvalue > 1e-3
    assert vote(np.array([1, 1, 0]), 3, rng) == 1


# --------------------------------------------------------------------------------------------
# Targets on a tiny MDP: each head bootstraps from its own target network, prior included
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("shared_torso", [False, True])
def test_targets_on_a_tiny_mdp_match_a_brute_force(double, shared_torso):
    """A 4-state chain with one-hot observations: s → s + 1 (action 1) or s (action 0),
    reward s + a/2, termination on reaching state 3. Each head's target is
    r + γ·(1 − terminated)·max_a′ Q̄_k(s′, a′) with Q̄_k = f_θ̄k + β·p_k (Double DQN: the
    online head k picks a′)."""
    gamma, heads = 0.9, 3
    agent = DQNAgent(
        observation_space=gym.spaces.Box(0.0, 1.0, (4,), np.float32),
        action_space=gym.spaces.Discrete(2),
        policy=Greedy(),
        config=DQNConfig(
            hidden_sizes=[8],
            gamma=gamma,
            double=double,
            batch_size=4,
            buffer_size=64,
            learning_starts=10**6,
            ensemble={"heads": heads, "shared_torso": shared_torso, "prior_scale": 2.0},
        ),
        rng=np.random.default_rng(0),
        num_envs=1,
    )
    with torch.no_grad():  # a target network different from the online one
        for p in agent.target.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    eye = np.eye(4, dtype=np.float32)
    transitions = []
    for s in range(3):
        for a in (0, 1):
            nxt = s + a
            r = s + a / 2
            transitions.append((s, a, r, nxt, nxt == 3))
            agent.observe(eye[[s]], [a], [r], eye[[nxt]], [nxt == 3], [False], 0)
    batch = agent._sample(len(transitions) * 4)
    with torch.no_grad():
        y = agent._targets(
            batch["obs"], batch["actions"], batch["returns"], batch["next_obs"], batch["discounts"]
        ).numpy()
    cfg = {"hidden_sizes": [8], "shared_torso": shared_torso}
    target_q = numpy_q(agent.target, eye, cfg)  # (4 states, K, 2)
    online_q = numpy_q(agent.online, eye, cfg)
    # The prior is the same in the online and the target network.
    for name, value in agent.online.prior.state_dict().items():
        assert torch.equal(value, agent.target.prior.state_dict()[name])
    for row in range(len(y)):
        s = int(batch["obs"][row].argmax())
        a = int(batch["actions"][row])
        (_, _, r, nxt, terminated) = next(t for t in transitions if t[:2] == (s, a))
        for k in range(heads):
            if double:
                value = target_q[nxt, k, int(np.argmax(online_q[nxt, k]))]
            else:
                value = max(target_q[nxt, k])
            want = r + gamma * (0.0 if terminated else value)
            assert y[row, k] == pytest.approx(want, rel=1e-5, abs=1e-5), (s, a, k)


# --------------------------------------------------------------------------------------------
# Priors stay fixed; checkpoints; metrics; configuration
# --------------------------------------------------------------------------------------------


def test_priors_stay_fixed_and_outside_the_optimiser_while_the_heads_learn():
    agent = make_agent({"prior_scale": 3.0, "mask_prob": 0.5}, policy=EpsilonGreedy(0.3))
    prior = {k: v.clone() for k, v in agent.online.prior.state_dict().items()}
    members = agent._flat.clone()
    feed(agent, 200)
    assert agent.updates > 100 and agent.target_updates > 5
    for net in (agent.online, agent.target):
        for name, value in net.prior.state_dict().items():
            assert torch.equal(value, prior[name]), name
        assert not any(t.requires_grad for t in net.prior.state_dict().values())
    assert not torch.equal(agent._flat, members)  # the trained part did learn
    n_members = sum(p.numel() for p in agent.online.members.parameters())
    assert agent._flat.numel() == n_members == sum(p.numel() for p in agent.online.parameters())


def test_the_prior_decides_the_untrained_ensembles_disagreement():
    """With β large the heads' spread is about β times the priors' spread."""
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(64, OBS_DIM)).astype(np.float32))
    with torch.no_grad():
        small = build({"hidden_sizes": [16], "prior_scale": 0.0}, heads=8)(x).std(dim=1).mean()
        large = build({"hidden_sizes": [16], "prior_scale": 100.0}, heads=8)(x).std(dim=1).mean()
    assert large > 20 * small


def test_save_and_load_continue_identically_with_priors_heads_and_masks(tmp_path):
    options = {"prior_scale": 2.0, "mask_prob": 0.5, "shared_torso": True}
    a = make_agent(options, seed=1, num_envs=3, policy=EpsilonGreedy(0.2), n_step=2, double=True)
    feed(a, 60, seed=5)
    a.save(tmp_path / "agent.pt")
    b = make_agent(options, seed=99, num_envs=3, policy=EpsilonGreedy(0.2), n_step=2, double=True)
    b.load(tmp_path / "agent.pt")
    for name, value in a.online.state_dict().items():
        assert torch.equal(value, b.online.state_dict()[name]), name  # priors included
    np.testing.assert_array_equal(a._bootstrap.active, b._bootstrap.active)
    acts_a, _ = feed(a, 60, seed=6, start=60)
    acts_b, _ = feed(b, 60, seed=6, start=60)
    np.testing.assert_array_equal(np.concatenate(acts_a), np.concatenate(acts_b))
    np.testing.assert_array_equal(a.buffer.masks, b.buffer.masks)
    torch.testing.assert_close(a._flat, b._flat, rtol=0, atol=0)
    assert a.metrics() == b.metrics()


def test_a_checkpoint_of_another_ensemble_is_refused(tmp_path):
    from rlsoft.errors import RlsoftError

    make_agent({"heads": 3}).save(tmp_path / "agent.pt")
    with pytest.raises(RlsoftError, match="different network"):
        make_agent({"heads": 4}).load(tmp_path / "agent.pt")


def test_ensemble_std_is_the_mean_std_across_heads_at_the_visited_states():
    agent = make_agent({"heads": 6}, learning_starts=10**6)
    rng = np.random.default_rng(2)
    stds = []
    for t in range(5):
        obs = rng.normal(size=(2, OBS_DIM)).astype(np.float32)
        q = numpy_q(agent.online, obs, {"hidden_sizes": [16, 16]})
        stds.extend(q.std(axis=1).mean(axis=1))  # per state: mean over actions
        agent.act(obs, t)
    got = agent.metrics()["exploration/ensemble_std"]
    assert got == pytest.approx(np.mean(stds), rel=1e-5)
    assert "exploration/ensemble_std" not in agent.metrics()  # the window was reset


def test_ensemble_config_is_validated():
    with pytest.raises(ValidationError, match="ensemble needs head: q"):
        DQNConfig(head="c51", ensemble={"heads": 3})
    for bad in ({"heads": 0}, {"mask_prob": 0.0}, {"mask_prob": 1.5}, {"prior_scale": -1.0}):
        with pytest.raises(ValidationError):
            DQNConfig(ensemble=bad)
    with pytest.raises(ValidationError):
        DQNConfig(ensemble={"evaluation": "median"})
    assert DQNConfig(ensemble={}).ensemble.heads == 10


@pytest.mark.parametrize(
    "options",
    [
        {"target": "soft", "loss": "mse"},
        {"target": "munchausen"},
        {"n_step": 3, "double": True, "dueling": True},
        {"activation": "silu", "max_grad_norm": None},
    ],
)
def test_the_ensemble_trains_with_every_supported_option(options):
    agent = make_agent({"heads": 3, "mask_prob": 0.7}, policy=EpsilonGreedy(0.2), **options)
    feed(agent, 60)
    metrics = agent.metrics()
    assert agent.updates > 0 and np.isfinite(metrics["losses/td_loss"])
    assert metrics["exploration/ensemble_std"] > 0


def test_the_deepsea_config_is_checked_by_the_cli_in_one_sentence(tmp_path):
    """In a fresh process (nothing registered rlsoft's environments yet), the shipped config's
    env id is accepted and a bad ensemble option is one sentence, exit 2, nothing written."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    config = root / "configs" / "deepsea_bootstrapped_prior.yaml"
    command = [sys.executable, "-m", "rlsoft.cli", "train", str(config)]
    done = subprocess.run(
        [*command, "--logdir", str(tmp_path), "--set", "agent.ensemble.mask_prob=0"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("rlsoft: error: ") and done.stderr.count("\n") == 1
    assert "agent.ensemble.mask_prob" in done.stderr, done.stderr
    assert not any(tmp_path.iterdir())


def test_a_trained_ensemble_logs_its_std_and_loads_through_the_python_api(tmp_path):
    """End to end on DeepSea(4): the run logs ``exploration/ensemble_std`` to TensorBoard, and
    ``rlsoft.load`` restores an agent whose predictions are the ensemble's vote and whose
    ``q_values`` are the heads' mean (recomputed here from the saved weights)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import rlsoft

    config = {
        "seed": 1,
        "device": "cpu",
        "env": {"id": "rlsoft/DeepSea-v0", "kwargs": {"size": 4}, "num_envs": 2},
        "agent": {
            "type": "dqn",
            "hidden_sizes": [8],
            "batch_size": 16,
            "learning_starts": 32,
            "train_freq": 2,
            "target_update_interval": 8,
            "ensemble": {"heads": 3, "prior_scale": 1.0, "mask_prob": 0.5},
        },
        "exploration": {"policy": "greedy"},
        "train": {"total_steps": 200, "eval_every": 100, "eval_episodes": 1, "log_every": 50},
    }
    run = rlsoft.train(config, logdir=tmp_path)
    events = EventAccumulator(str(run.run_dir), size_guidance={"scalars": 0})
    events.Reload()
    stds = [e.value for e in events.Scalars("exploration/ensemble_std")]
    assert len(stds) == 4 and all(np.isfinite(stds)) and min(stds) > 0
    trained = rlsoft.load(run.run_dir)
    obs = np.eye(16, dtype=np.float32)[:6].reshape(6, 4, 4)
    q = numpy_q(trained.agent.online, obs.reshape(6, -1), {"hidden_sizes": [8]})
    np.testing.assert_allclose(trained.q_values(obs), q.mean(axis=1), rtol=1e-5, atol=1e-6)
    for i in range(6):
        votes = np.bincount(q[i].argmax(axis=1), minlength=2)
        assert trained.predict(obs[i]) in np.flatnonzero(votes == votes.max())
