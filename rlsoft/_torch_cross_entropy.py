"""Torch cross-entropy with the fused ``p − y`` backward (no K×K softmax Jacobian).

Kept apart from :mod:`rlsoft.functional` so that numpy-only users never import torch.

Forward, for logits z of shape (N, K) and a smoothed target y' = (1 − ε)·y + ε/K:

    log p = log_softmax(z)                      (one fused torch kernel, saved for backward)
    ℓ     = −Σ_k y'_k log p_k

Backward, for an upstream gradient g per row:

    ∂ℓ/∂z = g · (p · Σ_k y'_k − y')             (= g·(p − y') when y' sums to 1)
    ∂ℓ/∂y = −g · (1 − ε) · log p                (soft targets only)
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


def _scale_for(grad_out: torch.Tensor, reduction: str, rows: int) -> torch.Tensor | float:
    """The per-row upstream gradient, broadcastable against (N, K)."""
    if reduction == "none":
        return grad_out.reshape(-1, 1)
    if reduction == "mean":
        return grad_out / max(rows, 1)
    return grad_out


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


class _IndexTargetCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, smoothing, reduction):  # type: ignore[override]
        log_p = torch.log_softmax(logits, dim=-1)
        index = target.unsqueeze(-1)
        loss = log_p.gather(-1, index).squeeze(-1).mul_(smoothing - 1.0)
        if smoothing:
            loss.sub_(log_p.sum(dim=-1), alpha=smoothing / logits.shape[-1])
        ctx.save_for_backward(log_p, index)
        ctx.smoothing, ctx.reduction = smoothing, reduction
        return _reduce(loss, reduction)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        log_p, index = ctx.saved_tensors
        grad = log_p.exp()
        if ctx.smoothing:
            grad.sub_(ctx.smoothing / log_p.shape[-1])
        grad.scatter_add_(-1, index, torch.full_like(index, ctx.smoothing - 1.0, dtype=grad.dtype))
        grad.mul_(_scale_for(grad_out, ctx.reduction, log_p.shape[0]))
        return grad, None, None, None


class _ProbabilityTargetCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, smoothing, reduction):  # type: ignore[override]
        log_p = torch.log_softmax(logits, dim=-1)
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
        scale = _scale_for(grad_out, ctx.reduction, log_p.shape[0])
        grad_logits = grad_target = None
        if ctx.needs_input_grad[0]:
            grad_logits = log_p.exp().mul_(smoothed.sum(dim=-1, keepdim=True)).sub_(smoothed)
            grad_logits.mul_(scale)
        if ctx.needs_input_grad[1]:
            grad_target = log_p * (-(1.0 - ctx.smoothing)) * scale
        return grad_logits, grad_target, None, None


def torch_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, reduction: str, smoothing: float
) -> torch.Tensor:
    """Validate shapes and indices, flatten leading axes, and apply the fused function."""
    if logits.dim() == 0:
        raise ValueError("logits must have a class axis (shape (..., K))")
    target = torch.as_tensor(target, device=logits.device)
    num_classes = logits.shape[-1]
    lead_shape = logits.shape[:-1]
    flat_logits = logits.reshape(-1, num_classes)
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
        if flat_target.numel():
            low, high = torch.aminmax(flat_target)
            bad = int(low) if int(low) < 0 else int(high) if int(high) >= num_classes else None
            if bad is not None:
                raise ValueError(
                    f"class index {bad} is out of range for K={num_classes} classes "
                    f"(valid indices are 0..{num_classes - 1})"
                )
        loss = _IndexTargetCrossEntropy.apply(flat_logits, flat_target, smoothing, reduction)
    return loss.reshape(lead_shape) if reduction == "none" else loss
