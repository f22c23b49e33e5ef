"""``medsettle persons ...``: generate a population file; the registry's events at a running centre."""

from __future__ import annotations

import sys

import click

from ..engine import Population
from ._common import CENTRE_OPTION, at_least, month_option, open_output, policy_from, print_admin
from ._errors import fail_cleanly
from .persons_agency import register_agency_commands


@click.group()
def persons() -> None:
    """Insured persons: generate a population file; enrolment and re-enrolment, units, scheme changes,
    unemployment, contributions, cards, transfers and cancellation at a running centre."""


@persons.command("generate")
@click.option("--count", default=1000, show_default=True, help="How many persons.")
@click.option("--seed", default=0, show_default=True)
@click.option("--policy", "policy_file", type=click.Path(), help="Policy TOML (default: shipped).")
@click.option("--out", "out_file", type=click.Path(), required=True, help="CSV to write.")
@fail_cleanly()
def persons_generate(count: int, seed: int, policy_file: str | None, out_file: str) -> None:
    """Write a seeded population of insured persons across the policy's regions."""
    at_least(count, 1, "--count")
    at_least(seed, 0, "--seed")
    pol = policy_from(policy_file)
    population = Population.generate(pol, count, seed=seed)
    out = open_output(out_file)
    try:
        population.write_csv(out)
    finally:
        if out is not sys.stdout:
            out.close()
    click.echo(f"wrote {count:,} persons to {out_file}", err=True)


@persons.command("card")
@click.argument("card_no")
@click.argument("action", type=click.Choice(["activate", "lost", "cancel"]))
@click.option("--replace", is_flag=True, help="With lost: issue a replacement card.")
@CENTRE_OPTION
def persons_card(card_no: str, action: str, replace: bool, centre_url: str) -> None:
    """Activate a card (as a bank would), report it lost (and replace it), or cancel it."""
    print_admin(centre_url, {"action": "card", "card_no": card_no, "card_action": action, "replace": replace})


@persons.command("credit")
@click.argument("psn_no")
@click.argument("amount")
@click.option(
    "--month", "key", required=True, callback=month_option, help="The month credited (yyyy-mm): each is credited once."
)
@CENTRE_OPTION
def persons_credit(psn_no: str, amount: str, key: str, centre_url: str) -> None:
    """Credit a person's personal account (划入) with AMOUNT yuan for a month."""
    print_admin(centre_url, {"action": "credit", "psn_no": psn_no, "amount": amount, "key": key})


@persons.command("cancel")
@click.argument("psn_no")
@click.option("--reason", required=True, type=click.Choice(["emigration", "household", "transfer_out", "death"]))
@CENTRE_OPTION
def persons_cancel(psn_no: str, reason: str, centre_url: str) -> None:
    """End a person's insurance: every card is cancelled and the person is refused at every counter."""
    print_admin(centre_url, {"action": "cancel_person", "psn_no": psn_no, "reason": reason})


register_agency_commands(persons)
