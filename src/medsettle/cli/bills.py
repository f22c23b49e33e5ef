"""``medsettle bills generate``: seeded bills for a population, as JSON lines."""

from __future__ import annotations

import sys

import click

from ..engine import Population, Settler
from ..engine.results import dumps
from ..sim import generate_bills
from ._common import at_least, check_days_in_force, open_output, parse_day, policy_from
from ._errors import fail_cleanly


@click.group()
def bills() -> None:
    """Bills: generate a JSON-lines file of bills for a population."""


@bills.command("generate")
@click.option("--persons", "persons_file", type=click.Path(), required=True, help="Persons CSV.")
@click.option("--count", default=1000, show_default=True, help="How many bills.")
@click.option("--seed", default=0, show_default=True)
@click.option("--date", "day", default="2026-03-02", show_default=True, help="First day (yyyy-mm-dd).")
@click.option("--days", default=1, show_default=True, help="Spread the bills over this many days.")
@click.option("--zipf", is_flag=True, help="Draw persons by Zipf (s = 1) instead of uniformly.")
@click.option("--policy", "policy_file", type=click.Path(), help="Policy TOML (default: shipped).")
@click.option(
    "--out",
    "out_file",
    type=click.Path(allow_dash=True),
    default="-",
    show_default=True,
    help="JSON-lines file to write.",
)
@fail_cleanly()
def bills_generate(
    persons_file: str, count: int, seed: int, day: str, days: int, zipf: bool, policy_file: str | None, out_file: str
) -> None:
    """Write seeded bills (1-8 lines, mean 4) for the persons in a persons file."""
    at_least(count, 1, "--count")
    at_least(days, 1, "--days")
    at_least(seed, 0, "--seed")
    start = parse_day(day)
    pol = policy_from(policy_file)
    check_days_in_force(pol, start, days)
    population = Population.from_csv(pol, persons_file)
    settler = Settler(pol, population, engine="reference")  # only for the compiled catalogue
    stream = generate_bills(
        settler.compiled, population, count, seed=seed, start=start, days=days, persons="zipf" if zipf else "uniform"
    )
    out = open_output(out_file)
    try:
        for i in range(count):
            out.write(dumps(stream.bill_dict(i)) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
