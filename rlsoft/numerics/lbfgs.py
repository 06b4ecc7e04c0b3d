"""Full-batch L-BFGS that advances one iteration per call, for epoch-by-epoch training.

:class:`torch.optim.LBFGS` does the same mathematics, but its two-loop recursion runs as dozens
of tiny torch operations per iteration (each ``add_`` with a tensor ``alpha`` costs a few µs),
which on a small problem such as softmax regression on 8×8 digits (650 parameters) costs more
than evaluating the loss. Here the parameters are one float64 numpy vector, the recursion is
plain numpy on it, and only the objective (loss and gradient) runs in torch.

One :meth:`LBFGS.step`:

1. direction ``d = −H·g`` from the two-loop recursion over the last ``history`` pairs
   ``(s, y) = (x_{k+1} − x_k, g_{k+1} − g_k)``, with the initial scaling
   ``H₀ = sᵀy / yᵀy`` (Nocedal & Wright, Algorithm 7.4); the first iteration, or any where
   ``d`` is not a descent direction, uses ``−g`` scaled to a step of at most 1 in the L1 norm;
2. a backtracking line search from ``t = step_length`` (default 1) that accepts the first
   step with sufficient decrease ``f(x + t·d) ≤ f(x) + c₁·t·gᵀd`` (Armijo), halving ``t``
   otherwise;
3. the pair ``(s, y)`` is remembered only if ``sᵀy > 0`` (the curvature condition that keeps
   ``H`` positive definite).

The objective is evaluated once per iteration when the full step is accepted, which is the
rule for a well-scaled L-BFGS direction. A line search that finds no decrease (the loss is
flat at float32 precision) reports it, and the caller stops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["LBFGS", "StepResult"]

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


@dataclass
class StepResult:
    """What one iteration saw: the objective and gradient norm at its start, and whether its
    line search found a decrease."""

    loss: float
    grad_max: float
    moved: bool


@dataclass
class LBFGS:
    """L-BFGS state for minimising ``objective(x) -> (f, ∇f)`` from ``x``.

    :param history: number of ``(s, y)`` pairs kept (scipy's default is 10).
    :param step_length: the first step tried by each line search (1 is the natural step of
        a quasi-Newton direction).
    :param c1: the Armijo constant.
    :param max_backtracks: halvings of the step before the line search gives up.
    """

    x: np.ndarray
    history: int = 20
    step_length: float = 1.0
    c1: float = 1e-4
    max_backtracks: int = 40
    f: float | None = None
    g: np.ndarray | None = None
    s: list[np.ndarray] = field(default_factory=list)
    y: list[np.ndarray] = field(default_factory=list)

    def direction(self, g: np.ndarray) -> np.ndarray:
        """``−H·g`` by the two-loop recursion."""
        q = g.copy()
        rho = [1.0 / float(s @ y) for s, y in zip(self.s, self.y, strict=True)]
        alpha = [0.0] * len(self.s)
        for i in range(len(self.s) - 1, -1, -1):
            alpha[i] = rho[i] * float(self.s[i] @ q)
            q -= alpha[i] * self.y[i]
        if self.s:
            s, y = self.s[-1], self.y[-1]
            q *= float(s @ y) / float(y @ y)
        for i in range(len(self.s)):
            beta = rho[i] * float(self.y[i] @ q)
            q += (alpha[i] - beta) * self.s[i]
        return -q

    def step(self, objective: Objective) -> StepResult:
        """One iteration; ``self.x`` (and the cached ``f``, ``g``) move to the accepted point."""
        if self.f is None or self.g is None:
            self.f, self.g = objective(self.x)
        f, g = self.f, self.g
        d = self.direction(g)
        slope = float(g @ d)
        if not self.s or slope >= 0.0:  # first iteration, or H lost positive definiteness
            self.s.clear()
            self.y.clear()
            d = -g * min(1.0, 1.0 / max(float(np.abs(g).sum()), 1e-300))
            slope = float(g @ d)
        result = StepResult(loss=f, grad_max=float(np.abs(g).max()), moved=False)
        if slope >= 0.0:  # g = 0: nothing to do
            return result
        t = self.step_length
        for _ in range(self.max_backtracks):
            x_new = self.x + t * d
            f_new, g_new = objective(x_new)
            if f_new <= f + self.c1 * t * slope:
                break
            t *= 0.5
        else:
            return result  # no decrease found: flat at the objective's precision
        s, y = x_new - self.x, g_new - g
        if float(s @ y) > 1e-10:
            self.s.append(s)
            self.y.append(y)
            if len(self.s) > self.history:
                del self.s[0], self.y[0]
        self.x, self.f, self.g = x_new, f_new, g_new
        result.moved = True
        return result

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to continue exactly (for checkpoints)."""
        empty = np.zeros((0, len(self.x)))
        return {
            "x": self.x,
            "f": np.array(np.nan if self.f is None else self.f),
            "g": np.full_like(self.x, np.nan) if self.g is None else self.g,
            "s": np.stack(self.s) if self.s else empty,
            "y": np.stack(self.y) if self.y else empty,
        }

    def load_state_arrays(self, state: dict[str, np.ndarray]) -> None:
        self.x = np.asarray(state["x"], dtype=np.float64)
        f = float(state["f"])
        self.f = None if np.isnan(f) else f
        self.g = None if self.f is None else np.asarray(state["g"], dtype=np.float64)
        self.s = [np.asarray(row, dtype=np.float64) for row in state["s"]]
        self.y = [np.asarray(row, dtype=np.float64) for row in state["y"]]
