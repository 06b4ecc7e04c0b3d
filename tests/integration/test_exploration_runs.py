"""The tabular count bonus and εz-greedy inside real runs: the driver cancels εz options at
episode ends (single and vectorised environments), and the new TensorBoard tags are logged
for tabular and DQN agents."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import agents  # noqa: F401 - registers the agents
from rlsoft.explore.policies import EzGreedy
from rlsoft.run.config import validate_config
from rlsoft.run.experiment import build_driver, run_experiment

# ε = 1 then 0 after step 0 would leave one option; ε = 1 throughout and μ = 1.01 make
# nearly every option outlast the 3-step episodes (P(n ≤ 3) ≈ 0.03), so a missed
# cancellation shows at once.
LONG_OPTIONS = {"policy": "ez_greedy", "epsilon": 1.0, "mu": 1.01}


def _config(agent: dict, num_envs: int, **train) -> dict:
    env = {"id": "rlsoft/RiverSwim-v0", "max_episode_steps": 3, "num_envs": num_envs}
    if agent["type"] == "dqn":  # one-hot states for the network
        env["wrappers"] = [{"path": "gymnasium.wrappers:FlattenObservation"}]
    return {
        "seed": 0,
        "device": "cpu",
        "env": env,
        "agent": agent,
        "exploration": LONG_OPTIONS,
        "train": {
            "total_steps": 600,
            "eval_every": 0,
            "eval_episodes": 1,
            "progress": "off",
            **train,
        },
    }


DQN = {"type": "dqn", "hidden_sizes": [8], "batch_size": 8, "learning_starts": 50}


@pytest.mark.parametrize(
    ("agent", "num_envs"), [({"type": "q_learning"}, 1), (DQN, 1), (DQN, 2)], ids=str
)
def test_the_driver_cancels_options_at_every_episode_end(agent, num_envs):
    driver = build_driver(validate_config(_config(agent, num_envs)))
    policy = driver.agent.policy
    assert isinstance(policy, EzGreedy)
    step = 0
    running_inside = 0
    try:
        for _ in range(60):
            step += driver.advance(num_envs, step)  # one vector step
            options = [policy.running(i) for i in range(num_envs)]
            if step % (3 * num_envs) == 0:  # every copy's episode just ended (truncated)
                assert options == [None] * num_envs, f"step {step}"
            else:
                running_inside += sum(o is not None for o in options)
    finally:
        driver.close()
    assert running_inside > 0  # options do run inside episodes


@pytest.mark.parametrize(
    ("agent", "num_envs", "tags"),
    [
        (
            {"type": "q_learning", "count_bonus": 1.0},
            1,
            {"exploration/bonus", "exploration/repeat_length", "exploration/entropy"},
        ),
        (DQN, 2, {"exploration/repeat_length", "exploration/entropy", "exploration/epsilon"}),
    ],
    ids=["tabular", "dqn"],
)
def test_new_exploration_tags_are_logged(tmp_path: Path, agent, num_envs, tags):
    data = _config(agent, num_envs, log_every=100)
    data["env"]["max_episode_steps"] = 50
    data["exploration"] = {"policy": "ez_greedy", "epsilon": 0.3}
    data.update(logdir=str(tmp_path), run_name="run")
    run_experiment(validate_config(data))
    events = EventAccumulator(str(tmp_path / "run"))
    events.Reload()
    assert tags <= set(events.Tags()["scalars"])
    for tag in tags - {"exploration/epsilon"}:
        values = [e.value for e in events.Scalars(tag)]
        assert values and all(v > 0 for v in values), tag
    if "exploration/bonus" in tags:  # β/√n with n ≥ 1: never above β
        assert max(e.value for e in events.Scalars("exploration/bonus")) <= 1.0
