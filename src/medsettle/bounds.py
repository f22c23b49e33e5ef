"""docs/settlement.md's bounds, defined once for the Python code and, through ext/bounds.h, the C code.

A top-level module that imports nothing of medsettle's but money, so the policy models can take their
limits from here as the engine does (medsettle.engine.bounds names the same objects).

The compiled modules cimport ext/_bounds.pxd (which reads ext/bounds.h) and report what they were
built with as ``BOUNDS``; :data:`COMPILED_BOUNDS` is what they must report. engine/core.py refuses a
core built with other bounds (as from older sources), and tests/test_bounds.py checks both modules.
"""

from __future__ import annotations

from . import money

MAX_PRIC_UNITS = 10**6 * money.PRICE_SCALE  # a line's pric ≤ 10^6 yuan, in 0.0001 yuan
MAX_CNT_UNITS = 10**4 * money.CNT_SCALE  # a line's cnt ≤ 10^4, in 0.0001
MAX_LINES = 1000  # lines per bill
MAX_MEDFEE = 10**11  # a bill's medfee_sumamt (and a forward's saf_cash_amt), fen
LINE_DIVISOR = money.PRICE_SCALE * money.CNT_SCALE // money.FEN_PER_YUAN  # pric×cnt units per fen = 10^6
BP = money.BP  # basis points in 1 (ratios)
MIN_YEAR, MAX_YEAR = 2000, 2099  # bill dates outside are refused as invalid input
MAX_ADMISSIONS_PER_YEAR = 255  # ADMISSION_LIMIT past that (the state's adm_count is one byte)
MAX_SETTLEMENTS_PER_ADMISSION = 65535  # ADMISSION_LIMIT past that (adm_nsetl is two bytes)
LIMIT_MAX_FEN = 2**31 - 1  # a policy limit (deductible, ceiling, cap) is below 2^31 fen: int32 in the core
MAX_CREDIT_FEN = 10**7  # one account credit (划入), fen: 100,000 yuan
MAX_BALANCE_FEN = 10**11  # a personal account's balance, fen
MAX_STATEMENT_FEN = 10**15  # a statement's total (3201, 3202), either sign, fen: 10^4 bills at the bill bound
MAX_STATEMENT_COUNT = 10**9  # the settlements a statement counts (fixmedins_setl_cnt)
MAX_PAGE = 10**6  # a download's page_num

# name: value, as medsettle._core.BOUNDS and medsettle._plain.BOUNDS report them.
COMPILED_BOUNDS: dict[str, int] = {
    "MAX_PRIC_UNITS": MAX_PRIC_UNITS,
    "MAX_CNT_UNITS": MAX_CNT_UNITS,
    "MAX_LINES": MAX_LINES,
    "MAX_MEDFEE": MAX_MEDFEE,
    "LINE_DIVISOR": LINE_DIVISOR,
    "BP": BP,
    "MIN_YEAR": MIN_YEAR,
    "MAX_YEAR": MAX_YEAR,
    "MAX_ADMISSIONS_PER_YEAR": MAX_ADMISSIONS_PER_YEAR,
    "MAX_SETTLEMENTS_PER_ADMISSION": MAX_SETTLEMENTS_PER_ADMISSION,
    "LIMIT_MAX_FEN": LIMIT_MAX_FEN,
    "MAX_BALANCE_FEN": MAX_BALANCE_FEN,
}
