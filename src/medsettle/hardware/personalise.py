"""Personalise a virtual card from the centre's records (the registry's person and card), as the issuing
bureau prints and writes one. The centre's record of the card's state stays authoritative: a card
cancelled or reported lost at the centre still reads at the counter, and is refused by the centre."""

from __future__ import annotations

import datetime as dt

from ..centre.registry import Registry
from ..errors import InvalidInput
from .card import CardProfile

VALID_YEARS = 10


def issue_date_of(card_sn: str) -> dt.date:
    """A deterministic issue date (the registry does not keep one): spread over 2019-2024 by serial."""
    serial = int(card_sn[16:24], 16) if card_sn[16:24].isalnum() else 0
    return dt.date(2019, 1, 1) + dt.timedelta(days=serial * 37 % 2190)


def profile_from_record(record: dict, pin: str = "123456") -> CardProfile:
    """A card profile from a running centre's card record (the admin API's ``card_record``)."""
    issued = issue_date_of(record["card_sn"])
    return CardProfile(
        card_sn=record["card_sn"],
        card_no=record["card_no"],
        certno=record["certno"],
        name=record["psn_name"],
        sex=record["gend"],
        birth_date=dt.date.fromisoformat(record["brdy"]),
        issue_date=issued,
        expiry=issued.replace(year=issued.year + VALID_YEARS),
        birthplace=record["certno"][:6],
        pin=pin,
    )


def profile_for(
    registry: Registry, psn_no: str | None = None, *, card_no: str | None = None, pin: str = "123456"
) -> CardProfile:
    """The card profile of a person's newest card (or of ``card_no``); the first person when neither given."""
    if card_no is None:
        if psn_no is None:
            psn_no = registry.population.psn_nos[0]
        cards = registry.cards_of.get(psn_no)
        if not cards:
            raise InvalidInput(f"no person {psn_no!r} with a card in the registry", field="psn_no")
        card_no = cards[-1]
    card = registry.cards.get(card_no)
    if card is None:
        raise InvalidInput(f"no card {card_no!r}", field="card_no")
    ident = registry.identities[card.psn_no]
    issued = issue_date_of(card.card_sn)
    return CardProfile(
        card_sn=card.card_sn,
        card_no=card.card_no,
        certno=ident.certno,
        name=ident.psn_name,
        sex=ident.gend,
        birth_date=ident.brdy,
        issue_date=issued,
        expiry=issued.replace(year=issued.year + VALID_YEARS),
        birthplace=ident.certno[:6],
        pin=pin,
    )
