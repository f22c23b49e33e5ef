"""Emergency care at a non-agreed institution, claimed manually at the insured region's agency (seed 003;
docs/agency.md 'Emergency care at a non-agreed institution').

A person treated in an emergency at an institution that has no agreement with the fund pays there and claims
at the agency with the receipt. The claim is settled as a bill of the person's scheme (emergency, med_type 13,
or an emergency admission, 21) at the institution's tier and region, with the drug scope the insured region's
rule set relaxes for it (``emergency_scope``): a class C drug settled with the class and self-pay-first share
of the item the rule set names, a restricted item as approved. The settlement is journaled as a settlement
whose body also holds the claim, so a restart replays it with every other settlement and finds the claim
again; no counter can cancel it (it is no institution's).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ..engine.results import Settlement
from ..errors import InvalidInput, SettlementRefused
from ..ledger.journal import Entry
from ..money import fen_to_decimal
from ..policy.models import EmergencyScope
from . import admin as A
from .core import Ledger
from .institutions import Institution
from .person_events import PersonEvents
from .settlements import SETTLE

CLAIM = "emergency_claim"  # the key of a settlement's journal body that holds its claim
_REFUSED_FIELD = {"NO_RULES_IN_FORCE": "date", "YEAR_CLOSED": "date"}  # others name the person


@dataclass(frozen=True)
class _Line:
    """One receipt line as it is settled: the code the engine prices it as, and whether the scope was relaxed."""

    item: A.ClaimItem
    settled_as: str
    approved: bool
    relaxed: str  # "" as listed; "class_c_as" or "restricted_approved": which relaxation priced it


class Claims:
    """Emergency claims: (institution, invoice_no) -> the claim's answer, and the settling of new ones."""

    def __init__(self, ledger: Ledger, events: PersonEvents, institutions: dict[str, Institution]) -> None:
        self._ledger = ledger
        self._events = events
        self._institutions = institutions
        self._claims: dict[tuple[str, str], dict[str, Any]] = {}
        ledger.observe_every(self._replay)

    def claim(self, req: A.EmergencyClaim) -> dict:
        """Settle one claim (refused naming the field, nothing changed, when it is invalid)."""
        ledger = self._ledger
        settler = ledger.settler
        with ledger.lock:
            ledger.refuse_if_failed()
            d = self._events.describe(req.psn_no)
            if not d["active"]:
                raise InvalidInput(f"person {req.psn_no} is not insured here now", field="psn_no")
            key = self._check(req, str(d["insuplc_admdvs"]))
            lines = self._lines(req, str(d["insuplc_admdvs"]))
            bill = self._bill(req, lines, f"EC:{key[0]}:{req.invoice_no}")  # one claim a receipt: unique
            try:
                result = settler.settle(bill, when=ledger.clock.now().replace(tzinfo=None, microsecond=0))
            except SettlementRefused as exc:
                raise InvalidInput(f"{exc.code}: {exc}", field=_REFUSED_FIELD.get(exc.code, "psn_no")) from None
            claim = self._record(req, lines, result)
            self._claims[key] = claim
            future = ledger.append(
                SETTLE,
                str(d["insuplc_admdvs"]),
                result.setl_id,
                {
                    "setl_id": result.setl_id,
                    "bill": bill,
                    "setl_time": result.setl_time.isoformat(),
                    "adm": result.adm,
                    "row": result.row.tolist(),
                    "fixmedins_code": "",  # the agency's: no counter cancels it
                    CLAIM: claim,
                },
            )
        ledger.wait(future)
        return claim

    def _replay(self, entry: Entry) -> None:
        claim = entry.body.get(CLAIM) if entry.kind == SETTLE else None
        if claim is not None:
            self._claims[(claim["institution_code"] or claim["institution_name"], claim["invoice_no"])] = claim

    def _check(self, req: A.EmergencyClaim, insured: str) -> tuple[str, str]:
        """What is checked before anything is priced; answers the key the receipt is claimed once under."""
        policy = self._ledger.settler.policy
        if req.institution_code is not None and req.institution_code in self._institutions:
            raise InvalidInput(
                f"{req.institution_code} is an agreed institution: its bills are settled at its counter",
                field="institution_code",
            )
        if req.institution_admdvs not in {r.admdvs for r in policy.regions}:
            raise InvalidInput(
                f"region {req.institution_admdvs} is not one of the centre's (its catalogue prices the claim)",
                field="institution_admdvs",
            )
        today = self._ledger.clock.now().date()
        if req.date > today:
            raise InvalidInput(f"{req.date} is after today ({today})", field="date")
        rules = policy.region(insured).ruleset_on(req.date)
        if rules is None:
            raise InvalidInput(f"no rules of region {insured} are in force on {req.date}", field="date")
        last = req.date + dt.timedelta(days=rules.deferred_window.manual_claim_days)
        if today > last:
            raise InvalidInput(
                f"the care of {req.date} could be claimed until {last} "
                f"(the policy's manual_claim_days, {rules.deferred_window.manual_claim_days})",
                field="date",
            )
        total = sum(item.pric * item.cnt for item in req.items)
        if total != req.medfee_sumamt:
            raise InvalidInput(
                f"the items add up to {total} fen, the receipt says {req.medfee_sumamt}", field="medfee_sumamt"
            )
        key = (req.institution_code or req.institution_name, req.invoice_no)
        if key in self._claims:
            raise InvalidInput(
                f"receipt {req.invoice_no} of {key[0]} was claimed already ({self._claims[key]['claim_no']})",
                field="invoice_no",
            )
        return key

    def _lines(self, req: A.EmergencyClaim, insured: str) -> list[_Line]:
        """Each receipt line with the scope relaxed as the insured region's rule set says."""
        policy = self._ledger.settler.policy
        catalogue = policy.region(req.institution_admdvs).catalogue_on(req.date)
        rules = policy.region(insured).ruleset_on(req.date)
        scope = rules.emergency_scope if rules is not None else EmergencyScope()
        if catalogue is None:
            raise InvalidInput(f"no catalogue of {req.institution_admdvs} is in force on {req.date}", field="date")
        lines = []
        for j, item in enumerate(req.items):
            listed = catalogue.by_code.get(item.med_list_codg)
            if listed is None:
                raise InvalidInput(
                    f"{item.med_list_codg!r} is not in catalogue {catalogue.version}",
                    field=f"items[{j}].med_list_codg",
                )
            if listed.chrgitm_lv == "03" and scope.class_c_as is not None:
                lines.append(_Line(item, scope.class_c_as, False, "class_c_as"))
            elif listed.lmt_used_flag and scope.restricted_approved:
                lines.append(_Line(item, item.med_list_codg, True, "restricted_approved"))
            else:
                lines.append(_Line(item, item.med_list_codg, False, ""))
        return lines

    def _bill(self, req: A.EmergencyClaim, lines: list[_Line], mdtrt_id: str) -> dict[str, Any]:
        return {
            "bill_id": req.invoice_no,
            "psn_no": req.psn_no,
            "mdtrt_id": mdtrt_id,
            "med_type": req.med_type,
            "setl_time": req.date.isoformat(),
            "hosp_lv": req.hosp_lv,
            "mdtrtarea_admvs": req.institution_admdvs,
            "acct_used_flag": False,  # paid at the institution: the claim pays the fund's share back
            "feedetail": [
                {
                    "feedetl_sn": str(j + 1),
                    "med_list_codg": line.settled_as,
                    "pric": str(fen_to_decimal(line.item.pric)),
                    "cnt": str(line.item.cnt),
                    "hosp_appr_flag": line.approved,
                }
                for j, line in enumerate(lines)
            ],
        }

    def _record(self, req: A.EmergencyClaim, lines: list[_Line], result: Settlement) -> dict[str, Any]:
        """The claim as answered and journaled: what was presented, how each line was settled, in fen."""
        split = result.line_split(lambda fen: fen)
        return {
            "claim_no": result.setl_id,
            "setl_id": result.setl_id,
            "psn_no": req.psn_no,
            "date": req.date.isoformat(),
            "med_type": req.med_type,
            "institution_name": req.institution_name,
            "institution_code": req.institution_code,
            "institution_admdvs": req.institution_admdvs,
            "hosp_lv": req.hosp_lv,
            "agreed": False,
            "invoice_no": req.invoice_no,
            "items": [
                {
                    "med_list_codg": line.item.med_list_codg,
                    "pric": line.item.pric,
                    "cnt": line.item.cnt,
                    "settled_as": line.settled_as,
                    "relaxed": line.relaxed,
                    "inscp_scp_amt": split[j]["inscp_scp_amt"],
                    "fulamt_ownpay_amt": split[j]["fulamt_ownpay_amt"],
                }
                for j, line in enumerate(lines)
            ],
            "amounts_fen": {
                name: result.amount(name)
                for name in ("medfee_sumamt", "inscp_scp_amt", "fulamt_ownpay_amt", "fund_pay_sumamt", "psn_part_amt")
            },
            "note": "settled with the emergency drug scope of the insured region's rule set (emergency_scope); "
            "the fund pays fund_pay_sumamt back",
        }


__all__ = ["CLAIM", "Claims"]
