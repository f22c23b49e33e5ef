"""1101 person info: who the certificate names, and what the platform answers about them.

A flow of its own (it changes no state): it resolves the presented certificate (03 a card with its card_sn,
02 an ID number, 01 a QR e-voucher) by centre/certificates.py's one rule (a card number without its card_sn,
a lost or cancelled card, an unknown ID number or token are refused), and answers every key the
platform's 1101 carries (docs/messages.md), null where the centre has no value, as adapters read by key:

- ``baseinfo``: psn_no, psn_cert_type (01, the resident ID card), certno, psn_name, gend, naty, brdy, age
  (whole years on the centre's date), exp_content (null: nothing extra to say);
- ``insuinfo[]``, one row (a person is insured in one scheme here): balc, insutype, psn_type, psn_insu_stas,
  psn_insu_date (the first day of the person's current unbroken contribution run, null without one),
  paus_insu_date, cvlserv_flag (0: medsettle has no civil-servant supplement), insuplc_admdvs, emp_name;
- ``idetinfo[]``: the person's identities (the medical-assistance one, 2301, when the person has it; the
  platform's psn_type_lv, memo, begntime and endtime null);
- ``cardinfo[]``: medsettle's extension, the person's cards and their state.

psn_insu_stas is the platform's: 1 insured, 2 paused (暂停参保: still enrolled, but the contributions stopped
before last month, so benefits are suspended as docs/settlement.md's eligibility says; ``paus_insu_date`` is
then the first month not paid for), 4 ended (终止参保: a cancelled person). paus_insu_date is null unless
paused.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..engine.persons import FLAG_ACTIVE, FLAG_ASSISTANCE
from ..money import fen_to_decimal
from ..timeutil import month_index
from .certificates import Certificates
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
        self._certificates = Certificates(registry, qr, ledger.clock)

    def handlers(self) -> dict:
        return {"1101": self._person_info}

    def _person_info(self, env: Envelope, institution: Institution, payload: PersonQuery) -> dict:
        psn_no, _ = self._certificates.person_of(payload.data, institution=institution.fixmedins_code)
        if self._regions.partial:
            self._regions.owns_person(psn_no, "input.data.mdtrt_cert_no")
        with self._ledger.lock:
            balance = self._ledger.settler.person_state(psn_no).balance
        return person_answer(self._registry, psn_no, balance, today=self._ledger.clock.now().date())


# The platform's idetinfo row keys; the medical-assistance identity (2301) has no dates the centre records.
ASSISTANCE_IDENTITY = {
    "psn_idet_type": "2301",
    "idet_name": "医疗救助对象",
    "psn_type_lv": None,
    "memo": None,
    "begntime": None,
    "endtime": None,
}


def age_on(brdy: dt.date, today: dt.date) -> int:
    """Whole years from ``brdy`` to ``today`` (a birthday not yet reached this year does not count)."""
    return today.year - brdy.year - ((today.month, today.day) < (brdy.month, brdy.day))


def _month_start(month: int) -> str:
    """The first day of a month index (year*12+month-1) as yyyy-MM-dd."""
    return dt.date(month // 12, month % 12 + 1, 1).isoformat()


def person_answer(registry: Registry, psn_no: str, balance: int, *, today: dt.date) -> dict[str, Any]:
    """The 1101 output for a person with ``balance`` fen in the account, their age and status on ``today``."""
    ident = registry.identities[psn_no]
    population = registry.population
    index = population.index_of(psn_no)
    attrs = population.attrs[index]
    d = population.describe(index)
    flags = int(attrs["flags"])
    run_start, paid_through = int(attrs["run_start"]), int(attrs["paid_through"])
    paused = bool(flags & FLAG_ACTIVE) and paid_through >= 0 and month_index(today) - 1 > paid_through
    status = "2" if paused else ("1" if flags & FLAG_ACTIVE else "4")
    return {
        "baseinfo": {
            "psn_no": psn_no,
            "psn_cert_type": "01",
            "certno": ident.certno,
            "psn_name": ident.psn_name,
            "gend": ident.gend,
            "naty": ident.naty,
            "brdy": ident.brdy.isoformat(),
            "age": age_on(ident.brdy, today),
            "exp_content": None,
        },
        "insuinfo": [
            {
                "balc": fen_to_decimal(balance),
                "insutype": d["insutype"],
                "psn_type": d["psn_type"],
                "psn_insu_stas": status,
                "psn_insu_date": _month_start(run_start) if run_start >= 0 else None,
                "paus_insu_date": _month_start(paid_through + 1) if paused else None,
                "cvlserv_flag": "0",
                "insuplc_admdvs": d["insuplc_admdvs"],
                "emp_name": ident.emp_name,
            }
        ],
        "idetinfo": [dict(ASSISTANCE_IDENTITY)] if flags & FLAG_ASSISTANCE else [],
        "cardinfo": [{"card_no": c, "status": registry.cards[c].status} for c in registry.cards_of.get(psn_no, [])],
    }
