"""The deterministic simulator (issue 17): seeds/s of the default profile, against each seed's own request
stream (profile ``none``) replayed through ``Centre.submit`` alone (sim/baseline.py) in the same run.

A seed is 10 counters' institutions over one simulated day (about 500 bills): the counters, their journals,
the network's faults and the checkers after every step. The world (policy, population, registry) is built
once and reused across seeds, as ``medsettle sim soak`` does. Issue 17 asks for a run at most 3x its stream.
"""

from __future__ import annotations

import time

from ...sim.baseline import replay_stream, request_stream
from ...sim.world import RunOptions, World
from . import LayerResult, Size, ratio
from .timing import median

TITLE = "simulator, default profile"


class SeedTimings:
    """Seconds of each seed's run and of its stream's replay, and what they did."""

    def __init__(self) -> None:
        self.run: list[float] = []  # ok-float: seconds
        self.baseline: list[float] = []  # ok-float: seconds
        self.bills = 0
        self.requests = 0


def streams_of(world: World, seeds: range, institutions: int = 10) -> dict[int, list[tuple[float, bytes]]]:
    """Each seed's request stream under the fault profile ``none`` (made before the timing starts)."""
    return {seed: request_stream(world, seed, institutions=institutions) for seed in seeds}


def time_seeds(world: World, streams: dict[int, list[tuple[float, bytes]]], institutions: int = 10) -> SeedTimings:
    """Each seed's request stream replayed, then the seed run; AssertionError on a violation (a bug)."""
    timings = SeedTimings()
    for seed in streams:
        started = time.perf_counter()
        replay_stream(world, streams[seed], institutions=institutions)
        timings.baseline.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = world.run(RunOptions(seed, institutions=institutions))
        timings.run.append(time.perf_counter() - started)
        if not result.ok:
            raise AssertionError(f"seed {seed}: {result.violation}")
        timings.bills += result.bills
        timings.requests += len(streams[seed])
    return timings


def measure(size: Size) -> LayerResult:
    """Seeds/s and the median seconds of a seed, against seeds/s of the seeds' streams through Centre.submit."""
    n_seeds = size.n(5, 1)
    institutions = max(1, min(10, round(10 * size.scale)))
    world = World()
    world.run(RunOptions(0, institutions=institutions))  # warm: imports, the engines' first calls, caches
    timings = time_seeds(world, streams_of(world, range(1, 1 + n_seeds), institutions), institutions)
    throughput, yardstick = n_seeds / sum(timings.run), n_seeds / sum(timings.baseline)
    return LayerResult(
        layer="sim",
        title=TITLE,
        throughput=throughput,
        throughput_unit="seeds/s",
        latency_ms=median(timings.run) * 1e3,
        latency_kind="median seed",
        yardstick="the seeds' request streams through Centre.submit alone",
        yardstick_throughput=yardstick,
        yardstick_unit="seeds/s",
        ratio=ratio(throughput, yardstick),
        note=f"run / its stream {sum(timings.run) / sum(timings.baseline):.2f}x (issue 17: at most 3x)",
        details={
            "seeds": n_seeds,
            "institutions": institutions,
            "bills": timings.bills,
            "requests": timings.requests,
            "run_s": sum(timings.run),
            "baseline_s": sum(timings.baseline),
        },
    )
