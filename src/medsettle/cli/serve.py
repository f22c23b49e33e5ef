"""``medsettle serve``: the settlement centre on 127.0.0.1; its options, checked before anything is opened.

What serving takes (the socket, the journal, the gateway and credentials, the server's loop, what it prints
and logs) is in :mod:`._serving`, shared with ``--workers`` (:mod:`.serve_workers`). Logging is configured
here, in the command, and nowhere in the library.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..engine import Population, Settler
from ..seams import SYSTEM_CLOCK, ClockFileError, OffsetClock
from ._common import ENGINE_CHOICE, policy_from
from ._errors import fail_cleanly
from ._serving import (
    CONNECTIONS,
    check_regions,
    gateway_of,
    journal_at,
    listen,
    serve_forever,
    without_password,
    write_credentials,
)

if TYPE_CHECKING:
    from ..centre.gateway import Gateway
    from ..centre.service import Centre
    from ..engine.settler import EngineName
    from ..ledger.gate import Secret
    from ..ledger.journal import GroupCommitJournal
    from ..seams import Clock

log = logging.getLogger(__name__)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_LEVELS = ("debug", "info", "warning", "error")
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
    kept in the context's meta for :func:`serve_forever`."""
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
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    metavar="N",
    help="Worker processes behind the one address, each the one writer of its share of the insured regions, on "
    "one PostgreSQL --db (docs/architecture.md). A SQLite journal has one process.",
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
@click.option(
    "--clock-file",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="Test clock: the centre's wall time is the real one plus the whole seconds PATH holds, read again "
    "whenever PATH changes, so a scenario test moves days on (docs/scenarios.md 'Live mode'). Never for a "
    "real centre.",
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
    workers: int,
    idempotency_window: int,
    clock_file: str | None,
) -> None:
    """Run the settlement centre on 127.0.0.1: POST the platform's envelope to / ; GET /schema for schemas.

    Offers sign-in, the pharmacy, outpatient and inpatient flows, 2601, 3201/3202 and 5206 so far. Every answer that
    changes state leaves only after its journal entry is durable; on start the journal is replayed.
    """
    # Everything that can be wrong with the command line is found, and the port bound, before the journal
    # is opened, so a mistake leaves no journal behind.
    _check_port_and_data_dir(port, data_dir, db_url)
    if workers > 1 and not (db_url or "").startswith(("postgresql://", "postgres://")):
        raise click.ClickException(
            f"--workers {workers}: the workers share one PostgreSQL journal; give --db postgresql://... "
            "(a SQLite journal has one centre process)"
        )
    clock = _clock_of(clock_file)
    root = logging.getLogger()
    level_before = root.level
    handler = _configure_logging(log_level, log_file)
    try:
        if workers > 1:
            from .serve_workers import serve_workers  # noqa: PLC0415

            serve_workers(
                workers,
                policy_file=policy_file,
                persons_file=persons_file,
                db_url=str(db_url),
                data_dir=data_dir,
                port=port,
                engine=engine,
                regions=regions,
                stats_every=stats_every,
                institutions_file=institutions_file,
                insecure=insecure,
                idempotency_window=idempotency_window,
                clock=clock,
            )
            return
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
            clock,
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
    clock: Clock,
) -> None:
    """Build the centre (policy, population, the port bound, then the journal replayed) and serve it."""
    from ..centre.institutions import default_institutions, load_institutions  # noqa: PLC0415
    from ..centre.service import Centre  # noqa: PLC0415

    pol = policy_from(policy_file)
    institutions, given = load_institutions(institutions_file, pol) if institutions_file else (None, {})
    owned = [r.strip() for r in regions.split(",") if r.strip()] if regions else None
    check_regions(pol, owned)
    population = Population.from_csv(pol, persons_file) if persons_file else Population.generate(pol, 10_000, seed=0)
    settler = Settler(pol, population, engine=engine)
    listener = listen(port)
    try:
        url = db_url or str(Path(data_dir) / "centre.db")
        journal = journal_at(url, clock)
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
            clock=clock,
        )
        replayed = journal.count()
        click.echo(f"journal {url}: {replayed:,} entries replayed in {time.perf_counter() - started:.2f} s")
        click.echo("institutions: " + ", ".join(f"{code} ({i.tier})" for code, i in centre.institutions.items()))
        gateway: Gateway | None = _open_gateway(centre, journal, given, data_dir, clock)  # credentials written
        if isinstance(clock, OffsetClock):
            log.warning("the centre's clock is the test clock of --clock-file %s: it is %s", clock.path,
                        f"{clock.now():%Y-%m-%d %H:%M:%S}")  # fmt: skip
        if insecure and gateway is not None:
            gateway.close()
            gateway = None
        where = f"journal {without_password(url)} ({type(journal).__name__}, {replayed:,} entries)"
        serve_forever(centre, listener, where=where, regions=owned, stats_every=stats_every, gateway=gateway)
    except KeyboardInterrupt:  # before the server's loop took over SIGINT
        pass
    finally:
        journal.close()
        listener.close()


def _clock_of(clock_file: str | None) -> Clock:
    """The centre's clock: the real one, or the test clock of ``--clock-file`` (an Error line if it holds no
    offset)."""
    if clock_file is None:
        return SYSTEM_CLOCK
    try:
        return OffsetClock(clock_file)
    except ClockFileError as exc:
        raise click.ClickException(f"--clock-file: {exc}") from None


def _open_gateway(
    centre: Centre, journal: GroupCommitJournal, given: dict[str, Secret], data_dir: str, clock: Clock
) -> Gateway:
    """The centre's gateway (its credentials kept in the journal's database), and the clients' copy of the
    credentials written to DATA_DIR/credentials.toml (mode 0600), whose path is printed."""
    gateway, kept = gateway_of(centre.institutions, journal, given, centre.fail_stop, clock)
    write_credentials(kept, data_dir)
    return gateway


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


def _check_port_and_data_dir(port: int, data_dir: str, db_url: str | None) -> None:
    if not 0 <= port <= 65535:
        raise click.ClickException(f"--port {port}: a port is 1-65535 (0: any free port)")
    if not db_url and Path(data_dir).exists() and not Path(data_dir).is_dir():
        raise click.ClickException(f"--data-dir {data_dir}: a file, not a directory; name a directory for the journal")
