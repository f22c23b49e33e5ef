"""The validated single-bill path's quick route, for bills in the plain shape counters send.

``Settler.settle(dict)`` validates a bill with the :class:`~.bills.Bill` model and then resolves it. Most
of that time goes to pydantic's model machinery (a model object per line, Python validators, a Decimal
per amount) and to Decimal arithmetic. Counters send one shape: codes, flags and amounts as strings
("41", "1", "12.50"). For that shape pydantic-core checks the bill's shape (keys, str or bool, the
codes) against a strict TypedDict in Rust alone; the route then reads the amounts' and dates' text,
checking it as it parses it, turns the amounts into int units, and resolves the bill to the same
:class:`~.bills.ResolvedBill` the model way gives. That last part, :func:`resolve_plain`,
is the reference engine's; the core's fast path has its twin in C (ext/_plain.pyx), which writes the
lines straight into the Session's buffers (see medsettle.engine.fastpath).

The route only ever says yes to a bill the model way accepts: anything else (another shape, an amount
with more places or out of bounds, an unknown person or item, totals that disagree, ...) makes
:func:`quick_resolve` return None, and the caller takes the model way, which settles it or raises the
canonical error naming the field. tests/test_plain_bills.py settles random bills, good and bad, both ways
and on both engines, and checks that results, errors and state agree.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal, NamedTuple, NotRequired

from pydantic import ConfigDict, Field, StrictBool, StringConstraints, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from ..errors import UnknownPerson
from ..policy.codes import MED_TYPE_INDEX, TIER_INDEX
from ..policy.compile import CompiledPolicy
from ..timeutil import day_number, local_date
from .bills import (
    LINE_DIVISOR,
    MAX_CNT_UNITS,
    MAX_LINES,
    MAX_MEDFEE,
    MAX_PRIC_UNITS,
    NO_VALUE,
    AdmissionKeySource,
    Bill,
    ResolvedBill,
    local_naive,
    local_time,
)
from .bounds import MAX_YEAR, MIN_YEAR
from .persons import Population

# The shape pydantic-core checks: which keys, str or bool, the codes. The text of amounts and dates is read
# and checked by the route itself, which parses it anyway (a pattern here would read it twice): plain
# amounts are ASCII digits with at most as many places as the field has (4 for pric and cnt, 2 for yuan),
# dates "yyyy-MM-dd" or "yyyy-MM-dd HH:mm:ss".
Flag01 = Literal["0", "1"] | StrictBool  # as the model's _flag, less the ints 0 and 1
NonEmpty = Annotated[str, StringConstraints(min_length=1)]

# Strict: text must be str (lax mode would take bytes as text, which the Bill model refuses for amounts).
_STRICT = ConfigDict(strict=True)


@with_config(_STRICT)
class _PlainLine(TypedDict):
    feedetl_sn: NotRequired[str]
    med_list_codg: NonEmpty
    pric: str
    cnt: str
    det_item_fee_sumamt: NotRequired[str]
    hosp_appr_flag: NotRequired[Flag01]


@with_config(_STRICT)
class PlainBill(TypedDict):
    """A bill in the plain shape, as :func:`validate_plain` gives it."""

    bill_id: NotRequired[str]
    psn_no: NonEmpty
    mdtrt_id: NonEmpty
    med_type: Literal["11", "13", "14", "21", "41"]
    setl_time: str
    hosp_lv: Literal["pharmacy", "1", "2", "3"]
    mdtrtarea_admvs: NotRequired[str]
    acct_used_flag: NotRequired[Flag01]
    medfee_sumamt: NotRequired[str]
    saf_cash_amt: NotRequired[str]
    feedetail: Annotated[list[_PlainLine], Field(min_length=1, max_length=MAX_LINES)]


_PLAIN = TypeAdapter(PlainBill)
PLAIN_SHAPE = _PLAIN  # public: the plain shape's validator, for readers of JSON text (medsettle settle)
_HALF_LINE_DIVISOR = LINE_DIVISOR // 2


class BillHead(NamedTuple):
    """What a settlement record keeps of its bill. ``setl_time`` is the time the record shows when the
    caller gives none: the bill's own date and time of day (naive, Asia/Shanghai), or midnight of a date."""

    bill_id: str
    psn_no: str
    mdtrt_id: str
    med_type: str
    setl_time: dt.datetime
    feedetl_sns: tuple[str, ...]

    @classmethod
    def of(cls, bill: Bill) -> BillHead:
        return cls(
            bill.bill_id,
            bill.psn_no,
            bill.mdtrt_id,
            bill.med_type,
            _as_datetime(bill.setl_time),
            tuple(line.feedetl_sn or str(j + 1) for j, line in enumerate(bill.feedetail)),
        )


def _as_datetime(when: dt.datetime | dt.date) -> dt.datetime:
    return local_naive(when) if isinstance(when, dt.datetime) else dt.datetime(when.year, when.month, when.day)


def validate_plain(data: object) -> PlainBill | None:
    """``data`` checked against the plain shape by pydantic-core (a new dict), or None: not plain."""
    try:
        return _PLAIN.validate_python(data)
    except ValidationError:
        return None


def quick_resolve(
    data: object, compiled: CompiledPolicy, population: Population, admissions: AdmissionKeySource
) -> tuple[ResolvedBill, BillHead] | None:
    """The bill resolved as ``resolve_bill(parse_bill(data))`` would, or None: take the model way."""
    bill = validate_plain(data)
    return None if bill is None else resolve_plain(bill, compiled, population, admissions)


def resolve_plain(
    bill: PlainBill, compiled: CompiledPolicy, population: Population, admissions: AdmissionKeySource
) -> tuple[ResolvedBill, BillHead] | None:
    """A bill that :func:`validate_plain` gave resolved as the model way would, or None: take the model way.

    The route of the reference engine's fast path; medsettle._plain (ext/_plain.pyx) is its twin in C,
    for the core's."""
    if not _PLAIN_TIME.fullmatch(bill["setl_time"]):
        return None
    try:
        bill_time = local_time(bill["setl_time"])
    except ValueError:
        return None
    bill_date = local_date(bill_time)
    if not MIN_YEAR <= bill_date.year <= MAX_YEAR:
        return None
    try:
        p = population.index_of(bill["psn_no"])
    except UnknownPerson:
        return None
    treatment = bill.get("mdtrtarea_admvs")
    if treatment is None:
        region = int(population.attrs[p]["region"])
    elif treatment in compiled.region_codes:
        region = compiled.region_codes.index(treatment)
    else:
        return None
    day = day_number(bill_date)
    lookup = compiled.item_lookup(region, day) or {}
    lines = bill["feedetail"]
    items, prices, cnts, apprs, sns = [], [], [], [], []
    medfee = 0
    for j, line in enumerate(lines):
        idx = lookup.get(line["med_list_codg"])
        pric, cnt = _units(line["pric"], 4), _units(line["cnt"], 4)
        if idx is None or pric is None or cnt is None or pric > MAX_PRIC_UNITS or not 0 < cnt <= MAX_CNT_UNITS:
            return None
        fee = (pric * cnt + _HALF_LINE_DIVISOR) // LINE_DIVISOR  # line_fee, for pric, cnt ≥ 0
        if "det_item_fee_sumamt" in line and _units(line["det_item_fee_sumamt"], 2) != fee:
            return None
        medfee += fee
        items.append(idx)
        prices.append(pric)
        cnts.append(cnt)
        apprs.append(1 if line.get("hosp_appr_flag") in ("1", True) else 0)
        sns.append(line.get("feedetl_sn") or str(j + 1))
    if medfee > MAX_MEDFEE:
        return None
    caller_medfee = bill.get("medfee_sumamt")
    if caller_medfee is not None and _units(caller_medfee, 2) != medfee:
        return None
    acct_flag = 0 if bill.get("acct_used_flag") in ("0", False) else 1  # the model's default is 1
    saf_cash_text = bill.get("saf_cash_amt")
    saf_cash = NO_VALUE if saf_cash_text is None else _units(saf_cash_text, 2)
    if saf_cash is None or (saf_cash != NO_VALUE and (saf_cash > MAX_MEDFEE or acct_flag)):
        return None
    resolved = ResolvedBill(
        p,
        day,
        MED_TYPE_INDEX[bill["med_type"]],
        TIER_INDEX[bill["hosp_lv"]],
        region,
        acct_flag,
        admissions.key(bill["mdtrt_id"]),
        saf_cash,
        items,
        prices,
        cnts,
        apprs,
    )
    head = BillHead(
        bill.get("bill_id", ""), bill["psn_no"], bill["mdtrt_id"], bill["med_type"], _as_datetime(bill_time), tuple(sns)
    )
    return resolved, head


_PLAIN_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}:[0-9]{2})?")
_PLAIN_AMOUNT = {places: re.compile(rf"[0-9]{{1,12}}(\.[0-9]{{1,{places}}})?") for places in (2, 4)}


def _units(text: str, places: int) -> int | None:
    """A plain amount's text ("12.5": 1-12 ASCII digits, then at most ``places`` (2 or 4) decimals) in int
    units of 10^-places, or None for any other text."""
    if not _PLAIN_AMOUNT[places].fullmatch(text):
        return None
    whole, _, frac = text.partition(".")
    return int(whole + (frac + "0000")[:places])
