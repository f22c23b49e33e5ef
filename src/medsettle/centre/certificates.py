"""Certificates that prove presence (docs/messages.md 'Certificates'): the one rule for every message that names
a person to settle for or to tell about.

A message that opens an encounter, settles, pre-settles or reads a person (1101, 2101/2102, 2201, 2206/2207,
2401, 2303/2304, 5206) names the person by a certificate the patient shows at the counter:

- 03, the social security card: ``mdtrt_cert_no`` the card number and ``card_sn`` its identification code (read
  from the chip: a number alone can be guessed), of a card in force (not lost, cancelled or still being made);
- 02, the ID card: the person's own 18-digit ID number (``mdtrt_cert_no``, or ``certno``), as the registry has it;
- 01, the QR e-voucher: a token the centre issued for that person, not yet expired.

A message without one, or with a certificate that is unknown, lost or cancelled, is refused whatever its type,
and so is a ``psn_no`` that is not the certificate's person. The messages that continue an encounter (2203
visit, 2204/2301 fee uploads and their cancels, 2402 discharge, 2202/2404/2405) carry no certificate on the
platform (docs/messages.md's table): they rely on the encounter's ``mdtrt_id``, which a 2201/2401 opened with a
certificate, at the same institution, for the same person. The settlements of an encounter (2206/2207,
2303/2304) carry ``mdtrt_cert_type`` and ``mdtrt_cert_no`` on the platform, so they show one again.

A real HIS reads the card once, with its chip, for 1101 (or 2201/2401), and names it by its number alone in the
settlement that follows (the platform's 2207/2102/2304 carry no card_sn; the public adapters send none). So a
03 without card_sn is taken from the institution that presented that card with its card_sn within the last
CARD_READ_HOURS hours (in this process: a restart forgets it, and the HIS reads the card again); from anyone
else, or later, it is CERT_REQUIRED. A guessed card number alone still proves nothing.

A store-and-forward forward (``saf_cash_amt``) or a re-settlement of a voucher (``deferred_voucher_no``) is sent
when the patient may be gone: it carries what the counter captured at the sale, 03 with the card_sn read then
or 02. A QR e-voucher lives five minutes and is never kept for later, so a 01 there is refused; a card lost or
cancelled since the sale is refused like any other (the institution bears a refused forward, docs/failures.md).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..seams import Clock
from .qr import QrVouchers
from .registry import Card, CardRefused, Registry

CERT_TYPES = ("01", "02", "03")
CARD_READ_HOURS = 24  # a card read with its card_sn at an institution stands for its number alone there this long


def _field(data: Any, name: str) -> str:
    """A certificate field of a message's model: declared, or one of the extra keys (card_sn, certno)."""
    value = getattr(data, name, None)
    if value is None:
        value = (getattr(data, "model_extra", None) or {}).get(name)
    return "" if value is None else str(value)


def is_captured(data: Any) -> bool:
    """The message is a forward or a re-settlement: sent when the patient may be gone, with the certificate
    the counter captured at the sale."""
    return getattr(data, "saf_cash_amt", None) is not None or getattr(data, "deferred_voucher_no", None) is not None


def _refused(code: str, message: str, field: str) -> CardRefused:
    """A refusal whose err_msg names the field, as the envelope's other refusals do."""
    return CardRefused(code, f"field {field}: {message}", field=field)


class Certificates:
    """Resolves the certificate a message carries to the person it names, or refuses it (CardRefused)."""

    def __init__(self, registry: Registry, qr: QrVouchers, clock: Clock) -> None:
        self._registry = registry
        self._qr = qr
        self._clock = clock

    def person_of(
        self, data: Any, *, where: str = "input.data", institution: str | None = None
    ) -> tuple[str, Card | None]:
        """The psn_no the certificate in ``data`` names (and the card, for 03). ``where`` is the path of
        ``data`` in the request, for the refusal's field; ``institution`` the sender's fixmedins_code (a 03
        without card_sn is taken from the institution that read the card lately)."""
        cert_type = _field(data, "mdtrt_cert_type")
        cert_no = _field(data, "mdtrt_cert_no")
        if cert_type not in CERT_TYPES:
            raise _refused(
                "CERT_REQUIRED",
                "name the person by a certificate: mdtrt_cert_type 03 (card number with card_sn), "
                "02 (ID number) or 01 (QR e-voucher)",
                field=f"{where}.mdtrt_cert_type",
            )
        captured = is_captured(data)
        if cert_type == "01":
            if captured:
                raise _refused(
                    "CERT_REQUIRED",
                    "a forward or re-settlement carries the certificate captured at the sale (03 with its "
                    "card_sn, or 02 the ID number): a QR e-voucher is never kept for later",
                    field=f"{where}.mdtrt_cert_type",
                )
            return self._qr.person_of(cert_no, field=f"{where}.mdtrt_cert_no"), None
        if cert_type == "02":
            return self._person_by_id_number(data, cert_no, where), None
        card_sn = _field(data, "card_sn")
        if cert_no and not card_sn and not captured and self._read_lately(institution, cert_no):
            card = self._registry.card_for(cert_no, field=f"{where}.mdtrt_cert_no", clock=self._clock)
            return card.psn_no, card
        if not cert_no or not card_sn:
            raise _refused(
                "CERT_REQUIRED",
                "a card (03) is named by its number (mdtrt_cert_no) and the identification code read from "
                f"its chip (card_sn), or by its number alone after this institution read it (1101 with its "
                f"card_sn) within {CARD_READ_HOURS} hours",
                field=f"{where}.card_sn" if cert_no else f"{where}.mdtrt_cert_no",
            )
        card = self._registry.card_for(cert_no, card_sn, field=f"{where}.mdtrt_cert_no", clock=self._clock)
        if institution is not None:
            self._registry.card_reads[(institution, cert_no)] = self._clock.now()
        return card.psn_no, card

    def _read_lately(self, institution: str | None, card_no: str) -> bool:
        read = self._registry.card_reads.get((institution, card_no)) if institution is not None else None
        return read is not None and self._clock.now() - read <= dt.timedelta(hours=CARD_READ_HOURS)

    def check(
        self, data: Any, psn_no: str, *, where: str = "input.data", institution: str | None = None
    ) -> Card | None:
        """Refuse unless the certificate in ``data`` names ``psn_no``; the card, for 03."""
        person, card = self.person_of(data, where=where, institution=institution)
        if person != psn_no:
            cert_type = _field(data, "mdtrt_cert_type")
            code, what = {
                "01": ("QR_UNKNOWN", "the QR e-voucher"),
                "02": ("CERT_MISMATCH", "the ID number"),
                "03": ("CARD_UNKNOWN", f"card {_field(data, 'mdtrt_cert_no')}"),
            }[cert_type]
            raise _refused(code, f"{what} is not person {psn_no}'s", f"{where}.mdtrt_cert_no")
        return card

    def _person_by_id_number(self, data: Any, cert_no: str, where: str) -> str:
        """02: the person whose ID number this is; ``certno``, when sent too, must be the same number."""
        certno = _field(data, "certno")
        if cert_no and certno and cert_no != certno:
            raise _refused("CERT_MISMATCH", "mdtrt_cert_no and certno are two different ID numbers", f"{where}.certno")
        number = cert_no or certno
        if number not in self._registry.by_certno:
            raise _refused(
                "UNKNOWN_PERSON",
                f"no insured person with ID number {number!r} (02): check the number on the ID card",
                f"{where}.mdtrt_cert_no",
            )
        return self._registry.by_certno[number]
