"""``medsettle terminal sell|visit|cancel|vouchers|resettle``: a pharmacy sale or an outpatient visit, its
cancel, and the deferred-settlement vouchers (listed, then settled once the patient is identified)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ._terminal_common import _emit, _errors, _items, _receipt_or_refusal, _Session, _with_counter
from ._terminal_identity import _identified, _identity_options

if TYPE_CHECKING:  # the counter is imported when a command runs, never for --help
    from ..terminal import Counter


@click.command("sell")
@click.argument("items", nargs=-1, required=True)
@_identity_options
@click.option("--no-account", is_flag=True, help="Do not use the personal account.")
@click.pass_obj
@_errors
def sell(
    session: _Session,
    items: tuple[str, ...],
    card: bool,
    pin: str | None,
    qr: str | None,
    certno: str | None,
    no_account: bool,
) -> None:
    """Settle a pharmacy sale of ITEMS (CODE:PRICE:COUNT ...); without identification: cash and a voucher.
    A sale the centre refuses (an unknown person or item) ends refused: nothing owed, no voucher."""
    lines = _items(items)
    counter, identity = _identified(session, card, pin, qr, certno)
    _receipt_or_refusal(lambda: counter.sell(identity, lines, acct_used=not no_account))


@click.command("visit")
@click.argument("items", nargs=-1, required=True)
@click.option("--med-type", default="11", show_default=True, type=click.Choice(["11", "13", "14"]))
@click.option("--diagnosis", default="J06.900", show_default=True, help="ICD-10 code of the diagnosis.")
@_identity_options
@click.option("--no-account", is_flag=True, help="Do not use the personal account.")
@click.pass_obj
@_errors
def visit(
    session: _Session,
    items: tuple[str, ...],
    med_type: str,
    diagnosis: str,
    card: bool,
    pin: str | None,
    qr: str | None,
    certno: str | None,
    no_account: bool,
) -> None:
    """An outpatient visit at a hospital: register, record, upload ITEMS (CODE:PRICE:COUNT ...), settle."""
    lines = _items(items)
    counter, identity = _identified(session, card, pin, qr, certno)
    _receipt_or_refusal(
        lambda: counter.visit(identity, lines, med_type=med_type, acct_used=not no_account, diagnosis=diagnosis)
    )


@click.command("cancel")
@click.argument("sale")
@_errors
@_with_counter
def cancel(counter: Counter, sale: str) -> None:
    """Cancel a settled sale (2103) or visit (2208)."""
    _emit(counter.cancel(sale))


@click.command("vouchers")
@_errors
@_with_counter
def vouchers(counter: Counter) -> None:
    """List the deferred-settlement vouchers not yet settled."""
    _emit(counter.pending_vouchers())


@click.command("resettle")
@click.argument("voucher")
@_identity_options
@click.pass_obj
@_errors
def resettle(session: _Session, voucher: str, card: bool, pin: str | None, qr: str | None, certno: str | None) -> None:
    """Settle a voucher (自费转医保) and print the refund of the insured share."""
    counter, identity = _identified(session, card, pin, qr, certno)
    receipt = counter.settle_voucher(voucher, identity)
    click.echo(receipt.text(), err=True)
    _emit(receipt)


COMMANDS = (sell, visit, cancel, vouchers, resettle)
