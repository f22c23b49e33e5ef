"""What the ``terminal`` commands share: the group's options as a session that opens the counter when a
command first needs it (never for ``--help``), the check of ITEMS, the errors as one line each, and how
an answer is printed (JSON on stdout, a receipt's text on stderr)."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

import click

from ._errors import fail_cleanly

if TYPE_CHECKING:  # the counter and the reader are imported when a command runs, never for --help
    from ..credentials import InstitutionCredential
    from ..readers.pcsc import PcscReader
    from ..terminal import Counter, Receipt

P = ParamSpec("P")
R = TypeVar("R")


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
        self.credentials_file: str | None = None  # --credentials (None: MEDSETTLE_CREDENTIALS, then the default)
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
        from ..terminal.journal_lock import JournalInUse  # noqa: PLC0415

        if not self.code:
            raise click.ClickException(
                "missing option --institution / -i: give the institution's code before the "
                "command, e.g. medsettle terminal -i P13010000001 signin"
            )
        if self.journal_path is None:  # never: without --journal it is named after the code, given by now
            raise click.ClickException("missing option --journal: give the terminal's journal FILE")
        _check_centre_url(self.centre_url)
        credential = _credential(self.credentials_file, self.code)  # before the journal: a mistake changes nothing
        try:
            journal = CounterStore(self.journal_path)
        except JournalInUse as error:  # another counter process: its message alone, as the issue words it
            raise click.ClickException(str(error)) from None
        except (OSError, sqlite3.Error) as error:
            raise click.ClickException(
                f"cannot open the terminal journal {self.journal_path}: {error} (give a writable --journal FILE)"
            ) from None
        counter = Counter(
            self.code,
            journal,
            CentreClient(self.centre_url, timeout=self.timeout, credential=credential),
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


def _credential(credentials_file: str | None, code: str) -> InstitutionCredential:
    """The institution's credential from the centre's credentials file, or one Error line saying why not."""
    from .. import credentials  # noqa: PLC0415

    try:
        return credentials.load(credentials_file).institution(code)
    except credentials.CredentialsError as error:
        raise click.ClickException(str(error)) from None


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
