"""How a ``terminal`` command identifies the patient: --card [--pin], --qr or --certno, the ID number's form
checked and the reader found before the counter is opened; a card mistake the patient can put right is one
Error line and no sale, an equipment failure is none (cash and a voucher)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ._terminal_common import _Session

if TYPE_CHECKING:  # the counter is imported when a command runs, never for --help
    from ..terminal import Counter, Identity

F = TypeVar("F", bound=Callable[..., Any])


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
