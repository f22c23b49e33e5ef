"""The answers ``medsettle settle`` writes: one JSON line a bill, the settled bills' and the refused.

An answer is the text jsontext.dumps({"bill_id", "infcode": 0, "output": settlement.to_json()}) writes
(tests/test_settle_stream.py holds the two to the same bytes), made for a chunk of bills at once: the
pieces of every answer (the fixed text between values, the amounts' text, the ids' text) are laid out
in one numpy object array and joined once, which costs a few element copies per piece instead of some
hundred Python steps per bill. Pieces are str: joining str is about twice as quick as joining bytes.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import orjson

from ..errors import SettlementRefused
from ..money import bp_to_decimal
from ..policy import codes
from .columns import COL, LINE_COLUMNS, REFUSAL_MESSAGES, REFUSALS
from .results import AMOUNT_FIELDS


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
        text = "".join([name + _AMOUNT_TEXTS[fen] for name, fen in zip(_LINE_NAMES, values, strict=True)])
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
    ('{"bill_id":"', "bill_id"),
    ('","infcode":0,"output":{"setlinfo":{"setl_id":"', "setl_id"),
    ('","mdtrt_id":"', "mdtrt_id"),
    ('","psn_no":"', "psn_no"),
    ('","insutype":"', "insutype"),
    ('","psn_type":"', "psn_type"),
    ('","setl_time":"', "setl_time"),
    ('"' + _names(_BEFORE_RATIO)[0], _BEFORE_RATIO[0]),
    *zip(_names(_BEFORE_RATIO[1:]), _BEFORE_RATIO[1:], strict=True),
    (',"pool_prop_selfpay":', "pool_prop_selfpay"),
    *zip(_names(_AFTER_RATIO), _AFTER_RATIO, strict=True),
    (',"balc":', "balc"),
    (',"medins_setl_id":"', "bill_id"),
]
_HEAD_END = '"},"setldetail":['
_HEAD_AMOUNTS = [*_BEFORE_RATIO, *_AFTER_RATIO, "balc"]

# setldetail: a row for each fund that paid, in results.Settlement.setldetail's order.
_FUND_COLUMNS = ("hifp_pay", "hifob_pay", "hifmi_pay", "maf_pay", "acct_pay", "hosp_part_amt")
_FUND_CODES = {  # insutype -> the fund codes of _FUND_COLUMNS (any insutype but employee: resident)
    codes.EMPLOYEE: (
        codes.FUND_EMPLOYEE_POOLED,
        codes.FUND_LARGE_AMOUNT,
        codes.FUND_RESIDENT_CRITICAL,
        codes.FUND_ASSISTANCE,
        codes.FUND_EMPLOYEE_ACCOUNT,
        codes.FUND_INSTITUTION,
    ),
    codes.RESIDENT: (
        codes.FUND_RESIDENT_BASIC,
        codes.FUND_LARGE_AMOUNT,
        codes.FUND_RESIDENT_CRITICAL,
        codes.FUND_ASSISTANCE,
        codes.FUND_EMPLOYEE_ACCOUNT,
        codes.FUND_INSTITUTION,
    ),
}


def _fund_openings(separator: str) -> np.ndarray:
    """[employee, resident] x fund: the text before a fund's amount."""
    openings = np.empty((2, len(_FUND_COLUMNS)), object)
    for i, insutype in enumerate((codes.EMPLOYEE, codes.RESIDENT)):
        openings[i] = [f'{separator}{{"fund_pay_type":"{code}","fund_payamt":' for code in _FUND_CODES[insutype]]
    return openings


_FIRST_FUND, _NEXT_FUND = _fund_openings(""), _fund_openings("},")
# What closes setldetail, by (a fund paid?, a line split follows?).
_AFTER_FUNDS = {
    (True, True): '}],"feedetail":[',
    (False, True): '],"feedetail":[',
    (True, False): "}]}}\n",
    (False, False): "]}}\n",
}
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
    heads: list[str] | np.ndarray  # an object array once refusals are spread among them
    tails: list[str] | np.ndarray
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
    strings = _string_texts(
        [*settled.bill_ids, *settled.setl_ids, *settled.mdtrt_ids, *settled.psn_nos, *settled.feedetl_sns]
    )
    n = len(rows)
    values: dict[str, list[str]] = {
        "bill_id": strings[:n],
        "setl_id": strings[n : 2 * n],
        "mdtrt_id": strings[2 * n : 3 * n],
        "psn_no": strings[3 * n : 4 * n],
        "insutype": list(map(_CODE_TEXTS.__getitem__, settled.insutypes)),
        "psn_type": list(map(_CODE_TEXTS.__getitem__, settled.psn_types)),
        "setl_time": settled.setl_times,
        "pool_prop_selfpay": list(map(_RATIO_TEXTS.__getitem__, rows[:, COL["pool_prop_bp"]].tolist())),
    }
    amounts = _amount_texts(rows[:, [COL[name] for name in _HEAD_AMOUNTS]])
    values.update(zip(_HEAD_AMOUNTS, amounts.T.tolist(), strict=True))
    paid = rows[:, [COL[name] for name in _FUND_COLUMNS]] != 0
    closing = np.where(paid.any(axis=1), '}],"feedetail":[', '],"feedetail":[').tolist()
    columns = [column for text, value in _HEAD for column in (repeat(text), values[value])]
    columns += [repeat(_HEAD_END), *_fund_pieces(paid, amounts, settled.insutypes), closing]
    heads = list(map("".join, zip(*columns, strict=False)))  # the fixed texts repeat without end

    first = np.zeros(len(cells), bool)  # a bill's first line opens without "},"
    first[(np.cumsum(n_lines) - n_lines)[n_lines > 0]] = True
    openings = np.where(first, '{"feedetl_sn":"', '},{"feedetl_sn":"').tolist()
    splits = map(_LINE_TEXTS.__getitem__, np.ascontiguousarray(cells).view(_LINE_KEY).ravel().tolist())
    lines = list(map("".join, zip(openings, strings[4 * n :], splits, strict=True)))
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


_AMOUNT_TEXTS, _RATIO_TEXTS, SETL_TIME_TEXTS, _CODE_TEXTS = _AmountTexts(), _RatioTexts(), _TimeTexts(), _CodeTexts()
_LINE_TEXTS = _LineTexts()


def refusal_answer(bill_id: str, status: int, index: int) -> bytes:
    """A refused bill's answer. Its err_msg names the bill as settling a list of bills names it: by its
    bill_id, else its position (from 0)."""
    code = REFUSALS[status]
    message = str(SettlementRefused(code, REFUSAL_MESSAGES[status], bill=bill_id or index))
    return orjson.dumps({"bill_id": bill_id, "infcode": -1, "err_code": code, "err_msg": message}) + b"\n"


__all__ = ["SETL_TIME_TEXTS", "Settled", "refusal_answer", "render_answers"]
