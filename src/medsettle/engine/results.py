"""Settlement results with the platform's field names (setlinfo, setldetail, the per-line split)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import jsontext
from ..money import bp_to_decimal, fen_to_decimal
from ..policy import codes
from .admissions import Admission
from .columns import COL, LINE_COL, LINE_COLUMNS

# setlinfo amount fields, in the platform's order, that come straight from a result column.
AMOUNT_FIELDS = (
    "medfee_sumamt",
    "fulamt_ownpay_amt",
    "overlmt_selfpay",
    "preselfpay_amt",
    "inscp_scp_amt",
    "act_pay_dedc",
    "hifp_pay",
    "hifob_pay",
    "hifmi_pay",
    "cvlserv_pay",
    "maf_pay",
    "fund_pay_sumamt",
    "psn_part_amt",
    "acct_pay",
    "psn_cash_pay",
    "hosp_part_amt",
)


@dataclass(slots=True)  # slots: no per-record __dict__ (a centre keeps millions of them)
class Settlement:
    """One settlement or cancel mirror. ``row`` holds int fen in COLUMNS order; ``lines`` the line split.

    Both are kept as bytes (``row_data``, ``lines_data``: a bytes object costs less to make and to keep than
    an array) and read as read-only int64 arrays.
    """

    setl_id: str
    bill_id: str
    psn_no: str
    mdtrt_id: str
    insutype: str
    psn_type: str
    med_type: str
    setl_time: dt.datetime
    row_data: bytes
    lines_data: bytes | None = None
    feedetl_sns: tuple[str, ...] = ()  # a tuple of str: the garbage collector need not walk it
    person: int = -1
    adm: int = -1
    mirror_of: str | None = None  # set on a cancel mirror: the original's setl_id
    cancelled_by: str | None = None  # set on an original once cancelled
    presettle: bool = False
    admission: Admission | None = None  # a per-admission settlement's admission (what its cancel needs)

    @property
    def row(self) -> np.ndarray:
        return np.frombuffer(self.row_data, np.int64)

    @property
    def lines(self) -> np.ndarray | None:
        if self.lines_data is None:
            return None
        return np.frombuffer(self.lines_data, np.int64).reshape(-1, len(LINE_COLUMNS))

    def amount(self, name: str) -> int:
        return int(self.row[COL[name]])

    @property
    def balc(self) -> int:
        return int(self.row[COL["balc"]])

    def setlinfo(
        self, values: list[int] | None = None, amount: Callable[[int], object] = fen_to_decimal
    ) -> dict[str, object]:
        """The platform's setlinfo: amounts as Decimal with 2 places, pool_prop_selfpay as a fraction.

        ``values``: ``row.tolist()`` if the caller has it (a Python list indexes far faster than numpy).
        ``amount``: how an amount in fen is given (jsontext.fen_number for text that is only written)."""
        values = self.row.tolist() if values is None else values
        info: dict[str, object] = {
            "setl_id": self.setl_id,
            "mdtrt_id": self.mdtrt_id,
            "psn_no": self.psn_no,
            "insutype": self.insutype,
            "psn_type": self.psn_type,
            "setl_time": self.setl_time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        for name, col in _AMOUNTS_BEFORE_RATIO:
            info[name] = amount(values[col])
        info["pool_prop_selfpay"] = bp_to_decimal(values[COL["pool_prop_bp"]])
        for name, col in _AMOUNTS_AFTER_RATIO:
            info[name] = amount(values[col])
        info["balc"] = amount(values[COL["balc"]])
        info["medins_setl_id"] = self.bill_id
        return info

    def setldetail(
        self, values: list[int] | None = None, amount: Callable[[int], object] = fen_to_decimal
    ) -> list[dict[str, object]]:
        """One row per non-zero fund, plus the account (310200) and the institution's share (999996)."""
        values = self.row.tolist() if values is None else values
        funds = _EMPLOYEE_FUNDS if self.insutype == codes.EMPLOYEE else _RESIDENT_FUNDS
        return [{"fund_pay_type": code, "fund_payamt": amount(values[col])} for code, col in funds if values[col] != 0]

    def line_split(self, amount: Callable[[int], object] = fen_to_decimal) -> list[dict[str, object]]:
        """Per fee line: det_item_fee_sumamt, fulamt_ownpay_amt, overlmt_amt, preselfpay_amt, inscp_scp_amt."""
        if self.lines is None:
            return []
        result = []
        sns = self.feedetl_sns
        for j, values in enumerate(self.lines.tolist()):
            entry: dict[str, object] = {"feedetl_sn": sns[j] if j < len(sns) else str(j + 1)}
            for name, col in _LINE_AMOUNTS:
                entry[name] = amount(values[col])
            result.append(entry)
        return result

    def to_json(self, amount: Callable[[int], object] = fen_to_decimal) -> dict[str, object]:
        """setlinfo, setldetail and the line split; amounts as Decimal, or as ``amount`` makes them."""
        values = self.row.tolist()
        out: dict[str, object] = {
            "setlinfo": self.setlinfo(values, amount),
            "setldetail": self.setldetail(values, amount),
        }
        if self.lines is not None:
            out["feedetail"] = self.line_split(amount)
        return out


# (field, column) pairs, resolved once: the answer of every settlement walks them.
_AMOUNTS_BEFORE_RATIO = tuple((name, COL[name]) for name in AMOUNT_FIELDS[:7])
_AMOUNTS_AFTER_RATIO = tuple((name, COL[name]) for name in AMOUNT_FIELDS[7:])
_LINE_AMOUNTS = tuple((name, LINE_COL[name]) for name in LINE_COLUMNS)
_OTHER_FUNDS = (
    (codes.FUND_LARGE_AMOUNT, COL["hifob_pay"]),
    (codes.FUND_RESIDENT_CRITICAL, COL["hifmi_pay"]),
    (codes.FUND_ASSISTANCE, COL["maf_pay"]),
    (codes.FUND_EMPLOYEE_ACCOUNT, COL["acct_pay"]),
    (codes.FUND_INSTITUTION, COL["hosp_part_amt"]),
)
_EMPLOYEE_FUNDS = ((codes.FUND_EMPLOYEE_POOLED, COL["hifp_pay"]),) + _OTHER_FUNDS
_RESIDENT_FUNDS = ((codes.FUND_RESIDENT_BASIC, COL["hifp_pay"]),) + _OTHER_FUNDS


def mirror_row(original: np.ndarray, balance_after: int) -> np.ndarray:
    """A cancel's record: every amount negated except balc (the balance after) and pool_prop_selfpay."""
    row = original.copy()
    for name in AMOUNT_FIELDS + ("t2_base_add",):
        row[COL[name]] = -row[COL[name]]
    row[COL["balc"]] = balance_after
    return row


def dumps(value: object) -> str:
    """JSON text with Decimal amounts written exactly (12.50 stays 12.50), never through float."""
    return jsontext.dumps(value)
