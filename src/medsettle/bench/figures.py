"""The figures one load process gathers beside Locust's own statistics, and how several processes' merge.

Locust's statistics give each transaction's latency percentiles and the errors; this adds what a load
tester needs and Locust does not keep: the run second by second (answers, errors and latency percentiles
by the second they completed in), the settlements whose answers were checked and any that broke an
identity, the bills scheduled and done, and the driver's own scheduling lag and CPU. A worker sends its
:meth:`Figures.snapshot` (cumulative, plain JSON-able data) to the master about once a second; the master
keeps each worker's latest and merges them.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Mapping
from typing import Any

EXAMPLES = 5  # identity failures kept word for word


def bucket_ms(latency_ms: float) -> int:  # ok-float: milliseconds
    """A latency rounded as Locust rounds its own (to 1 ms below 100 ms, 10 ms below 1 s, then 100 ms)."""
    if latency_ms < 100:
        return int(round(latency_ms))
    if latency_ms < 1000:
        return int(round(latency_ms, -1))
    return int(round(latency_ms, -2))


def percentile(histogram: Mapping[int, int], share: float) -> int | None:  # ok-float: a share
    """The latency (ms) below which ``share`` of a histogram's answers fall; None for an empty one."""
    total = sum(histogram.values())
    if not total:
        return None
    want = share * total
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= want:
            return value
    return max(histogram)


class Figures:
    """One process's figures of the run (its counters all share it)."""

    def __init__(self, started: float) -> None:  # ok-float: wall-clock seconds
        self.started = started
        self.seconds: dict[int, list[Any]] = {}  # second -> [answers, errors, {ms: count}]
        self.checked = 0
        self.identity_failures = 0
        self.examples: list[str] = []
        self.scheduled = 0
        self.bills = 0
        self.bills_failed = 0
        self.errors: collections.Counter[str] = collections.Counter()  # the centre's err_msg code -> count
        self.finished = 0  # counters done with their schedule
        self.lag: collections.Counter[int] = collections.Counter()  # ms the loop woke late
        self.cpu_seconds = 0.0  # ok-float: seconds
        self.wall_seconds = 0.0  # ok-float: seconds

    def answered(self, done_at: float, latency_ms: float, ok: bool) -> None:  # ok-float: seconds, ms
        """One request answered (or failed) at ``done_at`` (wall clock), ``latency_ms`` after its intended send."""
        row = self.seconds.setdefault(math.floor(done_at - self.started), [0, 0, collections.Counter()])
        row[0] += 1
        row[1] += 0 if ok else 1
        row[2][bucket_ms(latency_ms)] += 1

    def settlement(self, failures: list[str]) -> None:
        """A settlement answer checked; ``failures`` the identities it broke."""
        self.checked += 1
        if failures:
            self.identity_failures += 1
            if len(self.examples) < EXAMPLES:
                self.examples.append("; ".join(failures))

    def snapshot(self) -> dict[str, Any]:
        """Everything so far as plain data (string keys: it crosses Locust's message pipe)."""
        return {
            "seconds": {str(s): [a, e, {str(k): v for k, v in h.items()}] for s, (a, e, h) in self.seconds.items()},
            "checked": self.checked,
            "identity_failures": self.identity_failures,
            "examples": list(self.examples),
            "scheduled": self.scheduled,
            "bills": self.bills,
            "bills_failed": self.bills_failed,
            "lag": {str(k): v for k, v in self.lag.items()},
            "errors": dict(self.errors),
            "finished": self.finished,
            "cpu_seconds": self.cpu_seconds,
            "wall_seconds": self.wall_seconds,
        }


def merge(snapshots: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Several processes' snapshots as one; ``cpu_shares`` keeps each process's CPU share of a core."""
    seconds: dict[int, list[Any]] = {}
    lag: collections.Counter[int] = collections.Counter()
    out: dict[str, Any] = {"checked": 0, "identity_failures": 0, "examples": [], "scheduled": 0, "bills": 0}
    out.update(bills_failed=0, cpu_shares=[])
    errors: collections.Counter[str] = collections.Counter()
    out["finished"] = 0
    for snap in snapshots:
        errors.update(snap["errors"])
        for key in ("checked", "identity_failures", "scheduled", "bills", "bills_failed", "finished"):
            out[key] += snap[key]
        out["examples"] = (out["examples"] + snap["examples"])[:EXAMPLES]
        for s, (a, e, h) in snap["seconds"].items():
            row = seconds.setdefault(int(s), [0, 0, collections.Counter()])
            row[0] += a
            row[1] += e
            row[2].update({int(k): v for k, v in h.items()})
        lag.update({int(k): v for k, v in snap["lag"].items()})
        if snap["wall_seconds"] > 0:
            out["cpu_shares"].append(snap["cpu_seconds"] / snap["wall_seconds"])
    out["seconds"] = seconds
    out["lag"] = lag
    out["errors"] = errors
    return out
