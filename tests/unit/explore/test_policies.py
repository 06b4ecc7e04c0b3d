"""Exploration policies: distributions against hand-written references (scipy for softmax),
and every sampler checked against them with chi-square tests (fixed seeds, p > 1e-3): the
single-row fast paths, the masked single-row paths and the batched paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special as sps
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import chisquare
from scipy.stats import entropy as scipy_entropy

from rlsoft.errors import DivergedError, RlsoftError
from rlsoft.explore.policies import Boltzmann, EpsilonGreedy, Greedy, Policy
from rlsoft.explore.schedules import ConstantSchedule, ExponentialSchedule, LinearSchedule
from rlsoft.explore.uniform_stream import UniformStream

INF = math.inf
ALPHA = 1e-3


# --------------------------------------------------------------------------------------------
# Independent reference distributions
# --------------------------------------------------------------------------------------------


def _allowed(q, mask):
    return np.ones(np.shape(q), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)


def ref_greedy(q, mask=None):
    q = np.asarray(q, dtype=np.float64)
    allowed = _allowed(q, mask)
    best = np.where(allowed, q, -INF).max(axis=-1, keepdims=True)
    ties = allowed & (q == best)
    return ties / ties.sum(axis=-1, keepdims=True)


def ref_uniform(q, mask=None):
    allowed = _allowed(q, mask).astype(np.float64)
    return allowed / allowed.sum(axis=-1, keepdims=True)


def ref_epsilon_greedy(q, eps, mask=None):
    return (1 - eps) * ref_greedy(q, mask) + eps * ref_uniform(q, mask)


def ref_boltzmann(q, tau, mask=None):
    q = np.asarray(q, dtype=np.float64)
    return sps.softmax(np.where(_allowed(q, mask), q, -INF) / tau, axis=-1)


def assert_follows(actions, probs, alpha=ALPHA):
    """Zero-probability actions never drawn; the others match by a chi-square test."""
    actions = np.asarray(actions)
    probs = np.asarray(probs, dtype=np.float64)
    counts = np.bincount(actions, minlength=len(probs))
    assert len(counts) == len(probs), f"action out of range: {counts}"
    support = probs > 0
    assert counts[~support].sum() == 0, (counts, probs)
    if support.sum() > 1:
        expected = probs[support] / probs[support].sum() * counts.sum()
        result = chisquare(counts[support], expected)
        assert result.pvalue > alpha, (counts, expected, result.pvalue)


# --------------------------------------------------------------------------------------------
# Test rows: ties, masks, spread-out values
# --------------------------------------------------------------------------------------------

ROWS = np.array(
    [
        [1.0, 3.0, 3.0, 0.0, 3.0],  # three-way tie for the max
        [0.5, -1.0, 2.0, 1.5, 0.0],  # single max
        [0.0, 0.0, 0.0, 0.0, 0.0],  # all tied (a fresh Q-table)
    ]
)
MASKS = np.array(
    [
        [True, True, False, True, True],  # removes one of the tied maxima
        [True, True, False, True, False],  # removes the max itself
        [False, True, False, True, True],
    ]
)

POLICIES = {
    "greedy": (Greedy(), lambda q, mask=None: ref_greedy(q, mask)),
    "epsilon": (EpsilonGreedy(0.3), lambda q, mask=None: ref_epsilon_greedy(q, 0.3, mask)),
    "boltzmann": (Boltzmann(0.8), lambda q, mask=None: ref_boltzmann(q, 0.8, mask)),
}
SEEDS = {"greedy": 10, "epsilon": 20, "boltzmann": 30}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_probs_match_references(name):
    policy, ref = POLICIES[name]
    for q, mask in zip(ROWS, MASKS, strict=True):
        np.testing.assert_allclose(policy.probs(q), ref(q), rtol=1e-13, atol=1e-16)
        np.testing.assert_allclose(policy.probs(q, mask=mask), ref(q, mask), rtol=1e-13, atol=1e-16)
        assert np.all(policy.probs(q, mask=mask)[~mask] == 0)
    np.testing.assert_allclose(policy.probs(ROWS), ref(ROWS), rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(
        policy.probs(ROWS, mask=MASKS), ref(ROWS, MASKS), rtol=1e-13, atol=1e-16
    )
    np.testing.assert_allclose(policy.probs(ROWS.tolist()), ref(ROWS), rtol=1e-13, atol=1e-16)


def test_greedy_splits_ties_and_epsilon_mixes_uniform():
    q = [1.0, 3.0, 3.0, 0.0]
    np.testing.assert_array_equal(Greedy().probs(q), [0, 0.5, 0.5, 0])
    np.testing.assert_allclose(EpsilonGreedy(0.2).probs(q), [0.05, 0.45, 0.45, 0.05])
    np.testing.assert_allclose(
        EpsilonGreedy(0.2).probs(q, mask=[True, False, True, False]), [0.1, 0, 0.9, 0]
    )
    np.testing.assert_allclose(EpsilonGreedy(0.0).probs(q), Greedy().probs(q))
    np.testing.assert_allclose(EpsilonGreedy(1.0).probs(q), [0.25] * 4)


# --------------------------------------------------------------------------------------------
# Samplers: chi-square against the reference for every path
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_single_row_fast_path_samples_exactly(name):
    policy, ref = POLICIES[name]
    rng = np.random.default_rng(SEEDS[name])
    for q in ROWS:
        actions = [policy.select(q, rng) for _ in range(3000)]
        assert all(type(a) is int for a in actions)
        assert_follows(actions, ref(q))


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_single_row_with_mask_samples_exactly(name):
    policy, ref = POLICIES[name]
    rng = np.random.default_rng(SEEDS[name] + 1)
    for q, mask in zip(ROWS, MASKS, strict=True):
        actions = [policy.select(q, rng, mask=mask) for _ in range(1500)]
        assert all(type(a) is int for a in actions)
        assert_follows(actions, ref(q, mask))


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_single_row_list_and_float32_inputs_sample_exactly(name):
    policy, ref = POLICIES[name]
    rng = np.random.default_rng(SEEDS[name] + 2)
    q = ROWS[0]
    assert_follows([policy.select(q.tolist(), rng) for _ in range(1500)], ref(q))
    q32 = ROWS[1].astype(np.float32)
    assert_follows([policy.select(q32, rng) for _ in range(1500)], ref(q32))
    ints = ROWS[0].astype(int).tolist()  # not a fast-path row: the array path, no mask
    assert_follows([policy.select(ints, rng) for _ in range(1500)], ref(ROWS[0]))


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("name", sorted(POLICIES))
def test_batched_samples_exactly(name, masked):
    policy, ref = POLICIES[name]
    rng = np.random.default_rng(SEEDS[name] + 3 + masked)
    n = 4000
    q = np.repeat(ROWS, n, axis=0)
    mask = np.repeat(MASKS, n, axis=0) if masked else None
    actions = policy.select(q, rng, mask=mask)
    assert isinstance(actions, np.ndarray) and actions.shape == (len(q),)
    assert np.issubdtype(actions.dtype, np.integer)
    for r in range(len(ROWS)):
        assert_follows(actions[r * n : (r + 1) * n], ref(ROWS[r], None if not masked else MASKS[r]))


def test_batched_rows_are_independent_draws():
    # Interleaved rows: each row must follow its own distribution, whatever its neighbours.
    rng = np.random.default_rng(77)
    policy = Boltzmann(1.5)
    q = np.tile(ROWS, (3000, 1))
    actions = policy.select(q, rng)
    for r in range(len(ROWS)):
        assert_follows(actions[r :: len(ROWS)], ref_boltzmann(ROWS[r], 1.5))


@pytest.mark.parametrize("eps", [0.0, 1.0, 0.5])
def test_epsilon_extremes_sample_exactly(eps):
    rng = np.random.default_rng(int(eps * 10) + 5)
    policy = EpsilonGreedy(eps)
    q = ROWS[0]
    assert_follows([policy.select(q, rng) for _ in range(2000)], ref_epsilon_greedy(q, eps))
    batch = policy.select(np.repeat(q[None], 2000, axis=0), rng, mask=np.repeat(MASKS[:1], 2000, 0))
    assert_follows(batch, ref_epsilon_greedy(q, eps, MASKS[0]))


@pytest.mark.parametrize("tau", [1e-9, 0.05, 20.0, 1e9])
def test_boltzmann_temperatures_sample_exactly(tau):
    rng = np.random.default_rng(int(-math.log10(tau) * 10) % 1000)
    policy = Boltzmann(tau)
    q = ROWS[0]
    p = ref_boltzmann(q, tau)
    assert_follows([policy.select(q, rng) for _ in range(2000)], p)
    assert_follows(policy.select(np.repeat(q[None], 2000, axis=0), rng), p)
    if tau == 1e-9:
        np.testing.assert_allclose(policy.probs(q), ref_greedy(q))
    if tau == 1e9:
        np.testing.assert_allclose(policy.probs(q), [0.2] * 5)


def test_schedules_drive_the_samplers():
    rng = np.random.default_rng(123)
    eps = LinearSchedule(start=1.0, end=0.0, duration=100)
    policy = EpsilonGreedy(eps)
    q = ROWS[1]
    for step, e in ((0, 1.0), (50, 0.5), (100, 0.0), (1000, 0.0)):
        assert policy.parameter(step) == pytest.approx(e)
        np.testing.assert_allclose(policy.probs(q, step=step), ref_epsilon_greedy(q, e))
    assert_follows(
        [policy.select(q, rng, step=50) for _ in range(2000)], ref_epsilon_greedy(q, 0.5)
    )
    assert {policy.select(q, rng, step=200) for _ in range(100)} == {2}

    tau = ExponentialSchedule(start=10.0, end=0.1, half_life=10)
    boltz = Boltzmann(tau)
    assert boltz.parameter(10) == pytest.approx(0.1 + 9.9 / 2)
    t20 = 0.1 + 9.9 / 4
    np.testing.assert_allclose(boltz.probs(q, step=20), ref_boltzmann(q, t20), rtol=1e-12)
    assert_follows([boltz.select(q, rng, step=20) for _ in range(2000)], ref_boltzmann(q, t20))
    batch = boltz.select(np.repeat(q[None], 2000, axis=0), rng, step=20)
    assert_follows(batch, ref_boltzmann(q, t20))
    # any callable works as a schedule
    custom = EpsilonGreedy(lambda step: 0.0 if step < 10 else 1.0)
    np.testing.assert_allclose(custom.probs(q, step=5), ref_greedy(q))
    np.testing.assert_allclose(custom.probs(q, step=15), [0.2] * 5)


def test_same_seed_same_actions():
    for policy, _ in POLICIES.values():
        a = [policy.select(ROWS[0], np.random.default_rng(3)) for _ in range(5)]
        b = [policy.select(ROWS[0], np.random.default_rng(3)) for _ in range(5)]
        assert a == b
        x = policy.select(
            np.repeat(ROWS, 10, 0), np.random.default_rng(4), mask=np.repeat(MASKS, 10, 0)
        )
        y = policy.select(
            np.repeat(ROWS, 10, 0), np.random.default_rng(4), mask=np.repeat(MASKS, 10, 0)
        )
        np.testing.assert_array_equal(x, y)


class _EdgeRng:
    """A stand-in generator whose uniforms are all ``u`` (to probe inverse-CDF edges)."""

    def __init__(self, u):
        self.u = u

    def random(self, size=None):
        return self.u if size is None else np.full(size, self.u)

    def integers(self, n, size=None):
        return min(int(self.u * n), n - 1) if size is None else np.full(size, int(self.u * n))


@pytest.mark.parametrize("u", [0.0, 1.0 - 2.0**-53])
def test_inverse_cdf_never_returns_zero_probability_actions_at_the_edges(u):
    rng = _EdgeRng(u)
    policy = Boltzmann(1.0)
    q = np.array([-INF, 0.0, 0.0, -INF])
    mask = np.array([False, True, True, False])
    q_open = np.array([0.0, 1.0, 2.0, 3.0])
    for row_q, row_mask in ((q_open, mask), (q_open, None)):
        single = policy.select(row_q, rng, mask=row_mask)
        batch = policy.select(
            np.stack([row_q, row_q]),
            rng,
            mask=None if row_mask is None else np.stack([row_mask] * 2),
        )
        p = ref_boltzmann(row_q, 1.0, row_mask)
        assert p[single] > 0 and np.all(p[batch] > 0)
    # -inf Q-values without a mask (the single-row fast path): zero-width CDF steps at
    # both ends, never drawn
    for row in (q, q[None].repeat(2, 0)):
        assert np.all(ref_boltzmann(q, 1.0)[policy.select(row, rng)] > 0)
    eg = EpsilonGreedy(1.0)
    assert mask[eg.select(q_open, rng, mask=mask)]
    assert np.all(mask[eg.select(np.stack([q_open] * 2), rng, mask=np.stack([mask] * 2))])


# --------------------------------------------------------------------------------------------
# Entropy
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_entropy_matches_scipy(name):
    policy, ref = POLICIES[name]
    for q, mask in zip(ROWS, MASKS, strict=True):
        h = policy.entropy(q)
        assert isinstance(h, float)
        assert h == pytest.approx(scipy_entropy(ref(q)), rel=1e-12, abs=1e-15)
        assert policy.entropy(q, mask=mask) == pytest.approx(
            scipy_entropy(ref(q, mask)), rel=1e-12, abs=1e-15
        )
    batch = policy.entropy(ROWS, mask=MASKS)
    assert batch.shape == (len(ROWS),)
    np.testing.assert_allclose(
        batch, scipy_entropy(ref(ROWS, MASKS), axis=-1), rtol=1e-12, atol=1e-15
    )


def test_entropy_special_values():
    assert Greedy().entropy([1.0, 3.0, 3.0, 3.0]) == pytest.approx(math.log(3))
    assert Greedy().entropy([0.0, 1.0]) == 0.0
    assert EpsilonGreedy(1.0).entropy([0.0, 1.0, 5.0], mask=[True, True, False]) == pytest.approx(
        math.log(2)
    )
    assert Boltzmann(1e9).entropy(np.zeros(6)) == pytest.approx(math.log(6))
    assert Boltzmann(1e-9).entropy([0.0, 1.0, 1.0]) == pytest.approx(math.log(2))


# --------------------------------------------------------------------------------------------
# Infinite Q-values: limits instead of NaN
# --------------------------------------------------------------------------------------------


def test_infinite_q_values_give_limit_distributions():
    rng = np.random.default_rng(8)
    plus = np.array([0.0, INF, 1.0, INF])
    minus = np.array([-INF, -INF, -INF])
    mask = np.array([True, False, True])
    for policy in (Greedy(), Boltzmann(1.0), Boltzmann(1e-3)):
        np.testing.assert_array_equal(policy.probs(plus), [0, 0.5, 0, 0.5])
        np.testing.assert_array_equal(policy.probs(minus), [1 / 3] * 3)
        # every allowed value is -inf: the disallowed action must still get nothing
        np.testing.assert_array_equal(policy.probs(minus, mask=mask), [0.5, 0, 0.5])
        assert policy.entropy(plus) == pytest.approx(math.log(2))
        assert policy.entropy(minus, mask=mask) == pytest.approx(math.log(2))
        assert_follows([policy.select(plus, rng) for _ in range(400)], [0, 0.5, 0, 0.5])
        assert_follows([policy.select(minus, rng, mask=mask) for _ in range(400)], [0.5, 0, 0.5])
        batch = policy.select(np.stack([minus] * 400), rng, mask=np.stack([mask] * 400))
        assert_follows(batch, [0.5, 0, 0.5])
        mixed = policy.probs(np.stack([plus[:3], [0.0, 1.0, 2.0]]))
        assert not np.isnan(mixed).any()
        np.testing.assert_allclose(mixed.sum(axis=-1), 1.0)
    np.testing.assert_allclose(EpsilonGreedy(0.4).probs(minus, mask=mask), [0.5, 0, 0.5])


# --------------------------------------------------------------------------------------------
# Validation: one clear sentence each
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [-0.1, 1.1, math.nan, INF, -INF])
def test_epsilon_outside_unit_interval(eps):
    with pytest.raises(ValueError, match=r"epsilon must be in \[0, 1\]"):
        EpsilonGreedy(eps)


@pytest.mark.parametrize("tau", [0.0, -1.0, math.nan, INF])
def test_temperature_must_be_positive_finite(tau):
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        Boltzmann(tau)


def test_numpy_scalars_are_numbers():
    assert EpsilonGreedy(np.float32(0.25)).parameter() == pytest.approx(0.25)
    assert Boltzmann(np.int64(2)).parameter() == 2.0
    with pytest.raises(ValueError, match="epsilon"):
        EpsilonGreedy(np.float64(2.0))


def test_schedule_values_are_checked_at_the_step():
    policy = EpsilonGreedy(LinearSchedule(start=0.5, end=1.5, duration=10))
    assert policy.parameter(0) == 0.5
    with pytest.raises(ValueError, match=r"epsilon must be in \[0, 1\], got 1.5"):
        policy.probs([0.0, 1.0], step=10)
    boltz = Boltzmann(lambda step: 1.0 - step)
    boltz.select(np.zeros(3), np.random.default_rng(0), step=0)
    with pytest.raises(ValueError, match="temperature"):
        boltz.select(np.zeros(3), np.random.default_rng(0), step=1)
    with pytest.raises(ValueError, match="epsilon"):
        EpsilonGreedy(ConstantSchedule(-0.5))


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_nan_q_values_say_training_diverged(name):
    policy, _ = POLICIES[name]
    rng = np.random.default_rng(0)
    row = np.array([0.0, math.nan, 1.0])
    for q, mask in (
        (row, None),
        (row.tolist(), None),
        (row, [True, True, False]),
        (np.stack([row, row]), None),
    ):
        calls = (
            lambda q=q, mask=mask: policy.select(q, rng, mask=mask),
            lambda q=q, mask=mask: policy.probs(q, mask=mask),
            lambda q=q, mask=mask: policy.entropy(q, mask=mask),
            lambda q=q, mask=mask: policy.expectation(q, mask=mask),
        )
        for call in calls:
            # a ValueError, and an RlsoftError so that the CLI shows it as one sentence
            with pytest.raises(DivergedError, match=r"NaN.*diverged"):
                call()


# One row's NaN is at a disallowed action (never chosen, so never read); the batch mixes it
# with a row whose masked NaN sits beside a tie and a row without NaN.
MASKED_NAN_Q = np.array(
    [[0.5, math.nan, 2.0, -1.0], [3.0, 3.0, math.nan, math.nan], [1.0, 0.0, 2.0, 0.5]]
)
MASKED_NAN_MASK = np.array(
    [[True, False, True, True], [True, True, False, False], [False, True, True, True]]
)


@pytest.mark.parametrize("layout", ["row", "list", "batch"])
@pytest.mark.parametrize("name", sorted(POLICIES))
def test_nan_at_a_masked_action_is_ignored(name, layout):
    policy, ref = POLICIES[name]
    if layout == "batch":
        q, mask = MASKED_NAN_Q, MASKED_NAN_MASK
    else:
        q, mask = MASKED_NAN_Q[0], MASKED_NAN_MASK[0]
    given_q = q.tolist() if layout == "list" else q.copy()
    want = ref(q, mask)  # the references never read a disallowed value
    np.testing.assert_allclose(policy.probs(given_q, mask=mask), want, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(
        policy.entropy(given_q, mask=mask), scipy_entropy(want, axis=-1), rtol=1e-12, atol=1e-15
    )
    values = np.where(want > 0, want * np.where(mask, q, 0.0), 0.0).sum(axis=-1)
    np.testing.assert_allclose(policy.expectation(given_q, mask=mask), values, rtol=1e-13)
    # select: the exact distribution (chi-square), never a disallowed action
    rng = np.random.default_rng(SEEDS[name])
    if layout == "batch":
        draws = np.stack([policy.select(given_q, rng, mask=mask) for _ in range(3000)])
        for r in range(len(q)):
            assert_follows(draws[:, r], want[r])
    else:
        draws = [policy.select(given_q, rng, mask=mask) for _ in range(3000)]
        assert all(type(a) is int for a in draws)
        assert_follows(draws, want)
    if layout != "list":
        assert np.isnan(given_q).sum() == np.isnan(q).sum()  # the caller's array is untouched


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_nan_at_an_allowed_action_beside_a_masked_nan_still_raises(name):
    policy, _ = POLICIES[name]
    q = MASKED_NAN_Q.copy()
    q[2, 0] = math.nan  # masked out in row 2: fine on its own
    q[2, 3] = math.nan  # allowed: divergence
    for given_q, mask in ((q, MASKED_NAN_MASK), (q[2], MASKED_NAN_MASK[2])):
        with pytest.raises(DivergedError, match=r"NaN.*diverged"):
            policy.select(given_q, np.random.default_rng(0), mask=mask)
        with pytest.raises(DivergedError, match=r"NaN.*diverged"):
            policy.probs(given_q, mask=mask)
        with pytest.raises(DivergedError, match=r"NaN.*diverged"):
            policy.entropy(given_q, mask=mask)
        with pytest.raises(DivergedError, match=r"NaN.*diverged"):
            policy.expectation(given_q, mask=mask)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_mask_and_shape_errors(name):
    policy, _ = POLICIES[name]
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="mask allows no action"):
        policy.select(np.zeros(3), rng, mask=[False, False, False])
    with pytest.raises(ValueError, match="mask allows no action"):
        policy.probs(np.zeros((2, 3)), mask=[[True, False, False], [False, False, False]])
    with pytest.raises(ValueError, match="mask has shape"):
        policy.select(np.zeros(3), rng, mask=[True, False])
    with pytest.raises(ValueError, match=r"shape \(A,\) or \(n, A\)"):
        policy.probs(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"shape \(A,\) or \(n, A\)"):
        policy.select(np.zeros(0), rng)


def test_diverged_error_is_both_a_value_error_and_a_user_facing_error():
    assert issubclass(DivergedError, ValueError) and issubclass(DivergedError, RlsoftError)


def test_describe_and_interface():
    assert Greedy().describe() == {"policy": "Greedy"}
    assert EpsilonGreedy(0.1).describe() == {
        "policy": "EpsilonGreedy",
        "epsilon": {"type": "constant", "value": 0.1},
    }
    lin = LinearSchedule(1.0, 0.05, 1000)
    assert Boltzmann(lin).describe()["temperature"] == lin.as_dict()
    assert Boltzmann(lin).schedule is lin
    assert Greedy().parameter(5) is None
    assert EpsilonGreedy.parameter_name == "epsilon" and Boltzmann.parameter_name == "temperature"
    assert all(isinstance(p, Policy) for p, _ in POLICIES.values())


def test_select_return_types():
    rng = np.random.default_rng(1)
    for policy, _ in POLICIES.values():
        assert type(policy.select(ROWS[0], rng)) is int
        assert type(policy.select(ROWS[0].tolist(), rng)) is int
        assert type(policy.select(ROWS[0], rng, mask=MASKS[0])) is int
        out = policy.select(ROWS, rng)
        assert isinstance(out, np.ndarray) and out.shape == (3,)
        assert isinstance(policy.probs(ROWS[0]), np.ndarray)
        assert isinstance(policy.entropy(ROWS), np.ndarray)
        assert type(policy.select(np.array([1, 2, 2]), rng)) is int  # integer Q-values


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


@st.composite
def q_and_mask(draw):
    q = draw(
        hnp.arrays(
            np.float64,
            hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=7),
            elements=st.floats(-50, 50, allow_nan=False).map(lambda v: round(v, 1)),  # ties
        )
    )
    mask = draw(hnp.arrays(np.bool_, q.shape))
    mask[..., draw(st.integers(0, q.shape[-1] - 1))] = True
    return q, mask


policy_strategy = st.sampled_from(
    [
        Greedy(),
        EpsilonGreedy(0.0),
        EpsilonGreedy(0.37),
        EpsilonGreedy(1.0),
        Boltzmann(0.01),
        Boltzmann(1.0),
        Boltzmann(50.0),
    ]
)


@given(q_and_mask(), policy_strategy, st.booleans(), st.integers(0, 2**32 - 1))
def test_policy_properties(data, policy, use_mask, seed):
    q, mask = data
    mask = mask if use_mask else None
    allowed = _allowed(q, mask)
    p = policy.probs(q, mask=mask)
    assert p.shape == q.shape
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-12)
    assert np.all(p[~allowed] == 0)
    h = np.asarray(policy.entropy(q, mask=mask))
    assert np.all(h >= -1e-12)
    assert np.all(h <= np.log(allowed.sum(axis=-1)) + 1e-12)
    a = np.asarray(policy.select(q, np.random.default_rng(seed), mask=mask))
    chosen = np.take_along_axis(p, a.reshape(*a.shape, 1), axis=-1)
    assert np.all(chosen > 0)


# --------------------------------------------------------------------------------------------
# expectation() and the single-row list fast path of probs()
# --------------------------------------------------------------------------------------------

_ROW = [1.5, -0.25, 1.5, 0.75, -2.0]


def _reference_probs(name: str, row: list[float], param: float) -> np.ndarray:
    q = np.array(row)
    ties = (q == q.max()).astype(float) / (q == q.max()).sum()
    if name == "greedy":
        return ties
    if name == "epsilon":
        return (1 - param) * ties + param / q.size
    return sps.softmax(q / param)


@pytest.mark.parametrize(
    ("name", "policy", "param"),
    [
        ("greedy", Greedy(), None),
        ("epsilon", EpsilonGreedy(0.3), 0.3),
        ("boltzmann", Boltzmann(0.7), 0.7),
    ],
)
def test_expectation_and_list_probs_match_independent_references(name, policy, param) -> None:
    expected_p = _reference_probs(name, _ROW, param)
    np.testing.assert_allclose(policy.probs(list(_ROW)), expected_p, rtol=1e-12)
    np.testing.assert_allclose(policy.probs(np.array(_ROW)), expected_p, rtol=1e-12)
    expected_value = float(expected_p @ np.array(_ROW))
    assert policy.expectation(list(_ROW)) == pytest.approx(expected_value, rel=1e-12)
    assert policy.expectation(np.array(_ROW)) == pytest.approx(expected_value, rel=1e-12)
    batch = np.array([_ROW, [0.0, 0.0, 0.0, 0.0, 0.0]])
    values = policy.expectation(batch)
    assert values.shape == (2,)
    assert values[0] == pytest.approx(expected_value, rel=1e-12)
    assert values[1] == pytest.approx(0.0, abs=1e-15)


def test_expectation_ignores_masked_minus_infinity() -> None:
    row = np.array([1.0, -np.inf, 3.0])
    mask = np.array([True, False, True])
    p = sps.softmax(np.array([1.0, 3.0]))
    assert Boltzmann(1.0).expectation(row, mask=mask) == pytest.approx(p @ [1.0, 3.0])
    assert EpsilonGreedy(0.5).expectation(row, mask=mask) == pytest.approx(0.75 * 3.0 + 0.25 * 1.0)


# --------------------------------------------------------------------------------------------
# row_sampler: the tabular agents' per-step path
# --------------------------------------------------------------------------------------------


class _HalfLinear(Policy):
    """A user-defined policy with only ``probs``: π ∝ (1, 2, …, A), to exercise the default
    inverse-CDF ``row_sampler``."""

    def probs(self, q, *, step=0, mask=None):
        weights = np.arange(1.0, np.shape(q)[-1] + 1.0)
        return weights / weights.sum()


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_row_sampler_samples_exactly(name):
    policy, ref = POLICIES[name]
    stream = UniformStream(np.random.default_rng(SEEDS[name] + 1))
    sample = policy.row_sampler(stream.uniform)
    for q in ROWS:
        row = q.tolist()
        actions = [sample(row, 0) for _ in range(3000)]
        assert all(type(a) is int for a in actions)
        assert_follows(actions, ref(q))


def test_row_sampler_follows_schedules_at_the_step():
    stream = UniformStream(np.random.default_rng(5))
    q = ROWS[1]
    row = q.tolist()
    eps = EpsilonGreedy(LinearSchedule(start=1.0, end=0.0, duration=100)).row_sampler(
        stream.uniform
    )
    assert_follows([eps(row, 50) for _ in range(3000)], ref_epsilon_greedy(q, 0.5))
    assert {eps(row, 100) for _ in range(200)} == {2}
    boltz = Boltzmann(ExponentialSchedule(start=10.0, end=0.1, half_life=10))
    sample = boltz.row_sampler(stream.uniform)
    t20 = 0.1 + 9.9 / 4
    assert_follows([sample(row, 20) for _ in range(3000)], ref_boltzmann(q, t20))


def test_default_row_sampler_uses_probs_by_inverse_cdf():
    stream = UniformStream(np.random.default_rng(6))
    sample = _HalfLinear().row_sampler(stream.uniform)
    actions = [sample([0.0, 0.0, 0.0, 0.0], 0) for _ in range(4000)]
    assert_follows(actions, np.arange(1.0, 5.0) / 10.0)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_row_sampler_at_the_largest_uniform_stays_in_range(name):
    # u = 1 − 2⁻⁵³ for every draw: ⌊u·k⌋ must still be a valid index, and the inverse CDF
    # must not run past the last action.
    policy, _ = POLICIES[name]
    sample = policy.row_sampler(lambda: 1.0 - 2.0**-53)
    for q in ROWS:
        action = sample(q.tolist(), 0)
        assert 0 <= action < len(q)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_row_sampler_matches_select_given_the_same_uniforms(name):
    # select() on a Generator and row_sampler() on a stream of the same Generator's values
    # take the same actions: one sampler, two ways of feeding it uniforms.
    policy, _ = POLICIES[name]
    rng = np.random.default_rng(SEEDS[name] + 2)
    stream = UniformStream(np.random.default_rng(SEEDS[name] + 2))
    sample = policy.row_sampler(stream.uniform)
    for q in ROWS:
        row = q.tolist()
        assert [policy.select(row, rng) for _ in range(200)] == [sample(row, 0) for _ in range(200)]


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_select_accepts_a_uniform_stream_for_batches_and_masks(name):
    # UniformStream offers the subset of Generator that select's array paths use.
    policy, ref = POLICIES[name]
    stream = UniformStream(np.random.default_rng(SEEDS[name] + 3))
    for q, mask in zip(ROWS, MASKS, strict=True):
        batch = policy.select(
            np.repeat(q[None], 3000, 0), stream, mask=np.repeat(mask[None], 3000, 0)
        )
        assert_follows(batch, ref(q, mask))
        assert_follows([policy.select(q, stream, mask=mask) for _ in range(2000)], ref(q, mask))


@pytest.mark.parametrize(
    "policy",
    [EpsilonGreedy(0.3), EpsilonGreedy(LinearSchedule(1.0, 0.0, 50)), Boltzmann(0.5), Greedy()],
    ids=["eps-const", "eps-schedule", "boltzmann", "greedy"],
)
def test_select_lazily_draws_and_acts_as_select(policy):
    """The lazy path (DQN's single environment) takes the same draws and actions as select,
    ties included, and computes the values only on the steps whose action needs them."""
    rows = np.random.default_rng(5).integers(0, 3, size=(200, 4)).astype(np.float32)
    eager, lazy = np.random.default_rng(9), np.random.default_rng(9)
    computed = 0

    def values(row):
        def compute():
            nonlocal computed
            computed += 1
            return row

        return compute

    for step, row in enumerate(rows):
        expected = policy.select(row, eager, step=step)
        assert policy.select_lazily(values(row), 4, lazy, step=step) == expected
    assert eager.bit_generator.state == lazy.bit_generator.state
    if isinstance(policy, EpsilonGreedy):  # ~30 % (or more) of 200 steps explore
        assert computed < len(rows) - 20
    else:
        assert computed == len(rows)
