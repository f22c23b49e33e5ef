"""Settlements per second through HTTP with the journal durable (issue 3), against pgbench's TPC-B.

A real `medsettle serve` process (SQLite journal, WAL, synchronous=FULL) answers 2102 pharmacy sales
from 1, 8 and 64 concurrent clients on 127.0.0.1 for a bounded time each; pgbench runs its TPC-B
workload with the same client counts on a private PostgreSQL server (fsync on) in the same run.

The load comes from wrk (Debian's package ``wrk``) with benchmarks/wrk_sale.lua: a C client, as
pgbench's is, so that on a two-core machine the yardstick and the centre are driven alike. Without wrk
an aiohttp client in Python drives the load instead; it needs about as much CPU as the centre itself,
so its figures are lower and say so.

    python -m pytest benchmarks/test_centre_bench.py --benchmark-only -s
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from centre_rig import ServedCentre, default_registry
from figures import RESULTS
from medsettle.credentials import InstitutionCredential, signature
from medsettle.policy import load_default_policy

CLIENTS = (1, 8, 64)
SECONDS = float(os.environ.get("MEDSETTLE_BENCH_SECONDS", 8))
PHARMACY = "P13010000001"


class _Url(str):
    pid: int = 0
    credential: InstitutionCredential  # the pharmacy's: every request is signed (docs/security.md)


@pytest.fixture(scope="module")
def centre_url(tmp_path_factory):
    """The tests' served centre (tests/centre_rig.py) for the module; its URL carries the pid for the CPU figures."""
    with ServedCentre(tmp_path_factory.mktemp("centre")) as centre:
        url = _Url(centre.url)
        url.pid = centre.proc.pid
        url.credential = centre.credentials().institution(PHARMACY)
        yield url


def _persons():
    """The region's persons as (psn_no, ID number): a sale names the person by a certificate (02 here)."""
    policy = load_default_policy()
    registry = default_registry()
    population = registry.population
    codes = [i.med_list_codg for i in policy.region("130100").catalogues[0].items if i.chrgitm_lv == "01"][:20]
    return [
        (population.psn_nos[i], registry.identities[population.psn_nos[i]].certno)
        for i in range(len(population))
        if population.region_codes[population.attrs[i]["region"]] == "130100"
    ], codes


async def _load(url: _Url, clients: int, seconds: float) -> tuple[int, list[float]]:
    import aiohttp

    persons, codes = _persons()
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:

        async def post(body):
            async with session.post(url, json=body, headers=url.credential.headers()) as resp:
                return await resp.json()

        signin = await post(
            {
                "infno": "9001",
                "msgid": f"SIGN{clients}{time.time_ns()}",
                "fixmedins_code": PHARMACY,
                "input": {"signIn": {"opter_no": "1"}},
            }
        )
        sign_no = signin["output"]["signinoutb"]["sign_no"]
        deadline = time.perf_counter() + seconds
        done = 0

        async def client(c: int) -> None:
            nonlocal done
            i = 0
            while time.perf_counter() < deadline:
                psn, certno = persons[(c * 7919 + i) % len(persons)]
                body = {
                    "infno": "2102",
                    "msgid": f"B{clients}-{c}-{i}-{time.time_ns()}",
                    "fixmedins_code": PHARMACY,
                    "sign_no": sign_no,
                    "inf_time": "2026-03-02 10:00:00",
                    "input": {
                        "data": {
                            "psn_no": psn,
                            "mdtrt_cert_type": "02",
                            "mdtrt_cert_no": certno,
                            "med_type": "41",
                            "acct_used_flag": "1",
                        },
                        "feedetail": [
                            {"feedetl_sn": "1", "med_list_codg": codes[i % len(codes)], "pric": "12.50", "cnt": "2"}
                        ],
                    },
                }
                started = time.perf_counter()
                answer = await post(body)
                latencies.append(time.perf_counter() - started)
                assert answer["infcode"] == 0, answer
                done += 1
                i += 1

        await asyncio.gather(*(client(c) for c in range(clients)))
    return done, latencies


def _sign_in(url: _Url) -> str:
    import json
    import urllib.request

    body = {
        "infno": "9001",
        "msgid": f"SIGN{time.time_ns()}",
        "fixmedins_code": PHARMACY,
        "input": {"signIn": {"opter_no": "1"}},
    }
    headers = {"Content-Type": "application/json", **url.credential.headers()}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["output"]["signinoutb"]["sign_no"]


MOST_PER_SECOND = 25_000  # more settlements a second than one centre answers here: enough signed nonces


def _write_signatures(credential: InstitutionCredential, threads: int, seconds: float, workdir: Path) -> None:
    """Per wrk thread a file of "timestamp nonce signature" lines, one per request it may send: wrk's Lua
    cannot hash, so every request's x-tif-* headers are made here, all at one timestamp (a run is far
    shorter than the gateway's 300 s window), each nonce once."""
    timestamp = str(int(time.time()))
    per_thread = int(MOST_PER_SECOND * seconds / threads) + 1000
    for thread in range(1, threads + 1):
        lines = []
        for n in range(per_thread):
            nonce = f"w{thread}-{n}-{timestamp}"
            lines.append(f"{timestamp} {nonce} {signature(timestamp, credential.passtoken, nonce)}")
        (workdir / f"nonces-{thread}.txt").write_text("\n".join(lines) + "\n")


def _load_with_wrk(url: _Url, clients: int, seconds: float, workdir: Path) -> tuple[int, float, float]:
    """(requests, p50 ms, p99 ms) from a wrk run; fails on any reply whose infcode is not 0."""
    persons, codes = _persons()
    threads = min(clients, 2)
    _write_signatures(url.credential, threads, seconds, workdir)
    (workdir / "persons.txt").write_text("\n".join(f"{psn} {certno}" for psn, certno in persons))
    (workdir / "codes.txt").write_text("\n".join(codes))
    env = {
        **os.environ,
        "MEDSETTLE_WRK_DIR": str(workdir),
        "MEDSETTLE_SIGN_NO": _sign_in(url),
        "MEDSETTLE_PAASID": url.credential.paasid,
    }
    script = Path(__file__).resolve().parent / "wrk_sale.lua"
    proc = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(clients),
            "-d",
            f"{seconds:g}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    refused = [line for line in proc.stdout.splitlines() if line.startswith("REFUSED")]
    assert not refused, refused[:3]
    assert "Non-2xx" not in proc.stdout and "Socket errors" not in proc.stdout, proc.stdout
    done = int(re.search(r"(\d+) requests in", proc.stdout).group(1))

    def percentile(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", proc.stdout, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    return done, percentile("50%"), percentile("99%")


@pytest.mark.parametrize("clients", CLIENTS)
def test_http_settlements_per_second(benchmark, centre_url, clients, tmp_path):
    result = {}
    use_wrk = shutil.which("wrk") is not None

    def run():
        if use_wrk:
            result["done"], result["p50"], result["p99"] = _load_with_wrk(centre_url, clients, SECONDS, tmp_path)
        else:
            done, latencies = asyncio.run(_load(centre_url, clients, SECONDS))
            lat = sorted(latencies)
            result.update(done=done, p50=lat[len(lat) // 2] * 1000, p99=lat[int(len(lat) * 0.99)] * 1000)

    cpu_before = _cpu_seconds(centre_url.pid)
    benchmark.pedantic(run, rounds=1, iterations=1)
    server_cpu_ms = (_cpu_seconds(centre_url.pid) - cpu_before) * 1000 / max(1, result["done"])
    tps = result["done"] / SECONDS
    RESULTS.setdefault(("centre http", f"{clients} clients"), {}).update(
        {"settlements/s": tps, "p50_ms": result["p50"], "p99_ms": result["p99"]}
    )
    driver = "wrk" if use_wrk else "aiohttp client in Python (no wrk: lower figures)"
    print(
        f"\ncentre, {clients} clients ({driver}): {tps:,.0f} settlements/s, p50 {result['p50']:.1f} ms, "
        f"p99 {result['p99']:.1f} ms, server CPU {server_cpu_ms:.2f} ms per settlement"
    )


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
        proc = subprocess.run(
            ["pgbench", "-c", str(clients), "-j", "2", "-T", str(int(SECONDS)), "-n", pgbench_url],
            check=True,
            capture_output=True,
            text=True,
        )
        out["tps"] = float(re.search(r"tps = ([\d.]+)", proc.stdout).group(1))

    benchmark.pedantic(run, rounds=1, iterations=1)
    RESULTS.setdefault(("centre http", f"{clients} clients"), {})["pgbench_tps"] = out["tps"]
    print(f"\npgbench TPC-B, {clients} clients: {out['tps']:,.0f} tps")
