"""How a sample is taken and how systems are interleaved.

A *runner* times ``n`` operations of one system and returns the elapsed seconds, doing
any preparation (resetting a session, building objects) outside
the timed region. :func:`measure` sizes ``n`` per system so one sample lasts at least
``min_sample`` seconds, then runs every system once per repetition in an order rotated
by one each repetition, and records seconds per operation.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class Runner(Protocol):
    def sample(self, n: int) -> float:
        """Seconds taken by ``n`` operations (preparation excluded)."""
        ...


@dataclass
class SyncRunner:
    """Calls ``op`` ``n`` times; ``prepare`` runs untimed before every ``batch`` calls
    (before all ``n`` if ``batch`` is None)."""

    op: Callable[[], Any]
    prepare: Callable[[], None] | None = None
    batch: int | None = None

    def sample(self, n: int) -> float:
        elapsed, done = 0.0, 0
        op = self.op
        gc.collect()
        while done < n:
            size = n - done if self.batch is None else min(self.batch, n - done)
            if self.prepare is not None:
                self.prepare()
            start = time.perf_counter()
            for _ in range(size):
                op()
            elapsed += time.perf_counter() - start
            done += size
        return elapsed


def calibrate(runner: Runner, min_sample: float) -> int:
    """The number of operations that makes one sample last at least ``min_sample``.

    Grows ``n`` tenfold until a sample is measurable, then sizes from the fastest of
    three samples, so one slow outlier cannot shrink the inner loop.
    """
    runner.sample(1)  # cold start: imports, connections, script cache
    n = 1
    while runner.sample(n) < min_sample / 10 and n < 1_000_000:
        n *= 10
    fastest = min(runner.sample(n) for _ in range(3)) / n
    return max(1, math.ceil(min_sample * 1.1 / fastest))


@dataclass
class Measurement:
    """Seconds per operation of every system, one entry per repetition."""

    ops_per_sample: dict[str, int]
    per_op: dict[str, list[float]] = field(default_factory=dict)


def measure(
    runners: Mapping[str, Runner],
    *,
    reps: int,
    min_sample: float,
    progress: Callable[[str], None] | None = None,
) -> Measurement:
    """Calibrate each system, then take ``reps`` interleaved samples of every system."""
    names = list(runners)
    sizes = {name: calibrate(runners[name], min_sample) for name in names}
    result = Measurement(sizes, {name: [] for name in names})
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            n = sizes[name]
            result.per_op[name].append(runners[name].sample(n) / n)
        if progress is not None:
            progress(f"{rep + 1}/{reps}")
    return result
