"""Changes of employment at the region's agency (seed 000), each a journaled PERSON_EVENT
(medsettle.centre.person_events):

- a scheme change between the resident scheme (390, the region's virtual unit) and the employee scheme (310,
  a real unit on its certificate, or none for a flexible employee): the same relation goes on, so the months
  paid carry over and benefits continue if the next month is paid in the new scheme; the year's accumulators
  are per scheme (those of the scheme left wait, those of the scheme entered come back, or start at nothing);
  the personal account opens for an employee (each contribution on a base credits its share) and keeps its
  balance in the resident scheme, which pays nothing from it;
- unemployment: an employee in service leaves their unit and stays insured in the employee scheme while the
  months are paid (the unemployment insurance pays them: 'contribute' with its base); sales settle as long as
  the run holds, and stop as for anyone whose contributions stop; the card stays usable;
- re-employment: the new unit on its certificate; the card of the old employment is cancelled and the new
  unit applies for the new card (seed 000: 'employer-cards', or 'issue-card').
"""

from __future__ import annotations

from ..errors import InvalidInput
from ..policy.codes import PSN_TYPES_OF_INSUTYPE
from ..timeutil import month_index
from . import admin as A
from .core import Ledger, journal_key
from .enrolment import unit_of
from .person_events import PersonEvents
from .registry import Registry


class Employment:
    """Scheme changes, unemployment and re-employment of persons insured here."""

    def __init__(self, ledger: Ledger, registry: Registry, events: PersonEvents) -> None:
        self._ledger = ledger
        self._registry = registry
        self._events = events

    def _insured(self, psn_no: str) -> dict:
        d = self._events.describe(psn_no)
        if not d["active"]:
            raise InvalidInput(f"person {psn_no} is not insured here now", field="psn_no")
        return d

    def _commit(self, d: dict, action: str, body: dict) -> None:
        n = self._registry.changes.get(body["psn_no"], 0)  # counts these events: each key is new
        self._events.commit(str(d["insuplc_admdvs"]), journal_key(body["psn_no"], action, str(n)), body)

    def change_scheme(self, req: A.ChangeScheme) -> dict:
        d = self._insured(req.psn_no)
        if req.insutype == d["insutype"]:
            raise InvalidInput(
                f"person {req.psn_no} is already in scheme {req.insutype} (a new unit is 'change_unit')",
                field="insutype",
            )
        region = self._ledger.settler.policy.region(str(d["insuplc_admdvs"]))
        if req.insutype not in region.insutypes:
            raise InvalidInput(f"region {region.admdvs} has no scheme {req.insutype}", field="insutype")
        if req.psn_type not in PSN_TYPES_OF_INSUTYPE[req.insutype]:
            raise InvalidInput(f"person type {req.psn_type} is not one of scheme {req.insutype}", field="psn_type")
        emp_no, emp_name = unit_of(req.insutype, req.psn_type, req.emp_no, req.emp_name, req.flexible, region.admdvs)
        if req.insutype == "310" and not req.flexible and req.certificate is None:
            raise InvalidInput("a new unit is recorded on its certificate", field="certificate")
        if req.certificate is not None and (req.insutype != "310" or req.flexible):
            raise InvalidInput("certificate is the new unit's: for a move to a unit only", field="certificate")
        body = {
            "action": "change_scheme",
            "psn_no": req.psn_no,
            "insutype": req.insutype,
            "psn_type": req.psn_type,
            "from_insutype": d["insutype"],
            "emp_no": emp_no,
            "emp_name": emp_name,
            "certificate": req.certificate,
            **({"flexible": True} if req.flexible else {}),
        }
        self._commit(d, "change_scheme", body)
        note = (
            "the personal account opens: each contribution on a base credits its share ('contribute' with base)"
            if req.insutype == "310"
            else "the account keeps its balance (the resident scheme pays nothing from it)"
        )
        return {
            "psn_no": req.psn_no,
            "insutype": req.insutype,
            "psn_type": req.psn_type,
            "emp_no": emp_no,
            "emp_name": emp_name,
            "note": f"{note}; the months paid carry over and the year's accumulators are the new scheme's",
        }

    def unemployed(self, req: A.Unemployed) -> dict:
        d = self._insured(req.psn_no)
        if d["insutype"] != "310" or d["psn_type"] != "11":
            raise InvalidInput("only an employee in service (310, person type 11) becomes unemployed", field="psn_no")
        if req.psn_no in self._registry.flexible:
            raise InvalidInput(f"person {req.psn_no} is a flexible employee: no unit to leave", field="psn_no")
        if req.psn_no in self._registry.unemployed:
            raise InvalidInput(f"person {req.psn_no} is already unemployed", field="psn_no")
        ident = self._registry.identities[req.psn_no]
        month = month_index(self._ledger.clock.now().date())
        body = {
            "action": "unemployed",
            "psn_no": req.psn_no,
            "month": month,
            "from_emp_no": ident.emp_no,
            "from_emp_name": ident.emp_name,
        }
        self._commit(d, "unemployed", body)
        return {
            "psn_no": req.psn_no,
            "unemployed_since": f"{month // 12:04d}-{month % 12 + 1:02d}",
            "left_emp_name": ident.emp_name,
            "note": "insured in the employee scheme while the months are paid (the unemployment insurance pays: "
            "'contribute' with its base); the card stays usable until re-employment ('reemployed')",
        }

    def reemployed(self, req: A.Reemployed) -> dict:
        d = self._insured(req.psn_no)
        if req.psn_no not in self._registry.unemployed:
            raise InvalidInput(f"person {req.psn_no} is not unemployed (a new unit is 'change_unit')", field="psn_no")
        held = self._registry.usable_card_of(req.psn_no)
        body = {
            "action": "reemployed",
            "psn_no": req.psn_no,
            "emp_no": req.emp_no,
            "emp_name": req.emp_name,
            "certificate": req.certificate,
            "cancelled_cards": [held.card_no] if held is not None else [],
        }
        self._commit(d, "reemployed", body)
        return {
            "psn_no": req.psn_no,
            "emp_no": req.emp_no,
            "emp_name": req.emp_name,
            "cancelled_cards": body["cancelled_cards"],
            "note": "the new unit applies for the new card ('issue_cards_employer' or 'issue_card')",
        }


__all__ = ["Employment"]
