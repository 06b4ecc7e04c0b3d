"""Uniform random doubles for per-step sampling, drawn from a numpy Generator in blocks.

A tabular agent needs one or two uniform numbers per environment step (the ε coin, a
tie-break, a Boltzmann inverse-CDF draw), and ``Generator.random()`` costs about 300 ns per
scalar call, as much as the rest of the agent's step. :class:`UniformStream` draws 1,024 at a
time with ``Generator.random(1024)`` and hands them out through a C-level iterator (about
30 ns each). The values are exactly those of successive ``rng.random()`` calls, in order,
and :meth:`UniformStream.state_dict` captures the position inside the current block, so a
checkpointed run continues with the same numbers.
"""

from __future__ import annotations

import collections
import itertools
import operator
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np

BLOCK_SIZE = 1024


class UniformStream:
    """Uniform doubles u ∈ [0, 1) from ``rng``, buffered :data:`BLOCK_SIZE` at a time.

    :attr:`uniform` is the fast scalar draw (a bound ``next`` on the stream). A discrete
    uniform choice among k options is ``int(uniform() * k)``: every double u < 1 gives
    ``fl(u·k) < k`` (round-to-nearest is monotone, and (1 − 2⁻⁵³)·k rounds below k for
    k < 2⁵³), and each index gets probability k⁻¹ up to k·2⁻⁵³, far below anything a test
    or a training run can detect.

    Other code may draw from ``rng`` directly between stream draws; the state keeps both
    the block being handed out and the generator's current state.
    """

    def __init__(self, rng: np.random.Generator, block_size: int = BLOCK_SIZE) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be at least 1, got {block_size}")
        self.rng = rng
        self.block_size = block_size
        self._block_state: dict[str, Any] | None = None  # generator state before the block
        self._block: Iterator[float] = iter(())
        self._pending: Iterator[float] | None = None  # a restored block to hand out first
        # One chain for the stream's lifetime, so a bound `uniform` stays valid across loads.
        # chain() calls iter() on each block, which returns the list iterator itself, so
        # self._block is the very iterator being consumed and length_hint() gives the position.
        self._values = itertools.chain.from_iterable(self._blocks())
        self.uniform: Callable[[], float] = partial(next, self._values)

    def _blocks(self) -> Iterator[Iterator[float]]:
        while True:
            if self._pending is not None:
                self._block, self._pending = self._pending, None
            else:
                self._block_state = self.rng.bit_generator.state
                self._block = iter(self.rng.random(self.block_size).tolist())
            yield self._block

    def random(self, size: int | tuple[int, ...] | None = None) -> float | np.ndarray:
        """One double, or an array of shape ``size``, taken from the stream in order (the
        subset of ``Generator.random`` that the policies' array paths use)."""
        if size is None:
            return next(self._values)
        shape = (size,) if isinstance(size, int) else tuple(size)
        count = int(np.prod(shape, dtype=np.int64))
        return np.fromiter(itertools.islice(self._values, count), np.float64, count).reshape(shape)

    def integers(self, high: int, size: int | tuple[int, ...] | None = None) -> int | np.ndarray:
        """Uniform integers in [0, high) as ⌊u·high⌋ (see the class docstring)."""
        if high < 1:
            raise ValueError(f"high must be at least 1, got {high}")
        if size is None:
            return int(next(self._values) * high)
        return (np.asarray(self.random(size)) * high).astype(np.int64)

    def state_dict(self) -> dict[str, Any]:
        """JSON-safe: the generator's state, and the current block's start state and how many
        of its values have been used (the block is redrawn on load)."""
        # Right after a load, the restored block waits in _pending and _block is spent.
        current = self._pending if self._pending is not None else self._block
        remaining = operator.length_hint(current)
        return {
            "generator": self.rng.bit_generator.state,
            "block_state": self._block_state if remaining else None,
            "block_used": self.block_size - remaining if remaining else 0,
            "block_size": self.block_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where :meth:`state_dict` was taken."""
        collections.deque(self._block, maxlen=0)  # drop the rest of the current block
        self.block_size = int(state["block_size"])
        self._pending = None
        if state["block_state"] is not None:
            self.rng.bit_generator.state = state["block_state"]
            block = self.rng.random(self.block_size).tolist()
            self._block_state = state["block_state"]
            self._pending = iter(block[int(state["block_used"]) :])
        self.rng.bit_generator.state = state["generator"]
