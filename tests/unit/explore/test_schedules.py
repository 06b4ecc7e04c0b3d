"""Schedules: values at hand-computed steps, validation, and make_schedule's inputs."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest

from rlsoft.explore.schedules import (
    ConstantSchedule,
    ExponentialSchedule,
    LinearSchedule,
    describe,
    make_schedule,
)


def test_constant():
    s = ConstantSchedule(0.1)
    assert [s(t) for t in (0, 1, 10**9)] == [0.1, 0.1, 0.1]
    assert ConstantSchedule(3).value == 3.0 and isinstance(ConstantSchedule(3).value, float)


def test_linear_values():
    s = LinearSchedule(start=1.0, end=0.1, duration=100)
    assert s(0) == 1.0
    assert s(50) == pytest.approx(0.55)
    assert s(25) == pytest.approx(1.0 - 0.9 * 0.25)
    assert s(100) == 0.1 and s(10**6) == 0.1  # exactly the end, then flat
    assert s(-5) == 1.0
    values = [s(t) for t in range(0, 120)]
    assert all(a >= b for a, b in itertools.pairwise(values))  # monotone
    delayed = LinearSchedule(start=0.0, end=2.0, duration=10, begin=5)
    assert [delayed(t) for t in (0, 5, 10, 15, 20)] == pytest.approx([0.0, 0.0, 1.0, 2.0, 2.0])
    rising = LinearSchedule(0.0, 1.0, 4)
    assert [rising(t) for t in range(6)] == pytest.approx([0, 0.25, 0.5, 0.75, 1.0, 1.0])


def test_exponential_values():
    s = ExponentialSchedule(start=1.0, end=0.0, half_life=10)
    assert s(0) == 1.0
    assert s(10) == pytest.approx(0.5)
    assert s(30) == pytest.approx(0.125)
    assert s(5) == pytest.approx(2**-0.5)
    assert s(-3) == 1.0
    shifted = ExponentialSchedule(start=2.0, end=0.5, half_life=4)
    for t in (0, 1, 4, 9, 100):
        assert shifted(t) == pytest.approx(0.5 + 1.5 * math.exp(-math.log(2) * t / 4), rel=1e-14)
    assert shifted(10**6) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: ConstantSchedule(math.nan), "value must be a finite number"),
        (lambda: ConstantSchedule(math.inf), "value must be a finite number"),
        (lambda: LinearSchedule(math.nan, 0.0, 10), "start must be a finite number"),
        (lambda: LinearSchedule(1.0, math.inf, 10), "end must be a finite number"),
        (lambda: LinearSchedule(1.0, 0.0, 0), "duration must be a positive number of steps"),
        (lambda: LinearSchedule(1.0, 0.0, -5), "duration must be a positive number of steps"),
        (lambda: LinearSchedule(1.0, 0.0, math.nan), "duration must be a positive number"),
        (lambda: LinearSchedule(1.0, 0.0, math.inf), "duration must be a positive number"),
        (lambda: LinearSchedule(1.0, 0.0, 10, begin=-1), "begin must be a step >= 0"),
        (lambda: LinearSchedule(1.0, 0.0, 10, begin=math.nan), "begin must be a step >= 0"),
        (lambda: ExponentialSchedule(1.0, 0.0, 0), "half_life must be a positive number"),
        (lambda: ExponentialSchedule(1.0, 0.0, -2), "half_life must be a positive number"),
        (lambda: ExponentialSchedule(1.0, 0.0, math.nan), "half_life must be a positive number"),
        (lambda: ExponentialSchedule(1.0, 0.0, math.inf), "half_life must be a positive number"),
        (lambda: ExponentialSchedule(math.nan, 0.0, 5), "start must be a finite number"),
    ],
)
def test_validation(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_schedules_are_frozen_and_compare():
    s = LinearSchedule(1.0, 0.1, 100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.start = 2.0  # type: ignore[misc]
    assert s == LinearSchedule(1, 0.1, 100)
    assert hash(s) == hash(LinearSchedule(1.0, 0.1, 100))
    assert "LinearSchedule" in repr(s)


def test_make_schedule_from_number_callable_and_dict():
    assert make_schedule(0.3) == ConstantSchedule(0.3)
    assert make_schedule(2) == ConstantSchedule(2.0)
    assert make_schedule(np.float32(0.5)) == ConstantSchedule(0.5)
    assert make_schedule(np.int64(3)) == ConstantSchedule(3.0)

    def f(step):
        return 1.0 / (1 + step)

    assert make_schedule(f) is f
    lin = LinearSchedule(1.0, 0.0, 10)
    assert make_schedule(lin) is lin
    built = make_schedule({"type": "linear", "start": 1.0, "end": 0.1, "duration": 100})
    assert built == LinearSchedule(1.0, 0.1, 100)
    assert built(50) == pytest.approx(0.55)
    assert make_schedule({"type": "exponential", "start": 1, "end": 0, "half_life": 2})(2) == 0.5
    assert make_schedule({"type": "constant", "value": 0.2})(7) == 0.2


def test_as_dict_round_trips_through_make_schedule():
    for s in (
        ConstantSchedule(0.2),
        LinearSchedule(1.0, 0.05, 500, begin=10),
        ExponentialSchedule(5.0, 0.1, 1e4),
    ):
        d = s.as_dict()
        assert make_schedule(d) == s
        assert describe(s) == d
    assert "lambda" in describe(lambda step: 0.1)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (True, "must be a number"),
        ("0.1", "must be a number, a callable or a mapping"),
        (None, "must be a number, a callable or a mapping"),
        (
            {"type": "cosine", "start": 1.0},
            "unknown schedule type 'cosine'.*constant, exponential, linear",
        ),
        ({"start": 1.0}, "unknown schedule type None"),
        ({"type": "linear", "start": 1.0}, "bad parameters for a linear schedule"),
        ({"type": "linear", "start": 1, "end": 0, "duration": 5, "warmup": 3}, "bad parameters"),
        ({"type": "linear", "start": 1.0, "end": 0.0, "duration": 0}, "duration must be"),
        ({"type": "constant", "value": math.nan}, "finite"),
    ],
)
def test_make_schedule_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        make_schedule(spec)
