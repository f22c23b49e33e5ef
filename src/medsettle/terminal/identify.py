"""Identifying the patient: the card in the counter's reader (03), a QR e-voucher (01) or an ID number (02),
and the centre's 1101 for who it is; the counter remembers whom it has seen, for provisional settlement
while the centre is away."""

from __future__ import annotations

import dataclasses
from typing import Any

from .common import CounterError, Identity, cert_of
from .messaging import Messenger
from .states import SaleState
from .store import CounterStore


class Identification:
    """Owns the counter's card reader (None: no reader) and the 1101s of its sales, visits and stays."""

    def __init__(self, journal: CounterStore, messenger: Messenger, reader: Any = None) -> None:
        self._journal, self._messenger = journal, messenger
        self.reader = reader  # the CLI gives a counter its reader when a command needs the card

    def read_card(self, pin: str | None = None) -> Identity:
        """Read and authenticate the card in the counter's reader (reader errors propagate)."""
        if self.reader is None:
            raise CounterError("this counter has no reader: identify by QR e-voucher or ID number")
        record = self.reader.read_and_authenticate(pin)
        return Identity("03", record.card_no, record.card_sn, certno=record.certno, psn_name=record.name)

    def card_taken_out(self, identity: Identity) -> bool:
        """The patient was identified by the card in the reader, and it is no longer there."""
        return identity.mdtrt_cert_type == "03" and self.reader is not None and not self.reader.card_present()

    def card_removed_error(self) -> Exception:
        """What the clerk is told when the card was taken out before the settlement."""
        from ..readers import CardRemoved  # noqa: PLC0415 - pyscard is needed only with a reader

        return CardRemoved(
            "the card was taken out before the settlement: insert it and start the sale again",
            reader=getattr(self.reader, "name", None),
        )

    def person_info(self, identity: Identity, *, sale: str | None = None) -> dict:
        """1101; with ``sale``, a refusal (an unknown person, card or QR e-voucher) ends that sale."""
        data = cert_of({"identity": dataclasses.asdict(identity)})
        if identity.mdtrt_cert_type == "02":
            data["certno"] = identity.mdtrt_cert_no
        return self._messenger.query("1101", {"data": data}, sale=sale)

    def identify_for(self, sale: str, identity: Identity, state: SaleState = SaleState.IDENTIFIED) -> dict:
        """1101 for a sale, visit or stay: who it is, kept in its data (put in ``state``) and in the counter's
        person cache (for provisional settlement while the centre is away). Returns the updated data.
        A refusal ends the sale (Refused, state ``refused``): nobody to settle for, nothing owed."""
        info = self.person_info(identity, sale=sale)
        person, insu = info["baseinfo"], info["insuinfo"][0]
        _, data = self._journal.require_sale(sale)
        data = {
            **data,
            "psn_no": person["psn_no"],
            "psn_name": person["psn_name"],
            "certno": person["certno"],  # the 02 that stands for a QR e-voucher later (common.kept_identity)
            "insuplc_admdvs": insu["insuplc_admdvs"],
            "insutype": insu["insutype"],
        }
        keys = [f"02:{person['certno']}"] + (
            [f"03:{identity.mdtrt_cert_no}"] if identity.mdtrt_cert_type == "03" else []
        )
        with self._journal.transaction() as db:
            self._journal.put_sale(db, sale, state, data)
            self._journal.remember_person(
                db,
                keys,
                {
                    "psn_no": person["psn_no"],
                    "psn_name": person["psn_name"],
                    "insutype": insu["insutype"],
                    "psn_type": insu["psn_type"],
                    "insuplc_admdvs": insu["insuplc_admdvs"],
                },
            )
        return data
