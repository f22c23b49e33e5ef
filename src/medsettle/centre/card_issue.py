"""Card issue at the region's agency through its channels (on the spot, a service point, a delegate, the
employer in bulk), and the card record a card is personalised from. Each issued card is a journaled
CARD_EVENT; activation, loss and cancellation are the cards flow's (medsettle.centre.cards).

Choices where the seeds are silent: a card made at a service point or through the employer is ready after
3 working days (Monday-Friday, public holidays not modelled); on the spot and by a delegate it is ready at
once; a person holds at most one usable (issued or active) card: a new one needs the old one reported lost.
"""

from __future__ import annotations

import datetime as dt

from ..errors import InvalidInput
from ..ledger.journal import Entry
from . import admin as A
from .core import Ledger
from .person_events import PersonEvents
from .registry import CARD_EVENT, ISSUED, Card, Registry

READY_AFTER_WORKING_DAYS = {"on_the_spot": 0, "delegate": 0, "service_point": 3, "employer": 3}


def add_working_days(day: dt.date, n: int) -> dt.date:
    """``day`` plus ``n`` working days (Monday-Friday): when a card made at a service point is ready."""
    while n > 0:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


class CardIssue:
    """New cards for insured persons, numbered by the count of cards (under the ledger's lock)."""

    def __init__(self, ledger: Ledger, registry: Registry, events: PersonEvents) -> None:
        self._ledger = ledger
        self._registry = registry
        self._events = events
        ledger.observe_every(self._replay_presented)

    def issue_card(self, req: A.IssueCard) -> dict:
        """One card at a window. A delegate presents their own ID and the holder's (seed 004), both checked."""
        holder = self._registry.identities.get(req.psn_no)
        if req.channel == "delegate":
            if req.delegate_certno is None:
                raise InvalidInput(
                    "a card collected by a delegate needs the delegate's ID number", field="delegate_certno"
                )
            if req.certno is None:
                raise InvalidInput("a delegate presents the holder's ID card too: its number", field="certno")
            if holder is not None and req.delegate_certno == holder.certno:
                raise InvalidInput("the delegate is someone other than the holder", field="delegate_certno")
        elif req.delegate_certno is not None:
            raise InvalidInput("delegate_certno is for the delegate channel only", field="delegate_certno")
        if req.certno is not None and (holder is None or req.certno != holder.certno):
            raise InvalidInput(f"the ID card presented is not that of {req.psn_no}", field="certno")
        presented = {"certno": req.certno, "delegate_certno": req.delegate_certno} if req.certno else None
        return self._issue(req.psn_no, req.channel, req.delegate_certno, presented)

    def _issue(self, psn_no: str, channel: str, delegate_certno: str | None, presented: dict | None = None) -> dict:
        with self._ledger.lock:  # the card number is the count of cards: taken and used under the lock
            card = self._new_card(psn_no, channel, field="psn_no")
            body: dict = {"action": "issue", "card": vars(card), "delegate_certno": delegate_certno}
            if presented is not None:
                body["presented"] = presented
            self._ledger.refuse_if_failed()
            self._registry.apply(CARD_EVENT, body)
            future = self._ledger.append(CARD_EVENT, card.card_sn[:6], f"{card.card_no}/issue", body)
            if presented is not None:
                self._events.record_presented(psn_no, f"issue_card:{channel}", presented)
        self._ledger.wait(future)
        answer = {
            "psn_no": psn_no,
            "card_no": card.card_no,
            "card_sn": card.card_sn,
            "status": card.status,
            "channel": channel,
            "ready_on": card.ready_on,
        }
        return answer if presented is None else {**answer, "presented": presented}

    def _replay_presented(self, entry: Entry) -> None:
        """A card issue's papers, found again on replay (the registry applies the card itself)."""
        body = entry.body
        if entry.kind == CARD_EVENT and body.get("action") == "issue" and "presented" in body:
            card = body["card"]
            self._events.record_presented(card["psn_no"], f"issue_card:{card['channel']}", body["presented"])

    def issue_cards_employer(self, req: A.IssueCardsEmployer) -> dict:
        """Cards for a unit's employees in bulk, on the unit's letter of introduction and its operator's ID
        (seed 004): every person is checked before any card is made."""
        if len(set(req.psn_nos)) != len(req.psn_nos):
            raise InvalidInput("a person is listed twice", field="psn_nos")
        for i, psn_no in enumerate(req.psn_nos):
            ident = self._registry.identities.get(psn_no)
            if ident is None or ident.emp_no != req.emp_no:
                raise InvalidInput(f"{psn_no!r} is not an employee of unit {req.emp_no}", field=f"psn_nos[{i}]")
            self._new_card(psn_no, "employer", field=f"psn_nos[{i}]")  # checks only
        presented = {"emp_no": req.emp_no, "letter_no": req.letter_no, "operator_certno": req.operator_certno}
        issued = [self._issue(psn_no, "employer", None, presented) for psn_no in req.psn_nos]
        return {"emp_no": req.emp_no, "cards": issued, "presented": presented}

    def _new_card(self, psn_no: str, channel: str, *, field: str) -> Card:
        d = self._events.describe(psn_no, field=field)
        if not d["active"]:
            raise InvalidInput(f"person {psn_no} is not insured here now", field=field)
        if not self._events.months_held(psn_no):  # seed 000: the card after paying in full
            raise InvalidInput(
                f"person {psn_no} has paid no contribution yet: a card is issued after paying ('contribute')",
                field=field,
            )
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

    def card_record(self, req: A.CardRecord) -> dict:
        """The person's identity and newest card, as a card is personalised from them (read-only)."""
        self._events.describe(req.psn_no)
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


__all__ = ["READY_AFTER_WORKING_DAYS", "CardIssue", "add_working_days"]
