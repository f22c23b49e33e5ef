"""Transfer between regions: the old region ends the relation (the person is inactive, the cards cancelled)
and issues a certificate with the balance and the year's accumulators; the new region's acceptance makes the
person insured there again, the state itself (one record per person) moving with them; the months between
leaving and acceptance are transfer months, so a gap of up to 3 does not break the contribution run.
Between the two steps no contribution or credit is accepted (the person is insured nowhere); a reversal of
an earlier sale may still refund the account, and the acceptance takes the balance as it is (the answer
says so), so a transfer can always be completed.
Both steps are journaled PERSON_EVENTs (medsettle.centre.person_events).
"""

from __future__ import annotations

from ..bounds import MAX_BALANCE_FEN
from ..errors import InvalidInput
from ..money import fen_to_decimal
from ..timeutil import month_index
from . import admin as A
from .core import Ledger
from .person_events import PersonEvents
from .registry import Registry


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
        body = {"action": "transfer_out", "psn_no": req.psn_no, "certificate": cert}
        self._events.commit(d["insuplc_admdvs"], f"{req.psn_no}/transfer_out/{cert['certificate_no']}", body)
        return cert  # in fen throughout, balance and accumulators alike

    def transfer_in(self, req: A.TransferIn) -> dict:
        cert = self._registry.transfers.get(req.certificate_no)
        if cert is None:
            raise InvalidInput(f"no transfer certificate {req.certificate_no!r}", field="certificate_no")
        if cert["accepted"]:
            raise InvalidInput(f"certificate {req.certificate_no} was already accepted", field="certificate_no")
        d = self._events.describe(cert["psn_no"])
        if d["insutype"] == "310" and not (req.emp_no and req.emp_name):
            raise InvalidInput("an employee is accepted with their new unit (emp_no and emp_name)", field="emp_no")
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
            "emp_no": req.emp_no or f"{cert['to_admdvs']}V00000",
            "emp_name": req.emp_name or "城乡居民虚拟单位",
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
