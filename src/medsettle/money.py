"""Exact money and quantity conversions at the JSON/TOML boundary.

Amounts are int fen inside; unit prices and quantities are int in units of 10^-4 (of a yuan, of a unit);
ratios are int basis points. Nothing here goes through float: a float that reaches these functions
is converted through its shortest repr, which is exact for every value a JSON parser produced from
a decimal literal of at most 15 significant digits, and anything with more precision than the unit is
refused rather than silently rounded.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .errors import InvalidInput

FEN_PER_YUAN = 100
PRICE_SCALE = 10_000  # pric and price caps: units of 0.0001 yuan
CNT_SCALE = 10_000  # cnt: units of 0.0001
BP = 10_000  # basis points in 1
MAX_DIGITS = 20  # an amount, price, quantity or ratio is below 10^20 (bounds.py's bounds are far less)


def _to_decimal(value: object, field: str | None) -> Decimal:
    if isinstance(value, bool):
        raise InvalidInput(f"expected a number, got {value!r}", field=field)
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, float):  # ok-float: converted exactly through repr, never computed with
        d = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidInput(f"not a number: {value!r}", field=field) from None
    else:
        raise InvalidInput(f"expected a number, got {type(value).__name__}", field=field)
    if not d.is_finite():
        raise InvalidInput(f"not a finite number: {value!r}", field=field)
    return d


_PLAIN_NUMBER = re.compile(r"\s*([+-]?)(\d{1,30})(?:\.(\d{1,30}))?\s*\Z")


def _scaled(value: object, scale: int, places: int, field: str | None) -> int:
    # Fast exact paths for what counters send (ints and plain numeric strings); Decimal for the rest.
    if type(value) is int:
        return value * scale
    if type(value) is str:
        m = _PLAIN_NUMBER.match(value)
        if m:
            sign, whole, frac = m.groups()
            frac = (frac or "").rstrip("0")
            if len(frac) > places:
                raise InvalidInput(f"{value!r} has more than {places} decimals", field=field)
            units = int(whole) * scale + (int(frac.ljust(places, "0")) if frac else 0)
            return -units if sign == "-" else units
    d = _to_decimal(value, field)
    if d and d.adjusted() < -places:  # scaling would round it to 0 unsaid
        raise InvalidInput(f"{value!r} has more than {places} decimals", field=field)
    if d and d.adjusted() >= MAX_DIGITS:  # scaling "1e999999999" would overflow Decimal's exponent
        raise InvalidInput(
            f"{value!r} is out of bounds: every amount is less than 10^{MAX_DIGITS} in magnitude", field=field
        )
    d *= scale
    if d != d.to_integral_value():
        raise InvalidInput(f"{value!r} has more than {places} decimals", field=field)
    return int(d)


def to_fen(value: object, field: str | None = "amount") -> int:
    """Yuan (number or numeric string, at most 2 decimals) to int fen."""
    return _scaled(value, FEN_PER_YUAN, 2, field)


def to_price_units(value: object, field: str | None = "pric") -> int:
    """Yuan with at most 4 decimals to int units of 0.0001 yuan."""
    return _scaled(value, PRICE_SCALE, 4, field)


def to_cnt_units(value: object, field: str | None = "cnt") -> int:
    """A quantity with at most 4 decimals to int units of 0.0001."""
    return _scaled(value, CNT_SCALE, 4, field)


def to_bp(value: object, field: str | None = "ratio") -> int:
    """A fraction (0.05) to int basis points (500); at most 4 decimals."""
    return _scaled(value, BP, 4, field)


def fen_to_decimal(fen: int) -> Decimal:
    """int fen to a Decimal with exactly 2 places, for JSON output (scaleb keeps the exponent at -2)."""
    return Decimal(fen).scaleb(-2)


def bp_to_decimal(bp: int) -> Decimal:
    return (Decimal(bp) / BP).normalize() if bp else Decimal(0)


def round_half_up_div(numerator: int, denominator: int) -> int:
    """round(numerator / denominator), halves away from zero; denominator > 0.

    Every rounding of docs/settlement.md goes through this (the reference engine) or its C twin.
    """
    if numerator >= 0:
        return (numerator + denominator // 2) // denominator
    return -((-numerator + denominator // 2) // denominator)


def apply_bp(amount: int, ratio_bp: int) -> int:
    """round(amount × ratio) to a whole fen, half up (docs/settlement.md)."""
    return round_half_up_div(amount * ratio_bp, BP)
