"""The figures a benchmark run collects (bills/s, latencies), kept here for conftest's table at the end of the
run. A module of its own, so benchmark modules import it by name instead of importing conftest."""

from __future__ import annotations

RESULTS: dict[tuple, dict[str, float]] = {}
LATENCIES: dict[str, tuple[float, float, int]] = {}  # case → (median s, p99 s, samples)


def record_latency(name: str, benchmark) -> tuple[float, float]:
    """Store the median and p99 of every round of a pedantic pytest-benchmark run."""
    data = sorted(benchmark.stats.stats.data)
    median, p99 = data[len(data) // 2], data[min(len(data) - 1, int(len(data) * 0.99))]
    LATENCIES[name] = (median, p99, len(data))
    benchmark.extra_info.update(median_ms=round(median * 1e3, 4), p99_ms=round(p99 * 1e3, 4))
    return median, p99


def record(key: tuple, name: str, bills: int, benchmark) -> float:
    """Store bills/s from the best round of a pytest-benchmark run and return it."""
    best = benchmark.stats.stats.min
    rate = bills / best
    RESULTS.setdefault(key, {})[name] = rate
    benchmark.extra_info["bills_per_s"] = round(rate)
    return rate
