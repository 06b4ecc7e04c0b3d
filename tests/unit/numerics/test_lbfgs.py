"""The one-iteration-per-call L-BFGS against closed-form and scipy minima."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize, rosen, rosen_der

from rlsoft.numerics.lbfgs import LBFGS


def quadratic(a: np.ndarray, b: np.ndarray):
    return lambda x: (0.5 * x @ a @ x - b @ x, a @ x - b)


def run(opt: LBFGS, objective, iterations: int) -> LBFGS:
    for _ in range(iterations):
        opt.step(objective)
    return opt


def test_ill_conditioned_quadratic_reaches_the_closed_form_minimum() -> None:
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    a = q @ np.diag(np.geomspace(1.0, 1e3, 8)) @ q.T
    b = rng.normal(size=8)
    opt = run(LBFGS(np.zeros(8)), quadratic(a, b), 60)
    np.testing.assert_allclose(opt.x, np.linalg.solve(a, b), rtol=1e-6, atol=1e-8)


def test_rosenbrock_matches_scipy() -> None:
    opt = run(LBFGS(np.array([-1.2, 1.0, -0.5, 0.8])), lambda x: (rosen(x), rosen_der(x)), 200)
    reference = minimize(rosen, [-1.2, 1.0, -0.5, 0.8], jac=rosen_der, method="L-BFGS-B").x
    np.testing.assert_allclose(opt.x, reference, atol=1e-4)
    np.testing.assert_allclose(opt.x, np.ones(4), atol=1e-4)


def test_the_first_step_is_at_most_one_in_the_l1_norm_and_history_is_bounded() -> None:
    objective = quadratic(np.eye(3) * 100.0, np.full(3, 100.0))
    opt = LBFGS(np.zeros(3), history=2)
    result = opt.step(objective)
    assert result.moved and np.abs(opt.x).sum() == pytest.approx(1.0)
    run(opt, objective, 5)
    assert len(opt.s) <= 2 and len(opt.y) == len(opt.s)


def test_a_flat_objective_reports_no_move() -> None:
    opt = LBFGS(np.zeros(2))
    result = opt.step(lambda x: (1.0, np.array([1.0, 0.0])))  # the "gradient" never pays off
    assert not result.moved and np.array_equal(opt.x, np.zeros(2))


def test_state_round_trip_continues_identically() -> None:
    objective = lambda x: (rosen(x), rosen_der(x))  # noqa: E731
    straight = run(LBFGS(np.array([-1.2, 1.0, 0.3])), objective, 20)
    first = run(LBFGS(np.array([-1.2, 1.0, 0.3])), objective, 10)
    resumed = LBFGS(np.zeros(3))
    resumed.load_state_arrays({k: v.copy() for k, v in first.state_arrays().items()})
    run(resumed, objective, 10)
    np.testing.assert_array_equal(resumed.x, straight.x)
    fresh = LBFGS(np.ones(3))
    fresh.load_state_arrays(LBFGS(np.ones(3)).state_arrays())  # nothing evaluated yet
    assert fresh.f is None and fresh.g is None and fresh.s == []
