"""Enrolment and the end of insurance at the region's agency: a new person (employees with their unit,
flexible employees with none, residents in the region's virtual unit), re-enrolment of someone whose relation
here ended, a change of unit, and cancellation (emigration, household registration lost, transfer out,
death). Each is a journaled PERSON_EVENT (medsettle.centre.person_events).

psn_no of a new person: the region's 6 digits and the person's row, 14 digits (as generated ones).

Re-enrolment keeps the psn_no: on the national platform the person number (人员编号) is a person's for life,
and each enrolment is a new insurance relation (参保关系) of that number. An emigrant who returns, a
household move into one of the centre's regions, or enrolment at a new place of work (seed 000: who no
longer works in the old place re-enrols in the new one) is ``enrol`` with the same ID number: the old
relation is kept in the person's history (its months paid, its settlements, the year's accumulators of its
scheme and the account balance stay), and the new one starts with no months paid, so the policy's waiting
period runs from its first contribution (plus a resident's late-enrolment months). A dead person, or one
between regions (a transfer not yet accepted), is not re-enrolled.
"""

from __future__ import annotations

from ..engine.eligibility import late_enrolment_wait
from ..errors import InvalidInput
from ..policy.codes import PSN_TYPES_OF_INSUTYPE
from . import admin as A
from .core import Ledger, journal_key
from .person_events import FLEXIBLE_UNIT, PersonEvents
from .registry import PERSON_EVENT, Registry, id_check_digit

VIRTUAL_UNIT_NAME = "城乡居民虚拟单位"


FLEXIBLE_NOTE = (
    "; a flexible employee pays on their own base ('contribute' with base) and collects the card at a window"
)


def unit_of(
    insutype: str, psn_type: str, emp_no: str | None, emp_name: str | None, flexible: bool, region: str
) -> tuple[str, str]:
    """The unit a person is enrolled with (emp_no, emp_name): an employee's own, none for a flexible employee
    (seed 000: no unit, they pay themselves), the region's virtual unit for residents; refusals name the field."""
    if insutype == "310":
        if flexible:
            if emp_no or emp_name:
                raise InvalidInput("a flexible employee has no unit: leave emp_no and emp_name out", field="emp_no")
            if psn_type != "11":
                raise InvalidInput("a flexible employee is in service (person type 11)", field="psn_type")
            return FLEXIBLE_UNIT
        if not (emp_no and emp_name):
            raise InvalidInput(
                "an employee is enrolled with their unit (emp_no and emp_name), or without one as a flexible "
                "employee (flexible)",
                field="emp_no",
            )
        return emp_no, emp_name
    if flexible:
        raise InvalidInput("flexible employment is in the employee scheme (310)", field="flexible")
    if emp_no or emp_name:
        raise InvalidInput("residents belong to the region's virtual unit: leave emp_no out", field="emp_no")
    return f"{region}V00000", VIRTUAL_UNIT_NAME


class Enrolment:
    """Who is insured here: enrolment, re-enrolment, unit changes and cancellation."""

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
        known = self._registry.by_certno.get(req.certno)
        if known is not None:
            self._check_reenrolment(known, req)
        try:
            if len(req.psn_name.encode("gbk")) > 30:
                raise InvalidInput("the name is longer than a card holds (30 bytes in GBK)", field="psn_name")
        except UnicodeEncodeError:
            raise InvalidInput("the name has characters outside GBK", field="psn_name") from None
        today = self._ledger.clock.now().date()
        if req.brdy > today:
            raise InvalidInput("the birth date is in the future", field="brdy")
        emp_no, emp_name = unit_of(req.insutype, req.psn_type, req.emp_no, req.emp_name, req.flexible, region.admdvs)
        extra_wait = 0
        if req.insutype == "390" and req.uncovered_years:
            rules = region.ruleset_on(today) or region.rulesets[0]
            extra_wait = late_enrolment_wait(rules, req.uncovered_years)
        if known is not None:
            return self._reenrol(known, req, region.admdvs, extra_wait, emp_no, emp_name)
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
            **({"flexible": True} if req.flexible else {}),
        }
        self._events.commit(region.admdvs, journal_key(psn_no, "enrol"), body)
        return {
            "psn_no": psn_no,
            "insuplc_admdvs": region.admdvs,
            "emp_no": emp_no,
            "extra_wait_months": extra_wait,
            "note": "benefits start after the waiting months of continuous contributions ('contribute')"
            + (FLEXIBLE_NOTE if req.flexible else ""),
        }

    def _check_reenrolment(self, psn_no: str, req: A.Enrol) -> None:
        """The ID number's person may start a new relation here: not insured now, not dead, not in transfer,
        and the same person (sex and birth date as recorded)."""
        d = self._events.describe(psn_no)
        if d["active"]:
            raise InvalidInput(f"ID number {req.certno} is already insured as {psn_no}", field="certno")
        if self._registry.ended.get(psn_no) == "death":
            raise InvalidInput(f"ID number {req.certno} is {psn_no}'s, cancelled on their death", field="certno")
        if self._registry.in_transfer(psn_no):
            raise InvalidInput(
                f"ID number {req.certno} is {psn_no}'s, between regions: the new region accepts the transfer "
                "('transfer_in') instead",
                field="certno",
            )
        ident = self._registry.identities[psn_no]
        if ident.gend != req.gend:
            raise InvalidInput(f"ID number {req.certno} is recorded with sex {ident.gend}", field="gend")
        if ident.brdy != req.brdy:
            raise InvalidInput(f"ID number {req.certno} is recorded as born {ident.brdy.isoformat()}", field="brdy")

    def _reenrol(self, psn_no: str, req: A.Enrol, region: str, extra_wait: int, emp_no: str, emp_name: str) -> dict:
        relation_no = len(self._registry.relations.get(psn_no, [])) + 2  # the ended ones, the one ending, this one
        body = {
            "action": "reenrol",
            "psn_no": psn_no,
            "insutype": req.insutype,
            "psn_type": req.psn_type,
            "region": region,
            "assistance": req.assistance,
            "extra_wait": extra_wait,
            "psn_name": req.psn_name,
            "emp_no": emp_no,
            "emp_name": emp_name,
            **({"flexible": True} if req.flexible else {}),
        }
        n = self._registry.changes.get(psn_no, 0)
        self._events.commit(region, journal_key(psn_no, "reenrol", str(n)), body)
        return {
            "psn_no": psn_no,
            "insuplc_admdvs": region,
            "emp_no": emp_no,
            "extra_wait_months": extra_wait,
            "reenrolled": True,
            "relation_no": relation_no,
            "ended_relation": dict(self._registry.relations[psn_no][-1]),  # kept in the person's history
            "note": "re-enrolled with the same person number: a new insurance relation, the old one kept; benefits "
            "start after the waiting months of continuous contributions ('contribute'); issue a new card after the "
            "first ('issue_card')" + (FLEXIBLE_NOTE if req.flexible else ""),
        }

    def change_unit(self, req: A.ChangeUnit) -> dict:
        d = self._events.describe(req.psn_no)
        if d["insutype"] != "310":
            raise InvalidInput(
                "only employees change unit; residents are in the region's virtual unit (a resident who finds "
                "a job changes scheme: 'change_scheme')",
                field="psn_no",
            )
        if not d["active"]:
            raise InvalidInput(f"person {req.psn_no} is not insured here now", field="psn_no")
        if req.psn_no in self._registry.unemployed:
            raise InvalidInput(
                f"person {req.psn_no} is unemployed: the new unit records the re-employment ('reemployed')",
                field="psn_no",
            )
        ident = self._registry.identities[req.psn_no]
        if ident.emp_no == req.emp_no:
            raise InvalidInput(f"person {req.psn_no} is already with unit {req.emp_no}", field="emp_no")
        if req.certno != ident.certno:
            raise InvalidInput(f"the ID card presented is not that of {req.psn_no}", field="certno")
        card = self._registry.usable_card_of(req.psn_no)
        if card is None or card.card_no != req.card_no:
            held = "none: issue one first" if card is None else "another card"
            raise InvalidInput(
                f"card {req.card_no} is not the usable card of {req.psn_no} (they hold {held})", field="card_no"
            )
        body = {
            "action": "change_unit",
            "psn_no": req.psn_no,
            "emp_no": req.emp_no,
            "emp_name": req.emp_name,
            "certificate": req.certificate,
            "from_emp_no": ident.emp_no,
            "presented": {"certificate": req.certificate, "card_no": req.card_no, "certno": req.certno},
        }
        self._events.commit(d["insuplc_admdvs"], journal_key(req.psn_no, "unit", req.emp_no, req.certificate), body)
        return {"psn_no": req.psn_no, "emp_no": req.emp_no, "emp_name": req.emp_name, "presented": body["presented"]}

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
        # the relation's number: a re-enrolled person may end again (two cancels within a second keep apart)
        key = journal_key("admin", psn_no, "cancel", str(len(self._registry.relations.get(psn_no, [])) + 1))
        self._ledger.commit(PERSON_EVENT, region, key, body, apply=lambda: self._registry.apply(PERSON_EVENT, body))
        return body


__all__ = ["VIRTUAL_UNIT_NAME", "Enrolment", "unit_of"]
