"""Bills in, as the engines take them: pydantic models at the edge, struct-of-arrays inside.

:class:`Bill` is one bill with the platform's field names (amounts as numbers or numeric strings,
parsed exactly); its model, with :func:`parse_bill`, is this module's own. The rest of the way in has a
module each, and its names are importable from here too, where callers have always found them:
:class:`BillBatch` (engine/billbatch.py) is many bills as numpy columns, the only thing the engines read,
and :meth:`BillBatch.validate` checks every bound of docs/settlement.md with vectorised numpy before any
engine runs, so one bad bill fails the whole batch and nothing is settled; :func:`resolve_bill` and
:func:`encode_bills` (engine/resolve.py) turn models into what the engines take (resolving persons,
regions, catalogue items and admissions, whose keys engine/admissionkeys.py gives).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from ..errors import InvalidInput
from ..timeutil import SHANGHAI, local_date
from .admissionkeys import AdmissionKeys, AdmissionKeySource, AdmissionKeyTable
from .billbatch import NO_VALUE, BillBatch, IntColumn

# The bounds live in bounds.py (the compiled modules report theirs against it); named here too, where
# the code that checks them has always found them.
from .bounds import LINE_DIVISOR, MAX_CNT_UNITS, MAX_LINES, MAX_MEDFEE, MAX_PRIC_UNITS, MAX_YEAR, MIN_YEAR
from .resolve import ResolvedBill, encode_bills, line_fee, resolve_bill

__all__ = [
    "LINE_DIVISOR",
    "MAX_CNT_UNITS",
    "MAX_LINES",
    "MAX_MEDFEE",
    "MAX_PRIC_UNITS",
    "MAX_YEAR",
    "MIN_YEAR",
    "NO_VALUE",
    "AdmissionKeySource",
    "AdmissionKeyTable",
    "AdmissionKeys",
    "Bill",
    "BillBatch",
    "Count",
    "FeeLine",
    "Flag",
    "IntColumn",
    "Price",
    "ResolvedBill",
    "Yuan",
    "encode_bills",
    "field_path",
    "line_fee",
    "local_naive",
    "local_time",
    "parse_bill",
    "resolve_bill",
]


# Amounts are parsed by pydantic's own Decimal parser (exact; numbers and numeric strings alike, NaN and
# infinity refused), then turned into int units, with their places and bounds checked, by _units: never
# through float. The bounds are checked there rather than as pydantic constraints, which cost a Python
# call each on the validated single-bill path.
Yuan = Decimal
Price = Decimal
Count = Decimal


def _units(value: Decimal, places: int, low: int, high: int, field: str, *, above_low: bool = False) -> int:
    """``value`` in int units of 10^-places, checked against [low, high] (or (low, high]).

    A value far past every bound (the text "1e999999999") is refused before it is scaled, which would
    overflow Decimal's exponent range; one below 10^-places before scaling would round it to 0 unsaid."""
    if value and value.adjusted() < -places:
        raise InvalidInput(f"{value} has more than {places} decimals", field=field)
    if value and value.adjusted() > _MAX_ADJUSTED:
        raise _out_of_bounds(value, places, low, high, field, above_low)
    scaled = value.scaleb(places)
    units = int(scaled)
    if units != scaled:
        raise InvalidInput(f"{value} has more than {places} decimals", field=field)
    if units < low or (above_low and units == low) or units > high:
        raise _out_of_bounds(value, places, low, high, field, above_low)
    return units


_MAX_ADJUSTED = 20  # a Decimal of 10^21 or more is past every bound of _units (10^11 fen at most)


def _out_of_bounds(value: Decimal, places: int, low: int, high: int, field: str, above_low: bool) -> InvalidInput:
    lowest = Decimal(low).scaleb(-places)
    return InvalidInput(
        f"{value} must be {'more than' if above_low else 'at least'} {lowest} and at most "
        f"{Decimal(high).scaleb(-places)}",
        field=field,
    )


def _flag(value: object) -> bool:
    if value in (0, 1, True, False):
        return bool(value)
    if value in ("0", "1"):
        return value == "1"
    raise ValueError(f"expected 0 or 1, got {value!r}")


Flag = Annotated[bool, BeforeValidator(_flag)]


class FeeLine(BaseModel):
    """One fee-detail line (feedetail)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    feedetl_sn: str = ""
    med_list_codg: str = Field(min_length=1)
    pric: Price
    cnt: Count
    det_item_fee_sumamt: Yuan | None = None
    hosp_appr_flag: Flag = False

    def units(self, j: int) -> tuple[int, int, int | None]:
        """(pric, cnt, det_item_fee_sumamt) in int units, checked; ``j`` names the line in errors."""
        return (
            _units(self.pric, 4, 0, MAX_PRIC_UNITS, f"feedetail[{j}].pric"),
            _units(self.cnt, 4, 0, MAX_CNT_UNITS, f"feedetail[{j}].cnt", above_low=True),
            None
            if self.det_item_fee_sumamt is None
            else _units(self.det_item_fee_sumamt, 2, 0, MAX_MEDFEE, f"feedetail[{j}].det_item_fee_sumamt"),
        )


class Bill(BaseModel):
    """One bill to settle. ``setl_time`` is the encounter time, Asia/Shanghai: its date picks the rules and
    the accumulator year, and the settlement answers it, time of day included, as its own setl_time
    (a date alone: midnight) unless the caller gives the time of settling (the centre does).

    ``hosp_lv`` is the institution's tier: "1"-"3" for hospitals, "pharmacy" for a pharmacy.
    ``mdtrtarea_admvs`` (treatment region) defaults to the person's insured region.
    ``saf_cash_amt`` is set only on a store-and-forward forward: the cash the counter collected.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    bill_id: str = Field("", description="the sender's id for the bill (medins_setl_id)")
    psn_no: str = Field(min_length=1)
    mdtrt_id: str = Field(min_length=1)
    med_type: Literal["11", "13", "14", "21", "41"]
    setl_time: dt.datetime | dt.date
    hosp_lv: Literal["pharmacy", "1", "2", "3"]
    mdtrtarea_admvs: str | None = Field(None, pattern=r"^\d{6}$")
    acct_used_flag: Flag = True
    medfee_sumamt: Yuan | None = None
    saf_cash_amt: Yuan | None = None
    feedetail: list[FeeLine] = Field(min_length=1, max_length=MAX_LINES)

    @field_validator("med_type", "hosp_lv", mode="before")
    @classmethod
    def _code_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("setl_time", mode="before")
    @classmethod
    def _platform_time(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return local_time(value)
            except ValueError as exc:
                raise ValueError(str(exc)) from None
        return value

    @property
    def bill_date(self) -> dt.date:
        return local_date(self.setl_time)

    @property
    def medfee_fen(self) -> int | None:
        return None if self.medfee_sumamt is None else _units(self.medfee_sumamt, 2, 0, MAX_MEDFEE, "medfee_sumamt")

    @property
    def saf_cash_fen(self) -> int | None:
        return None if self.saf_cash_amt is None else _units(self.saf_cash_amt, 2, 0, MAX_MEDFEE, "saf_cash_amt")


def local_time(text: str) -> dt.datetime | dt.date:
    """A platform time string as the bill means it: "yyyy-MM-dd HH:mm:ss" (or another ISO form with a time)
    is a naive Asia/Shanghai datetime, keeping its time of day (the settlement answers it as its
    setl_time); "yyyy-MM-dd" is a date. Accepts exactly what :func:`~medsettle.timeutil.local_date` does."""
    local_date(text)  # the same checks and the same error message as the date alone
    text = text.strip()
    if len(text) <= 10:
        return dt.date.fromisoformat(text)
    return local_naive(dt.datetime.fromisoformat(text))


def local_naive(when: dt.datetime) -> dt.datetime:
    """``when`` as a naive Asia/Shanghai datetime (naive datetimes are taken as Shanghai time already)."""
    return when if when.tzinfo is None else when.astimezone(SHANGHAI).replace(tzinfo=None)


def parse_bill(data: object, *, position: int | None = None) -> Bill:
    """Validate one bill; errors name the bill (its bill_id, else its position) and the field."""
    try:
        return Bill.model_validate(data)
    except ValidationError as exc:
        bill = data.get("bill_id") if isinstance(data, dict) and data.get("bill_id") else position
        err = exc.errors()[0]
        raise InvalidInput(err["msg"], bill=bill, field=field_path(err["loc"])) from None


def field_path(loc: tuple) -> str | None:
    """A pydantic error location as the field path medsettle uses: feedetail[0].pric."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or None
