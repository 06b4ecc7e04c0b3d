"""The supervised driver: first-loss sanity check, early stopping, checkpoints, determinism.

Runs on small synthetic data sets (Gaussian blobs) so that every test takes milliseconds.
"""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from scipy.special import softmax as scipy_softmax
from torch import nn

from rlsoft.errors import RlsoftError
from rlsoft.supervised.datasets import DatasetSplits
from rlsoft.supervised.driver import (
    GreedyClassifierPolicy,
    SupervisedDriver,
    TrainingOptions,
    initial_loss_problem,
    supervised_seeds,
)

D, K = 5, 3


def blobs(seed: int = 0, n: int = 300, noise: float = 1.0, signal: bool = True) -> DatasetSplits:
    """K Gaussian blobs in D dimensions (features offset and scaled like raw pixels), split
    60/20/20; ``signal=False`` draws the labels independently of the features."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(K, D))
    y = rng.integers(K, size=n)
    x = centers[y] + rng.normal(scale=noise, size=(n, D))
    x = (10.0 + 5.0 * x).astype(np.float32)
    if not signal:
        y = rng.integers(K, size=n)
    y = y.astype(np.int64)
    a, b = int(0.6 * n), int(0.8 * n)
    return DatasetSplits("blobs", x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], num_classes=K)


def make_driver(
    *,
    seed: int = 0,
    data: DatasetSplits | None = None,
    network: nn.Module | None = None,
    epochs: int = 50,
    **options,
) -> SupervisedDriver:
    torch.manual_seed(seed)
    options.setdefault("batch_size", 32)
    return SupervisedDriver(
        network
        if network is not None
        else nn.Sequential(nn.Linear(D, 16), nn.ReLU(), nn.Linear(16, K)),
        data if data is not None else blobs(),
        options=TrainingOptions(**options),
        total_epochs=epochs,
        seed=seed,
        echo=lambda _: None,
    )


def weights(driver: SupervisedDriver, which: str = "model") -> list[torch.Tensor]:
    return [p.detach().clone() for p in getattr(driver, which).state_dict().values()]


# --------------------------------------------------------------------------------------------
# The first loss against ln K
# --------------------------------------------------------------------------------------------


def test_initial_loss_problem_thresholds() -> None:
    ln10 = math.log(10)
    assert initial_loss_problem(ln10, 10) is None
    assert initial_loss_problem(ln10 + 1.1, 10) is None  # tolerance max(1, ln K / 2) = 1.15
    high = initial_loss_problem(ln10 + 5.0, 10)
    assert high is not None and "unscaled inputs" in high and "initialisation" in high
    low = initial_loss_problem(0.05, 100)  # ln 100 = 4.6: a model right before training
    assert low is not None and "labels leaking" in low
    assert "NaN" in initial_loss_problem(float("nan"), 10)


def test_first_loss_warning_fires_for_scaled_up_logits() -> None:
    network = nn.Linear(D, K)
    with torch.no_grad():
        network.weight.mul_(100.0)  # logits 100× too large: confidently wrong on ~2/3
    driver = make_driver(network=network)
    with pytest.warns(RuntimeWarning, match=r"should start near ln K = 1\.099.*unscaled inputs"):
        driver.advance(1, 0)
    assert driver.initial_loss > math.log(K) + 5
    assert driver.window_metrics(1)["losses/initial_cross_entropy"] == driver.initial_loss


def test_no_first_loss_warning_for_a_fresh_model() -> None:
    # The raw features are offset by 10 and scaled by 5; the driver standardises them.
    for network in (nn.Linear(D, K), nn.Sequential(nn.Linear(D, 64), nn.ReLU(), nn.Linear(64, K))):
        driver = make_driver(network=network)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            driver.advance(1, 0)
        assert abs(driver.initial_loss - math.log(K)) < 0.5
        assert driver.initial_loss_warning is None


# --------------------------------------------------------------------------------------------
# Training, early stopping, scoring
# --------------------------------------------------------------------------------------------


def test_learns_separable_blobs_with_both_optimizers() -> None:
    for options in (
        {"optimizer": "adam", "learning_rate": 1e-2},
        {"optimizer": "lbfgs", "batch_size": None},
    ):
        driver = make_driver(network=nn.Linear(D, K), **options)
        driver.fit()
        result = driver.evaluate(driver.epoch)
        assert result["eval/accuracy"] >= 0.95, options
        assert result["eval/accuracy_calibrated"] == result["eval/accuracy"]
        assert driver.window_metrics(driver.epoch)["losses/cross_entropy"] < 0.3


def test_lbfgs_converges_and_finishes() -> None:
    driver = make_driver(
        network=nn.Linear(D, K),
        optimizer="lbfgs",
        batch_size=None,
        weight_decay=1e-2,
        patience=None,
    )
    driver.fit()
    # float32 cannot resolve the last decreases of this well-conditioned loss: L-BFGS either
    # reaches the tolerance or stalls, and both end training well before the budget.
    assert driver.converged and driver.finished and driver.epoch < 50
    assert driver.stop_reason in ("converged", "stalled")
    grads = [p.grad.abs().max() for p in driver.network.parameters()]
    assert max(grads) <= 1e-3


def test_adam_weight_decay_is_the_l2_penalty_on_weights_only() -> None:
    """Adam's parameter groups decay W but not b: full-batch epochs equal plain Adam steps on
    the explicit objective mean CE + ½·λ·‖W‖² (autograd of the penalty, torch's loss). Several
    steps, because Adam's first step is ±lr whatever the gradient's size."""
    torch.manual_seed(0)
    linear = nn.Linear(D, K)
    reference = copy.deepcopy(linear)
    data = blobs()
    driver = make_driver(
        network=linear, data=data, batch_size=None, weight_decay=0.5, learning_rate=0.1
    )
    driver.advance(5, 0)
    mean, std = data.standardization()
    x = torch.as_tensor((data.x_train - mean) / std)
    y = torch.as_tensor(data.y_train)
    optimizer = torch.optim.Adam(reference.parameters(), lr=0.1)
    for _ in range(5):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(reference(x), y)
        (loss + 0.25 * reference.weight.pow(2).sum()).backward()
        optimizer.step()
    torch.testing.assert_close(linear.weight, reference.weight, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(linear.bias, reference.bias, atol=1e-6, rtol=1e-5)


def test_lbfgs_softmax_regression_matches_scikit_learn_logistic_regression() -> None:
    """With λ = 1/(C·n_train), mean cross-entropy + ½·λ·‖W‖² is scikit-learn's multinomial
    LogisticRegression(C) objective divided by n (intercepts unpenalised in both): the same
    strictly convex problem in W, so the same weights, predictions and probabilities."""
    from sklearn.linear_model import LogisticRegression

    data = blobs(seed=3, n=600, noise=2.0)  # overlapping blobs: the penalty matters
    n, c = len(data.y_train), 0.5
    driver = make_driver(
        network=nn.Linear(D, K),
        data=data,
        epochs=500,
        optimizer="lbfgs",
        batch_size=None,
        weight_decay=1.0 / (c * n),
        patience=None,
        tolerance=1e-6,
    )
    driver.fit()
    assert driver.converged
    mean, std = data.standardization()
    reference = LogisticRegression(C=c, tol=1e-10, max_iter=10_000)
    reference.fit((data.x_train - mean) / std, data.y_train)
    linear = driver.network
    np.testing.assert_allclose(linear.weight.detach().numpy(), reference.coef_, atol=2e-3)
    # Unpenalised intercepts are determined only up to a shift common to all classes.
    bias = linear.bias.detach().numpy()
    np.testing.assert_allclose(
        bias - bias.mean(), reference.intercept_ - reference.intercept_.mean(), atol=2e-3
    )
    x_test = (data.x_test - mean) / std
    np.testing.assert_array_equal(driver.predict(data.x_test), reference.predict(x_test))
    np.testing.assert_allclose(
        scipy_softmax(driver.logits(data.x_test), axis=1),
        reference.predict_proba(x_test),
        atol=1e-3,
    )


def test_early_stopping_keeps_the_best_validation_weights() -> None:
    # Labels independent of the features: the validation NLL gets worse as the model overfits.
    driver = make_driver(data=blobs(signal=False), epochs=500, patience=3, learning_rate=1e-2)
    driver.fit()
    assert driver.finished and not driver.converged
    assert driver.epoch == driver.best_epoch + 3 < 500
    assert driver.eval_model is driver.best_model
    best_val, _ = driver._score(driver.best_model, "val")
    assert best_val == pytest.approx(driver.best_val_loss)
    last_val, _ = driver._score(driver.model, "val")
    assert last_val > best_val
    assert driver.evaluate(driver.epoch)["eval/best_epoch"] == driver.best_epoch


def test_predictions_use_argmax_and_probabilities_the_fitted_temperature() -> None:
    driver = make_driver(epochs=10)
    driver.fit()
    driver.evaluate(10)
    x = driver.splits.x_test
    logits = driver.logits(x)
    np.testing.assert_array_equal(driver.predict(x), logits.argmax(axis=1))
    np.testing.assert_allclose(
        driver.predict_proba(x), scipy_softmax(logits / driver.temperature, axis=1), rtol=1e-10
    )


def test_the_final_evaluation_prints_the_calibration_report() -> None:
    lines: list[str] = []
    driver = make_driver(epochs=3)
    driver.echo = lines.append
    driver.advance(2, 0)
    driver.evaluate(2)
    assert lines == []  # an evaluation before the end of the budget stays quiet
    driver.advance(1, 2)
    driver.evaluate(3)
    text = "\n".join(lines)
    assert "3 epochs trained" in text and "before (τ=1)" in text and "ECE (15 bins)" in text


# --------------------------------------------------------------------------------------------
# Determinism and checkpoints
# --------------------------------------------------------------------------------------------


def test_supervised_seeds_are_independent_children_of_the_torch_seed() -> None:
    seen = set()
    for torch_seed in (0, 1, 2, 2**32 - 1, 12345678901):
        streams = supervised_seeds(torch_seed)
        assert streams == supervised_seeds(torch_seed)  # reproducible
        # SeedSequence(root).spawn(2), the children's first 32-bit words (numpy's documented
        # way to get independent streams, as rlsoft.rl.seeding.derive_seeds does for RL)
        children = np.random.SeedSequence(torch_seed).spawn(2)
        want = [int(c.generate_state(1, dtype=np.uint32)[0]) for c in children]
        assert [streams.init, streams.shuffle] == want
        assert streams.init != streams.shuffle
        assert 0 <= streams.init < 2**32 and 0 <= streams.shuffle < 2**32
        seen.update((streams.init, streams.shuffle))
    assert len(seen) == 10
    with pytest.raises(ValueError, match="non-negative"):
        supervised_seeds(-1)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_same_seed_same_result_other_seed_other_result(optimizer: str) -> None:
    options = {"optimizer": optimizer, "batch_size": None if optimizer == "lbfgs" else 32}
    runs = []
    for seed in (1, 1, 2):
        driver = make_driver(seed=seed, epochs=8, patience=None, **options)
        driver.fit()
        runs.append((weights(driver), driver.evaluate(8)))
    for a, b in zip(runs[0][0], runs[1][0], strict=True):
        assert torch.equal(a, b)
    assert runs[0][1] == runs[1][1]
    assert any(not torch.equal(a, b) for a, b in zip(runs[0][0], runs[2][0], strict=True))


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_checkpoint_round_trip_resumes_exactly(optimizer: str, tmp_path: Path) -> None:
    options = {"optimizer": optimizer, "batch_size": None if optimizer == "lbfgs" else 32}
    straight = make_driver(seed=4, epochs=8, patience=None, **options)
    straight.advance(8, 0)

    first = make_driver(seed=4, epochs=8, patience=None, **options)
    first.advance(4, 0)
    first.evaluate(4)  # sets τ, which the checkpoint carries
    path = tmp_path / first.agent_file
    first.save_agent(path)
    state = first.state_dict()

    resumed = make_driver(seed=99, epochs=8, patience=None, **options)  # other init, other shuffle
    resumed.load_agent(path)
    resumed.load_state_dict(state)
    assert resumed.temperature == first.temperature
    assert resumed.epoch == 4
    resumed.advance(4, 4)
    for a, b in zip(weights(straight), weights(resumed), strict=True):
        assert torch.equal(a, b)


def test_load_rejects_other_architectures_and_foreign_files(tmp_path: Path) -> None:
    small = make_driver(network=nn.Linear(D, K))
    path = tmp_path / "agent.pt"
    small.save_agent(path)
    with pytest.raises(RlsoftError, match="does not fit this classifier"):
        make_driver().load_agent(path)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(RlsoftError, match="not a classifier checkpoint"):
        small.load_agent(tmp_path / "other.pt")


# --------------------------------------------------------------------------------------------
# Construction errors and the policy view
# --------------------------------------------------------------------------------------------


def test_construction_errors() -> None:
    with pytest.raises(RlsoftError, match="full training split"):
        make_driver(optimizer="lbfgs", batch_size=64)
    with pytest.raises(RlsoftError, match=r"outputs \(4,\) logits .* 3 classes"):
        make_driver(network=nn.Linear(D, 4))
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainingOptions(label_smoothing=1.5)
    with pytest.raises(ValueError, match="patience"):
        TrainingOptions(patience=0)


def test_greedy_classifier_policy_one_hot_encodes_discrete_observations() -> None:
    network = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        network.weight.copy_(torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]]))
    policy = GreedyClassifierPolicy(network, gym.spaces.Discrete(4))
    assert [policy.act_greedy(s) for s in range(4)] == [0, 1, 0, 1]
