"""The inpatient flow (docs/settlement.md 'Admissions', §3): 2401/2402/2404/2405 admission and discharge,
2301/2302 fees (the outpatient handlers, for admissions), 2303/2304 settle (mid-stay too), 2305 cancel.

An admission is an encounter with med_type 21. A person has one admission in hospital at a time. Its
deductible is charged once across all its settlements (the engines key it by mdtrt_id). The bill's
date is the discharge time for the final settlement and the settlement's time for a mid-stay one.
"""

from __future__ import annotations

from ..errors import InvalidInput
from .cards import Cards
from .core import Ledger
from .encounters import (
    DISCHARGE,
    DISCHARGE_CANCEL,
    REGISTER,
    REGISTER_CANCEL,
    Encounter,
    Encounters,
)
from .institutions import Institution
from .messages import Admission, Discharge, Envelope, InpatientSettle, StayCancel
from .outpatient import OutpatientFlow
from .settlements import Settlements


class InpatientFlow:
    """Admissions: the encounters' state and journal entries are the outpatient flow's (its public
    methods); an admission's fee uploads are its 2204/2205 handlers."""

    def __init__(
        self, ledger: Ledger, settlements: Settlements, cards: Cards, encounters: Encounters, outpatient: OutpatientFlow
    ) -> None:
        self._ledger = ledger
        self._settlements = settlements
        self._cards = cards
        self._encounters = encounters
        self._outpatient = outpatient

    def handlers(self) -> dict:
        return {
            "2401": self._admit,
            "2402": self._discharge,
            "2404": self._admission_cancel,
            "2405": self._discharge_cancel,
            "2301": self._outpatient.fees,
            "2302": self._outpatient.fees_cancel,
            "2303": self._inpatient_presettle,
            "2304": self._inpatient_settle,
        }

    def _admit(self, env: Envelope, institution: Institution, payload: Admission) -> dict:
        info = payload.mdtrtinfo
        if "21" not in institution.med_types:
            raise InvalidInput(
                f"institution {institution.fixmedins_code} does not admit patients", field="input.mdtrtinfo.med_type"
            )
        self._ledger.settler.population.index_of(info.psn_no, "input.mdtrtinfo.psn_no")
        self._cards.present(env, institution, info, info.psn_no, activate=True, where="input.mdtrtinfo")
        current = self._encounters.in_hospital(info.psn_no)
        if current is not None:
            raise InvalidInput(
                f"person {info.psn_no} is in hospital already (mdtrt_id {current.mdtrt_id})",
                field="input.mdtrtinfo.psn_no",
            )

        def body() -> dict:
            return {
                "mdtrt_id": self._outpatient.new_mdtrt_id("ZY", institution),
                "psn_no": info.psn_no,
                "fixmedins_code": institution.fixmedins_code,
                "begntime": info.begntime,
                "med_type": "21",
            }

        return self._outpatient.event(
            REGISTER,
            institution,
            env,
            body,
            lambda b: {"data": {"mdtrt_id": b["mdtrt_id"], "psn_no": b["psn_no"], "ipt_otp_no": info.ipt_no}},
        )

    def _discharge(self, env: Envelope, institution: Institution, payload: Discharge) -> dict:
        info = payload.dscginfo
        enc = self._stay(info.mdtrt_id, info.psn_no, institution, "input.dscginfo")
        if enc.endtime:
            raise InvalidInput(
                f"admission {enc.mdtrt_id} was discharged at {enc.endtime}", field="input.dscginfo.mdtrt_id"
            )
        return self._outpatient.event(
            DISCHARGE, institution, env, lambda: {"mdtrt_id": enc.mdtrt_id, "endtime": info.endtime}, lambda b: {}
        )

    def _admission_cancel(self, env: Envelope, institution: Institution, payload: StayCancel) -> dict:
        enc = self._stay(payload.data.mdtrt_id, payload.data.psn_no, institution, "input.data")
        if enc.settled:
            raise InvalidInput("the admission has settlements: cancel them first (2305)", field="input.data.mdtrt_id")
        return self._outpatient.event(
            REGISTER_CANCEL, institution, env, lambda: {"mdtrt_id": enc.mdtrt_id}, lambda b: {}
        )

    def _discharge_cancel(self, env: Envelope, institution: Institution, payload: StayCancel) -> dict:
        enc = self._stay(payload.data.mdtrt_id, payload.data.psn_no, institution, "input.data")
        if not enc.endtime or enc.closed:
            raise InvalidInput("only a discharge not yet finally settled can be cancelled", field="input.data.mdtrt_id")
        return self._outpatient.event(
            DISCHARGE_CANCEL, institution, env, lambda: {"mdtrt_id": enc.mdtrt_id}, lambda b: {}
        )

    def _inpatient_presettle(self, env: Envelope, institution: Institution, payload: InpatientSettle) -> dict:
        enc, bill = self._inpatient_bill(env, institution, payload)
        self._cards.present(env, institution, payload.data, enc.psn_no, presettle=True)
        return self._settlements.presettle(bill, env)

    def _inpatient_settle(self, env: Envelope, institution: Institution, payload: InpatientSettle) -> dict:
        enc, bill = self._inpatient_bill(env, institution, payload)
        if payload.data.deferred_voucher_no is not None:  # the window runs from discharge (docs/failures.md)
            self._settlements.check_deferred_window(institution, enc.endtime or bill["setl_time"], "21")
        self._cards.present(env, institution, payload.data, enc.psn_no)
        return self._settlements.settle(
            env,
            institution,
            bill,
            {"mdtrt_id": enc.mdtrt_id, "feedetl_sns": [ln["feedetl_sn"] for ln in bill["feedetail"]]},
            voucher=payload.data.deferred_voucher_no,
        )

    def _inpatient_bill(
        self, env: Envelope, institution: Institution, payload: InpatientSettle
    ) -> tuple[Encounter, dict]:
        data = payload.data
        enc = self._stay(data.mdtrt_id, data.psn_no, institution, "input.data")
        mid_stay = str(data.mid_setl_flag) == "1"
        if mid_stay and enc.endtime:
            raise InvalidInput(
                "the patient is discharged: settle finally (mid_setl_flag 0)", field="input.data.mid_setl_flag"
            )
        if not mid_stay and not enc.endtime:
            raise InvalidInput(
                "discharge first (2402), or settle mid-stay with mid_setl_flag 1", field="input.data.mid_setl_flag"
            )
        lines = enc.open_lines()
        if not lines:
            raise InvalidInput("the admission has no unsettled fee lines (2301)", field="input.data.mdtrt_id")
        bill = self._outpatient.bill(env, institution, enc, lines, data)
        bill["setl_time"] = (
            (env.inf_time or self._ledger.clock.now().strftime("%Y-%m-%d %H:%M:%S")) if mid_stay else enc.endtime
        )
        return enc, bill

    def _stay(self, mdtrt_id: str, psn_no: str, institution: Institution, where: str) -> Encounter:
        enc = self._outpatient.encounter(mdtrt_id, psn_no, institution, where)
        if not enc.inpatient:
            raise InvalidInput(f"{mdtrt_id} is an outpatient visit, not an admission", field=f"{where}.mdtrt_id")
        return enc
