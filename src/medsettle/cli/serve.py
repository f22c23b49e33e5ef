"""``medsettle serve``: the settlement centre on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..engine import Population, Settler
from ._common import ENGINE_CHOICE, policy_from
from ._errors import fail_cleanly


@click.command()
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), help="Policy TOML (default: shipped).")
@click.option("--persons", "persons_file", type=click.Path(dir_okay=False),
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
    import asyncio  # noqa: PLC0415

    from aiohttp import web  # noqa: PLC0415

    from ..centre.app import make_app, tune_gc_for_serving  # noqa: PLC0415
    from ..centre.institutions import default_institutions  # noqa: PLC0415
    from ..centre.service import Centre  # noqa: PLC0415
    from ..ledger import open_journal  # noqa: PLC0415

    pol = policy_from(policy_file)
    population = Population.from_csv(pol, persons_file) if persons_file else Population.generate(pol, 10_000, seed=0)
    url = db_url or str(Path(data_dir) / "centre.db")
    journal = open_journal(url)
    settler = Settler(pol, population, engine=engine)
    started = time.perf_counter()
    owned = [r.strip() for r in regions.split(",") if r.strip()] if regions else None
    centre = Centre(settler, journal, default_institutions(pol), regions=owned)
    click.echo(f"journal {url}: {journal.count():,} entries replayed in {time.perf_counter() - started:.2f} s")
    click.echo("institutions: " + ", ".join(f"{code} ({i.tier})" for code, i in centre.institutions.items()))
    tune_gc_for_serving()

    async def run() -> None:
        runner = web.AppRunner(make_app(centre))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # the real port when 0 was asked for
        click.echo(f"medsettle centre listening on http://127.0.0.1:{bound}/ (engine: {settler.engine_name})")
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        journal.close()
