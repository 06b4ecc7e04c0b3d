"""The classification baseline end to end: configs, `rlsoft train` / `rlsoft eval`, TensorBoard
tags, determinism, behaviour cloning, and (marked slow) the accuracy and calibration results.

Slow tests run with ``pytest -m slow``; ``pytest -m slow -k ci_`` runs the ones that fit a CI
budget (under a minute together).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

import agents  # noqa: F401 - registers the classifier (and the tabular teachers)
from agents.classifier.agent import ClassifierConfig
from rlsoft.cli import main
from rlsoft.errors import ConfigError
from rlsoft.rl.agent import AgentSpec, agent_names, register_agent
from rlsoft.run.config import StrictModel, load_config, validate_agent_section, validate_config
from rlsoft.run.experiment import build_driver, run_experiment

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = ROOT / "configs"
TAGS = (
    "losses/cross_entropy",
    "losses/initial_cross_entropy",
    "val/cross_entropy",
    "eval/accuracy",
    "eval/nll",
    "eval/ece",
    "eval/nll_calibrated",
    "eval/ece_calibrated",
    "calibration/temperature",
)


def scalar_tags(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def train(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main(["train", *args])
    out, err = capsys.readouterr()
    return rc, out, err


# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------


def test_registered_and_shipped_configs_validate() -> None:
    assert "classifier" in agent_names()
    for name in ("digits_softmax_regression", "digits_mlp", "cartpole_behavior_cloning"):
        config = load_config(CONFIGS / f"{name}.yaml")
        assert config.env is None and config.agent_type == "classifier"
        assert (CONFIGS / f"{name}.yaml").read_text().startswith("# ")  # a comment header


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"model": "softmax_regression", "hidden_sizes": [8]}, "hidden_sizes is for model mlp"),
        ({"model": "mlp", "hidden_sizes": []}, "at least one hidden layer"),
        ({"optimizer": "lbfgs", "batch_size": 32}, "full training split"),
        ({"optimizer": "lbfgs", "learning_rate": 0.1}, "remove learning_rate"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"dataset": {"name": "mnist"}}, "dataset"),
        (
            {"dataset": {"name": "digits", "test_fraction": 0.6, "validation_fraction": 0.5}},
            "below 1",
        ),
        ({"dataset": {"name": "behavior_cloning", "episodes": 10}}, "teacher_run"),
    ],
)
def test_config_errors_name_the_field(section: dict, message: str) -> None:
    body = {"type": "classifier", "dataset": {"name": "digits"}, **section}
    with pytest.raises(ConfigError, match=message):
        validate_agent_section(body)


def test_training_options_defaults_follow_the_optimizer() -> None:
    adam = ClassifierConfig(dataset={"name": "digits"}).training_options()
    assert (adam.step_size, adam.batch_size) == (1e-3, 64)
    lbfgs = ClassifierConfig(optimizer="lbfgs", dataset={"name": "digits"}).training_options()
    assert (lbfgs.step_size, lbfgs.batch_size) == (1.0, None)


# --------------------------------------------------------------------------------------------
# rlsoft train / rlsoft eval on digits
# --------------------------------------------------------------------------------------------


def test_cli_train_writes_tags_report_checkpoint_and_eval_reads_it(tmp_path: Path, capsys) -> None:
    rc, out, err = train(
        [
            str(CONFIGS / "digits_softmax_regression.yaml"),
            "--logdir",
            str(tmp_path),
            "--set",
            "run_name=sr",
            "--set",
            "train.total_steps=6",
            "--set",
            "train.eval_every=3",
        ],
        capsys,
    )
    assert rc == 0, err
    run_dir = tmp_path / "sr"
    assert "calibration on the test split (359 samples)" in out
    assert "ECE (15 bins)" in out and "6 epochs trained" in out
    assert "test accuracy" in out  # the CLI's summary line
    tags = scalar_tags(run_dir)
    for tag in TAGS:
        assert tag in tags, tag
    assert [step for step, _ in tags["losses/cross_entropy"]] == [1, 2, 3, 4, 5, 6]
    assert [step for step, _ in tags["eval/accuracy"]] == [3, 6]
    # The first logged loss is the untrained model's, close to ln 10.
    assert abs(tags["losses/initial_cross_entropy"][0][1] - math.log(10)) < 0.5
    final = summary(run_dir)["final_eval"]
    assert final["eval/accuracy"] > 0.8
    assert final["eval/accuracy_calibrated"] == final["eval/accuracy"]
    assert (run_dir / "checkpoints" / "step_0000000006" / "agent.pt").is_file()

    assert main(["eval", str(run_dir)]) == 0
    out, _ = capsys.readouterr()
    assert "6 epochs trained" in out and "calibration on the test split" in out
    assert f"accuracy {final['eval/accuracy']:.4f}" in out
    assert f"calibration/temperature {final['calibration/temperature']:.4f}" in out
    # Episodes, their seed and rendering do not exist for a test-set score: refused, not ignored.
    assert main(["eval", str(run_dir), "--episodes", "5", "--seed", "1"]) == 2
    _, err = capsys.readouterr()
    assert err == (
        "rlsoft: error: --episodes and --seed cannot apply here: a classifier is scored on its "
        "test set, with no episodes; leave --episodes and --seed out\n"
    )


def test_early_stopping_ends_the_run_before_the_budget(tmp_path: Path, capsys) -> None:
    # min_delta 10 nats: only the first epoch (from an infinite best) counts as improvement.
    rc, out, err = train(
        [
            str(CONFIGS / "digits_mlp.yaml"),
            "--logdir",
            str(tmp_path),
            "--set",
            "run_name=mlp",
            "--set",
            "agent.patience=2",
            "--set",
            "agent.min_delta=10",
        ],
        capsys,
    )
    assert rc == 0, err
    assert "3 epochs trained, early stopping kept epoch 1" in out
    result = summary(tmp_path / "mlp")
    assert result["steps"] == 3 and result["final_eval"]["eval/best_epoch"] == 1
    assert (tmp_path / "mlp" / "checkpoints" / "step_0000000003").is_dir()


def test_resume_continues_a_classifier_run(tmp_path: Path, capsys) -> None:
    common = ["--set", "agent.hidden_sizes=[32]", "--set", "agent.patience=null"]
    config = str(CONFIGS / "digits_mlp.yaml")
    rc, _, err = train(
        [
            config,
            "--logdir",
            str(tmp_path),
            "--set",
            "run_name=r",
            "--set",
            "train.total_steps=2",
            *common,
        ],
        capsys,
    )
    assert rc == 0, err
    rc, out, err = train(["--resume", str(tmp_path / "r"), "--set", "train.total_steps=4"], capsys)
    assert rc == 0, err
    assert "4 epochs trained" in out
    assert summary(tmp_path / "r")["steps"] == 4
    steps = [s for s, _ in scalar_tags(tmp_path / "r")["losses/cross_entropy"]]
    assert sorted(steps) == [1, 2, 3, 4]  # two event files may share a second: any order


def test_same_config_and_seed_give_identical_runs(tmp_path: Path, capsys) -> None:
    finals = []
    for name in ("a", "b"):
        rc, _, err = train(
            [
                str(CONFIGS / "digits_mlp.yaml"),
                "--logdir",
                str(tmp_path),
                "--seed",
                "3",
                "--set",
                f"run_name={name}",
                "--set",
                "train.total_steps=3",
                "--set",
                "agent.hidden_sizes=[32]",
            ],
            capsys,
        )
        assert rc == 0, err
        finals.append(summary(tmp_path / name)["final_eval"])
    assert finals[0] == finals[1]


def _built_classifier(seed: int):
    config = load_config(CONFIGS / "digits_mlp.yaml", ["agent.hidden_sizes=[16]"], seed=seed)
    return config, build_driver(config)


def test_weight_init_and_minibatch_shuffling_have_their_own_streams(monkeypatch) -> None:
    import torch

    from agents.classifier.agent import make_network
    from rlsoft.rl.seeding import derive_seeds
    from rlsoft.supervised.driver import SupervisedSeeds, supervised_seeds

    config, driver = _built_classifier(seed=5)
    streams = supervised_seeds(derive_seeds(5).torch)
    # Built independently: the initial weights come from the init seed alone …
    torch.manual_seed(streams.init)
    fresh = make_network(config.agent_config(), driver.splits.num_features, 10)
    for a, b in zip(fresh.state_dict().values(), driver.network.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # … and the minibatch order from the shuffle seed, a different stream: the first epoch's
    # order is not drawn from the numbers that initialised the weights.
    shuffle_state = torch.Generator().manual_seed(streams.shuffle).get_state()
    init_state = torch.Generator().manual_seed(streams.init).get_state()
    assert torch.equal(driver.generator.get_state(), shuffle_state)
    assert not torch.equal(shuffle_state, init_state)
    n = len(driver.splits.y_train)
    assert not torch.equal(
        torch.randperm(n, generator=torch.Generator().manual_seed(streams.shuffle)),
        torch.randperm(n, generator=torch.Generator().manual_seed(streams.init)),
    )

    # Another shuffle stream leaves the initial weights alone (and vice versa).
    other = SupervisedSeeds(init=streams.init, shuffle=streams.shuffle + 1)
    monkeypatch.setattr("rlsoft.supervised.driver.supervised_seeds", lambda seed: other)
    _, reshuffled = _built_classifier(seed=5)
    for a, b in zip(weights_of(driver), weights_of(reshuffled), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(reshuffled.generator.get_state(), driver.generator.get_state())
    monkeypatch.setattr(
        "rlsoft.supervised.driver.supervised_seeds",
        lambda seed: SupervisedSeeds(init=streams.init + 1, shuffle=streams.shuffle),
    )
    _, reinitialised = _built_classifier(seed=5)
    assert torch.equal(reinitialised.generator.get_state(), driver.generator.get_state())
    assert any(
        not torch.equal(a, b)
        for a, b in zip(weights_of(driver), weights_of(reinitialised), strict=True)
    )


def weights_of(driver) -> list:
    return [p.detach().clone() for p in driver.network.state_dict().values()]


def test_an_env_section_for_digits_is_a_clear_error(tmp_path: Path, capsys) -> None:
    rc, _, err = train(
        [
            str(CONFIGS / "digits_softmax_regression.yaml"),
            "--logdir",
            str(tmp_path),
            "--set",
            "env.id=CartPole-v1",
        ],
        capsys,
    )
    assert rc == 2
    assert "set env: null" in err and "Traceback" not in err


# --------------------------------------------------------------------------------------------
# Behaviour cloning
# --------------------------------------------------------------------------------------------


class LinearCartPoleTeacher:
    """A fixed linear controller dressed as a Q-learning agent: Q(s) = (−w·s, w·s), so the
    greedy action pushes right when w·s > 0. It balances CartPole-v1 for all 500 steps."""

    checkpoint_suffix = ".npz"

    def __init__(self, ctx) -> None:
        self.policy = ctx.policy
        self.w = np.array([0.1, 0.5, 10.0, 2.0])

    def act(self, obs, step: int) -> int:
        return self.act_greedy(obs)

    def act_greedy(self, obs) -> int:
        return int(np.asarray(obs) @ self.w > 0)

    def observe(self, *transition) -> None:
        pass

    def q_values(self, observations) -> np.ndarray:
        s = np.atleast_2d(observations) @ self.w
        return np.stack([-s, s], axis=1)

    def metrics(self) -> dict[str, float]:
        return {}

    def save(self, path: Path) -> None:
        with open(path, "wb") as handle:
            np.savez(handle, w=self.w)

    def load(self, path: Path) -> None:
        self.w = np.load(path)["w"]


class _NoOptions(StrictModel):
    pass


register_agent(AgentSpec("test_linear_cartpole_teacher", _NoOptions, LinearCartPoleTeacher))


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def bc_config(teacher_run: Path, *, episodes: int, extra: dict | None = None, **agent) -> dict:
    dataset = {"name": "behavior_cloning", "teacher_run": str(teacher_run), "episodes": episodes}
    return {
        "name": "bc",
        "seed": 0,
        "env": None,
        "agent": {
            "type": "classifier",
            "model": "softmax_regression",
            "optimizer": "lbfgs",
            "weight_decay": 1e-4,
            "patience": None,
            "dataset": {**dataset, **(extra or {})},
            **agent,
        },
        "train": {"total_steps": 200, "eval_every": 0, "eval_episodes": 10, "log_every": 1},
    }


def test_behavior_cloning_trains_a_missing_tabular_teacher_first(tmp_path: Path, capsys) -> None:
    teacher_config = write_yaml(
        tmp_path / "teacher.yaml",
        {
            "seed": 0,
            "env": {"id": "FrozenLake-v1", "kwargs": {"is_slippery": False}},
            "agent": {"type": "q_learning", "learning_rate": 0.5, "gamma": 0.95},
            "exploration": {"policy": "epsilon_greedy", "epsilon": 0.2},
            "train": {"total_steps": 5000, "eval_every": 0, "eval_episodes": 5, "log_every": 1000},
        },
    )
    teacher_run = tmp_path / "runs" / "frozenlake_teacher"
    config = bc_config(teacher_run, episodes=5, extra={"teacher_config": str(teacher_config)})
    path = write_yaml(tmp_path / "bc.yaml", config)
    rc, out, err = train(
        [str(path), "--logdir", str(tmp_path / "runs"), "--set", "run_name=bc"], capsys
    )
    assert rc == 0, err
    assert f"teacher run {teacher_run} not found: training it first from {teacher_config}" in out
    assert (teacher_run / "summary.json").is_file()
    final = summary(tmp_path / "runs" / "bc")["final_eval"]
    # One-hot states of the deterministic lake: the cloned policy walks the teacher's path.
    assert final["eval/teacher_mean_return"] == 1.0
    assert final["eval/mean_return"] == 1.0 and final["eval/accuracy"] == 1.0

    assert main(["eval", str(tmp_path / "runs" / "bc")]) == 0
    out, _ = capsys.readouterr()
    assert "greedy classifier policy on FrozenLake-v1: return 1.00 ± 0.00" in out
    assert "teacher run" not in out  # evaluating reuses the teacher, never retrains it
    assert main(["eval", str(tmp_path / "runs" / "bc"), "--episodes", "2", "--seed", "4"]) == 0
    assert "over 2 episodes" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "runs" / "bc"), "--render"]) == 2
    assert "--render cannot apply here" in capsys.readouterr().err

    shutil.rmtree(teacher_run)
    assert main(["eval", str(tmp_path / "runs" / "bc")]) == 2
    _, err = capsys.readouterr()
    assert "needs its teacher run" in err and not teacher_run.exists()


def test_behavior_cloning_without_a_teacher_says_how_to_get_one(tmp_path: Path, capsys) -> None:
    path = write_yaml(tmp_path / "bc.yaml", bc_config(tmp_path / "nowhere", episodes=5))
    rc, _, err = train([str(path), "--logdir", str(tmp_path / "runs")], capsys)
    assert rc == 2
    assert "does not exist" in err and "teacher_config" in err


def linear_teacher(tmp_path: Path) -> Path:
    config = validate_config(
        {
            "name": "teacher",
            "seed": 0,
            "logdir": str(tmp_path),
            "run_name": "linear_teacher",
            "env": {"id": "CartPole-v1"},
            "agent": {"type": "test_linear_cartpole_teacher"},
            "train": {"total_steps": 10, "eval_every": 0, "eval_episodes": 2, "log_every": 10},
        }
    )
    return run_experiment(config).run_dir


@pytest.mark.slow
def test_ci_behavior_cloning_of_a_linear_cartpole_teacher(tmp_path: Path) -> None:
    """Box observations: 10 teacher episodes suffice for ≥ 95 % of the teacher's return on
    evaluation episodes that start elsewhere (and to tell which way to push 97 % of the time
    on held-out episodes)."""
    teacher_run = linear_teacher(tmp_path)
    config = validate_config(bc_config(teacher_run, episodes=10) | {"logdir": str(tmp_path)})
    final = run_experiment(config).final_eval
    assert final["eval/teacher_mean_return"] == 500.0
    assert final["eval/mean_return"] >= 0.95 * final["eval/teacher_mean_return"]
    assert final["eval/return_ratio"] >= 0.95
    assert final["eval/accuracy"] >= 0.9


# --------------------------------------------------------------------------------------------
# Results that hold up (slow)
# --------------------------------------------------------------------------------------------


def fit_digits(config_name: str, seed: int, **agent) -> dict[str, float]:
    config = load_config(CONFIGS / config_name, seed=seed)
    if agent:
        config = validate_config(config.to_dict() | {"agent": config.to_dict()["agent"] | agent})
    driver = build_driver(config)
    driver.echo = lambda _: None
    driver.fit()
    return driver.evaluate(driver.epoch)


@pytest.mark.slow
def test_ci_softmax_regression_digits_accuracy() -> None:
    """Mean test accuracy over five splits ≥ 0.96 (one split of 359 images moves it ±0.01)."""
    results = [fit_digits("digits_softmax_regression.yaml", seed) for seed in range(5)]
    accuracy = [r["eval/accuracy"] for r in results]
    assert np.mean(accuracy) >= 0.96, accuracy
    assert min(accuracy) >= 0.945, accuracy
    for r in results:
        assert r["eval/accuracy_calibrated"] == r["eval/accuracy"]


@pytest.mark.slow
def test_mlp_digits_accuracy_and_temperature_scaling() -> None:
    """≥ 0.975 test accuracy on every split tried; temperature scaling keeps the accuracy and
    lowers the test ECE every time, and the test NLL on most splits.

    τ minimises the NLL of the 180-sample validation split, which says nothing certain about
    the test split's: on seed 1 a validation split with one confident mistake fits τ ≈ 0.07,
    too sharp for the test split (NLL 0.196 → 0.317; README's classifier section says so).
    """
    improved = 0
    for seed in range(5):
        r = fit_digits("digits_mlp.yaml", seed)
        assert r["eval/accuracy"] >= 0.975, (seed, r)
        assert r["eval/accuracy_calibrated"] == r["eval/accuracy"]
        assert r["eval/ece_calibrated"] < r["eval/ece"], (seed, r)
        improved += r["eval/nll_calibrated"] < r["eval/nll"]
    assert improved >= 4, improved


@pytest.mark.slow
def test_cartpole_behavior_cloning_config_reaches_95_percent_of_its_dqn_teacher(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    config_path = CONFIGS / "cartpole_behavior_cloning.yaml"
    teacher_config = ROOT / load_config(config_path).agent["dataset"]["teacher_config"]
    if "dqn" not in agent_names() or not teacher_config.is_file():
        pytest.skip(f"the DQN teacher config {teacher_config.name} is not in this checkout yet")
    monkeypatch.chdir(ROOT)
    teacher_run = tmp_path / "cartpole_teacher"
    rc, out, err = train(
        [
            str(config_path),
            "--logdir",
            str(tmp_path),
            "--set",
            "run_name=bc",
            "--set",
            f"agent.dataset.teacher_run={teacher_run}",
        ],
        capsys,
    )
    assert rc == 0, err
    assert f"teacher run {teacher_run} not found: training it first" in out
    final = summary(tmp_path / "bc")["final_eval"]
    assert final["eval/mean_return"] >= 0.95 * final["eval/teacher_mean_return"], final
