"""1101 person info: who the certificate names, and what the platform answers about them.

A flow of its own (it changes no state): it resolves the presented certificate (03 a card with its card_sn,
02 an ID number, 01 a QR e-voucher) through the registry and the QR vouchers, and answers the registry's
``baseinfo`` / ``insuinfo`` / ``idetinfo`` with the person's account balance.
"""

from __future__ import annotations

from .core import Ledger
from .institutions import Institution
from .messages import Envelope, PersonQuery
from .qr import QrVouchers
from .regions import OwnedRegions
from .registry import Registry


class PersonInfo:
    """Answers 1101; reads the registry, the QR vouchers and the settler's balance, writes nothing."""

    def __init__(self, ledger: Ledger, registry: Registry, qr: QrVouchers, regions: OwnedRegions) -> None:
        self._ledger = ledger
        self._registry = registry
        self._qr = qr
        self._regions = regions

    def handlers(self) -> dict:
        return {"1101": self._person_info}

    def _person_info(self, env: Envelope, institution: Institution, payload: PersonQuery) -> dict:
        d = payload.data
        if d.mdtrt_cert_type == "03":
            psn_no = self._registry.card_for(
                d.mdtrt_cert_no, d.card_sn, field="input.data.mdtrt_cert_no", clock=self._ledger.clock
            ).psn_no
        elif d.mdtrt_cert_type == "02":
            psn_no = self._registry.person_by_certno(d.certno or d.mdtrt_cert_no)
        else:  # 01, the QR e-voucher
            psn_no = self._qr.person_of(d.mdtrt_cert_no, field="input.data.mdtrt_cert_no")
        if self._regions.partial:
            self._regions.owns_person(psn_no, "input.data.mdtrt_cert_no")
        with self._ledger.lock:
            balance = self._ledger.settler.person_state(psn_no).balance
        return self._registry.baseinfo(psn_no, balance, today=self._ledger.clock.now().date())
