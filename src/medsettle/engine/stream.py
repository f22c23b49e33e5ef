"""Settling a JSON-lines file of bills as a stream (``medsettle settle``): one line in, one answer out.

Two passes over the file. The first checks every bill as settling it would (the plain shape and the
quick route, or the Bill model and its resolution) and settles nothing, so an invalid bill still fails
the run before anything is settled; it keeps one byte per bill: whether the quick route takes it. The
second reads the file again and settles the bills in order, writing the answers a chunk at a time.
Standard input is spooled to a temporary file first, so that it can be read twice.

What it keeps does not grow with the number of bills: no settlement records (a stream cannot cancel),
and the admission keys of mdtrt_ids that no person's admission in progress holds are forgotten now and
then (:class:`StreamAdmissionKeys`).

Why it is quick: reading a bill and writing its answer must not cost more than settling it. The first
pass reads and checks a line in one go (pydantic-core, the plain shape's own validator); the second reads
it with orjson, exact for the plain shape (every amount a string: no number goes through float), and
does not check the shape again. Any other bill is read by the exact reader (numbers as Decimal) and
takes the model way, as ``Settler.settle`` would. Answers are written a chunk of bills at a time
(:func:`render_answers`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain, islice, repeat
from operator import attrgetter
from typing import IO, Self

import numpy as np
import orjson
from pydantic import ValidationError

from ..errors import MedsettleError, SettlementRefused
from ..money import bp_to_decimal
from ..policy import codes
from .bills import parse_bill, resolve_bill
from .columns import COL, COLUMNS, LINE_COLUMNS
from .core import CoreEngine
from .fastpath import fast_path
from .plainbill import _PLAIN as _PLAIN_SHAPE  # the plain shape's validator
from .results import AMOUNT_FIELDS, Settlement
from .settler import Settler


class BillsFileError(ValueError):
    """A bills file that cannot be settled: the message names the file, the line and what is wrong."""


# -- the file, read twice ------------------------------------------------------------------------------


class BillsFile:
    """A JSON-lines bills file that can be read twice, line by line, as bytes (standard input: spooled)."""

    def __init__(self, path: str, stdin: IO[bytes] | None = None):
        self.path = path
        self.name = "standard input" if path == "-" else path
        if path == "-":
            self._file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
            shutil.copyfileobj(stdin, self._file, 1 << 20)
        else:
            try:
                self._file = open(path, "rb")  # noqa: SIM115 (closed by close())
            except FileNotFoundError:
                raise BillsFileError(f"{path}: no such bills file: give the path of a JSON-lines file of bills "
                                     "(one bill a line, as 'medsettle bills generate' writes), or - for "
                                     "standard input") from None
            except OSError as exc:
                raise BillsFileError(f"{path}: cannot read the bills file: {exc.strerror}") from None

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """(line number, line) of every line that is not blank, from the start of the file."""
        self._file.seek(0)
        for number, line in enumerate(self._file, start=1):
            if not line.isspace():
                yield number, line

    def where(self, line_number: int) -> str:
        return f"{self.name}: line {line_number}"

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_plain(line: bytes) -> dict | None:
    """The line's bill in the plain shape counters send (plainbill.validate_plain's, read and checked in
    one go by pydantic-core, which is quicker than reading it first), or None: another shape, or not JSON.

    Strings are read as json reads them; numbers, which the plain shape has none of, may be read otherwise
    (NaN, 1e400 in a key it ignores), so a bill read here is read again by orjson or the exact reader."""
    try:
        return _PLAIN_SHAPE.validate_json(line)
    except ValidationError:
        return None


def read_exact(line: bytes, where: str) -> object:
    """The line's JSON with every number with a fraction as an exact Decimal (never through float).

    Raises BillsFileError for text that is not UTF-8 or not JSON, naming ``where`` (file and line)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BillsFileError(f"{where}: not UTF-8 text (byte 0x{line[exc.start]:02x} at column {exc.start + 1}): "
                             "save the bills file as UTF-8") from None
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise BillsFileError(f"{where}: not valid JSON: {exc.msg} (column {exc.colno}): "
                             "a bills file has one JSON object a line") from None


# -- admission keys that do not grow with the bills ----------------------------------------------------


class StreamAdmissionKeys:
    """The Settler's admission keys (mdtrt_id -> int, as bills.AdmissionKeys gives them) for a stream.

    A key only ever matters while it is some person's admission in progress (the engines compare a bill's
    key with its person's ``adm_id`` and nothing else, and a stream cancels nothing). ``keep_only`` forgets
    the others; if such an mdtrt_id comes again it gets a new key, which no person holds either, so every
    bill settles as it would have. New keys never reuse an old number.
    """

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
        """As AdmissionKeys.bind (journal replay; a stream does not replay)."""
        if self._keys.get(mdtrt_id, key) != key:
            raise ValueError(f"mdtrt_id {mdtrt_id!r} already has key {self._keys[mdtrt_id]}, not {key}")
        self._keys[mdtrt_id] = key
        self._next = max(self._next, key + 1)

    def keep_only(self, live: set[int]) -> None:
        """Forget every mdtrt_id whose key is not in ``live``."""
        self._keys = {mdtrt_id: k for mdtrt_id, k in self._keys.items() if k in live}

    def __len__(self) -> int:
        return len(self._keys)


class _NoAdmissionKeys:
    """The first pass's keys: it settles nothing, so it needs none (and keeps none)."""

    @staticmethod
    def key(mdtrt_id: str) -> int:
        return 0


def admissions_in_progress(settler: Settler, persons: set[int]) -> set[int]:
    """The admission keys some person's state holds (``persons``: those with a bill so far, for the
    reference engine, whose states are objects; the core's are one array, read whole)."""
    engine = settler.engine
    if isinstance(engine, CoreEngine):
        return set(np.unique(engine.state["adm_id"]).tolist())
    return {engine.get_state(p).adm_id for p in persons}


# -- answers -------------------------------------------------------------------------------------------
#
# An answer is the text jsontext.dumps({"bill_id", "infcode": 0, "output": settlement.to_json()}) writes
# (tests/test_settle_stream.py holds the two to the same bytes), made for a chunk of bills at once: the
# pieces of every answer (the fixed text between values, the amounts' text, the ids' text) are laid out
# in one numpy object array and joined once, which costs a few element copies per piece instead of some
# hundred Python steps per bill. Pieces are str: joining str is about twice as quick as joining bytes.


class _AmountTexts(dict):
    """int fen -> the JSON number of yuan with 2 places (1250 -> "12.50"), as jsontext writes an amount's
    Decimal; made on first use and kept (amounts repeat: a price, a balance)."""

    def __missing__(self, fen: int) -> str:
        whole, cents = divmod(-fen if fen < 0 else fen, 100)
        text = f"{'-' if fen < 0 else ''}{whole}.{cents:02d}"
        if len(self) < 1 << 16:
            self[fen] = text
        return text


class _RatioTexts(dict):
    """basis points -> pool_prop_selfpay's JSON number, exactly as results.setlinfo's Decimal writes it."""

    def __missing__(self, bp: int) -> str:
        text = self[bp] = str(bp_to_decimal(bp))
        return text


class _TimeTexts(dict):
    """setl_time -> "yyyy-MM-dd HH:mm:ss" (a stream's bills share few times)."""

    def __missing__(self, when: dt.datetime) -> str:
        text = when.strftime("%Y-%m-%d %H:%M:%S")
        if len(self) < 1 << 14:
            self[when] = text
        return text


class _LineTexts(dict):
    """A line's split (its LINE_COLUMNS' int64 bytes, as numpy gives them: trailing NULs dropped) -> its
    text after the feedetl_sn. Splits repeat (an item at a price, for a kind of person), so they are kept."""

    def __missing__(self, key: bytes) -> str:
        values = np.frombuffer(key.ljust(_LINE_KEY.itemsize, b"\0"), np.int64).tolist()
        text = "".join([name + _AMOUNT_TEXTS[fen] for name, fen in zip(_LINE_NAMES, values)])
        if len(self) < 1 << 16:
            self[key] = text
        return text


class _CodeTexts(dict):
    """A code (insutype, psn_type) -> its text inside JSON quotes."""

    def __missing__(self, code: str) -> str:
        text = self[code] = _escaped(code)
        return text


_SMALL_AMOUNTS = 1 << 15  # amounts from 0 to 327.67 yuan: their texts are looked up by numpy, not one by one
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]')  # what JSON escapes in a string (orjson: nothing else)


@functools.lru_cache(maxsize=1)
def _small_amount_texts() -> np.ndarray:
    texts = np.empty(_SMALL_AMOUNTS, object)
    texts[:] = [f"{fen // 100}.{fen % 100:02d}" for fen in range(_SMALL_AMOUNTS)]
    return texts


def _escaped(text: str) -> str:
    """``text`` as orjson writes it between the quotes of a JSON string."""
    return orjson.dumps(text)[1:-1].decode()


def _string_texts(strings: list[str]) -> list[str]:
    """Each string as it is written between JSON quotes: most need no escape (ids, codes, numbers)."""
    if _NEEDS_ESCAPE.search("".join(strings)):
        return [_escaped(text) if _NEEDS_ESCAPE.search(text) else text for text in strings]
    return strings


def _names(names: tuple[str, ...]) -> list[str]:
    return [f',"{name}":' for name in names]


# A settled bill's answer up to its setldetail: pairs of (text, the value that follows it), in the order of
# results.Settlement.to_json; string values are between quotes.
_BEFORE_RATIO, _AFTER_RATIO = AMOUNT_FIELDS[:7], AMOUNT_FIELDS[7:]
_HEAD = [
    ('{"bill_id":"', "bill_id"), ('","infcode":0,"output":{"setlinfo":{"setl_id":"', "setl_id"),
    ('","mdtrt_id":"', "mdtrt_id"), ('","psn_no":"', "psn_no"), ('","insutype":"', "insutype"),
    ('","psn_type":"', "psn_type"), ('","setl_time":"', "setl_time"),
    ('"' + _names(_BEFORE_RATIO)[0], _BEFORE_RATIO[0]), *zip(_names(_BEFORE_RATIO[1:]), _BEFORE_RATIO[1:]),
    (',"pool_prop_selfpay":', "pool_prop_selfpay"),
    *zip(_names(_AFTER_RATIO), _AFTER_RATIO),
    (',"balc":', "balc"), (',"medins_setl_id":"', "bill_id"),
]
_HEAD_END = '"},"setldetail":['
_HEAD_AMOUNTS = [*_BEFORE_RATIO, *_AFTER_RATIO, "balc"]

# setldetail: a row for each fund that paid, in results.Settlement.setldetail's order.
_FUND_COLUMNS = ("hifp_pay", "hifob_pay", "hifmi_pay", "maf_pay", "acct_pay", "hosp_part_amt")
_FUND_CODES = {  # insutype -> the fund codes of _FUND_COLUMNS (any insutype but employee: resident)
    codes.EMPLOYEE: (codes.FUND_EMPLOYEE_POOLED, codes.FUND_LARGE_AMOUNT, codes.FUND_RESIDENT_CRITICAL,
                     codes.FUND_ASSISTANCE, codes.FUND_EMPLOYEE_ACCOUNT, codes.FUND_INSTITUTION),
    codes.RESIDENT: (codes.FUND_RESIDENT_BASIC, codes.FUND_LARGE_AMOUNT, codes.FUND_RESIDENT_CRITICAL,
                     codes.FUND_ASSISTANCE, codes.FUND_EMPLOYEE_ACCOUNT, codes.FUND_INSTITUTION),
}


def _fund_openings(separator: str) -> np.ndarray:
    """[employee, resident] x fund: the text before a fund's amount."""
    openings = np.empty((2, len(_FUND_COLUMNS)), object)
    for i, insutype in enumerate((codes.EMPLOYEE, codes.RESIDENT)):
        openings[i] = [f'{separator}{{"fund_pay_type":"{code}","fund_payamt":' for code in _FUND_CODES[insutype]]
    return openings


_FIRST_FUND, _NEXT_FUND = _fund_openings(""), _fund_openings("},")
# What closes setldetail, by (a fund paid?, a line split follows?).
_AFTER_FUNDS = {(True, True): '}],"feedetail":[', (False, True): '],"feedetail":[',
                (True, False): "}]}}\n", (False, False): "]}}\n"}
# A line of the split: its opening ("},{" after the first), its feedetl_sn, then each amount after its name.
_LINE_NAMES = ['","' + LINE_COLUMNS[0] + '":', *_names(LINE_COLUMNS[1:])]
_LINE_KEY = np.dtype(f"S{8 * len(LINE_COLUMNS)}")  # a line's split as one bytes key (see _LineTexts)


def render_answers(entries: list[Settlement | bytes]) -> bytes:
    """The answers of a chunk of bills, one a line, in order: a Settlement is a settled bill's, bytes an
    answer already written (a refusal)."""
    k = len(entries)
    written = [i for i, entry in enumerate(entries) if type(entry) is bytes]
    settled = entries if not written else [entry for entry in entries if type(entry) is not bytes]
    heads, lines, n_lines, tails = _settled_texts(settled)
    if written:  # a written answer is a head without lines or tail
        at = np.setdiff1d(np.arange(k), written)
        heads, n_lines, tails = _spread(heads, at, k), _spread(n_lines, at, k), _spread(tails, at, k)
        heads[written] = [entries[i].decode() for i in written]
    # Bill i's texts: its head, one per line, its tail; they start at 2*i + the lines before it, so line l
    # (of all the chunk's) of bill i is at 2*i + 1 + l.
    bill_at = 2 * np.arange(k) + np.cumsum(n_lines) - n_lines
    texts = np.empty(2 * k + len(lines), object)
    texts[bill_at] = heads
    texts[2 * np.repeat(np.arange(k), n_lines) + 1 + np.arange(len(lines))] = lines
    texts[bill_at + 1 + n_lines] = tails
    return "".join(texts.tolist()).encode()


def _spread(values: np.ndarray | list, at: np.ndarray, k: int) -> np.ndarray:
    """``values`` (one per settled bill) at rows ``at`` of k rows, the others empty ("" or 0)."""
    values = np.asarray(values) if not isinstance(values, list) else np.array(values, object)
    spread = np.full(k, "" if values.dtype == object else 0, values.dtype)
    spread[at] = values
    return spread


def _settled_texts(settled: list[Settlement]) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """(the text of each answer up to its line split, of each line, lines per bill, each answer's tail)."""
    n = len(settled)
    rows = np.frombuffer(b"".join(map(_ROW_DATA, settled)), np.int64).reshape(n, len(COLUMNS))
    lines_data = list(map(_LINES_DATA, settled))
    has_lines = np.fromiter((data is not None for data in lines_data), bool, n)
    if not has_lines.all():
        lines_data = [data or b"" for data in lines_data]
    n_lines = np.fromiter(map(len, lines_data), np.int64, n) // (8 * len(LINE_COLUMNS))
    cells = np.frombuffer(b"".join(lines_data), np.int64).reshape(-1, len(LINE_COLUMNS))

    values: dict[str, list[str]] = {
        "bill_id": _string_texts(list(map(_BILL_ID, settled))), "setl_id": _string_texts(list(map(_SETL_ID, settled))),
        "mdtrt_id": _string_texts(list(map(_MDTRT_ID, settled))), "psn_no": _string_texts(list(map(_PSN_NO, settled))),
        "insutype": list(map(_CODE_TEXTS.__getitem__, map(_INSUTYPE, settled))),
        "psn_type": list(map(_CODE_TEXTS.__getitem__, map(_PSN_TYPE, settled))),
        "setl_time": list(map(_TIME_TEXTS.__getitem__, map(_SETL_TIME, settled))),
        "pool_prop_selfpay": list(map(_RATIO_TEXTS.__getitem__, rows[:, COL["pool_prop_bp"]].tolist())),
    }
    amounts = _amount_texts(rows[:, [COL[name] for name in _HEAD_AMOUNTS]])
    values.update(zip(_HEAD_AMOUNTS, amounts.T.tolist()))
    paid = rows[:, [COL[name] for name in _FUND_COLUMNS]] != 0
    any_paid = paid.any(axis=1)
    closing = np.where(has_lines, np.where(any_paid, _AFTER_FUNDS[True, True], _AFTER_FUNDS[False, True]),
                       np.where(any_paid, _AFTER_FUNDS[True, False], _AFTER_FUNDS[False, False]))
    columns = [column for text, value in _HEAD for column in (repeat(text), values[value])]
    columns += [repeat(_HEAD_END), *_fund_pieces(paid, amounts, values["insutype"]), closing.tolist()]
    heads = list(map("".join, zip(*columns)))

    first = np.zeros(len(cells), bool)  # a bill's first line opens without "},"
    first[(np.cumsum(n_lines) - n_lines)[n_lines > 0]] = True
    openings = np.where(first, '{"feedetl_sn":"', '},{"feedetl_sn":"').tolist()
    splits = map(_LINE_TEXTS.__getitem__, cells.view(_LINE_KEY).ravel().tolist())
    lines = list(map("".join, zip(openings, _string_texts(_line_numbers(settled, n_lines)), splits)))
    tails = np.where(n_lines > 0, "}]}}\n", np.where(has_lines, "]}}\n", "")).tolist()
    return heads, lines, n_lines, tails


def _fund_pieces(paid: np.ndarray, amounts: np.ndarray, insutypes: list[str]) -> list[list[str]]:
    """setldetail's pieces as columns: two per fund, its opening and its amount, both empty when it paid 0."""
    resident = np.array([insutype != codes.EMPLOYEE for insutype in insutypes], np.intp)
    before = np.cumsum(paid, axis=1) - paid  # funds paid before this one: the first opens without "},"
    opening = np.where(paid, np.where(before == 0, _FIRST_FUND[resident], _NEXT_FUND[resident]), "")
    amount = np.where(paid, amounts[:, [_HEAD_AMOUNTS.index(name) for name in _FUND_COLUMNS]], "")
    return [column for f in range(len(_FUND_COLUMNS)) for column in (opening[:, f].tolist(), amount[:, f].tolist())]


def _line_numbers(settled: list[Settlement], n_lines: np.ndarray) -> list[str]:
    """Every line's feedetl_sn, in order (a record without one for a line: its number, from 1)."""
    sns = list(map(_FEEDETL_SNS, settled))
    if np.array_equal(np.fromiter(map(len, sns), np.int64, len(sns)), n_lines):
        return list(chain.from_iterable(sns))
    return [sn[j] if j < len(sn) else str(j + 1) for sn, count in zip(sns, n_lines.tolist()) for j in range(count)]


def _amount_texts(values: np.ndarray) -> np.ndarray:
    """The JSON text of each amount in fen (an object array of the same shape)."""
    flat = values.ravel()
    texts = np.empty(flat.shape, object)
    small = (flat >= 0) & (flat < _SMALL_AMOUNTS)
    texts[small] = _small_amount_texts()[flat[small]]
    if not small.all():
        texts[~small] = list(map(_AMOUNT_TEXTS.__getitem__, flat[~small].tolist()))
    return texts.reshape(values.shape)


_ROW_DATA, _LINES_DATA, _FEEDETL_SNS = attrgetter("row_data"), attrgetter("lines_data"), attrgetter("feedetl_sns")
_BILL_ID, _SETL_ID, _MDTRT_ID, _PSN_NO = (attrgetter("bill_id"), attrgetter("setl_id"), attrgetter("mdtrt_id"),
                                          attrgetter("psn_no"))
_INSUTYPE, _PSN_TYPE, _SETL_TIME = attrgetter("insutype"), attrgetter("psn_type"), attrgetter("setl_time")
_AMOUNT_TEXTS, _RATIO_TEXTS, _TIME_TEXTS, _CODE_TEXTS = _AmountTexts(), _RatioTexts(), _TimeTexts(), _CodeTexts()
_LINE_TEXTS = _LineTexts()


class AnswerWriter:
    """Writes the answers of each chunk of bills as one piece of bytes (:func:`render_answers`)."""

    def __init__(self, out: IO[bytes]):
        self._out = out

    def write(self, answers: list[Settlement | bytes]) -> None:
        """``answers``: a Settlement for a settled bill, bytes for an answer already written (a refusal)."""
        if answers:
            self._out.write(render_answers(answers))

    def flush(self) -> None:
        self._out.flush()


# -- progress ------------------------------------------------------------------------------------------


def progress_wanted(stream: IO[str]) -> bool:
    """Progress is shown on a terminal only: a pipe or a file gets nothing (a log wants no \\r lines)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


class Progress:
    """One line on a terminal, rewritten at most a few times a second: what is done, how fast."""

    EVERY = 1024  # bills between looks at the clock

    def __init__(self, stream: IO[str] | None, verb: str, total: int | None = None):
        self._stream, self._verb, self._total = stream, verb, total
        self._start = self._shown = time.monotonic()

    def update(self, done: int) -> None:
        if self._stream is None or done % self.EVERY:
            return
        now = time.monotonic()
        if now - self._shown >= 0.25:
            self._shown = now
            self._show(done, now)

    def finish(self, done: int) -> None:
        if self._stream is not None:
            self._show(done, time.monotonic())
            self._stream.write("\n")
            self._stream.flush()

    def _show(self, done: int, now: float) -> None:
        of = f" of {self._total:,}" if self._total is not None else ""
        rate = done / max(now - self._start, 1e-9)
        self._stream.write(f"\r{self._verb} {done:,}{of} bills ({rate:,.0f} bills/s)")
        self._stream.flush()


# -- the two passes ------------------------------------------------------------------------------------


@dataclass
class StreamSummary:
    bills: int
    settled: int
    refused: int


class BillStream:
    """Checks then settles a :class:`BillsFile` on one Settler, writing answers to an :class:`AnswerWriter`.

    The Settler must be fresh (no bill yet): its admission keys are replaced by :class:`StreamAdmissionKeys`.
    """

    CHUNK = 2048  # bills read, settled and answered at a time
    FORGET_EVERY = 1 << 16  # new admission keys between looks at which are still in progress

    def __init__(self, settler: Settler, *, presettle: bool = False,
                 progress: Callable[[str, int | None], Progress] | None = None):
        self.settler = settler
        self.presettle = presettle
        self.keys = settler.admissions = StreamAdmissionKeys()
        self._progress = progress or (lambda verb, total: Progress(None, verb, total))
        self._quick: bytearray = bytearray()  # per bill: 1 when the quick route takes it

    def check(self, bills: BillsFile) -> int:
        """The first pass: every bill checked, nothing settled; the number of bills. Raises BillsFileError
        naming the file, line, bill and field of the first invalid bill."""
        route = fast_path(self.settler.engine, _NoAdmissionKeys()).route
        quick = self._quick = bytearray()
        progress = self._progress("checked", None)
        validate_json = _PLAIN_SHAPE.validate_json
        for chunk in _chunks(bills.lines(), self.CHUNK):
            for number, line in chunk:
                try:  # read_plain, inline: this loop runs once per bill
                    plain = validate_json(line)
                except ValidationError:
                    plain = None
                if plain is not None and route(plain) is not None:
                    quick.append(1)
                else:
                    self._check_model(read_exact(line, bills.where(number)), bills.where(number))
                    quick.append(0)
            progress.update(len(quick))
        progress.finish(len(quick))
        return len(quick)

    def _check_model(self, bill: object, where: str) -> None:
        settler = self.settler
        try:
            model = parse_bill(bill)
            resolve_bill(model, settler.compiled, settler.population, _NoAdmissionKeys())
        except MedsettleError as exc:
            raise BillsFileError(f"{where}: {exc.code}: {exc} (nothing was settled: correct the bill and "
                                 "run again)") from None

    def settle(self, bills: BillsFile, writer: AnswerWriter) -> StreamSummary:
        """The second pass (after :meth:`check`): settle the bills in order, one answer each."""
        quick, keys = self._quick, self.keys
        settler, presettle = self.settler, self.presettle
        settle_plain, loads = settler.settle_plain, orjson.loads
        settle_model = settler.presettle if presettle else (lambda bill: settler.settle(bill, keep_record=False))
        persons: set[int] = set()  # for the reference engine's admissions in progress
        track_persons = not isinstance(settler.engine, CoreEngine)
        forget_at = self.FORGET_EVERY
        refused = index = 0
        progress = self._progress("settled", len(quick))
        for chunk in _chunks(bills.lines(), self.CHUNK):
            if index + len(chunk) > len(quick):
                raise BillsFileError(f"{bills.name}: the file changed while it was being settled")
            answers: list[Settlement | bytes] = []
            for number, line in chunk:
                try:
                    result = None
                    if quick[index]:
                        try:
                            bill = loads(line)
                        except orjson.JSONDecodeError:  # a number orjson does not read, in a key the shape ignores
                            pass
                        else:
                            result = settle_plain(bill, presettle=presettle)
                    if result is None:  # the model way, as Settler.settle takes it
                        bill = read_exact(line, bills.where(number))
                        result = settle_model(bill)
                except SettlementRefused as exc:
                    refused += 1
                    answers.append(_refusal(bill.get("bill_id", ""), exc, index))
                else:
                    answers.append(result)
                    if track_persons:
                        persons.add(result.person)
                index += 1
            writer.write(answers)
            if len(keys) >= forget_at:
                keys.keep_only(admissions_in_progress(settler, persons))
                forget_at = len(keys) + self.FORGET_EVERY
            progress.update(index)
        writer.flush()
        progress.finish(index)
        return StreamSummary(index, index - refused, refused)


def _refusal(bill_id: object, exc: SettlementRefused, index: int) -> bytes:
    """A refused bill's answer. Its err_msg names the bill as settling a list of bills names it: by its
    bill_id, else its position (from 0)."""
    message = str(SettlementRefused(exc.code, exc.reason, bill=bill_id or index))
    return orjson.dumps({"bill_id": bill_id, "infcode": -1, "err_code": exc.code, "err_msg": message}) + b"\n"


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    """``items`` in lists of ``size`` (the last may be shorter)."""
    while chunk := list(islice(items, size)):
        yield chunk


def settle_file(settler: Settler, bills: BillsFile, out: IO[bytes], *, presettle: bool = False,
                progress_to: IO[str] | None = None) -> StreamSummary:
    """Check every bill of ``bills``, then settle them in order, writing one JSON answer a line to ``out``.

    ``progress_to``: where progress goes (a terminal), or None for none."""
    stream = BillStream(settler, presettle=presettle,
                        progress=lambda verb, total: Progress(progress_to, verb, total))
    stream.check(bills)
    return stream.settle(bills, AnswerWriter(out))


__all__ = ["AnswerWriter", "BillStream", "BillsFile", "BillsFileError", "Progress",
           "StreamAdmissionKeys", "progress_wanted", "read_exact", "read_plain", "settle_file"]
