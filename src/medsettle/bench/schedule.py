"""When a simulated counter's bills arrive: open loop (Poisson, or a day's curve with its morning peak
compressed into the run) or closed loop (the next bill as soon as the last is answered).

Open-loop arrival times are fixed in advance of the answers, so that a slow centre cannot slow the load:
each request's latency is measured from when it was meant to be sent (no coordinated omission).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

ARRIVALS = ("poisson", "day")


def day_curve(x: float) -> float:  # ok-float: a fraction of the day and a rate factor
    """The day's arrival rate relative to its mean at ``x`` (0 opening, 1 closing): a morning peak about
    10:00 of an 8:00-18:00 day, a quieter early afternoon, a smaller peak after 14:00."""
    return (0.35 + 1.6 * math.exp(-(((x - 0.22) / 0.11) ** 2)) + 0.7 * math.exp(-(((x - 0.68) / 0.14) ** 2))) / _MEAN


_MEAN = 1.0  # ok-float: replaced below by the curve's mean over the day, so that day_curve averages 1
_MEAN = sum(day_curve((i + 0.5) / 1000) for i in range(1000)) / 1000
PEAK = max(day_curve(i / 1000) for i in range(1001))  # ok-float: the thinning bound


def arrivals(
    rng: random.Random, rate: float, start: float, duration: float, shape: str = "poisson"
) -> Iterator[float]:  # ok-float: per second and seconds
    """Arrival times in [start, start + duration) of a Poisson process of mean ``rate`` a second, its rate
    following :func:`day_curve` over the run when ``shape`` is "day" (by thinning)."""
    if rate <= 0:
        return
    bound = rate * (PEAK if shape == "day" else 1.0)
    t = start
    while True:
        t += rng.expovariate(bound)
        if t >= start + duration:
            return
        if shape != "day" or rng.random() * PEAK < day_curve((t - start) / duration):
            yield t
