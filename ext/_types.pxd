# cython: language_level=3
# The records, column indices and codes of medsettle._core (ext/_core.pyx cimports them), in one place
# a later module can cimport too. The bounds are in ext/_bounds.pxd.
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t

# -- layouts shared with medsettle/engine/state.py and persons.py (checked by tests) -----------------

ctypedef struct PersonState:
    int64_t balance
    int64_t t2_base
    int32_t ded_met[3]
    int32_t pooled_paid[3]
    int32_t t2_paid
    int32_t maf_paid
    int32_t adm_id
    int32_t adm_ded_std
    int32_t adm_ded_met
    uint16_t adm_nsetl
    uint8_t adm_count
    uint8_t acc_year

ctypedef struct PersonAttrs:
    uint8_t insutype
    uint8_t psn_type
    uint8_t flags
    uint8_t pad
    int16_t region
    int16_t filing_region
    int32_t run_start
    int32_t paid_through
    int32_t extra_wait
    int32_t filing_from
    int32_t filing_to
    int32_t pad2

# Output columns: the order of medsettle.engine.columns.COLUMNS.
cdef enum:
    C_STATUS, C_GROUP, C_DED_KIND, C_ADM_COUNTED, C_YEAR, C_POOL_PROP, C_MEDFEE, C_FULAMT, C_OVERLMT,
    C_PRESELFPAY, C_INSCP, C_DEDC, C_HIFP, C_HIFOB, C_HIFMI, C_CVLSERV, C_MAF, C_FUND, C_PSN_PART, C_ACCT,
    C_CASH, C_HOSP_PART, C_BALC, C_T2_ADD, C_PREV_ADM_ID, C_PREV_ADM_STD, C_PREV_ADM_MET,
    C_PREV_ADM_NSETL, N_COLS

cdef enum:
    NC_STATUS, NC_MEDFEE, NC_FUND, NC_ACCT, NC_CASH, NC_BALC, N_NARROW

cdef enum:
    L_FEE, L_FULAMT, L_OVERLMT, L_PRESELFPAY, L_INSCP, N_LINE_COLS

cdef enum:
    OK = 0
    PERSON_INACTIVE = 1
    WAITING_PERIOD = 2
    NO_RULES_IN_FORCE = 3
    YEAR_CLOSED = 4
    ADMISSION_LIMIT = 5
    BALANCE_LIMIT = 6

cdef enum:
    # What a cancel does to its settlement's admission (medsettle.engine.columns.CANCEL_*).
    CANCEL_IN_PROGRESS = 1
    CANCEL_PAST = 2
    CANCEL_PAST_LAST = 3

cdef enum:
    FLAG_ACTIVE = 1
    FLAG_ASSISTANCE = 2
    EMPLOYEE = 0          # INSUTYPES index of "310"
    MT_EMERGENCY = 1      # MED_TYPES index of "13"
    CLASS_A = 1
    CLASS_B = 2
    CLASS_C = 3
    YEAR_BASE = 1900
    PF_DISTANCE = 16      # bills ahead whose person records are prefetched (in the line pass)
    CHUNK = 32            # bills per two-pass chunk: their person records and line totals stay in cache

# rs_misc columns (medsettle.policy.compile.MISC_*)
cdef enum:
    M_MAF_RATIO, M_MAF_CAP, M_ACCT_MT_MASK, M_ACCT_COVERED, M_CUT_EMERG, M_CUT_OTHER, M_WAITING, N_MISC


ctypedef struct ItemC:
    # One catalogue item, packed for the branch-free line pass (32 bytes).
    int64_t cap          # price cap in 0.0001 yuan; a huge value when the item has none
    int32_t selfpay[4]   # self-pay-first ratio per person type, bp; 0 unless class B
    uint8_t flags        # ITEM_ALL_OWNPAY (class C) | ITEM_RESTRICTED (needs hospital approval)
    uint8_t pad[7]

cdef enum:
    ITEM_ALL_OWNPAY = 1
    ITEM_RESTRICTED = 2

# Shape of the per-rule-set tables (medsettle.policy.compile): g groups, s schemes, p person types,
# t tiers, o admission ordinals.
cdef enum:
    NG = 3
    NS = 2
    NP = 4
    NT = 4
    NO = 3


ctypedef struct BillSums:
    # The line pass's totals for one bill (steps 1-5), handed to the state pass.
    int64_t medfee
    int64_t fulamt
    int64_t overlmt
    int64_t preselfpay
    int64_t inscp
