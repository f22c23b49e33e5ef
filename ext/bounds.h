/* docs/settlement.md's bounds for the compiled modules (ext/_bounds.pxd declares them to Cython).
   The same values as medsettle/bounds.py; the modules report them as BOUNDS, and the engine
   refuses a build whose BOUNDS differ from bounds.COMPILED_BOUNDS (tests/test_bounds.py). */
#ifndef MEDSETTLE_BOUNDS_H
#define MEDSETTLE_BOUNDS_H

#define MS_MAX_PRIC_UNITS 10000000000LL          /* a line's pric, 10^6 yuan in 0.0001 yuan */
#define MS_MAX_CNT_UNITS 100000000LL             /* a line's cnt, 10^4 in 0.0001 */
#define MS_MAX_LINES 1000                        /* lines per bill */
#define MS_MAX_MEDFEE 100000000000LL             /* a bill's medfee_sumamt, fen */
#define MS_LINE_DIVISOR 1000000LL                /* pric units x cnt units per fen */
#define MS_BP 10000                              /* basis points in 1 */
#define MS_MIN_YEAR 2000                         /* bill dates: 2000-2099 */
#define MS_MAX_YEAR 2099
#define MS_MAX_ADMISSIONS_PER_YEAR 255           /* the state's adm_count is one byte */
#define MS_MAX_SETTLEMENTS_PER_ADMISSION 65535   /* adm_nsetl is two bytes */
#define MS_LIMIT_MAX_FEN 2147483647LL            /* policy limits are below 2^31 fen (int32) */
#define MS_MAX_BALANCE_FEN 100000000000LL        /* a personal account's balance, fen: a cancel's refund stops there */

#endif
