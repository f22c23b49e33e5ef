"""Settling a JSON-lines file of bills as a stream (``medsettle settle``): line by line, a chunk at a time.

Two passes. The first reads the bills (a file or standard input) and checks each as settling it would:
the plain shape and the quick route, or the Bill model and its resolution. It settles nothing, so an
invalid bill still fails the run before anything is settled or written; what it resolved (the indices
the engines take, the ids an answer repeats) goes to a temporary file, a chunk of bills at a time. The
second pass settles the spooled chunks in order, each as a batch (Settler.run_batch: the path the
command always took, which settled the list of bills as a batch), and writes their answers.

What it keeps does not grow with the number of bills: no settlement records (a stream cancels
nothing), and the admission keys of mdtrt_ids that no person's admission in progress holds are
forgotten now and then (:class:`StreamAdmissionKeys`).

Why it is quick: reading a bill and writing its answer must cost no more than settling it. A line is
read and checked in one go by pydantic-core (the plain shape's own validator reading JSON: strings
only, no number through float) and resolved by the quick route once; any other bill is read by the
exact reader (numbers as Decimal) and takes the model way, as ``Settler.settle`` would. Settling a
chunk is one engine call, and its answers are written together (:func:`render_answers`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import marshal
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain, compress, count, islice, repeat
from typing import IO, Self

import numpy as np
import orjson
from pydantic import ValidationError

from ..errors import MedsettleError, SettlementRefused
from ..money import bp_to_decimal
from ..policy import codes
from ..policy.codes import INSUTYPES, PSN_TYPES
from .bills import BillBatch, ResolvedBill, parse_bill, resolve_bill
from .columns import COL, LINE_COLUMNS, REFUSAL_MESSAGES, REFUSALS
from .core import CoreEngine
from .fastpath import fast_path
from .plainbill import PLAIN_SHAPE as _PLAIN_SHAPE  # the plain shape's validator
from .plainbill import BillHead
from .results import AMOUNT_FIELDS
from .settler import Settler


class BillsFileError(ValueError):
    """A bills file that cannot be settled: the message names the file, the line and what is wrong."""


# -- the bills, read once ------------------------------------------------------------------------------


class BillsFile:
    """A JSON-lines bills file (or standard input), read once, line by line, as bytes."""

    def __init__(self, path: str, stdin: IO[bytes] | None = None):
        self.path = path
        self.name = "standard input" if path == "-" else path
        if path == "-":
            self._file = stdin
            self._close = False
            return
        try:
            self._file = open(path, "rb")  # noqa: SIM115 (closed by close())
        except FileNotFoundError:
            raise BillsFileError(f"{path}: no such bills file: give the path of a JSON-lines file of bills "
                                 "(one bill a line, as 'medsettle bills generate' writes), or - for "
                                 "standard input") from None
        except OSError as exc:
            raise BillsFileError(f"{path}: cannot read the bills file: {exc.strerror}") from None
        self._close = True

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """(line number, line) of every line that is not blank."""
        for number, line in enumerate(self._file, start=1):
            if not line.isspace():
                yield number, line

    def where(self, line_number: int) -> str:
        return f"{self.name}: line {line_number}"

    def close(self) -> None:
        if self._close:
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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
    bill settles as it would have. New keys never reuse an old number. ``key`` is a dict's own lookup
    (a missing mdtrt_id takes the next number): no Python call per bill. A stream replays no journal, so
    there is no ``bind``.
    """

    def __init__(self) -> None:
        self._keys: defaultdict[str, int] = defaultdict(count().__next__)
        self.key = self._keys.__getitem__

    def keep_only(self, live: set[int]) -> None:
        """Forget every mdtrt_id whose key is not in ``live``."""
        for mdtrt_id in [mdtrt_id for mdtrt_id, k in self._keys.items() if k not in live]:
            del self._keys[mdtrt_id]

    def __len__(self) -> int:
        return len(self._keys)


class _NoAdmissionKeys:
    """The first pass's keys: it settles nothing, so any int will do (and none is kept)."""

    key = len


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


@dataclass
class Settled:
    """What the answers of a chunk's settled bills are written from, one entry per bill, in order."""

    rows: np.ndarray  # result rows, columns.COLUMNS
    cells: np.ndarray  # their line splits (LINE_COLUMNS), bill after bill
    n_lines: np.ndarray  # lines per bill
    bill_ids: list[str]
    setl_ids: list[str]
    mdtrt_ids: list[str]
    psn_nos: list[str]
    insutypes: list[str]
    psn_types: list[str]
    setl_times: list[str]  # "yyyy-MM-dd HH:mm:ss"
    feedetl_sns: list[str]  # every line's


def render_answers(settled: Settled, refusals: dict[int, bytes]) -> bytes:
    """The answers of a chunk of bills, one a line, in order: the settled bills' and, at their positions
    among them, the answers of refused bills (already written)."""
    heads, lines, tails = _settled_texts(settled)
    n_lines = settled.n_lines
    k = len(heads) + len(refusals)
    if refusals:  # a refusal's answer takes a head's place, without lines or tail
        at = np.setdiff1d(np.arange(k), list(refusals))
        heads, n_lines, tails = _spread(heads, at, k), _spread(n_lines, at, k), _spread(tails, at, k)
        heads[list(refusals)] = [answer.decode() for answer in refusals.values()]
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
    values = np.array(values, object) if isinstance(values, list) else values
    spread = np.full(k, "" if values.dtype == object else 0, values.dtype)
    spread[at] = values
    return spread


def _settled_texts(settled: Settled) -> tuple[list[str], list[str], list[str]]:
    """(the text of each answer up to its line split, of each line, each answer's tail)."""
    rows, cells, n_lines = settled.rows, settled.cells, settled.n_lines
    strings = _string_texts([*settled.bill_ids, *settled.setl_ids, *settled.mdtrt_ids, *settled.psn_nos,
                             *settled.feedetl_sns])
    n = len(rows)
    values: dict[str, list[str]] = {
        "bill_id": strings[:n], "setl_id": strings[n:2 * n], "mdtrt_id": strings[2 * n:3 * n],
        "psn_no": strings[3 * n:4 * n],
        "insutype": list(map(_CODE_TEXTS.__getitem__, settled.insutypes)),
        "psn_type": list(map(_CODE_TEXTS.__getitem__, settled.psn_types)),
        "setl_time": settled.setl_times,
        "pool_prop_selfpay": list(map(_RATIO_TEXTS.__getitem__, rows[:, COL["pool_prop_bp"]].tolist())),
    }
    amounts = _amount_texts(rows[:, [COL[name] for name in _HEAD_AMOUNTS]])
    values.update(zip(_HEAD_AMOUNTS, amounts.T.tolist()))
    paid = rows[:, [COL[name] for name in _FUND_COLUMNS]] != 0
    closing = np.where(paid.any(axis=1), '}],"feedetail":[', '],"feedetail":[').tolist()
    columns = [column for text, value in _HEAD for column in (repeat(text), values[value])]
    columns += [repeat(_HEAD_END), *_fund_pieces(paid, amounts, settled.insutypes), closing]
    heads = list(map("".join, zip(*columns)))

    first = np.zeros(len(cells), bool)  # a bill's first line opens without "},"
    first[(np.cumsum(n_lines) - n_lines)[n_lines > 0]] = True
    openings = np.where(first, '{"feedetl_sn":"', '},{"feedetl_sn":"').tolist()
    splits = map(_LINE_TEXTS.__getitem__, np.ascontiguousarray(cells).view(_LINE_KEY).ravel().tolist())
    lines = list(map("".join, zip(openings, strings[4 * n:], splits)))
    tails = np.where(n_lines > 0, "}]}}\n", "]}}\n").tolist()
    return heads, lines, tails


def _fund_pieces(paid: np.ndarray, amounts: np.ndarray, insutypes: list[str]) -> list[list[str]]:
    """setldetail's pieces as columns: two per fund, its opening and its amount, both empty when it paid 0."""
    resident = np.array([insutype != codes.EMPLOYEE for insutype in insutypes], np.intp)
    before = np.cumsum(paid, axis=1) - paid  # funds paid before this one: the first opens without "},"
    opening = np.where(paid, np.where(before == 0, _FIRST_FUND[resident], _NEXT_FUND[resident]), "")
    amount = np.where(paid, amounts[:, [_HEAD_AMOUNTS.index(name) for name in _FUND_COLUMNS]], "")
    return [column for f in range(len(_FUND_COLUMNS)) for column in (opening[:, f].tolist(), amount[:, f].tolist())]


def _amount_texts(values: np.ndarray) -> np.ndarray:
    """The JSON text of each amount in fen (an object array of the same shape)."""
    flat = values.ravel()
    texts = np.empty(flat.shape, object)
    small = (flat >= 0) & (flat < _SMALL_AMOUNTS)
    texts[small] = _small_amount_texts()[flat[small]]
    if not small.all():
        texts[~small] = list(map(_AMOUNT_TEXTS.__getitem__, flat[~small].tolist()))
    return texts.reshape(values.shape)


_AMOUNT_TEXTS, _RATIO_TEXTS, _TIME_TEXTS, _CODE_TEXTS = _AmountTexts(), _RatioTexts(), _TimeTexts(), _CodeTexts()
_LINE_TEXTS = _LineTexts()


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

    def _show(self, done: int, now: float) -> None:  # ok-float: a monotonic time
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


class _ChunkOfBills:
    """A chunk of checked bills, resolved as the engines take them: what the first pass spools for the
    second (with marshal: quick to write and read back, and only what the second pass needs)."""

    def __init__(self) -> None:
        self.args: list[int] = []  # per bill: person, day, med_type, tier, treat_region, acct_flag, -, saf_cash, lines
        self.items: list[bytes] = []
        self.prices: list[bytes] = []
        self.counts: list[bytes] = []
        self.apprs: list[bytes] = []
        self.heads: list[BillHead] = []

    def add_routed(self, args: tuple, head: BillHead, fast) -> None:
        """A bill the quick route resolved (its lines in ``fast``'s input buffers). The first pass runs
        this once per bill: as few steps as can be (args as the route gives them, adm and all)."""
        n = args[8]
        self.args += args
        self.items.append(fast.item_in[:n].tobytes())
        self.prices.append(fast.pric_in[:n].tobytes())
        self.counts.append(fast.cnt_in[:n].tobytes())
        self.apprs.append(fast.appr_in[:n].tobytes())
        self.heads.append(head)

    def add_resolved(self, r: ResolvedBill, head: BillHead) -> None:
        """A bill the model way resolved."""
        self.args += (*r[:8], len(r.items))
        self.items.append(np.array(r.items, np.int32).tobytes())
        self.prices.append(np.array(r.prices, np.int64).tobytes())
        self.counts.append(np.array(r.cnts, np.int64).tobytes())
        self.apprs.append(np.array(r.apprs, np.uint8).tobytes())
        self.heads.append(head)

    def spool(self, compiled, n_persons: int, to: IO[bytes]) -> None:
        """Check the chunk as a batch (what the second pass settles cannot fail) and write it to ``to``."""
        parts = (np.array(self.args, np.int64).tobytes(), b"".join(self.items), b"".join(self.prices),
                 b"".join(self.counts), b"".join(self.apprs), [h.bill_id for h in self.heads],
                 [h.psn_no for h in self.heads], [h.mdtrt_id for h in self.heads],
                 list(map(_TIME_TEXTS.__getitem__, [h.setl_time for h in self.heads])),
                 [h.feedetl_sns for h in self.heads])
        _batch_of(parts, np.zeros(len(self.heads), np.int32)).validate(compiled, n_persons)
        data = marshal.dumps(parts)
        to.write(len(data).to_bytes(8, "little") + data)  # marshal.load from a file reads in tiny pieces


def _unspool(spool: IO[bytes]) -> tuple:
    """The next chunk that _ChunkOfBills.spool wrote."""
    size = int.from_bytes(spool.read(8), "little")
    return marshal.loads(spool.read(size))


def _batch_of(parts: tuple, adm: np.ndarray) -> BillBatch:
    """The batch of a spooled chunk, with its bills' admission keys."""
    args = np.frombuffer(parts[0], np.int64).reshape(-1, 9)  # the route's arguments (its adm: not this one)
    line_start = np.zeros(len(args) + 1, np.int64)
    np.cumsum(args[:, 8], out=line_start[1:])
    return BillBatch.from_columns(
        person=args[:, 0], day=args[:, 1], med_type=args[:, 2], tier=args[:, 3], treat_region=args[:, 4],
        acct_flag=args[:, 5], saf_cash=args[:, 7], adm=adm, line_start=line_start,
        item=np.frombuffer(parts[1], np.int32), pric=np.frombuffer(parts[2], np.int64),
        cnt=np.frombuffer(parts[3], np.int64), appr=np.frombuffer(parts[4], np.uint8), bill_ids=parts[5])


class BillStream:
    """Checks then settles a :class:`BillsFile` on one Settler, writing one answer a bill to ``out``.

    The first pass resolves every bill and spools the resolved chunks to a temporary file; the second
    settles each chunk as a batch (Settler.run_batch, the path the command always took) and writes its
    answers. The Settler must be fresh (no bill yet): its admission keys become :class:`StreamAdmissionKeys`.
    """

    CHUNK = 2048  # bills read, settled and answered at a time
    FORGET_EVERY = 1 << 16  # new admission keys between looks at which are still in progress

    def __init__(self, settler: Settler, *, presettle: bool = False,
                 progress: Callable[[str, int | None], Progress] | None = None):
        self.settler = settler
        self.presettle = presettle
        self.keys = settler.admissions = StreamAdmissionKeys()
        self._progress = progress or (lambda verb, total: Progress(None, verb, total))
        self._spool: IO[bytes] | None = None
        self._chunks = 0
        self.bills = 0

    def check(self, bills: BillsFile) -> int:
        """The first pass: every bill checked and resolved, nothing settled; the number of bills. Raises
        BillsFileError naming the file, line, bill and field of the first invalid bill."""
        settler = self.settler
        fast = fast_path(settler.engine, _NoAdmissionKeys())
        route, validate_json = fast.route, _PLAIN_SHAPE.validate_json
        spool = self._spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        progress = self._progress("checked", None)
        self.bills = self._chunks = 0
        for lines in _chunks(bills.lines(), self.CHUNK):
            chunk = _ChunkOfBills()
            for number, line in lines:
                try:  # JSON read and the plain shape checked in one go
                    plain = validate_json(line)
                except ValidationError:
                    plain = None
                routed = None if plain is None else route(plain)
                if routed is not None:
                    chunk.add_routed(*routed, fast)
                else:
                    chunk.add_resolved(*self._resolve(read_exact(line, bills.where(number)), bills.where(number)))
            try:
                chunk.spool(settler.compiled, len(settler.population), spool)
            except MedsettleError as exc:  # what the route or the model let through, the batch refuses
                raise BillsFileError(f"{bills.name}: {exc.code}: {exc} (nothing was settled)") from None
            self.bills += len(lines)
            self._chunks += 1
            progress.update(self.bills)
        progress.finish(self.bills)
        return self.bills

    def _resolve(self, bill: object, where: str) -> tuple[ResolvedBill, BillHead]:
        settler = self.settler
        try:
            model = parse_bill(bill)
            return resolve_bill(model, settler.compiled, settler.population, _NoAdmissionKeys()), BillHead.of(model)
        except MedsettleError as exc:
            raise BillsFileError(f"{where}: {exc.code}: {exc} (nothing was settled: correct the bill and "
                                 "run again)") from None

    def settle(self, out: IO[bytes]) -> StreamSummary:
        """The second pass (after :meth:`check`): settle the bills in order, one answer each."""
        settler, keys, spool = self.settler, self.keys, self._spool
        insutype_of = np.array(INSUTYPES, object)[settler.population.attrs["insutype"]]
        psn_type_of = np.array(PSN_TYPES, object)[settler.population.attrs["psn_type"]]
        persons: set[int] = set()  # for the reference engine's admissions in progress
        track_persons = not isinstance(settler.engine, CoreEngine)
        forget_at, done, refused = self.FORGET_EVERY, 0, 0
        progress = self._progress("settled", self.bills)
        spool.seek(0)
        for _ in range(self._chunks):
            parts = _unspool(spool)
            bill_ids, psn_nos, mdtrt_ids, setl_times, sns = parts[5:]
            batch = _batch_of(parts, np.fromiter(map(keys.key, mdtrt_ids), np.int32, len(mdtrt_ids)))
            result = settler.run_batch(batch, presettle=self.presettle, validate=False)  # checked when spooled
            status = result.column("status")
            ok = status == 0
            refusals = {int(i): _refusal(bill_ids[i], int(status[i]), done + int(i)) for i in np.flatnonzero(~ok)}
            pick = functools.partial(_settled_only, ok.tolist() if refusals else None)
            n_lines = np.diff(batch.line_start)
            persons_ok = batch.person[ok]
            answers = Settled(
                rows=result.out[ok], cells=result.lines[np.repeat(ok, n_lines)], n_lines=n_lines[ok],
                bill_ids=pick(bill_ids), setl_ids=self._setl_ids(int(ok.sum())), mdtrt_ids=pick(mdtrt_ids),
                psn_nos=pick(psn_nos), insutypes=insutype_of[persons_ok].tolist(),
                psn_types=psn_type_of[persons_ok].tolist(), setl_times=pick(setl_times),
                feedetl_sns=list(chain.from_iterable(pick(sns))))
            out.write(render_answers(answers, refusals))
            if track_persons:
                persons.update(batch.person.tolist())
            if len(keys) >= forget_at:
                keys.keep_only(admissions_in_progress(settler, persons))
                forget_at = len(keys) + self.FORGET_EVERY
            done += len(status)
            refused += len(refusals)
            progress.update(done)
        out.flush()
        progress.finish(done)
        return StreamSummary(done, done - refused, refused)

    def _setl_ids(self, n: int) -> list[str]:
        return [""] * n if self.presettle else self.settler.new_setl_ids(n)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()


def _settled_only(ok: list[bool] | None, items: list) -> list:
    """The items of the settled bills (all of them when ``ok`` is None: none was refused)."""
    return items if ok is None else list(compress(items, ok))


def _refusal(bill_id: str, status: int, index: int) -> bytes:
    """A refused bill's answer. Its err_msg names the bill as settling a list of bills names it: by its
    bill_id, else its position (from 0)."""
    code = REFUSALS[status]
    message = str(SettlementRefused(code, REFUSAL_MESSAGES[status], bill=bill_id or index))
    return orjson.dumps({"bill_id": bill_id, "infcode": -1, "err_code": code, "err_msg": message}) + b"\n"


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
    try:
        stream.check(bills)
        return stream.settle(out)
    finally:
        stream.close()


__all__ = ["BillStream", "BillsFile", "BillsFileError", "Progress", "Settled", "StreamAdmissionKeys",
           "progress_wanted", "read_exact", "render_answers", "settle_file"]
