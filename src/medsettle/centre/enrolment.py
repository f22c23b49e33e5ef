"""Enrolment and the end of insurance at the region's agency: a new person (employees with their unit,
residents in the region's virtual unit), a change of unit, and cancellation (emigration, household
registration lost, transfer out, death). Each is a journaled PERSON_EVENT (medsettle.centre.person_events).

psn_no of a new person: the region's 6 digits and the person's row, 14 digits (as generated ones).
"""

from __future__ import annotations

from ..engine.eligibility import late_enrolment_wait
from ..errors import InvalidInput
from ..policy.codes import PSN_TYPES_OF_INSUTYPE
from . import admin as A
from .core import Ledger, journal_key
from .person_events import PersonEvents
from .registry import PERSON_EVENT, Registry, id_check_digit


class Enrolment:
    """Who is insured here: enrolment, unit changes and cancellation."""

    def __init__(self, ledger: Ledger, registry: Registry, events: PersonEvents) -> None:
        self._ledger = ledger
        self._registry = registry
        self._events = events

    def enrol(self, req: A.Enrol) -> dict:
        policy = self._ledger.settler.policy
        regions = [r.admdvs for r in policy.regions]
        if req.insuplc_admdvs not in regions:
            raise InvalidInput(
                f"region {req.insuplc_admdvs} is not one of this centre's ({', '.join(regions)})",
                field="insuplc_admdvs",
            )
        region = policy.regions[regions.index(req.insuplc_admdvs)]
        if req.insutype not in region.insutypes:
            raise InvalidInput(f"region {region.admdvs} has no scheme {req.insutype}", field="insutype")
        if req.psn_type not in PSN_TYPES_OF_INSUTYPE[req.insutype]:
            raise InvalidInput(f"person type {req.psn_type} is not one of scheme {req.insutype}", field="psn_type")
        if id_check_digit(req.certno[:17]) != req.certno[17]:
            raise InvalidInput("the ID number's check digit is wrong", field="certno")
        if req.certno in self._registry.by_certno:
            raise InvalidInput(
                f"ID number {req.certno} is already insured as {self._registry.by_certno[req.certno]}", field="certno"
            )
        try:
            if len(req.psn_name.encode("gbk")) > 30:
                raise InvalidInput("the name is longer than a card holds (30 bytes in GBK)", field="psn_name")
        except UnicodeEncodeError:
            raise InvalidInput("the name has characters outside GBK", field="psn_name") from None
        today = self._ledger.clock.now().date()
        if req.brdy > today:
            raise InvalidInput("the birth date is in the future", field="brdy")
        if req.insutype == "310":
            if not (req.emp_no and req.emp_name):
                raise InvalidInput("an employee is enrolled with their unit (emp_no and emp_name)", field="emp_no")
            emp_no, emp_name = req.emp_no, req.emp_name
        else:
            if req.emp_no:
                raise InvalidInput("residents belong to the region's virtual unit: leave emp_no out", field="emp_no")
            emp_no, emp_name = f"{region.admdvs}V00000", "城乡居民虚拟单位"
        extra_wait = 0
        if req.insutype == "390" and req.uncovered_years:
            rules = region.ruleset_on(today) or region.rulesets[0]
            extra_wait = late_enrolment_wait(rules, req.uncovered_years)
        with self._ledger.lock:
            row = len(self._ledger.settler.population)
            psn_no = f"{region.admdvs}{row:014d}"
            while psn_no in self._ledger.settler.population.index:
                row += 1
                psn_no = f"{region.admdvs}{row:014d}"
        body = {
            "action": "enrol",
            "psn_no": psn_no,
            "insutype": req.insutype,
            "psn_type": req.psn_type,
            "region": region.admdvs,
            "assistance": req.assistance,
            "extra_wait": extra_wait,
            "identity": {
                "psn_name": req.psn_name,
                "certno": req.certno,
                "gend": req.gend,
                "brdy": req.brdy.isoformat(),
                "emp_no": emp_no,
                "emp_name": emp_name,
            },
        }
        self._events.commit(region.admdvs, journal_key(psn_no, "enrol"), body)
        return {
            "psn_no": psn_no,
            "insuplc_admdvs": region.admdvs,
            "emp_no": emp_no,
            "extra_wait_months": extra_wait,
            "note": "benefits start after the waiting months of continuous contributions ('contribute')",
        }

    def change_unit(self, req: A.ChangeUnit) -> dict:
        d = self._events.describe(req.psn_no)
        if d["insutype"] != "310":
            raise InvalidInput("only employees change unit; residents are in the region's virtual unit", field="psn_no")
        if not d["active"]:
            raise InvalidInput(f"person {req.psn_no} is not insured here now", field="psn_no")
        ident = self._registry.identities[req.psn_no]
        if ident.emp_no == req.emp_no:
            raise InvalidInput(f"person {req.psn_no} is already with unit {req.emp_no}", field="emp_no")
        body = {
            "action": "change_unit",
            "psn_no": req.psn_no,
            "emp_no": req.emp_no,
            "emp_name": req.emp_name,
            "certificate": req.certificate,
            "from_emp_no": ident.emp_no,
        }
        self._events.commit(d["insuplc_admdvs"], journal_key(req.psn_no, "unit", req.emp_no, req.certificate), body)
        return {"psn_no": req.psn_no, "emp_no": req.emp_no, "emp_name": req.emp_name}

    def cancel_person(self, psn_no: str, reason: str) -> dict:
        """End a person's insurance here (emigration, household registration lost, transfer out, death)."""
        if reason not in ("emigration", "household", "transfer_out", "death"):
            raise InvalidInput(
                f"unknown reason {reason!r}: emigration, household, transfer_out or death", field="reason"
            )
        population = self._ledger.settler.population
        region = population.region_of(population.index_of(psn_no))
        body = {"psn_no": psn_no, "action": "cancel", "reason": reason}
        if not population.describe(population.index_of(psn_no))["active"]:
            raise InvalidInput(f"person {psn_no} is not insured here now", field="psn_no")
        self._ledger.commit(
            PERSON_EVENT, region, f"admin/{psn_no}/cancel", body, apply=lambda: self._registry.apply(PERSON_EVENT, body)
        )
        return body


__all__ = ["Enrolment"]
