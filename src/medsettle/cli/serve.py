"""``medsettle serve``: the settlement centre on 127.0.0.1."""

from __future__ import annotations

import errno
import socket
import time
from pathlib import Path

import click

from ..engine import Population, Settler
from ._common import ENGINE_CHOICE, policy_from
from ._errors import fail_cleanly


@click.command()
@click.option("--policy", "policy_file", type=click.Path(), help="Policy TOML (default: shipped).")
@click.option("--persons", "persons_file", type=click.Path(),
              help="Persons CSV (default: 10,000 generated persons, seed 0).")
@click.option("--db", "db_url", help="Journal: a SQLite path or postgresql://... (default: DATA_DIR/centre.db).")
@click.option("--data-dir", default="medsettle-data", show_default=True, envvar="MEDSETTLE_DATA_DIR",
              help="Where the embedded journal lives.")
@click.option("--port", default=8901, show_default=True, help="Port on 127.0.0.1 (0: any free port).")
@click.option("--engine", default="auto", type=ENGINE_CHOICE, show_default=True, help="Settlement engine.")
@click.option("--regions", help="Insured regions this process owns, comma-separated (default: all). Several "
              "processes may share one PostgreSQL --db, each owning other regions.")
@fail_cleanly()
def serve(policy_file, persons_file, db_url, data_dir, port, engine, regions) -> None:
    """Run the settlement centre on 127.0.0.1: POST the platform's envelope to / ; GET /schema for schemas.

    Offers sign-in, the pharmacy, outpatient and inpatient flows, 2601, 3201/3202 and 5206 so far. Every answer that
    changes state leaves only after its journal entry is durable; on start the journal is replayed.
    """
    from ..centre.institutions import default_institutions  # noqa: PLC0415
    from ..centre.service import Centre  # noqa: PLC0415

    # Everything that can be wrong with the command line is found, and the port bound, before the journal
    # is opened, so a mistake leaves no journal behind.
    _check_port_and_data_dir(port, data_dir, db_url)
    pol = policy_from(policy_file)
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
        centre = Centre(settler, journal, default_institutions(pol), regions=owned)
        click.echo(f"journal {url}: {journal.count():,} entries replayed in {time.perf_counter() - started:.2f} s")
        click.echo("institutions: " + ", ".join(f"{code} ({i.tier})" for code, i in centre.institutions.items()))
        _serve_forever(centre, listener)
    except KeyboardInterrupt:
        pass
    finally:
        journal.close()
        listener.close()


def _serve_forever(centre, listener: socket.socket) -> None:
    """Answer on the bound socket until interrupted."""
    import asyncio  # noqa: PLC0415

    from aiohttp import web  # noqa: PLC0415

    from ..centre.app import make_app, tune_gc_for_serving  # noqa: PLC0415

    tune_gc_for_serving()

    async def run() -> None:
        runner = web.AppRunner(make_app(centre))
        await runner.setup()
        await web.SockSite(runner, listener).start()
        bound = listener.getsockname()[1]  # the real port when 0 was asked for
        click.echo(f"medsettle centre listening on http://127.0.0.1:{bound}/ (engine: {centre.settler.engine_name})")
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(run())


def _check_port_and_data_dir(port: int, data_dir: str, db_url: str | None) -> None:
    if not 0 <= port <= 65535:
        raise click.ClickException(f"--port {port}: a port is 1-65535 (0: any free port)")
    if not db_url and Path(data_dir).exists() and not Path(data_dir).is_dir():
        raise click.ClickException(f"--data-dir {data_dir}: a file, not a directory; name a directory for the journal")


def _check_regions(policy, owned: list[str] | None) -> None:
    every = [r.admdvs for r in policy.regions]
    unknown = [r for r in owned or [] if r not in every]
    if unknown:
        raise click.ClickException(f"--regions {','.join(unknown)}: not a region of the policy "
                                   f"(its regions: {', '.join(every)})")


def _listen(port: int) -> socket.socket:
    """A socket listening on 127.0.0.1:``port``, or one Error line saying the port is taken."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp does: restarts reuse the port
    try:
        listener.bind(("127.0.0.1", port))
        listener.listen(1024)
    except OSError as exc:
        listener.close()
        hint = ("another program (perhaps another medsettle serve) is using it; stop it or choose another --port "
                "(0: any free port)") if exc.errno == errno.EADDRINUSE else "choose another --port"
        raise click.ClickException(f"--port {port}: cannot listen on 127.0.0.1:{port}: {exc.strerror}; {hint}") \
            from None
    listener.setblocking(False)
    return listener


def _open_journal(url: str):
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
