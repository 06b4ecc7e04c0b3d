"""The mellowmax target (Asadi & Littman, 2017) against 50-digit arithmetic and its limits."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.dqn import DQNConfig
from agents.dqn.targets import mellowmax_values


def mellowmax_mp(row, omega) -> float:
    """mm_ω(x) = log((1/n) Σ_i exp(ω·x_i)) / ω, the paper's definition, in 50 digits."""
    mpmath.mp.dps = 50
    w = mpmath.mpf(omega)
    total = mpmath.fsum(mpmath.exp(w * mpmath.mpf(float(v))) for v in row)
    return float(mpmath.log(total / len(row)) / w)


@given(
    rows=st.lists(
        st.lists(st.floats(-50, 50, width=32), min_size=1, max_size=6).filter(bool),
        min_size=1,
        max_size=4,
    ).map(lambda rs: [r[: min(len(x) for x in rs)] for r in rs]),
    omega=st.sampled_from([0.05, 0.5, 1.0, 3.0, 20.0, 400.0]),
)
@settings(max_examples=60, deadline=None)
def test_mellowmax_matches_50_digit_arithmetic(rows, omega):
    q = torch.tensor(rows, dtype=torch.float64)
    got = mellowmax_values(q, omega).numpy()
    want = [mellowmax_mp(r, omega) for r in rows]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * (1 + 1 / omega))


def test_mellowmax_in_float32_keeps_the_precision_its_docstring_promises():
    q = torch.tensor([[1.0, 2.0, 4.0], [-3.0, 0.5, 0.25]], dtype=torch.float32)
    for omega in (1e-3, 0.1, 10.0, 1e4):
        want = [mellowmax_mp(r, omega) for r in q.tolist()]
        bound = 1e-6 * (1 + 4.0) + 2e-7 * math.log(3) / omega  # ~ eps·(|x| + log(n)/ω)
        np.testing.assert_allclose(mellowmax_values(q, omega).numpy(), want, rtol=0, atol=bound)


def test_large_omega_tends_to_the_max_and_small_omega_to_the_mean():
    rng = np.random.default_rng(0)
    q = torch.tensor(rng.normal(size=(20, 5)) * 3, dtype=torch.float64)
    top, mean = q.amax(dim=1).numpy(), q.mean(dim=1).numpy()
    for omega in (1e2, 1e4, 1e6):
        got = mellowmax_values(q, omega).numpy()
        # log(k/n)/ω ≤ mm_ω − max ≤ 0, with k ≥ 1 the number of maximal entries
        assert np.all(got <= top + 1e-12)
        assert np.all(got >= top - math.log(5) / omega - 1e-12)
    for omega in (1e-3, 1e-4, 1e-6):
        got = mellowmax_values(q, omega).numpy()
        # mm_ω = mean + (ω/2)·Var + O(ω²): the gap shrinks in proportion to ω
        var = q.var(dim=1, unbiased=False).numpy()
        np.testing.assert_allclose(got - mean, omega / 2 * var, rtol=0.05, atol=1e-9)


def test_mellowmax_lies_between_mean_and_max_and_is_monotone_in_omega():
    q = torch.tensor([[0.0, 1.0, 5.0, -2.0]], dtype=torch.float64)
    values = [float(mellowmax_values(q, w)) for w in (1e-3, 0.1, 1.0, 10.0, 100.0)]
    assert values == sorted(values)
    assert q.mean() < values[0] and values[-1] < q.max()


def test_mellowmax_is_a_non_expansion():
    """|mm_ω(x) − mm_ω(y)| ≤ max_i |x_i − y_i| (Asadi & Littman, 2017, §3)."""
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(size=(500, 4)) * 4)
    y = x + torch.tensor(rng.normal(size=(500, 4)))
    for omega in (0.3, 3.0, 30.0):
        gap = (mellowmax_values(x, omega) - mellowmax_values(y, omega)).abs()
        assert torch.all(gap <= (x - y).abs().amax(dim=1) + 1e-12)


def test_config_accepts_mellowmax_with_n_step_and_refuses_nonsense():
    assert DQNConfig(target="mellowmax", n_step=3).n_step == 3
    with pytest.raises(ValueError, match="double applies to the standard"):
        DQNConfig(target="mellowmax", double=True)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="mellowmax_omega"):
            DQNConfig(target="mellowmax", mellowmax_omega=bad)
    with pytest.raises(ValueError, match="omega must be a positive finite number"):
        mellowmax_values(torch.zeros(1, 2), 0.0)
