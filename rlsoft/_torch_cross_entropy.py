"""Torch cross-entropy with the fused ``p − y`` backward (no K×K softmax Jacobian).

Kept apart from :mod:`rlsoft.functional` so that numpy-only users never import torch.

Forward, for logits z of shape (N, K) and a smoothed target y' = (1 − ε)·y + ε/K:

    log p = log_softmax(z)                      (one fused torch kernel, saved for backward)
    ℓ     = −Σ_k y'_k log p_k

Backward, for an upstream gradient g per row:

    ∂ℓ/∂z = g · (p · Σ_k y'_k − y')             (= g·(p − y') when y' sums to 1)
    ∂ℓ/∂y = −g · (1 − ε) · log p                (soft targets only)

Speed notes (this sits in every DQN / C51 update, often on small batches where fixed costs
dominate): the backward writes one new (N, K) tensor, ``exp(log p)``, and updates it in place;
the one-hot part is a scalar ``scatter_`` into it, never a full one-hot tensor; the upstream
gradient of a reduced loss is applied as a Python number on CPU (one pass, no extra tensor op);
class indices on CPU are bounds-checked by ``gather`` itself, so the common in-range case pays
no extra reduction and no device-to-host read.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

# torch's CPU log_softmax over the last axis spends ~80 ns per row when a row is shorter than
# one SIMD vector (K < 16 here), e.g. 20 µs for (256, 6), while its kernel for a leading axis
# vectorises across rows: 5 µs for the same values laid out as (6, 256).
_SHORT_ROW = 16
_MANY_ENTRIES = 256


def _log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """``log_softmax(logits, -1)`` for (N, K) logits, picking torch's faster CPU kernel."""
    rows, classes = logits.shape
    if classes < _SHORT_ROW and rows * classes >= _MANY_ENTRIES and logits.device.type == "cpu":
        return torch.log_softmax(logits.t(), dim=0).t().contiguous()
    return torch.log_softmax(logits, dim=-1)


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _scaled(grad: torch.Tensor, grad_out: torch.Tensor, reduction: str) -> torch.Tensor:
    """``grad`` times the per-row upstream gradient, in place (one pass over ``grad``)."""
    if reduction == "none":
        return grad.mul_(grad_out.reshape(-1, 1))
    rows = max(grad.shape[0], 1)
    if grad_out.device.type == "cpu":
        # A Python number: no tensor op for g/N, and no device sync is involved on CPU. The
        # division is done in float64 and rounded once, which for float32 gives the same
        # correctly rounded value as the tensor division would.
        scale = float(grad_out) / rows if reduction == "mean" else float(grad_out)
        return grad if scale == 1.0 else grad.mul_(scale)
    return grad.mul_(grad_out / rows if reduction == "mean" else grad_out)


class _IndexTargetCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, smoothing, reduction):  # type: ignore[override]
        log_p = _log_softmax(logits)
        index = target.unsqueeze(-1)
        picked = log_p.gather(-1, index).squeeze_(-1)
        if smoothing:
            loss = picked.mul_(smoothing - 1.0)
            loss.sub_(log_p.sum(dim=-1), alpha=smoothing / logits.shape[-1])
            loss = _reduce(loss, reduction)
        elif reduction == "none":
            loss = picked.neg_()
        else:
            # −Σ/N: negating the reduced value is exact, and saves a pass over the rows.
            loss = _reduce(picked, reduction).neg_()
        ctx.save_for_backward(log_p, index)
        ctx.smoothing, ctx.reduction = smoothing, reduction
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        log_p, index = ctx.saved_tensors
        smoothing = ctx.smoothing
        grad = log_p.exp()
        if smoothing:
            grad.sub_(smoothing / log_p.shape[-1])
        grad.scatter_(-1, index, smoothing - 1.0, reduce="add")
        return _scaled(grad, grad_out, ctx.reduction), None, None, None


class _ProbabilityTargetCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, smoothing, reduction):  # type: ignore[override]
        log_p = _log_softmax(logits)
        smoothed = target
        if smoothing:
            smoothed = target * (1.0 - smoothing) + smoothing / logits.shape[-1]
        loss = -(smoothed * log_p).sum(dim=-1)
        ctx.save_for_backward(log_p, smoothed)
        ctx.smoothing, ctx.reduction = smoothing, reduction
        return _reduce(loss, reduction)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        log_p, smoothed = ctx.saved_tensors
        grad_logits = grad_target = None
        if ctx.needs_input_grad[0]:
            grad_logits = log_p.exp().mul_(smoothed.sum(dim=-1, keepdim=True)).sub_(smoothed)
            grad_logits = _scaled(grad_logits, grad_out, ctx.reduction)
        if ctx.needs_input_grad[1]:
            grad_target = _scaled(log_p * (ctx.smoothing - 1.0), grad_out, ctx.reduction)
        return grad_logits, grad_target, None, None


def _index_error(flat_target: torch.Tensor, num_classes: int) -> ValueError | None:
    """The ValueError for the first out-of-range class index, or None when all are valid."""
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


def torch_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, reduction: str, smoothing: float
) -> torch.Tensor:
    """Validate shapes and indices, flatten leading axes, and apply the fused function."""
    if logits.dim() == 0:
        raise ValueError("logits must have a class axis (shape (..., K))")
    if type(target) is not torch.Tensor or target.device != logits.device:
        target = torch.as_tensor(target, device=logits.device)
    num_classes = logits.shape[-1]
    lead_shape = logits.shape[:-1]
    flat_logits = logits if logits.dim() == 2 else logits.reshape(-1, num_classes)
    if target.is_floating_point():
        if target.shape != logits.shape:
            raise ValueError(
                f"probability target has shape {tuple(target.shape)} but must match logits "
                f"{tuple(logits.shape)}; pass integer class indices for hard labels"
            )
        loss = _ProbabilityTargetCrossEntropy.apply(
            flat_logits, target.to(logits.dtype).reshape(-1, num_classes), smoothing, reduction
        )
    else:
        if target.shape != lead_shape:
            raise ValueError(
                f"class-index target has shape {tuple(target.shape)} but logits "
                f"{tuple(logits.shape)} need {tuple(lead_shape)} (one index per row)"
            )
        flat_target = target.reshape(-1).long()
        if flat_target.device.type != "cpu":
            # On accelerators an out-of-range gather is an asynchronous device assert, not
            # an exception: check first.
            error = _index_error(flat_target, num_classes)
            if error is not None:
                raise error
            loss = _IndexTargetCrossEntropy.apply(flat_logits, flat_target, smoothing, reduction)
        else:
            # On CPU ``gather`` bounds-checks the indices itself; only build the message then.
            try:
                loss = _IndexTargetCrossEntropy.apply(
                    flat_logits, flat_target, smoothing, reduction
                )
            except RuntimeError:
                error = _index_error(flat_target, num_classes)
                if error is not None:
                    raise error from None
                raise
    return loss.reshape(lead_shape) if reduction == "none" else loss
