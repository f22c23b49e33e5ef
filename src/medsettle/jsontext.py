"""JSON text for the wire, the journal and request hashes: orjson, with Decimal amounts written exactly.

A Decimal is written as the number it holds (12.50 stays 12.50, never through float), as the
platform's amounts are. orjson is several times faster than simplejson here (a settlement's answer
takes about 4 µs instead of 24), and the centre writes three such texts per request.
"""

from __future__ import annotations

import functools
import json
import re
from decimal import Decimal
from typing import Any

import numpy as np
import orjson

from .errors import InvalidInput

_OPTIONS = orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError(f"{value} is not a JSON number")
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@functools.lru_cache(maxsize=1 << 16)
def fen_number(fen: int) -> orjson.Fragment:
    """int fen as the JSON number of yuan with 2 places (1250 -> 12.50), already written: orjson copies
    it as it is. The centre's answers carry some 25 amounts each; a Decimal would cost a call back into
    Python per amount every time the answer is written. Most amounts of an answer are 0 or repeat (a
    price, a balance), so the texts are kept (a Fragment is immutable and may be shared)."""
    whole, cents = divmod(fen if fen >= 0 else -fen, 100)
    return orjson.Fragment(f"{'-' if fen < 0 else ''}{whole}.{cents:02d}")


def dumps_bytes(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact UTF-8 JSON (no spaces, non-ASCII kept), Decimals exact; ``sort_keys`` for canonical text."""
    return orjson.dumps(value, default=_default, option=(_OPTIONS | orjson.OPT_SORT_KEYS) if sort_keys else _OPTIONS)


def dumps(value: Any, *, sort_keys: bool = False) -> str:
    """``dumps_bytes`` as text."""
    return dumps_bytes(value, sort_keys=sort_keys).decode()


def loads(text: bytes | str) -> Any:
    """JSON text back to Python, numbers with a fraction as Decimal (exact): text this program wrote (the
    journal, an answer). A body from outside is read by :func:`loads_request`."""
    return json.loads(text, parse_float=Decimal)


MAX_DEPTH = 64  # arrays and objects nested in a request body (docs/messages.md); a request needs 4
MAX_NUMBER_CHARS = 100  # a number's text in a request body; an amount needs 13
MAX_NUMBER_EXPONENT = 40  # a request's number is below 10^40 in magnitude, and 0 or at least 10^-40


def loads_request(raw: bytes, *, decimals: bool = True) -> Any:
    """A request body from outside (the envelope, the admin API) as Python, or InvalidInput naming what is
    wrong with it, before anything walks it:

    - text in the encoding JSON's first bytes say (UTF-8 but for a UTF-16 or UTF-32 body), strictly: a lone
      surrogate written as its UTF-8 bytes is not text (the json module would let it through);
    - arrays and objects nested at most :data:`MAX_DEPTH` deep, checked on the text, so no recursive walk
      (the parser, the null-stripping, the models) ever meets a deeper value;
    - numbers of at most :data:`MAX_NUMBER_CHARS` characters and magnitude within 10^±40: a number such as
      1e999999999 is refused here, where Decimal arithmetic on it would overflow or an int of a billion digits
      be made; NaN and Infinity are not JSON numbers. Bounds of each field are the models'.

    Numbers with a fraction or an exponent are Decimal (exact), or float if ``decimals`` is False (the admin
    API, whose amounts are text)."""
    try:
        encoding = json.detect_encoding(raw)
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        surrogate = raw[exc.start : exc.start + 1] == b"\xed" and raw[exc.start + 1 : exc.start + 2] >= b"\xa0"
        reason = "a lone UTF-16 surrogate written as UTF-8 bytes, which is not text" if surrogate else exc.reason
        name = "UTF-8" if encoding.startswith("utf-8") else encoding.upper()
        raise InvalidInput(f"the body is not JSON: not {name} text at byte {exc.start} ({reason})") from None
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:
        raise InvalidInput(f"the body is nested too deeply: at most {MAX_DEPTH} levels of arrays and objects")
    try:
        return json.loads(
            text,
            parse_float=_decimal_number if decimals else _float_number,
            parse_int=_int_number,
            parse_constant=_not_a_number,
        )
    except RecursionError:  # not reached: the depth is checked above
        raise InvalidInput(f"the body is nested too deeply: at most {MAX_DEPTH} levels of arrays and objects") from None


# A string without escapes, or one left open to the end of the text (which the parser refuses): a failed
# match would make the scan start again at each later quote.
_STRING = re.compile(r'"[^"]*(?:"|\Z)')
_NOT_BRACKETS = bytes(c for c in range(128) if chr(c) not in "[]{}")


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON text: the brackets outside strings, counted
    (without the text's structure being walked: a body of a million brackets takes milliseconds).

    The escaped backslashes and quotes are taken out first (``\\\\`` pairs from the left, then ``\\"``, as a
    run of backslashes pairs up), so the quotes left are the strings' own; a regular expression that knew
    escapes would take seconds on a body of escaped quotes."""
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    skeleton = _STRING.sub("", unescaped).encode("ascii", "ignore").translate(None, _NOT_BRACKETS)
    if not skeleton:
        return 0
    marks = np.frombuffer(skeleton, np.uint8)
    steps = np.where((marks == ord("[")) | (marks == ord("{")), 1, -1).astype(np.int32)
    return int(np.cumsum(steps).max())


def _checked_number(text: str) -> Decimal:
    if len(text) > MAX_NUMBER_CHARS:
        raise InvalidInput(f"the body holds a number of {len(text)} characters: at most {MAX_NUMBER_CHARS}")
    value = Decimal(text)
    if value and not -MAX_NUMBER_EXPONENT <= value.adjusted() < MAX_NUMBER_EXPONENT:
        raise InvalidInput(
            f"the body holds the number {text}: numbers are below 10^{MAX_NUMBER_EXPONENT} in magnitude "
            f"and 0 or at least 10^-{MAX_NUMBER_EXPONENT}"
        )
    return value


def _decimal_number(text: str) -> Decimal:
    return _checked_number(text)


def _float_number(text: str) -> float:  # ok-float: the admin API's numbers, which its models refuse as amounts
    _checked_number(text)
    return float(text)  # ok-float: as above


def _int_number(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise InvalidInput(f"the body holds a number of {len(text)} characters: at most {MAX_NUMBER_CHARS}")
    return int(text)


def _not_a_number(text: str) -> Any:
    raise InvalidInput(f"the body is not JSON: {text} is not a JSON number")


def dumps_kept(value: Any) -> bytes:
    """``dumps_bytes`` for text kept for long (a stored answer): a copy of exactly its length. orjson's bytes
    keep the capacity its writer grew to (8 KB for an answer of 900 bytes), which a stored answer per
    settlement would hold for as long as the process runs."""
    return memoryview(dumps_bytes(value)).tobytes()
