"""The local backend's dispatch order: put-back runs, then untimed cells in grid order, then
the cell with the longest mean run (Graham's LPT rule)."""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

import pytest

from rlsoft.compare.dispatch import DispatchQueue


@dataclass(frozen=True)
class Run:
    env: str
    variant: str
    seed: int


def grid(variants: str, seeds: int, env: str = "E") -> list[Run]:
    """Seed-major, variants alternating: the order plan_comparison submits runs in."""
    return [Run(env, v, s) for s in range(seeds) for v in variants]


def simulate(from_queue: bool, length: dict[str, float], workers: int, runs: list[Run]) -> float:
    """Event-driven simulation of ``workers`` workers taking ``runs`` (from a
    :class:`DispatchQueue` told of each run as it ends, or in grid order); the makespan."""
    queue = DispatchQueue(runs)
    in_order = iter(runs)
    events: list[tuple[float, int, Run | None]] = [(0.0, w, None) for w in range(workers)]
    end = 0.0
    for _ in runs:
        now, worker, ended = heapq.heappop(events)
        if ended is not None:
            queue.finished(ended, length[ended.variant])
        run = queue.take()[0] if from_queue else next(in_order)
        end = max(end, now + length[run.variant])
        heapq.heappush(events, (now + length[run.variant], worker, run))
    return end


def test_untimed_cells_come_first_in_grid_order() -> None:
    runs = grid("abc", 2)
    queue = DispatchQueue(runs)
    queue.finished(Run("E", "b", 9), seconds=5.0)
    assert [queue.take()[0] for _ in range(2)] == [Run("E", "a", 0), Run("E", "c", 0)]


def test_the_cell_with_the_longest_mean_run_goes_next() -> None:
    queue = DispatchQueue(grid("abc", 2))
    for variant, seconds in (("a", [1.0, 3.0]), ("b", [2.5]), ("c", [1.5, 1.5])):
        for s in seconds:
            queue.finished(Run("E", variant, 99), s)
    order = [queue.take()[0] for _ in range(len(queue))]
    assert [r.variant for r in order] == ["b", "b", "a", "a", "c", "c"]  # means 2.5, 2, 1.5
    assert [r.seed for r in order] == [0, 1, 0, 1, 0, 1]  # grid order within a cell


def test_cells_are_told_apart_by_env_as_well_as_variant() -> None:
    runs = [Run("E1", "a", 0), Run("E2", "a", 0)]
    queue = DispatchQueue(runs)
    queue.finished(Run("E1", "a", 5), 1.0)
    queue.finished(Run("E2", "a", 5), 4.0)
    assert queue.take()[0] == Run("E2", "a", 0)


def test_put_back_runs_go_before_everything_with_their_deaths() -> None:
    queue = DispatchQueue(grid("ab", 1))
    first, deaths = queue.take()
    assert deaths == 0
    queue.put_back(first, deaths + 1)
    assert queue.take() == (first, 1)
    assert len(queue) == 1
    queue.take()
    with pytest.raises(IndexError):
        queue.take()


def test_alternating_fast_and_slow_variants_no_longer_end_on_one_worker() -> None:
    # Grid order gives worker 0 every fast run and worker 1 every slow one (the pattern
    # bench_compare measured); longest-first balances them.
    length = {"fast": 1.9, "slow": 2.2}
    runs = grid(["fast", "slow"], 4)
    assert simulate(False, length, 2, runs) == pytest.approx(4 * 2.2)
    balanced = simulate(True, length, 2, runs)
    assert balanced == pytest.approx(4.1 * 2)  # every worker runs two of each
    best = min(
        max(
            sum(length[r.variant] for r in part),
            sum(length[r.variant] for r in runs) - sum(length[r.variant] for r in part),
        )
        for k in range(len(runs) + 1)
        for part in itertools.combinations(runs, k)
    )
    assert balanced == pytest.approx(best)  # brute force over every split of the runs
