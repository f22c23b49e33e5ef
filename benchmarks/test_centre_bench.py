"""Settlements per second through HTTP with the journal durable (issue 3), against pgbench's TPC-B.

A real `medsettle serve` process (SQLite journal, WAL, synchronous=FULL) answers 2102 pharmacy sales
from 1, 8 and 64 concurrent clients on 127.0.0.1 for a bounded time each; pgbench runs its TPC-B
workload with the same client counts on a private PostgreSQL server (fsync on) in the same run.

The load comes from wrk (Debian's package ``wrk``) with the signed script medsettle/bench/layers/wrk_sale.lua:
a C client, as pgbench's is, so that on a two-core machine the yardstick and the centre are driven alike. Without wrk
an aiohttp client in Python drives the load instead; it needs about as much CPU as the centre itself,
so its figures are lower and say so. The measuring code is medsettle.bench.layers.http's (and
.postgres's), what `medsettle bench all` measures.

    python -m pytest benchmarks/test_centre_bench.py --benchmark-only -s
"""

from __future__ import annotations

import os
import shutil

import pytest

from figures import RESULTS
from medsettle.bench.centre import EmbeddedCentre
from medsettle.bench.layers import http, postgres
from medsettle.credentials import InstitutionCredential
from medsettle.credentials import load as load_credentials

CLIENTS = (1, 8, 64)
SECONDS = float(os.environ.get("MEDSETTLE_BENCH_SECONDS", 8))
PHARMACY = http.PHARMACY


class _Url(str):
    pid: int = 0
    credential: InstitutionCredential  # the pharmacy's: every request is signed (docs/security.md)


@pytest.fixture(scope="module")
def centre_url(tmp_path_factory):
    """A served centre (medsettle.bench.centre) for the module; its URL carries the pid for the CPU figures."""
    centre = EmbeddedCentre(tmp_path_factory.mktemp("centre"))
    centre.launch()
    try:
        centre.wait()
        url = _Url(centre.url)
        url.pid = centre.pid or 0
        url.credential = load_credentials(centre.credentials_file).institution(PHARMACY)
        yield url
    finally:
        centre.stop()


@pytest.mark.parametrize("clients", CLIENTS)
def test_http_settlements_per_second(benchmark, centre_url, clients, tmp_path):
    result = {}
    use_wrk = shutil.which("wrk") is not None

    def run():
        if use_wrk:
            load = http.load_with_wrk(centre_url, centre_url.credential, clients, SECONDS, tmp_path)
        else:
            load = http.load_with_python(centre_url, centre_url.credential, clients, SECONDS)
        result.update(done=load.done, p50=load.p50_ms, p99=load.p99_ms)

    cpu_before = http.cpu_seconds(centre_url.pid)
    benchmark.pedantic(run, rounds=1, iterations=1)
    server_cpu_ms = (http.cpu_seconds(centre_url.pid) - cpu_before) * 1000 / max(1, result["done"])
    tps = result["done"] / SECONDS
    RESULTS.setdefault(("centre http", f"{clients} clients"), {}).update(
        {"settlements/s": tps, "p50_ms": result["p50"], "p99_ms": result["p99"]}
    )
    driver = "wrk" if use_wrk else "aiohttp client in Python (no wrk: lower figures)"
    print(
        f"\ncentre, {clients} clients ({driver}): {tps:,.0f} settlements/s, p50 {result['p50']:.1f} ms, "
        f"p99 {result['p99']:.1f} ms, server CPU {server_cpu_ms:.2f} ms per settlement"
    )


@pytest.fixture(scope="module")
def pgbench_url():
    missing = postgres.missing()
    if missing:
        pytest.skip(missing)
    server = postgres.PrivatePostgres()
    postgres.pgbench_init(server.url(), 10)
    yield server.url()
    server.stop()


@pytest.mark.parametrize("clients", CLIENTS)
def test_pgbench_tpcb(benchmark, pgbench_url, clients):
    out = {}

    def run():
        out["tps"] = postgres.pgbench_tps(pgbench_url, clients, int(SECONDS))

    benchmark.pedantic(run, rounds=1, iterations=1)
    RESULTS.setdefault(("centre http", f"{clients} clients"), {})["pgbench_tps"] = out["tps"]
    print(f"\npgbench TPC-B, {clients} clients: {out['tps']:,.0f} tps")
