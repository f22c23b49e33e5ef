"""What the centre keeps in memory per settlement (issue 15: at most 2 KB, the settlement record included).

One centre in this process (SQLite journal in a temporary directory), 100,000 pharmacy sales (2102) of the
default population's persons, submitted 1,000 at a time so they share group commits. The figure is the
growth of the process's resident set (RSS, from /proc/self/statm) from after the first 1,000 sales (the
interpreter, the population and the caches warmed) to the end, divided by the sales counted: what a long
run adds per settlement, whatever holds it (the settlement record, what its answer is made again from,
indexes). Python's allocator keeps freed memory for reuse, so the figure is an upper bound of what is held.

    python -m pytest benchmarks/test_centre_memory_bench.py --benchmark-only -s
"""

from __future__ import annotations

import gc
import os

import pytest

from centre_rig import PHARMACY, default_registry, envelope
from figures import RESULTS
from medsettle.centre.institutions import default_institutions
from medsettle.centre.service import Centre
from medsettle.engine import Settler
from medsettle.ledger import SQLiteJournal
from medsettle.policy import load_default_policy

SALES = int(os.environ.get("MEDSETTLE_BENCH_MEMORY_SALES", 100_000))
BATCH = 1_000
MOST_BYTES_PER_SETTLEMENT = 2048  # issue 15's bound, printed beside the figure (not asserted: a benchmark)


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _sales(centre: Centre, sign_no: str, first: int, count: int) -> None:
    registry = default_registry()
    psn_nos = registry.population.psn_nos
    codes = [i.med_list_codg for i in centre.settler.policy.region("130100").catalogues[0].items][:20]
    persons = [p for p in psn_nos if str(p).startswith("130100")]
    futures = []
    for n in range(first, first + count):
        psn = persons[(n * 7919) % len(persons)]
        data = {"psn_no": psn, "mdtrt_cert_type": "02", "mdtrt_cert_no": registry.identities[psn].certno}
        data |= {"med_type": "41", "acct_used_flag": "1"}
        line = {"feedetl_sn": "1", "med_list_codg": codes[n % len(codes)], "pric": "12.50", "cnt": "2"}
        msgid = f"{PHARMACY}20261201{n:012d}"
        body = envelope("2102", {"data": data, "feedetail": [line]}, sign_no=sign_no, msgid=msgid)
        futures.append(centre.submit(body))
    for future in futures:
        answer = future.result()
        assert answer["infcode"] == 0, answer


@pytest.mark.benchmark(group="centre memory")
def test_resident_memory_per_settlement(benchmark, tmp_path):
    policy = load_default_policy()
    registry = default_registry()
    journal = SQLiteJournal(tmp_path / "centre.db")
    centre = Centre(Settler(policy, registry.population), journal, default_institutions(policy), registry)
    signin = centre.handle(
        envelope("9001", {"signIn": {"opter_no": "001"}}, sign_no="", msgid=f"{PHARMACY}SIGNIN000000000001")
    )
    sign_no = signin["output"]["signinoutb"]["sign_no"]
    figure = {}

    def run() -> None:
        _sales(centre, sign_no, 0, BATCH)  # warm: caches, the first records, the journal's connection
        gc.collect()
        before = _rss()
        for first in range(BATCH, SALES, BATCH):
            _sales(centre, sign_no, first, BATCH)
        gc.collect()
        figure["bytes"] = (_rss() - before) / (SALES - BATCH)  # ok-float: bytes per settlement

    try:
        benchmark.pedantic(run, rounds=1, iterations=1)
    finally:
        journal.close()
    per_settlement = round(figure["bytes"])
    benchmark.extra_info.update(bytes_per_settlement=per_settlement, sales=SALES, bound=MOST_BYTES_PER_SETTLEMENT)
    RESULTS.setdefault(("centre memory", f"{SALES:,} sales"), {})["RSS bytes/settlement"] = per_settlement
    print(f"\nRSS per settlement over {SALES:,} sales: {per_settlement:,} bytes (bound {MOST_BYTES_PER_SETTLEMENT:,})")
