"""The memory estimate that refuses runs which cannot fit, checked against what numpy and
torch actually allocate."""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from agents.dqn.config import DQNConfig
from agents.dqn.memory import (
    activation_numbers,
    batch_bytes,
    check_dqn_memory,
    frame_replay_bytes,
    network_bytes,
    parameter_count,
    replay_bytes,
)
from agents.dqn.networks import QNetwork
from agents.tabular.memory import state_count, table_bytes
from rlsoft.errors import RlsoftError
from rlsoft.rl import memory
from rlsoft.rl.agent import BuildContext
from rlsoft.rl.replay import ReplayBuffer

GIB = memory.GIB


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"hidden_sizes": []},
        {"hidden_sizes": [7, 5], "dueling": True},
        {"hidden_sizes": [9], "head": "c51", "atoms": 11},
        {"hidden_sizes": [9, 3], "head": "c51", "atoms": 5, "dueling": True},
        {"hidden_sizes": [7, 5], "dueling": True, "noisy": True},
        {"hidden_sizes": [9], "head": "c51", "atoms": 5, "noisy": True},
    ],
)
def test_parameter_count_matches_torch(options: dict) -> None:
    config = DQNConfig(**options)
    net = QNetwork(
        6,
        3,
        [256, 256] if config.hidden_sizes is None else list(config.hidden_sizes),
        config.activation,
        dueling=config.dueling,
        atoms=config.atoms if config.head == "c51" else None,
        noisy_sigma0=config.noisy_sigma0 if config.noisy else None,
    )
    assert parameter_count(config, 6, 3) == sum(p.numel() for p in net.parameters())
    assert network_bytes(config, 6, 3) == 6 * 4 * parameter_count(config, 6, 3)


@pytest.mark.parametrize(("capacity", "obs_dim", "num_envs"), [(100, 4, 1), (101, 3, 4), (7, 1, 7)])
def test_replay_bytes_match_numpy(capacity: int, obs_dim: int, num_envs: int) -> None:
    buffer = ReplayBuffer(capacity, (obs_dim,), num_envs=num_envs)
    arrays = (buffer.obs, buffer.next_obs, buffer.actions, buffer.rewards, buffer.terminated,
              buffer.done)  # fmt: skip
    assert replay_bytes(capacity, obs_dim, num_envs) == sum(a.nbytes for a in arrays)


@pytest.mark.parametrize(
    "ensemble",
    [
        {"heads": 3, "prior_scale": 2.0},
        {"heads": 4, "shared_torso": True, "prior_scale": 0.0},
    ],
)
@pytest.mark.parametrize("dueling", [False, True])
def test_ensemble_memory_matches_torch_and_numpy(ensemble: dict, dueling: bool) -> None:
    from agents.dqn.ensemble import EnsembleQNetwork

    config = DQNConfig(hidden_sizes=[7, 5], dueling=dueling, ensemble=ensemble)
    net = EnsembleQNetwork(
        6,
        3,
        [7, 5],
        heads=ensemble["heads"],
        shared_torso=ensemble.get("shared_torso", False),
        dueling=dueling,
        prior_scale=ensemble["prior_scale"],
    )
    trained = sum(p.numel() for p in net.parameters())
    prior = sum(b.numel() for b in net.buffers())
    assert parameter_count(config, 6, 3) == trained
    assert network_bytes(config, 6, 3) == 6 * 4 * trained + 2 * 4 * prior
    buffer = ReplayBuffer(10, (6,), num_envs=2, mask_size=ensemble["heads"])
    arrays = (buffer.obs, buffer.next_obs, buffer.actions, buffer.rewards, buffer.terminated,
              buffer.done, buffer.masks)  # fmt: skip
    assert replay_bytes(10, 6, 2, mask_size=ensemble["heads"]) == sum(a.nbytes for a in arrays)


def test_meminfo_and_cgroup_are_read(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  16000000 kB\nMemFree: 1 kB\nMemAvailable:   8000000 kB\n")
    assert memory._meminfo_available(meminfo) == 8_000_000 * 1024
    assert memory._meminfo_available(tmp_path / "absent") is None
    (tmp_path / "memory.max").write_text("max\n")
    assert memory._cgroup_room(tmp_path) is None
    (tmp_path / "memory.max").write_text(f"{4 * GIB}\n")
    (tmp_path / "memory.current").write_text(f"{GIB}\n")
    assert memory._cgroup_room(tmp_path) == 3 * GIB


def test_available_memory_takes_the_tighter_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_meminfo_available", lambda: 8 * GIB)
    monkeypatch.setattr(memory, "_cgroup_room", lambda: 2 * GIB)
    assert memory.available_memory() == 2 * GIB
    monkeypatch.setattr(memory, "_cgroup_room", lambda: None)
    assert memory.available_memory() == 8 * GIB
    monkeypatch.setattr(memory, "_meminfo_available", lambda: None)
    monkeypatch.setattr(memory, "_sysconf_available", lambda: 3 * GIB)
    assert memory.available_memory() == 3 * GIB


def test_check_fits_message_and_threshold() -> None:
    memory.check_fits({"a": GIB, "b": GIB}, "lower x", available=2 * GIB)  # exactly fits
    with pytest.raises(RlsoftError) as info:
        memory.check_fits(
            {"replay buffer": 3 * GIB, "networks": GIB // 2}, "lower x", available=GIB
        )
    assert str(info.value) == (
        "this run needs about 3.5 GiB of memory (replay buffer 3 GiB, networks 0.5 GiB) but only "
        "1 GiB are available; lower x"
    )


def test_unknown_available_memory_skips_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_memory", lambda: None)
    memory.check_fits({"a": 10**18}, "lower x")  # nothing to compare with: no refusal


def _context(config: DQNConfig, obs_dim: int = 4, num_envs: int = 1) -> BuildContext:
    return BuildContext(
        config=config,
        observation_space=gym.spaces.Box(-1, 1, (obs_dim,), np.float32),
        action_space=gym.spaces.Discrete(2),
        policy=None,
        rng=np.random.default_rng(0),
        torch_seed=0,
        num_envs=num_envs,
    )


def test_dqn_check_uses_both_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    config = DQNConfig(buffer_size=1_000_000, hidden_sizes=[64])
    batches = batch_bytes(config, 4, 2)
    need = replay_bytes(1_000_000, 4) + network_bytes(config, 4, 2) + batches
    monkeypatch.setattr(memory, "available_memory", lambda: need)
    check_dqn_memory(_context(config))
    monkeypatch.setattr(memory, "available_memory", lambda: need - 1)
    with pytest.raises(
        RlsoftError, match=r"lower agent\.buffer_size, agent\.batch_size or agent\.hidden_sizes"
    ):
        check_dqn_memory(_context(config))


def test_dqn_check_counts_compact_frames_stored_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """MinAtar-like bool images: one byte per cell, each observation once (frame replay)."""
    space = gym.spaces.Box(0, 1, (10, 10, 4), np.bool_)
    config = DQNConfig(buffer_size=1_000_000)
    ctx = _context(config)
    ctx.observation_space, ctx.action_space = space, gym.spaces.Discrete(3)
    # 10^6 + 1 + 16 frames of 400 bytes, 22 bytes of bookkeeping per transition
    replay = (1_000_000 + 1 + 16) * 400 + 1_000_000 * 22
    assert frame_replay_bytes(1_000_000, 400, 1, 1, 1) == replay
    need = replay + network_bytes(config, 400, 3, space) + batch_bytes(config, 400, 3, space, 1)
    monkeypatch.setattr(memory, "available_memory", lambda: need)
    check_dqn_memory(ctx)
    monkeypatch.setattr(memory, "available_memory", lambda: need - 1)
    with pytest.raises(RlsoftError, match=r"replay buffer 0\.393 GiB"):
        check_dqn_memory(ctx)
    # storing float32 obs and next_obs would take about 8× as much
    assert replay_bytes(1_000_000, 400) > 7 * replay


def test_the_training_batches_are_counted_by_hand_and_a_huge_batch_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nature DQN on 4×84×84 frames: per row 32·20·20 + 64·9·9 + 64·7·7 conv outputs, 512
    hidden units and 4 Q-values; a round of one step of 32 rows holds 2·32 uint8 stacks, two
    float32 copies of each, and the activations of 3·32 + 32 rows."""
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    config = DQNConfig(batch_size=32)
    per_row = 32 * 20 * 20 + 64 * 9 * 9 + 64 * 7 * 7 + 512 + 4
    assert activation_numbers(config, 4 * 84 * 84, 4, space) == per_row
    # MinAtar's one convolution also keeps its gathered patches: 4·3·3 numbers at 8·8 places
    minatar = gym.spaces.Box(0, 1, (10, 10, 4), np.bool_)
    assert activation_numbers(config, 400, 3, minatar) == 16 * 8 * 8 + 4 * 9 * 8 * 8 + 128 + 3
    c51 = DQNConfig(head="c51", atoms=51, hidden_sizes=[8])  # logits, log-probs, targets
    assert activation_numbers(c51, 4, 2, gym.spaces.Box(-1, 1, (4,))) == 8 + 3 * 2 * 51
    inputs = 2 * 32 * 4 * 84 * 84 * (1 + 2 * 4)
    assert batch_bytes(config, 4 * 84 * 84, 4, space, 1) == inputs + 4 * per_row * (3 * 32 + 32)
    huge = DQNConfig(batch_size=20_000, buffer_size=20_000, learning_starts=100)
    ctx = _context(huge)
    ctx.observation_space, ctx.action_space = space, gym.spaces.Discrete(4)
    monkeypatch.setattr(memory, "available_memory", lambda: 8 * GIB)
    with pytest.raises(RlsoftError, match=r"training batches 15\.9 GiB\) but only 8 GiB"):
        check_dqn_memory(ctx)


def test_the_address_space_limit_bounds_the_available_memory(tmp_path: Path) -> None:
    import resource

    status = tmp_path / "status"
    status.write_text("Name: python\nVmSize:  2000000 kB\nVmRSS: 10 kB\n")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        assert memory._address_space_room(status) is None
    limit = 3 * GIB
    if hard != resource.RLIM_INFINITY and hard < limit:
        pytest.skip("the hard address-space limit is below the one this test sets")
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        assert memory._address_space_room(status) == limit - 2_000_000 * 1024
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_dqn_check_leaves_wrong_spaces_to_the_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_memory", lambda: 0)
    ctx = _context(DQNConfig())
    ctx.observation_space = gym.spaces.Discrete(5)
    check_dqn_memory(ctx)  # the agent's own error names the space


# -- tabular agents ---------------------------------------------------------------------------


def _measured_table_bytes(table: list[list[float]]) -> int:
    """What CPython holds for a learned table: the lists and one float object per entry."""
    return sys.getsizeof(table) + sum(
        sys.getsizeof(row) + sum(sys.getsizeof(x) for x in row) for row in table
    )


def _tabular_context(observation_space: gym.Space, config: object) -> BuildContext:
    from rlsoft.explore.policies import Greedy

    return BuildContext(
        config=config,
        observation_space=observation_space,
        action_space=gym.spaces.Discrete(4),
        policy=Greedy(),
        rng=np.random.default_rng(0),
        torch_seed=0,
    )


def test_table_bytes_match_a_learned_table() -> None:
    from agents.tabular.agent import QLearning, QLearningConfig

    space = gym.spaces.MultiDiscrete([30, 20])
    agent = QLearning.from_context(_tabular_context(space, QLearningConfig()))
    table = agent._q
    for s, row in enumerate(table):  # learned: every entry its own float object
        for a in range(len(row)):
            row[a] = s * 4 + a + 0.5
    measured = _measured_table_bytes(table)
    estimate = table_bytes(state_count(space), 4)
    assert state_count(space) == 600
    # a list built by a comprehension is over-allocated by about n/8 + 6 pointers (CPython's
    # growth rule); the rows, built by [value] * n, are exact
    assert estimate <= measured <= estimate + 8 * (600 // 8 + 8)


def test_state_count_does_not_overflow() -> None:
    assert state_count(gym.spaces.MultiDiscrete([10**6] * 4)) == 10**24
    assert state_count(gym.spaces.Tuple([gym.spaces.Discrete(3), gym.spaces.Discrete(5)])) == 15
    assert state_count(gym.spaces.Box(0, 1, (2,))) is None


def test_huge_tables_are_refused_before_they_are_made(monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.tabular.agent import SPECS

    monkeypatch.setattr(memory, "available_memory", lambda: 16 * GIB)
    space = gym.spaces.MultiDiscrete([1000] * 4)  # 10^12 states
    by_name = {spec.name: spec for spec in SPECS}
    for name in ("q_learning", "double_q_learning"):
        spec = by_name[name]
        ctx = _tabular_context(space, spec.config_model())
        with pytest.raises(
            RlsoftError, match=r"of memory \(Q-tables .* but only 16 GiB are available"
        ):
            spec.build(ctx)
    small = _tabular_context(gym.spaces.Discrete(500), by_name["q_learning"].config_model())
    assert by_name["q_learning"].build(small).n_states == 500
