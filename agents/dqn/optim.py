"""Adam and gradient clipping on one flat parameter buffer.

For the small networks of value-based RL the arithmetic of an optimiser step is tiny (tens
of thousands of numbers) and ``torch.optim.Adam.step`` spends most of its time in per-call
Python machinery (profiled on the CartPole network, [256, 256] with 67k parameters: more
than the fused kernel itself, with ``clip_grad_norm_`` and ``zero_grad`` adding their own;
the timings depend on the CPU and its load, so none is quoted). Here every parameter of the
network is a view into one contiguous tensor and every gradient a view into another, so
zeroing, clipping and the Adam update are each one or two whole-buffer operations (the
clipping factor is applied inside the fused Adam kernel, as its ``grad_scale``).

The update is the one of ``torch.optim.Adam`` (Kingma & Ba, 2015, with the bias
corrections), operation for operation as in torch's single-tensor implementation::

    m ← m + (1 − β1)(g − m)              v ← β2·v + (1 − β2)·g²
    θ ← θ − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.optim.adam import adam

__all__ = ["FlatAdam", "clip_scale", "flatten_parameters"]


def flatten_parameters(
    module: nn.Module, *, gradients: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Move ``module``'s parameters into one buffer and give them gradient views into another.

    After this, ``loss.backward()`` accumulates into the gradient buffer in place (autograd
    adds into an existing ``.grad``), so the buffer must be zeroed before each backward pass
    and ``.grad`` must never be set to None. ``state_dict`` and ``load_state_dict`` keep
    working (they read and copy into the views).

    :param gradients: also create the gradient buffer (not needed for a target network).
    :return: ``(parameters, gradients)``, flat tensors on the module's device.
    """
    params = list(module.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    grads = torch.zeros_like(flat) if gradients else None
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat[offset : offset + n].view_as(p)
        if grads is not None:
            p.grad = grads[offset : offset + n].view_as(p)
        offset += n
    return flat, grads


def clip_scale(grads: torch.Tensor, max_norm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The global L2 norm of ``grads`` and the divisor that clips it to ``max_norm``.

    Dividing the gradients by ``max(1, (norm + 1e-6) / max_norm)`` is
    ``torch.nn.utils.clip_grad_norm_``'s scaling by ``min(1, max_norm / (norm + 1e-6))``;
    :meth:`FlatAdam.step` applies the divisor inside its update, which saves a pass over the
    gradients. Both are 0-d tensors (no device synchronisation).
    """
    norm = torch.linalg.vector_norm(grads)
    return norm, torch.clamp((norm + 1e-6) / max_norm, min=1.0)


def _has_fused_adam(device: torch.device) -> bool:
    """Whether torch's fused Adam kernel runs on ``device``: on CPU and CUDA in every torch
    rlsoft supports (≥ 2.4, the first with the CPU kernel)."""
    return device.type in ("cpu", "cuda")


class FlatAdam:
    """Adam over a flat parameter tensor with a flat gradient tensor.

    Uses torch's fused Adam kernel (one pass over parameters, gradients and both moments,
    through the public functional ``torch.optim.adam.adam(..., fused=True)``) on devices that
    have it, and otherwise the same update operation by operation.

    :param params: the parameter buffer (updated in place).
    :param grads: the gradient buffer, same shape.
    :param lr: learning rate (may be changed per step through :meth:`step`).
    :param fused: force (True) or avoid (False) the fused kernel; None picks it if present.
    """

    def __init__(
        self,
        params: torch.Tensor,
        grads: torch.Tensor,
        *,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        fused: bool | None = None,
    ) -> None:
        if params.shape != grads.shape:
            raise ValueError(
                f"parameter and gradient buffers differ: {params.shape} vs {grads.shape}"
            )
        self.params, self.grads = params, grads
        self.lr = float(lr)
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps = float(eps)
        self.fused = _has_fused_adam(params.device) if fused is None else bool(fused)
        self.steps = 0
        self._step_tensor = torch.zeros((), dtype=torch.float32, device=params.device)
        self.exp_avg = torch.zeros_like(params)
        self.exp_avg_sq = torch.zeros_like(params)
        self._denom = None if self.fused else torch.empty_like(params)

    def zero_grad(self) -> None:
        self.grads.zero_()

    @torch.no_grad()
    def step(self, lr: float | None = None, grad_scale: torch.Tensor | None = None) -> None:
        """One Adam step on ``grads / grad_scale`` (``grad_scale``: e.g. from
        :func:`clip_scale`; None for the raw gradients)."""
        if lr is not None:
            self.lr = float(lr)
        self.steps += 1
        if self.fused:
            adam(  # it advances the step tensor itself
                [self.params],
                [self.grads],
                [self.exp_avg],
                [self.exp_avg_sq],
                [],
                [self._step_tensor],
                fused=True,
                grad_scale=grad_scale,
                amsgrad=False,
                lr=self.lr,
                beta1=self.beta1,
                beta2=self.beta2,
                weight_decay=0.0,
                eps=self.eps,
                maximize=False,
            )
            return
        beta1, beta2, grad = self.beta1, self.beta2, self.grads
        if grad_scale is not None:
            grad.div_(grad_scale)
        self.exp_avg.lerp_(grad, 1.0 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        step_size = self.lr / (1.0 - beta1**self.steps)
        bias_correction2_sqrt = math.sqrt(1.0 - beta2**self.steps)
        denom = torch.sqrt(self.exp_avg_sq, out=self._denom)
        denom.div_(bias_correction2_sqrt).add_(self.eps)
        self.params.addcdiv_(self.exp_avg, denom, value=-step_size)

    def state_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "lr": self.lr,
            "betas": [self.beta1, self.beta2],
            "eps": self.eps,
            "exp_avg": self.exp_avg,
            "exp_avg_sq": self.exp_avg_sq,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("exp_avg", "exp_avg_sq"):
            if state[key].shape != self.params.shape:
                raise ValueError(
                    f"saved optimiser state {key} has shape {tuple(state[key].shape)}, "
                    f"expected {tuple(self.params.shape)}"
                )
        self.steps = int(state["steps"])
        self._step_tensor.fill_(float(self.steps))
        self.lr = float(state["lr"])
        self.beta1, self.beta2 = (float(b) for b in state["betas"])
        self.eps = float(state["eps"])
        self.exp_avg.copy_(state["exp_avg"])
        self.exp_avg_sq.copy_(state["exp_avg_sq"])
