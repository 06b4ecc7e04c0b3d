"""Which queued run a free local worker takes next: longest expected run first.

A grid of ``n`` runs on ``m`` workers ends when the last worker finishes; the others idle
from their own last run's end. Handing runs out in grid order lets that idle time pile up
when the grid's cells differ in speed: with two workers and the variants alternating, one
worker gets every run of the fast variant and the other every run of the slow one
(``scripts/bench_compare.py``'s grid: ε-greedy and Boltzmann Q-learning on Taxi). Graham's
*longest processing time first* rule (R. L. Graham, "Bounds on multiprocessing timing
anomalies", SIAM J. Appl. Math. 17(2), 1969) hands out the longest jobs first, so the last
ones to finish are short; with the lengths known it bounds the makespan by (4/3 − 1/(3m))
times the optimum. Here the lengths are estimates and untimed cells go first, so that bound
is a guide, not a guarantee.

A run's length is not known before it runs, but the runs of one grid cell (an env or swept
cell, and a variant) differ only in their seed, so the mean wall time of the cell's finished
runs predicts it (runs that only continued from a checkpoint are not counted: their time
covers the remainder). The order is therefore:

1. runs put back (a retry after its worker died, or a run whose worker died before it could
   start) — they were due already;
2. runs of cells with no finished run yet, in grid order (this also times every cell early);
3. the run of the cell whose finished runs took longest on average.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

__all__ = ["DispatchQueue"]


class _InCell(Protocol):
    @property
    def env(self) -> str: ...

    @property
    def variant(self) -> str: ...


Spec = TypeVar("Spec", bound=_InCell)


class DispatchQueue(Generic[Spec]):
    """The runs still to start, each with the number of times its worker died so far.

    >>> from types import SimpleNamespace as Run
    >>> queue = DispatchQueue([Run(env="E", variant=v, seed=s) for s in (0, 1) for v in "ab"])
    >>> queue.finished(Run(env="E", variant="a", seed=0), seconds=1.0)
    >>> queue.finished(Run(env="E", variant="b", seed=0), seconds=3.0)
    >>> queue.take()[0].variant  # b's runs are the longer ones
    'b'
    """

    def __init__(self, specs: Iterable[Spec]) -> None:
        self._due: deque[tuple[Spec, int]] = deque()
        self._pending: list[Spec] = list(specs)
        self._seconds: defaultdict[tuple[str, str], list[float]] = defaultdict(list)

    def __len__(self) -> int:
        return len(self._due) + len(self._pending)

    def put_back(self, spec: Spec, deaths: int) -> None:
        """Queue ``spec`` to be taken before anything else (a retry, or an unstarted run)."""
        self._due.appendleft((spec, deaths))

    def finished(self, spec: Spec, seconds: float) -> None:
        """Record how long a run of ``spec``'s cell took (its wall time in the worker)."""
        self._seconds[(spec.env, spec.variant)].append(seconds)

    def take(self) -> tuple[Spec, int]:
        """The next run to start and how often its worker died; raises ``IndexError`` when
        nothing is left."""
        if self._due:
            return self._due.popleft()
        if not self._pending:
            raise IndexError("no run left to start")
        best = min(range(len(self._pending)), key=self._order)
        return self._pending.pop(best), 0

    def _order(self, index: int) -> tuple[bool, float, int]:
        spec = self._pending[index]
        seconds = self._seconds.get((spec.env, spec.variant))
        if not seconds:
            return (False, 0.0, index)
        return (True, -sum(seconds) / len(seconds), index)
