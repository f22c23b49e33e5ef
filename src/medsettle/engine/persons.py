"""The insured population as the engines see it: static attributes in flat arrays, one row per person.

Static attributes (scheme, person type, insured region, eligibility, filing) never change during a
settlement; they live apart from the 64-byte mutable state (:mod:`.state`). Person and card events
that change them (enrolment, transfer, cancellation) belong to the centre (medsettle.centre), which
rebuilds the affected rows.

A persons file is CSV with the columns of :data:`CSV_COLUMNS` (months as ``yyyy-mm``, dates as
``yyyy-mm-dd``, balance in yuan).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from .. import money
from ..bounds import MAX_BALANCE_FEN
from ..errors import InvalidInput, UnknownPerson
from ..policy.codes import INSUTYPE_INDEX, INSUTYPES, PSN_TYPE_INDEX, PSN_TYPES, PSN_TYPES_OF_INSUTYPE
from ..policy.models import Policy
from ..timeutil import day_number, from_day_number
from .state import aligned_zeros

FLAG_ACTIVE = 1
FLAG_ASSISTANCE = 2
NO_MONTH = -1
NO_REGION = -1

_ATTR_FIELDS = [
    ("insutype", "u1"),  # index into INSUTYPES
    ("psn_type", "u1"),  # index into PSN_TYPES
    ("flags", "u1"),  # FLAG_ACTIVE | FLAG_ASSISTANCE
    ("_pad", "u1"),
    ("region", "<i2"),  # insured region: index into the policy's regions
    ("filing_region", "<i2"),  # region of a filing (备案) for care elsewhere, -1 none
    ("run_start", "<i4"),  # first month (year*12+month-1) of the current unbroken contribution run, -1 none
    ("paid_through", "<i4"),  # last month contributed for, -1 none
    ("extra_wait", "<i4"),  # extra waiting months (residents enrolled late)
    ("filing_from", "<i4"),  # filing validity, day numbers, inclusive
    ("filing_to", "<i4"),
    ("_pad2", "<i4"),
]
ATTR_DTYPE = np.dtype(_ATTR_FIELDS)
ATTR_NAMES = frozenset(name for name, _ in _ATTR_FIELDS)  # ATTR_DTYPE's field names
assert ATTR_DTYPE.itemsize == 32

CSV_COLUMNS = (
    "psn_no",
    "insutype",
    "psn_type",
    "insuplc_admdvs",
    "balance",
    "active",
    "assistance",
    "contrib_from",
    "paid_through",
    "extra_wait_months",
    "filing_admdvs",
    "filing_begin",
    "filing_end",
)


def _month(text: str, field: str) -> int:
    if not text:
        return NO_MONTH
    try:
        year, month = text.split("-")
        y, m = int(year), int(month)
        if not 1 <= m <= 12:
            raise ValueError
    except ValueError:
        raise InvalidInput(f"expected yyyy-mm, got {text!r}", field=field) from None
    return y * 12 + m - 1


def _month_text(m: int) -> str:
    return "" if m < 0 else f"{m // 12:04d}-{m % 12 + 1:02d}"


def _date(text: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"expected a date yyyy-mm-dd, got {text!r}", field=field) from None


def _count(text: str, field: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 1200:
        raise InvalidInput(f"expected a whole number of months from 0 to 1200, got {text!r}", field=field)
    return int(text)


def _flag(text: str | None, field: str, *, default: bool) -> bool:
    if text in (None, ""):
        return default
    if text in ("1", "true", "True"):
        return True
    if text in ("0", "false", "False"):
        return False
    raise InvalidInput(f"expected 1 or 0, got {text!r}", field=field)


def _row_name(i: int, lines: list[int] | None) -> str:
    return f"line {lines[i]}" if lines is not None else f"row {i + 1}"


def _column_name(field: str | None, columns: list[str] | None) -> str:
    if field is None:
        return ""
    if columns is not None and field in columns:
        return f", column {columns.index(field) + 1} ({field})"
    return f", column {field}"


REQUIRED_COLUMNS = CSV_COLUMNS[:4]
PERSONS_FILE_HELP = (
    f"a persons file is CSV, line 1 naming the columns ({','.join(REQUIRED_COLUMNS)},...), then "
    "one person a line, as 'medsettle persons generate --out FILE' writes it"
)


def _read_persons_csv(f: IO[str], path: Path) -> tuple[list[str], list[dict[str, str]], list[int]]:
    """The header, the rows as dicts and each row's line number, checked for the file's shape: not
    empty, not JSON, the needed columns named once each, no unknown column, every row as wide as
    the header. Blank lines are skipped."""
    reader = csv.reader(f)
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise InvalidInput(f"{path}: empty, no header line: {PERSONS_FILE_HELP}")
        if header[0].lstrip().startswith(("{", "[")):
            raise InvalidInput(
                f"{path} line 1, column 1: {header[0].lstrip()[0]!r} looks like JSON, not CSV: {PERSONS_FILE_HELP}"
            )
        _check_header(header, path)
        rows, lines = [], []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                where = f"column {len(header) + 1}" if len(row) > len(header) else f"column {len(row) + 1}"
                raise InvalidInput(
                    f"{path} line {reader.line_num}, {where}: {len(row)} fields where line 1 names "
                    f"{len(header)} columns (a comma too many or too few?)"
                )
            rows.append(dict(zip(header, row, strict=True)))  # lengths checked above
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise InvalidInput(f"{path} line {reader.line_num}: not readable as CSV: {exc}") from None
    if not rows:
        raise InvalidInput(f"{path}: no persons after the header line: {PERSONS_FILE_HELP}")
    return header, rows, lines


def _check_header(header: list[str], path: Path) -> None:
    for j, name in enumerate(header):
        if name not in CSV_COLUMNS:
            raise InvalidInput(
                f"{path} line 1, column {j + 1}: unknown column {name!r} (the columns of a persons "
                f"file are {','.join(CSV_COLUMNS)})"
            )
        if header.index(name) != j:
            raise InvalidInput(f"{path} line 1, column {j + 1}: column {name!r} named twice")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InvalidInput(f"{path} line 1: no column {', '.join(missing)}: {PERSONS_FILE_HELP}")


class Population:
    """Static attributes of every insured person, by row index, bound to one policy's region order."""

    def __init__(self, policy: Policy, psn_nos: list[str], attrs: np.ndarray, balances: np.ndarray) -> None:
        if attrs.dtype != ATTR_DTYPE or len(attrs) != len(psn_nos) or len(balances) != len(psn_nos):
            raise ValueError("psn_nos, attrs and balances must have one row per person")
        self.region_codes = tuple(r.admdvs for r in policy.regions)
        self.psn_nos = psn_nos
        self.attrs = aligned_zeros(len(attrs), ATTR_DTYPE, align=ATTR_DTYPE.itemsize)  # one cache line each
        self.attrs[:] = attrs
        self.balances = np.ascontiguousarray(balances, dtype=np.int64)
        self._attrs_buf, self._balances_buf = self.attrs, self.balances  # room to grow into (append)
        self._index: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.psn_nos)

    # -- enrolment ------------------------------------------------------------------------------

    def append(self, psn_no: str, attrs: dict[str, int], balance: int = 0) -> int:
        """Add one person (an enrolment) with the given ATTR_DTYPE fields; return the new row.

        The arrays grow by doubling, so a run of enrolments copies them rarely. Arrays taken from
        ``attrs`` or ``balances`` before an append may be stale after it (engines read them afresh).
        """
        if psn_no in self.index:
            raise InvalidInput(f"person {psn_no!r} already exists", field="psn_no")
        unknown = set(attrs) - ATTR_NAMES
        if unknown:
            raise ValueError(f"unknown person attributes {sorted(unknown)}")
        row = len(self.psn_nos)
        if row == len(self._attrs_buf):
            self._grow(max(16, 2 * row))
        self.attrs = self._attrs_buf[: row + 1]
        self.balances = self._balances_buf[: row + 1]
        record = np.zeros((), ATTR_DTYPE)
        record["filing_region"] = NO_REGION
        record["run_start"] = record["paid_through"] = NO_MONTH
        for name, value in attrs.items():
            record[name] = value
        self.attrs[row] = record
        self.balances[row] = balance
        self.psn_nos.append(psn_no)
        self.index[psn_no] = row
        return row

    def _grow(self, capacity: int) -> None:
        attrs = aligned_zeros(capacity, ATTR_DTYPE, align=ATTR_DTYPE.itemsize)
        attrs[: len(self.attrs)] = self.attrs
        balances = np.zeros(capacity, np.int64)
        balances[: len(self.balances)] = self.balances
        self._attrs_buf, self._balances_buf = attrs, balances

    @property
    def index(self) -> dict[str, int]:
        """{psn_no: row}, made on first use and kept up to date by :meth:`append` (do not change it)."""
        if self._index is None:
            self._index = {p: i for i, p in enumerate(self.psn_nos)}
        return self._index

    def index_of(self, psn_no: str, field: str = "psn_no") -> int:
        """The person's row; UnknownPerson naming ``field`` (where the caller got psn_no from) if none."""
        # The lazy ids: no dict of 10^8 ids for the reference engine's bills.
        row = self.psn_nos.row_of(psn_no) if isinstance(self.psn_nos, _LazyPsnNos) else self.index.get(psn_no)
        if row is None:
            raise UnknownPerson(f"unknown person {psn_no!r}", field=field)
        return row

    def region_of(self, i: int) -> str:
        """The insured region (admdvs) of row ``i``."""
        return self.region_codes[int(self.attrs[i]["region"])]

    def describe(self, i: int) -> dict[str, object]:
        """One person's attributes with the platform's codes (for 1101 and for people reading output)."""
        a = self.attrs[i]
        filing = int(a["filing_region"])
        return {
            "psn_no": self.psn_nos[i],
            "insutype": INSUTYPES[a["insutype"]],
            "psn_type": PSN_TYPES[a["psn_type"]],
            "insuplc_admdvs": self.region_codes[a["region"]],
            "active": bool(a["flags"] & FLAG_ACTIVE),
            "assistance": bool(a["flags"] & FLAG_ASSISTANCE),
            "contrib_from": _month_text(int(a["run_start"])),
            "paid_through": _month_text(int(a["paid_through"])),
            "extra_wait_months": int(a["extra_wait"]),
            "filing_admdvs": self.region_codes[filing] if filing >= 0 else "",
            "filing_begin": from_day_number(int(a["filing_from"])).isoformat() if filing >= 0 else "",
            "filing_end": from_day_number(int(a["filing_to"])).isoformat() if filing >= 0 else "",
        }

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_rows(
        cls,
        policy: Policy,
        rows: list[dict[str, str]],
        *,
        source: str = "persons",
        lines: list[int] | None = None,
        columns: list[str] | None = None,
    ) -> Population:
        """Persons from rows of the persons file's columns (strings, as CSV gives them).

        A bad row fails with InvalidInput naming ``source``, the row (``lines``: the file's line of
        each row, when the rows came from a file) and the column (its number too, given ``columns``).
        """
        regions = {r.admdvs: i for i, r in enumerate(policy.regions)}
        attrs = np.zeros(len(rows), dtype=ATTR_DTYPE)
        balances = np.zeros(len(rows), dtype=np.int64)
        psn_nos: list[str] = []
        first_row_of: dict[str, int] = {}
        for i, row in enumerate(rows):
            try:
                psn_no = (row.get("psn_no") or "").strip()
                if not psn_no:
                    raise InvalidInput("psn_no is empty: every person needs one", field="psn_no")
                if psn_no in first_row_of:
                    raise InvalidInput(
                        f"psn_no {psn_no} repeats {_row_name(first_row_of[psn_no], lines)}", field="psn_no"
                    )
                balances[i] = cls._fill_attrs(attrs[i], row, regions)
            except InvalidInput as exc:
                raise InvalidInput(
                    f"{source} {_row_name(i, lines)}{_column_name(exc.field, columns)}: {exc.reason}"
                ) from None
            psn_nos.append(psn_no)
            first_row_of[psn_no] = i
        return cls(policy, psn_nos, attrs, balances)

    @staticmethod
    def _fill_attrs(a: np.ndarray, row: dict[str, str], regions: dict[str, int]) -> int:
        """Check one row and write its attributes into ``a``; its balance in fen."""
        insutype = row.get("insutype") or ""
        psn_type = row.get("psn_type") or ""
        if insutype not in INSUTYPE_INDEX:
            raise InvalidInput(f"unknown insutype {insutype!r}: 310 (employees) or 390 (residents)", field="insutype")
        if psn_type not in PSN_TYPES_OF_INSUTYPE[insutype]:
            raise InvalidInput(
                f"psn_type {psn_type!r} is not a person type of insutype {insutype} "
                f"({', '.join(PSN_TYPES_OF_INSUTYPE[insutype])})",
                field="psn_type",
            )
        region = row.get("insuplc_admdvs") or ""
        if region not in regions:
            raise InvalidInput(f"region {region!r} is not in the policy ({', '.join(regions)})", field="insuplc_admdvs")
        balance = money.to_fen(row.get("balance") or "0", "balance")
        if balance < 0:
            raise InvalidInput("must not be negative", field="balance")
        if balance > MAX_BALANCE_FEN:
            raise InvalidInput(f"{balance} fen is past the balance bound of {MAX_BALANCE_FEN} fen", field="balance")
        filing = row.get("filing_admdvs") or ""
        if filing and filing not in regions:
            raise InvalidInput(f"region {filing!r} is not in the policy ({', '.join(regions)})", field="filing_admdvs")
        a["insutype"] = INSUTYPE_INDEX[insutype]
        a["psn_type"] = PSN_TYPE_INDEX[psn_type]
        a["flags"] = (FLAG_ACTIVE if _flag(row.get("active"), "active", default=True) else 0) | (
            FLAG_ASSISTANCE if _flag(row.get("assistance"), "assistance", default=False) else 0
        )
        a["region"] = regions[region]
        a["run_start"] = _month(row.get("contrib_from") or "", "contrib_from")
        a["paid_through"] = _month(row.get("paid_through") or "", "paid_through")
        a["extra_wait"] = _count(row.get("extra_wait_months") or "0", "extra_wait_months")
        a["filing_region"] = regions[filing] if filing else NO_REGION
        if filing:
            a["filing_from"] = day_number(_date(row.get("filing_begin") or "", "filing_begin"))
            a["filing_to"] = day_number(_date(row.get("filing_end") or "", "filing_end"))
        return balance

    @classmethod
    def from_csv(cls, policy: Policy, path: str | Path) -> Population:
        """The persons of a persons file (CSV, line 1 naming the columns); InvalidInput naming the file,
        line and column of the first problem, so a file that is not one is refused, not half-read."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InvalidInput(
                f"{path}: no such persons file (make one with 'medsettle persons generate --out {path}')"
            ) from None
        except OSError as exc:
            raise InvalidInput(f"{path}: cannot read the persons file: {exc.strerror}") from None
        try:
            text = data.decode("utf-8-sig")  # -sig: the byte-order mark a spreadsheet writes is not a column
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise InvalidInput(
                f"{path} line {line}: not UTF-8 text (byte {exc.start}): a persons file is UTF-8 CSV"
            ) from None
        columns, rows, lines = _read_persons_csv(io.StringIO(text, newline=""), path)
        return cls.from_rows(policy, rows, source=str(path), lines=lines, columns=columns)

    def to_csv(self, path: str | Path) -> None:
        with Path(path).open("w", newline="", encoding="utf-8") as f:
            self.write_csv(f)

    def write_csv(self, f: IO[str]) -> None:
        """Write the persons file to an open text file (opened with ``newline=""``, as csv wants)."""
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for i in range(len(self)):
            d = self.describe(i)
            writer.writerow(
                {
                    **{
                        k: d[k]
                        for k in (
                            "psn_no",
                            "insutype",
                            "psn_type",
                            "insuplc_admdvs",
                            "contrib_from",
                            "paid_through",
                            "extra_wait_months",
                            "filing_admdvs",
                            "filing_begin",
                            "filing_end",
                        )
                    },
                    "balance": str(money.fen_to_decimal(int(self.balances[i]))),
                    "active": "1" if d["active"] else "0",
                    "assistance": "1" if d["assistance"] else "0",
                }
            )

    @classmethod
    def generate(
        cls, policy: Policy, n: int, *, seed: int = 0, as_of: dt.date = dt.date(2026, 1, 1), with_psn_nos: bool = True
    ) -> Population:
        """A seeded, vectorised population: 60% employees (80% in service), residents otherwise.

        Everyone is active with contributions running from before ``as_of`` (no waiting period),
        2% have the assistance identity, 3% hold a filing for the next region. ``with_psn_nos=False``
        skips the string ids (benchmarks with 10^8 persons).
        """
        rng = np.random.default_rng(seed)
        n_regions = len(policy.regions)
        attrs = np.zeros(n, dtype=ATTR_DTYPE)
        employee = rng.random(n) < 0.6
        attrs["insutype"] = np.where(employee, INSUTYPE_INDEX["310"], INSUTYPE_INDEX["390"])
        retired = rng.random(n) < 0.2
        minor = rng.random(n) < 0.25
        attrs["psn_type"] = np.where(
            employee,
            np.where(retired, PSN_TYPE_INDEX["12"], PSN_TYPE_INDEX["11"]),
            np.where(minor, PSN_TYPE_INDEX["1502"], PSN_TYPE_INDEX["1501"]),
        )
        attrs["flags"] = FLAG_ACTIVE | np.where(rng.random(n) < 0.02, FLAG_ASSISTANCE, 0).astype(np.uint8)
        region = rng.integers(0, n_regions, n)
        attrs["region"] = region
        as_of_month = as_of.year * 12 + as_of.month - 1
        attrs["run_start"] = as_of_month - rng.integers(6, 240, n)
        attrs["paid_through"] = as_of_month + 24  # contributions current for the simulated period
        filing = rng.random(n) < 0.03
        attrs["filing_region"] = np.where(filing, (region + 1) % n_regions, NO_REGION)
        attrs["filing_from"] = np.where(filing, day_number(as_of) - 30, 0)
        attrs["filing_to"] = np.where(filing, day_number(as_of) + 365, 0)
        balances = np.where(employee, rng.integers(0, 500_000, n), 0).astype(np.int64)
        codes = [r.admdvs for r in policy.regions]
        psn_nos = [f"{codes[r]}{i:014d}" for i, r in enumerate(region.tolist())] if with_psn_nos else _LazyPsnNos(n)
        return cls(policy, psn_nos, attrs, balances)


class _LazyPsnNos(list):
    """Stands in for 10^8 person ids in benchmarks: indexes make their id on demand."""

    def __init__(self, n: int):
        super().__init__()
        self._n = n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> str:  # type: ignore[override]  # ids by position only, never slices
        return f"BENCH{i:015d}"

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(self._n))

    def row_of(self, psn_no: str) -> int | None:
        """The row whose id is ``psn_no``, or None."""
        digits = psn_no[5:] if psn_no.startswith("BENCH") else ""
        row = int(digits) if len(digits) == 15 and digits.isdigit() else -1
        return row if 0 <= row < self._n else None
