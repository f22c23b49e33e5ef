"""What a simulated seed costs, against its own request stream replayed through ``Centre.submit`` alone.

For each of a few seeds of the default profile (10 counters, one simulated day, about 500 bills): the run itself
(counters, their journals, the network's faults, the checkers after every step), and the same seed's request
stream under the fault profile ``none`` submitted to a fresh centre with nothing else (sim/baseline.py). The
world (policy, population, registry) is built once and reused across seeds, as `medsettle sim soak` does. The
figure is the ratio of the two, measured in the same run; issue 17 asks for at most 3x. The measuring code is
medsettle.bench.layers.simulator's (what `medsettle bench all` measures).

    python -m pytest benchmarks/test_sim_bench.py --benchmark-only -s
"""

from __future__ import annotations

import os

import pytest

from figures import RESULTS
from medsettle.bench.layers.simulator import SeedTimings, streams_of, time_seeds
from medsettle.sim.world import RunOptions, World

SEEDS = range(1, 1 + int(os.environ.get("MEDSETTLE_BENCH_SIM_SEEDS", 5)))


@pytest.mark.benchmark(group="simulator")
def test_a_seed_against_its_request_stream(benchmark):
    world = World()
    world.run(RunOptions(0))  # warm: imports, the engines' first calls, caches
    streams = streams_of(world, SEEDS)
    timings = SeedTimings()

    def both() -> None:
        nonlocal timings
        timings = time_seeds(world, streams)

    benchmark.pedantic(both, rounds=1, iterations=1)
    ratio = sum(timings.run) / sum(timings.baseline)
    seeds_per_s = len(SEEDS) / sum(timings.run)
    bills, requests = timings.bills, timings.requests
    benchmark.extra_info.update(
        ratio=round(ratio, 2), seeds_per_s=round(seeds_per_s, 3), bills=bills, requests=requests
    )
    RESULTS.setdefault(("simulator", f"{len(SEEDS)} seeds"), {})["seeds/s"] = seeds_per_s
    print(f"\n{len(SEEDS)} seeds of the default profile: {bills:,} bills, {seeds_per_s:.2f} seeds/s on one core;"
          f" run / its request stream ({requests:,} requests) through Centre.submit alone: {ratio:.2f}x")  # fmt: skip
