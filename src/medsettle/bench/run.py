"""``medsettle bench load``: the run itself, on Locust as a library (its master/worker mode for ``--workers``).

The driver's process imports Locust (and so gevent's monkeypatching) here, first; the centre it measures is
another process (the embedded one a ``medsettle serve`` subprocess), never patched. The run: the open-file
limit raised, the centre found or started, its credentials and persons read, the counters assigned to
institutions and persons, the configuration handed to every process that runs counters, a live line each
second while the counters work, then the figures gathered (:func:`result`) for :mod:`.report` to write.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]
from locust import events  # Locust patches the process with gevent here (the modules above are whole: patched too)
from locust.env import Environment

from .. import credentials as creds
from . import locustfile
from .centre import EmbeddedCentre, institutions_toml, raise_open_files
from .figures import merge, percentile
from .mix import Mix, load_mix
from .plugins import load_flows

CPU_SATURATED = 0.9  # ok-float: a driver process busier than this share of a core makes the run invalid
CODES_PER_REGION = 60
PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999))  # ok-float: shares


class LoadError(ValueError):
    """A load run that cannot start as asked; the message names the option."""


@dataclass
class LoadOptions:
    """What ``bench load`` was asked (see its --help)."""

    counters: int = 100
    duration: float = 60.0  # ok-float: seconds
    rate: float | None = 200.0  # ok-float: bills a second; None: closed loop
    arrivals: str = "poisson"
    centre: str | None = None
    credentials_file: str | None = None
    persons_file: str | None = None
    mix_file: str | None = None
    flows_files: Sequence[str] = ()
    workers: int = 0
    remote_workers: int = 0
    master_bind: str = "127.0.0.1"
    master_port: int = 5557
    drain: float = 10.0  # ok-float: seconds the counters may take after the run to finish bills already due
    seed: int = 0
    notes: list[str] = field(default_factory=list)


def check_centre_url(url: str) -> str:
    """The centre's URL, normalised with a trailing slash; LoadError naming --centre if it is not http(s)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise LoadError(f"--centre {url}: give the centre's URL, such as http://127.0.0.1:8901/")
    return url if url.endswith("/") else url + "/"


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine's loopback interface."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _persons(persons_file: str | None) -> tuple[dict[str, list[list[str]]], Any]:
    """Per insured region, the persons as [psn_no, ID number], from the population the centre serves (the
    default generated one, or the persons file), and the policy."""
    from ..centre.registry import Registry  # noqa: PLC0415
    from ..engine import Population  # noqa: PLC0415
    from ..policy import load_default_policy  # noqa: PLC0415

    policy = load_default_policy()
    population = (
        Population.from_csv(policy, persons_file) if persons_file else Population.generate(policy, 10_000, seed=0)
    )
    registry = Registry.generate(population)
    by_region: dict[str, list[list[str]]] = {}
    for i, psn in enumerate(population.psn_nos):
        region = population.region_codes[population.attrs[i]["region"]]
        by_region.setdefault(region, []).append([psn, registry.identities[psn].certno])
    return by_region, policy


def _institutions(found: creds.Credentials, regions: Sequence[str]) -> dict[str, list[dict[str, str]]]:
    """The centre's institutions by place, from its credentials: codes P<admdvs>... are pharmacies, H<admdvs>...
    hospitals (the default institutions' names, docs/messages.md 'Institutions'), in regions with persons."""
    out: dict[str, list[dict[str, str]]] = {"pharmacy": [], "hospital": []}
    for code in sorted(found.institutions):
        place = {"P": "pharmacy", "H": "hospital"}.get(code[:1])
        if place and code[1:7] in regions:
            cred = found.institutions[code]
            out[place].append({"code": code, "region": code[1:7], "paasid": cred.paasid, "passtoken": cred.passtoken})
    return out


def make_config(
    options: LoadOptions, mix: Mix, url: str, found: creds.Credentials, persons: tuple[dict[str, list[list[str]]], Any]
) -> dict[str, Any]:
    """The run's configuration, as every process running counters receives it (plain data)."""
    by_region, policy = persons
    institutions = _institutions(found, sorted(by_region))
    split = mix.counters(options.counters)
    for place in split:
        if not institutions[place]:
            raise LoadError(f"--mix: the centre's credentials name no {place} in a region of the persons")
    order = [(p, r) for p in ("pharmacy", "hospital") for r in range(split.get(p, 0))]
    placed = [(p, r % len(institutions[p])) for p, r in order]
    regions = [institutions[p][i]["region"] for p, i in placed]
    assignment = []
    for g, ((where, chosen), region) in enumerate(zip(placed, regions, strict=True)):
        assignment.append([where, chosen, regions[:g].count(region), regions.count(region)])
    codes = {}
    for region in by_region:
        items = policy.region(region).catalogues[0].items
        codes[region] = [i.med_list_codg for i in items if i.chrgitm_lv == "01"][:CODES_PER_REGION]
    counter_rate = {}
    if options.rate is not None:
        counter_rate = {p: options.rate * mix.place_share(p) / n for p, n in split.items()}
    return {
        "centre": url,
        "run": _run_tag(),
        "started": 0.0,  # set when the counters are spawned
        "duration": options.duration,
        "rate": options.rate,
        "arrivals": options.arrivals,
        "counter_rate": counter_rate,
        "processes": max(1, options.workers + options.remote_workers),
        "split": split,
        "assignment": assignment,
        "institutions": institutions,
        "persons": by_region,
        "codes": codes,
        "mix": dict(mix.shares),
        "mix_at": {p: mix.at(p) for p in split},
    }


def _run_tag() -> str:
    """Six base-36 digits of the run's start in tenths of a second (they wrap every 25 days): the centre keeps
    msgids for idempotency, so a later run against the same journal must not reuse an earlier run's."""
    n, digits = int(time.time() * 10) % 36**6, ""
    for _ in range(6):
        n, d = divmod(n, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[d] + digits
    return digits


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def run_load(options: LoadOptions, say: Callable[[str], None]) -> dict[str, Any]:
    """Run the load as ``options`` ask, saying what it does (and the live line) through ``say``; the result."""
    load_flows(options.flows_files)
    mix = load_mix(options.mix_file)
    limit = raise_open_files()
    if limit:
        before, after = limit
        say(f"open files: soft limit {after}" + (f" (raised from {before})" if after != before else ""))
        if after < options.counters + 100:
            say(
                f"WARNING: the open-file limit {after} is below --counters {options.counters} + 100: "
                "raise the hard limit (ulimit -Hn)"
            )
    embedded: EmbeddedCentre | None = None
    credentials_path: str | None
    workdir = tempfile.TemporaryDirectory(prefix="medsettle-load-")
    try:
        if options.centre is None:
            from ..policy import load_default_policy  # noqa: PLC0415

            regions = [r.admdvs for r in load_default_policy().regions]
            more = institutions_toml(regions, options.counters)
            embedded = EmbeddedCentre(Path(workdir.name) / "centre", options.persons_file, more)
            if more:
                count = more.count("[[institution]]")
                say(f"the embedded centre gets {count} institutions for {options.counters} counters")
            say("starting the embedded centre (medsettle serve --port 0) ...")
            embedded.launch()
            persons = _persons(options.persons_file)  # the same persons the centre is building meanwhile
            embedded.wait()
            url, credentials_path = embedded.url, str(embedded.credentials_file)
            say(f"embedded centre: {url} (pid {embedded.pid})")
            cap = embedded.max_connections
            if cap is not None and cap < options.counters:
                say(
                    f"WARNING: the centre takes at most {cap} connections (serve --max-connections, by default 80% "
                    f"of its open-file limit), fewer than --counters {options.counters}: some counters will be refused"
                )
        else:
            url, credentials_path = check_centre_url(options.centre), options.credentials_file
            persons = _persons(options.persons_file)
            if not is_loopback(url):
                say(f"note: the load goes to {url}, outside this machine, as --centre asked")
        found = creds.load(credentials_path)
        config = make_config(options, mix, url, found, persons)
        return _drive(options, config, say, embedded)
    finally:
        if embedded is not None:
            embedded.stop()
        workdir.cleanup()


class _NoSpawnRateWarning(logging.Filter):
    """Locust warns of a spawn rate above 100 a worker; the counters all start at once on purpose (they then
    wait for the run's start), so the warning would only worry the reader."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "spawn rate is very high" not in record.getMessage()


def _drive(
    options: LoadOptions, config: dict[str, Any], say: Callable[[str], None], embedded: EmbeddedCentre | None
) -> dict[str, Any]:
    logging.getLogger("locust.runners").addFilter(_NoSpawnRateWarning())
    env = Environment(user_classes=[locustfile.Counter], events=events)
    distributed = options.workers + options.remote_workers > 0
    workers: list[subprocess.Popen[bytes]] = []
    n = options.counters
    if distributed:
        port = options.master_port or _free_port(options.master_bind)
        runner: Any = env.create_master_runner(master_bind_host=options.master_bind, master_bind_port=port)
        latest: dict[str, dict[str, Any]] = {}
        env.events.worker_report.add_listener(
            lambda client_id, data: latest.__setitem__(client_id, data["medsettle"]) if "medsettle" in data else None
        )
        master_host = "127.0.0.1" if options.master_bind in ("127.0.0.1", "*", "0.0.0.0") else options.master_bind
        for _ in range(options.workers):
            args = [
                sys.executable,
                "-m",
                "medsettle.bench.worker",
                "--master-host",
                master_host,
                "--master-port",
                str(port),
            ]
            for f in options.flows_files:
                args += ["--flows", f]
            workers.append(subprocess.Popen(args, stdin=subprocess.DEVNULL))
        want = options.workers + options.remote_workers
        if options.remote_workers:
            say(f"waiting for {options.remote_workers} remote worker(s) on {options.master_bind}:{port} ...")
        deadline = time.monotonic() + (60 if not options.remote_workers else 600)
        while len(runner.clients.ready) < want:
            if time.monotonic() > deadline:
                raise LoadError(f"--workers: {len(runner.clients.ready)} of {want} workers connected")
            gevent.sleep(0.1)
        snapshot: Callable[[], dict[str, Any]] = lambda: merge(latest.values())  # noqa: E731
    else:
        runner = env.create_local_runner()
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    lead = 1.5 + n / 500  # the counters sign in before the first bill is due
    config["started"] = time.time() + lead
    if distributed:
        runner.send_message(locustfile.CONFIG_MESSAGE, config)
    else:
        local = locustfile.configure(config)
        snapshot = lambda: merge([local.snapshot()])  # noqa: E731
    mode = "closed loop" if options.rate is None else f"open loop, {options.rate:g} bills/s ({options.arrivals})"
    say(
        f"{n} counters, {mode}, {options.duration:g} s against {config['centre']}"
        + (f", {options.workers + options.remote_workers} workers" if distributed else "")
    )
    runner.start(n, spawn_rate=max(n, 1) * 4)
    started, end = config["started"], config["started"] + options.duration
    last = 0
    while time.time() < end:
        gevent.sleep(1.0)
        now = time.time()
        if now < started:
            continue
        merged = snapshot()
        complete = int(now - started) - (2 if distributed else 1)  # the last second all reports have covered
        for second in range(last, complete + 1):
            say(_live_line(merged, second))
        last = max(last, complete + 1)
    drain_until = time.time() + options.drain
    while time.time() < drain_until and snapshot()["finished"] < n:
        gevent.sleep(0.2)
    finished = snapshot()["finished"]
    if distributed:
        runner.stop()  # a worker told to stop sends its last report
        gevent.sleep(1.5)
    merged = snapshot()
    for second in range(last, int(options.duration)):  # the seconds whose reports came after the run
        say(_live_line(merged, second))
    runner.quit()
    if distributed:
        for w in workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.wait(timeout=15)
            if w.poll() is None:
                w.kill()
        gevent.sleep(0.5)
    return result(options, config, env.stats, snapshot(), finished, embedded)


def _live_line(merged: dict[str, Any], second: int) -> str:
    """One second of the run: answers, errors and p99 latency in it, and the bills done so far."""
    row = merged["seconds"].get(second, [0, 0, {}])
    p99 = percentile(row[2], 0.99)
    shown = f"{p99} ms" if p99 is not None else "-"
    return (
        f"[{second + 1:5d} s] {row[0]:6d} answers/s  {row[1]:4d} errors  p99 {shown:>8}  "
        f"bills done {merged['bills']:,}  identity failures {merged['identity_failures']}"
    )


def result(
    options: LoadOptions,
    config: dict[str, Any],
    stats: Any,
    merged: dict[str, Any],
    finished: int,
    embedded: EmbeddedCentre | None,
) -> dict[str, Any]:
    """The run's figures as the report writes them (plain data; docs/load.md 'The report')."""
    transactions = {}
    for (name, _method), entry in sorted(stats.entries.items()):
        if not entry.num_requests:
            continue
        row = {"requests": entry.num_requests, "failures": entry.num_failures}
        for label, share in PERCENTILES:
            row[f"{label}_ms"] = entry.get_response_time_percentile(share)
        row["max_ms"] = round(entry.max_response_time, 1)
        row["per_second"] = round(entry.num_requests / options.duration, 1)
        transactions[name] = row
    total = stats.total
    all_row = {"requests": total.num_requests, "failures": total.num_failures}
    for label, share in PERCENTILES:
        all_row[f"{label}_ms"] = total.get_response_time_percentile(share) if total.num_requests else None
    all_row["max_ms"] = round(total.max_response_time, 1) if total.num_requests else None
    all_row["per_second"] = round(total.num_requests / options.duration, 1)
    lag = merged["lag"]
    cpu = merged["cpu_shares"]
    invalid = (
        [f"a driver process used {max(cpu):.0%} of a core (more than {CPU_SATURATED:.0%})"]
        if cpu and max(cpu) > CPU_SATURATED
        else []
    )
    if finished < options.counters:
        invalid.append(
            f"{options.counters - finished} counters had not finished the bills due {options.drain:g} s after the run "
            "(the centre fell behind; those bills' latencies are missing: give --drain more)"
        )
    seconds = [
        {
            "second": s,
            "answers": a,
            "errors": e,
            **{f"{label}_ms": percentile(h, share) for label, share in PERCENTILES},
            "max_ms": max(h) if h else None,
        }
        for s, (a, e, h) in sorted(merged["seconds"].items())
        if 0 <= s < options.duration + options.drain
    ]
    return {
        "medsettle_load": 1,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "parameters": {
            "counters": options.counters,
            "duration_s": options.duration,
            "loop": "closed" if options.rate is None else "open",
            "rate_per_s": options.rate,
            "arrivals": options.arrivals if options.rate is not None else None,
            "centre": "embedded" if embedded else config["centre"],
            "workers": options.workers + options.remote_workers,
            "mix": {name: round(share, 4) for name, share in config["mix"].items()},
            "split": config["split"],
        },
        "throughput": {
            "bills_per_s": round(merged["bills"] / options.duration, 1),
            "answers_per_s": round(total.num_requests / options.duration, 1),
            "bills": merged["bills"],
            "bills_failed": merged["bills_failed"],
            "bills_scheduled": merged["scheduled"],
        },
        "latency_ms": {"all": all_row, **transactions},
        "errors": dict(sorted(merged["errors"].items(), key=lambda kv: -kv[1])),
        "answers_checked": {
            "settlements": merged["checked"],
            "identity_failures": merged["identity_failures"],
            "examples": merged["examples"],
        },
        "driver": {
            "lag_p50_ms": percentile(lag, 0.5),
            "lag_p99_ms": percentile(lag, 0.99),
            "lag_max_ms": max(lag) if lag else None,
            "cpu_share_max": round(max(cpu), 3) if cpu else None,
            "processes": len(cpu),
        },
        "valid": not invalid,
        "invalid_because": invalid,
        "seconds": seconds,
    }
