"""``medsettle settle``: settle a JSON-lines file of bills in order, one JSON result per bill."""

from __future__ import annotations

import sys

import click

from ..engine import Population, Settler
from ..engine.billsfile import BillsFile, BillsFileError
from ..engine.progress import progress_wanted
from ..engine.settler import EngineName
from ..engine.stream import settle_file
from ._common import ENGINE_CHOICE, policy_from
from ._errors import fail_cleanly


@click.command()
@click.argument("bills_file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), help="Policy TOML (default: shipped).")
@click.option(
    "--persons",
    "persons_file",
    type=click.Path(dir_okay=False),
    required=True,
    help="Persons CSV (see 'medsettle persons generate').",
)
@click.option("--engine", default="auto", type=ENGINE_CHOICE, show_default=True, help="Settlement engine.")
@click.option("--presettle", is_flag=True, help="Compute only (2206): change no state between bills.")
@fail_cleanly(BillsFileError)
def settle(bills_file: str, policy_file: str | None, persons_file: str, engine: EngineName, presettle: bool) -> None:
    """Settle a JSON-lines file of bills (in order) and print one JSON result per bill.

    Each result has the platform's field names: {"bill_id", "infcode": 0, "output": {"setlinfo",
    "setldetail", "feedetail"}} or {"bill_id", "infcode": -1, "err_code", "err_msg"} for a refused bill.
    An invalid bill fails the whole file before anything is settled (error names the line, bill and field).
    BILLS_FILE "-" reads standard input. Progress goes to standard error when it is a terminal.
    """
    policy = policy_from(policy_file)
    population = Population.from_csv(policy, persons_file)
    settler = Settler(policy, population, engine=engine)
    with BillsFile(bills_file, stdin=sys.stdin.buffer if bills_file == "-" else None) as bills:
        # Two passes: every bill is checked before the first is settled (engine/stream.py).
        settle_file(
            settler,
            bills,
            sys.stdout.buffer,
            presettle=presettle,
            progress_to=sys.stderr if progress_wanted(sys.stderr) else None,
        )
