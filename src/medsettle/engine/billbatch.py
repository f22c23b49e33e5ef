"""Bills as the engines read them: :class:`BillBatch`, numpy columns (struct-of-arrays), and the check of
every bound of docs/settlement.md it makes with vectorised numpy before any engine runs
(:meth:`BillBatch.validate`), so one bad bill fails the whole batch and nothing is settled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInput, TotalMismatch, UnknownItem
from ..policy.codes import MED_TYPE_INDEX, TIER_INDEX
from ..policy.compile import CompiledPolicy
from .bounds import LINE_DIVISOR, MAX_CNT_UNITS, MAX_LINES, MAX_MEDFEE, MAX_PRIC_UNITS, MAX_YEAR, MIN_YEAR

NO_VALUE = -1

# A column as BillBatch.from_columns takes it: ints, or an array of them.
IntColumn = Sequence[int] | np.ndarray


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
