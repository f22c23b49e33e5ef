"""Settlements per second through HTTP with the journal durable (issue 3), against pgbench's TPC-B.

A real `medsettle serve` process (SQLite journal, WAL, synchronous=FULL) answers 2102 pharmacy sales
from 1, 8 and 64 concurrent clients on 127.0.0.1 for a bounded time each; pgbench runs its TPC-B
workload with the same client counts on a private PostgreSQL server (fsync on) in the same run.

    python -m pytest benchmarks/test_centre_bench.py --benchmark-only -s
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import RESULTS  # noqa: E402
from medsettle.engine import Population  # noqa: E402
from medsettle.policy import load_default_policy  # noqa: E402

CLIENTS = (1, 8, 64)
SECONDS = float(os.environ.get("MEDSETTLE_BENCH_SECONDS", 8))
PHARMACY = "P13010000001"


class _Url(str):
    pid: int = 0


@pytest.fixture(scope="module")
def centre_url(tmp_path_factory):
    data = tmp_path_factory.mktemp("centre")
    proc = subprocess.Popen([sys.executable, "-m", "medsettle.cli", "serve", "--port", "0", "--data-dir", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = None
    for _ in range(20):
        line = proc.stdout.readline()
        if "listening on" in line:
            url = line.split("listening on ")[1].split()[0]
            break
    assert url, "the centre did not start"
    url = _Url(url)
    url.pid = proc.pid
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def _persons():
    policy = load_default_policy()
    population = Population.generate(policy, 10_000, seed=0)
    codes = [i.med_list_codg for i in policy.region("130100").catalogues[0].items if i.chrgitm_lv == "01"][:20]
    return [population.psn_nos[i] for i in range(len(population))
            if population.region_codes[population.attrs[i]["region"]] == "130100"], codes


async def _load(url: str, clients: int, seconds: float) -> tuple[int, list[float]]:
    import aiohttp

    persons, codes = _persons()
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        async def post(body):
            async with session.post(url, json=body) as resp:
                return await resp.json()

        signin = await post({"infno": "9001", "msgid": f"SIGN{clients}{time.time_ns()}", "fixmedins_code": PHARMACY,
                             "input": {"signIn": {"opter_no": "1"}}})
        sign_no = signin["output"]["signinoutb"]["sign_no"]
        deadline = time.perf_counter() + seconds
        done = 0

        async def client(c: int) -> None:
            nonlocal done
            i = 0
            while time.perf_counter() < deadline:
                psn = persons[(c * 7919 + i) % len(persons)]
                body = {"infno": "2102", "msgid": f"B{clients}-{c}-{i}-{time.time_ns()}", "fixmedins_code": PHARMACY,
                        "sign_no": sign_no, "inf_time": "2026-03-02 10:00:00",
                        "input": {"data": {"psn_no": psn, "med_type": "41", "acct_used_flag": "1"},
                                  "feedetail": [{"feedetl_sn": "1", "med_list_codg": codes[i % len(codes)],
                                                 "pric": "12.50", "cnt": "2"}]}}
                started = time.perf_counter()
                answer = await post(body)
                latencies.append(time.perf_counter() - started)
                assert answer["infcode"] == 0, answer
                done += 1
                i += 1

        await asyncio.gather(*(client(c) for c in range(clients)))
    return done, latencies


@pytest.mark.parametrize("clients", CLIENTS)
def test_http_settlements_per_second(benchmark, centre_url, clients):
    result = {}

    def run():
        result["done"], result["lat"] = asyncio.run(_load(centre_url, clients, SECONDS))

    cpu_before = _cpu_seconds(centre_url.pid)
    benchmark.pedantic(run, rounds=1, iterations=1)
    server_cpu_ms = (_cpu_seconds(centre_url.pid) - cpu_before) * 1000 / max(1, result["done"])
    lat = sorted(result["lat"])
    tps = result["done"] / SECONDS
    p50, p99 = lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000
    RESULTS.setdefault(("centre http", f"{clients} clients"), {}).update(
        {"settlements/s": tps, "p50_ms": p50, "p99_ms": p99})
    print(f"\ncentre, {clients} clients: {tps:,.0f} settlements/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"server CPU {server_cpu_ms:.2f} ms per settlement (the load generator shares the machine)")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def pgbench_url():
    from pg import PostgresServer, find_bindir

    if find_bindir() is None or not Path("/usr/bin/pgbench").exists():
        pytest.skip("PostgreSQL or pgbench is not installed")
    server = PostgresServer()
    subprocess.run(["pgbench", "-i", "-s", "10", "-q", server.url()], check=True, capture_output=True)
    yield server.url()
    server.stop()


@pytest.mark.parametrize("clients", CLIENTS)
def test_pgbench_tpcb(benchmark, pgbench_url, clients):
    out = {}

    def run():
        proc = subprocess.run(["pgbench", "-c", str(clients), "-j", "2", "-T", str(int(SECONDS)), "-n", pgbench_url],
                              check=True, capture_output=True, text=True)
        out["tps"] = float(re.search(r"tps = ([\d.]+)", proc.stdout).group(1))

    benchmark.pedantic(run, rounds=1, iterations=1)
    RESULTS.setdefault(("centre http", f"{clients} clients"), {})["pgbench_tps"] = out["tps"]
    print(f"\npgbench TPC-B, {clients} clients: {out['tps']:,.0f} tps")
