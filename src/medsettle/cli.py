"""The ``medsettle`` command. Every subcommand has --help; errors print one clear line and exit 1."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from decimal import Decimal
from pathlib import Path

import click
import numpy as np

from . import __version__
from .cli_errors import fail_cleanly
from .engine import Population, Settler, core_problem
from .engine.columns import COL, REFUSALS
from .engine.results import dumps
from .errors import MedsettleError
from .money import fen_to_decimal
from .policy import default_policy_path, load_default_policy, load_policy
from .policy.codes import MED_TYPES
from .sim import generate_bills

ENGINE_CHOICE = click.Choice(["auto", "core", "reference"])
CHUNK = 50_000  # bills per engine call in long runs, so the progress bar moves


def _policy(path: str | None):
    return load_policy(path) if path else load_default_policy()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="medsettle")
def main() -> None:
    """medsettle: medical-insurance settlement at hospital and pharmacy counters, simulated with real parts."""


# -- demo ---------------------------------------------------------------------------------------

@main.command()
@click.option("--persons", "n_persons", default=20_000, show_default=True, help="Insured persons to generate.")
@click.option("--bills", "n_bills", default=100_000, show_default=True, help="Bills in the simulated day.")
@click.option("--date", "day", default="2026-03-02", show_default=True, help="The day's date (yyyy-mm-dd).")
@click.option("--seed", default=0, show_default=True, help="Seed for persons and bills (same seed, same day).")
@click.option("--engine", default="auto", type=ENGINE_CHOICE, show_default=True,
              help="Settlement engine: the Cython core, the pure-Python reference, or the core when built.")
@fail_cleanly()
def demo(n_persons: int, n_bills: int, day: str, seed: int, engine: str) -> None:
    """Settle a generated day of bills for the default regions and print a summary table."""
    if n_persons < 1 or n_bills < 1:
        raise click.BadParameter("must be at least 1", param_hint="--persons/--bills")
    try:
        start = dt.date.fromisoformat(day)
    except ValueError:
        raise click.BadParameter(f"not a yyyy-mm-dd date: {day!r}", param_hint="--date") from None
    policy = load_default_policy()
    population = Population.generate(policy, n_persons, seed=seed)
    settler = Settler(policy, population, engine=engine)
    click.echo(f"medsettle {__version__}: {n_bills:,} bills of {start} for {n_persons:,} insured persons in "
               f"{', '.join(r.admdvs + ' ' + r.name for r in policy.regions)}; engine: {settler.engine_name}"
               + (f" ({core_problem()})" if settler.engine_name == "reference" else ""))
    stream = generate_bills(settler.compiled, population, n_bills, seed=seed, start=start)
    started = time.perf_counter()
    rows = _settle_in_chunks(settler, stream.batch, label="settling")
    elapsed = time.perf_counter() - started
    _print_summary(rows, stream.batch, population, settler)
    click.echo(f"\n{n_bills:,} bills in {elapsed:.2f} s ({n_bills / elapsed:,.0f} bills/s, validation included) "
               f"on the {settler.engine_name} engine")


def _settle_in_chunks(settler: Settler, batch, *, label: str) -> np.ndarray:
    n = len(batch)
    batch.validate(settler.compiled, len(settler.population))  # the whole day is checked before anything moves
    parts = []
    with click.progressbar(length=n, label=label, file=sys.stderr, show_pos=True) as bar:
        for a in range(0, n, CHUNK):
            b = min(n, a + CHUNK)
            parts.append(settler.run_batch(batch.slice(a, b), validate=False).out)
            bar.update(b - a)
    return np.concatenate(parts) if parts else np.zeros((0, len(COL)), np.int64)


def _print_summary(rows: np.ndarray, batch, population: Population, settler: Settler) -> None:
    ok = rows[:, COL["status"]] == 0
    region = population.attrs["region"][batch.person]
    header = ("insured", "med_type", "bills", "medfee", "fund", "account", "cash", "institution")
    table = []
    for r, code in enumerate(settler.compiled.region_codes):
        for m, med in enumerate(MED_TYPES):
            sel = ok & (region == r) & (batch.med_type == m)
            if sel.any():
                table.append(_summary_row(code, med, rows[sel]))
    table.append(_summary_row("all", "", rows[ok]))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table)]
    line = "  ".join(h.rjust(w) for h, w in zip(header, widths))
    click.echo(line)
    click.echo("-" * len(line))
    for i, t in enumerate(table):
        if i == len(table) - 1:
            click.echo("-" * len(line))
        click.echo("  ".join(str(x).rjust(w) for x, w in zip(t, widths)))
    refused = rows[~ok, COL["status"]]
    if len(refused):
        counts = {REFUSALS[int(c)]: int((refused == c).sum()) for c in np.unique(refused)}
        click.echo("refused: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    settled = rows[ok]
    balanced = np.array_equal(settled[:, COL["medfee_sumamt"]],
                              settled[:, COL["fund_pay_sumamt"]] + settled[:, COL["acct_pay"]]
                              + settled[:, COL["psn_cash_pay"]] + settled[:, COL["hosp_part_amt"]])
    click.echo(f"check: medfee = fund + account + cash + institution on every bill: {'yes' if balanced else 'NO'}")


def _summary_row(region: str, med: str, rows: np.ndarray) -> tuple:
    def total(name: str) -> str:
        return f"{fen_to_decimal(int(rows[:, COL[name]].sum())):,}"
    return (region, med, f"{len(rows):,}", total("medfee_sumamt"), total("fund_pay_sumamt"), total("acct_pay"),
            total("psn_cash_pay"), total("hosp_part_amt"))


# -- settle -------------------------------------------------------------------------------------

@main.command()
@click.argument("bills_file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), help="Policy TOML (default: shipped).")
@click.option("--persons", "persons_file", type=click.Path(dir_okay=False), required=True,
              help="Persons CSV (see 'medsettle persons generate').")
@click.option("--engine", default="auto", type=ENGINE_CHOICE, show_default=True, help="Settlement engine.")
@click.option("--presettle", is_flag=True, help="Compute only (2206): change no state between bills.")
@fail_cleanly()
def settle(bills_file: str, policy_file: str | None, persons_file: str, engine: str, presettle: bool) -> None:
    """Settle a JSON-lines file of bills (in order) and print one JSON result per bill.

    Each result has the platform's field names: {"bill_id", "infcode": 0, "output": {"setlinfo",
    "setldetail", "feedetail"}} or {"bill_id", "infcode": -1, "err_code", "err_msg"} for a refused bill.
    An invalid bill fails the whole file before anything is settled (error names the bill and field).
    """
    policy = _policy(policy_file)
    population = Population.from_csv(policy, persons_file)
    settler = Settler(policy, population, engine=engine)
    bills = _read_jsonl(bills_file)
    for bill, result in zip(bills, settler.settle_many(bills, presettle=presettle)):
        bill_id = bill.get("bill_id", "") if isinstance(bill, dict) else ""
        if isinstance(result, MedsettleError):
            click.echo(dumps({"bill_id": bill_id, "infcode": -1, "err_code": result.code, "err_msg": str(result)}))
        else:
            click.echo(dumps({"bill_id": bill_id, "infcode": 0, "output": result.to_json()}))


def _read_jsonl(path: str) -> list:
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    bills = []
    try:
        for n, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                bills.append(json.loads(line, parse_float=Decimal))
            except json.JSONDecodeError as exc:
                raise click.ClickException(f"{path}: line {n}: not valid JSON: {exc.msg}") from None
    finally:
        if stream is not sys.stdin:
            stream.close()
    return bills


# -- policy -------------------------------------------------------------------------------------

@main.group()
def policy() -> None:
    """Region rules: validate a policy file, find the shipped default."""


@policy.command("check")
@click.argument("policy_file", type=click.Path(dir_okay=False))
@fail_cleanly()
def policy_check(policy_file: str) -> None:
    """Validate a policy file; print what it holds, or the file, field and reason of the first problem."""
    pol = load_policy(policy_file)
    for region in pol.regions:
        items = sum(len(c.items) for c in region.catalogues)
        click.echo(f"{region.admdvs} {region.name}: schemes {', '.join(region.insutypes)}; "
                   f"groups {', '.join(g.name for g in region.groups)}; rule sets "
                   f"{', '.join(f'{rs.version} from {rs.effective_from}' for rs in region.rulesets)}; "
                   f"{len(region.catalogues)} catalogue version(s), {items} items")
    click.echo(f"{policy_file}: ok")


@policy.command("path")
def policy_path() -> None:
    """Print the path of the shipped default policy (copy it to start your own)."""
    click.echo(default_policy_path())


# -- persons and bills (generators) --------------------------------------------------------------

@main.group()
def persons() -> None:
    """Insured persons: generate a population file; enrolment, units, contributions, cards, transfers and
    cancellation at a running centre."""


@persons.command("generate")
@click.option("--count", default=1000, show_default=True, help="How many persons.")
@click.option("--seed", default=0, show_default=True)
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), help="Policy TOML (default: shipped).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), required=True, help="CSV to write.")
@fail_cleanly()
def persons_generate(count: int, seed: int, policy_file: str | None, out_file: str) -> None:
    """Write a seeded population of insured persons across the policy's regions."""
    pol = _policy(policy_file)
    Population.generate(pol, count, seed=seed).to_csv(out_file)
    click.echo(f"wrote {count:,} persons to {out_file}", err=True)


def admin_request(centre_url: str, body: dict) -> dict:
    """POST one admin request to a running centre; its answer, or a ClickException with its error."""
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    req = urllib.request.Request(centre_url.rstrip("/") + "/admin", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        answer = json.loads(exc.read() or b"{}")
    except urllib.error.URLError as exc:
        raise click.ClickException(f"cannot reach the centre at {centre_url}: {exc.reason}") from None
    if not answer.pop("ok", False):
        raise click.ClickException(answer.get("error", "the centre refused"))
    return answer


def _admin(centre_url: str, body: dict) -> None:
    click.echo(json.dumps(admin_request(centre_url, body), ensure_ascii=False))


CENTRE_OPTION = click.option("--centre", "centre_url", default="http://127.0.0.1:8901/", show_default=True,
                             help="The running centre (medsettle serve).")


@persons.command("card")
@click.argument("card_no")
@click.argument("action", type=click.Choice(["activate", "lost", "cancel"]))
@click.option("--replace", is_flag=True, help="With lost: issue a replacement card.")
@CENTRE_OPTION
def persons_card(card_no: str, action: str, replace: bool, centre_url: str) -> None:
    """Activate a card (as a bank would), report it lost (and replace it), or cancel it."""
    _admin(centre_url, {"action": "card", "card_no": card_no, "card_action": action, "replace": replace})


@persons.command("credit")
@click.argument("psn_no")
@click.argument("amount")
@click.option("--month", "key", required=True, help="The month credited (yyyy-mm): each is credited once.")
@CENTRE_OPTION
def persons_credit(psn_no: str, amount: str, key: str, centre_url: str) -> None:
    """Credit a person's personal account (划入) with AMOUNT yuan for a month."""
    _admin(centre_url, {"action": "credit", "psn_no": psn_no, "amount": amount, "key": key})


@persons.command("cancel")
@click.argument("psn_no")
@click.option("--reason", required=True, type=click.Choice(["emigration", "household", "transfer_out", "death"]))
@CENTRE_OPTION
def persons_cancel(psn_no: str, reason: str, centre_url: str) -> None:
    """End a person's insurance: every card is cancelled and the person is refused at every counter."""
    _admin(centre_url, {"action": "cancel_person", "psn_no": psn_no, "reason": reason})


@main.group()
def bills() -> None:
    """Bills: generate a JSON-lines file of bills for a population."""


@bills.command("generate")
@click.option("--persons", "persons_file", type=click.Path(dir_okay=False), required=True, help="Persons CSV.")
@click.option("--count", default=1000, show_default=True, help="How many bills.")
@click.option("--seed", default=0, show_default=True)
@click.option("--date", "day", default="2026-03-02", show_default=True, help="First day (yyyy-mm-dd).")
@click.option("--days", default=1, show_default=True, help="Spread the bills over this many days.")
@click.option("--zipf", is_flag=True, help="Draw persons by Zipf (s = 1) instead of uniformly.")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), help="Policy TOML (default: shipped).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              show_default=True, help="JSON-lines file to write.")
@fail_cleanly()
def bills_generate(persons_file: str, count: int, seed: int, day: str, days: int, zipf: bool,
                   policy_file: str | None, out_file: str) -> None:
    """Write seeded bills (1-8 lines, mean 4) for the persons in a persons file."""
    pol = _policy(policy_file)
    population = Population.from_csv(pol, persons_file)
    settler = Settler(pol, population, engine="reference")  # only for the compiled catalogue
    stream = generate_bills(settler.compiled, population, count, seed=seed, start=dt.date.fromisoformat(day),
                            days=days, persons="zipf" if zipf else "uniform")
    out = sys.stdout if out_file == "-" else Path(out_file).open("w", encoding="utf-8")
    try:
        for i in range(count):
            out.write(dumps(stream.bill_dict(i)) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()


# -- the centre -----------------------------------------------------------------------------------

@main.command()
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

    from .centre.app import make_app, tune_gc_for_serving  # noqa: PLC0415
    from .centre.institutions import default_institutions  # noqa: PLC0415
    from .centre.service import Centre  # noqa: PLC0415
    from .ledger import open_journal  # noqa: PLC0415

    pol = _policy(policy_file)
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


from .cli_hardware import card, hardware  # noqa: E402 - the groups live in their own modules
from .cli_persons import register as _register_person_commands  # noqa: E402
from .cli_terminal import terminal  # noqa: E402

main.add_command(hardware)
main.add_command(card)
main.add_command(terminal)
_register_person_commands(persons)

if __name__ == "__main__":
    main()
