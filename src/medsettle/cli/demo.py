"""``medsettle demo``: a simulated day at a hospital and a pharmacy (timeline, summary table, a PNG chart), or
with ``--batch`` a generated day of bills settled at once, with fund, account and cash per region."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np

from .. import __version__
from ..engine import Population, Settler, core_problem
from ..engine.bills import BillBatch
from ..engine.columns import COL, REFUSALS
from ..engine.settler import EngineName
from ..money import fen_to_decimal
from ..policy import load_default_policy
from ..policy.codes import MED_TYPES
from ..sim import generate_bills
from ._common import ENGINE_CHOICE, at_least, check_days_in_force, parse_day
from ._errors import fail_cleanly

CHUNK = 50_000  # bills per engine call in long runs, so the progress bar moves
CHART = "medsettle-demo.png"
BATCH_OPTIONS = ("n_persons", "n_bills", "day")  # the batch demo's own: giving one asks for the batch demo


@click.command()
@click.option(
    "--batch",
    is_flag=True,
    help="Settle a generated day of bills at once and print fund, account and cash per region and med type "
    "(the demo before the simulated day; --persons, --bills or --date ask for it too).",
)
@click.option("--persons", "n_persons", default=20_000, show_default=True, help="--batch: insured persons to generate.")
@click.option("--bills", "n_bills", default=100_000, show_default=True, help="--batch: bills in the generated day.")
@click.option("--date", "day", default="2026-03-02", show_default=True, help="--batch: the day's date (yyyy-mm-dd).")
@click.option("--seed", default=0, show_default=True, help="Seed of the day (same seed, same day).")
@click.option(
    "--engine",
    default="auto",
    type=ENGINE_CHOICE,
    show_default=True,
    help="Settlement engine: the Cython core, the pure-Python reference, or the core when built.",
)
@click.option(
    "--chart",
    "chart",
    default=CHART,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Where to write the day's PNG chart (fund, account and cash by hour).",
)
@click.option(
    "--pcsc",
    is_flag=True,
    help="Read the cards through pcscd with vpcd readers (the hardware stack) instead of the virtual backend.",
)
@click.pass_context
@fail_cleanly()
def demo(
    ctx: click.Context,
    batch: bool,
    n_persons: int,
    n_bills: int,
    day: str,
    seed: int,
    engine: EngineName,
    chart: str,
    pcsc: bool,
) -> None:
    """A simulated day at a hospital and a pharmacy: patients by the hour, a centre outage mid-morning
    (store-and-forward at the pharmacy, cash and vouchers at the hospital), a card reader failure in the
    afternoon, repairs, re-settlement, forwarding and a clean reconciliation; prints the timeline and a summary
    table and writes a PNG chart. --batch: settle a generated day of bills and print a summary table."""
    at_least(seed, 0, "--seed")
    given = {p for p in BATCH_OPTIONS if ctx.get_parameter_source(p) is not click.core.ParameterSource.DEFAULT}
    if batch or given:
        for name, option in (("chart", "--chart"), ("pcsc", "--pcsc")):
            if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
                raise click.UsageError(f"{option} is the simulated day's; the batch demo draws no chart")
        _batch(n_persons, n_bills, day, seed, engine)
        return
    _day(seed, engine, Path(chart), pcsc)


def _day(seed: int, engine: EngineName, chart: Path, pcsc: bool) -> None:
    from ..demo import play_day, report  # noqa: PLC0415 - the day's world is built only when it is played
    from ..demo.chart import draw  # noqa: PLC0415

    if not chart.parent.is_dir():  # said before the day is played, not after
        raise click.BadParameter(f"{chart}: no directory {chart.parent}", param_hint="--chart")
    started = time.perf_counter()
    result = play_day(seed, engine=engine, pcsc=pcsc)
    elapsed = time.perf_counter() - started
    problem = core_problem() if result.engine == "reference" else None
    said = f"reference, because {problem}" if problem else result.engine
    click.echo(f"medsettle {__version__}: {report.heading(result, said)}\n")
    for line in report.timeline(result):
        click.echo(line)
    click.echo()
    for line in report.summary(result):
        click.echo(line)
    try:
        draw(result, chart)
    except OSError as error:
        raise click.ClickException(f"--chart {chart}: cannot write it: {error.strerror or error}") from None
    click.echo(f"chart: fund, account and cash by hour, the outage and the reader failure shaded: {chart.resolve()}")
    click.echo(f"\nthe day took {elapsed:.1f} s of real time on the {result.engine} engine")


def _batch(n_persons: int, n_bills: int, day: str, seed: int, engine: EngineName) -> None:
    """Settle a generated day of bills for the default regions and print a summary table."""
    at_least(n_persons, 1, "--persons")
    at_least(n_bills, 1, "--bills")
    start = parse_day(day)
    policy = load_default_policy()
    check_days_in_force(policy, start)
    population = Population.generate(policy, n_persons, seed=seed)
    settler = Settler(policy, population, engine=engine)
    click.echo(
        f"medsettle {__version__}: {n_bills:,} bills of {start} for {n_persons:,} insured persons in "
        f"{', '.join(r.admdvs + ' ' + r.name for r in policy.regions)}; engine: {_engine_said(settler)}"
    )
    stream = generate_bills(settler.compiled, population, n_bills, seed=seed, start=start)
    started = time.perf_counter()
    rows = _settle_in_chunks(settler, stream.batch, label="settling")
    elapsed = time.perf_counter() - started
    _print_summary(rows, stream.batch, population, settler)
    click.echo(
        f"\n{n_bills:,} bills in {elapsed:.2f} s ({n_bills / elapsed:,.0f} bills/s, validation included) "
        f"on the {settler.engine_name} engine"
    )


def _engine_said(settler: Settler) -> str:
    """The engine's name, and why it is not the core when the core is missing (asked for or not)."""
    problem = core_problem() if settler.engine_name == "reference" else None
    return f"reference, because {problem}" if problem else settler.engine_name


def _settle_in_chunks(settler: Settler, batch: BillBatch, *, label: str) -> np.ndarray:
    n = len(batch)
    batch.validate(settler.compiled, len(settler.population))  # the whole day is checked before anything moves
    parts = []
    with click.progressbar(length=n, label=label, file=sys.stderr, show_pos=True) as bar:
        for a in range(0, n, CHUNK):
            b = min(n, a + CHUNK)
            parts.append(settler.run_batch(batch.slice(a, b), validate=False).out)
            bar.update(b - a)
    return np.concatenate(parts) if parts else np.zeros((0, len(COL)), np.int64)


def _print_summary(rows: np.ndarray, batch: BillBatch, population: Population, settler: Settler) -> None:
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
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table, strict=True)]
    line = "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))
    click.echo(line)
    click.echo("-" * len(line))
    for i, t in enumerate(table):
        if i == len(table) - 1:
            click.echo("-" * len(line))
        click.echo("  ".join(str(x).rjust(w) for x, w in zip(t, widths, strict=True)))
    refused = rows[~ok, COL["status"]]
    if len(refused):
        counts = {REFUSALS[int(c)]: int((refused == c).sum()) for c in np.unique(refused)}
        click.echo("refused: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    settled = rows[ok]
    balanced = np.array_equal(
        settled[:, COL["medfee_sumamt"]],
        settled[:, COL["fund_pay_sumamt"]]
        + settled[:, COL["acct_pay"]]
        + settled[:, COL["psn_cash_pay"]]
        + settled[:, COL["hosp_part_amt"]],
    )
    click.echo(f"check: medfee = fund + account + cash + institution on every bill: {'yes' if balanced else 'NO'}")


def _summary_row(region: str, med: str, rows: np.ndarray) -> tuple[str, ...]:
    def total(name: str) -> str:
        return f"{fen_to_decimal(int(rows[:, COL[name]].sum())):,}"

    return (
        region,
        med,
        f"{len(rows):,}",
        total("medfee_sumamt"),
        total("fund_pay_sumamt"),
        total("acct_pay"),
        total("psn_cash_pay"),
        total("hosp_part_amt"),
    )
