"""Persons and cards as the region's agency keeps them: enrolment, unit changes,
contributions with the monthly account credit, card issue through its channels, transfer between regions,
and the QR e-voucher. Each change is a journaled PERSON_EVENT or CARD_EVENT, applied by
:meth:`PersonsFlow._apply_person_event` both live and on replay, so a restarted centre has the same persons.

Choices where the seeds are silent (also in README):
- psn_no of a new person: the region's 6 digits and the person's row, 14 digits (as generated ones);
- a card made at a service point or through the employer is ready after 3 working days (Monday-Friday,
  public holidays not modelled); on the spot and by a delegate it is ready at once; a person holds at most
  one usable (issued or active) card: a new one needs the old one reported lost first;
- a transfer: the old region ends the relation (the person is inactive, the cards cancelled) and issues a
  certificate with the balance and the year's accumulators; the new region's acceptance makes the person
  insured there again, the state itself (one record per person) moving with them; the months between
  leaving and acceptance are transfer months, so a gap of up to 3 does not break the contribution run;
- the QR e-voucher is held in memory only (valid 5 minutes): a restart voids the vouchers issued before.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import ValidationError

from ..engine.bills import field_path
from ..engine.eligibility import late_enrolment_wait
from ..engine.persons import FLAG_ACTIVE, FLAG_ASSISTANCE
from ..errors import InvalidInput
from ..ledger.journal import Entry
from ..money import apply_bp, fen_to_decimal, to_fen
from ..policy.codes import INSUTYPE_INDEX, PSN_TYPE_INDEX, PSN_TYPES_OF_INSUTYPE
from ..timeutil import month_index
from . import admin as A
from .cards import Cards
from .core import Ledger
from .qr import QrVouchers
from .regions import OwnedRegions
from .registry import (
    CARD_EVENT,
    ISSUED,
    PERSON_EVENT,
    Card,
    Identity,
    Registry,
    id_check_digit,
)

READY_AFTER_WORKING_DAYS = {"on_the_spot": 0, "delegate": 0, "service_point": 3, "employer": 3}
MAX_BASE_FEN = 100_000_000  # a monthly contribution base above 1,000,000.00 yuan is a typing error


def add_working_days(day: dt.date, n: int) -> dt.date:
    while n > 0:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


def _month_text(m: int) -> str:
    return f"{m // 12:04d}-{m % 12 + 1:02d}"


class PersonsFlow:
    """The admin API of persons and cards. The persons' state is the settler's (their rows) and the
    registry's (identities, contributions, transfers); card actions and credits go to the cards flow."""

    def __init__(self, ledger: Ledger, registry: Registry, cards: Cards, qr: QrVouchers, regions: OwnedRegions) -> None:
        self._ledger = ledger
        self._registry = registry
        self._cards = cards
        self._qr = qr
        self._regions = regions
        ledger.owns(PERSON_EVENT, self._replay)

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
                return self.cancel_person(req.psn_no, req.reason)
            case A.Enrol():
                return self.enrol(req)
            case A.ChangeUnit():
                return self.change_unit(req)
            case A.Contribute():
                return self.contribute(req)
            case A.IssueCard():
                return self.issue_card(req)
            case A.IssueCardsEmployer():
                return self.issue_cards_employer(req)
            case A.TransferOut():
                return self.transfer_out(req)
            case A.TransferIn():
                return self.transfer_in(req)
            case A.IssueQr():
                return self.issue_qr(req)
            case A.CardRecord():
                return self.card_record(req)
        raise TypeError(f"no handler for the admin request {type(req).__name__}")

    def _check_admin_ownership(self, req: A.AdminRequest) -> None:
        """Only the process owning a person's region changes them (several processes, one database)."""
        if isinstance(req, A.Enrol) and req.insuplc_admdvs not in self._regions.owned:
            raise InvalidInput(
                f"region {req.insuplc_admdvs} is not owned by this centre process", field="insuplc_admdvs"
            )
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
        if isinstance(req, A.TransferOut) and req.to_admdvs not in self._regions.owned:
            raise InvalidInput(
                f"region {req.to_admdvs} is owned by another centre process: transfer within the "
                "regions of one process",
                field="to_admdvs",
            )
        person_no = getattr(req, "psn_no", None)
        if person_no:
            self._regions.owns_person(person_no)

    # -- enrolment and units ------------------------------------------------------------------------

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
        self._person_commit(region.admdvs, f"{psn_no}/enrol", body)
        return {
            "psn_no": psn_no,
            "insuplc_admdvs": region.admdvs,
            "emp_no": emp_no,
            "extra_wait_months": extra_wait,
            "note": "benefits start after the waiting months of continuous contributions ('contribute')",
        }

    def change_unit(self, req: A.ChangeUnit) -> dict:
        d = self._describe(req.psn_no)
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
        self._person_commit(d["insuplc_admdvs"], f"{req.psn_no}/unit/{req.emp_no}/{req.certificate}", body)
        return {"psn_no": req.psn_no, "emp_no": req.emp_no, "emp_name": req.emp_name}

    # -- contributions and the monthly credit --------------------------------------------------------

    def contribute(self, req: A.Contribute) -> dict:
        d = self._describe(req.psn_no)
        if not d["active"]:
            raise InvalidInput(f"person {req.psn_no} is not insured here now", field="psn_no")
        year, mon = (int(x) for x in req.month.split("-"))
        month = year * 12 + mon - 1
        if month in self._registry.contributions.get(req.psn_no, set()):
            raise InvalidInput(f"the contribution of {req.month} is already recorded", field="month")
        region = self._ledger.settler.policy.region(d["insuplc_admdvs"])
        rules = region.ruleset_on(dt.date(year, mon, 1)) or region.rulesets[0]
        if d["psn_type"] == "11":  # an employee in service: a share of the base goes to the account
            if req.base is None:
                raise InvalidInput("an employee in service contributes on a base: give base", field="base")
            base = to_fen(req.base, "base")
            if not 0 < base <= MAX_BASE_FEN:
                raise InvalidInput("the base must be above 0 and at most 1,000,000.00", field="base")
            credit = apply_bp(base, rules.account.in_service_share)
        else:
            if req.base is not None:
                raise InvalidInput(f"person type {d['psn_type']} contributes no base", field="base")
            credit = rules.account.retiree_monthly if d["psn_type"] == "12" else 0
        body = {"action": "contribute", "psn_no": req.psn_no, "month": month, "credit": credit}
        self._person_commit(d["insuplc_admdvs"], f"{req.psn_no}/contribute/{req.month}", body)
        with self._ledger.lock:
            balance = self._ledger.settler.person_state(req.psn_no).balance
            attrs = self._ledger.settler.population.describe(self._ledger.settler.population.index_of(req.psn_no))
        return {
            "psn_no": req.psn_no,
            "month": req.month,
            "credit": str(fen_to_decimal(credit)),
            "balc": str(fen_to_decimal(balance)),
            "contrib_from": attrs["contrib_from"],
            "paid_through": attrs["paid_through"],
        }

    # -- cards -----------------------------------------------------------------------------------------

    def issue_card(self, req: A.IssueCard) -> dict:
        if req.channel == "delegate":
            if req.delegate_certno is None:
                raise InvalidInput(
                    "a card collected by a delegate needs the delegate's ID number", field="delegate_certno"
                )
            holder = self._registry.identities.get(req.psn_no)
            if holder is not None and req.delegate_certno == holder.certno:
                raise InvalidInput("the delegate is someone other than the holder", field="delegate_certno")
        elif req.delegate_certno is not None:
            raise InvalidInput("delegate_certno is for the delegate channel only", field="delegate_certno")
        return self._issue(req.psn_no, req.channel, req.delegate_certno)

    def _issue(self, psn_no: str, channel: str, delegate_certno: str | None) -> dict:
        with self._ledger.lock:  # the card number is the count of cards: taken and used under the lock
            card = self._new_card(psn_no, channel, field="psn_no")
            body = {"action": "issue", "card": vars(card), "delegate_certno": delegate_certno}
            self._ledger.refuse_if_failed()
            self._registry.apply(CARD_EVENT, body)
            future = self._ledger.append(CARD_EVENT, card.card_sn[:6], f"{card.card_no}/issue", body)
        self._ledger.wait(future)
        return {
            "psn_no": psn_no,
            "card_no": card.card_no,
            "card_sn": card.card_sn,
            "status": card.status,
            "channel": channel,
            "ready_on": card.ready_on,
        }

    def issue_cards_employer(self, req: A.IssueCardsEmployer) -> dict:
        """Cards for a unit's employees in bulk: every person is checked before any card is made."""
        if len(set(req.psn_nos)) != len(req.psn_nos):
            raise InvalidInput("a person is listed twice", field="psn_nos")
        for i, psn_no in enumerate(req.psn_nos):
            ident = self._registry.identities.get(psn_no)
            if ident is None or ident.emp_no != req.emp_no:
                raise InvalidInput(f"{psn_no!r} is not an employee of unit {req.emp_no}", field=f"psn_nos[{i}]")
            self._new_card(psn_no, "employer", field=f"psn_nos[{i}]")  # checks only
        issued = [self._issue(psn_no, "employer", None) for psn_no in req.psn_nos]
        return {"emp_no": req.emp_no, "cards": issued}

    def _new_card(self, psn_no: str, channel: str, *, field: str) -> Card:
        d = self._describe(psn_no, field=field)
        if not d["active"]:
            raise InvalidInput(f"person {psn_no} is not insured here now", field=field)
        held = self._registry.usable_card_of(psn_no)
        if held is not None:
            raise InvalidInput(
                f"person {psn_no} already holds card {held.card_no} ({held.status}): report it lost first", field=field
            )
        n = len(self._registry.cards)
        region = d["insuplc_admdvs"]
        ready = add_working_days(self._ledger.clock.now().date(), READY_AFTER_WORKING_DAYS[channel])
        return Card(
            card_no=f"{region[:2]}{n:07d}",
            card_sn=f"{region}D156000005{n:08d}FFFFFFFF",
            psn_no=psn_no,
            status=ISSUED,
            channel=channel,
            ready_on="" if READY_AFTER_WORKING_DAYS[channel] == 0 else ready.isoformat(),
        )

    # -- transfer between regions -----------------------------------------------------------------------

    def transfer_out(self, req: A.TransferOut) -> dict:
        d = self._describe(req.psn_no)
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
        self._person_commit(d["insuplc_admdvs"], f"{req.psn_no}/transfer_out/{cert['certificate_no']}", body)
        return {**cert, "balance": str(fen_to_decimal(cert["balance"]))}

    def transfer_in(self, req: A.TransferIn) -> dict:
        cert = self._registry.transfers.get(req.certificate_no)
        if cert is None:
            raise InvalidInput(f"no transfer certificate {req.certificate_no!r}", field="certificate_no")
        if cert["accepted"]:
            raise InvalidInput(f"certificate {req.certificate_no} was already accepted", field="certificate_no")
        d = self._describe(cert["psn_no"])
        if d["insutype"] == "310" and not (req.emp_no and req.emp_name):
            raise InvalidInput("an employee is accepted with their new unit (emp_no and emp_name)", field="emp_no")
        with self._ledger.lock:
            balance = self._ledger.settler.person_state(cert["psn_no"]).balance
        if balance != cert["balance"]:  # nothing may move while the person is between regions
            raise InvalidInput(
                f"the balance {balance} differs from the certificate's {cert['balance']}", field="certificate_no"
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
        self._person_commit(cert["to_admdvs"], f"{cert['psn_no']}/transfer_in/{req.certificate_no}", body)
        return {
            "psn_no": cert["psn_no"],
            "insuplc_admdvs": cert["to_admdvs"],
            "balc": str(fen_to_decimal(balance)),
            "note": "issue a card of the new region ('issue_card')",
        }

    def card_record(self, req: A.CardRecord) -> dict:
        """The person's identity and newest card, as a card is personalised from them (read-only)."""
        self._describe(req.psn_no)
        ident = self._registry.identities[req.psn_no]
        cards = self._registry.cards_of.get(req.psn_no, [])
        if not cards:
            raise InvalidInput(f"person {req.psn_no} has no card: issue one first", field="psn_no")
        card = self._registry.cards[cards[-1]]
        return {
            "psn_no": req.psn_no,
            "psn_name": ident.psn_name,
            "certno": ident.certno,
            "gend": ident.gend,
            "brdy": ident.brdy.isoformat(),
            "card_no": card.card_no,
            "card_sn": card.card_sn,
            "status": card.status,
        }

    # -- the QR e-voucher ------------------------------------------------------------------------------

    def issue_qr(self, req: A.IssueQr) -> dict:
        d = self._describe(req.psn_no)
        if not d["active"]:
            raise InvalidInput(f"person {req.psn_no} is not insured here now", field="psn_no")
        token, expires = self._qr.issue(req.psn_no, d["insuplc_admdvs"])
        return {
            "psn_no": req.psn_no,
            "mdtrt_cert_type": "01",
            "mdtrt_cert_no": token,
            "expires": expires.strftime("%Y-%m-%d %H:%M:%S"),
        }

    # -- ending a person's insurance -------------------------------------------------------------------

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

    # -- journaling and applying ---------------------------------------------------------------------

    def _describe(self, psn_no: str, field: str = "psn_no") -> dict:
        population = self._ledger.settler.population
        return population.describe(population.index_of(psn_no, field))

    def _person_commit(self, region: str, key: str, body: dict) -> None:
        self._ledger.commit(PERSON_EVENT, region, key, body, apply=lambda: self._apply_person_event(body))

    def _replay(self, entry: Entry) -> None:
        self._apply_person_event(entry.body)

    def _apply_person_event(self, body: dict) -> None:
        """Apply a person event, live (under the lock, before it is journaled) or on replay."""
        action, psn_no = body["action"], body.get("psn_no")
        if not isinstance(psn_no, str):  # every person event names its person
            raise ValueError(f"person event {action!r} without a psn_no")
        settler, registry = self._ledger.settler, self._registry
        if action == "cancel":
            registry.apply(PERSON_EVENT, body)
        elif action == "enrol":
            regions = [r.admdvs for r in settler.policy.regions]
            flags = FLAG_ACTIVE | (FLAG_ASSISTANCE if body["assistance"] else 0)
            settler.enrol(
                psn_no,
                {
                    "insutype": INSUTYPE_INDEX[body["insutype"]],
                    "psn_type": PSN_TYPE_INDEX[body["psn_type"]],
                    "flags": flags,
                    "region": regions.index(body["region"]),
                    "extra_wait": body["extra_wait"],
                },
            )
            ident = body["identity"]
            registry.add_identity(
                Identity(
                    psn_no,
                    ident["psn_name"],
                    ident["certno"],
                    ident["gend"],
                    dt.date.fromisoformat(ident["brdy"]),
                    ident["emp_name"],
                    ident["emp_no"],
                )
            )
        elif action == "change_unit":
            registry.change_unit(psn_no, body["emp_no"], body["emp_name"])
        elif action == "contribute":
            run_start, paid_through = registry.add_contribution(psn_no, body["month"])
            settler.update_person(psn_no, run_start=run_start, paid_through=paid_through)
            if body["credit"]:
                settler.credit(psn_no, body["credit"])
        elif action == "transfer_out":
            registry.file_transfer(body["certificate"])  # ends the relation, cards too
        elif action == "transfer_in":
            cert, run = registry.accept_transfer(body["certificate_no"], psn_no, body["gap_months"])
            regions = [r.admdvs for r in settler.policy.regions]
            index = settler.population.index_of(psn_no)
            flags = int(settler.population.attrs[index]["flags"]) | FLAG_ACTIVE
            run_start, paid_through = run or (
                int(settler.population.attrs[index]["run_start"]),
                int(settler.population.attrs[index]["paid_through"]),
            )
            settler.update_person(
                psn_no,
                region=regions.index(cert["to_admdvs"]),
                flags=flags,
                run_start=run_start,
                paid_through=paid_through,
            )
            registry.change_unit(psn_no, body["emp_no"], body["emp_name"])
        else:
            raise ValueError(f"unknown person event {action!r}")


__all__ = ["PersonsFlow", "add_working_days"]
