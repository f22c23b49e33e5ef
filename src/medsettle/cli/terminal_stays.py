"""``medsettle terminal admit|stay-fees|settle-stay|defer-stay|cancel-stay-settlement|discharge``: an inpatient
stay, from admission through its fee uploads and settlements to discharge."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ._terminal_common import _emit, _errors, _items, _Session, _with_counter
from ._terminal_identity import _identified, _identity_options

if TYPE_CHECKING:  # the counter is imported when a command runs, never for --help
    from ..terminal import Counter


@click.command("admit")
@click.option("--diagnosis", default="K35.900", show_default=True)
@_identity_options
@click.pass_obj
@_errors
def admit(session: _Session, diagnosis: str, card: bool, pin: str | None, qr: str | None, certno: str | None) -> None:
    """Admit a patient (2401); prints the stay's id."""
    if not (card or qr or certno):
        raise click.ClickException("identify the patient: --card, --qr or --certno")
    counter, identity = _identified(session, card, pin, qr, certno)
    if identity is None:
        raise click.ClickException("the patient could not be identified: try --qr or --certno")
    _emit({"stay": counter.admit(identity, diagnosis=diagnosis)})


@click.command("stay-fees")
@click.argument("stay")
@click.argument("items", nargs=-1, required=True)
@click.pass_obj
@_errors
def stay_fees(session: _Session, stay: str, items: tuple[str, ...]) -> None:
    """Upload fee lines of a stay (2301): ITEMS as CODE:PRICE:COUNT."""
    lines = _items(items)  # checked before the counter is opened
    _emit(session.counter().stay_fees(stay, lines))


@click.command("settle-stay")
@click.argument("stay")
@click.option("--final", is_flag=True, help="The final settlement, after discharge (else mid-stay).")
@_errors
@_with_counter
def settle_stay(counter: Counter, stay: str, final: bool) -> None:
    """Settle a stay's uploaded lines (2304), mid-stay or final."""
    receipt = counter.settle_stay(stay, final=final)
    click.echo(receipt.text(), err=True)
    _emit(receipt)


@click.command("defer-stay")
@click.argument("stay")
@_errors
@_with_counter
def defer_stay(counter: Counter, stay: str) -> None:
    """The final settlement got no answer and the patient leaves: 2601 and a cash voucher."""
    receipt = counter.defer_stay(stay)
    click.echo(receipt.text(), err=True)
    _emit(receipt)


@click.command("cancel-stay-settlement")
@click.argument("stay")
@click.argument("setl_id")
@_errors
@_with_counter
def cancel_stay_settlement(counter: Counter, stay: str, setl_id: str) -> None:
    """Cancel one settlement of a stay (2305)."""
    _emit(counter.cancel_stay_settlement(stay, setl_id))


@click.command("discharge")
@click.argument("stay")
@_errors
@_with_counter
def discharge(counter: Counter, stay: str) -> None:
    """Discharge the patient of a stay (2402)."""
    counter.discharge(stay)
    _emit({"stay": stay, "discharged": True})


COMMANDS = (admit, stay_fees, settle_stay, defer_stay, cancel_stay_settlement, discharge)
