"""``medsettle terminal``: a pharmacy or outpatient counter, in a shell (``shell``) or one action per command for POS
integration (every action prints JSON). Each command first finishes what a crash or an outage left
(resends unanswered messages unchanged, prints receipts not printed).

The counter (its journal, and that resume) is opened only when a command runs, never for ``--help``: help
needs no option and writes nothing. A mistake at the counter (a malformed item, an unknown sale, a refusal
by the centre) is one ``Error:`` line; the shell prints it and prompts again."""

from __future__ import annotations

import functools
import json
import shlex
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import click

from ._errors import fail_cleanly

if TYPE_CHECKING:  # the counter and the reader are imported when a command runs, never for --help
    from ..readers.pcsc import PcscReader
    from ..terminal import Counter, Identity, Receipt

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


def _items(specs: tuple[str, ...]) -> list[dict[str, str]]:
    """ITEMS as CODE:PRICE:COUNT, checked here (code, price and count) before the counter is even opened."""
    from ..errors import MedsettleError  # noqa: PLC0415
    from ..terminal.counter import check_items  # noqa: PLC0415

    items = []
    for i, spec in enumerate(specs):
        parts = spec.split(":")
        if len(parts) != 3:
            raise click.ClickException(
                f"item {i + 1}: expected CODE:PRICE:COUNT (e.g. XJ48CB002A2760101:12.50:2), got {spec!r}"
            )
        items.append({"med_list_codg": parts[0], "pric": parts[1], "cnt": parts[2]})
    try:
        check_items(items)
    except MedsettleError as error:
        raise click.ClickException(f"{error} (ITEMS are CODE:PRICE:COUNT, the price in yuan)") from None
    return items


class _Session:
    """The ``terminal`` group's options, and the counter opened from them when a command first needs it:
    its journal is created, and what a crash left is finished, only then (never for --help)."""

    def __init__(
        self,
        code: str | None,
        centre_url: str,
        reader_name: str | None,
        journal_path: str | None,
        resend_for: float,
        timeout: float,
    ) -> None:
        self.code, self.centre_url, self.reader_name = code, centre_url, reader_name
        self.journal_path = (
            Path(journal_path) if journal_path else (Path("medsettle-data") / f"terminal-{code}.db" if code else None)
        )
        self.resend_for, self.timeout = resend_for, timeout
        self.reader: PcscReader | None = None
        self._counter: Counter | None = None

    def counter(self, *, card: bool = False) -> Counter:
        """The counter, opened (and resumed) on first use; with ``card``, with a reader (found first, so
        that a missing reader changes nothing)."""
        if card and self.reader is None:
            self.reader = _open_reader(self.reader_name)
        if self._counter is None:
            self._counter = self._open()
        if card and self._counter.reader is None:
            self._counter.reader = self.reader
        return self._counter

    def _open(self) -> Counter:
        from ..terminal import CentreClient, Counter, CounterStore  # noqa: PLC0415

        if not self.code:
            raise click.ClickException(
                "missing option --institution / -i: give the institution's code before the "
                "command, e.g. medsettle terminal -i P13010000001 signin"
            )
        if self.journal_path is None:  # never: without --journal it is named after the code, given by now
            raise click.ClickException("missing option --journal: give the terminal's journal FILE")
        _check_centre_url(self.centre_url)
        try:
            journal = CounterStore(self.journal_path)
        except (OSError, sqlite3.Error) as error:
            raise click.ClickException(
                f"cannot open the terminal journal {self.journal_path}: {error} (give a writable --journal FILE)"
            ) from None
        counter = Counter(
            self.code,
            journal,
            CentreClient(self.centre_url, timeout=self.timeout),
            reader=self.reader,
            resend_for=self.resend_for,
        )
        resumed = counter.resume()
        if any(resumed.values()):
            click.echo(f"resumed: {json.dumps(resumed)}", err=True)
        return counter

    def close(self) -> None:
        if self._counter is not None:
            self._counter.journal.close()
        if self.reader is not None:
            self.reader.close()


def _check_centre_url(url: str) -> None:
    """--centre is an http(s) URL with a host: a typo is said at once, not after the resends give up."""
    from urllib.parse import urlsplit  # noqa: PLC0415

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or out of range
    except ValueError as error:
        raise click.ClickException(
            f"--centre {url!r} is not a URL ({error}): give e.g. http://127.0.0.1:8901/"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.ClickException(f"--centre {url!r} is not an http URL: give e.g. http://127.0.0.1:8901/")


def _open_reader(reader_name: str | None) -> PcscReader:
    """The card reader: ``reader_name`` (its PSAM in slot 01 of the same reader), or the first reader pcscd
    lists with its PSAM, as ``medsettle card read`` takes them. No pyscard, no pcscd or no reader at all is
    one Error line, before the counter is opened: the counter never had a reader, so there is no sale to
    make a voucher of (a reader that fails during a sale is equipment failure: cash and a voucher)."""
    from ..readers import ReaderError  # noqa: PLC0415

    try:
        from ..readers import PcscReader, first_reader  # noqa: PLC0415 - PyscardMissing without pyscard

        if reader_name:
            name, psam = reader_name, (reader_name[:-3] + " 01" if reader_name.endswith(" 00") else None)
        else:
            name, psam = first_reader()
        return PcscReader(name, psam=psam)
    except ImportError as error:  # PyscardMissing says how to install it
        raise click.ClickException(
            f"--card needs the PC/SC reader driver: {error}; or identify the patient by --certno or --qr"
        ) from None
    except ReaderError as error:
        raise click.ClickException(
            f"--card: no card reader ({error}); give --reader NAME, or identify the patient by --certno or --qr"
        ) from None


def _emit(value: object) -> None:
    """``value`` (a receipt, a dict, a list) as indented JSON on stdout."""
    shown = asdict(value) if is_dataclass(value) and not isinstance(value, type) else value
    click.echo(json.dumps(shown, ensure_ascii=False, indent=2))


@click.group(invoke_without_command=True)
@click.option("--institution", "-i", "code", help="The institution's code (e.g. P13010000001); every command needs it.")
@click.option("--centre", "centre_url", default="http://127.0.0.1:8901/", show_default=True)
@click.option(
    "--reader",
    "reader_name",
    help="The card reader for --card (its PSAM in slot 01 of the same reader; default: the first reader pcscd lists).",
)
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(dir_okay=False),
    help="The terminal's journal (default: medsettle-data/terminal-CODE.db).",
)
@click.option(
    "--resend-for",
    default=3.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds a settle is resent before giving up.",
)
@click.option(
    "--timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to wait for each answer.",
)
@click.pass_context
def terminal(
    ctx: click.Context,
    code: str | None,
    centre_url: str,
    reader_name: str | None,
    journal_path: str | None,
    resend_for: float,
    timeout: float,
) -> None:
    """A counter of institution CODE talking to the centre; without a command, an interactive shell."""
    session = _Session(code, centre_url, reader_name, journal_path, resend_for, timeout)
    ctx.obj = session
    ctx.call_on_close(session.close)
    if ctx.invoked_subcommand is None:
        _shell(ctx)


def _errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Every medsettle error one Error line (fail_cleanly); a refusal for want of a sign-in (the centre
    speaks of its message, 9001) also names the command that signs in."""
    cleanly = fail_cleanly()(fn)

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return cleanly(*args, **kwargs)
        except click.ClickException as error:
            session = click.get_current_context().find_object(_Session)
            if "sign_no" in error.message and session is not None:  # a session: always, under the group
                raise click.ClickException(
                    f"{error.message}; sign in first: medsettle terminal -i {session.code} signin"
                ) from None
            raise

    return wrapper


def _with_counter(fn: Callable[Concatenate[Counter, P], R]) -> Callable[P, R]:
    """Decorator: the command gets the counter, opened (and resumed) only now that the command runs."""

    @click.pass_obj
    @functools.wraps(fn)
    def wrapper(session: _Session, *args: P.args, **kwargs: P.kwargs) -> R:
        return fn(session.counter(), *args, **kwargs)

    return wrapper


@terminal.command("signin")
@_errors
@_with_counter
def signin(counter: Counter) -> None:
    """Sign in (9001) at the start of the day."""
    _emit({"sign_no": counter.sign_in()})


@terminal.command("signout")
@_errors
@_with_counter
def signout(counter: Counter) -> None:
    """Sign out (9002) at the end of the day."""
    counter.sign_out()
    _emit({"signed_out": True})


def _identity_options(fn: F) -> F:
    """--card [--pin], --qr, --certno: how the patient is identified (the card first, if asked)."""
    for option in reversed(
        [
            click.option("--card", is_flag=True, help="Read the card in the reader."),
            click.option("--pin", help="With --card: verify the PIN."),
            click.option("--qr", help="The QR e-voucher token (01)."),
            click.option("--certno", help="The ID card number (02)."),
        ]
    ):
        fn = option(fn)
    return fn


def _identified(
    session: _Session, card: bool, pin: str | None, qr: str | None, certno: str | None
) -> tuple[Counter, Identity | None]:
    """(the counter, the patient's identity): the ID number's form is checked and the reader found before
    the counter is opened, so a typo or a missing reader changes nothing."""
    if pin is not None and not card:
        raise click.ClickException("--pin is the card's PIN: give it with --card")
    if certno is not None:
        certno = _check_certno(certno)
    counter = session.counter(card=card)
    return counter, _identity(counter, card, pin, qr, certno)


def _check_certno(certno: str) -> str:
    """A citizen ID number: 18 characters, 17 digits and a check digit (0-9 or X, ISO 7064 MOD 11-2); a
    lower-case x is taken as X. Returns the number as the centre knows it."""
    from ..centre.registry import id_check_digit  # noqa: PLC0415

    certno = certno.strip().upper()
    if len(certno) != 18 or not certno[:17].isdigit() or certno[17] not in "0123456789X":
        raise click.ClickException(
            f"--certno {certno!r} is not an ID number: 18 characters, 17 digits and a check digit (0-9 or X)"
        )
    if id_check_digit(certno[:17]) != certno[17]:
        raise click.ClickException(f"--certno {certno!r}: the check digit is wrong (mistyped?); check the ID card")
    return certno


def _receipt_or_refusal(action: Callable[[], Receipt]) -> None:
    """Run ``action`` (a sale or a visit) and print its receipt. A refusal by the centre ended the sale: it
    is printed as such (JSON with the centre's err_msg) and the command fails with one Error line."""
    from ..terminal import Refused  # noqa: PLC0415

    try:
        receipt = action()
    except Refused as refused:
        if refused.sale is None:
            raise
        _emit({"sale": refused.sale, "state": "refused", "err_msg": refused.err_msg})
        raise click.ClickException(f"{refused.code}: {refused} (nothing is owed; no voucher)") from None
    click.echo(receipt.text(), err=True)
    _emit(receipt)


# What the patient or the clerk can put right at once: no card inserted, a wrong PIN, a blocked PIN, a card
# that is not genuine. None is an equipment failure, so none makes a voucher.
_CARD_MISTAKES = {
    "NO_CARD": "insert the card and sell again",
    "WRONG_PIN": "sell again with the right --pin",
    "CARD_BLOCKED": "identify the patient by --certno or --qr",
    "CARD_NOT_GENUINE": "do not accept this card: identify the patient by --certno",
}


def _identity(counter: Counter, card: bool, pin: str | None, qr: str | None, certno: str | None) -> Identity | None:
    """The card if asked and readable; else the QR e-voucher or ID number; None when nothing works (the
    equipment failed: cash and a voucher). A card mistake with nothing else to go on is one Error line and
    no sale, since it is not an equipment failure."""
    from ..readers import ReaderError  # noqa: PLC0415
    from ..terminal import Identity  # noqa: PLC0415

    if card:
        try:
            return counter.read_card(pin)
        except ReaderError as error:
            if error.code in _CARD_MISTAKES and not (qr or certno):
                raise click.ClickException(
                    f"{error.code}: {error}; nothing was sold: {_CARD_MISTAKES[error.code]}"
                ) from None
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


@terminal.command("visit")
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


@terminal.command("admit")
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


@terminal.command("stay-fees")
@click.argument("stay")
@click.argument("items", nargs=-1, required=True)
@click.pass_obj
@_errors
def stay_fees(session: _Session, stay: str, items: tuple[str, ...]) -> None:
    """Upload fee lines of a stay (2301): ITEMS as CODE:PRICE:COUNT."""
    lines = _items(items)  # checked before the counter is opened
    _emit(session.counter().stay_fees(stay, lines))


@terminal.command("settle-stay")
@click.argument("stay")
@click.option("--final", is_flag=True, help="The final settlement, after discharge (else mid-stay).")
@_errors
@_with_counter
def settle_stay(counter: Counter, stay: str, final: bool) -> None:
    """Settle a stay's uploaded lines (2304), mid-stay or final."""
    receipt = counter.settle_stay(stay, final=final)
    click.echo(receipt.text(), err=True)
    _emit(receipt)


@terminal.command("defer-stay")
@click.argument("stay")
@_errors
@_with_counter
def defer_stay(counter: Counter, stay: str) -> None:
    """The final settlement got no answer and the patient leaves: 2601 and a cash voucher."""
    receipt = counter.defer_stay(stay)
    click.echo(receipt.text(), err=True)
    _emit(receipt)


@terminal.command("cancel-stay-settlement")
@click.argument("stay")
@click.argument("setl_id")
@_errors
@_with_counter
def cancel_stay_settlement(counter: Counter, stay: str, setl_id: str) -> None:
    """Cancel one settlement of a stay (2305)."""
    _emit(counter.cancel_stay_settlement(stay, setl_id))


@terminal.command("discharge")
@click.argument("stay")
@_errors
@_with_counter
def discharge(counter: Counter, stay: str) -> None:
    """Discharge the patient of a stay (2402)."""
    counter.discharge(stay)
    _emit({"stay": stay, "discharged": True})


@terminal.command("cancel")
@click.argument("sale")
@_errors
@_with_counter
def cancel(counter: Counter, sale: str) -> None:
    """Cancel a settled sale (2103) or visit (2208)."""
    _emit(counter.cancel(sale))


@terminal.command("vouchers")
@_errors
@_with_counter
def vouchers(counter: Counter) -> None:
    """List the deferred-settlement vouchers not yet settled."""
    _emit(counter.pending_vouchers())


@terminal.command("resettle")
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


@terminal.command("reconcile")
@click.option("--day", help="yyyy-mm-dd (default: today).")
@click.option("--detail", is_flag=True, help="Always ask for the detail (3202), even when the totals agree.")
@click.pass_obj
@_errors
def reconcile(session: _Session, day: str | None, detail: bool) -> None:
    """End-of-day reconciliation: 3201 per scheme and insured region, 3202 when totals differ."""
    import datetime as dt  # noqa: PLC0415

    try:
        when = dt.date.fromisoformat(day) if day else None
    except ValueError:
        raise click.ClickException(f"--day {day!r} is not a date: give yyyy-mm-dd, e.g. 2026-03-02") from None
    _emit(session.counter().reconcile(when, detail=detail))


@terminal.command("forward")
@click.option(
    "--rounds",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rounds of forwarding, with back-off between them.",
)
@_errors
@_with_counter
def forward(counter: Counter, rounds: int) -> None:
    """Forward queued provisional settlements (store-and-forward) in order."""
    _emit(counter.forward_until_done(rounds=rounds))


@terminal.command("resume")
@click.option(
    "--wait",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to keep resending unanswered messages.",
)
@_errors
@_with_counter
def resume(counter: Counter, wait: float) -> None:  # ok-float: wait is seconds
    """Finish what a crash or an outage left (also done before every command)."""
    _emit(counter.resume(deadline_s=wait))


@terminal.command("shell")
@click.pass_context
def shell(ctx: click.Context) -> None:
    """An interactive counter: type 'help'."""
    if ctx.parent is None:  # never: shell is a command of the terminal group, whose context holds the session
        raise click.ClickException("the shell runs under the terminal: medsettle terminal -i CODE shell")
    _shell(ctx.parent)


def _shell(ctx: click.Context) -> None:
    """The interactive counter: one command a line, until quit or the end of input. The counter is opened
    (and what a crash left finished) before the first prompt."""
    ctx.obj.counter()
    click.echo(
        f"medsettle counter {ctx.obj.code}: signin, sell ITEMS [--certno N|--qr T|--card], cancel SALE, "
        "vouchers, resettle V [...], reconcile, signout, quit",
        err=True,
    )
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
        try:
            _run_line(ctx, line)
        except click.exceptions.Abort:
            return


def _run_line(ctx: click.Context, line: str) -> None:
    """One line of the shell. Whatever is wrong with it (unbalanced quotes, an unknown command or option, a
    malformed item, an error of the command) is one Error line on stderr, and the shell prompts again."""
    try:
        args = shlex.split(line)
    except ValueError as error:
        click.echo(f"Error: cannot read the line ({error}): check its quotes", err=True)
        return
    command = terminal.get_command(ctx, args[0])
    if command is None or command.name == "shell":
        click.echo(f"Error: unknown command {args[0]!r}: type 'help' for the commands", err=True)
        return
    try:
        command.main(args[1:], prog_name=args[0], obj=ctx.obj, standalone_mode=False)
    except click.ClickException as error:
        click.echo(f"Error: {error.format_message()}", err=True)
    except click.exceptions.Abort:
        raise
    except Exception as error:  # noqa: BLE001 - a fault of one command must not close the clerk's counter
        click.echo(f"Error: {args[0]} failed ({type(error).__name__}: {error}); the counter goes on", err=True)
