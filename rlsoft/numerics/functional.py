"""Numerically stable softmax, log-sum-exp, entropy, cross-entropy and argmax.

One module serves every part of rlsoft: tabular agents and action selection call it with
numpy arrays, the DQN heads and the classification baseline with torch tensors. Every function
returns the kind it was given:

* numpy (and lists): floating dtypes are kept (float32 stays float32), integers and bools
  become float64;
* torch: dtype and device are kept and the result is differentiable.

The shared idea is that these are one object at different temperatures τ:

    argmax(x)                       = lim τ→0  softmax(x / τ)
    softmax(x; τ)_i                 = exp(x_i / τ) / Σ_j exp(x_j / τ)
    logsumexp(x; τ)                 = τ · log Σ_i exp(x_i / τ)       (→ max(x) as τ → 0)
    cross_entropy(z, y)             = logsumexp(z) − z_y

Stability comes from shifting by the finite row maximum m before exponentiating:
τ · log Σ exp(x_i / τ) = m + τ · log Σ exp((x_i − m) / τ), so every exponent is ≤ 0 and
nothing overflows on finite input (x = 1e300 works). ``-inf`` entries are masks: they get
probability 0 and contribute nothing; a row that is entirely ``-inf`` has log-sum-exp ``-inf``.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
from math import exp, log
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "argmax",
    "check_temperature",
    "cross_entropy",
    "entropy",
    "log_softmax",
    "logsumexp",
    "pick_tie",
    "row_exp",
    "row_logsumexp",
    "softmax",
]

Reduction = Literal["mean", "sum", "none"]
_NO_CONTEXT = contextlib.nullcontext()


def _degenerate_rows(degenerate: bool) -> Any:
    """Silence the floating-point warnings of rows whose max is infinite (see _finite_max).

    Such rows are shifted by 0: exp may overflow (a +inf entry, or finite entries beside it at
    a small τ), log may see 0 (an all −inf row) and inf/inf or 0/0 give NaN. The results are
    the documented ones (NaN, ±inf); finite rows, shifted to ≤ 0, never raise these.
    """
    if degenerate:
        return np.errstate(over="ignore", divide="ignore", invalid="ignore")
    return _NO_CONTEXT


# --------------------------------------------------------------------------------------------
# Input handling shared by all functions
# --------------------------------------------------------------------------------------------


def _is_tensor(x: Any) -> bool:
    # torch is only consulted when already imported: numpy callers never pay its import cost.
    torch_module = sys.modules.get("torch")
    return torch_module is not None and isinstance(x, torch_module.Tensor)


def _as_float_array(x: Any) -> np.ndarray:
    if type(x) is np.ndarray and x.dtype.kind == "f":
        return x
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    return arr


def check_temperature(temperature: float) -> float:
    """``temperature`` as a float when it is a valid τ (positive and finite), else ValueError.

    The one check of every temperature in rlsoft: these functions', a Boltzmann policy's, soft
    Q-learning's soft target's, and the configs' (each endpoint of a schedule).
    """
    # `not (0 < t < inf)` also rejects NaN, whose comparisons are all False.
    if not 0.0 < temperature < math.inf:
        raise ValueError(
            f"temperature must be a positive finite number, got {temperature!r}; "
            "use a small value such as 1e-3 for near-greedy behaviour"
        )
    return float(temperature)


def _finite_max(x: np.ndarray, axis: int) -> tuple[np.ndarray, bool]:
    """Row maximum (keepdims) with infinite maxima replaced by 0, and whether any was.

    An all ``-inf`` row (or a ``+inf`` entry) must not be subtracted from itself, which would
    give ``inf − inf = NaN``; shifting such rows by 0 instead lets ``exp`` produce the right
    limits (0 for masked rows, ``inf`` for infinite entries). NaN maxima are kept so that NaN
    propagates.
    """
    m = np.maximum.reduce(x, axis=axis, keepdims=True)
    infinite = np.isinf(m)
    if infinite.any():
        return np.where(infinite, 0.0, m).astype(x.dtype, copy=False), True
    return m, False


_SMALL_ROW = 32


def _small_row(x: Any, axis: int) -> list[float] | None:
    """The values of ``x`` as a Python list when it is one short row with a finite max.

    Tabular agents call softmax and log-sum-exp once per environment step on one row of a
    handful of actions. There numpy's fixed cost per ufunc call (about 0.5 µs, five calls)
    dominates, and plain float arithmetic in float64 is both faster and at least as accurate.
    Anything else (batches, long rows, infinite maxima, NaN) returns None for the array path.
    """
    if type(x) is not np.ndarray or not 0 < x.size <= _SMALL_ROW or x.dtype.kind != "f":
        return None
    if x.ndim == 1:
        if axis not in (0, -1):
            return None
    elif x.ndim != 2 or x.shape[0] != 1 or axis not in (1, -1):
        return None
    row = x.ravel().tolist()
    top = max(row)
    # NaN anywhere makes the sum NaN; an infinite max makes top − top NaN.
    total = sum(row)
    if total != total or top - top != 0.0:
        return None
    return row


def row_exp(row: list[float], temperature: float) -> tuple[list[float], float, float]:
    """``(e, Σe, m)`` with ``e_i = exp((x_i − m)/τ)``, ``m = max x``, for one Python row whose
    maximum is finite: the unnormalised softmax weights, each in (0, 1] (the maximum's is
    exactly 1, so ``Σe ≥ 1``). τ is not checked (callers check it once, not per row).

    The pure-Python one-row kernel shared by the functions here, the Boltzmann policy and
    tabular soft Q-learning: on a row of a few actions numpy's per-call overhead (µs) would
    dominate the arithmetic (tens of ns per entry).
    """
    top = max(row)
    # Divide rather than multiply by 1/τ: 1/τ is inf for a subnormal τ, and 0·inf is NaN.
    e = [exp((v - top) / temperature) for v in row]
    return e, sum(e), top


def row_logsumexp(row: list[float], temperature: float) -> float:
    """``τ·log Σ_i exp(x_i/τ) = m + τ·log Σ_i exp((x_i − m)/τ)`` of one Python row with a
    finite maximum ``m`` (:func:`row_exp`; τ not checked). Shifting by the maximum keeps every
    exponent ≤ 0, so nothing overflows."""
    _, total, top = row_exp(row, temperature)
    return top + temperature * log(total)


@functools.cache
def _normal_range(dtype: np.dtype) -> tuple[float, float]:
    info = np.finfo(dtype)
    return float(info.tiny), float(info.max)


def _temperature_loop(temperature: float, dtype: np.dtype) -> type[np.float64] | None:
    """The ufunc ``dtype=`` for dividing or multiplying arrays of ``dtype`` by τ.

    A τ the dtype cannot hold as a normal number (1e-50 or 1e300 for float32, 1e-9 for
    float16) would round to 0 or inf and turn 0/τ or −inf·τ into NaN; then the arithmetic
    runs in float64 and the result is rounded once into ``dtype``. None (the default loop)
    otherwise.
    """
    if dtype == np.float64:
        return None
    tiny, huge = _normal_range(dtype)
    return None if tiny <= temperature <= huge else np.float64


def _scaled_shift(
    x: np.ndarray, axis: int, temperature: float
) -> tuple[np.ndarray, np.ndarray, bool]:
    """``((x − m)/τ, m, degenerate)`` in one fresh buffer, every value ≤ 0 on finite rows.

    ``(x − m)/τ`` may overflow to −inf for a tiny τ (1e300 at τ = 1e-9); that is the exact
    limit here (exp(−inf) = 0), so the warning is silenced. At τ = 1 only a row spanning more
    than the float range (entries beyond ±9e307) can overflow; the results are still right,
    and numpy's overflow warning is left alone there rather than paying ~1-2 µs for an
    ``errstate`` on every call.
    """
    m, degenerate = _finite_max(x, axis)
    if temperature == 1.0:
        return np.subtract(x, m), m, degenerate
    with np.errstate(over="ignore"):
        z = np.subtract(x, m)
        np.divide(z, temperature, out=z, dtype=_temperature_loop(temperature, z.dtype))
    return z, m, degenerate


# --------------------------------------------------------------------------------------------
# logsumexp, softmax, log_softmax, entropy
# --------------------------------------------------------------------------------------------


def logsumexp(x: Any, axis: int = -1, *, temperature: float = 1.0, keepdims: bool = False) -> Any:
    r"""Temperature-scaled log-sum-exp along ``axis``.

    .. math:: \operatorname{lse}_τ(x) = τ \log \sum_i e^{x_i/τ}
              = m + τ \log \sum_i e^{(x_i - m)/τ},\quad m = \max_i x_i

    It is a smooth maximum: ``max(x) ≤ lse_τ(x) ≤ max(x) + τ log K`` for K entries, so it tends
    to ``max(x)`` as τ → 0. Used for soft value targets ``V(s) = τ·logsumexp(Q(s)/τ)``.

    :param x: values (numpy array, list or torch tensor); ``-inf`` entries are masked out.
    :param axis: the axis to reduce.
    :param temperature: τ > 0, finite.
    :param keepdims: keep the reduced axis with length 1.
    :return: same kind as ``x``. Reducing 1-D numpy input gives a numpy scalar of the input's
        float dtype (as ``np.sum`` does), whatever the length; ``keepdims`` gives an array. An
        all ``-inf`` row gives ``-inf``; a ``+inf`` entry gives ``+inf``; NaN propagates.

    >>> float(logsumexp([1000.0, 1000.0]))  # exp(1000) would overflow; the shift avoids it
    1000.6931471805599
    """
    temperature = check_temperature(temperature)
    row = _small_row(x, axis)
    if row is not None:
        value = row_logsumexp(row, temperature)
        if keepdims:
            return np.full((1,) * x.ndim, value, dtype=x.dtype)
        return x.dtype.type(value) if x.ndim == 1 else np.array([value], dtype=x.dtype)
    if _is_tensor(x):
        return _torch_logsumexp(x, axis, temperature, keepdims)
    s, m, degenerate = _scaled_shift(_as_float_array(x), axis, temperature)
    with _degenerate_rows(degenerate):
        np.exp(s, out=s)
        s = np.add.reduce(s, axis=axis, keepdims=True)
        np.log(s, out=s)  # log 0 = −inf is the right answer for a fully masked row
    if temperature != 1.0:
        np.multiply(s, temperature, out=s, dtype=_temperature_loop(temperature, s.dtype))
    np.add(s, m, out=s)
    if keepdims:
        return s
    s = np.squeeze(s, axis=axis)
    # A 0-d array from 1-D input becomes the numpy scalar the short-row path returns.
    return s[()] if s.ndim == 0 else s


def softmax(x: Any, axis: int = -1, *, temperature: float = 1.0) -> Any:
    r"""Boltzmann distribution of ``x`` at temperature τ along ``axis``.

    .. math:: \operatorname{softmax}_τ(x)_i = \frac{e^{(x_i - m)/τ}}{\sum_j e^{(x_j - m)/τ}}

    Shift-invariant (``softmax(x + c) = softmax(x)``); τ → 0 concentrates the mass on the
    maxima (split equally between ties), τ → ∞ gives the uniform distribution.

    :return: probabilities of the same kind and shape as ``x``; ``-inf`` entries get 0.
        An all ``-inf`` row has no distribution and gives NaN, as in torch and scipy.

    >>> np.round(softmax([2.0, 1.0, 0.0]), 3)
    array([0.665, 0.245, 0.09 ])
    """
    temperature = check_temperature(temperature)
    row = _small_row(x, axis)
    if row is not None:
        e, total, _ = row_exp(row, temperature)
        inv = 1.0 / total
        probs = np.array([v * inv for v in e], dtype=x.dtype)
        return probs if x.ndim == 1 else probs.reshape(x.shape)
    if _is_tensor(x):
        return _torch_softmax(x, axis, temperature)
    e, _, degenerate = _scaled_shift(_as_float_array(x), axis, temperature)
    with _degenerate_rows(degenerate):
        np.exp(e, out=e)
        s = np.add.reduce(e, axis=axis, keepdims=True)
        np.divide(e, s, out=e)  # 0/0 = NaN: a fully masked row has no distribution
    return e


def log_softmax(x: Any, axis: int = -1, *, temperature: float = 1.0) -> Any:
    r"""Logarithm of :func:`softmax`, computed without forming the probabilities.

    .. math:: \log \operatorname{softmax}_τ(x)_i = \frac{x_i - m}{τ}
              - \log \sum_j e^{(x_j - m)/τ}

    Because ``p`` is never formed, tiny probabilities keep their exact log:
    ``log_softmax([0, -1000]) == [0, -1000]`` where ``log(softmax(...))`` gives ``-inf``.
    """
    temperature = check_temperature(temperature)
    row = _small_row(x, axis)
    if row is not None:
        _, total, top = row_exp(row, temperature)
        shift = log(total)
        out = np.array([(v - top) / temperature - shift for v in row], dtype=x.dtype)
        return out if x.ndim == 1 else out.reshape(x.shape)
    if _is_tensor(x):
        return _torch_log_softmax(x, axis, temperature)
    z, _, degenerate = _scaled_shift(_as_float_array(x), axis, temperature)
    with _degenerate_rows(degenerate):
        s = np.add.reduce(np.exp(z), axis=axis, keepdims=True)
        np.log(s, out=s)
        np.subtract(z, s, out=z)
    return z


def entropy(logits: Any, axis: int = -1, *, temperature: float = 1.0) -> Any:
    r"""Shannon entropy, in nats, of ``softmax(logits / τ)`` along ``axis``.

    .. math:: H = -\sum_i p_i \log p_i
              = \operatorname{lse}(z) - \sum_i p_i z_i,\quad z = x/τ

    Masked (``-inf``) entries contribute 0 (the limit of ``p log p`` as ``p → 0``); the uniform
    distribution over K allowed entries gives ``ln K``.
    """
    temperature = check_temperature(temperature)
    if _is_tensor(logits):
        return _torch_entropy(logits, axis, temperature)
    logp = log_softmax(logits, axis, temperature=temperature)
    p = np.exp(logp)
    # p·log p is 0·(−inf) = NaN on masked entries; their limit is 0.
    np.copyto(logp, 0.0, where=p == 0.0)
    np.multiply(p, logp, out=p)
    return np.negative(np.add.reduce(p, axis=axis))


# --------------------------------------------------------------------------------------------
# argmax
# --------------------------------------------------------------------------------------------


def argmax(x: Any, axis: int = -1, *, rng: Any = None) -> Any:
    """Index of the maximum along ``axis``: ``argmax(x) = min{i : x_i = max_j x_j}``.

    :param rng: ``None`` returns the first maximum (numpy's and torch's rule). A
        ``numpy.random.Generator`` (or a ``torch.Generator`` for tensors) breaks ties uniformly
        at random, which Q-learning needs: with a zero-initialised Q-table every action ties
        and "first maximum" would always pick action 0.
    :return: an integer (1-D input) or an integer array (batched input); torch tensors give
        an int64 tensor on the same device.
    :raises ValueError: on NaN input, where no maximum is defined.
    """
    if _is_tensor(x):
        return _torch_argmax(x, axis, rng)
    x = np.asarray(x)
    if x.size == 0:
        raise ValueError("argmax of an empty array is undefined")
    m = np.maximum.reduce(x, axis=axis, keepdims=True)
    if np.isnan(m).any():
        raise ValueError("argmax got NaN values; check the Q-values or logits for divergence")
    if rng is None:
        return np.argmax(x, axis=axis)
    return pick_tie(x == m, rng, axis)


def pick_tie(ties: np.ndarray, rng: np.random.Generator, axis: int = -1) -> Any:
    """One True position of the boolean ``ties`` along ``axis``, uniformly at random (each
    row needs at least one True): the tie-breaking rule of :func:`argmax` with ``rng`` and of
    the greedy policies.

    A 1-D row draws ``rng.integers(k)`` among its k candidates only when k > 1; a batch draws
    a uniform key per entry and takes the largest key among the ties, which is uniform over
    them.
    """
    if ties.ndim == 1:
        candidates = np.flatnonzero(ties)
        if candidates.size == 1:
            return candidates[0]
        return candidates[rng.integers(candidates.size)]
    keys = np.where(ties, rng.random(ties.shape), -1.0)
    return np.argmax(keys, axis=axis)


# --------------------------------------------------------------------------------------------
# cross-entropy
# --------------------------------------------------------------------------------------------


def cross_entropy(
    logits: Any,
    target: Any,
    *,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    return_grad: bool = False,
) -> Any:
    r"""Cross-entropy between ``softmax(logits)`` and a target, class axis last.

    With target distribution y (a one-hot row for an index target) smoothed as
    ``y' = (1 − ε)·y + ε·u``, u uniform over the row's allowed classes (below):

    .. math:: \ell = -\sum_k y'_k \log \operatorname{softmax}(z)_k
              = \Big(\sum_k y'_k\Big)\operatorname{lse}(z) - \sum_k y'_k z_k,
              \qquad \frac{\partial \ell}{\partial z} = p \sum_k y'_k - y'

    which is the familiar ``p − y`` for targets that sum to 1. Computed from logits through
    log-sum-exp, never as ``log`` of a clamped probability.

    **Masked classes.** A logit of ``-inf`` masks its class out (an action that is not allowed):
    p_k = 0 there, and the terms ``y'_k log p_k`` with ``y'_k = 0`` count as 0 (the limit of
    ``y log p`` as y → 0), so the loss equals the cross-entropy computed on the allowed columns
    alone and its gradient is exactly 0 on the masked ones. Label smoothing spreads ε over the
    K_a allowed classes of each row (u_k = 1/K_a there, 0 on masked classes); without masks
    K_a = K, torch's definition. Smoothing onto a class of probability 0 would make every loss
    +inf, which is no useful definition. A target that itself puts mass on a masked class
    (class index or probability) gets the exact value ``−log 0 = +inf`` (as in
    ``torch.nn.functional.cross_entropy``), not an error: checking for it would cost a
    device synchronisation on every call. Its gradient stays the finite ``p·Σy′ − y′``. A row
    whose every logit is ``-inf`` has no distribution, and its loss is NaN.

    :param logits: shape ``(..., K)``.
    :param target: integer class indices of shape ``(...)``, or probability rows of shape
        ``(..., K)`` (soft targets, e.g. a projected C51 distribution).
    :param reduction: ``"mean"`` (over all rows), ``"sum"`` or ``"none"``.
    :param label_smoothing: ε in [0, 1], as in ``torch.nn.functional.cross_entropy``.
    :param return_grad: numpy only; also return ``dloss/dlogits`` (the fused ``p − y``,
        divided by the number of rows for ``"mean"``). Torch tensors get the same fused
        formula as their autograd backward instead.
    :raises ValueError: for a class index outside ``[0, K)`` (naming it and K), mismatched
        shapes, an unknown reduction or a smoothing outside [0, 1].
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    if _is_tensor(logits):
        if return_grad:
            raise ValueError(
                "return_grad is for numpy inputs; torch tensors get the gradient from "
                "loss.backward()"
            )
        from rlsoft.numerics._torch_cross_entropy import torch_cross_entropy

        return torch_cross_entropy(logits, target, reduction, label_smoothing)
    return _numpy_cross_entropy(logits, target, reduction, label_smoothing, return_grad)


def _check_index_target(target: np.ndarray, logits_shape: tuple[int, ...]) -> None:
    num_classes = logits_shape[-1]
    if target.shape != logits_shape[:-1]:
        raise ValueError(
            f"class-index target has shape {target.shape} but logits {logits_shape} need "
            f"{logits_shape[:-1]} (one index per row)"
        )
    if target.size:
        low, high = target.min(), target.max()
        bad = low if low < 0 else high if high >= num_classes else None
        if bad is not None:
            raise ValueError(
                f"class index {int(bad)} is out of range for K={num_classes} classes "
                f"(valid indices are 0..{num_classes - 1})"
            )


def _smoothing_mass(smoothing: float, num_classes: int, allowed: np.ndarray | None) -> Any:
    """ε·u_k, the smoothing part of the target: ε/K everywhere without masks, else ε/K_a on
    the K_a allowed classes of each row and 0 on masked ones (NaN on a row with none)."""
    if allowed is None:
        return smoothing / num_classes
    with np.errstate(divide="ignore", invalid="ignore"):
        return smoothing * allowed / allowed.sum(axis=-1, keepdims=True)


def _weighted_log_p(weights: Any, log_p: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """``Σ_k w_k log p_k`` per row, with ``0·log 0`` read as 0 when classes are masked."""
    if allowed is None:
        if np.ndim(weights) == 0:
            return weights * log_p.sum(axis=-1)
        return np.einsum("...k,...k->...", weights, log_p)
    terms = np.zeros(np.broadcast_shapes(np.shape(weights), log_p.shape))
    np.multiply(weights, log_p, out=terms, where=np.asarray(weights) != 0)
    return terms.sum(axis=-1)


def _numpy_cross_entropy(
    logits: Any, target: Any, reduction: Reduction, smoothing: float, return_grad: bool
) -> Any:
    z = _as_float_array(logits)
    if z.ndim == 0:
        raise ValueError("logits must have a class axis (shape (..., K))")
    y = np.asarray(target)
    num_classes = z.shape[-1]
    log_p = log_softmax(z)
    # log p_k = −inf only for a masked class (z_k = −inf) or beyond the float range; then the
    # guarded formulas run (0·(−inf) = NaN otherwise). Unmasked input keeps the plain ones.
    allowed = ~np.isneginf(z) if np.isneginf(log_p).any() else None
    mass = _smoothing_mass(smoothing, num_classes, allowed) if smoothing else 0.0
    if y.dtype.kind in "iub":
        _check_index_target(y, z.shape)
        idx = y.astype(np.intp)[..., None]
        picked = np.take_along_axis(log_p, idx, axis=-1)[..., 0]
        # At ε = 1 the label's own term is absent (not 0·(−inf) for a masked label).
        loss = -(1.0 - smoothing) * picked if smoothing < 1.0 else np.zeros_like(picked)
        if smoothing:
            loss -= _weighted_log_p(mass, log_p, allowed)
        weight_sum = None  # smoothed one-hot rows sum to 1
    else:
        if y.shape != z.shape:
            raise ValueError(
                f"probability target has shape {y.shape} but must match logits {z.shape}; "
                "pass integer class indices for hard labels"
            )
        y = y.astype(z.dtype, copy=False)
        if smoothing:
            y = (1.0 - smoothing) * y + mass
        loss = -_weighted_log_p(y, log_p, allowed)
        weight_sum = y.sum(axis=-1, keepdims=True)
        idx = None
    loss = loss.astype(z.dtype, copy=False)
    rows = max(loss.size, 1)
    value = _reduce(loss, reduction)
    if not return_grad:
        return value
    grad = np.exp(log_p)
    if idx is None:
        grad = grad * weight_sum - y
    else:
        if smoothing:
            grad -= mass
        np.put_along_axis(
            grad, idx, np.take_along_axis(grad, idx, axis=-1) - (1.0 - smoothing), axis=-1
        )
    if reduction == "mean":
        grad /= rows
    return value, grad.astype(z.dtype, copy=False)


def _reduce(loss: np.ndarray, reduction: Reduction) -> Any:
    if reduction == "none":
        return loss
    total = loss.sum(dtype=loss.dtype)
    return total / loss.size if reduction == "mean" and loss.size else total


# --------------------------------------------------------------------------------------------
# torch implementations: shift by the detached finite max, then use torch's fused kernels.
# --------------------------------------------------------------------------------------------


def _torch_scale(x: torch.Tensor, temperature: float, *, divide: bool) -> torch.Tensor:
    """``x / τ`` or ``x · τ``, in float64 when τ is outside ``x.dtype``'s normal range.

    torch rounds a Python scalar to the tensor's dtype, so τ = 1e-50 would become 0 in
    float32 (and 0/0 = NaN); see :func:`_temperature_loop`.
    """
    import torch

    if x.dtype != torch.float64:
        info = torch.finfo(x.dtype)
        if not info.tiny <= temperature <= info.max:
            wide = x.double()
            return (wide / temperature if divide else wide * temperature).to(x.dtype)
    return x / temperature if divide else x * temperature


def _torch_shift_scale(
    x: torch.Tensor, axis: int, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x − m)/τ`` with m the finite, detached row max.

    Dividing by τ first could overflow (1e300 / 1e-9); the shift keeps every value ≤ 0. The
    max is detached because the result does not depend on it mathematically.
    """
    import torch

    m = torch.amax(x.detach(), dim=axis, keepdim=True)
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    return _torch_scale(x - m, temperature, divide=True), m


def _torch_logsumexp(x: torch.Tensor, axis: int, temperature: float, keepdims: bool):
    import torch

    if temperature == 1.0:
        return torch.logsumexp(x, dim=axis, keepdim=keepdims)
    z, m = _torch_shift_scale(x, axis, temperature)
    out = _torch_scale(torch.logsumexp(z, dim=axis, keepdim=True), temperature, divide=False) + m
    return out if keepdims else out.squeeze(axis)


def _torch_softmax(x: torch.Tensor, axis: int, temperature: float):
    import torch

    if temperature == 1.0:
        return torch.softmax(x, dim=axis)
    z, _ = _torch_shift_scale(x, axis, temperature)
    return torch.softmax(z, dim=axis)


def _torch_log_softmax(x: torch.Tensor, axis: int, temperature: float):
    import torch

    if temperature == 1.0:
        return torch.log_softmax(x, dim=axis)
    z, _ = _torch_shift_scale(x, axis, temperature)
    return torch.log_softmax(z, dim=axis)


def _torch_entropy(x: torch.Tensor, axis: int, temperature: float):
    import torch

    logp = _torch_log_softmax(x, axis, temperature)
    p = logp.exp()
    safe_logp = torch.where(p > 0, logp, torch.zeros_like(logp))
    return -(p * safe_logp).sum(dim=axis)


def _torch_argmax(x: torch.Tensor, axis: int, rng: Any):
    import torch

    if x.numel() == 0:
        raise ValueError("argmax of an empty tensor is undefined")
    m = torch.amax(x, dim=axis, keepdim=True)
    if torch.isnan(m).any():
        raise ValueError("argmax got NaN values; check the Q-values or logits for divergence")
    if rng is None:
        return torch.argmax(x, dim=axis)
    ties = x == m
    if isinstance(rng, np.random.Generator):
        noise = torch.as_tensor(rng.random(tuple(x.shape)), device=x.device)
    else:
        noise = torch.rand(x.shape, generator=rng, device=x.device, dtype=torch.float64)
    keys = torch.where(ties, noise, torch.full_like(noise, -1.0))
    return torch.argmax(keys, dim=axis)
