"""The platform's flows a simulated counter speaks, and the identities every settlement answer must keep.

A flow is one bill at a counter: the requests an HIS sends for one patient, in order (who is this, then a
pharmacy sale; a registration, visit, fees, pre-settle and settle; an inpatient stay; a sale and its
cancel). Each is a plain function of a :class:`Talk` (which sends one request and returns its output, or
raises :class:`Refused`), the patient and the counter's random source. They import nothing of Locust: a
user adds a flow with :func:`flow` from their own module (docs/load.md), and tests call them directly.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol

from ..timeutil import SHANGHAI

Place = Literal["pharmacy", "hospital"]
SETTLEMENTS = frozenset({"2101", "2102", "2103", "2206", "2207", "2208", "2303", "2304", "2305"})


class Refused(Exception):
    """The centre refused a request (infcode -1, or no envelope at all): the flow stops there."""

    def __init__(self, infno: str, code: str, message: str) -> None:
        super().__init__(f"{infno} {code}: {message}")
        self.infno = infno
        self.code = code


@dataclass(frozen=True)
class Person:
    """A patient of the centre's population, with the certificate a counter shows: the ID number (02)."""

    psn_no: str
    certno: str

    def certificate(self) -> dict[str, str]:
        """The certificate fields of a request naming this person (docs/messages.md 'Certificates')."""
        return {"mdtrt_cert_type": "02", "mdtrt_cert_no": self.certno}


class Talk(Protocol):
    """What a flow needs of its counter."""

    def call(self, infno: str, input_: dict[str, Any]) -> dict[str, Any]:
        """Send one request of the envelope; the answer's ``output`` (amounts as Decimal), or Refused."""
        ...


@dataclass(frozen=True)
class Visit:
    """One bill's patient and what the counter may sell them."""

    person: Person
    codes: tuple[str, ...]  # class-A catalogue codes of the counter's region
    rng: random.Random


FlowFn = Callable[[Talk, Visit], None]


@dataclass(frozen=True)
class Flow:
    """A named flow, the kind of counter that speaks it (a pharmacy or a hospital), and its steps."""

    name: str
    place: Place
    run: FlowFn


FLOWS: dict[str, Flow] = {}


def flow(name: str, place: Place) -> Callable[[FlowFn], FlowFn]:
    """Decorator: register ``fn`` as the flow ``name`` of counters at a ``place``, for mix files to name."""

    def register(fn: FlowFn) -> FlowFn:
        FLOWS[name] = Flow(name, place, fn)
        return fn

    return register


def now_text(offset: dt.timedelta = dt.timedelta(0)) -> str:
    """The centre's local time (Asia/Shanghai) as requests write it, shifted by ``offset``."""
    return (dt.datetime.now(SHANGHAI) + offset).strftime("%Y-%m-%d %H:%M:%S")


def _lines(visit: Visit, count: int) -> list[dict[str, str]]:
    when = now_text()
    return [
        {
            "feedetl_sn": str(n + 1),
            "med_list_codg": visit.rng.choice(visit.codes),
            "pric": f"{visit.rng.randint(100, 9000) / 100:.2f}",  # ok-float: formatted to a price string
            "cnt": str(visit.rng.randint(1, 3)),
            "fee_ocur_time": when,
        }
        for n in range(count)
    ]


def _who(talk: Talk, visit: Visit) -> None:
    talk.call("1101", {"data": {**visit.person.certificate(), "certno": visit.person.certno}})


def _sale(talk: Talk, visit: Visit) -> dict[str, Any]:
    data = {"psn_no": visit.person.psn_no, **visit.person.certificate(), "med_type": "41", "acct_used_flag": "1"}
    body = {"data": data, "feedetail": _lines(visit, visit.rng.randint(1, 4))}
    talk.call("2101", body)
    return talk.call("2102", body)


@flow("pharmacy_sale", "pharmacy")
def pharmacy_sale(talk: Talk, visit: Visit) -> None:
    """1101, then the sale pre-settled (2101) and settled (2102)."""
    _who(talk, visit)
    _sale(talk, visit)


@flow("pharmacy_cancel", "pharmacy")
def pharmacy_cancel(talk: Talk, visit: Visit) -> None:
    """A sale (2101, 2102) the patient takes back at once (2103)."""
    sold = _sale(talk, visit)
    talk.call("2103", {"data": {"setl_id": sold["setlinfo"]["setl_id"], "psn_no": visit.person.psn_no}})


def _outpatient(talk: Talk, visit: Visit) -> tuple[str, dict[str, Any]]:
    psn = visit.person.psn_no
    _who(talk, visit)
    registered = talk.call("2201", {"data": {"psn_no": psn, "begntime": now_text(), **visit.person.certificate()}})
    mdtrt_id = registered["data"]["mdtrt_id"]
    talk.call("2203", {"mdtrtinfo": {"mdtrt_id": mdtrt_id, "psn_no": psn, "med_type": "11"}, "diseinfo": []})
    fees = [{**line, "mdtrt_id": mdtrt_id, "psn_no": psn} for line in _lines(visit, visit.rng.randint(1, 5))]
    talk.call("2204", {"feedetail": fees})
    settle = {"data": {"psn_no": psn, "mdtrt_id": mdtrt_id, **visit.person.certificate(), "acct_used_flag": "1"}}
    talk.call("2206", settle)
    return mdtrt_id, talk.call("2207", settle)


@flow("outpatient_visit", "hospital")
def outpatient_visit(talk: Talk, visit: Visit) -> None:
    """1101, registration (2201), visit (2203), fees (2204), pre-settle (2206) and settle (2207)."""
    _outpatient(talk, visit)


@flow("outpatient_cancel", "hospital")
def outpatient_cancel(talk: Talk, visit: Visit) -> None:
    """An outpatient visit settled, then cancelled (2208)."""
    mdtrt_id, settled = _outpatient(talk, visit)
    setl_id = settled["setlinfo"]["setl_id"]
    talk.call("2208", {"data": {"setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": visit.person.psn_no}})


@flow("inpatient_stay", "hospital")
def inpatient_stay(talk: Talk, visit: Visit) -> None:
    """1101, admission (2401), fees (2301), discharge (2402), pre-settle (2303) and final settlement (2304)."""
    psn, cert = visit.person.psn_no, visit.person.certificate()
    _who(talk, visit)
    admit = {"psn_no": psn, "med_type": "21", "begntime": now_text(-dt.timedelta(minutes=5)), **cert}
    stay = talk.call("2401", {"mdtrtinfo": admit, "diseinfo": []})["data"]["mdtrt_id"]
    fees = [{**line, "mdtrt_id": stay, "psn_no": psn} for line in _lines(visit, visit.rng.randint(2, 8))]
    talk.call("2301", {"feedetail": fees})
    talk.call("2402", {"dscginfo": {"mdtrt_id": stay, "psn_no": psn, "endtime": now_text()}, "diseinfo": []})
    data = {"psn_no": psn, "mdtrt_id": stay, "mid_setl_flag": "0", **cert}
    talk.call("2303", {"data": data})
    talk.call("2304", {"data": data})


IDENTITIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("medfee_sumamt", ("fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt")),
    ("medfee_sumamt", ("fund_pay_sumamt", "psn_part_amt", "hosp_part_amt")),
    ("psn_part_amt", ("acct_pay", "psn_cash_pay")),
    (
        "fund_pay_sumamt",
        ("hifp_pay", "hifob_pay", "hifmi_pay", "cvlserv_pay", "hifes_pay", "maf_pay", "oth_pay"),
    ),
)


def identity_failures(setlinfo: Mapping[str, Any]) -> list[str]:
    """The decomposition identities a settlement's ``setlinfo`` breaks (none: an empty list), compared as
    Decimal (the answer parsed with ``parse_float=Decimal``; an int is exact too)."""
    failed = []
    for total, parts in IDENTITIES:
        try:
            whole = Decimal(setlinfo[total])
            summed = sum((Decimal(setlinfo[p]) for p in parts), Decimal(0))
        except (KeyError, TypeError, ArithmeticError, ValueError):
            failed.append(f"{total}: missing or not a number")
            continue
        if whole != summed:
            failed.append(f"{total} {whole} != {' + '.join(parts)} {summed}")
    return failed
