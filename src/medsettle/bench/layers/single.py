"""One bill at a time (issue 2): the validated path (``Settler.settle(dict)``, platform-shaped dicts with
amounts as strings, as counters send them) against the pre-validated fast path (resolved indices) on the
same population and stream, both on the core.
"""

from __future__ import annotations

import time
from typing import Any

from ...engine import Population, Settler
from ...policy import load_default_policy
from ...sim import generate_bills
from . import LayerResult, Size, ratio
from .timing import percentile, rounds

TITLE = "validated single-bill path"


class SingleWorld:
    """A core Settler over ``n_persons``, the fast path's calls and the validated path's dicts."""

    def __init__(self, n_persons: int, n_fast: int, n_validated: int) -> None:
        policy = load_default_policy()
        self.population = Population.generate(policy, n_persons, seed=1)
        self.settler = Settler(policy, self.population, engine="core")
        stream = generate_bills(self.settler.compiled, self.population, max(n_fast, n_validated), seed=5, days=28)
        b = stream.batch
        self.calls: list[tuple[Any, ...]] = []
        for i in range(n_fast):
            x, y = int(b.line_start[i]), int(b.line_start[i + 1])
            self.calls.append(
                (
                    int(b.person[i]),
                    int(b.day[i]),
                    int(b.med_type[i]),
                    int(b.tier[i]),
                    int(b.treat_region[i]),
                    int(b.acct_flag[i]),
                    int(b.adm[i]),
                    -1,
                    b.item[x:y].tolist(),
                    b.pric[x:y].tolist(),
                    b.cnt[x:y].tolist(),
                    b.appr[x:y].tolist(),
                )
            )
        self.dicts = [stream.bill_dict(i) for i in range(n_validated)]

    def reset(self) -> None:
        """The state as before the first bill, and no records kept."""
        self.settler.engine.reset()
        self.settler.records.clear()

    def run_fast(self) -> None:
        """Every call through the fast path."""
        settle = self.settler.fast_path().settle
        for args in self.calls:
            settle(*args)

    def run_validated(self) -> None:
        """Every dict through the validated path."""
        settle = self.settler.settle
        for d in self.dicts:
            settle(d)

    def run_validated_timed(self) -> list[float]:
        """Every dict through the validated path, each call's seconds."""
        settle, clock = self.settler.settle, time.perf_counter
        times = []
        for d in self.dicts:
            started = clock()
            settle(d)
            times.append(clock() - started)
        return times


def measure(size: Size) -> LayerResult:
    """Bills/s of the validated path (best round) and its p99 per bill, against the fast path's bills/s."""
    n_persons = size.n(1_000_000, 100_000, 1_000)
    n_fast, n_validated = size.n(200_000, 50_000, 100), size.n(20_000, 5_000, 100)
    n_rounds = 3
    world = SingleWorld(n_persons, n_fast, n_validated)
    fast = rounds(world.run_fast, n_rounds, setup=world.reset)
    per_bill: list[float] = []
    totals = []
    for _ in range(n_rounds):
        world.reset()
        times = world.run_validated_timed()
        totals.append(sum(times))
        per_bill += times
    throughput, yardstick = n_validated / min(totals), n_fast / min(fast)
    return LayerResult(
        layer="single",
        title=TITLE,
        throughput=throughput,
        throughput_unit="bills/s",
        latency_ms=percentile(per_bill, 0.99) * 1e3,
        latency_kind="p99 per bill",
        yardstick="pre-validated fast path (Settler.fast_path)",
        yardstick_throughput=yardstick,
        yardstick_unit="bills/s",
        ratio=ratio(throughput, yardstick),
        details={"persons": n_persons, "validated_bills": n_validated, "fast_bills": n_fast, "rounds": n_rounds},
    )
