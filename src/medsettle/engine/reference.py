"""The pure-Python reference engine: docs/settlement.md step by step, readable as a specification.

It reads the policy *models* (not the compiled arrays), so a compilation mistake shows up as a
difference from the core. It is slow on purpose-free grounds only: no caching, no tricks.
Every settlement test runs it beside the core; any difference is a bug in one of them.
"""

from __future__ import annotations

import numpy as np

from ..money import BP, apply_bp, round_half_up_div
from ..policy.codes import (
    EMERGENCY_MED_TYPE,
    EMPLOYEE,
    INSUTYPES,
    MED_TYPES,
    PSN_TYPES,
    TIER_NAMES,
    CLASS_A,
    CLASS_B,
    CLASS_C,
)
from ..policy.compile import CompiledPolicy
from ..policy.models import Policy
from ..timeutil import from_day_number
from .bills import BillBatch, line_fee
from .columns import (
    ADMISSION_LIMIT,
    CANCEL_IN_PROGRESS,
    CANCEL_PAST_LAST,
    CANCEL_ROLES,
    COL,
    LINE_COL,
    LINE_COLUMNS,
    N_COLUMNS,
    NARROW_COLUMNS,
    NO_RULES_IN_FORCE,
    PERSON_INACTIVE,
    WAITING_PERIOD,
    YEAR_CLOSED,
)
from .persons import FLAG_ACTIVE, FLAG_ASSISTANCE, Population
from .state import MAX_ADMISSIONS_PER_YEAR, MAX_SETTLEMENTS_PER_ADMISSION, PersonState


class ReferenceEngine:
    """Settles bills one at a time against :class:`PersonState` objects."""

    name = "reference"

    def __init__(self, policy: Policy, compiled: CompiledPolicy, population: Population):
        self.policy = policy
        self.compiled = compiled
        self.population = population
        self._states: dict[int, PersonState] = {}

    # -- state --------------------------------------------------------------------------------

    def get_state(self, person: int) -> PersonState:
        st = self._states.get(person)
        if st is None:
            st = self._states[person] = PersonState(balance=int(self.population.balances[person]))
        return st

    def set_state(self, person: int, state: PersonState) -> None:
        self._states[person] = state.copy()

    def reset(self) -> None:
        self._states.clear()

    def add_person(self) -> None:
        """Nothing to allocate: a person's state is made on first use from the population's balance."""

    # -- settlement ---------------------------------------------------------------------------

    def run(self, batch: BillBatch, *, presettle: bool = False, narrow: bool = False,
            out: np.ndarray | None = None, line_out: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray | None]:
        """Settle (or pre-settle) every bill in order; return (bill rows, line rows or None).

        ``out``/``line_out``, when given, receive the results (as in the core)."""
        rows = np.zeros((len(batch), N_COLUMNS), np.int64)
        lines = np.zeros((len(batch.item), len(LINE_COLUMNS)), np.int64)
        for i in range(len(batch)):
            self._settle_one(batch, i, rows[i], lines, presettle)
        if narrow:
            rows, lines = rows[:, [COL[c] for c in NARROW_COLUMNS]], None
        if out is not None:
            out[...] = rows
            rows = out
        if line_out is not None and lines is not None:
            line_out[...] = lines
            lines = line_out
        return rows, lines

    def _settle_one(self, batch: BillBatch, i: int, row: np.ndarray, line_out: np.ndarray,
                    presettle: bool) -> None:
        p = int(batch.person[i])
        attrs = self.population.attrs[p]
        insutype = INSUTYPES[attrs["insutype"]]
        psn_type = PSN_TYPES[attrs["psn_type"]]
        insured = self.policy.regions[attrs["region"]]
        day = int(batch.day[i])
        bill_date = from_day_number(day)
        year, month = int(batch.year[i]), int(batch.month[i])
        med_type = MED_TYPES[batch.med_type[i]]
        tier = TIER_NAMES[batch.tier[i]]
        treat_region = int(batch.treat_region[i])

        # Step 6: eligibility. Order: inactive, no rules (the waiting months are policy), waiting, year.
        if not attrs["flags"] & FLAG_ACTIVE:
            row[COL["status"]] = PERSON_INACTIVE
            return
        rules = insured.ruleset_on(bill_date)
        if rules is None:
            row[COL["status"]] = NO_RULES_IN_FORCE
            return
        run_start, paid_through = int(attrs["run_start"]), int(attrs["paid_through"])
        wait = rules.waiting_months + int(attrs["extra_wait"])
        if run_start < 0 or month < run_start + wait or paid_through < month - 1:
            row[COL["status"]] = WAITING_PERIOD
            return
        st = self.get_state(p).copy()
        if st.acc_year > year:
            row[COL["status"]] = YEAR_CLOSED
            return
        if st.acc_year < year:  # the first bill of a new year: the year's accumulators start again
            _roll_over(st, year)

        # The bill's benefit group and deductible standard, from the insured region's policy
        # (checked before any line so a refused bill leaves its lines at 0, as in the core).
        group_name = rules.med_type_groups[med_type]
        g = insured.group_index(group_name)
        per_admission = insured.groups[g].deductible_basis == "admission"
        benefit = rules.benefit(group_name, insutype, psn_type)
        rate = benefit.tiers.get(tier)
        adm = int(batch.adm[i])
        in_progress = per_admission and st.adm_nsetl > 0 and st.adm_id == adm
        if per_admission and in_progress:
            if st.adm_nsetl >= MAX_SETTLEMENTS_PER_ADMISSION:
                row[COL["status"]] = ADMISSION_LIMIT
                return
            standard, met = st.adm_ded_std, st.adm_ded_met
        elif per_admission:
            if st.adm_count >= MAX_ADMISSIONS_PER_YEAR:
                row[COL["status"]] = ADMISSION_LIMIT
                return
            standard, met = (rate.deductible_for(st.adm_count + 1) if rate else 0), 0
        else:
            standard, met = (rate.deductible_for(1) if rate else 0), st.ded_met[g]

        # Steps 1-5: per line, with the treatment region's catalogue.
        treat = self.policy.regions[treat_region]
        catalogue = treat.catalogue_on(bill_date)
        sums = dict.fromkeys(LINE_COLUMNS, 0)
        for j in range(int(batch.line_start[i]), int(batch.line_start[i + 1])):
            item = catalogue.by_code[self.compiled.item_codes[batch.item[j]]]
            pric, cnt = int(batch.pric[j]), int(batch.cnt[j])
            fee = line_fee(pric, cnt)
            fulamt = overlmt = preselfpay = 0
            if item.item_class == CLASS_C or (item.lmt_used_flag and not batch.appr[j]):
                fulamt = fee
            else:
                if item.pric_uplmt_amt is not None and pric > item.pric_uplmt_amt:
                    overlmt = line_fee(pric - item.pric_uplmt_amt, cnt)
                if item.item_class == CLASS_B:
                    preselfpay = apply_bp(fee - overlmt, item.selfpay_for(psn_type))
                else:
                    assert item.item_class == CLASS_A
            inscp = fee - fulamt - overlmt - preselfpay
            for name, value in zip(LINE_COLUMNS, (fee, fulamt, overlmt, preselfpay, inscp)):
                line_out[j, LINE_COL[name]] = value
                sums[name] += value
        medfee, fulamt, overlmt = sums["det_item_fee_sumamt"], sums["fulamt_ownpay_amt"], sums["overlmt_amt"]
        preselfpay, inscp = sums["preselfpay_amt"], sums["inscp_scp_amt"]

        # Step 7: deductible.
        act_pay_dedc = min(inscp, max(0, standard - met))

        # Step 8: pooled fund.
        ratio = rate.ratio if rate else 0
        if treat_region != int(attrs["region"]) and not _has_filing(attrs, treat_region, day):
            cut = rules.cross_region_cut.emergency if med_type == EMERGENCY_MED_TYPE else rules.cross_region_cut.other
            ratio = min(max(ratio - cut, 0), BP)
        eligible = inscp - act_pay_dedc
        share = apply_bp(eligible, ratio)
        room = max(0, benefit.ceiling - st.pooled_paid[g])
        if room == 0:
            hifp, eligible_over = 0, eligible
        elif share <= room:
            hifp, eligible_over = share, 0
        else:
            hifp = room
            eligible_over = max(0, eligible - round_half_up_div(room * BP, ratio))

        # Step 9: second tier.
        hifob = hifmi = t2_base_add = 0
        tier2 = rules.second_tier_for(insutype)
        if tier2 is not None and group_name in tier2.groups:
            room2 = max(0, tier2.annual_cap - st.t2_paid)
            if insutype == EMPLOYEE:
                hifob = min(apply_bp(eligible_over, tier2.ratio), room2)
            else:
                selfpaid = inscp - hifp
                before = st.t2_base
                excess = max(0, before + selfpaid - max(tier2.threshold, before))
                hifmi = min(apply_bp(excess, tier2.ratio), room2)
                t2_base_add = selfpaid

        # Step 10: medical assistance.
        maf = 0
        if attrs["flags"] & FLAG_ASSISTANCE:
            room_maf = max(0, rules.assistance.annual_cap - st.maf_paid)
            maf = min(apply_bp(max(0, inscp - hifp - hifob - hifmi), rules.assistance.ratio), room_maf)

        # Steps 11-15.
        cvlserv = 0
        fund = hifp + hifob + hifmi + cvlserv + maf
        saf_cash = int(batch.saf_cash[i])
        hosp_part = max(0, medfee - fund - saf_cash) if saf_cash >= 0 else 0
        psn_part = medfee - fund - hosp_part
        acct_pay = 0
        if batch.acct_flag[i] and insutype == EMPLOYEE and med_type in rules.account.med_types:
            payable = psn_part if rules.account.scope == "all" else max(0, psn_part - fulamt - overlmt)
            acct_pay = min(payable, st.balance)
        cash = psn_part - acct_pay

        # Step 16: the accumulators move by what this bill used.
        adm_counted = 0
        prev_adm = (st.adm_id, st.adm_ded_std, st.adm_ded_met, st.adm_nsetl)
        st.balance -= acct_pay
        if per_admission:
            if in_progress:
                st.adm_ded_met += act_pay_dedc
                st.adm_nsetl += 1
            else:
                st.adm_id, st.adm_ded_std, st.adm_ded_met, st.adm_nsetl = adm, standard, act_pay_dedc, 1
                st.adm_count += 1
                adm_counted = 1
        else:
            st.ded_met[g] += act_pay_dedc
        st.pooled_paid[g] += hifp
        st.t2_paid += hifob + hifmi
        st.t2_base += t2_base_add
        st.maf_paid += maf
        if not presettle:
            self._states[p] = st

        values = {
            "status": 0, "group": g, "ded_kind": int(per_admission), "adm_counted": adm_counted, "year": year,
            "pool_prop_bp": ratio, "medfee_sumamt": medfee, "fulamt_ownpay_amt": fulamt,
            "overlmt_selfpay": overlmt, "preselfpay_amt": preselfpay, "inscp_scp_amt": inscp,
            "act_pay_dedc": act_pay_dedc, "hifp_pay": hifp, "hifob_pay": hifob, "hifmi_pay": hifmi,
            "cvlserv_pay": cvlserv, "maf_pay": maf, "fund_pay_sumamt": fund, "psn_part_amt": psn_part,
            "acct_pay": acct_pay, "psn_cash_pay": cash, "hosp_part_amt": hosp_part, "balc": st.balance,
            "t2_base_add": t2_base_add,
        }
        if adm_counted:
            for name, value in zip(("prev_adm_id", "prev_adm_ded_std", "prev_adm_ded_met", "prev_adm_nsetl"),
                                   prev_adm):
                values[name] = value
        for name, value in values.items():
            row[COL[name]] = value

    # -- cancel -------------------------------------------------------------------------------

    def cancel(self, person: int, original: np.ndarray, role: int, restore: tuple[int, int, int, int]
               ) -> tuple[int, int]:
        """Move the accumulators and balance back by exactly the original's amounts (docs/settlement.md Cancel).

        ``original`` is the settlement's row of COLUMNS. Returns (status, balance after). A settlement of
        a closed year is refused with YEAR_CLOSED and nothing changes.

        A per-admission settlement's admission moves as ``role`` says (columns.CANCEL_*; the Settler knows
        it from its records, medsettle.engine.admissions): the admission in progress gives back the
        deductible met and the settlement, and once it has none left it no longer counts and ``restore``
        (adm_id, adm_ded_std, adm_ded_met, adm_nsetl) is in progress instead; an earlier admission no
        longer counts once its last live settlement is cancelled, whatever began since.
        """
        if role not in CANCEL_ROLES:
            raise ValueError(f"unknown cancel role {role}")
        st = self.get_state(person).copy()
        if int(original[COL["year"]]) < st.acc_year:
            return YEAR_CLOSED, st.balance
        g = int(original[COL["group"]])
        st.balance += int(original[COL["acct_pay"]])
        if original[COL["ded_kind"]]:
            if role == CANCEL_IN_PROGRESS:
                st.adm_ded_met -= int(original[COL["act_pay_dedc"]])
                st.adm_nsetl -= 1
                if st.adm_nsetl == 0:  # its last live settlement: the admission no longer counts
                    st.adm_count = max(0, st.adm_count - 1)
                    st.adm_id, st.adm_ded_std, st.adm_ded_met, st.adm_nsetl = (int(x) for x in restore)
            elif role == CANCEL_PAST_LAST:
                st.adm_count = max(0, st.adm_count - 1)
        else:
            st.ded_met[g] -= int(original[COL["act_pay_dedc"]])
        st.pooled_paid[g] -= int(original[COL["hifp_pay"]])
        st.t2_paid -= int(original[COL["hifob_pay"]]) + int(original[COL["hifmi_pay"]])
        st.t2_base -= int(original[COL["t2_base_add"]])
        st.maf_paid -= int(original[COL["maf_pay"]])
        self._states[person] = st
        return 0, st.balance


def _roll_over(st: PersonState, year: int) -> None:
    """Start the year's accumulators again; the balance and the admission in progress carry over."""
    st.ded_met = [0] * len(st.ded_met)
    st.pooled_paid = [0] * len(st.pooled_paid)
    st.t2_paid = st.t2_base = st.maf_paid = 0
    st.adm_count = 0
    st.acc_year = year


def _has_filing(attrs: np.void, region: int, day: int) -> bool:
    return int(attrs["filing_region"]) == region and int(attrs["filing_from"]) <= day <= int(attrs["filing_to"])
