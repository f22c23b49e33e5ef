"""Bills in, as the engines take them: pydantic models at the edge, struct-of-arrays inside.

:class:`Bill` is one bill with the platform's field names (amounts as numbers or numeric strings,
parsed exactly). :class:`BillBatch` is many bills as numpy columns, the only thing the engines read.
:func:`encode_bills` turns models into a batch (resolving persons, regions, catalogue items and
admissions); :meth:`BillBatch.validate` checks every bound of docs/settlement.md with vectorised numpy before
any engine runs, so one bad bill fails the whole batch and nothing is settled.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Literal, NamedTuple, Protocol

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from .. import money
from ..errors import InvalidInput, TotalMismatch, UnknownItem
from ..policy.codes import MED_TYPE_INDEX, TIER_INDEX
from ..policy.compile import CompiledPolicy
from ..timeutil import SHANGHAI, day_number, local_date

# The bounds live in bounds.py (the compiled modules report theirs against it); named here too, where
# the code that checks them has always found them.
from .bounds import LINE_DIVISOR, MAX_CNT_UNITS, MAX_LINES, MAX_MEDFEE, MAX_PRIC_UNITS, MAX_YEAR, MIN_YEAR
from .persons import Population

NO_VALUE = -1

# A column as BillBatch.from_columns takes it: ints, or an array of them.
IntColumn = Sequence[int] | np.ndarray


def line_fee(pric_units: int, cnt_units: int) -> int:
    """det_item_fee_sumamt = round(pric × cnt) in fen, half up (docs/settlement.md step 1)."""
    return money.round_half_up_div(pric_units * cnt_units, LINE_DIVISOR)


# Amounts are parsed by pydantic's own Decimal parser (exact; numbers and numeric strings alike, NaN and
# infinity refused), then turned into int units, with their places and bounds checked, by _units: never
# through float. The bounds are checked there rather than as pydantic constraints, which cost a Python
# call each on the validated single-bill path.
Yuan = Decimal
Price = Decimal
Count = Decimal


def _units(value: Decimal, places: int, low: int, high: int, field: str, *, above_low: bool = False) -> int:
    """``value`` in int units of 10^-places, checked against [low, high] (or (low, high])."""
    scaled = value.scaleb(places)
    units = int(scaled)
    if units != scaled:
        raise InvalidInput(f"{value} has more than {places} decimals", field=field)
    if units < low or (above_low and units == low) or units > high:
        lowest = Decimal(low).scaleb(-places)
        raise InvalidInput(
            f"{value} must be {'more than' if above_low else 'at least'} {lowest} and at most "
            f"{Decimal(high).scaleb(-places)}",
            field=field,
        )
    return units


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


@dataclass
class BillBatch:
    """Bills as numpy columns (struct-of-arrays): what both engines read.

    Per bill: person (row in the Population), day (day number), year, month (year*12+month-1),
    med_type (index into MED_TYPES), tier (index into TIER_NAMES), treat_region (index into the policy's
    regions), acct_flag, adm (admission key of its mdtrt_id), saf_cash (fen, -1 if not a forward),
    caller_medfee (fen, -1 if not sent), line_start (n+1 offsets into the line columns).
    Per line: item (index into the compiled catalogue items), pric (0.0001 yuan), cnt (0.0001),
    appr (hosp_appr_flag), caller_fee (fen, -1 if not sent).
    """

    person: np.ndarray
    day: np.ndarray
    year: np.ndarray
    month: np.ndarray
    med_type: np.ndarray
    tier: np.ndarray
    treat_region: np.ndarray
    acct_flag: np.ndarray
    adm: np.ndarray
    saf_cash: np.ndarray
    caller_medfee: np.ndarray
    line_start: np.ndarray
    item: np.ndarray
    pric: np.ndarray
    cnt: np.ndarray
    appr: np.ndarray
    caller_fee: np.ndarray
    bill_ids: list[str] | None = None

    def __len__(self) -> int:
        return len(self.person)

    @classmethod
    def from_columns(
        cls,
        *,
        person: IntColumn,
        day: IntColumn,
        med_type: IntColumn,
        tier: IntColumn,
        treat_region: IntColumn,
        acct_flag: IntColumn,
        adm: IntColumn,
        line_start: IntColumn,
        item: IntColumn,
        pric: IntColumn,
        cnt: IntColumn,
        appr: IntColumn | None = None,
        saf_cash: IntColumn | None = None,
        caller_medfee: IntColumn | None = None,
        caller_fee: IntColumn | None = None,
        bill_ids: list[str] | None = None,
    ) -> BillBatch:
        """Build a batch from columns, deriving year and month from the day numbers."""
        day = np.ascontiguousarray(day, np.int32)
        n, n_lines = len(day), len(item)
        dates = day.astype("datetime64[D]")
        months = dates.astype("datetime64[M]").astype(np.int64)  # months since 1970-01
        return cls(
            person=np.ascontiguousarray(person, np.int32),
            day=day,
            year=(months // 12 + 1970).astype(np.int16),
            month=(months + 1970 * 12).astype(np.int32),
            med_type=np.ascontiguousarray(med_type, np.uint8),
            tier=np.ascontiguousarray(tier, np.uint8),
            treat_region=np.ascontiguousarray(treat_region, np.int16),
            acct_flag=np.ascontiguousarray(acct_flag, np.uint8),
            adm=np.ascontiguousarray(adm, np.int32),
            saf_cash=np.full(n, NO_VALUE, np.int64) if saf_cash is None else np.ascontiguousarray(saf_cash, np.int64),
            caller_medfee=(
                np.full(n, NO_VALUE, np.int64)
                if caller_medfee is None
                else np.ascontiguousarray(caller_medfee, np.int64)
            ),
            line_start=np.ascontiguousarray(line_start, np.int64),
            item=np.ascontiguousarray(item, np.int32),
            pric=np.ascontiguousarray(pric, np.int64),
            cnt=np.ascontiguousarray(cnt, np.int64),
            appr=np.zeros(n_lines, np.uint8) if appr is None else np.ascontiguousarray(appr, np.uint8),
            caller_fee=(
                np.full(n_lines, NO_VALUE, np.int64)
                if caller_fee is None
                else np.ascontiguousarray(caller_fee, np.int64)
            ),
            bill_ids=bill_ids,
        )

    def slice(self, start: int, stop: int) -> BillBatch:
        """Bills ``start`` to ``stop - 1`` as a batch of their own (views, no copies but the offsets)."""
        a, b = int(self.line_start[start]), int(self.line_start[stop])
        return BillBatch(
            **{k: getattr(self, k)[start:stop] for k in _BILL_COLUMNS},
            line_start=self.line_start[start : stop + 1] - a,
            **{k: getattr(self, k)[a:b] for k in _LINE_COLUMNS},
            bill_ids=None if self.bill_ids is None else self.bill_ids[start:stop],
        )

    def name_of(self, i: int) -> str | int:
        if self.bill_ids is not None and self.bill_ids[i]:
            return self.bill_ids[i]
        return i

    def validate(self, compiled: CompiledPolicy, n_persons: int) -> None:
        """Check every bound before any engine runs; raise InvalidInput naming the first bad bill and field.

        Vectorised: about the cost of one pass over the columns.
        """
        n = len(self.person)
        for name in _BILL_COLUMNS:
            if len(getattr(self, name)) != n:
                raise InvalidInput(f"column has {len(getattr(self, name))} rows, expected {n}", field=name)
        n_lines = len(self.item)
        for name in _LINE_COLUMNS:
            if len(getattr(self, name)) != n_lines:
                raise InvalidInput(f"column has {len(getattr(self, name))} rows, expected {n_lines}", field=name)
        if len(self.line_start) != n + 1 or (n + 1 and (self.line_start[0] != 0 or self.line_start[-1] != n_lines)):
            raise InvalidInput("line_start must have n+1 offsets from 0 to the number of lines", field="line_start")
        counts = np.diff(self.line_start)
        self._fail_first(counts < 1, "feedetail", "a bill needs at least one line")
        self._fail_first(counts > MAX_LINES, "feedetail", f"more than {MAX_LINES} lines")
        self._fail_first((self.person < 0) | (self.person >= n_persons), "psn_no", "unknown person")
        self._fail_first(self.med_type >= len(MED_TYPE_INDEX), "med_type", "unknown med type")
        self._fail_first(self.tier >= len(TIER_INDEX), "hosp_lv", "unknown institution tier")
        self._fail_first(
            (self.treat_region < 0) | (self.treat_region >= len(compiled.region_codes)),
            "mdtrtarea_admvs",
            "treatment region is not in the policy",
        )
        self._fail_first(self.acct_flag > 1, "acct_used_flag", "expected 0 or 1")
        self._fail_first(
            (self.year < MIN_YEAR) | (self.year > MAX_YEAR),
            "setl_time",
            f"the bill's date must be in {MIN_YEAR}-{MAX_YEAR}",
        )
        self._fail_first((self.saf_cash < NO_VALUE) | (self.saf_cash > MAX_MEDFEE), "saf_cash_amt", "out of bounds")
        self._fail_first(
            (self.saf_cash >= 0) & (self.acct_flag != 0),
            "acct_used_flag",
            "a store-and-forward forward is settled without the personal account (acct_used_flag 0)",
        )
        line_bill = np.repeat(np.arange(n), counts) if n_lines else np.zeros(0, np.int64)
        self._fail_lines(
            (self.pric < 0) | (self.pric > MAX_PRIC_UNITS), line_bill, "pric", "must be between 0 and 1000000 yuan"
        )
        self._fail_lines(
            (self.cnt <= 0) | (self.cnt > MAX_CNT_UNITS), line_bill, "cnt", "must be more than 0 and at most 10000"
        )
        self._fail_lines(self.appr > 1, line_bill, "hosp_appr_flag", "expected 0 or 1")
        bad_item = (self.item < 0) | (self.item >= len(compiled.item_class))
        self._fail_lines(bad_item, line_bill, "med_list_codg", "UNKNOWN_ITEM: not in the catalogue", UnknownItem)
        if n_lines:
            item_day = self.day[line_bill]
            wrong_catalogue = (
                (compiled.item_region[self.item] != self.treat_region[line_bill])
                | (compiled.item_from_day[self.item] > item_day)
                | (compiled.item_to_day[self.item] <= item_day)
            )
            self._fail_lines(
                wrong_catalogue,
                line_bill,
                "med_list_codg",
                "UNKNOWN_ITEM: not in the treatment region's catalogue in force on the bill's date",
                UnknownItem,
            )
        fees = (self.pric * self.cnt + LINE_DIVISOR // 2) // LINE_DIVISOR
        self._fail_lines(
            (self.caller_fee >= 0) & (self.caller_fee != fees),
            line_bill,
            "det_item_fee_sumamt",
            "disagrees with round(pric × cnt)",
            TotalMismatch,
        )
        medfee = np.add.reduceat(fees, self.line_start[:-1]) if n_lines else np.zeros(n, np.int64)
        self._fail_first(medfee > MAX_MEDFEE, "medfee_sumamt", "more than 10^11 fen")
        self._fail_first(
            (self.caller_medfee >= 0) & (self.caller_medfee != medfee),
            "medfee_sumamt",
            "disagrees with the sum of the lines' det_item_fee_sumamt",
            TotalMismatch,
        )

    def _fail_first(self, bad: np.ndarray, field: str, message: str, error: type[InvalidInput] = InvalidInput) -> None:
        if bad.any():
            i = int(np.argmax(bad))
            raise error(message, bill=self.name_of(i), field=field)

    def _fail_lines(
        self, bad: np.ndarray, line_bill: np.ndarray, field: str, message: str, error: type[InvalidInput] = InvalidInput
    ) -> None:
        if bad.any():
            j = int(np.argmax(bad))
            i = int(line_bill[j])
            raise error(message, bill=self.name_of(i), field=f"feedetail[{j - int(self.line_start[i])}].{field}")


_BILL_COLUMNS = (
    "person",
    "day",
    "year",
    "month",
    "med_type",
    "tier",
    "treat_region",
    "acct_flag",
    "adm",
    "saf_cash",
    "caller_medfee",
)
_LINE_COLUMNS = ("item", "pric", "cnt", "appr", "caller_fee")


class AdmissionKeySource(Protocol):
    """What resolving a bill asks of admission keys: the int key of its mdtrt_id (:class:`AdmissionKeys`
    gives them; a stream's, engine/streamkeys.py, forget those no admission in progress holds)."""

    def key(self, mdtrt_id: str, /) -> int: ...


class AdmissionKeyTable(AdmissionKeySource, Protocol):
    """The Settler's admission keys: a key for each mdtrt_id, and a known key bound (journal replay)."""

    def bind(self, mdtrt_id: str, key: int) -> None: ...


class AdmissionKeys:
    """Gives each mdtrt_id a small int key, the way the core tells admissions apart."""

    def __init__(self) -> None:
        self._keys: dict[str, int] = {}
        self._next = 0

    def key(self, mdtrt_id: str) -> int:
        k = self._keys.get(mdtrt_id)
        if k is None:
            k = self._keys[mdtrt_id] = self._next
            self._next += 1
        return k

    def bind(self, mdtrt_id: str, key: int) -> None:
        """Give ``mdtrt_id`` a known key (journal replay); new keys continue past it."""
        if self._keys.get(mdtrt_id, key) != key:
            raise ValueError(f"mdtrt_id {mdtrt_id!r} already has key {self._keys[mdtrt_id]}, not {key}")
        self._keys[mdtrt_id] = key
        self._next = max(self._next, key + 1)


class ResolvedBill(NamedTuple):
    """One bill with every code resolved to the index the engines use (the fast path's arguments)."""

    person: int
    day: int
    med_type: int
    tier: int
    treat_region: int
    acct_flag: int
    adm: int
    saf_cash: int
    items: list[int]
    prices: list[int]
    cnts: list[int]
    apprs: list[int]


def resolve_bill(
    bill: Bill,
    compiled: CompiledPolicy,
    population: Population,
    admissions: AdmissionKeySource,
    *,
    name: str | int | None = None,
) -> ResolvedBill:
    """Resolve a validated bill's person, regions, items and admission, and check what the model cannot:
    the date's year, the catalogue in force, the caller's totals and the medfee bound. Raises
    InvalidInput naming the bill and field; changes nothing but the admission key table."""
    name = bill.bill_id or name
    try:
        return _resolve(bill, compiled, population, admissions, name)
    except InvalidInput as exc:
        if exc.bill is None and name is not None:  # name the bill in errors about one of its fields
            raise type(exc)(exc.reason, bill=name, field=exc.field) from None
        raise


def _resolve(
    bill: Bill, compiled: CompiledPolicy, population: Population, admissions: AdmissionKeySource, name: str | int | None
) -> ResolvedBill:
    p = population.index_of(bill.psn_no)
    if bill.mdtrtarea_admvs is None:
        region = int(population.attrs[p]["region"])
    else:
        try:
            region = compiled.region_index(bill.mdtrtarea_admvs)
        except KeyError:
            raise InvalidInput(
                f"treatment region {bill.mdtrtarea_admvs} is not in the policy", bill=name, field="mdtrtarea_admvs"
            ) from None
    bill_date = bill.bill_date
    if not MIN_YEAR <= bill_date.year <= MAX_YEAR:
        raise InvalidInput(f"the bill's date must be in {MIN_YEAR}-{MAX_YEAR}", bill=name, field="setl_time")
    d = day_number(bill_date)
    lookup = compiled.item_lookup(region, d) or {}
    items, prices, cnts, apprs = [], [], [], []
    medfee = 0
    for j, line in enumerate(bill.feedetail):
        idx = lookup.get(line.med_list_codg)
        if idx is None:
            raise UnknownItem(
                f"UNKNOWN_ITEM: {line.med_list_codg!r} is not in the catalogue of "
                f"{compiled.region_codes[region]} in force on {bill_date}",
                bill=name,
                field=f"feedetail[{j}].med_list_codg",
            )
        pric, cnt, caller_fee = line.units(j)
        fee = line_fee(pric, cnt)
        if caller_fee is not None and caller_fee != fee:
            raise TotalMismatch(
                f"{money.fen_to_decimal(caller_fee)} disagrees with round(pric × cnt) = {money.fen_to_decimal(fee)}",
                bill=name,
                field=f"feedetail[{j}].det_item_fee_sumamt",
            )
        medfee += fee
        items.append(idx)
        prices.append(pric)
        cnts.append(cnt)
        apprs.append(int(line.hosp_appr_flag))
    if medfee > MAX_MEDFEE:
        raise InvalidInput("more than 10^11 fen", bill=name, field="medfee_sumamt")
    caller_medfee = bill.medfee_fen
    if caller_medfee is not None and caller_medfee != medfee:
        raise TotalMismatch(
            f"{money.fen_to_decimal(caller_medfee)} disagrees with the sum of the lines' "
            f"det_item_fee_sumamt {money.fen_to_decimal(medfee)}",
            bill=name,
            field="medfee_sumamt",
        )
    saf_cash_fen = bill.saf_cash_fen  # None exactly when there is no saf_cash_amt
    saf_cash = NO_VALUE if saf_cash_fen is None else saf_cash_fen
    if saf_cash >= 0 and bill.acct_used_flag:
        raise InvalidInput(
            "a store-and-forward forward is settled without the personal account (acct_used_flag 0)",
            bill=name,
            field="acct_used_flag",
        )
    return ResolvedBill(
        p,
        d,
        MED_TYPE_INDEX[bill.med_type],
        TIER_INDEX[bill.hosp_lv],
        region,
        int(bill.acct_used_flag),
        admissions.key(bill.mdtrt_id),
        saf_cash,
        items,
        prices,
        cnts,
        apprs,
    )


def encode_bills(
    bills: list[Bill], compiled: CompiledPolicy, population: Population, admissions: AdmissionKeySource
) -> BillBatch:
    """Resolve validated bills into a BillBatch; raises before anything is returned, so a bad bill never
    reaches an engine."""
    resolved = [resolve_bill(b, compiled, population, admissions, name=i) for i, b in enumerate(bills)]
    counts = [len(r.items) for r in resolved]
    line_start = np.zeros(len(bills) + 1, np.int64)
    np.cumsum(counts, out=line_start[1:])

    def column(field: str, dtype: type | str) -> np.ndarray:
        return np.fromiter((getattr(r, field) for r in resolved), dtype, len(resolved))

    def lines(field: str, dtype: type | str) -> np.ndarray:
        return np.fromiter((x for r in resolved for x in getattr(r, field)), dtype, int(line_start[-1]))

    return BillBatch.from_columns(
        person=column("person", np.int32),
        day=column("day", np.int32),
        med_type=column("med_type", np.uint8),
        tier=column("tier", np.uint8),
        treat_region=column("treat_region", np.int16),
        acct_flag=column("acct_flag", np.uint8),
        adm=column("adm", np.int32),
        saf_cash=column("saf_cash", np.int64),
        line_start=line_start,
        item=lines("items", np.int32),
        pric=lines("prices", np.int64),
        cnt=lines("cnts", np.int64),
        appr=lines("apprs", np.uint8),
        bill_ids=[b.bill_id for b in bills],
    )
