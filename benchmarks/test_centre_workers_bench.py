"""`serve --workers 2` against one centre process, both on PostgreSQL, against pgbench's TPC-B (issue 18).

Two centres on one private PostgreSQL server (fsync on), each with a database of its own: `medsettle serve
--db URL` (one process owning both insured regions) and `medsettle serve --db URL --workers 2` (a worker per
region). wrk with the signed benchmarks' script sends 2102 sales of the 130100 pharmacy to persons of both
regions (about 60% of the generated persons are 130100's), so on the workers about half the sales land on the
worker that does not own the person and are handed over. At 1, 8 and 64 connections the two centres are driven
in turn, ROUNDS times for SECONDS each, and pgbench runs with the same clients after each pair: the
machine's load moves between rounds, and alternating shares it out. Printed: the median settlements/s of
each, the ratio 2 workers / 1 process, each against pgbench, server CPU (the parent and its workers) and
PostgreSQL's CPU per settlement, and how busy the machine's cores were (near 100%: no core to spare for a
second worker).

    python -m pytest benchmarks/test_centre_workers_bench.py --benchmark-only -s
"""

from __future__ import annotations

import os
import shutil
import statistics
import uuid
from pathlib import Path

import pytest

from figures import RESULTS
from medsettle.bench.centre import EmbeddedCentre
from medsettle.bench.layers import http, postgres
from medsettle.credentials import load as load_credentials

CLIENTS = (1, 8, 64)
SECONDS = float(os.environ.get("MEDSETTLE_BENCH_SECONDS", 6))
ROUNDS = int(os.environ.get("MEDSETTLE_BENCH_ROUNDS", 3))
REGIONS = ("130100", "330300")
CONFIGS = ("1 process", "2 workers")


def _database(server: postgres.PrivatePostgres) -> str:
    import psycopg

    name = "b_" + uuid.uuid4().hex[:10]
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url(name)


@pytest.fixture(scope="module")
def centres(tmp_path_factory):
    missing = postgres.missing() or (None if shutil.which("wrk") else "wrk is not installed (apt-get install wrk)")
    if missing:
        pytest.skip(missing)
    server = postgres.PrivatePostgres()
    postgres.pgbench_init(server.url(), 10)
    started = {}
    try:
        for name, extra in zip(CONFIGS, ((), ("--workers", "2")), strict=True):
            centre = EmbeddedCentre(tmp_path_factory.mktemp("centre"), serve_args=("--db", _database(server), *extra))
            centre.launch()
            centre.wait()
            started[name] = centre
        yield server, started
    finally:
        for centre in started.values():
            centre.stop()
        server.stop()


@pytest.mark.parametrize("clients", CLIENTS)
def test_two_workers_against_one_process(benchmark, centres, clients, tmp_path):
    server, started = centres
    runs: dict[str, list[tuple[float, ...]]] = {name: [] for name in CONFIGS}  # per s, p99, cpu ms, pg ms, busy
    postmaster = int(Path(server.data, "postmaster.pid").read_text().split()[0])
    pgbench: list[float] = []

    def run() -> None:
        for round_no in range(ROUNDS):
            for name, centre in started.items():
                credential = load_credentials(centre.credentials_file).institution(http.PHARMACY)
                workdir = tmp_path / f"{round_no}-{name.replace(' ', '-')}"
                workdir.mkdir()
                assert centre.pid is not None
                before, pg_before, busy_before = (
                    http.tree_cpu_seconds(centre.pid),
                    _backends(postmaster),
                    _machine_cpu(),
                )
                load = http.load_with_wrk(centre.url, credential, clients, SECONDS, workdir, REGIONS)
                done = max(1, load.done)
                cpu_ms = (http.tree_cpu_seconds(centre.pid) - before) * 1000 / done
                pg_after = _backends(postmaster)
                pg_ms = sum(pg_after[pid] - cpu for pid, cpu in pg_before.items() if pid in pg_after) * 1000 / done
                busy = _busy_share(busy_before, _machine_cpu())
                runs[name].append((load.done / SECONDS, load.p99_ms, cpu_ms, pg_ms, busy))
            pgbench.append(postgres.pgbench_tps(server.url(), clients, int(SECONDS)))

    benchmark.pedantic(run, rounds=1, iterations=1)
    tps = {name: statistics.median(r[0] for r in runs[name]) for name in CONFIGS}
    yardstick = statistics.median(pgbench)
    figures = RESULTS.setdefault(("centre workers", f"{clients} clients"), {})
    figures.update({"pgbench_tps": yardstick, "2 workers / 1 process": tps["2 workers"] / tps["1 process"]})
    print(f"\n{clients} clients, {ROUNDS} rounds of {SECONDS:g} s, medians; pgbench TPC-B {yardstick:,.0f} tps")
    for name in CONFIGS:
        p99 = statistics.median(r[1] for r in runs[name])
        cpu = statistics.median(r[2] for r in runs[name])
        pg = statistics.median(r[3] for r in runs[name])
        busy = statistics.median(r[4] for r in runs[name])
        figures[f"{name} settlements/s"] = tps[name]
        each = ", ".join(f"{r[0]:,.0f}" for r in runs[name])
        print(
            f"  {name}: {tps[name]:,.0f} settlements/s ({each}), p99 {p99:.1f} ms, "
            f"{tps[name] / yardstick:.2f}x pgbench, server CPU {cpu:.2f} ms per settlement, "
            f"PostgreSQL {pg:.2f} ms, the machine's cores {busy:.0%} busy"
        )
    print(f"  2 workers / 1 process: {tps['2 workers'] / tps['1 process']:.2f}")


def _machine_cpu() -> tuple[int, int]:
    """(busy, all) clock ticks of every core since boot, from /proc/stat (Linux)."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return sum(ticks) - idle, sum(ticks)


def _busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the machine's CPU time that was busy between two readings (wrk, PostgreSQL, the centre,
    and whatever else runs: a share near 1 means there were no cores to spare)."""
    return (after[0] - before[0]) / max(1, after[1] - before[1])


def _backends(postmaster: int) -> dict[int, float]:  # ok-float: seconds
    """CPU seconds of each PostgreSQL process now (the centres' backends live as long as the centres; pgbench's
    come and go, and count only while they run)."""
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    found = {}
    for pid in (postmaster, *map(int, children)):
        try:
            found[pid] = http.cpu_seconds(pid)
        except FileNotFoundError:  # it ended meanwhile
            continue
    return found
