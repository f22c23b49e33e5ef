"""Durable journal appends per second with 1, 8 and 64 concurrent writers (group commit at work).

A baseline for the centre's benchmark (issue 3): every append returns only once it is durable, so
appends/s with one writer is about one fsync per append, and more writers share fsyncs.

    python -m pytest benchmarks/test_journal_bench.py --benchmark-only
"""

from __future__ import annotations

import threading

import pytest

from figures import RESULTS
from medsettle.ledger import SQLiteJournal

APPENDS_PER_WRITER = {1: 400, 8: 200, 64: 40}


@pytest.mark.parametrize("writers", [1, 8, 64])
def test_sqlite_durable_appends(benchmark, tmp_path, writers):
    journal = SQLiteJournal(tmp_path / "bench.db")
    body = {"setl_id": "S000000000000001", "row": list(range(28)), "bill": {"psn_no": "P" * 20}}
    rounds = iter(range(1000))

    def run():
        r = next(rounds)

        def worker(w):
            for i in range(APPENDS_PER_WRITER[writers]):
                journal.append("settle", "110100", f"{r}-{w}-{i}", body)

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    commits_before = journal.commits
    benchmark.pedantic(run, rounds=3, iterations=1)
    n = writers * APPENDS_PER_WRITER[writers]
    rate = n / benchmark.stats.stats.min
    per_commit = 3 * n / max(1, journal.commits - commits_before)
    benchmark.extra_info.update(appends_per_s=round(rate), appends_per_commit=round(per_commit, 1))
    RESULTS.setdefault(("journal sqlite", f"{writers} writers"), {})["appends/s"] = rate
    journal.close()
    print(f"\nsqlite journal, {writers} writers: {rate:,.0f} durable appends/s, {per_commit:.1f} appends per commit")
