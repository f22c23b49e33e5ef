"""Benchmark hooks: the figures benchmarks/figures.py collects are printed as one table at the end of the run.

Nothing here passes or fails on time: the table reports bills/s and ratios to baselines measured in the
same run (the bare memory-access loop), because these machines are shared and noisy.
"""

from __future__ import annotations

import os

import pytest

from figures import LATENCIES, RESULTS


def pytest_configure(config):
    config.addinivalue_line("markers", "big: needs tens of GB of memory")


def pytest_terminal_summary(terminalreporter):
    tr = terminalreporter
    if LATENCIES:
        tr.section("medsettle: latencies (median, p99)")
        for name, (median, p99, n) in LATENCIES.items():
            tr.write_line(f"{name:<48}{median * 1e3:>10.3f} ms{p99 * 1e3:>10.3f} ms   ({n:,} samples)")
    if not RESULTS:
        return
    tr.section("medsettle: figures per second (best round), ratios to the same run's baselines")
    known = [
        "core_full",
        "core_totals",
        "bare_record",
        "bare_dense",
        "validate",
        "reference_sample",
        "single_fast",
        "single_validated",
    ]
    present = {name for row in RESULTS.values() for name in row}
    names = [n for n in known if n in present] + sorted(present - set(known))
    ratios = "bare_record" in present
    header = f"{'case':<28}" + "".join(f"{n:>17}" for n in names)
    tr.write_line(header + (f"{'full/bare_rec':>15}{'totals/bare_rec':>17}" if ratios else ""))
    for key, row in RESULTS.items():
        label = " ".join(str(k) for k in key)
        line = f"{label:<28}" + "".join(f"{_figure(row[n]):>17}" if n in row else f"{'-':>17}" for n in names)
        if ratios and row.get("bare_record"):
            line += f"{row.get('core_full', 0) / row['bare_record']:>15.3f}"
            line += f"{row.get('core_totals', 0) / row['bare_record']:>17.3f}"
        tr.write_line(line)


@pytest.fixture(scope="session")
def n_bills() -> int:
    return int(os.environ.get("MEDSETTLE_BENCH_BILLS", 10_000_000))


def _figure(value: float) -> str:
    """Thousands as whole numbers, small rates (seeds/s) with the digits that say something."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
