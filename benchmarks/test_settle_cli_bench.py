"""``medsettle settle`` (issue 12): bills/s of the command, end to end, against the validated single-bill
path (``Settler.settle(dict)``, as benchmarks/test_single_bill_bench.py measures it) in the same run, and
the command's peak memory for a short and a ten times longer file.

    python -m pytest benchmarks/test_settle_cli_bench.py --benchmark-only -s
    MEDSETTLE_BENCH_SETTLE_BILLS=20000 MEDSETTLE_BENCH_SETTLE_RSS_BILLS=200000 ...   # smaller files

The command is a real process reading a file and writing to /dev/null. Its time includes starting up
(imports, the policy, reading the persons file), measured as a run on a file of one bill: the figure per
bill leaves it out, as the validated path's does. The measuring code is medsettle.bench.layers.settle_file's
(what `medsettle bench all` measures). The goals: per bill, at least half the validated path's
bills/s (reading a bill and writing its answer cost no more than settling it); a peak RSS for the longer
file at most 1.2 times that for the shorter (it keeps nothing per bill).
"""

from __future__ import annotations

import os

import pytest

from figures import RESULTS, record
from medsettle.bench.layers.settle_file import (
    peak_rss_kb,
    reset_settler,
    run_command,
    settle_command,
    settle_each,
    timed,
    validated_dicts,
    write_bills,
)
from medsettle.engine import Population, Settler
from medsettle.policy import load_default_policy

N_PERSONS = int(os.environ.get("MEDSETTLE_BENCH_SETTLE_PERSONS", "100000"))
N_BILLS = int(os.environ.get("MEDSETTLE_BENCH_SETTLE_BILLS", "100000"))  # the throughput file
N_RSS_LONG = int(os.environ.get("MEDSETTLE_BENCH_SETTLE_RSS_BILLS", "1000000"))  # the long file for memory
N_VALIDATED = 20_000  # bills of the validated path's rounds (as test_single_bill_bench)
ROUNDS = 3
KEY = (f"{N_PERSONS:,} persons", "settle")

_POLICY = load_default_policy()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("settle_cli")
    population = Population.generate(_POLICY, N_PERSONS, seed=1)
    persons = tmp / "persons.csv"
    population.to_csv(persons)
    short, long_ = tmp / "short.jsonl", tmp / "long.jsonl"
    write_bills(population, N_BILLS, short, seed=5)
    write_bills(population, N_RSS_LONG, long_, seed=5)
    one = tmp / "one.jsonl"
    one.write_bytes(short.read_bytes().split(b"\n", 1)[0] + b"\n")
    return population, persons, short, long_, one


def test_validated_single_bill_path(benchmark, files):
    population, _, short, _, _ = files
    settler = Settler(_POLICY, population, engine="core")
    dicts = validated_dicts(short, min(N_VALIDATED, N_BILLS))
    benchmark.pedantic(
        settle_each, args=(settler, dicts), setup=lambda: reset_settler(settler), rounds=ROUNDS, iterations=1
    )
    record(KEY, "single_validated", len(dicts), benchmark)


def testsettle_command(benchmark, files, capsys):
    _, persons, short, _, one = files
    startup = min(timed(settle_command(persons, one)) for _ in range(ROUNDS))
    benchmark.pedantic(run_command, args=(settle_command(persons, short),), rounds=ROUNDS, iterations=1)
    end_to_end = record(KEY, "settle_cli", N_BILLS, benchmark)
    # Per bill, as the validated path is measured: the time of the run less that of a run of one bill.
    per_bill = (N_BILLS - 1) / (benchmark.stats.stats.min - startup)
    _results()["cli_per_bill"] = per_bill
    validated = _results().get("single_validated")
    with capsys.disabled():
        print(
            f"\nmedsettle settle, {N_BILLS:,} bills, {N_PERSONS:,} persons: {end_to_end:,.0f} bills/s end to end, "
            f"{per_bill:,.0f} bills/s less starting up ({startup:.2f} s for a file of one bill; best of {ROUNDS})"
        )
        if validated:
            print(
                f"validated single-bill path: {validated:,.0f} bills/s; settle/validated {per_bill / validated:.2f} "
                f"per bill, {end_to_end / validated:.2f} end to end (goal: at least 0.5 per bill)"
            )
    benchmark.extra_info.update(startup_s=round(startup, 3), per_bill_bills_per_s=round(per_bill))


def test_settle_command_memory_does_not_grow_with_the_bills(benchmark, files, capsys):
    """Peak RSS of the short file, then (timed, once) of the long one."""
    _, persons, short, long_, _ = files
    short_kb = peak_rss_kb(settle_command(persons, short))
    long_kb = benchmark.pedantic(peak_rss_kb, args=(settle_command(persons, long_),), rounds=1, iterations=1)
    record(KEY, f"cli_{N_RSS_LONG // 1000}k_bills", N_RSS_LONG, benchmark)
    ratio = long_kb / short_kb
    with capsys.disabled():
        print(
            f"\nmedsettle settle peak RSS: {N_BILLS:,} bills {short_kb / 1024:,.1f} MiB, "
            f"{N_RSS_LONG:,} bills {long_kb / 1024:,.1f} MiB; ratio {ratio:.3f} (goal: at most 1.2)"
        )
    benchmark.extra_info.update(short_rss_kb=short_kb, long_rss_kb=long_kb, rss_ratio=round(ratio, 3))
    assert ratio <= 1.2


def _results() -> dict[str, float]:
    """This run's figures of this file's case (conftest.RESULTS, filled by the tests above)."""
    return RESULTS.setdefault(KEY, {})
