"""The agency's admin API (POST /admin, ``medsettle persons ...``): one request validated by its model
(medsettle.centre.admin) and dispatched to the flow whose job it is: enrolment, re-enrolment and
cancellation (enrolment), scheme changes, unemployment and re-employment (employment), contributions
(contributions), card issue (card_issue), card events and account credits (cards), transfers between
regions (transfers), emergency claims at a non-agreed institution (claims), and the QR e-voucher (held in
memory only, valid 5 minutes: a restart voids the vouchers issued before). Person events are applied by
medsettle.centre.person_events both live and on replay, so a restarted centre has the same persons.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ..engine.bills import field_path
from ..errors import InvalidInput
from . import admin as A
from .card_issue import CardIssue, add_working_days
from .cards import Cards
from .claims import Claims
from .contributions import Contributions
from .core import Ledger
from .employment import Employment
from .enrolment import Enrolment
from .institutions import Institution
from .person_events import PersonEvents
from .qr import QrVouchers
from .regions import OwnedRegions
from .registry import Registry
from .transfers import Transfers


class PersonsFlow:
    """The admin API of persons and cards. The persons' state is the settler's (their rows) and the
    registry's (identities, contributions, transfers); card actions and credits go to the cards flow."""

    def __init__(
        self,
        ledger: Ledger,
        registry: Registry,
        cards: Cards,
        qr: QrVouchers,
        regions: OwnedRegions,
        institutions: dict[str, Institution] | None = None,
    ) -> None:
        """``institutions``: the agreed institutions (fixmedins_code -> them): an emergency claim is for another."""
        self._ledger = ledger
        self._registry = registry
        self._cards = cards
        self._qr = qr
        self._regions = regions
        self._events = PersonEvents(ledger, registry, cards)
        self._enrolment = Enrolment(ledger, registry, self._events)
        self._contributions = Contributions(ledger, registry, self._events, cards)
        self._card_issue = CardIssue(ledger, registry, self._events)
        self._transfers = Transfers(ledger, registry, self._events)
        self._employment = Employment(ledger, registry, self._events)
        self._claims = Claims(ledger, self._events, institutions or {})

    def admin(self, body: Any) -> dict:
        """One admin request (a dict with ``action``); answers a dict, raises InvalidInput naming the field."""
        if not isinstance(body, dict):
            raise InvalidInput("expected a JSON object", field="request")
        action = body.get("action")
        model = None if action is None else A.ADMIN_REQUESTS.get(action)
        if model is None:
            raise InvalidInput(
                f"unknown action {body.get('action')!r}: one of {', '.join(A.ADMIN_REQUESTS)}", field="action"
            )
        try:
            req = model.model_validate(body)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise InvalidInput(err["msg"], field=field_path(err["loc"]) or "request") from None
        if self._regions.partial:
            self._check_admin_ownership(req)
        return self._dispatch(req)

    def _dispatch(self, req: A.AdminRequest) -> dict:
        """The handler of the request's model (one model per action in A.ADMIN_REQUESTS)."""
        match req:
            case A.CardAction():
                return self._cards.card_event(req.card_no, req.card_action, replace=req.replace)
            case A.Credit():
                return self._cards.credit_account(req.psn_no, req.amount, req.key)
            case A.CancelPerson():
                return self._enrolment.cancel_person(req.psn_no, req.reason)
            case A.Enrol():
                return self._enrolment.enrol(req)
            case A.ChangeUnit():
                return self._enrolment.change_unit(req)
            case A.ChangeScheme():
                return self._employment.change_scheme(req)
            case A.Unemployed():
                return self._employment.unemployed(req)
            case A.Reemployed():
                return self._employment.reemployed(req)
            case A.Contribute():
                return self._contributions.contribute(req)
            case A.IssueCard():
                return self._card_issue.issue_card(req)
            case A.IssueCardsEmployer():
                return self._card_issue.issue_cards_employer(req)
            case A.TransferOut():
                return self._transfers.transfer_out(req)
            case A.TransferIn():
                return self._transfers.transfer_in(req)
            case A.TransferUndo():
                return self._transfers.transfer_undo(req)
            case A.CreditRun():
                return self._contributions.credit_run(req, self._regions)
            case A.IssueQr():
                return self.issue_qr(req)
            case A.CardRecord():
                return self._card_issue.card_record(req)
            case A.EmergencyClaim():
                return self._claims.claim(req)
            case A.Paperwork():
                self._events.describe(req.psn_no)  # an unknown person is refused naming psn_no
                return {"psn_no": req.psn_no, "presented": self._events.presented(req.psn_no)}
        raise TypeError(f"no handler for the admin request {type(req).__name__}")

    def cancel_person(self, psn_no: str, reason: str) -> dict:
        """End a person's insurance here (emigration, household registration lost, transfer out, death)."""
        return self._enrolment.cancel_person(psn_no, reason)

    def _check_admin_ownership(self, req: A.AdminRequest) -> None:
        """Only the process owning a person's region changes them (several processes, one database)."""
        if isinstance(req, A.Enrol) and req.insuplc_admdvs not in self._regions.owned:
            raise InvalidInput(
                f"region {req.insuplc_admdvs} is not owned by this centre process", field="insuplc_admdvs"
            )
        if isinstance(req, A.Enrol) and req.certno in self._registry.by_certno:  # a re-enrolment: its old region too
            self._regions.owns_person(self._registry.by_certno[req.certno], "certno")
        if isinstance(req, A.CardAction) and req.card_no in self._registry.cards:
            self._regions.owns_person(self._registry.cards[req.card_no].psn_no, "card_no")
        if isinstance(req, A.IssueCardsEmployer):
            for j, psn_no in enumerate(req.psn_nos):
                self._regions.owns_person(psn_no, f"psn_nos[{j}]")
        if isinstance(req, A.TransferIn):
            cert = self._registry.transfers.get(req.certificate_no)
            if cert is not None and not {cert["from_admdvs"], cert["to_admdvs"]} <= self._regions.owned:
                raise InvalidInput(
                    "a transfer between regions owned by different centre processes is accepted "
                    "by a process owning both (the person's state lives in the old one)",
                    field="certificate_no",
                )
        if isinstance(req, A.TransferUndo) and req.certificate_no in self._registry.transfers:
            self._regions.owns_person(self._registry.transfers[req.certificate_no]["psn_no"], "certificate_no")
        if isinstance(req, A.TransferOut) and req.to_admdvs not in self._regions.owned:
            raise InvalidInput(
                f"region {req.to_admdvs} is owned by another centre process: transfer within the "
                "regions of one process",
                field="to_admdvs",
            )
        person_no = getattr(req, "psn_no", None)
        if person_no:
            self._regions.owns_person(person_no)

    def issue_qr(self, req: A.IssueQr) -> dict:
        d = self._events.describe(req.psn_no)
        if not d["active"]:
            raise InvalidInput(f"person {req.psn_no} is not insured here now", field="psn_no")
        token, expires = self._qr.issue(req.psn_no, d["insuplc_admdvs"])
        return {
            "psn_no": req.psn_no,
            "mdtrt_cert_type": "01",
            "mdtrt_cert_no": token,
            "expires": expires.strftime("%Y-%m-%d %H:%M:%S"),
        }


__all__ = ["PersonsFlow", "add_working_days"]
