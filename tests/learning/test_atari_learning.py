"""A short Atari run end to end (``pytest -m atari``; slow too, so the default run skips it;
skipped without the atari extra).

``configs/atari_breakout_dqn.yaml`` with a small budget and replay: it trains (gradient steps
happen), logs ``charts/episodic_return`` as the **unclipped** game score, checkpoints, and
``rlsoft eval`` evaluates the run. The scores are checked against an independent record: a
wrapper (named in the config's ``env.wrappers``, so outside rlsoft's Atari stack) sums the
rewards each game gives, and the learning signal beside them must be their sign.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import agents  # noqa: F401 - registers the agents
import rlsoft
from rlsoft.cli import main
from rlsoft.rl.envs.atari import LEARN_REWARD
from rlsoft.run.checkpoint import agent_file, latest_checkpoint

pytest.importorskip("ale_py", reason="Atari is an optional extra: pip install 'rlsoft[atari]'")

pytestmark = [pytest.mark.slow, pytest.mark.atari]

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TOTAL, LOG_EVERY = 1600, 200


class ScoreRecord(gym.Wrapper):
    """Per environment instance: the agent step at which each game ended and its score (the
    sum of the rewards this wrapper saw), plus every (reward, learning reward) pair."""

    instances: ClassVar[list[ScoreRecord]] = []

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.steps, self.score = 0, 0.0
        self.games: list[tuple[int, float]] = []
        self.pairs: list[tuple[float, float]] = []
        ScoreRecord.instances.append(self)

    def reset(self, **kwargs: Any):
        self.score = 0.0
        return self.env.reset(**kwargs)

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        self.score += float(reward)
        self.pairs.append((float(reward), float(info[LEARN_REWARD])))
        if terminated or truncated:
            self.games.append((self.steps, self.score))
        return obs, reward, terminated, truncated, info


def test_a_short_atari_run_logs_the_unclipped_score_checkpoints_and_evaluates(tmp_path):
    ScoreRecord.instances.clear()
    # Through the Python API, as a user would (the CLI's eval follows below).
    result = rlsoft.train(
        str(CONFIGS / "atari_breakout_dqn.yaml"),
        overrides=[
            f"train.total_steps={TOTAL}",
            f"train.log_every={LOG_EVERY}",
            "train.eval_every=0",
            "train.eval_episodes=1",
            "train.checkpoint_every=800",
            "agent.buffer_size=2000",
            "agent.learning_starts=400",
            "agent.target_update_interval=200",
            "env.max_episode_steps=4000",  # emulator frames: bounds the greedy evaluation
            f"env.wrappers=[{{path: {__name__}:ScoreRecord}}]",
            "device=cpu",
            "run_name=run",
        ],
        logdir=tmp_path,
    )
    run = tmp_path / "run"
    assert result.run_dir == run

    # The training env is the instance that took exactly the budget's steps.
    (train_env,) = [e for e in ScoreRecord.instances if e.steps == TOTAL]
    assert len(train_env.games) >= 3, "too few games ended to check the logged scores"
    assert all(learned == np.sign(reward) for reward, learned in train_env.pairs)
    events = EventAccumulator(str(run))
    events.Reload()
    logged = {e.step: e.value for e in events.Scalars("charts/episodic_return")}
    expected = {}
    for end in range(LOG_EVERY, TOTAL + 1, LOG_EVERY):
        scores = [s for step, s in train_env.games if end - LOG_EVERY < step <= end]
        if scores:
            expected[end] = float(np.mean(scores))
    assert logged.keys() == expected.keys()
    for step, value in expected.items():
        assert logged[step] == pytest.approx(value, rel=1e-6), step

    # It trained, and checkpointed without the replay (checkpoint_replay: false).
    state = torch.load(agent_file(latest_checkpoint(run)), weights_only=True)
    assert state["counters"]["updates"] == (TOTAL - 400) // 4
    assert state["replay"]["kept"] is False
    summary = json.loads((run / "summary.json").read_text())
    assert np.isfinite(summary["final_eval"]["eval/mean_return"])

    # The trained agent acts on the protocol's observations, and rlsoft eval on the run dir
    # plays whole games.
    agent = rlsoft.load(run)
    evaluation = rlsoft.evaluate(agent, episodes=1)
    assert evaluation.lengths[0] > 0 and np.isfinite(evaluation.returns[0])
    assert main(["eval", str(run), "--episodes", "1"]) == 0
