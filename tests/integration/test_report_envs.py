"""``rlsoft report`` on a folder whose runs cover more than one environment."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from rlsoft.cli import main

CONFIG = """\
seed: 0
env: {id: Taxi-v4}
agent: {type: q_learning, learning_rate: 0.5}
exploration: {policy: epsilon_greedy, epsilon: 0.1}
train: {total_steps: 1000, eval_every: 500, eval_episodes: 2, log_every: 500, progress: "off"}
"""


def _train(config: Path, logdir: Path, *overrides: str) -> None:
    sets = [a for o in overrides for a in ("--set", o)]
    assert main(["train", str(config), "--logdir", str(logdir), *sets]) == 0


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def _csv_envs(logdir: Path) -> set[tuple[str, str]]:
    with open(logdir / "summary.csv", newline="", encoding="utf-8") as handle:
        return {(row["env"], row["variant"]) for row in csv.DictReader(handle)}


def test_runs_of_different_envs_and_names_are_reported_per_env(
    config: Path, tmp_path: Path, capsys
) -> None:
    logdir = tmp_path / "runs"
    _train(config, logdir, "name=taxi", "run_name=a")
    _train(config, logdir, "name=lake", "run_name=b", "env.id=FrozenLake-v1")
    capsys.readouterr()
    assert main(["report", str(logdir)]) == 0
    warning = capsys.readouterr().err.splitlines()
    assert len(warning) == 1 and warning[0].startswith("rlsoft: warning: fewer than 3")
    assert _csv_envs(logdir) == {("Taxi-v4", "taxi"), ("FrozenLake-v1", "lake")}
    markdown = (logdir / "summary.md").read_text(encoding="utf-8")
    assert "## Taxi-v4" in markdown and "## FrozenLake-v1" in markdown
    assert "## all envs" not in markdown
    assert "No variant ran in every environment" in markdown
    for name in ("learning_curves", "final_scores"):
        assert (logdir / f"{name}_Taxi-v4.png").is_file()
        assert (logdir / f"{name}_FrozenLake-v1.png").is_file()
    assert not (logdir / "final_scores_all_envs.png").exists()


def test_a_variant_in_every_env_is_also_pooled(config: Path, tmp_path: Path) -> None:
    logdir = tmp_path / "runs"
    _train(config, logdir, "name=same", "run_name=a")
    _train(config, logdir, "name=same", "run_name=b", "env.id=FrozenLake-v1")
    _train(config, logdir, "name=only_lake", "run_name=c", "env.id=FrozenLake-v1")
    assert main(["report", str(logdir)]) == 0
    assert _csv_envs(logdir) == {
        ("Taxi-v4", "same"),
        ("FrozenLake-v1", "same"),
        ("FrozenLake-v1", "only_lake"),
        ("all envs", "same"),  # only the variant that ran in both is pooled
    }
    markdown = (logdir / "summary.md").read_text(encoding="utf-8")
    assert "## all envs" in markdown and "No variant ran in every environment" not in markdown
    assert (logdir / "final_scores_all_envs.png").is_file()
