"""JSON text for the wire, the journal and request hashes: orjson, with Decimal amounts written exactly.

A Decimal is written as the number it holds (12.50 stays 12.50, never through float), as the
platform's amounts are. orjson is several times faster than simplejson here (a settlement's answer
takes about 4 µs instead of 24), and the centre writes three such texts per request.
"""

from __future__ import annotations

import functools
import json
from decimal import Decimal
from typing import Any

import orjson

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
    """JSON text back to Python, numbers with a fraction as Decimal (exact), as the centre reads requests."""
    return json.loads(text, parse_float=Decimal)
