"""The pure-Python reference engine: docs/settlement.md step by step, readable as a specification.

It settles parsed bills (:class:`~.bills.Bill`, the platform's codes and exact amounts) against the
policy *models*: the insured region's rule set in force on the bill's date, the treatment region's
catalogue in force then, the benefit of the bill's group, scheme and person type, each looked up by
code, never the compiled arrays or the core's item indices. Given a batch (what the core reads) it
first decodes it back to bills (engine/decode.py), so a mistake in the encoder or in the policy's
compilation shows up as a difference from the core. Every settlement test runs it beside the core;
any difference is a bug in one of them.

Each step of the settlement order is one function of engine/steps.py, named after it: the line steps
1-5 (``price_line``), then the bill steps 6-16 in the order :meth:`ReferenceEngine.settle_bill` calls
them. It is slow on purpose-free grounds only: no caching, no tricks.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..policy.codes import INSUTYPES, PSN_TYPES
from ..policy.compile import CompiledPolicy
from ..policy.models import Policy
from .bills import AdmissionKeys, AdmissionKeySource, Bill, BillBatch
from .bounds import MAX_BALANCE_FEN
from .columns import (
    ADMISSION_LIMIT,
    BALANCE_LIMIT,
    CANCEL_IN_PROGRESS,
    CANCEL_PAST_LAST,
    CANCEL_ROLES,
    COL,
    LINE_COLUMNS,
    N_COLUMNS,
    NARROW_COLUMNS,
    YEAR_CLOSED,
)
from .decode import decode_batch
from .persons import Population
from .state import PersonState
from .steps import (
    Encounter,
    LineAmounts,
    admission_limit_reached,
    benefit_group,
    bill_sums,
    cash,
    civil_servant_supplement,
    deductible,
    deductible_standard,
    eligibility,
    hospital_part,
    medical_assistance,
    move_accumulators,
    person_part,
    personal_account,
    pool_ratio,
    pooled_fund,
    price_line,
    second_tier,
    start_year,
)


class ReferenceEngine:
    """Settles bills one at a time against :class:`PersonState` objects."""

    name: ClassVar[str] = "reference"

    def __init__(self, policy: Policy, compiled: CompiledPolicy, population: Population) -> None:
        self.policy = policy
        self.compiled = compiled  # only to decode batches: settling reads the policy models
        self.population = population
        self._states: dict[int, PersonState] = {}
        self._admissions = AdmissionKeys()  # the admission names decode_batch gives, and their keys

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

    def run(
        self,
        batch: BillBatch,
        *,
        presettle: bool = False,
        narrow: bool = False,
        out: np.ndarray | None = None,
        line_out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Settle (or pre-settle) every bill of a validated batch in order, decoded back to bills;
        return (bill rows, line rows or None). ``out``/``line_out``, when given, receive the results
        (as in the core)."""
        lines: np.ndarray | None  # None once narrowed
        rows, lines = self.settle_bills(
            decode_batch(batch, self.compiled, self.population, self._admissions), presettle=presettle
        )
        if narrow:
            rows, lines = rows[:, [COL[c] for c in NARROW_COLUMNS]], None
        if out is not None:
            out[...] = rows
            rows = out
        if line_out is not None and lines is not None:
            line_out[...] = lines
            lines = line_out
        return rows, lines

    def settle_bills(
        self, bills: list[Bill], *, presettle: bool = False, admissions: AdmissionKeySource | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Settle validated bills in order: (rows of columns.COLUMNS, rows of LINE_COLUMNS, bill by bill).

        ``admissions`` gives each mdtrt_id the key its admission is kept under (the Settler's, which
        validated the bills; by default the names decoded batches carry)."""
        admissions = self._admissions if admissions is None else admissions
        rows = np.zeros((len(bills), N_COLUMNS), np.int64)
        lines = np.zeros((sum(len(b.feedetail) for b in bills), len(LINE_COLUMNS)), np.int64)
        first_line = 0
        for i, bill in enumerate(bills):
            values, priced = self.settle_bill(bill, admissions, presettle=presettle)
            row = [0] * N_COLUMNS
            for name, value in values.items():
                row[COL[name]] = value
            rows[i] = row
            if priced:  # LineAmounts are in LINE_COLUMNS order
                lines[first_line : first_line + len(priced)] = priced
            first_line += len(bill.feedetail)
        return rows, lines

    def settle_bill(
        self, bill: Bill, admissions: AdmissionKeySource, *, presettle: bool = False
    ) -> tuple[dict[str, int], list[LineAmounts]]:
        """docs/settlement.md's settlement order for one bill: (its row's values by column, its lines).
        A refused bill gives only its status, no lines priced, and changes nothing."""
        enc = self.encounter(bill, admissions.key(bill.mdtrt_id))
        rules = enc.insured.ruleset_on(enc.date)
        state = self.get_state(enc.person).copy()
        refusal = eligibility(enc, rules, state)  # step 6
        if refusal is not None:
            return {"status": refusal}, []
        assert rules is not None
        start_year(state, enc.date.year)
        group = benefit_group(enc, rules)
        if admission_limit_reached(group, enc, state):
            return {"status": ADMISSION_LIMIT}, []
        ded = deductible_standard(group, enc, state)

        catalogue = enc.treat.catalogue_on(enc.date)
        assert catalogue is not None  # the bill was validated against it
        priced = [
            price_line(catalogue.by_code[line.med_list_codg], *line.units(j)[:2], line.hosp_appr_flag, enc.psn_type)
            for j, line in enumerate(bill.feedetail)
        ]  # steps 1-5
        sums = bill_sums(priced)

        dedc = deductible(sums.inscp, ded)  # step 7
        ratio = pool_ratio(group, enc, rules)  # step 8
        hifp, e_over = pooled_fund(sums.inscp - dedc, ratio, group.benefit.ceiling, state.pooled_paid[group.index])
        t2 = second_tier(rules.second_tier_for(enc.insutype), group, enc, e_over, sums.inscp, hifp, state)  # 9
        maf = medical_assistance(enc, rules, sums.inscp, hifp, t2, state)  # step 10
        cvlserv = civil_servant_supplement()  # step 11
        fund = hifp + t2.hifob + t2.hifmi + cvlserv + maf
        hosp_part = hospital_part(sums.fee, fund, enc.saf_cash)  # step 12
        psn_part = person_part(sums.fee, fund, hosp_part)  # step 13
        acct_pay = personal_account(enc, rules, psn_part, sums, state.balance)  # step 14
        cash_pay = cash(psn_part, acct_pay)  # step 15
        before = (state.adm_id, state.adm_ded_std, state.adm_ded_met, state.adm_nsetl)
        counted = move_accumulators(state, group, ded, enc, dedc, hifp, t2, maf, acct_pay)  # step 16
        if not presettle:
            self._states[enc.person] = state

        values = {
            "status": 0,
            "group": group.index,
            "ded_kind": int(group.per_admission),
            "adm_counted": int(counted),
            "year": enc.date.year,
            "pool_prop_bp": ratio,
            "medfee_sumamt": sums.fee,
            "fulamt_ownpay_amt": sums.fulamt,
            "overlmt_selfpay": sums.overlmt,
            "preselfpay_amt": sums.preselfpay,
            "inscp_scp_amt": sums.inscp,
            "act_pay_dedc": dedc,
            "hifp_pay": hifp,
            "hifob_pay": t2.hifob,
            "hifmi_pay": t2.hifmi,
            "cvlserv_pay": cvlserv,
            "maf_pay": maf,
            "fund_pay_sumamt": fund,
            "psn_part_amt": psn_part,
            "acct_pay": acct_pay,
            "psn_cash_pay": cash_pay,
            "hosp_part_amt": hosp_part,
            "balc": state.balance,
            "t2_base_add": t2.t2_base_add,
        }
        if counted:  # what a cancel of the admission's last settlement restores
            values.update(
                zip(("prev_adm_id", "prev_adm_ded_std", "prev_adm_ded_met", "prev_adm_nsetl"), before, strict=True)
            )
        return values, priced

    def encounter(self, bill: Bill, admission: int) -> Encounter:
        """The bill's person, regions (by code, in the policy) and date as the steps read them; ``admission``
        is its mdtrt_id's key."""
        person = self.population.index_of(bill.psn_no)
        attrs = self.population.attrs[person]
        insured_index = int(attrs["region"])
        treat_code = bill.mdtrtarea_admvs or self.population.region_codes[insured_index]
        return Encounter(
            person=person,
            attrs=attrs,
            insutype=INSUTYPES[attrs["insutype"]],
            psn_type=PSN_TYPES[attrs["psn_type"]],
            insured=self.policy.regions[insured_index],
            insured_index=insured_index,
            treat=self.policy.region(treat_code),
            treat_index=self.population.region_codes.index(treat_code),
            date=bill.bill_date,
            med_type=bill.med_type,
            tier=bill.hosp_lv,
            acct_used=bill.acct_used_flag,
            saf_cash=bill.saf_cash_fen,
            admission=admission,
        )

    # -- cancel -------------------------------------------------------------------------------

    def cancel(
        self, person: int, original: np.ndarray, role: int, restore: tuple[int, int, int, int]
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
        if int(original[COL["acct_pay"]]) > MAX_BALANCE_FEN - st.balance:  # past the balance bound: nothing moves
            return BALANCE_LIMIT, st.balance
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
