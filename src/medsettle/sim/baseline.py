"""The simulator's cost baseline: a seed's request stream replayed through ``Centre.submit`` alone.

The stream is what the centre received in a run of the fault profile ``none`` (every request, in order, with
its virtual time). Replaying it into a fresh centre on a fresh journal, with no counters, no network and no
checkers, costs what the centre's part of the run costs; a run of the same seed under faults, with its
counters, journals and checkers, is compared with it (benchmarks/test_sim_bench.py).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from ..centre.service import Centre
from ..engine import Settler
from ..jsontext import loads
from ..ledger import SQLiteJournal
from ..seams import SeededRandomness
from ..timeutil import SHANGHAI
from .clock import VirtualClock
from .profiles import profile_named
from .world import RunOptions, World


def request_stream(
    world: World, seed: int, *, institutions: int = 10, engine: str = "core"
) -> list[tuple[float, bytes]]:
    """Every request the centre received in seed ``seed`` of profile ``none``, with its virtual time."""
    delivered: list[tuple[float, bytes]] = []
    world.run(RunOptions(seed, "none", 1, institutions, engine), delivered=delivered)
    return delivered


def replay_stream(
    world: World, stream: list[tuple[float, bytes]], *, institutions: int = 10, engine: str = "core"
) -> int:
    """Submit ``stream`` to a fresh centre at its virtual times; wait for every answer; return how many were
    answered with infcode 0 (a check that the replay did the same work)."""
    start = profile_named("none").start.replace(tzinfo=SHANGHAI)
    clock = VirtualClock(start)
    with tempfile.TemporaryDirectory(prefix="medsettle-baseline-") as scratch:
        journal = SQLiteJournal(Path(scratch) / "centre.db", clock=clock)  # with its writer thread, as served
        institutions_list = world.all_institutions + world.institutions(institutions)[5:]  # as the run had
        settler = Settler(world.policy, world.population, engine=engine)  # type: ignore[arg-type]
        world.registry.card_reads.clear()
        centre = Centre(settler, journal, institutions_list, registry=world.registry, clock=clock,
                        randomness=SeededRandomness(0))  # fmt: skip
        futures = []
        try:
            for at, body in stream:
                clock.advance_to(start + dt.timedelta(seconds=at))
                futures.append(centre.submit(loads(body)))
            return sum(1 for f in futures if f.result().get("infcode") == 0)
        finally:
            journal.close()
