"""``medsettle terminal``: a pharmacy or outpatient counter, in a shell (``shell``) or one action per command for POS
integration (every action prints JSON). Each command first finishes what a crash or an outage left
(resends unanswered messages unchanged, prints receipts not printed)."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

import click

from ._errors import fail_cleanly


def _items(specs: tuple[str, ...]) -> list[dict]:
    items = []
    for i, spec in enumerate(specs):
        parts = spec.split(":")
        if len(parts) != 3:
            raise click.BadParameter(f"item {i + 1}: expected CODE:PRICE:COUNT, got {spec!r}", param_hint="ITEMS")
        items.append({"med_list_codg": parts[0], "pric": parts[1], "cnt": parts[2]})
    return items


def _emit(value) -> None:
    click.echo(json.dumps(asdict(value) if hasattr(value, "__dataclass_fields__") else value, ensure_ascii=False,
                          indent=2))


@click.group(invoke_without_command=True)
@click.option("--institution", "-i", "code", required=True, help="The institution's code (e.g. P13010000001).")
@click.option("--centre", "centre_url", default="http://127.0.0.1:8901/", show_default=True)
@click.option("--reader", "reader_name", help="The card reader (its PSAM in slot 01 of the same reader).")
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False),
              help="The terminal's journal (default: medsettle-data/terminal-CODE.db).")
@click.option("--resend-for", default=3.0, show_default=True, help="Seconds a settle is resent before giving up.")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for each answer.")
@click.pass_context
def terminal(ctx, code, centre_url, reader_name, journal_path, resend_for, timeout) -> None:
    """A counter of institution CODE talking to the centre; without a command, an interactive shell."""
    from ..terminal import CentreClient, Counter, TerminalJournal  # noqa: PLC0415

    reader = None
    if reader_name:
        from ..readers import PcscReader  # noqa: PLC0415

        reader = PcscReader(reader_name, psam=reader_name[:-3] + " 01" if reader_name.endswith(" 00") else None)
    journal = TerminalJournal(journal_path or Path("medsettle-data") / f"terminal-{code}.db")
    counter = Counter(code, journal, CentreClient(centre_url, timeout=timeout), reader=reader, resend_for=resend_for)
    ctx.obj = counter
    ctx.call_on_close(journal.close)
    resumed = counter.resume()
    if any(resumed.values()):
        click.echo(f"resumed: {json.dumps(resumed)}", err=True)
    if ctx.invoked_subcommand is None:
        _shell(ctx)


_errors = fail_cleanly()


@terminal.command("signin")
@click.pass_obj
@_errors
def signin(counter) -> None:
    """Sign in (9001) at the start of the day."""
    _emit({"sign_no": counter.sign_in()})


@terminal.command("signout")
@click.pass_obj
@_errors
def signout(counter) -> None:
    """Sign out (9002) at the end of the day."""
    counter.sign_out()
    _emit({"signed_out": True})


def _identity_options(fn):
    """--card [--pin], --qr, --certno: how the patient is identified (the card first, if asked)."""
    for option in reversed([
            click.option("--card", is_flag=True, help="Read the card in the reader."),
            click.option("--pin", help="With --card: verify the PIN."),
            click.option("--qr", help="The QR e-voucher token (01)."),
            click.option("--certno", help="The ID card number (02).")]):
        fn = option(fn)
    return fn


def _identity(counter, card: bool, pin, qr, certno):
    """The card if asked and readable; else the QR e-voucher or ID number; None when nothing works."""
    from ..readers import ReaderError  # noqa: PLC0415
    from ..terminal import Identity  # noqa: PLC0415

    if card:
        try:
            return counter.read_card(pin)
        except ReaderError as error:
            click.echo(f"card not usable ({error.code}: {error})", err=True)
    if qr:
        return Identity("01", qr)
    if certno:
        return Identity("02", certno)
    return None


@terminal.command("sell")
@click.argument("items", nargs=-1, required=True)
@_identity_options
@click.option("--no-account", is_flag=True, help="Do not use the personal account.")
@click.pass_obj
@_errors
def sell(counter, items, card, pin, qr, certno, no_account) -> None:
    """Settle a pharmacy sale of ITEMS (CODE:PRICE:COUNT ...); without identification: cash and a voucher."""
    receipt = counter.sell(_identity(counter, card, pin, qr, certno), _items(items), acct_used=not no_account)
    click.echo(receipt.text(), err=True)
    _emit(receipt)


@terminal.command("visit")
@click.argument("items", nargs=-1, required=True)
@click.option("--med-type", default="11", show_default=True, type=click.Choice(["11", "13", "14"]))
@click.option("--diagnosis", default="J06.900", show_default=True, help="ICD-10 code of the diagnosis.")
@_identity_options
@click.option("--no-account", is_flag=True, help="Do not use the personal account.")
@click.pass_obj
@_errors
def visit(counter, items, med_type, diagnosis, card, pin, qr, certno, no_account) -> None:
    """An outpatient visit at a hospital: register, record, upload ITEMS (CODE:PRICE:COUNT ...), settle."""
    receipt = counter.visit(_identity(counter, card, pin, qr, certno), _items(items), med_type=med_type,
                            acct_used=not no_account, diagnosis=diagnosis)
    click.echo(receipt.text(), err=True)
    _emit(receipt)


@terminal.command("admit")
@click.option("--diagnosis", default="K35.900", show_default=True)
@_identity_options
@click.pass_obj
@_errors
def admit(counter, diagnosis, card, pin, qr, certno) -> None:
    """Admit a patient (2401); prints the stay's id."""
    identity = _identity(counter, card, pin, qr, certno)
    if identity is None:
        raise click.UsageError("identify the patient: --card, --qr or --certno")
    _emit({"stay": counter.admit(identity, diagnosis=diagnosis)})


@terminal.command("stay-fees")
@click.argument("stay")
@click.argument("items", nargs=-1, required=True)
@click.pass_obj
@_errors
def stay_fees(counter, stay, items) -> None:
    """Upload fee lines of a stay (2301): ITEMS as CODE:PRICE:COUNT."""
    _emit(counter.stay_fees(stay, _items(items)))


@terminal.command("settle-stay")
@click.argument("stay")
@click.option("--final", is_flag=True, help="The final settlement, after discharge (else mid-stay).")
@click.pass_obj
@_errors
def settle_stay(counter, stay, final) -> None:
    """Settle a stay's uploaded lines (2304), mid-stay or final."""
    receipt = counter.settle_stay(stay, final=final)
    click.echo(receipt.text(), err=True)
    _emit(receipt)


@terminal.command("defer-stay")
@click.argument("stay")
@click.pass_obj
@_errors
def defer_stay(counter, stay) -> None:
    """The final settlement got no answer and the patient leaves: 2601 and a cash voucher."""
    receipt = counter.defer_stay(stay)
    click.echo(receipt.text(), err=True)
    _emit(receipt)


@terminal.command("cancel-stay-settlement")
@click.argument("stay")
@click.argument("setl_id")
@click.pass_obj
@_errors
def cancel_stay_settlement(counter, stay, setl_id) -> None:
    """Cancel one settlement of a stay (2305)."""
    _emit(counter.cancel_stay_settlement(stay, setl_id))


@terminal.command("discharge")
@click.argument("stay")
@click.pass_obj
@_errors
def discharge(counter, stay) -> None:
    """Discharge the patient of a stay (2402)."""
    counter.discharge(stay)
    _emit({"stay": stay, "discharged": True})


@terminal.command("cancel")
@click.argument("sale")
@click.pass_obj
@_errors
def cancel(counter, sale) -> None:
    """Cancel a settled sale (2103) or visit (2208)."""
    _emit(counter.cancel(sale))


@terminal.command("vouchers")
@click.pass_obj
def vouchers(counter) -> None:
    """List the deferred-settlement vouchers not yet settled."""
    _emit(counter.pending_vouchers())


@terminal.command("resettle")
@click.argument("voucher")
@_identity_options
@click.pass_obj
@_errors
def resettle(counter, voucher, card, pin, qr, certno) -> None:
    """Settle a voucher (自费转医保) and print the refund of the insured share."""
    receipt = counter.settle_voucher(voucher, _identity(counter, card, pin, qr, certno))
    click.echo(receipt.text(), err=True)
    _emit(receipt)


@terminal.command("reconcile")
@click.option("--day", help="yyyy-mm-dd (default: today).")
@click.option("--detail", is_flag=True, help="Always ask for the detail (3202), even when the totals agree.")
@click.pass_obj
@_errors
def reconcile(counter, day, detail) -> None:
    """End-of-day reconciliation: 3201 per scheme and insured region, 3202 when totals differ."""
    import datetime as dt  # noqa: PLC0415

    _emit(counter.reconcile(dt.date.fromisoformat(day) if day else None, detail=detail))


@terminal.command("forward")
@click.option("--rounds", default=5, show_default=True, help="Rounds of forwarding, with back-off between them.")
@click.pass_obj
def forward(counter, rounds) -> None:
    """Forward queued provisional settlements (store-and-forward) in order."""
    _emit(counter.forward_until_done(rounds=rounds))


@terminal.command("resume")
@click.option("--wait", default=0.0, show_default=True, help="Seconds to keep resending unanswered messages.")
@click.pass_obj
def resume(counter, wait) -> None:
    """Finish what a crash or an outage left (also done before every command)."""
    _emit(counter.resume(deadline_s=wait))


@terminal.command("shell")
@click.pass_context
def shell(ctx) -> None:
    """An interactive counter: type 'help'."""
    _shell(ctx.parent)


def _shell(ctx) -> None:
    click.echo(f"medsettle counter {ctx.obj.code}: signin, sell ITEMS [--certno N|--qr T|--card], cancel SALE, "
               "vouchers, resettle V [...], reconcile, signout, quit", err=True)
    while True:
        try:
            line = input("counter> ").strip()
        except EOFError:
            return
        if line in ("quit", "exit"):
            return
        if not line:
            continue
        if line == "help":
            click.echo(terminal.get_help(ctx))
            continue
        args = shlex.split(line)
        command = terminal.get_command(ctx, args[0])
        if command is None or command.name == "shell":
            click.echo(f"unknown command {args[0]!r}", err=True)
            continue
        try:
            command.main(args[1:], prog_name=args[0], obj=ctx.obj, standalone_mode=False)
        except click.ClickException as error:
            error.show(sys.stderr)
        except click.exceptions.Abort:
            return
