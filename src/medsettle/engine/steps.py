"""The steps of docs/settlement.md's settlement order, one function each, named after the step.

The reference engine (engine/reference.py) calls them in the order of the document: the line steps 1-5
for every line (:func:`price_line`), then the bill steps 6-16 (:func:`eligibility` to
:func:`move_accumulators`). They read the policy *models* (rule sets, catalogue items, benefits), never
the compiled arrays, and plain ints; only :func:`move_accumulators` changes anything (the state it is
given, a copy until the bill is settled).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..money import BP, apply_bp, round_half_up_div
from ..policy.codes import CLASS_A, CLASS_B, CLASS_C, EMERGENCY_MED_TYPE, EMPLOYEE, Insutype, MedType, PsnType, TierName
from ..policy.models import Benefit, CatalogueItem, Region, RuleSet, SecondTier, TierRate
from ..timeutil import day_number, month_index
from .bills import line_fee
from .bounds import MAX_ADMISSIONS_PER_YEAR, MAX_SETTLEMENTS_PER_ADMISSION
from .columns import LINE_COL, LINE_COLUMNS, NO_RULES_IN_FORCE, PERSON_INACTIVE, WAITING_PERIOD, YEAR_CLOSED
from .persons import FLAG_ACTIVE, FLAG_ASSISTANCE
from .state import PersonState

# -- the line steps (1-5), with the treatment region's catalogue ---------------------------------------


class LineAmounts(NamedTuple):
    """One line's amounts, or a bill's sums of them, in fen (the order of columns.LINE_COLUMNS)."""

    fee: int  # det_item_fee_sumamt (a bill's medfee_sumamt)
    fulamt: int  # fulamt_ownpay_amt
    overlmt: int  # overlmt_amt (a bill's overlmt_selfpay)
    preselfpay: int  # preselfpay_amt
    inscp: int  # inscp_scp_amt


assert [LINE_COL[c] for c in LINE_COLUMNS] == list(range(len(LineAmounts._fields))), LINE_COLUMNS


def is_all_own_pay(item: CatalogueItem, approved: bool) -> bool:
    """Step 2: a class C item, or a restricted one sent without the hospital's approval, is all own pay."""
    return item.item_class == CLASS_C or (item.lmt_used_flag and not approved)


def over_price_cap(item: CatalogueItem, pric: int, cnt: int) -> int:
    """Step 3: round(max(0, pric - cap) × cnt); no cap, no overage."""
    if item.pric_uplmt_amt is not None and pric > item.pric_uplmt_amt:
        return line_fee(pric - item.pric_uplmt_amt, cnt)
    return 0


def self_pay_first(item: CatalogueItem, fee: int, overlmt: int, psn_type: PsnType) -> int:
    """Step 4: class B pays its self-pay-first share of what is under the cap first; class A nothing."""
    if item.item_class == CLASS_B:
        return apply_bp(fee - overlmt, item.selfpay_for(psn_type))
    assert item.item_class == CLASS_A
    return 0


def price_line(item: CatalogueItem, pric: int, cnt: int, approved: bool, psn_type: PsnType) -> LineAmounts:
    """Steps 1-5 for one line; step 5, the in-scope amount, is what the other steps leave."""
    fee = line_fee(pric, cnt)  # step 1
    if is_all_own_pay(item, approved):
        fulamt, overlmt, preselfpay = fee, 0, 0  # steps 3-4 are skipped
    else:
        fulamt = 0
        overlmt = over_price_cap(item, pric, cnt)
        preselfpay = self_pay_first(item, fee, overlmt, psn_type)
    return LineAmounts(fee, fulamt, overlmt, preselfpay, fee - fulamt - overlmt - preselfpay)


def bill_sums(lines: list[LineAmounts]) -> LineAmounts:
    """The bill's medfee_sumamt, fulamt_ownpay_amt, overlmt_selfpay, preselfpay_amt and inscp_scp_amt."""
    return LineAmounts(*(sum(column) for column in zip(*lines, strict=True)))


# -- the bill steps (6-16), with the policy of the insured region ---------------------------------------


@dataclass(frozen=True)
class Encounter:
    """One bill as the steps read it: the person, the regions, the date and the kind of visit."""

    person: int  # row in the Population
    attrs: np.void  # the person's attributes (persons.ATTR_DTYPE)
    insutype: Insutype
    psn_type: PsnType
    insured: Region
    insured_index: int
    treat: Region
    treat_index: int
    date: dt.date
    med_type: MedType
    tier: TierName
    acct_used: bool
    saf_cash: int | None  # the cash a store-and-forward forward collected, fen; None otherwise
    admission: int  # the key of its mdtrt_id

    @property
    def day(self) -> int:
        return day_number(self.date)

    @property
    def month(self) -> int:
        """year × 12 + month - 1, as the population counts contribution months."""
        return month_index(self.date)


def eligibility(enc: Encounter, rules: RuleSet | None, state: PersonState) -> int | None:
    """Step 6: the refusal code, checked in docs/settlement.md's order, or None when the bill is eligible."""
    attrs = enc.attrs
    if not attrs["flags"] & FLAG_ACTIVE:
        return PERSON_INACTIVE
    if rules is None:
        return NO_RULES_IN_FORCE
    run_start, paid_through = int(attrs["run_start"]), int(attrs["paid_through"])
    wait = rules.waiting_months + int(attrs["extra_wait"])
    if run_start < 0 or enc.month < run_start + wait or enc.month - 1 > paid_through:
        return WAITING_PERIOD
    if state.acc_year > enc.date.year:
        return YEAR_CLOSED
    return None


def start_year(state: PersonState, year: int) -> None:
    """Time: the first bill of a later year starts the year's accumulators again (the balance and the
    admission in progress carry over)."""
    if state.acc_year < year:
        state.ded_met = [0] * len(state.ded_met)
        state.pooled_paid = [0] * len(state.pooled_paid)
        state.t2_paid = state.t2_base = state.maf_paid = 0
        state.adm_count = 0
        state.acc_year = year


@dataclass(frozen=True)
class BenefitGroup:
    """The bill's benefit group and what the insured region's rule set gives it there."""

    name: str
    index: int  # the group's id in its region
    per_admission: bool  # its deductible is per admission (else annual)
    benefit: Benefit  # of the group, the scheme and the person type
    rate: TierRate | None  # at the institution's tier; None: the pooled fund pays nothing there


def benefit_group(enc: Encounter, rules: RuleSet) -> BenefitGroup:
    """The med type's group in the rule set in force, and its benefit for the person at the tier."""
    name = rules.med_type_groups[enc.med_type]
    index = enc.insured.group_index(name)
    benefit = rules.benefit(name, enc.insutype, enc.psn_type)
    return BenefitGroup(
        name, index, enc.insured.groups[index].deductible_basis == "admission", benefit, benefit.tiers.get(enc.tier)
    )


class Deductible(NamedTuple):
    """The standard a bill's deductible is charged against and what of it is already met."""

    standard: int
    met: int
    in_progress: bool  # the bill continues the admission in progress


def admission_limit_reached(group: BenefitGroup, enc: Encounter, state: PersonState) -> bool:
    """Admissions: ADMISSION_LIMIT past 65,535 settlements of one admission or 255 admissions a year."""
    if not group.per_admission:
        return False
    if in_admission(group, enc, state):
        return state.adm_nsetl >= MAX_SETTLEMENTS_PER_ADMISSION
    return state.adm_count >= MAX_ADMISSIONS_PER_YEAR


def in_admission(group: BenefitGroup, enc: Encounter, state: PersonState) -> bool:
    """The bill settles more of the person's admission in progress (a mid-stay or final settlement)."""
    return group.per_admission and state.adm_nsetl > 0 and state.adm_id == enc.admission


def deductible_standard(group: BenefitGroup, enc: Encounter, state: PersonState) -> Deductible:
    """The group's standard, or the admission's: fixed at its first settlement, by its ordinal in the year."""
    if in_admission(group, enc, state):
        return Deductible(state.adm_ded_std, state.adm_ded_met, True)
    if group.per_admission:
        return Deductible(group.rate.deductible_for(state.adm_count + 1) if group.rate else 0, 0, False)
    return Deductible(group.rate.deductible_for(1) if group.rate else 0, state.ded_met[group.index], False)


def deductible(inscp: int, ded: Deductible) -> int:
    """Step 7: act_pay_dedc = min(inscp, max(0, standard - met))."""
    return min(inscp, max(0, ded.standard - ded.met))


def has_filing(enc: Encounter) -> bool:
    """The person has a filing (备案) for the treatment region valid on the bill's date."""
    attrs = enc.attrs
    return int(attrs["filing_region"]) == enc.treat_index and int(attrs["filing_from"]) <= enc.day <= int(
        attrs["filing_to"]
    )


def pool_ratio(group: BenefitGroup, enc: Encounter, rules: RuleSet) -> int:
    """Step 8's ratio: the tier's, less the cross-region cut away from home without a filing, in 0-10000 bp."""
    ratio = group.rate.ratio if group.rate else 0
    if enc.treat_index != enc.insured_index and not has_filing(enc):
        cut = rules.cross_region_cut.emergency if enc.med_type == EMERGENCY_MED_TYPE else rules.cross_region_cut.other
        ratio = min(max(ratio - cut, 0), BP)
    return ratio


def pooled_fund(eligible: int, ratio: int, ceiling: int, paid: int) -> tuple[int, int]:
    """Step 8: (hifp_pay, E_over), E_over being the eligible amount beyond where the ceiling was reached."""
    share = apply_bp(eligible, ratio)
    room = max(0, ceiling - paid)
    if room == 0:
        return 0, eligible
    if share <= room:
        return share, 0
    return room, max(0, eligible - round_half_up_div(room * BP, ratio))


class SecondTierPay(NamedTuple):
    hifob: int  # employees' large-amount fund (大额)
    hifmi: int  # residents' critical-illness insurance (大病)
    t2_base_add: int  # what the bill adds to the residents' running in-scope self-paid total


def second_tier(
    tier2: SecondTier | None,
    group: BenefitGroup,
    enc: Encounter,
    e_over: int,
    inscp: int,
    hifp: int,
    state: PersonState,
) -> SecondTierPay:
    """Step 9, only in the groups where the policy enables it."""
    if tier2 is None or group.name not in tier2.groups:
        return SecondTierPay(0, 0, 0)
    room = max(0, tier2.annual_cap - state.t2_paid)
    if enc.insutype == EMPLOYEE:
        return SecondTierPay(min(apply_bp(e_over, tier2.ratio), room), 0, 0)
    selfpaid = inscp - hifp
    before = state.t2_base
    excess = max(0, before + selfpaid - max(tier2.threshold, before))
    return SecondTierPay(0, min(apply_bp(excess, tier2.ratio), room), selfpaid)


def medical_assistance(
    enc: Encounter, rules: RuleSet, inscp: int, hifp: int, t2: SecondTierPay, state: PersonState
) -> int:
    """Step 10, for persons with an assistance identity."""
    if not enc.attrs["flags"] & FLAG_ASSISTANCE:
        return 0
    room = max(0, rules.assistance.annual_cap - state.maf_paid)
    return min(apply_bp(max(0, inscp - hifp - t2.hifob - t2.hifmi), rules.assistance.ratio), room)


def civil_servant_supplement() -> int:
    """Step 11's cvlserv_pay: 0."""
    return 0


def hospital_part(medfee: int, fund: int, saf_cash: int | None) -> int:
    """Step 12: what the institution bears, only on a store-and-forward forward."""
    return 0 if saf_cash is None else max(0, medfee - fund - saf_cash)


def person_part(medfee: int, fund: int, hosp_part: int) -> int:
    """Step 13: psn_part_amt."""
    return medfee - fund - hosp_part


def personal_account(enc: Encounter, rules: RuleSet, psn_part: int, sums: LineAmounts, balance: int) -> int:
    """Step 14: acct_pay, when the bill asks for it, the scheme has accounts and the med type may use it."""
    if not (enc.acct_used and enc.insutype == EMPLOYEE and enc.med_type in rules.account.med_types):
        return 0
    payable = psn_part if rules.account.scope == "all" else max(0, psn_part - sums.fulamt - sums.overlmt)
    return min(payable, balance)


def cash(psn_part: int, acct_pay: int) -> int:
    """Step 15: psn_cash_pay."""
    return psn_part - acct_pay


def move_accumulators(
    state: PersonState,
    group: BenefitGroup,
    ded: Deductible,
    enc: Encounter,
    dedc: int,
    hifp: int,
    t2: SecondTierPay,
    maf: int,
    acct_pay: int,
) -> bool:
    """Step 16: the accumulators move by what this bill used; True when it began (counted) an admission."""
    state.balance -= acct_pay
    counted = False
    if ded.in_progress:
        state.adm_ded_met += dedc
        state.adm_nsetl += 1
    elif group.per_admission:
        state.adm_id, state.adm_ded_std, state.adm_ded_met, state.adm_nsetl = enc.admission, ded.standard, dedc, 1
        state.adm_count += 1
        counted = True
    else:
        state.ded_met[group.index] += dedc
    state.pooled_paid[group.index] += hifp
    state.t2_paid += t2.hifob + t2.hifmi
    state.t2_base += t2.t2_base_add
    state.maf_paid += maf
    return counted
