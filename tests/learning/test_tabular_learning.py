"""Learning that works, on the shipped configs (slow; the test_ci_* ones run in CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

import agents  # noqa: F401 - registers the tabular agents
from rlsoft.run.config import load_config
from rlsoft.run.experiment import run_experiment

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TABULAR_CONFIGS = [
    "taxi_qlearning_boltzmann",
    "taxi_qlearning_epsilon",
    "taxi_softq",
    "frozenlake_expected_sarsa",
    "cliffwalking_sarsa",
    "cliffwalking_qlearning",
    "blackjack_qlearning",
]


def _train(name: str, tmp_path: Path, seed: int = 0, *overrides: str) -> dict[str, float]:
    config = load_config(CONFIGS / f"{name}.yaml", ["train.progress=off", *overrides], seed=seed)
    return run_experiment(config, logdir=str(tmp_path / f"{name}-{seed}")).final_eval


@pytest.mark.slow
@pytest.mark.parametrize("name", ["taxi_qlearning_boltzmann", "taxi_qlearning_epsilon"])
def test_taxi_reaches_7_within_100k_steps_on_4_of_5_seeds(name: str, tmp_path: Path) -> None:
    finals = [_train(name, tmp_path, seed)["eval/mean_return"] for seed in range(5)]
    assert sum(r >= 7.0 for r in finals) >= 4, finals


@pytest.mark.slow
def test_ci_taxi_boltzmann_quickstart_learns(tmp_path: Path) -> None:
    assert _train("taxi_qlearning_boltzmann", tmp_path, 0)["eval/mean_return"] >= 7.0


@pytest.mark.slow
def test_ci_frozenlake_slippery_success_rate_over_1000_episodes(tmp_path: Path) -> None:
    result = _train("frozenlake_expected_sarsa", tmp_path, 0)
    assert result["eval/mean_return"] >= 0.70  # reward 1 on success: the mean is the rate


@pytest.mark.slow
def test_cliffwalking_sarsa_is_safe_and_qlearning_is_optimal(tmp_path: Path) -> None:
    assert _train("cliffwalking_sarsa", tmp_path)["eval/mean_return"] == -17.0
    assert _train("cliffwalking_qlearning", tmp_path)["eval/mean_return"] == -13.0


@pytest.mark.slow
@pytest.mark.parametrize("name", TABULAR_CONFIGS)
def test_every_shipped_tabular_config_trains_and_beats_random(name: str, tmp_path: Path) -> None:
    random_level = {"taxi": -700.0, "frozenlake": 0.05, "cliffwalking": -1000.0, "blackjack": -0.35}
    result = _train(name, tmp_path)["eval/mean_return"]
    assert result > random_level[name.split("_")[0]]
