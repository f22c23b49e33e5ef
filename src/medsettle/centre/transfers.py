"""Transfer between regions: the old region ends the relation (the person is inactive, the cards cancelled)
and issues a certificate with the balance and the year's accumulators; the new region's acceptance makes the
person insured there again, the state itself (one record per person) moving with them; the months between
leaving and acceptance are transfer months, so a gap of up to 3 does not break the contribution run.
Between the two steps no contribution or credit is accepted (the person is insured nowhere); a reversal of
an earlier sale may still refund the account, and the acceptance takes the balance as it is (the answer
says so), so a transfer can always be completed; until it is, it can be undone (``transfer_undo``: the person
back as before the transfer out, their cards as they were, the certificate void;
docs/agency.md 'Undoing a transfer'). A flexible employee is accepted without a unit
(docs/agency.md 'Flexible employees').
The steps are journaled PERSON_EVENTs (medsettle.centre.person_events).
"""

from __future__ import annotations

from ..bounds import MAX_BALANCE_FEN
from ..engine.persons import FLAG_ACTIVE
from ..engine.settler import Settler
from ..errors import InvalidInput
from ..money import fen_to_decimal
from ..timeutil import month_index
from . import admin as A
from .core import Ledger, journal_key
from .person_events import FLEXIBLE_UNIT, PersonEvents
from .registry import Registry

CARDS_BEFORE = "cards_before"  # on the filed certificate only (not the answer): what an undo gives back


def apply_transfer_undo(settler: Settler, registry: Registry, body: dict) -> None:
    """Apply a ``transfer_undo`` event (live or on replay): the certificate void, the person insured in the
    old region again, the cards as the transfer out found them (a certificate of an older version names
    none: they stay cancelled)."""
    cert = registry.transfers[body["certificate_no"]]
    cert["void"] = True
    psn_no = cert["psn_no"]
    index = settler.population.index_of(psn_no)
    settler.update_person(psn_no, flags=int(settler.population.attrs[index]["flags"]) | FLAG_ACTIVE)
    registry.ended.pop(psn_no, None)
    for card_no, status in cert.get(CARDS_BEFORE, {}).items():
        registry.cards[card_no].status = status


class Transfers:
    """The certificates (the registry's) and the two steps of a transfer."""

    def __init__(self, ledger: Ledger, registry: Registry, events: PersonEvents) -> None:
        self._ledger = ledger
        self._registry = registry
        self._events = events

    def transfer_out(self, req: A.TransferOut) -> dict:
        d = self._events.describe(req.psn_no)
        if not d["active"]:
            raise InvalidInput(f"person {req.psn_no} is not insured here now", field="psn_no")
        if req.to_admdvs == d["insuplc_admdvs"]:
            raise InvalidInput("a transfer goes to another region", field="to_admdvs")
        if req.to_admdvs not in [r.admdvs for r in self._ledger.settler.policy.regions]:
            raise InvalidInput(f"region {req.to_admdvs} is not one of this centre's", field="to_admdvs")
        today = self._ledger.clock.now().date()
        with self._ledger.lock:
            state = self._ledger.settler.person_state(req.psn_no)
        cert = {
            "certificate_no": f"TC{d['insuplc_admdvs']}{req.to_admdvs}{len(self._registry.transfers) + 1:08d}",
            "psn_no": req.psn_no,
            "from_admdvs": d["insuplc_admdvs"],
            "to_admdvs": req.to_admdvs,
            "month": month_index(today),
            "date": today.isoformat(),
            "balance": state.balance,
            "accumulators": {
                "year": state.acc_year,
                "deductible_met": list(state.ded_met),
                "pooled_paid": list(state.pooled_paid),
                "second_tier_base": state.t2_base,
                "second_tier_paid": state.t2_paid,
                "assistance_paid": state.maf_paid,
            },
            "accepted": False,
        }
        cards = {no: self._registry.cards[no].status for no in self._registry.cards_of.get(req.psn_no, [])}
        cert["acceptance_letter"] = req.acceptance_letter  # the new region's, presented here
        presented = {"acceptance_letter": req.acceptance_letter, "to_admdvs": req.to_admdvs}
        body = {
            "action": "transfer_out",
            "psn_no": req.psn_no,
            "certificate": {**cert, CARDS_BEFORE: cards},
            "presented": presented,
        }
        self._events.commit(d["insuplc_admdvs"], f"{req.psn_no}/transfer_out/{cert['certificate_no']}", body)
        return cert  # in fen throughout, balance and accumulators alike

    def transfer_undo(self, req: A.TransferUndo) -> dict:
        """Undo a transfer out not yet accepted: the person is insured in the old region as before it."""
        cert = self._registry.transfers.get(req.certificate_no)
        if cert is None:
            raise InvalidInput(f"no transfer certificate {req.certificate_no!r}", field="certificate_no")
        if cert["accepted"]:
            raise InvalidInput(
                f"certificate {req.certificate_no} was accepted in {cert['to_admdvs']}: a completed transfer is "
                "not undone (a transfer back is a new transfer)",
                field="certificate_no",
            )
        if cert.get("void"):
            raise InvalidInput(f"certificate {req.certificate_no} was already undone", field="certificate_no")
        psn_no = cert["psn_no"]
        body = {"action": "transfer_undo", "psn_no": psn_no, "certificate_no": req.certificate_no}
        self._events.commit(cert["from_admdvs"], journal_key(psn_no, "transfer_undo", req.certificate_no), body)
        with self._ledger.lock:
            balance = self._ledger.settler.person_state(psn_no).balance
        return {
            "psn_no": psn_no,
            "insuplc_admdvs": cert["from_admdvs"],
            "certificate_no": req.certificate_no,
            "void": True,
            "balc": str(fen_to_decimal(balance)),
            "cards": {no: status for no, status in cert.get(CARDS_BEFORE, {}).items()},
        }

    def transfer_in(self, req: A.TransferIn) -> dict:
        cert = self._registry.transfers.get(req.certificate_no)
        if cert is None:
            raise InvalidInput(f"no transfer certificate {req.certificate_no!r}", field="certificate_no")
        if cert["accepted"]:
            raise InvalidInput(f"certificate {req.certificate_no} was already accepted", field="certificate_no")
        if cert.get("void"):
            raise InvalidInput(f"certificate {req.certificate_no} was undone: it is void", field="certificate_no")
        d = self._events.describe(cert["psn_no"])
        flexible = cert["psn_no"] in self._registry.flexible and not (req.emp_no or req.emp_name)
        if d["insutype"] == "310" and not flexible and not (req.emp_no and req.emp_name):
            raise InvalidInput(
                "an employee is accepted with their new unit (emp_no and emp_name; a flexible employee with none)",
                field="emp_name" if req.emp_no else "emp_no",
            )
        with self._ledger.lock:
            balance = self._ledger.settler.person_state(cert["psn_no"]).balance
        if max(balance, cert["balance"]) > MAX_BALANCE_FEN:  # only a journal of an older version could hold one
            raise InvalidInput(
                f"certificate {req.certificate_no} carries a balance past the bound of {MAX_BALANCE_FEN} fen",
                field="certificate_no",
            )
        month = month_index(self._ledger.clock.now().date())
        body = {
            "action": "transfer_in",
            "certificate_no": req.certificate_no,
            "psn_no": cert["psn_no"],
            "gap_months": list(range(cert["month"] + 1, month)),
            "emp_no": FLEXIBLE_UNIT[0] if flexible else req.emp_no or f"{cert['to_admdvs']}V00000",
            "emp_name": FLEXIBLE_UNIT[1] if flexible else req.emp_name or "城乡居民虚拟单位",
            **({"flexible": True} if flexible else {}),
        }
        self._events.commit(cert["to_admdvs"], f"{cert['psn_no']}/transfer_in/{req.certificate_no}", body)
        return {
            "psn_no": cert["psn_no"],
            "insuplc_admdvs": cert["to_admdvs"],
            "balc": str(fen_to_decimal(balance)),
            "note": "issue a card of the new region ('issue_card')"
            + (
                f"; the balance moved since the certificate ({cert['balance']} fen, now {balance} fen: a reversal "
                "of an earlier sale)"
                if balance != cert["balance"]
                else ""
            ),
        }


__all__ = ["Transfers"]
