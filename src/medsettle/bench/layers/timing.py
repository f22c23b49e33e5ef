"""Timing helpers shared by the layers: rounds of a call with a setup outside the timed part, and percentiles."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence


def rounds(run: Callable[[], object], n: int, setup: Callable[[], object] | None = None) -> list[float]:
    """Seconds of each of ``n`` calls of ``run``, ``setup`` called before each and not timed."""
    times = []
    for _ in range(n):
        if setup is not None:
            setup()
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return times


def percentile(values: Sequence[float], q: float) -> float:  # ok-float: seconds, a fraction
    """The ``q`` quantile (0..1) of ``values``, nearest rank (as the benchmarks' tables take it)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def median(values: Sequence[float]) -> float:  # ok-float: seconds
    """The middle value (the upper of the two middle ones)."""
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
