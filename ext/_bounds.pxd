# cython: language_level=3
# docs/settlement.md's bounds, from ext/bounds.h (the same values as medsettle/engine/bounds.py).
# The 64-bit ones are C constants: a compile-time constant past 2^31 would compare as a Python int.
from libc.stdint cimport int64_t

cdef extern from "bounds.h":
    const int64_t MAX_PRIC_UNITS "MS_MAX_PRIC_UNITS"
    const int64_t MAX_CNT_UNITS "MS_MAX_CNT_UNITS"
    const int64_t MAX_MEDFEE "MS_MAX_MEDFEE"
    const int64_t LINE_DIVISOR "MS_LINE_DIVISOR"
    const int64_t LIMIT_MAX_FEN "MS_LIMIT_MAX_FEN"
    const int64_t MAX_BALANCE_FEN "MS_MAX_BALANCE_FEN"
    enum:
        MAX_LINES "MS_MAX_LINES"
        BP "MS_BP"
        MIN_YEAR "MS_MIN_YEAR"
        MAX_YEAR "MS_MAX_YEAR"
        MAX_ADMISSIONS "MS_MAX_ADMISSIONS_PER_YEAR"
        MAX_ADM_SETTLEMENTS "MS_MAX_SETTLEMENTS_PER_ADMISSION"


cdef inline dict bounds_report():
    """The bounds this module was built with, named as medsettle.engine.bounds.COMPILED_BOUNDS names them."""
    return {"MAX_PRIC_UNITS": MAX_PRIC_UNITS, "MAX_CNT_UNITS": MAX_CNT_UNITS, "MAX_LINES": MAX_LINES,
            "MAX_MEDFEE": MAX_MEDFEE, "LINE_DIVISOR": LINE_DIVISOR, "BP": BP, "MIN_YEAR": MIN_YEAR,
            "MAX_YEAR": MAX_YEAR, "MAX_ADMISSIONS_PER_YEAR": MAX_ADMISSIONS,
            "MAX_SETTLEMENTS_PER_ADMISSION": MAX_ADM_SETTLEMENTS, "LIMIT_MAX_FEN": LIMIT_MAX_FEN,
            "MAX_BALANCE_FEN": MAX_BALANCE_FEN}
