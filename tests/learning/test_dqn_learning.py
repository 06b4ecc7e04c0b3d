"""DQN learning tests on the shipped configs (slow: minutes each; ``pytest -m slow``).

The ``test_ci_*`` ones are the small budget CI runs (``pytest -m slow -k ci_``): one seed of
CartPole with a lenient bar, since a different CPU may round differently and so follow a
different (equally valid) trajectory from the same seed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import agents  # noqa: F401 - registers the agents
from rlsoft.run.config import load_config
from rlsoft.run.experiment import run_experiment

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SOLVED, STABLE = 475.0, 450.0

pytestmark = pytest.mark.slow


def train(config: str, seed: int, tmp_path: Path, *overrides: str) -> list[tuple[int, float]]:
    cfg = load_config(
        CONFIGS / config,
        [f"logdir={tmp_path}", "train.progress=off", "train.checkpoint_every=0", *overrides],
        seed=seed,
    )
    return run_experiment(cfg).eval_history


def solved_and_stable(history: list[tuple[int, float]], budget: int = 50_000) -> bool:
    """Greedy mean ≥ 475 at some evaluation within ``budget`` steps, final mean ≥ 450."""
    return any(step <= budget and value >= SOLVED for step, value in history) and (
        history[-1][1] >= STABLE
    )


@pytest.mark.parametrize("config", ["cartpole_dqn_epsilon.yaml", "cartpole_dqn_boltzmann.yaml"])
def test_cartpole_is_solved_on_four_of_five_seeds_and_stays_solved(config, tmp_path):
    histories = [train(config, seed, tmp_path) for seed in range(5)]
    solved = [solved_and_stable(h) for h in histories]
    assert sum(solved) >= 4, [[round(v) for _, v in h] for h in histories]


@pytest.mark.parametrize(
    "config", ["cartpole_c51.yaml", "cartpole_munchausen.yaml", "cartpole_double_dueling.yaml"]
)
def test_other_heads_and_targets_solve_cartpole(config, tmp_path):
    histories = [train(config, seed, tmp_path) for seed in range(2)]
    assert all(solved_and_stable(h) for h in histories), [
        [round(v) for _, v in h] for h in histories
    ]


def test_acrobot_reaches_minus_100_within_100k_steps(tmp_path):
    history = train("acrobot_dqn.yaml", 0, tmp_path)
    assert max(value for step, value in history if step <= 100_000) >= -100, history


def test_ci_cartpole_dqn_learns(tmp_path):
    history = train("cartpole_dqn_epsilon.yaml", 0, tmp_path)
    assert max(value for _, value in history) >= SOLVED, history
