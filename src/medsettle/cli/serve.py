"""``medsettle serve``: the settlement centre on 127.0.0.1.

What it prints on stdout (the journal replayed, the institutions, the URL it listens on) is for the user and
for the scripts that read the URL; its log (to stderr, or ``--log-file``) is for the operator: one line at the
start, one every ``--stats-every`` seconds (requests, refusals and sampled latency), one at a clean stop
(SIGINT or SIGTERM), and one from the centre's core if it fail-stops. Logging is configured here, in the
command, and nowhere in the library.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import signal
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..engine import Population, Settler
from ._common import ENGINE_CHOICE, policy_from
from ._errors import fail_cleanly

if TYPE_CHECKING:
    from ..centre.app import Interval
    from ..centre.gateway import Gateway
    from ..centre.service import Centre
    from ..engine.settler import EngineName
    from ..ledger.gate import Secret
    from ..ledger.journal import GroupCommitJournal
    from ..policy.models import Policy

log = logging.getLogger(__name__)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_LEVELS = ("debug", "info", "warning", "error")
CONNECTIONS = "medsettle.connections"  # the command context's meta key of the connection limits
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


class Duration(click.ParamType):
    """A length of time as a whole number and a unit (``90s``, ``30m``, ``36h``, ``2d``), in seconds."""

    name = "duration"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*(\d{1,9})\s*([smhd])\s*", str(value))
        if match is None or int(match[1]) == 0:
            self.fail(f"{value!r} is not a positive duration such as 90s, 30m, 36h or 2d", param, ctx)
        return int(match[1]) * DURATION_UNITS[match[2]]


def _connection_limits(ctx: click.Context, _param: click.Parameter, value: int | None) -> None:
    """--max-connections: the connection limits (centre/connections.py), resolved as the command line is read
    (so a wrong value, or a wrong MEDSETTLE_*_TIMEOUT, stops the command before any journal is opened), and
    kept in the context's meta for :func:`_serve_forever`."""
    from ..centre.connections import plan  # noqa: PLC0415

    try:
        ctx.meta[CONNECTIONS] = plan(value)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@click.option("--policy", "policy_file", type=click.Path(), help="Policy TOML (default: shipped).")
@click.option(
    "--persons", "persons_file", type=click.Path(), help="Persons CSV (default: 10,000 generated persons, seed 0)."
)
@click.option("--db", "db_url", help="Journal: a SQLite path or postgresql://... (default: DATA_DIR/centre.db).")
@click.option(
    "--data-dir",
    default="medsettle-data",
    show_default=True,
    envvar="MEDSETTLE_DATA_DIR",
    help="Where the embedded journal lives.",
)
@click.option(
    "--institutions",
    "institutions_file",
    type=click.Path(dir_okay=False),
    help="Institutions TOML: code, region, tier, failure policy, floor limits, credentials "
    "(default: 5 generated per region; docs/security.md).",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Check no signature and no agency token (every answer says so). Only for trying things out.",
)
@click.option("--port", default=8901, show_default=True, help="Port on 127.0.0.1 (0: any free port).")
@click.option("--engine", default="auto", type=ENGINE_CHOICE, show_default=True, help="Settlement engine.")
@click.option(
    "--regions",
    help="Insured regions this process owns, comma-separated (default: all). Several "
    "processes may share one PostgreSQL --db, each owning other regions.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    help="Least severe log lines written.",
)
@click.option("--log-file", type=click.Path(dir_okay=False), help="Append the log to this file (default: stderr).")
@click.option(
    "--stats-every",
    default=60,
    show_default=True,
    type=click.IntRange(min=0),
    metavar="SECONDS",
    help="Log the throughput every SECONDS (0: never).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    metavar="N",
    expose_value=False,
    callback=_connection_limits,
    help="Connections open at once; past N a new one is answered HTTP 503 CENTRE_BUSY and closed "
    "(default: 80% of the open-file limit, whose soft value is raised to the hard one).",
)
@click.option(
    "--idempotency-window",
    type=Duration(),
    default="2d",
    show_default=True,
    metavar="DURATION",
    help="How long an answer is held in memory for resends (90s, 30m, 36h, 2d). A resend later is still "
    "answered, from the journal, and a reused msgid still refused; a settlement's answer is never held (it is "
    "made again from its record).",
)
@fail_cleanly()
def serve(
    policy_file: str | None,
    persons_file: str | None,
    db_url: str | None,
    data_dir: str,
    institutions_file: str | None,
    insecure: bool,
    port: int,
    engine: EngineName,
    regions: str | None,
    log_level: str,
    log_file: str | None,
    stats_every: int,
    idempotency_window: int,
) -> None:
    """Run the settlement centre on 127.0.0.1: POST the platform's envelope to / ; GET /schema for schemas.

    Offers sign-in, the pharmacy, outpatient and inpatient flows, 2601, 3201/3202 and 5206 so far. Every answer that
    changes state leaves only after its journal entry is durable; on start the journal is replayed.
    """
    # Everything that can be wrong with the command line is found, and the port bound, before the journal
    # is opened, so a mistake leaves no journal behind.
    _check_port_and_data_dir(port, data_dir, db_url)
    root = logging.getLogger()
    level_before = root.level
    handler = _configure_logging(log_level, log_file)
    try:
        _serve(
            policy_file,
            persons_file,
            db_url,
            data_dir,
            port,
            engine,
            regions,
            stats_every,
            institutions_file,
            insecure,
            idempotency_window,
        )
    finally:  # as it was, for a caller that runs the command in its own process (tests)
        root.removeHandler(handler)
        root.setLevel(level_before)
        handler.close()


def _serve(
    policy_file: str | None,
    persons_file: str | None,
    db_url: str | None,
    data_dir: str,
    port: int,
    engine: EngineName,
    regions: str | None,
    stats_every: int,
    institutions_file: str | None,
    insecure: bool,
    idempotency_window: int,
) -> None:
    """Build the centre (policy, population, the port bound, then the journal replayed) and serve it."""
    from ..centre.institutions import default_institutions, load_institutions  # noqa: PLC0415
    from ..centre.service import Centre  # noqa: PLC0415

    pol = policy_from(policy_file)
    institutions, given = load_institutions(institutions_file, pol) if institutions_file else (None, {})
    owned = [r.strip() for r in regions.split(",") if r.strip()] if regions else None
    _check_regions(pol, owned)
    population = Population.from_csv(pol, persons_file) if persons_file else Population.generate(pol, 10_000, seed=0)
    settler = Settler(pol, population, engine=engine)
    listener = _listen(port)
    try:
        url = db_url or str(Path(data_dir) / "centre.db")
        journal = _open_journal(url)
    except BaseException:
        listener.close()
        raise
    try:
        started = time.perf_counter()
        centre = Centre(
            settler,
            journal,
            institutions or default_institutions(pol),
            regions=owned,
            idempotency_window=idempotency_window,
        )
        replayed = journal.count()
        click.echo(f"journal {url}: {replayed:,} entries replayed in {time.perf_counter() - started:.2f} s")
        click.echo("institutions: " + ", ".join(f"{code} ({i.tier})" for code, i in centre.institutions.items()))
        gateway: Gateway | None = _open_gateway(centre, journal, given, data_dir)  # credentials written either way
        if insecure and gateway is not None:
            gateway.close()
            gateway = None
        where = f"journal {_without_password(url)} ({type(journal).__name__}, {replayed:,} entries)"
        _serve_forever(centre, listener, where=where, regions=owned, stats_every=stats_every, gateway=gateway)
    except KeyboardInterrupt:  # before the server's loop took over SIGINT
        pass
    finally:
        journal.close()
        listener.close()


def _open_gateway(centre: Centre, journal: GroupCommitJournal, given: dict[str, Secret], data_dir: str) -> Gateway:
    """The centre's gateway (its credentials kept in the journal's database), and the clients' copy of the
    credentials written to DATA_DIR/credentials.toml (mode 0600), whose path is printed."""
    from .. import credentials  # noqa: PLC0415
    from ..centre.gateway import open_gateway  # noqa: PLC0415
    from ..errors import MedsettleError  # noqa: PLC0415
    from ..ledger.gate import AGENCY_ROW  # noqa: PLC0415
    from ..ledger.journal import JournalError  # noqa: PLC0415

    def failed(exc: BaseException) -> MedsettleError:  # the nonces are in the journal's database: it failed
        return centre.fail_stop(JournalError(f"{journal.name}: storing a nonce: {exc}"))

    gateway, kept = open_gateway(journal.gate, centre.institutions, given, on_failure=failed)
    path = Path(data_dir).absolute() / credentials.FILE_NAME
    copy = credentials.Credentials(
        {c: credentials.InstitutionCredential(c, s.paasid, s.passtoken) for c, s in kept.items() if c != AGENCY_ROW},
        kept[AGENCY_ROW].passtoken,
    )
    credentials.write(path, copy)
    click.echo(f"credentials: {path} (mode 0600; clients find it with --credentials or {credentials.ENV_VAR})")
    return gateway


def _serve_forever(
    centre: Centre,
    listener: socket.socket,
    *,
    where: str,
    regions: list[str] | None,
    stats_every: int,
    gateway: Gateway | None,
) -> None:
    """Answer on the bound socket until SIGINT or SIGTERM, then finish the requests in flight and return."""
    import asyncio  # noqa: PLC0415

    from aiohttp import web  # noqa: PLC0415

    from ..centre.app import Throughput, make_app, tune_gc_for_serving  # noqa: PLC0415
    from ..centre.connections import open_door, plan  # noqa: PLC0415
    from ..centre.gateway import INSECURE_WARNING  # noqa: PLC0415

    tune_gc_for_serving()
    throughput = Throughput()
    context = click.get_current_context(silent=True)  # the limits --max-connections read (or the defaults)
    limits = context.meta[CONNECTIONS] if context is not None and CONNECTIONS in context.meta else plan(None)

    async def report_every(seconds: int) -> None:
        while True:
            await asyncio.sleep(seconds)
            log.info("throughput: %s", _interval_text(throughput.take()))

    async def run() -> None:
        # No access log: it would cost a log record per request; the throughput line counts them instead.
        app = make_app(centre, gateway=gateway, throughput=throughput)
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=limits.idle_timeout)
        await runner.setup()
        door = await open_door(runner, listener, limits, centre.refusal)  # the cap and the timeouts
        bound = listener.getsockname()[1]  # the real port when 0 was asked for
        if gateway is None:  # before the line scripts wait for, so that none of them misses it
            click.echo(f"WARNING: {INSECURE_WARNING}")
            log.warning("%s", INSECURE_WARNING)
        click.echo(f"medsettle centre listening on http://127.0.0.1:{bound}/ (engine: {centre.settler.engine_name})")
        log.info(
            "started: listening on http://127.0.0.1:%d/, %s, regions %s, engine %s, %s, %d institutions",
            bound,
            where,
            ",".join(regions) if regions else "all",
            centre.settler.engine_name,
            limits.describe(),
            len(centre.institutions),
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows' event loop
                loop.add_signal_handler(signum, stop.set)
        since = time.monotonic()
        reporter = asyncio.create_task(report_every(stats_every)) if stats_every else None
        try:
            await stop.wait()
        finally:
            if reporter is not None:
                reporter.cancel()
            door.close()
            await runner.cleanup()
        log.info(
            "stopped: %d requests answered (%d refused) in %.0f s",
            throughput.requests,
            throughput.refused,
            time.monotonic() - since,
        )

    asyncio.run(run())


def _interval_text(interval: Interval) -> str:
    """One interval of the throughput line: requests, their rate, refusals, and the sampled latency."""
    text = (
        f"{interval.requests} requests in {interval.seconds:.1f} s ({interval.per_second:.1f}/s), "
        f"{interval.refused} refused"
    )
    p50, p99 = interval.percentile(50), interval.percentile(99)
    if p50 is not None and p99 is not None:
        text += f", latency p50 {p50 * 1000:.2f} ms p99 {p99 * 1000:.2f} ms ({len(interval.latencies)} sampled)"
    return text


def _configure_logging(level: str, log_file: str | None) -> logging.Handler:
    """One handler on the root logger (timestamp, level, logger name), to stderr or appended to ``log_file``;
    returned so the command removes it when it ends."""
    try:
        handler: logging.Handler = (
            logging.FileHandler(log_file, encoding="utf-8") if log_file else logging.StreamHandler(sys.stderr)
        )
    except OSError as exc:
        raise click.ClickException(f"--log-file {log_file}: cannot open it: {exc.strerror}") from None
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def _without_password(url: str) -> str:
    """The journal's URL for the log: a PostgreSQL URL's password (in its user part or its query) left out."""
    url = re.sub(r"^(postgres(?:ql)?://[^:/@]*):[^@/]*@", r"\1:***@", url)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", url)


def _check_port_and_data_dir(port: int, data_dir: str, db_url: str | None) -> None:
    if not 0 <= port <= 65535:
        raise click.ClickException(f"--port {port}: a port is 1-65535 (0: any free port)")
    if not db_url and Path(data_dir).exists() and not Path(data_dir).is_dir():
        raise click.ClickException(f"--data-dir {data_dir}: a file, not a directory; name a directory for the journal")


def _check_regions(policy: Policy, owned: list[str] | None) -> None:
    every = [r.admdvs for r in policy.regions]
    unknown = [r for r in owned or [] if r not in every]
    if unknown:
        raise click.ClickException(
            f"--regions {','.join(unknown)}: not a region of the policy (its regions: {', '.join(every)})"
        )


def _listen(port: int) -> socket.socket:
    """A socket listening on 127.0.0.1:``port``, or one Error line saying the port is taken."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp does: restarts reuse the port
    try:
        listener.bind(("127.0.0.1", port))
        listener.listen(1024)
    except OSError as exc:
        listener.close()
        hint = (
            (
                "another program (perhaps another medsettle serve) is using it; stop it or choose another --port "
                "(0: any free port)"
            )
            if exc.errno == errno.EADDRINUSE
            else "choose another --port"
        )
        raise click.ClickException(
            f"--port {port}: cannot listen on 127.0.0.1:{port}: {exc.strerror}; {hint}"
        ) from None
    listener.setblocking(False)
    return listener


def _open_journal(url: str) -> GroupCommitJournal:
    """The journal at ``url``, or one Error line naming it and why it cannot be opened."""
    import sqlite3  # noqa: PLC0415

    from ..ledger import open_journal  # noqa: PLC0415

    try:
        return open_journal(url)
    except (OSError, sqlite3.Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise click.ClickException(f"journal {url}: cannot open it: {reason}; check --data-dir or --db") from None
    except Exception as exc:
        if type(exc).__module__.startswith("psycopg"):
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise click.ClickException(f"--db {url}: cannot connect: {first_line}") from None
        raise
