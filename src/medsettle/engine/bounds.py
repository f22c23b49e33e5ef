"""The bounds, as the engine and the compiled modules' docs name them: medsettle.bounds is where they are defined."""

from ..bounds import (
    BP,
    COMPILED_BOUNDS,
    LIMIT_MAX_FEN,
    LINE_DIVISOR,
    MAX_ADMISSIONS_PER_YEAR,
    MAX_BALANCE_FEN,
    MAX_CNT_UNITS,
    MAX_CREDIT_FEN,
    MAX_LINES,
    MAX_MEDFEE,
    MAX_PRIC_UNITS,
    MAX_SETTLEMENTS_PER_ADMISSION,
    MAX_YEAR,
    MIN_YEAR,
)

__all__ = [
    "BP",
    "COMPILED_BOUNDS",
    "LIMIT_MAX_FEN",
    "LINE_DIVISOR",
    "MAX_ADMISSIONS_PER_YEAR",
    "MAX_BALANCE_FEN",
    "MAX_CNT_UNITS",
    "MAX_CREDIT_FEN",
    "MAX_LINES",
    "MAX_MEDFEE",
    "MAX_PRIC_UNITS",
    "MAX_SETTLEMENTS_PER_ADMISSION",
    "MAX_YEAR",
    "MIN_YEAR",
]
