"""The centre over HTTP with its journal durable (issue 3): 2102 pharmacy sales a second from wrk's C client
at a number of connections, against pgbench's TPC-B on a private PostgreSQL (fsync on) at as many clients,
in the same run.

The centre is a real ``medsettle serve`` subprocess (SQLite journal, WAL, synchronous=FULL) on 127.0.0.1.
wrk (Debian's package ``wrk``) drives it with wrk_sale.lua: a C client, as pgbench's is, so that on a
two-core machine the yardstick and the centre are driven alike. wrk's Lua cannot hash, so every request's
signature is made here beforehand. ``load_with_python`` (an aiohttp client) is the benchmarks' fallback
without wrk: it takes about as much CPU as the centre, so its figures are lower; ``bench all`` skips instead.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ...credentials import InstitutionCredential, signature
from . import LayerResult, LayerSkipped, Size, postgres, ratio

TITLE = "centre over HTTP (2102 sales)"
PHARMACY = "P13010000001"  # the default institutions' pharmacy
MOST_PER_SECOND = 25_000  # more settlements a second than one centre answers here: enough signed nonces
WRK_SCRIPT = Path(__file__).with_name("wrk_sale.lua")
WRK_MISSING = "wrk is not installed (apt-get install wrk): a Python driver would take the core the centre needs"


@dataclass
class Load:
    """What a load run measured: answers, their p50 and p99 (ms), and the seconds it ran."""

    done: int
    p50_ms: float  # ok-float: milliseconds
    p99_ms: float  # ok-float: milliseconds
    seconds: float  # ok-float: seconds

    @property
    def per_second(self) -> float:  # ok-float: a rate
        """Settlements a second."""
        return self.done / self.seconds


def sale_persons(region: str = "130100", *more: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The default served centre's persons of ``region`` (and of the regions ``more`` names) as (psn_no, ID
    number), and 20 class-A item codes of the first region's catalogue: a sale names the person by a
    certificate (02, the ID number)."""
    from ...centre.registry import Registry  # noqa: PLC0415
    from ...engine import Population  # noqa: PLC0415
    from ...policy import load_default_policy  # noqa: PLC0415

    policy = load_default_policy()
    population = Population.generate(policy, 10_000, seed=0)
    registry = Registry.generate(population)
    codes = [i.med_list_codg for i in policy.region(region).catalogues[0].items if i.chrgitm_lv == "01"][:20]
    regions = {region, *more}
    persons = [
        (population.psn_nos[i], registry.identities[population.psn_nos[i]].certno)
        for i in range(len(population))
        if population.region_codes[population.attrs[i]["region"]] in regions
    ]
    return persons, codes


def sign_in(url: str, credential: InstitutionCredential) -> str:
    """A 9001 sign-in of the pharmacy; its sign_no."""
    body: dict[str, Any] = {"infno": "9001", "msgid": f"SIGN{time.time_ns()}", "fixmedins_code": PHARMACY}
    body["input"] = {"signIn": {"opter_no": "1"}}
    headers = {"Content-Type": "application/json", **credential.headers()}
    request = urllib.request.Request(url, data=orjson.dumps(body), headers=headers)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return str(orjson.loads(answer.read())["output"]["signinoutb"]["sign_no"])


def write_signatures(credential: InstitutionCredential, threads: int, seconds: float, workdir: Path) -> None:
    """Per wrk thread a file of "timestamp nonce signature" lines, one per request it may send, all at one
    timestamp (a run is far shorter than the gateway's 300 s window), each nonce once."""
    timestamp = str(int(time.time()))
    per_thread = int(MOST_PER_SECOND * seconds / threads) + 1000
    for thread in range(1, threads + 1):
        lines = []
        for n in range(per_thread):
            nonce = f"w{thread}-{n}-{timestamp}"
            lines.append(f"{timestamp} {nonce} {signature(timestamp, credential.passtoken, nonce)}")
        (workdir / f"nonces-{thread}.txt").write_text("\n".join(lines) + "\n")


def load_with_wrk(
    url: str,
    credential: InstitutionCredential,
    clients: int,
    seconds: float,
    workdir: Path,
    regions: tuple[str, ...] = ("130100",),
) -> Load:
    """A wrk run of ``seconds`` at ``clients`` connections, sales to persons insured in ``regions`` (the
    pharmacy's own first); RuntimeError on any refused or failed reply."""
    persons, codes = sale_persons(*regions)
    threads = min(clients, 2)
    write_signatures(credential, threads, seconds, workdir)
    (workdir / "persons.txt").write_text("\n".join(f"{psn} {certno}" for psn, certno in persons))
    (workdir / "codes.txt").write_text("\n".join(codes))
    env = {
        **os.environ,
        "MEDSETTLE_WRK_DIR": str(workdir),
        "MEDSETTLE_SIGN_NO": sign_in(url, credential),
        "MEDSETTLE_PAASID": credential.paasid,
    }
    command = ["wrk", "-t", str(threads), "-c", str(clients), "-d", f"{seconds:g}s", "--latency"]
    proc = subprocess.run(
        [*command, "-s", str(WRK_SCRIPT), url],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    refused = [line for line in proc.stdout.splitlines() if line.startswith("REFUSED")]
    if refused:
        raise RuntimeError(f"the centre refused sales: {refused[0][:200]}")
    if "Non-2xx" in proc.stdout or "Socket errors" in proc.stdout:
        raise RuntimeError(f"wrk saw errors: {proc.stdout[-400:]}")
    found = re.search(r"(\d+) requests in", proc.stdout)
    if found is None:
        raise RuntimeError(f"wrk printed no request count: {proc.stdout[-300:]}")

    def percentile(label: str) -> float:  # ok-float: milliseconds
        got = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", proc.stdout, re.M)
        if got is None:
            raise RuntimeError(f"wrk printed no {label} latency")
        return float(got.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[got.group(2)]  # ok-float: milliseconds

    return Load(int(found.group(1)), percentile("50%"), percentile("99%"), seconds)


def load_with_python(url: str, credential: InstitutionCredential, clients: int, seconds: float) -> Load:
    """The same sales from an aiohttp client in this process (lower figures: it needs a core of its own)."""
    return asyncio.run(_python_load(url, credential, clients, seconds))


async def _python_load(url: str, credential: InstitutionCredential, clients: int, seconds: float) -> Load:
    import aiohttp  # noqa: PLC0415

    persons, codes = sale_persons()
    latencies: list[float] = []
    sign_no = sign_in(url, credential)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        deadline = time.perf_counter() + seconds

        async def client(c: int) -> None:
            i = 0
            while time.perf_counter() < deadline:
                psn, certno = persons[(c * 7919 + i) % len(persons)]
                data = {"psn_no": psn, "mdtrt_cert_type": "02", "mdtrt_cert_no": certno, "med_type": "41"}
                line = {"feedetl_sn": "1", "med_list_codg": codes[i % len(codes)], "pric": "12.50", "cnt": "2"}
                body: dict[str, Any] = {
                    "infno": "2102",
                    "msgid": f"B{clients}-{c}-{i}-{time.time_ns()}",
                    "sign_no": sign_no,
                }
                body.update(fixmedins_code=PHARMACY, inf_time="2026-03-02 10:00:00")
                body["input"] = {"data": {**data, "acct_used_flag": "1"}, "feedetail": [line]}
                started = time.perf_counter()
                async with session.post(url, json=body, headers=credential.headers()) as resp:
                    answer = await resp.json()
                latencies.append(time.perf_counter() - started)
                if answer["infcode"] != 0:
                    raise RuntimeError(f"the centre refused a sale: {str(answer)[:200]}")
                i += 1

        await asyncio.gather(*(client(c) for c in range(clients)))
    lat = sorted(latencies)
    return Load(len(lat), lat[len(lat) // 2] * 1e3, lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3, seconds)


def cpu_seconds(pid: int) -> float:  # ok-float: seconds
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:  # ok-float: seconds
    """:func:`cpu_seconds` of a process and its running children (``serve --workers``' workers, PostgreSQL's
    backends); a child that ends while it is read counts for nothing."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        own = cpu_seconds(pid)
    except FileNotFoundError:  # it ended meanwhile
        return 0.0
    return own + sum(tree_cpu_seconds(int(child)) for child in children)


def find_wrk() -> str | None:
    """wrk's path, or None (a seam: tests hide it)."""
    return shutil.which("wrk")


def measure(size: Size) -> LayerResult:
    """Settlements/s and p99 at 64 connections with wrk, against pgbench's TPC-B tps at 64 clients."""
    from ...credentials import load as load_credentials  # noqa: PLC0415
    from ..centre import EmbeddedCentre  # noqa: PLC0415

    if find_wrk() is None:
        raise LayerSkipped(WRK_MISSING)
    clients, seconds = 64, size.seconds(8.0, 3.0)
    with tempfile.TemporaryDirectory(prefix="medsettle-bench-centre-") as tmp:
        centre = EmbeddedCentre(Path(tmp) / "centre")
        centre.launch()
        centre.wait()  # CentreStartError (a failed layer, not a skipped one: nothing is missing) if it does not start
        try:
            assert centre.pid is not None
            credential = load_credentials(centre.credentials_file).institution(PHARMACY)
            cpu_before = cpu_seconds(centre.pid)
            load = load_with_wrk(centre.url, credential, clients, seconds, Path(tmp))
            cpu_ms = (cpu_seconds(centre.pid) - cpu_before) * 1e3 / max(1, load.done)
        finally:
            centre.stop()
    note, tps = f"server CPU {cpu_ms:.2f} ms per settlement", None
    why = postgres.missing()
    if why:
        note = f"measured without its yardstick: {why}; {note}"
    else:
        with postgres.PrivatePostgres() as server:
            postgres.pgbench_init(server.url(), 10)
            tps = postgres.pgbench_tps(server.url(), clients, max(1, round(seconds)))
    return LayerResult(
        layer="centre",
        title=TITLE,
        throughput=load.per_second,
        throughput_unit="settlements/s",
        latency_ms=load.p99_ms,
        latency_kind=f"p99 at {clients} connections",
        yardstick=f"pgbench TPC-B, {clients} clients (fsync on)",
        yardstick_throughput=tps,
        yardstick_unit="tps",
        ratio=ratio(load.per_second, tps),
        note=note,
        details={"clients": clients, "seconds": seconds, "p50_ms": load.p50_ms, "server_cpu_ms": cpu_ms},
    )
