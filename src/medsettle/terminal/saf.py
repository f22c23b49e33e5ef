"""Store-and-forward (docs/failures.md): a counter whose institution's policy is ``store_and_forward`` settles
provisionally when the centre is away before the settle was sent (:mod:`.provisional`): within the floor
limits the patient pays the provisional cash share and the entry is queued. :meth:`Forwarding.forward` sends
the queue in order (the settle with acct_used_flag 0 and the cash collected), refunds a surplus to the
patient and reports the institution's share of a shortfall; refused, too old or too often tried entries are
flagged for a clerk.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

from ..seams import Clock, Randomness
from .client import CentreUnreachable
from .common import Identity, Receipt, Refused, kept_identity, later_cert_of
from .crash import CrashPoints
from .messaging import Messenger
from .outcomes import Outcomes
from .provisional import CannotSettleProvisionally, provisional_split
from .signin import STORE_AND_FORWARD, SignIn
from .states import SaleState
from .store import CounterStore

if TYPE_CHECKING:
    from .visits import Visits


class Provisional:
    """What the counter does when the centre is away before the settle was sent: the institution's policy."""

    def __init__(
        self,
        journal: CounterStore,
        signin: SignIn,
        outcomes: Outcomes,
        *,
        admdvs: str,
        clock: Clock,
        crash: CrashPoints,
    ) -> None:
        self._journal, self._signin, self._outcomes = journal, signin, outcomes
        self._admdvs, self._clock, self._crash = admdvs, clock, crash

    def centre_away(self, sale: str, identity: Identity) -> Receipt:
        """A provisional settlement at a store-and-forward counter when it can; else cash and a voucher."""
        if self._signin.failure_policy != STORE_AND_FORWARD:
            return self._outcomes.defer(sale, "centre unreachable")
        try:
            return self._settle_provisionally(sale, identity)
        except CannotSettleProvisionally as why:
            return self._outcomes.defer(sale, f"centre unreachable; {why}")

    def _person(self, identity: Identity) -> dict:
        person = self._journal.known_person(f"{identity.mdtrt_cert_type}:{identity.mdtrt_cert_no}")
        if person is None:
            raise CannotSettleProvisionally("the counter does not know this person yet")
        if person["insuplc_admdvs"] != self._admdvs:
            raise CannotSettleProvisionally("the person is insured in another region")
        return person

    def _check_floor(self, person: dict, bill_time: str, fund: Decimal) -> None:
        """The institution's floor limits: per bill, per person and day, and all outstanding together."""
        limits = self._signin.insinfo()
        outstanding = self._journal.saf_entries("queued", "forwarding")
        same_day = [e for e in outstanding if e["psn_no"] == person["psn_no"] and e["bill_time"][:10] == bill_time[:10]]
        for name, used in (
            ("floor_per_bill", Decimal(0)),
            ("floor_per_person_day", sum(Decimal(e["provisional_fund"]) for e in same_day)),
            ("floor_outstanding", sum(Decimal(e["provisional_fund"]) for e in outstanding)),
        ):
            if used + fund > Decimal(str(limits.get(name, "0"))):  # a number since 0.x, a string before
                raise CannotSettleProvisionally(f"over the floor limit {name} ({limits.get(name)})")

    def _settle_provisionally(self, sale: str, identity: Identity) -> Receipt:
        _, data = self._journal.require_sale(sale)
        kept = kept_identity({**data, "identity": dataclasses.asdict(identity)})
        if kept is None:  # a QR e-voucher is not kept for the forward, and no 1101 said whose it was
            raise CannotSettleProvisionally("a QR e-voucher cannot be forwarded later: identify by card or ID number")
        person = self._person(Identity(**kept))
        cached = self._signin.cached_rules()
        if cached is None:
            raise CannotSettleProvisionally("no cached rules: sign in while the centre is up")
        tier = self._signin.insinfo().get("tier", "pharmacy")
        bill = {
            "bill_id": sale,
            "mdtrt_id": f"SAF{sale}",
            "med_type": data.get("med_type", "41"),
            "setl_time": data["bill_time"],
            "hosp_lv": tier,
            "feedetail": [{k: v for k, v in line.items() if k != "fee_ocur_time"} for line in data["lines"]],
        }
        split = provisional_split(*cached, person, bill)
        fund, cash = Decimal(str(split["fund_pay_sumamt"])), Decimal(str(split["psn_cash_pay"]))
        self._check_floor(person, data["bill_time"], fund)
        data = {**data, **person, "identity": dataclasses.asdict(identity)}
        entry = {
            "psn_no": person["psn_no"],
            "psn_name": person["psn_name"],
            "insutype": person["insutype"],
            "insuplc_admdvs": person["insuplc_admdvs"],
            "bill_time": data["bill_time"],
            "lines": data["lines"],
            "medfee": data["medfee"],
            "identity": kept,  # what the forward carries (common.kept_identity): 03 with its card_sn, or 02
            "provisional_fund": f"{fund:.2f}",
            "cash_collected": f"{cash:.2f}",
            "created": self._clock.now().isoformat(),
            "kind": data.get("kind", "pharmacy"),
            "med_type": data.get("med_type", "41"),
            "diagnosis": data.get("diagnosis", ""),
        }
        with self._journal.transaction() as db:
            self._journal.put_sale(db, sale, SaleState.PROVISIONAL, data)
            self._journal.put_saf(db, sale, "queued", entry)
        self._crash.reach("saf_recorded")
        return Receipt(
            "provisional",
            sale,
            person["psn_name"],
            data["medfee"],
            f"{fund:.2f}",
            "0.00",
            f"{cash:.2f}",
            note="provisional settlement (centre unreachable): forwarded when the centre is back",
        )


class Forwarding:
    """Sends the queue of provisional settlements in order when the centre is back."""

    def __init__(
        self,
        journal: CounterStore,
        messenger: Messenger,
        visits: Visits,
        *,
        clock: Clock,
        randomness: Randomness,
        crash: CrashPoints,
    ) -> None:
        self._journal, self._messenger, self._visits = journal, messenger, visits
        self._clock, self._randomness, self._crash = clock, randomness, crash

    def forward(self, *, max_attempts: int = 20, max_age: dt.timedelta = dt.timedelta(days=7)) -> list[dict]:
        """Forward queued provisional settlements in order; stop at the first that gets no answer.
        Returns what happened to each entry handled (forwarded with refund or institution share, flagged)."""
        results = []
        for entry in self._journal.saf_entries("queued", "forwarding"):
            age = self._clock.now() - dt.datetime.fromisoformat(entry["created"])
            # Past the limits an entry is flagged for a clerk; a forward already written stays in the outbox
            # and is still resent (resume), since it may have arrived: its answer settles the flag.
            if entry["attempts"] >= max_attempts or age > max_age:
                results.append(self._flag_stale(entry))
                continue
            forward_one = self._forward_visit if entry.get("kind") == "outpatient" else self._forward_sale
            outcome = forward_one(entry)
            if outcome is None:
                break  # in order: the next waits for this one
            results.append(outcome)
        return results

    def _flag_stale(self, entry: dict) -> dict:
        why = "too old or too many tries"
        with self._journal.transaction() as db:
            self._journal.put_saf(
                db,
                entry["sale"],
                "flagged",
                {**self._journal.saf_fields(entry), "flag": why},
                attempts=entry["attempts"],
            )
        return {"sale": entry["sale"], "state": "flagged", "why": why}

    def _forward_visit(self, entry: dict) -> dict | None:
        """A visit is forwarded as a visit, step by step; None when the centre is still away."""
        try:
            setlinfo = self._visits.forward_visit(entry)
        except CentreUnreachable:
            fresh = self._entry(entry["sale"])
            with self._journal.transaction() as db:
                self._journal.put_saf(
                    db, entry["sale"], "forwarding", self._journal.saf_fields(fresh), attempts=fresh["attempts"] + 1
                )
            return None
        except Refused as refused:
            return self.finish_forward(entry["sale"], None, {"infcode": -1, "err_msg": refused.err_msg})
        return self.finish_forward(entry["sale"], None, {"infcode": 0, "output": {"setlinfo": setlinfo}})

    def _forward_sale(self, entry: dict) -> dict | None:
        """A pharmacy sale's forward: one 2102, written once; None when the centre is still away."""
        data = self._journal.saf_fields(entry)
        msgid = entry["msgid"]
        if msgid is None:
            request = {
                "data": {
                    "psn_no": entry["psn_no"],
                    **later_cert_of(entry),  # captured at the sale: 03 with its card_sn, or 02
                    "med_type": "41",
                    "medfee_sumamt": entry["medfee"],
                    "insutype": entry["insutype"],
                    "acct_used_flag": "0",
                    "saf_cash_amt": entry["cash_collected"],
                },
                "feedetail": entry["lines"],
            }
            with self._journal.transaction() as db:
                msgid = self._messenger.new_message(
                    db, "2102", request, insuplc=entry["insuplc_admdvs"], sale=entry["sale"]
                )
                self._journal.put_saf(db, entry["sale"], "forwarding", data, msgid=msgid, attempts=entry["attempts"])
            self._crash.reach("forward_written")
        try:
            answer = self._messenger.send(msgid, deadline_s=0)
        except CentreUnreachable:
            with self._journal.transaction() as db:
                self._journal.put_saf(
                    db, entry["sale"], "forwarding", data, msgid=msgid, attempts=entry["attempts"] + 1
                )
            return None
        self._crash.reach("forward_sent")
        return self.finish_forward(entry["sale"], msgid, answer)

    def forward_until_done(self, rounds: int = 10, base_delay: float = 0.1, max_delay: float = 5.0) -> list[dict]:
        """Forward with exponential back-off and jitter between rounds, at most ``rounds`` rounds."""
        results, delay = [], base_delay
        for _ in range(rounds):
            results += self.forward()
            if not self._journal.saf_entries("queued", "forwarding"):
                break
            self._clock.sleep(delay * self._randomness.uniform(0.5, 1.5))
            delay = min(delay * 2, max_delay)
        return results

    def _entry(self, sale: str) -> dict:
        return next(e for e in self._journal.saf_entries() if e["sale"] == sale)

    def is_forward(self, sale: str) -> bool:
        """``sale`` was settled provisionally (its 2102 is a forward)."""
        return any(e["sale"] == sale for e in self._journal.saf_entries())

    def finish_forward(self, sale: str, msgid: str | None, answer: dict) -> dict:
        """Record a forward's answer: forwarded (a surplus refunded, the institution's share), or flagged.
        ``msgid`` None: a visit, whose steps recorded their own answers."""
        entry = self._entry(sale)
        data = self._journal.saf_fields(entry)
        if answer.get("infcode") == 0:
            s = answer["output"]["setlinfo"]
            surplus = Decimal(entry["cash_collected"]) - Decimal(str(s["psn_cash_pay"]))
            outcome = {
                "sale": sale,
                "state": "forwarded",
                "setl_id": s["setl_id"],
                "refund_to_patient": f"{max(surplus, Decimal(0)):.2f}",
                "institution_bears": f"{Decimal(str(s['hosp_part_amt'])):.2f}",
            }
            state, data = "forwarded", {**data, "setlinfo": s, "outcome": outcome}
        else:  # refused outright: the institution bears the provisional fund share; a clerk looks at it
            outcome = {
                "sale": sale,
                "state": "flagged",
                "why": answer.get("err_msg", ""),
                "institution_bears": entry["provisional_fund"],
            }
            state, data = "flagged", {**data, "flag": answer.get("err_msg", ""), "outcome": outcome}
        with self._journal.transaction() as db:
            if msgid is not None:
                self._journal.record_answer(db, msgid, answer)
            self._journal.put_saf(db, sale, state, data, msgid=msgid, attempts=entry["attempts"])
        return outcome
