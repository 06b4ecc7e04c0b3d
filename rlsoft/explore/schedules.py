"""Schedules for exploration parameters and learning rates: callables ``step -> value``.

Anything callable as ``schedule(step) -> float`` works wherever rlsoft takes a schedule; these
three cover the usual cases and are plain frozen dataclasses, so they print, compare and
serialise (``as_dict``) cleanly.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

Schedule = Callable[[int], float]
ScheduleLike = float | int | Schedule


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"schedule {name} must be a finite number, got {value!r}")
    return value


@dataclass(frozen=True)
class ConstantSchedule:
    """``v(t) = value`` for every step t."""

    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _finite("value", self.value))

    def __call__(self, step: int) -> float:
        return self.value

    def as_dict(self) -> dict[str, Any]:
        return {"type": "constant", **asdict(self)}


@dataclass(frozen=True)
class LinearSchedule:
    """Linear interpolation from ``start`` to ``end`` over ``duration`` steps, then flat.

    ``v(t) = start + (end − start) · min(1, max(0, t − begin) / duration)``
    """

    start: float
    end: float
    duration: int
    begin: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _finite("start", self.start))
        object.__setattr__(self, "end", _finite("end", self.end))
        # Written as `not (ok)` so that NaN is rejected too.
        if not 0 < self.duration < math.inf:
            raise ValueError(
                "linear schedule duration must be a positive number of steps, "
                f"got {self.duration!r}"
            )
        if not 0 <= self.begin < math.inf:
            raise ValueError(f"linear schedule begin must be a step >= 0, got {self.begin!r}")

    def __call__(self, step: int) -> float:
        progress = (step - self.begin) / self.duration
        if progress <= 0.0:
            return self.start
        if progress >= 1.0:
            return self.end
        return self.start + (self.end - self.start) * progress

    def as_dict(self) -> dict[str, Any]:
        return {"type": "linear", **asdict(self)}


@dataclass(frozen=True)
class ExponentialSchedule:
    """Exponential decay from ``start`` towards ``end`` with a half-life in steps.

    ``v(t) = end + (start − end) · 2^(−t / half_life)``
    """

    start: float
    end: float
    half_life: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _finite("start", self.start))
        object.__setattr__(self, "end", _finite("end", self.end))
        if not 0.0 < self.half_life < math.inf:
            raise ValueError(
                f"exponential schedule half_life must be a positive number of steps, "
                f"got {self.half_life!r}"
            )

    def __call__(self, step: int) -> float:
        return self.end + (self.start - self.end) * 2.0 ** (-max(step, 0) / self.half_life)

    def as_dict(self) -> dict[str, Any]:
        return {"type": "exponential", **asdict(self)}


_KINDS = {
    "constant": ConstantSchedule,
    "linear": LinearSchedule,
    "exponential": ExponentialSchedule,
}


def make_schedule(spec: ScheduleLike | Mapping[str, Any]) -> Schedule:
    """Build a schedule from a number, a callable, or a mapping ``{type: ..., **params}``.

    >>> make_schedule({"type": "linear", "start": 1.0, "end": 0.1, "duration": 100})(50)
    0.55
    """
    if isinstance(spec, bool):
        raise ValueError(f"a schedule must be a number or a schedule, got {spec!r}")
    if isinstance(spec, numbers.Real):  # also numpy scalars such as np.float32(0.1)
        return ConstantSchedule(float(spec))
    if callable(spec):
        return spec
    if isinstance(spec, Mapping):
        params = dict(spec)
        kind = params.pop("type", None)
        if kind not in _KINDS:
            raise ValueError(
                f"unknown schedule type {kind!r}; choose one of {', '.join(sorted(_KINDS))}"
            )
        try:
            return _KINDS[kind](**params)
        except TypeError as exc:
            raise ValueError(f"bad parameters for a {kind} schedule: {exc}") from None
    raise ValueError(f"a schedule must be a number, a callable or a mapping, got {spec!r}")


def describe(schedule: Schedule) -> dict[str, Any] | str:
    """A serialisable description of a schedule (for configs and TensorBoard hparams)."""
    as_dict = getattr(schedule, "as_dict", None)
    return as_dict() if as_dict else repr(schedule)
