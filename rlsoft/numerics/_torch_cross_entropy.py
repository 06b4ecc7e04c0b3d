"""Torch cross-entropy with the fused ``p − y`` backward (no K×K softmax Jacobian), used
where it beats ``torch.nn.functional.cross_entropy`` (see :data:`_CUSTOM_MIN_CLASSES`) and for
masked classes, which torch's kernel does not define.

Kept apart from :mod:`rlsoft.numerics.functional` so that numpy-only users never import torch.

Forward, for logits z of shape (N, K) and a smoothed target y' = (1 − ε)·y + ε/K:

    log p = log_softmax(z)                      (one fused torch kernel, saved for backward)
    ℓ     = −Σ_k y'_k log p_k

Backward, for an upstream gradient g per row:

    ∂ℓ/∂z = g · (p · Σ_k y'_k − y')             (= g·(p − y') when y' sums to 1)
    ∂ℓ/∂y = −g · (1 − ε) · log p                (soft targets only)

Masked classes (logit −inf, see :func:`rlsoft.numerics.functional.cross_entropy`): the smoothing
mass ε is spread over the K_a allowed classes of a row instead of all K, and ``y'_k log p_k`` is 0
where ``y'_k = 0``, so the loss is that of the allowed columns alone and ∂ℓ/∂z is 0 on the
masked ones (p_k = y'_k = 0 there). ∂ℓ/∂y on a masked column is the exact −(1 − ε)·log 0 = +inf.
On CPU the guarded formulas run only when the plain ones give a non-finite loss (one read of
the reduced scalar, never a K-wide scan for −inf); on an accelerator they always run, since
deciding would synchronise with the device.

Speed (this runs in every update of a classifier or a distributional agent, often on small
batches where fixed costs dominate; ``scripts/bench_functional.py`` times it against
``torch.nn.functional.cross_entropy``):

* the index-target backward allocates one (N, K) tensor, ``exp(log p)``, and finishes it in
  place: the one-hot part is a ``scatter_add_`` of an (N, 1) column (never a one-hot tensor),
  and the upstream gradient of a reduced loss is one in-place multiply by a Python number on
  CPU;
* on CPU, ``gather`` bounds-checks the class indices itself, so valid targets cost no extra
  reduction and no tensor-to-Python read; the min/max is only computed to word the error;
* ``once_differentiable`` (which enters ``no_grad`` on every call) is only applied where it
  matters, under ``create_graph=True``;
* short rows on CPU take torch's leading-axis log-softmax kernel, see :func:`_log_softmax`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

_CUSTOM_MIN_CLASSES = 10
"""Class-index targets with at least this many classes take the fused function on CPU; fewer,
and every probability target, take ``torch.nn.functional.cross_entropy``.

``python scripts/bench_functional.py`` (forward + backward, one thread, 2026-12-05) on the shapes
rlsoft trains on, this function / ``F.cross_entropy``: C51's (128, 51) and (32, 51)
probability rows 1.41 and 1.46 (torch's kernel wins), behaviour cloning's (128, 2) index
rows 2.25 and (256, 6) 1.23 (torch wins), but the digits MLP's (64, 10) index rows 0.91,
full-batch softmax regression's (1078, 10) float64 0.59 and (4096, 1000) 0.80 (this one wins).
So each target type takes the faster one; the fused function also always serves the rows
torch's kernel cannot (masked classes: see :func:`torch_cross_entropy`) and accelerators."""

# torch's CPU log_softmax along the last axis pays a fixed cost per row when a row is shorter
# than a SIMD vector or two, so (256, 6) costs several times (256, 16); its kernel for a leading
# axis vectorises across rows instead (the same (256, 6) values seen as (6, 256)). Below a few
# hundred entries the last-axis kernel is the faster one. (Since the index path with fewer
# than 10 classes takes F.cross_entropy, this serves rows of 10 to 15 classes and masked rows.)
_SHORT_ROW = 16
_MANY_ENTRIES = 256


def _log_softmax(logits: torch.Tensor, *, contiguous: bool) -> torch.Tensor:
    """``torch.log_softmax(logits, -1)`` for (N, K) logits, through the faster CPU kernel.

    The two kernels compute the same max-shifted formula and agree to within an ulp. The
    short-row route returns a transposed (column-major) view unless ``contiguous``; the
    index-target path keeps it so, which is free for the elementwise backward and for a
    ``Linear`` layer upstream (a leaf tensor's ``.grad`` is still made row-major by autograd).
    """
    rows, classes = logits.shape
    if classes < _SHORT_ROW and rows * classes >= _MANY_ENTRIES and logits.device.type == "cpu":
        log_p = torch.log_softmax(logits.t(), dim=0).t()
        return log_p.contiguous() if contiguous else log_p
    return torch.log_softmax(logits, dim=-1)


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _scaled(grad: torch.Tensor, grad_out: torch.Tensor, reduction: str) -> torch.Tensor:
    """``grad`` times the upstream gradient (per row, or divided by N for "mean"), in place."""
    if reduction == "none":
        return grad.mul_(grad_out.reshape(-1, 1))
    rows = max(grad.shape[0], 1)
    if grad_out.device.type == "cpu":
        # A Python number saves a tensor op for g/N. float64 division rounded once to float32
        # is the correctly rounded float32 quotient, the same value as the tensor division.
        scale = float(grad_out) / rows if reduction == "mean" else float(grad_out)
        return grad if scale == 1.0 else grad.mul_(scale)
    return grad.mul_(grad_out / rows if reduction == "mean" else grad_out)


def _always_guarded(logits: torch.Tensor) -> bool:
    """Whether the masked-class formulas run unconditionally: on an accelerator, where first
    trying the plain ones and checking their result would synchronise with the device."""
    return logits.device.type != "cpu"


def _finite(loss: torch.Tensor) -> bool:
    """Whether a (reduced) loss is finite: one read of the scalar for "mean" and "sum".

    A −inf log-probability (a masked class) makes the plain formulas' rows −inf, +inf or NaN,
    and so the reduced loss; for any other cause of a non-finite loss the guarded formulas
    give the same value, so rerunning them then is only wasted work, never a change.
    """
    if loss.dim() == 0:
        return math.isfinite(loss.item())
    return bool(torch.isfinite(loss).all())


def _smoothing_mass(logits: torch.Tensor, smoothing: float) -> torch.Tensor:
    """ε·u, the smoothing part of the target: ε/K_a on the K_a allowed (finite-logit) classes
    of each row, 0 on masked ones (NaN on a row with none, whose loss is NaN anyway)."""
    allowed = (~torch.isneginf(logits)).to(logits.dtype)
    return allowed.mul_(smoothing / allowed.sum(dim=-1, keepdim=True))


def _weighted_log_p(weights: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    """``Σ_k w_k log p_k`` per row with ``0·log 0`` read as 0 (a masked class)."""
    return (weights * log_p).masked_fill_(weights == 0, 0.0).sum(dim=-1)


def _smoothed_index_rows(
    log_p: torch.Tensor, picked: torch.Tensor, smoothing: float, mass: torch.Tensor | None
) -> torch.Tensor:
    """Per row ``−(1 − ε)·log p_y − Σ_k ε·u_k log p_k``, with u = 1/K (``mass`` None, the
    plain formula) or ``mass`` = ε·u over the allowed classes (the guarded one)."""
    if mass is None:
        loss = log_p.sum(dim=-1).mul_(-smoothing / log_p.shape[-1])
    else:
        loss = _weighted_log_p(mass, log_p).neg_()
    if smoothing < 1.0:  # at ε = 1 the label's term is absent, not 0·(−inf) for a masked label
        loss.add_(picked.squeeze(-1), alpha=smoothing - 1.0)
    return loss


def _probability_rows(
    logits: torch.Tensor,
    log_p: torch.Tensor,
    target: torch.Tensor,
    smoothing: float,
    guarded: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(−Σ_k y'_k log p_k per row, y')``, plain or with the masked-class guards."""
    if not smoothing:
        smoothed = target
    elif guarded:
        smoothed = target * (1.0 - smoothing) + _smoothing_mass(logits, smoothing)
    else:
        smoothed = target * (1.0 - smoothing) + smoothing / log_p.shape[-1]
    if guarded:
        return _weighted_log_p(smoothed, log_p).neg_(), smoothed
    return -(smoothed * log_p).sum(dim=-1), smoothed


def _index_backward(ctx, grad_out):
    log_p, index, mass = ctx.saved_tensors
    smoothing = ctx.smoothing
    grad = log_p.exp()
    if mass is not None:
        grad.sub_(mass)
    elif smoothing:
        grad.sub_(smoothing / log_p.shape[-1])
    # An (N, 1) column, not a one-hot tensor. scatter_add_ rather than the cheaper-looking
    # scatter_(..., reduce="add"): same speed here, and no new deterministic-mode error on CUDA.
    grad.scatter_add_(-1, index, torch.full_like(index, smoothing - 1.0, dtype=grad.dtype))
    return _scaled(grad, grad_out, ctx.reduction), None, None, None


def _probability_backward(ctx, grad_out):
    log_p, smoothed = ctx.saved_tensors
    grad_logits = grad_target = None
    if ctx.needs_input_grad[0]:
        grad_logits = log_p.exp().mul_(smoothed.sum(dim=-1, keepdim=True)).sub_(smoothed)
        grad_logits = _scaled(grad_logits, grad_out, ctx.reduction)
    if ctx.needs_input_grad[1]:
        grad_target = _scaled(log_p * (ctx.smoothing - 1.0), grad_out, ctx.reduction)
    return grad_logits, grad_target, None, None


# Under create_graph=True the backward must not pretend to be differentiable.
_index_backward_once = once_differentiable(_index_backward)
_probability_backward_once = once_differentiable(_probability_backward)


class _IndexTargetCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, smoothing, reduction):  # type: ignore[override]
        log_p = _log_softmax(logits, contiguous=False)
        index = target.unsqueeze(-1)
        picked = log_p.gather(-1, index)  # (N, 1); on CPU this raises for a bad index
        mass = None
        if smoothing:
            if _always_guarded(logits):
                mass = _smoothing_mass(logits, smoothing)
            loss = _reduce(_smoothed_index_rows(log_p, picked, smoothing, mass), reduction)
            if mass is None and not _finite(loss):
                mass = _smoothing_mass(logits, smoothing)
                loss = _reduce(_smoothed_index_rows(log_p, picked, smoothing, mass), reduction)
        elif reduction == "none":
            loss = picked.squeeze_(-1).neg_()
        else:
            # −(Σ x)/N: negating after reducing is exact and saves a pass over the rows.
            loss = _reduce(picked, reduction).neg_()
        ctx.save_for_backward(log_p, index, mass)
        ctx.smoothing, ctx.reduction = smoothing, reduction
        return loss

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        if torch.is_grad_enabled():
            return _index_backward_once(ctx, grad_out)
        return _index_backward(ctx, grad_out)


class _ProbabilityTargetCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, smoothing, reduction):  # type: ignore[override]
        log_p = _log_softmax(logits, contiguous=True)
        guarded = _always_guarded(logits)
        rows, smoothed = _probability_rows(logits, log_p, target, smoothing, guarded)
        loss = _reduce(rows, reduction)
        if not guarded and not _finite(loss):
            rows, smoothed = _probability_rows(logits, log_p, target, smoothing, True)
            loss = _reduce(rows, reduction)
        ctx.save_for_backward(log_p, smoothed)
        ctx.smoothing, ctx.reduction = smoothing, reduction
        return loss

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        if torch.is_grad_enabled():
            return _probability_backward_once(ctx, grad_out)
        return _probability_backward(ctx, grad_out)


def _index_error(flat_target: torch.Tensor, num_classes: int) -> ValueError | None:
    """The ValueError naming an out-of-range class index, or None when all are valid."""
    if not flat_target.numel():
        return None
    low, high = (int(v) for v in torch.aminmax(flat_target))
    bad = low if low < 0 else high if high >= num_classes else None
    if bad is None:
        return None
    return ValueError(
        f"class index {bad} is out of range for K={num_classes} classes "
        f"(valid indices are 0..{num_classes - 1})"
    )


def _torch_kernel(
    logits: torch.Tensor, target: torch.Tensor, smoothing: float, reduction: str
) -> torch.Tensor | None:
    """``F.cross_entropy`` on (N, K) logits, or None when its loss is not finite.

    Without masked classes it is this module's loss to rounding (the same ``lse − Σ y′z``
    and ``p·Σy′ − y′`` gradient; ε/K smoothing). A masked class (logit −inf) makes torch's
    smoothing term or a ``0·log 0`` of a probability target −inf or NaN, and the fused
    function's guarded formulas then give the defined value instead (read once, as
    :func:`_finite` does).
    """
    loss = F.cross_entropy(logits, target, reduction=reduction, label_smoothing=smoothing)
    return loss if _finite(loss) else None


def torch_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, reduction: str, smoothing: float
) -> torch.Tensor:
    """Validate shapes and indices, flatten leading axes, and compute the loss with whichever
    of ``F.cross_entropy`` and the fused function is faster for this target type and class
    count (:data:`_CUSTOM_MIN_CLASSES`); rows with masked classes end in the fused function."""
    if logits.dim() == 0:
        raise ValueError("logits must have a class axis (shape (..., K))")
    if type(target) is not torch.Tensor or target.device != logits.device:
        target = torch.as_tensor(target, device=logits.device)
    num_classes = logits.shape[-1]
    lead_shape = logits.shape[:-1]
    flat_logits = logits if logits.dim() == 2 else logits.reshape(-1, num_classes)
    on_cpu = logits.device.type == "cpu"
    torch_kernel_first = not _always_guarded(logits)
    if target.is_floating_point():
        if target.shape != logits.shape:
            raise ValueError(
                f"probability target has shape {tuple(target.shape)} but must match logits "
                f"{tuple(logits.shape)}; pass integer class indices for hard labels"
            )
        flat_target = target.to(logits.dtype).reshape(-1, num_classes)
        loss = None
        if torch_kernel_first:
            loss = _torch_kernel(flat_logits, flat_target, smoothing, reduction)
        if loss is None:
            loss = _ProbabilityTargetCrossEntropy.apply(
                flat_logits, flat_target, smoothing, reduction
            )
    else:
        if target.shape != lead_shape:
            raise ValueError(
                f"class-index target has shape {tuple(target.shape)} but logits "
                f"{tuple(logits.shape)} need {tuple(lead_shape)} (one index per row)"
            )
        flat_target = target if target.dim() == 1 else target.reshape(-1)
        if flat_target.dtype is not torch.int64:
            flat_target = flat_target.long()
        if torch_kernel_first and num_classes < _CUSTOM_MIN_CLASSES:
            # F.cross_entropy skips rows whose target is its ignore_index (−100) instead of
            # failing on them, so the indices are checked first (an N-element min/max).
            error = _index_error(flat_target, num_classes)
            if error is not None:
                raise error
            loss = _torch_kernel(flat_logits, flat_target, smoothing, reduction)
            if loss is None:
                loss = _IndexTargetCrossEntropy.apply(
                    flat_logits, flat_target, smoothing, reduction
                )
        elif on_cpu:
            try:
                loss = _IndexTargetCrossEntropy.apply(
                    flat_logits, flat_target, smoothing, reduction
                )
            except RuntimeError:
                error = _index_error(flat_target, num_classes)
                if error is None:
                    raise
                raise error from None
        else:
            # An out-of-range gather on an accelerator is an asynchronous device assert, not
            # an exception: check before launching it.
            error = _index_error(flat_target, num_classes)
            if error is not None:
                raise error
            loss = _IndexTargetCrossEntropy.apply(flat_logits, flat_target, smoothing, reduction)
    return loss.reshape(lead_shape) if reduction == "none" else loss
