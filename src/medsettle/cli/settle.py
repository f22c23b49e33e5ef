"""``medsettle settle``: settle a JSON-lines file of bills in order, one JSON result per bill."""

from __future__ import annotations

import json
import sys
from decimal import Decimal

import click

from ..engine import Population, Settler
from ..engine.results import dumps
from ..errors import MedsettleError
from ._common import ENGINE_CHOICE, policy_from
from ._errors import fail_cleanly


@click.command()
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
    policy = policy_from(policy_file)
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
