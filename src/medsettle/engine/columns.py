"""Output columns shared by the reference engine and the Cython core (the core checks its own copy).

A batch result is an int64 array with one row per bill and these columns; per-line results are an
int64 array with one row per line. Refused bills have only ``status`` set (all else 0).
"""

from __future__ import annotations

COLUMNS = (
    "status",  # 0 settled, else a refusal code (REFUSALS)
    "group",  # benefit group index of the bill's med type
    "ded_kind",  # 0 annual deductible, 1 per-admission
    "adm_counted",  # 1 when this settlement opened (counted) its admission
    "year",  # the accumulator year the bill counts in
    "pool_prop_bp",  # pooled ratio after the cross-region cut (setlinfo pool_prop_selfpay)
    "medfee_sumamt",
    "fulamt_ownpay_amt",
    "overlmt_selfpay",
    "preselfpay_amt",
    "inscp_scp_amt",
    "act_pay_dedc",
    "hifp_pay",
    "hifob_pay",
    "hifmi_pay",
    "cvlserv_pay",
    "maf_pay",
    "fund_pay_sumamt",
    "psn_part_amt",
    "acct_pay",
    "psn_cash_pay",
    "hosp_part_amt",
    "balc",
    "t2_base_add",  # what the bill added to the residents' running total T (大病 base)
    # The admission in progress before a settlement that opened a new one (0 on other rows): the
    # Settler's admission records start from it, so that cancelling the new admission away puts it back
    # in progress (settle then cancel gives back the state exactly).
    "prev_adm_id",
    "prev_adm_ded_std",
    "prev_adm_ded_met",
    "prev_adm_nsetl",
)
COL = {name: i for i, name in enumerate(COLUMNS)}
N_COLUMNS = len(COLUMNS)

# Narrowed outputs for load runs: the totals only, no per-line split.
NARROW_COLUMNS = ("status", "medfee_sumamt", "fund_pay_sumamt", "acct_pay", "psn_cash_pay", "balc")
NARROW_COL = {name: i for i, name in enumerate(NARROW_COLUMNS)}

# What cancelling a per-admission settlement does to its admission (the engines' ``cancel`` is told which;
# the Settler works it out from the settlement records, medsettle.engine.admissions):
CANCEL_IN_PROGRESS = 1  # the admission in progress: its deductible met and live settlements move back; when
# none is left it no longer counts, and the admission given as ``restore`` is in progress
CANCEL_PAST = 2  # an earlier admission that keeps other live settlements: its count stays
CANCEL_PAST_LAST = 3  # an earlier admission's last live settlement: it no longer counts (later ones keep theirs)
CANCEL_ROLES = (CANCEL_IN_PROGRESS, CANCEL_PAST, CANCEL_PAST_LAST)
NO_ADMISSION = (-1, 0, 0, 0)  # (adm_id, adm_ded_std, adm_ded_met, adm_nsetl) of a person with none in progress

LINE_COLUMNS = ("det_item_fee_sumamt", "fulamt_ownpay_amt", "overlmt_amt", "preselfpay_amt", "inscp_scp_amt")
LINE_COL = {name: i for i, name in enumerate(LINE_COLUMNS)}

OK = 0
REFUSALS = {
    1: "PERSON_INACTIVE",
    2: "WAITING_PERIOD",
    3: "NO_RULES_IN_FORCE",
    4: "YEAR_CLOSED",
    5: "ADMISSION_LIMIT",
    6: "BALANCE_LIMIT",
}
PERSON_INACTIVE, WAITING_PERIOD, NO_RULES_IN_FORCE, YEAR_CLOSED, ADMISSION_LIMIT, BALANCE_LIMIT = 1, 2, 3, 4, 5, 6
REFUSAL_MESSAGES = {
    PERSON_INACTIVE: "the person's insurance is not active (suspended, cancelled or transferred out)",
    WAITING_PERIOD: "the person is in the waiting period or contributions are not current",
    NO_RULES_IN_FORCE: "no rule set of the insured region is in force on the bill's date",
    YEAR_CLOSED: "the bill's year is closed for this person (a later year has been settled)",
    ADMISSION_LIMIT: "too many admissions in the year or settlements in one admission",
    BALANCE_LIMIT: "the refund would take the personal account's balance (balc) past its bound of 10^11 fen",
}
