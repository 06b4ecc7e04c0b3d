"""rlsoft.numerics.functional against independent references.

Every number here is checked against something that does not share code with rlsoft:
mpmath at 50 digits (with error bounds of the size anchors.md measures for a max-shifted
softmax: a few ulp times ``1 + |x − max|/τ``), scipy.special, and torch's own kernels. The
torch backend of ``cross_entropy`` has its own file, ``test_torch_cross_entropy.py``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest
import scipy.special as sps
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import chisquare

import rlsoft
from rlsoft.numerics import functional as F

INF = math.inf
EPS = {
    np.dtype(np.float64): np.finfo(np.float64).eps,
    np.dtype(np.float32): np.finfo(np.float32).eps,
}
TINY = {
    np.dtype(np.float64): np.finfo(np.float64).tiny,
    np.dtype(np.float32): np.finfo(np.float32).tiny,
}
REDUCERS = (F.logsumexp, F.entropy)
ELEMENTWISE = (F.softmax, F.log_softmax)
ALL_FOUR = (F.softmax, F.log_softmax, F.logsumexp, F.entropy)


# --------------------------------------------------------------------------------------------
# mpmath reference (50 significant digits), straight from the definitions: no max-shift
# --------------------------------------------------------------------------------------------


def mp_reference(row, tau=1.0):
    """Exact-ish softmax quantities of one row (floats taken at their exact binary value).

    Returns a dict: lse = τ·log Σ exp(x/τ), logp_i, p_i, H = −Σ p log p (mpf) and the scaled
    gaps |x_i − max|/τ used in the error bounds. ``-inf`` entries are masked (p = 0).

    50 digits are relative to each result, so for x ≈ 1e300 the sum Σ exp(x/τ) would lose the
    O(1) differences; the gaps d_i = (x_i − max)/τ are therefore formed first (exact identity
    lse = max + τ·log Σ exp(d_i)), each correctly rounded at 50 digits.
    """
    with mp.workdps(50):
        t = mp.mpf(float(tau))
        xs = [None if v == -INF else mp.mpf(float(v)) for v in row]
        top = max(v for v in xs if v is not None)
        d = [None if v is None else (v - top) / t for v in xs]
        log_s = mp.log(mp.fsum(mp.exp(di) for di in d if di is not None))
        logp = [None if di is None else di - log_s for di in d]
        p = [mp.mpf(0) if lp is None else mp.exp(lp) for lp in logp]
        h = -mp.fsum(pi * lp for pi, lp in zip(p, logp, strict=True) if lp is not None)
        # A bound term per entry, p·(|log p| + 1)·(2 + gap + log S), kept in mp (p·log p may be
        # 0·huge in floats).
        h_terms = [
            None if lp is None else float(pi * (abs(lp) + 1) * (2 + abs(di) + log_s))
            for pi, lp, di in zip(p, logp, d, strict=True)
        ]
        gaps = [None if di is None else float(-di) for di in d]
        # x_i − max itself beyond the float range (only for spans over 1.8e308)
        span_overflows = [v is not None and float(top - v) == INF for v in xs]
        return {
            "lse": top + t * log_s,
            "h_terms": h_terms,
            "log_s": float(log_s),  # log Σ exp((x − max)/τ), in [0, log K]
            "logp": logp,
            "p": p,
            "h": h,
            "gaps": gaps,
            "span_overflows": span_overflows,
            "max": float(max(float(v) for v in row)),
            "k": sum(di is not None for di in d),
        }


def assert_softmax_close(p, ref, dtype):
    """Relative error ≤ 4·eps·(2 + |x − max|/τ) where the reference is a normal number."""
    eps, tiny = EPS[np.dtype(dtype)], TINY[np.dtype(dtype)]
    for i, (got, want, gap) in enumerate(zip(p, ref["p"], ref["gaps"], strict=True)):
        if gap is None:
            assert got == 0.0, f"masked entry {i} got probability {got}"
            continue
        want = float(want)
        if want < 2 * tiny:  # reference underflows: only ask for (near) zero
            assert 0.0 <= got <= 2 * tiny, (i, got, want)
            continue
        bound = 4 * eps * (2 + gap)
        assert abs(got - want) <= bound * want, (i, got, want, abs(got - want) / want, bound)


def assert_lse_close(value, ref, tau, dtype):
    eps = EPS[np.dtype(dtype)]
    want = float(ref["lse"])
    bound = 4 * eps * (abs(ref["max"]) + tau * (math.log(ref["k"]) + 1))
    assert abs(float(value) - want) <= bound, (float(value), want, bound)


def assert_log_softmax_close(logp, ref, dtype):
    eps = EPS[np.dtype(dtype)]
    for i, (got, want, gap) in enumerate(zip(logp, ref["logp"], ref["gaps"], strict=True)):
        if want is None:
            assert got == -INF, (i, got)
            continue
        if want < -np.finfo(dtype).max or ref["span_overflows"][i]:
            # Beyond the float range, or x_i − max is: the max-shift gives −inf (exact
            # probability 0, log probability ≤ −1.8e308/τ). A documented limit.
            assert got == -INF or abs(got - float(want)) <= 4 * EPS[np.dtype(dtype)] * -want
            continue
        bound = 4 * eps * (gap + ref["log_s"] + 1)
        assert abs(got - float(want)) <= bound, (i, got, float(want), bound)


def assert_entropy_close(value, ref, dtype):
    eps = EPS[np.dtype(dtype)]
    bound = 8 * eps * (1 + sum(term for term in ref["h_terms"] if term is not None))
    assert abs(float(value) - float(ref["h"])) <= bound, (float(value), float(ref["h"]), bound)


RNG_ROW = np.random.default_rng(1234).standard_normal(7) * 10
ROWS = {
    "seed_example": [2.0, 1.0, 0.0],
    "underflowing_tail": [0.0, -1000.0],
    "near_1e4": [1e4, 1e4 - 1.0, 1e4 - 30.0, 0.0],
    "huge_1e300": [1e300, 1e300, -1e300],
    "float_max_span": [1.7e308, -1.7e308, 0.0],
    "mask_and_tie": [-3.0, -INF, 5.0, 5.0],
    "random": RNG_ROW.tolist(),
    "uniform": [0.5] * 5,
    "wide_gaps": [-700.0, 0.0, -350.5, -1e-3],
    "tiny_values": [1e-300, -1e-300, 0.0],
    "long_row": np.random.default_rng(7).uniform(-40, 40, 40).tolist(),
}
TAUS = [1.0, 0.25, 3.0, 1e-9, 1e9]


def _layouts(row, dtype):
    """The same row as 1-D (fast path if short), (1, K) (fast path), (3, K) and (K, 3) axis=0."""
    x = np.asarray(row, dtype=dtype)
    return [
        ("1d", x, -1, lambda out: out),
        ("1xK", x[None, :], -1, lambda out: out[0]),
        ("3xK", np.tile(x, (3, 1)), -1, lambda out: out[1]),
        ("Kx3_axis0", np.tile(x, (3, 1)).T.copy(), 0, lambda out: out[..., 2]),
    ]


@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("name", sorted(ROWS))
def test_float64_against_mpmath(name, tau):
    row = ROWS[name]
    ref = mp_reference(row, tau)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # finite input must not even warn about overflow...
        if name == "float_max_span" and tau == 1.0:
            # ...except where x − max itself exceeds the float range (a documented trade-off:
            # no errstate on the τ = 1 path); the values must still be right.
            warnings.filterwarnings("ignore", "overflow", RuntimeWarning)
        for _, x, axis, pick in _layouts(row, np.float64):
            p = pick(F.softmax(x, axis, temperature=tau))
            assert_softmax_close(p, ref, np.float64)
            assert_log_softmax_close(pick(F.log_softmax(x, axis, temperature=tau)), ref, np.float64)
            lse = F.logsumexp(x, axis, temperature=tau)
            assert_lse_close(lse if np.ndim(lse) == 0 else pick(lse), ref, tau, np.float64)
            h = F.entropy(x, axis, temperature=tau)
            assert_entropy_close(h if np.ndim(h) == 0 else pick(h), ref, np.float64)


FLOAT32_ROWS = ["seed_example", "near_1e4", "mask_and_tie", "random", "uniform", "long_row"]


@pytest.mark.parametrize("tau", [1.0, 0.25, 3.0, 1e-9, 1e9])
@pytest.mark.parametrize("name", FLOAT32_ROWS)
def test_float32_against_mpmath(name, tau):
    row32 = np.asarray(ROWS[name], dtype=np.float32)
    ref = mp_reference(row32.tolist(), tau)  # the reference sees the float32 values exactly
    for _, x, axis, pick in _layouts(row32, np.float32):
        p = F.softmax(x, axis, temperature=tau)
        assert p.dtype == np.float32
        assert_softmax_close(pick(p), ref, np.float32)
        logp = F.log_softmax(x, axis, temperature=tau)
        assert logp.dtype == np.float32
        assert_log_softmax_close(pick(logp), ref, np.float32)
        lse = F.logsumexp(x, axis, temperature=tau)
        assert lse.dtype == np.float32
        assert_lse_close(lse if np.ndim(lse) == 0 else pick(lse), ref, tau, np.float32)
        h = F.entropy(x, axis, temperature=tau)
        assert h.dtype == np.float32
        assert_entropy_close(h if np.ndim(h) == 0 else pick(h), ref, np.float32)


def test_seed_worked_examples():
    # The seed tutorial's numbers: softmax([2, 1, 0]) ≈ [0.665, 0.245, 0.090] and
    # CE([2, 1, 0.1], 0) ≈ 0.417.
    np.testing.assert_allclose(F.softmax([2.0, 1.0, 0.0]), [0.665, 0.245, 0.090], atol=5e-4)
    assert F.cross_entropy([2.0, 1.0, 0.1], 0) == pytest.approx(0.417, abs=5e-4)
    assert rlsoft.cross_entropy([[1.0, 3.0, 2.0]], [1]) == pytest.approx(0.4076, abs=5e-4)
    assert int(F.argmax([2.1, 0.4, 5.3])) == 2
    with mp.workdps(50):
        z = [mp.mpf(2.0), mp.mpf(1.0), mp.mpf(0.1)]
        want = -(z[0] - mp.log(mp.fsum(mp.exp(v) for v in z)))
    assert F.cross_entropy([2.0, 1.0, 0.1], 0) == pytest.approx(float(want), rel=1e-15)


@pytest.mark.parametrize("offset", [0.0, 1e4, -1e4, 1e300])
def test_cross_entropy_against_mpmath_at_large_logits(offset):
    logits = np.array([[offset + 3.0, offset, offset - 50.0], [offset, offset - 1000.0, offset]])
    target = np.array([2, 1])
    with mp.workdps(50):
        want = []
        for row, y in zip(logits, target, strict=True):
            # −log p_y = log Σ_j exp(z_j − z_y): exact identity, no cancellation at 50 digits.
            zs = [mp.mpf(float(v)) for v in row]
            want.append(float(mp.log(mp.fsum(mp.exp(v - zs[y]) for v in zs))))
    got = F.cross_entropy(logits, target, reduction="none")
    # The logits themselves are rounded at |offset|·eps; the loss is exact relative to them.
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-14)


# --------------------------------------------------------------------------------------------
# scipy.special and torch references on random batches, both axes, temperatures
# --------------------------------------------------------------------------------------------


def _batch(seed=0, shape=(9, 13), scale=20.0, dtype=np.float64):
    x = np.random.default_rng(seed).standard_normal(shape) * scale
    x[1, 3] = -INF  # one masked entry
    x[2, :] = x[2, 0]  # a tied row
    return x.astype(dtype)


@pytest.mark.parametrize("tau", [1.0, 0.3, 7.0])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_against_scipy_special(axis, tau):
    x = _batch()
    z = x / tau
    np.testing.assert_allclose(
        F.softmax(x, axis, temperature=tau), sps.softmax(z, axis=axis), rtol=1e-12, atol=1e-300
    )
    np.testing.assert_allclose(
        F.log_softmax(x, axis, temperature=tau), sps.log_softmax(z, axis=axis), rtol=1e-12
    )
    np.testing.assert_allclose(
        F.logsumexp(x, axis, temperature=tau), tau * sps.logsumexp(z, axis=axis), rtol=1e-13
    )
    np.testing.assert_allclose(
        F.logsumexp(x, axis, temperature=tau, keepdims=True),
        tau * sps.logsumexp(z, axis=axis, keepdims=True),
        rtol=1e-13,
    )
    entropy_ref = sps.entr(sps.softmax(z, axis=axis)).sum(axis=axis)
    np.testing.assert_allclose(
        F.entropy(x, axis, temperature=tau), entropy_ref, rtol=1e-11, atol=1e-14
    )


@pytest.mark.parametrize("tau", [1.0, 0.3, 7.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_backend_against_torch_kernels(dtype, tau):
    x = torch.as_tensor(_batch(1), dtype=dtype)
    z = x / tau
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-15}
    for axis in (0, 1):
        torch.testing.assert_close(
            F.softmax(x, axis, temperature=tau), torch.softmax(z, dim=axis), **tol
        )
        torch.testing.assert_close(
            F.log_softmax(x, axis, temperature=tau), torch.log_softmax(z, dim=axis), **tol
        )
        torch.testing.assert_close(
            F.logsumexp(x, axis, temperature=tau), tau * torch.logsumexp(z, dim=axis), **tol
        )
        p = torch.softmax(z, dim=axis)
        h = -(torch.special.xlogy(p, p)).sum(dim=axis)
        torch.testing.assert_close(F.entropy(x, axis, temperature=tau), h, **tol)


def test_numpy_and_torch_backends_agree_with_each_other_and_torch():
    x = _batch(2, shape=(6, 5))
    t = torch.as_tensor(x)
    np.testing.assert_allclose(F.softmax(x), torch.softmax(t, -1).numpy(), rtol=1e-13)
    for f in ALL_FOUR:
        np.testing.assert_allclose(f(x, temperature=0.5), f(t, temperature=0.5).numpy(), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Gradients of the torch backend (float64 gradcheck), with temperature and masks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [1.0, 0.5, 3.0])
@pytest.mark.parametrize("f", ALL_FOUR, ids=lambda f: f.__name__)
def test_gradcheck_with_temperature(f, tau):
    x = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: f(v, temperature=tau), (x,))
    assert torch.autograd.gradcheck(lambda v: f(v, 0, temperature=tau), (x,))


@pytest.mark.parametrize("f", ALL_FOUR, ids=lambda f: f.__name__)
def test_gradients_match_torch_autograd_with_masks(f):
    base = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(base, dtype=torch.bool)
    mask[1, 2] = mask[3, 0] = False
    tau = 0.7
    x = base.masked_fill(~mask, -INF).requires_grad_(True)
    y = base.masked_fill(~mask, -INF).requires_grad_(True)
    weights = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))

    def reference(v):
        z = v / tau
        if f is F.softmax:
            return torch.softmax(z, -1)
        if f is F.log_softmax:
            return torch.log_softmax(z, -1)
        if f is F.logsumexp:
            return tau * torch.logsumexp(z, -1)
        p = torch.softmax(z, -1)
        return -(p * torch.log_softmax(z, -1).masked_fill(~mask, 0.0)).sum(-1)

    out, want = f(x, temperature=tau), reference(y)
    w = weights if out.dim() == 2 else weights[:, 0]
    finite = torch.isfinite(want)
    torch.testing.assert_close(out[finite], want[finite], rtol=1e-12, atol=1e-12)
    (out[finite] * w[finite]).sum().backward()
    (want[finite] * w[finite]).sum().backward()
    assert torch.isfinite(x.grad).all()
    torch.testing.assert_close(x.grad, y.grad, rtol=1e-10, atol=1e-12)
    assert (x.grad[~mask] == 0).all()


# --------------------------------------------------------------------------------------------
# Property tests (hypothesis)
# --------------------------------------------------------------------------------------------

finite_rows = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8),
    elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
)
temperatures = st.sampled_from([1.0, 0.05, 0.7, 4.0, 100.0])


@st.composite
def masked_rows(draw):
    x = draw(finite_rows)
    mask = draw(hnp.arrays(np.bool_, x.shape))
    mask[:, draw(st.integers(0, x.shape[1] - 1))] = True  # keep at least one entry per row
    return np.where(mask, x, -INF), mask


@given(masked_rows(), temperatures)
def test_softmax_rows_are_distributions(data, tau):
    x, mask = data
    p = F.softmax(x, temperature=tau)
    assert np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=0, atol=1e-13 * x.shape[1])
    assert np.all(p[~mask] == 0)


@given(finite_rows, st.floats(-1e3, 1e3), temperatures)
def test_shift_invariance(x, c, tau):
    np.testing.assert_allclose(
        F.softmax(x + c, temperature=tau), F.softmax(x, temperature=tau), rtol=0, atol=1e-9
    )
    # logsumexp is shift-equivariant instead.
    np.testing.assert_allclose(
        F.logsumexp(x + c, temperature=tau),
        F.logsumexp(x, temperature=tau) + c,
        rtol=0,
        atol=1e-9 * (1 + np.abs(x).max() + abs(c)),
    )


@given(masked_rows(), temperatures)
def test_log_softmax_is_log_of_softmax_where_finite(data, tau):
    x, _ = data
    logp = F.log_softmax(x, temperature=tau)
    p = F.softmax(x, temperature=tau)
    normal = p > 1e-300
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(logp[normal], np.log(p[normal]), rtol=1e-12, atol=1e-12)
    assert np.all(logp[p == 0] < -600) or not np.any(p == 0)


@given(masked_rows(), temperatures)
def test_entropy_between_zero_and_log_k(data, tau):
    x, mask = data
    h = F.entropy(x, temperature=tau)
    k = mask.sum(axis=-1)
    assert np.all(h >= 0)
    assert np.all(h <= np.log(k) + 1e-12)


@given(masked_rows(), temperatures)
def test_logsumexp_between_max_and_max_plus_tau_log_k(data, tau):
    x, mask = data
    lse = F.logsumexp(x, temperature=tau)
    top = x.max(axis=-1)
    k = mask.sum(axis=-1)
    slack = 1e-12 * (1 + np.abs(top) + tau * np.log(k))
    assert np.all(lse >= top - slack)
    assert np.all(lse <= top + tau * np.log(k) + slack)


@given(finite_rows, st.data(), st.floats(0.0, 1.0))
def test_cross_entropy_gradient_rows_sum_to_zero(x, data, smoothing):
    k = x.shape[1]
    index = np.asarray(
        data.draw(st.lists(st.integers(0, k - 1), min_size=x.shape[0], max_size=x.shape[0]))
    )
    _, grad = F.cross_entropy(
        x, index, reduction="sum", label_smoothing=smoothing, return_grad=True
    )
    np.testing.assert_allclose(grad.sum(axis=-1), 0.0, atol=1e-13 * k)
    soft = sps.softmax(data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(-30, 30))), -1)
    _, grad = F.cross_entropy(
        x, soft, reduction="none", label_smoothing=smoothing, return_grad=True
    )
    np.testing.assert_allclose(grad.sum(axis=-1), 0.0, atol=1e-13 * k)


@given(finite_rows)
def test_argmax_is_the_first_maximum(x):
    idx = F.argmax(x)
    assert np.all(x[np.arange(len(x)), idx] == x.max(axis=-1))
    for row, i in zip(x, idx, strict=True):
        assert np.all(row[:i] < row[i])


@given(finite_rows, st.integers(0, 2**32 - 1))
def test_argmax_with_rng_returns_a_maximum(x, seed):
    x = np.round(x / 300.0)  # make ties common
    idx = F.argmax(x, rng=np.random.default_rng(seed))
    assert np.all(x[np.arange(len(x)), idx] == x.max(axis=-1))


# --------------------------------------------------------------------------------------------
# Edge cases: overflow, masks, infinities, NaN, extreme temperatures
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3,), (1, 3), (2, 3)])
def test_large_finite_inputs_never_overflow(shape):
    for big, low in ((1e4, -1e4), (1e300, -1e300), (1.7e308, 0.0)):
        x = np.broadcast_to(np.array([big, big, low]), shape).copy()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            p = F.softmax(x)
            lse = F.logsumexp(x)
            logp = F.log_softmax(x)
            h = F.entropy(x)
        assert np.all(np.isfinite(p)) and np.all(np.isfinite(lse)) and np.all(np.isfinite(h))
        np.testing.assert_allclose(p[..., :2], 0.5)
        np.testing.assert_allclose(lse, big + math.log(2), rtol=1e-15)
        np.testing.assert_allclose(logp[..., 0], -math.log(2), rtol=1e-15)
        np.testing.assert_allclose(h, math.log(2), rtol=1e-15)


def test_logsumexp_docstring_overflow_example():
    assert float(F.logsumexp([1000.0, 1000.0])) == pytest.approx(1000 + math.log(2), rel=1e-16)
    with np.errstate(over="ignore"):
        naive = np.log(np.exp(np.array([1000.0, 1000.0])).sum())
    assert naive == INF  # what the shift protects against


def test_log_softmax_keeps_tiny_probabilities_exact():
    np.testing.assert_array_equal(F.log_softmax([0.0, -1000.0]), [0.0, -1000.0])
    np.testing.assert_array_equal(
        F.log_softmax(np.array([[0.0, -1000.0]] * 2)), [[0.0, -1000.0]] * 2
    )
    torch.testing.assert_close(
        F.log_softmax(torch.tensor([0.0, -1000.0], dtype=torch.float64), temperature=2.0),
        torch.tensor([0.0, -500.0], dtype=torch.float64),
    )


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_masks_all_masked_rows_and_infinities(backend):
    def as_backend(v):
        return torch.tensor(v, dtype=torch.float64) if backend == "torch" else np.array(v)

    def val(v):
        return v.numpy() if backend == "torch" else np.asarray(v)

    for tau in (1.0, 0.5, 1e-3):
        rows = as_backend([[0.0, -INF, 0.0], [-INF, -INF, -INF], [1.0, INF, 0.0], [2.0, 1.0, 0.0]])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the documented NaN / ±inf come without warnings
            for f in ALL_FOUR:
                f(rows, temperature=tau)
        p = val(F.softmax(rows, temperature=tau))
        np.testing.assert_allclose(p[0], [0.5, 0.0, 0.5])
        assert np.isnan(p[1]).all()  # no distribution exists, as in torch and scipy
        assert np.isnan(p[2, 1])  # +inf entry: NaN, as in torch and scipy
        np.testing.assert_allclose(
            p[3], sps.softmax(np.array([2.0, 1.0, 0.0]) / tau), rtol=1e-12, atol=1e-300
        )
        lse = val(F.logsumexp(rows, temperature=tau))
        assert lse[0] == pytest.approx(tau * math.log(2))
        assert lse[1] == -INF  # all -inf row gives -inf, not NaN
        assert lse[2] == INF
        h = val(F.entropy(rows, temperature=tau))
        assert h[0] == pytest.approx(math.log(2))  # masked entries contribute 0
        assert np.isnan(h[1])
        logp = val(F.log_softmax(rows, temperature=tau))
        assert logp[0, 1] == -INF
        np.testing.assert_allclose(logp[0, [0, 2]], -math.log(2))


def test_all_masked_row_fast_path_and_scipy_agree():
    x = np.array([-INF, -INF])
    assert F.logsumexp(x) == -INF
    assert F.logsumexp(x) == sps.logsumexp(x)
    with np.errstate(invalid="ignore"):
        assert np.isnan(F.softmax(x)).all() and np.isnan(sps.softmax(x)).all()


@pytest.mark.parametrize("shape", [(4,), (1, 4), (3, 4), (40,)])
def test_nan_propagates_in_softmax_family(shape):
    x = np.zeros(shape)
    x[..., 1] = np.nan
    assert np.isnan(F.softmax(x)[..., 0]).all()
    assert np.isnan(F.logsumexp(x)).all()
    assert np.isnan(F.log_softmax(x)).all()
    assert np.isnan(F.entropy(x)).all()
    t = torch.as_tensor(x)
    assert torch.isnan(F.softmax(t)).all() and torch.isnan(F.logsumexp(t, temperature=2.0)).all()


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_extreme_temperatures_have_the_right_limits(dtype, backend):
    row = [[1.0, 1.0, 0.0, -INF], [3.0, -2.0, 0.5, 0.0]]
    x = (
        torch.tensor(row, dtype=getattr(torch, dtype))
        if backend == "torch"
        else np.array(row, dtype)
    )
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for tau in (1e-9, 1e-39, 1e-50, 1e-310, 1e9, 1e30, 1e300):
            p = F.softmax(x, temperature=tau)
            h = F.entropy(x, temperature=tau)
            logp = F.log_softmax(x, temperature=tau)
            out[tau] = [np.asarray(v, dtype=np.float64) for v in (p, h, logp)]
            lse = np.asarray(F.logsumexp(x, temperature=tau) if tau < 1e30 else 0.0)
            assert not np.isnan(lse).any(), tau
            assert not any(np.isnan(v).any() for v in out[tau]), tau
    for tau in (1e-9, 1e-39, 1e-50, 1e-310):  # argmax-like, ties split
        p, h, _ = out[tau]
        np.testing.assert_allclose(p, [[0.5, 0.5, 0, 0], [1, 0, 0, 0]], atol=1e-6)
        np.testing.assert_allclose(h, [math.log(2), 0.0], atol=1e-6)
    for tau in (1e9, 1e30, 1e300):  # uniform over unmasked entries
        p, h, logp = out[tau]
        np.testing.assert_allclose(p, [[1 / 3, 1 / 3, 1 / 3, 0], [0.25] * 4], rtol=1e-6)
        np.testing.assert_allclose(h, [math.log(3), math.log(4)], rtol=1e-6)
        assert logp[0, 3] == -INF
    lse = np.asarray(F.logsumexp(x, temperature=1e-50), dtype=np.float64)
    np.testing.assert_allclose(lse, [1.0, 3.0])


def test_float16_keeps_working_at_temperatures_it_cannot_represent():
    # 1/τ = 1e9 is inf in float16 (max 65504); 0·inf would be NaN.
    x = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0]], dtype=np.float16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = F.softmax(x, temperature=1e-9)
        lse = F.logsumexp(x, temperature=1e-9)
        p_hot = F.softmax(x, temperature=1e9)
    assert p.dtype == np.float16 and lse.dtype == np.float16
    np.testing.assert_array_equal(p, [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(lse, [1.0, 2.0])
    np.testing.assert_allclose(p_hot, 1 / 3, rtol=1e-3)


def test_tiny_temperature_on_huge_values():
    x = np.array([[1e300, -1e300, 1e300]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(F.softmax(x, temperature=1e-9), [[0.5, 0.0, 0.5]])
        np.testing.assert_array_equal(F.softmax(x[0], temperature=1e-9), [0.5, 0.0, 0.5])
        assert F.logsumexp(x, temperature=1e-9)[0] == 1e300


@pytest.mark.parametrize("bad", [0.0, -1.0, INF, -INF, math.nan])
@pytest.mark.parametrize("f", ALL_FOUR, ids=lambda f: f.__name__)
def test_temperature_must_be_positive_and_finite(f, bad):
    for x in ([1.0, 2.0], np.zeros((2, 3)), torch.zeros(2, 3)):
        with pytest.raises(ValueError, match="temperature must be a positive finite number"):
            f(x, temperature=bad)


# --------------------------------------------------------------------------------------------
# Input kinds, dtypes, devices, shapes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("f", ALL_FOUR, ids=lambda f: f.__name__)
def test_numpy_dtype_rules(f):
    for shape in [(6,), (1, 6), (5, 6), (40,)]:
        base = np.arange(np.prod(shape)).reshape(shape) % 5
        assert f(base.astype(np.float32)).dtype == np.float32
        assert f(base.astype(np.float64)).dtype == np.float64
        assert f(base.astype(np.float16)).dtype == np.float16
        assert f(base.astype(np.int64)).dtype == np.float64
        assert f(base.astype(np.int8)).dtype == np.float64
        assert f(base.astype(bool)).dtype == np.float64
        np.testing.assert_allclose(f(base), f(base.astype(np.float64)), rtol=0)
        np.testing.assert_allclose(f(base.tolist()), f(base.astype(np.float64)), rtol=0)
        assert isinstance(f(base.tolist()), np.ndarray | np.floating)


def test_list_input_matches_scipy():
    np.testing.assert_allclose(F.softmax([[1, 2], [3, 5]]), sps.softmax([[1, 2], [3, 5]], axis=-1))
    assert F.logsumexp([1, 2, 3]) == pytest.approx(sps.logsumexp([1, 2, 3]), rel=1e-15)


def _devices():
    no_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    return ["cpu", pytest.param("cuda", marks=no_gpu)]


@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tau", [1.0, 0.5])
@pytest.mark.parametrize("f", ALL_FOUR, ids=lambda f: f.__name__)
def test_torch_keeps_dtype_device_and_is_differentiable(f, tau, dtype, device):
    x = torch.randn(4, 5, dtype=dtype, device=device, requires_grad=True)
    out = f(x, temperature=tau)
    assert isinstance(out, torch.Tensor)
    assert out.dtype == dtype and out.device == x.device
    assert out.requires_grad
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape and torch.isfinite(x.grad).all()
    shapes = {F.softmax: (4, 5), F.log_softmax: (4, 5), F.logsumexp: (4,), F.entropy: (4,)}
    assert tuple(out.shape) == shapes[f]


def test_keepdims_and_axis():
    x = _batch(5, shape=(4, 6))
    assert F.logsumexp(x, keepdims=True).shape == (4, 1)
    assert F.logsumexp(x, axis=0, keepdims=True).shape == (1, 6)
    assert F.logsumexp(x, axis=0).shape == (6,)
    np.testing.assert_allclose(F.logsumexp(x, axis=0), F.logsumexp(x.T), rtol=1e-15)
    np.testing.assert_allclose(F.softmax(x, axis=0), F.softmax(x.T).T, rtol=1e-15)
    np.testing.assert_allclose(F.log_softmax(x, axis=0), F.log_softmax(x.T).T, rtol=1e-15)
    np.testing.assert_allclose(F.entropy(x, axis=0), F.entropy(x.T), rtol=1e-15)
    x3 = np.random.default_rng(0).standard_normal((2, 3, 4))
    for axis in (0, 1, 2):
        np.testing.assert_allclose(
            F.logsumexp(x3, axis=axis), sps.logsumexp(x3, axis=axis), rtol=1e-14
        )
        np.testing.assert_allclose(F.softmax(x3, axis=axis), sps.softmax(x3, axis=axis), rtol=1e-14)
    t = torch.as_tensor(x)
    assert F.logsumexp(t, keepdims=True).shape == (4, 1)
    assert F.logsumexp(t, axis=0, keepdims=True, temperature=2.0).shape == (1, 6)
    row = np.array([1.0, 2.0, 3.0])
    assert F.logsumexp(row, keepdims=True).shape == (1,)
    assert F.logsumexp(row[None], keepdims=True).shape == (1, 1)
    assert F.logsumexp(row[None]).shape == (1,)
    assert F.softmax(row[None], axis=0).tolist() == [[1.0, 1.0, 1.0]]  # (1, K) along axis 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_single_row_fast_path_matches_batched_path(dtype):
    rng = np.random.default_rng(11)
    for _ in range(20):
        row = (rng.standard_normal(6) * 5).astype(dtype)
        row[rng.integers(6)] = -INF if rng.random() < 0.3 else row[0]
        batch = np.stack([row, row])
        for tau in (1.0, 0.3):
            # the fast path computes in float64, the array path in the input dtype
            gap = np.ptp(row[np.isfinite(row)]) / tau
            tol = 4 * EPS[np.dtype(dtype)] * (2 + gap)
            np.testing.assert_allclose(
                F.softmax(row, temperature=tau), F.softmax(batch, temperature=tau)[0], rtol=tol
            )
            np.testing.assert_allclose(
                F.softmax(row[None], temperature=tau)[0],
                F.softmax(batch, temperature=tau)[0],
                rtol=tol,
            )
            np.testing.assert_allclose(
                F.logsumexp(row, temperature=tau),
                F.logsumexp(batch, temperature=tau)[0],
                rtol=tol,
            )


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("f", ALL_FOUR, ids=lambda f: f.__name__)
def test_result_type_does_not_depend_on_row_length(f, dtype):
    # Short rows take a pure-float path, long ones the array path; the caller must not see
    # which: 1-D reductions are numpy scalars of the input dtype (as np.sum gives), keepdims
    # and elementwise results arrays, at every length.
    rng = np.random.default_rng(3)
    seen = {}
    for n in range(1, 101):
        x = rng.standard_normal(n).astype(dtype)
        for layout, arr in (("1d", x), ("row", x[None]), ("list", x.tolist())):
            out = f(arr)
            seen.setdefault(layout, set()).add((type(out), np.asarray(out).dtype, np.ndim(out)))
            assert np.ndim(out) == (np.ndim(arr) - (f in REDUCERS))
        if f is F.logsumexp:
            kept = F.logsumexp(x, keepdims=True)
            seen.setdefault("keepdims", set()).add((type(kept), kept.dtype, kept.shape))
            np.testing.assert_allclose(kept[0], sps.logsumexp(x.astype(np.float64)), rtol=3e-3)
    assert all(len(kinds) == 1 for kinds in seen.values()), seen
    (scalar,) = seen["1d"]
    if f in REDUCERS:
        assert scalar == (np.dtype(dtype).type, np.dtype(dtype), 0)
    else:
        assert scalar[0] is np.ndarray and scalar[1] == dtype


def test_inputs_are_not_modified():
    x = _batch(3)
    x32 = x.astype(np.float32)
    row = x[0, :6].copy()
    copies = [a.copy() for a in (x, x32, row)]
    for f in ALL_FOUR:
        for a in (x, x32, row, row[None]):
            f(a, temperature=0.5)
            f(a)
    F.cross_entropy(x, np.zeros(len(x), dtype=int), return_grad=True)
    F.argmax(x, rng=np.random.default_rng(0))
    for a, c in zip((x, x32, row), copies, strict=True):
        np.testing.assert_array_equal(a, c)


def test_non_contiguous_input():
    x = _batch(4, shape=(8, 10))[:, ::2]
    np.testing.assert_allclose(F.softmax(x), sps.softmax(x, axis=-1), rtol=1e-13)
    np.testing.assert_allclose(F.logsumexp(x.T, axis=0), sps.logsumexp(x, axis=-1), rtol=1e-13)


@pytest.mark.parametrize(
    "module",
    [
        "numerics/functional",
        "numerics/_torch_cross_entropy",
        "explore/policies",
        "explore/schedules",
    ],
)
def test_sources_compile_without_warnings(module):
    # e.g. "\\frac" in a non-raw docstring is a form feed plus "rac", and "\\l" a SyntaxWarning
    # that becomes an import error under `python -W error` (cached .pyc files hide it).
    path = Path(rlsoft.__file__).parent / f"{module}.py"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile(path.read_text(encoding="utf-8"), str(path), "exec")


def test_public_reexports():
    for name in ("argmax", "cross_entropy", "entropy", "log_softmax", "logsumexp", "softmax"):
        assert getattr(rlsoft, name) is getattr(F, name)
        assert name in rlsoft.__all__ and name in F.__all__


# --------------------------------------------------------------------------------------------
# argmax
# --------------------------------------------------------------------------------------------


def assert_uniform_over(counts, allowed, *, alpha=1e-3):
    counts = np.asarray(counts)
    allowed = np.asarray(allowed, dtype=bool)
    assert counts[~allowed].sum() == 0, counts
    if allowed.sum() > 1:
        result = chisquare(counts[allowed])
        assert result.pvalue > alpha, (counts, result)


def test_argmax_first_maximum_by_default():
    assert int(F.argmax([1.0, 3.0, 3.0, 2.0])) == 1
    assert int(F.argmax([[0, 0, 0]])[0]) == 0
    np.testing.assert_array_equal(F.argmax([[1, 5, 5], [7, 7, 0]]), [1, 0])
    np.testing.assert_array_equal(F.argmax([[1, 5, 5], [7, 7, 0]], axis=0), [1, 1, 0])
    assert int(F.argmax([-INF, -INF])) == 0
    assert int(F.argmax([0.0, INF, INF])) == 1
    t = torch.tensor([[1.0, 5.0, 5.0], [7.0, 7.0, 0.0]])
    assert F.argmax(t).tolist() == [1, 0]
    assert F.argmax(t).dtype == torch.int64
    assert F.argmax(t, axis=0).tolist() == [1, 1, 0]


def test_argmax_random_ties_single_row_chi_square():
    rng = np.random.default_rng(2024)
    x = np.array([3.0, 1.0, 3.0, 3.0, -INF])
    counts = np.bincount([int(F.argmax(x, rng=rng)) for _ in range(6000)], minlength=5)
    assert_uniform_over(counts, [1, 0, 1, 1, 0])
    # one maximum: deterministic, however many draws
    assert {int(F.argmax([0.0, 2.0, 1.0], rng=rng)) for _ in range(50)} == {1}


def test_argmax_random_ties_batched_chi_square():
    rng = np.random.default_rng(99)
    rows = np.array([[2.0, 2.0, 0.0, 2.0], [5.0, 5.0, 5.0, 5.0], [0.0, 1.0, 0.0, 0.0]])
    x = np.repeat(rows, 4000, axis=0)
    idx = F.argmax(x, rng=rng)
    assert idx.shape == (len(x),)
    for r, allowed in enumerate([[1, 1, 0, 1], [1, 1, 1, 1], [0, 1, 0, 0]]):
        counts = np.bincount(idx[r * 4000 : (r + 1) * 4000], minlength=4)
        assert_uniform_over(counts, allowed)
    # axis=0: ties down columns
    cols = F.argmax(np.repeat(rows.T[:, :1], 1, axis=1).repeat(3000, axis=1), axis=0, rng=rng)
    assert_uniform_over(np.bincount(cols, minlength=4), [1, 1, 0, 1])


@pytest.mark.parametrize("generator", ["torch", "numpy"])
def test_argmax_random_ties_torch_chi_square(generator):
    rng = torch.Generator().manual_seed(5) if generator == "torch" else np.random.default_rng(5)
    x = torch.tensor([[1.0, 4.0, 4.0, 4.0]]).repeat(6000, 1)
    idx = F.argmax(x, rng=rng)
    assert idx.dtype == torch.int64 and idx.shape == (6000,)
    assert_uniform_over(np.bincount(idx.numpy(), minlength=4), [0, 1, 1, 1])


def test_argmax_rejects_nan_and_empty():
    for x in ([1.0, math.nan], np.array([[0.0, 1.0], [math.nan, 0.0]])):
        with pytest.raises(ValueError, match="NaN"):
            F.argmax(x)
        with pytest.raises(ValueError, match="NaN"):
            F.argmax(x, rng=np.random.default_rng(0))
        with pytest.raises(ValueError, match="NaN"):
            F.argmax(torch.as_tensor(np.asarray(x)))
    with pytest.raises(ValueError, match="empty"):
        F.argmax(np.zeros(0))
    with pytest.raises(ValueError, match="empty"):
        F.argmax(torch.zeros(0))


# --------------------------------------------------------------------------------------------
# cross_entropy, numpy backend (the torch backend: test_torch_cross_entropy.py)
# --------------------------------------------------------------------------------------------


def _ce_case(seed=0, n=7, k=5):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, k)) * 3
    index = rng.integers(0, k, n)
    soft = sps.softmax(rng.standard_normal((n, k)) * 2, axis=-1)
    return logits, index, soft


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kind", ["index", "soft"])
def test_numpy_cross_entropy_matches_torch(kind, reduction, smoothing):
    logits, index, soft = _ce_case()
    target = index if kind == "index" else soft
    tl = torch.tensor(logits, requires_grad=True)
    tt = torch.as_tensor(target)
    want = torch.nn.functional.cross_entropy(tl, tt, reduction=reduction, label_smoothing=smoothing)
    loss, grad = F.cross_entropy(
        logits, target, reduction=reduction, label_smoothing=smoothing, return_grad=True
    )
    np.testing.assert_allclose(loss, want.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(
        F.cross_entropy(logits, target, reduction=reduction, label_smoothing=smoothing), loss
    )
    # dloss/dlogits of the *sum* of the reduced loss (for "none", of the per-row sum).
    want.sum().backward()
    np.testing.assert_allclose(grad, tl.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_numpy_cross_entropy_gradient_is_p_minus_y():
    logits, index, soft = _ce_case(1)
    p = sps.softmax(logits, axis=-1)
    onehot = np.eye(logits.shape[1])[index]
    _, grad = F.cross_entropy(logits, index, reduction="sum", return_grad=True)
    np.testing.assert_allclose(grad, p - onehot, rtol=1e-13, atol=1e-16)
    _, grad = F.cross_entropy(logits, index, return_grad=True)  # mean divides by N
    np.testing.assert_allclose(grad, (p - onehot) / len(index), rtol=1e-13, atol=1e-16)
    _, grad = F.cross_entropy(logits, soft, reduction="none", return_grad=True)
    np.testing.assert_allclose(grad, p - soft, rtol=1e-12, atol=1e-16)
    eps, k = 0.2, logits.shape[1]
    _, grad = F.cross_entropy(logits, index, reduction="sum", label_smoothing=eps, return_grad=True)
    np.testing.assert_allclose(grad, p - ((1 - eps) * onehot + eps / k), rtol=1e-12, atol=1e-16)


def test_numpy_cross_entropy_shapes_dtypes_and_lists():
    logits, index, soft = _ce_case(2)
    loss32, grad32 = F.cross_entropy(logits.astype(np.float32), index, return_grad=True)
    assert loss32.dtype == np.float32 and grad32.dtype == np.float32
    assert float(loss32) == pytest.approx(float(F.cross_entropy(logits, index)), rel=1e-6)
    assert F.cross_entropy(logits, soft.astype(np.float32)).dtype == np.float64
    assert F.cross_entropy(logits.tolist(), index.tolist()) == pytest.approx(
        F.cross_entropy(logits, index), rel=1e-15
    )
    assert F.cross_entropy(np.round(logits).astype(int), index).dtype == np.float64
    assert F.cross_entropy(logits, index, reduction="none").shape == (len(index),)
    # leading axes: (B, T, K) logits with (B, T) targets
    l3, i3 = logits[:6].reshape(2, 3, -1), index[:6].reshape(2, 3)
    np.testing.assert_allclose(
        F.cross_entropy(l3, i3, reduction="none"),
        F.cross_entropy(logits[:6], index[:6], reduction="none").reshape(2, 3),
    )
    np.testing.assert_allclose(
        F.cross_entropy(l3, soft[:6].reshape(2, 3, -1)),
        F.cross_entropy(logits[:6], soft[:6]),
    )
    # one row: 1-D logits, scalar target
    assert F.cross_entropy(logits[0], index[0]) == pytest.approx(
        float(F.cross_entropy(logits[:1], index[:1])), rel=1e-15
    )


def test_numpy_cross_entropy_with_masked_logits():
    logits = np.array([[0.0, -INF, 1.0], [2.0, 0.0, -INF]])
    target = np.array([2, 0])
    loss, grad = F.cross_entropy(logits, target, reduction="none", return_grad=True)
    want = torch.nn.functional.cross_entropy(
        torch.tensor(logits), torch.tensor(target), reduction="none"
    )
    np.testing.assert_allclose(loss, want.numpy(), rtol=1e-14)
    assert np.isfinite(grad).all() and grad[0, 1] == 0 and grad[1, 2] == 0


def _masked_ce_case(n=8, k=6, seed=21):
    """−inf at random classes (each row keeps one or more; row 0 exactly one, row 1 none
    masked), an allowed class index per row and a probability target that is 0 where masked."""
    rng = np.random.default_rng(seed)
    allowed = rng.random((n, k)) < 0.6
    allowed[np.arange(n), rng.integers(0, k, n)] = True
    allowed[0] = False
    allowed[0, 3] = True
    allowed[1] = True
    logits = np.where(allowed, rng.standard_normal((n, k)) * 3, -INF)
    index = np.array([rng.choice(np.flatnonzero(row)) for row in allowed])
    raw = rng.random((n, k)) * allowed
    return logits, index, raw / raw.sum(-1, keepdims=True), allowed


def _ce_on_allowed_columns(logits, target, allowed, reduction, smoothing):
    """Reference: scipy's log_softmax on each row's allowed columns only, smoothing spread over
    those K_a columns; returns the reduced loss and its gradient (of the sum) by the
    textbook p − y′ on the same columns (0 elsewhere)."""
    losses, grad = [], np.zeros_like(logits)
    for i, row in enumerate(allowed):
        cols = np.flatnonzero(row)
        z = logits[i, cols]
        y = target[i, cols] if target.ndim == 2 else (cols == target[i]).astype(float)
        y = (1 - smoothing) * y + smoothing / len(cols)
        losses.append(-(y * sps.log_softmax(z)).sum())
        grad[i, cols] = sps.softmax(z) * y.sum() - y
    losses = np.array(losses)
    if reduction == "none":
        return losses, grad
    if reduction == "mean":
        return losses.mean(), grad / len(losses)
    return losses.sum(), grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kind", ["index", "soft"])
def test_numpy_cross_entropy_on_masked_logits_equals_allowed_columns(
    kind, reduction, smoothing, dtype
):
    logits, index, soft, allowed = _masked_ce_case()
    target = index if kind == "index" else soft
    want, want_grad = _ce_on_allowed_columns(logits, target, allowed, reduction, smoothing)
    z = logits.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 0·inf or 0/0 RuntimeWarning on the way
        loss, grad = F.cross_entropy(
            z, target, reduction=reduction, label_smoothing=smoothing, return_grad=True
        )
    tol = {"rtol": 2e-5, "atol": 2e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-15}
    assert np.asarray(loss).dtype == dtype and grad.dtype == dtype
    assert np.isfinite(loss).all() and np.isfinite(grad).all()
    assert (grad[~allowed] == 0).all()
    np.testing.assert_allclose(loss, want, **tol)
    np.testing.assert_allclose(grad, want_grad, **tol)
    np.testing.assert_allclose(
        F.cross_entropy(z, target, reduction=reduction, label_smoothing=smoothing), loss
    )


@pytest.mark.parametrize("smoothing", [0.0, 0.2, 1.0])
def test_numpy_target_mass_on_a_masked_class_is_infinite_loss(smoothing):
    logits = np.array([[0.5, -INF, 1.0], [2.0, 0.0, 1.0]])
    for target in (np.array([1, 0]), np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])):
        loss, grad = F.cross_entropy(
            logits, target, reduction="none", label_smoothing=smoothing, return_grad=True
        )
        if smoothing < 1.0:
            assert loss[0] == INF  # −log 0, the exact value (torch gives the same)
        else:  # nothing of the label is left: uniform over the two allowed classes
            assert loss[0] == pytest.approx(-np.mean(sps.log_softmax([0.5, 1.0])), rel=1e-14)
        assert np.isfinite(loss[1]) and np.isfinite(grad).all()
        y = np.eye(3)[target] if target.ndim == 1 else target
        y0 = (1 - smoothing) * y[0] + smoothing * np.array([0.5, 0.0, 0.5])
        np.testing.assert_allclose(grad[0], sps.softmax(logits[0]) * y0.sum() - y0, atol=1e-15)


def test_numpy_all_masked_row_has_nan_loss_and_other_rows_stay_exact():
    logits = np.array([[-INF, -INF], [0.0, -INF]])
    for smoothing in (0.0, 0.1):
        loss = F.cross_entropy(
            logits, np.array([0, 0]), reduction="none", label_smoothing=smoothing
        )
        assert np.isnan(loss[0]) and loss[1] == 0.0


@pytest.mark.parametrize("bad", [3, 7, -1, -4])
def test_out_of_range_index_names_index_and_k(bad):
    logits = np.zeros((3, 3))
    with pytest.raises(ValueError, match=rf"class index {bad} .*K=3"):
        F.cross_entropy(logits, np.array([0, bad, 1]))
    with pytest.raises(ValueError, match=rf"class index {bad} .*K=3"):
        F.cross_entropy(torch.zeros(3, 3), torch.tensor([0, bad, 1]))


def test_cross_entropy_argument_errors():
    logits, index, soft = _ce_case()
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(logits, index, reduction="avg")
    for eps in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="label_smoothing"):
            F.cross_entropy(logits, index, label_smoothing=eps)
    with pytest.raises(ValueError, match="shape"):
        F.cross_entropy(logits, index[:-1])
    with pytest.raises(ValueError, match="shape"):
        F.cross_entropy(logits, soft[:, :-1])
    with pytest.raises(ValueError, match="class axis"):
        F.cross_entropy(np.float64(1.0), 0)
    with pytest.raises(ValueError, match="return_grad"):
        F.cross_entropy(torch.tensor(logits), torch.tensor(index), return_grad=True)
