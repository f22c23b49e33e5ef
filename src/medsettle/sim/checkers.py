"""The invariants a simulated run must keep, checked after every step, at each day's end and at the end.

- **conservation**: every settlement the centre journals splits its bill exactly (medfee = fund + account +
  cash + the institution's share), and every patient's account balance is what the journal says it must be
  (the opening balance, less account payments, plus what cancels gave back);
- **exactly-once**: no message of an institution settles twice, no bill and no deferred-settlement voucher
  has two live settlements, every cancel undoes a live settlement, and a 2601 leaves no settlement of the
  message it reverses live;
- **replay**: the journal replayed into a fresh engine gives the live state (at every centre restart, each
  day's end and the end);
- **reconciliation**: each counter's 3201 is clean at each day's end;
- **drain**: after the drain every voucher is settled or a manual claim, nothing is left queued, and what a
  counter believes is what the centre holds: a sale done and a voucher settled are live there; the sale a
  voucher was given for (cash taken) has no live settlement there; every live settlement there answers a
  message its counter recorded as answered (not one it abandoned for a 2601);
- **counter-states**: no counter flow tries to take a sale to a state no flow may take it to
  (:class:`medsettle.terminal.states.IllegalTransition` is a bug, never a refusal);
- **store-and-forward**: a forwarded bill's patient paid no more than the provisional cash, and what the patient
  kept paying, the fund, the account and the institution's share add up to the bill.

A broken invariant raises :class:`Violation`, which names the invariant, the step and what was seen.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..centre.reversal import REVERSAL
from ..engine.columns import COL
from ..errors import MedsettleError
from ..ledger import replay
from ..ledger.journaled import CANCEL, SETTLE
from ..terminal.states import SaleState

if TYPE_CHECKING:
    from .world import Run, SimCounter

SETTLE_INFNOS = ("2102", "2207", "2304")  # the messages that settle (a 2601 names one as oinfno)

INVARIANTS = (
    "conservation",
    "exactly-once",
    "replay",
    "reconciliation",
    "drain",
    "store-and-forward",
    "counter-states",
)


class Violation(MedsettleError):
    code = "INVARIANT_BROKEN"

    def __init__(self, invariant: str, step: int, detail: str) -> None:
        self.invariant, self.step, self.detail = invariant, step, detail
        super().__init__(f"{invariant} broken at step {step}: {detail}")


def _fen(amount: Any) -> int:
    return int(Decimal(str(amount)) * 100)


class Checkers:
    """The invariants of one run, kept incrementally from the centre's journal as it grows."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.checks = 0
        self._seq = 0  # the last journal entry looked at
        self._settles_by_msgid: dict[tuple[str, str], str] = {}  # (institution, msgid) -> setl_id
        self._live: dict[str, tuple[str, str]] = {}  # live setl_id -> (institution, bill_id)
        self._live_by_bill: dict[tuple[str, str], str] = {}
        self._msgid_of: dict[str, tuple[str, str]] = {}  # setl_id -> (institution, msgid) it answered
        self._live_vouchers: dict[tuple[str, str], str] = {}  # (institution, deferred_voucher_no) -> live setl_id
        self._voucher_of: dict[str, tuple[str, str]] = {}  # setl_id -> (institution, deferred_voucher_no)
        self._cancelled: set[str] = set()
        population = run.world.population
        self._index = {p: i for i, p in enumerate(population.psn_nos)}
        self._expected_balance: dict[str, int] = {}
        self._seen: set[str] = set()  # the persons who came to a counter: the only ones whose state can change

    def _broken(self, invariant: str, detail: str) -> Violation:
        return Violation(invariant, self.run.step, detail)

    # -- after every step ---------------------------------------------------------------------------

    def after_step(self) -> None:
        for entry in self.run.centre.journal.entries(after=self._seq):
            self._seq = entry.seq
            if entry.kind == SETTLE:
                self._settled(entry.seq, entry.body)
            elif entry.kind == CANCEL:
                self._cancel(entry.seq, entry.body)
            elif entry.kind == REVERSAL:
                self._reversed(entry.seq, entry.body)
        self._balances()

    def _balance_of(self, psn_no: str) -> int:
        if psn_no not in self._expected_balance:
            self._expected_balance[psn_no] = int(self.run.world.population.balances[self._index[psn_no]])
        return self._expected_balance[psn_no]

    def _settled(self, seq: int, body: dict) -> None:
        self.checks += 1
        row, bill = body["row"], body["bill"]
        parts = (
            row[COL["fund_pay_sumamt"]] + row[COL["acct_pay"]] + row[COL["psn_cash_pay"]] + row[COL["hosp_part_amt"]]
        )
        if row[COL["medfee_sumamt"]] != parts:
            raise self._broken(
                "conservation", f"entry {seq}: medfee {row[COL['medfee_sumamt']]} fen split into {parts}"
            )
        psn_no = bill["psn_no"]
        self._expected_balance[psn_no] = self._balance_of(psn_no) - row[COL["acct_pay"]]
        if row[COL["balc"]] != self._expected_balance[psn_no]:
            raise self._broken("conservation", f"entry {seq}: balance {row[COL['balc']]} fen after the settlement, "
                               f"the journal gives {self._expected_balance[psn_no]}")  # fmt: skip
        key = (body.get("fixmedins_code", ""), body.get("msgid", ""))
        if key in self._settles_by_msgid:
            raise self._broken("exactly-once", f"message {key[1]} of {key[0]} settled twice: "
                               f"{self._settles_by_msgid[key]} and {body['setl_id']}")  # fmt: skip
        self._settles_by_msgid[key] = body["setl_id"]
        bill_key = (key[0], bill.get("bill_id") or body["setl_id"])
        if bill_key in self._live_by_bill:
            raise self._broken("exactly-once", f"bill {bill_key[1]} of {bill_key[0]} has two live settlements: "
                               f"{self._live_by_bill[bill_key]} and {body['setl_id']}")  # fmt: skip
        self._live[body["setl_id"]] = bill_key
        self._live_by_bill[bill_key] = body["setl_id"]
        self._msgid_of[body["setl_id"]] = key
        voucher = body.get("deferred_voucher_no")
        if voucher:
            voucher_key = (key[0], voucher)
            if voucher_key in self._live_vouchers:
                first = self._live_vouchers[voucher_key]
                raise self._broken("exactly-once", f"voucher {voucher} of {key[0]} settled twice: {first} and "
                                   f"{body['setl_id']} are both live")  # fmt: skip
            self._live_vouchers[voucher_key] = body["setl_id"]
            self._voucher_of[body["setl_id"]] = voucher_key

    def _cancel(self, seq: int, body: dict) -> None:
        self.checks += 1
        original = body["original"]
        if original not in self._live:
            raise self._broken("exactly-once", f"entry {seq}: cancel of {original}, which is not a live settlement")
        bill_key = self._live.pop(original)
        del self._live_by_bill[bill_key]
        voucher_key = self._voucher_of.pop(original, None)
        if voucher_key is not None:
            del self._live_vouchers[voucher_key]
        self._cancelled.add(original)
        row = body["row"]
        settled = self.run.centre.settler.records.get(original)
        psn_no = settled.psn_no if settled is not None else None
        if psn_no is not None:
            self._expected_balance[psn_no] = self._balance_of(psn_no) - row[COL["acct_pay"]]

    def _reversed(self, seq: int, body: dict) -> None:
        """A 2601 journaled: whatever it answered, the settlement the message it names made (if that message
        settled) is no longer live; its cancel was journaled before it, under the same lock."""
        self.checks += 1
        key = (body.get("fixmedins_code", ""), body["omsgid"])
        setl_id = self._settles_by_msgid.get(key)
        if setl_id is not None and setl_id in self._live:
            result = body.get("answer_output", {}).get("data", {}).get("rvs_rslt")
            raise self._broken("exactly-once", f"entry {seq}: the 2601 of message {key[1]} of {key[0]} answered "
                               f"{result!r}, but its settlement {setl_id} is still live")  # fmt: skip

    def _balances(self) -> None:
        settler = self.run.centre.settler
        for psn_no in self.run.touched:
            self.checks += 1
            live = settler.person_state(psn_no).balance
            if live != self._balance_of(psn_no):
                raise self._broken("conservation", f"person {psn_no}: account balance {live} fen, the journal "
                                   f"gives {self._balance_of(psn_no)}")  # fmt: skip
        self._seen |= self.run.touched
        self.run.touched.clear()

    # -- replay -------------------------------------------------------------------------------------

    def live_state(self) -> dict[str, Any]:
        settler = self.run.centre.settler
        return {
            "persons": {p: settler.person_state(p) for p in sorted(self._seen)},
            "settlements": sorted(settler.records),
        }

    def same_state(self, when: str, before: dict, after: dict) -> None:
        self.checks += 1
        if before["settlements"] != after["settlements"]:
            lost = sorted(set(before["settlements"]) ^ set(after["settlements"]))
            raise self._broken("replay", f"{when}: settlements differ: {lost[:5]}")
        for p, state in before["persons"].items():
            if after["persons"][p] != state:
                raise self._broken("replay", f"{when}: person {p} is {after['persons'][p]}, was {state}")

    def replay_equals_live(self, when: str) -> None:
        settler = self.run.fresh_settler()
        replay(self.run.centre.journal, settler, observe=lambda entry: None)
        replayed = {
            "persons": {p: settler.person_state(p) for p in sorted(self._seen)},
            "settlements": sorted(settler.records),
        }
        self.same_state(f"the journal replayed at {when}", self.live_state(), replayed)

    def state_digest(self) -> str:
        state = self.live_state()
        text = repr(sorted(state["persons"].items())) + repr(state["settlements"])
        return hashlib.sha256(text.encode()).hexdigest()

    # -- the day's end and the end ------------------------------------------------------------------

    def reconciled(self, c: SimCounter, answer: dict) -> None:
        self.checks += 1
        if not answer.get("clean"):
            raise self._broken("reconciliation", f"{c.name}'s 3201 of {answer.get('day')} is not clean: {answer}")

    def final(self) -> None:
        for c in self.run.counters:
            journal = c.counter.journal
            for v in journal.vouchers():
                self.checks += 1
                if v["state"] not in ("settled", "manual_claim"):
                    raise self._broken("drain", f"{c.name}'s voucher {v['voucher']} ended {v['state']}")
                self._voucher_held(c, v)
            for sale, state, data in journal.sales(SaleState.DONE, SaleState.SETTLED):
                self.checks += 1
                setl_id = data.get("setlinfo", {}).get("setl_id")
                if setl_id is not None and setl_id not in self._live:
                    raise self._broken("drain", f"{c.name}'s sale {sale} is {state.value} with {setl_id}, which is "
                                       "not a live settlement at the centre")  # fmt: skip
            for entry in journal.saf_entries():
                self.checks += 1
                if entry["state"] == "forwarded":
                    self._forwarded(c, entry)
                elif entry["state"] != "flagged":
                    raise self._broken("drain", f"{c.name}'s queued sale {entry['sale']} ended {entry['state']}")
        self._live_answered()

    def _voucher_held(self, c: SimCounter, v: dict) -> None:
        """A voucher settled is live at the centre; the sale it was given for (the patient paid cash) has no
        live settlement there. A stay's voucher is for what its earlier settlements left: those stand."""
        code = c.institution.fixmedins_code
        if v["state"] == "settled":
            setl_id = v.get("setlinfo", {}).get("setl_id")
            if setl_id not in self._live:
                raise self._broken("drain", f"{c.name}'s voucher {v['voucher']} is settled as {setl_id}, which is "
                                   "not a live settlement at the centre")  # fmt: skip
        if v.get("kind") == "inpatient":
            return
        for message in c.counter.journal.messages_of(v["sale"]):
            setl_id = self._settles_by_msgid.get((code, message["msgid"]))
            if message["infno"] in SETTLE_INFNOS and setl_id in self._live:
                raise self._broken("drain", f"{c.name}'s voucher {v['voucher']} was given for sale {v['sale']} "
                                   f"(cash taken), but its settle {message['msgid']} is live at the centre as "
                                   f"{setl_id}")  # fmt: skip

    def _live_answered(self) -> None:
        """Every live settlement at the centre answers a message one of its institution's counters wrote and
        recorded as answered: not one it abandoned (its 2601 should have undone it), not one it never wrote."""
        by_code: dict[str, list[SimCounter]] = {}
        for c in self.run.counters:
            by_code.setdefault(c.institution.fixmedins_code, []).append(c)
        for setl_id in self._live:
            self.checks += 1
            code, msgid = self._msgid_of[setl_id]
            found = [m for c in by_code.get(code, []) if (m := c.counter.journal.message(msgid)) is not None]
            if not found or found[0]["state"] != "answered":
                was = found[0]["state"] if found else "not written by any counter"
                raise self._broken("drain", f"settlement {setl_id} of {code} is live at the centre, but its message "
                                   f"{msgid} is {was}")  # fmt: skip

    def _forwarded(self, c: SimCounter, entry: dict) -> None:
        s, outcome = entry["setlinfo"], entry["outcome"]
        if s["setl_id"] not in self._live and s["setl_id"] not in self._cancelled:
            raise self._broken(
                "drain", f"{c.name}'s forwarded sale {entry['sale']}: {s['setl_id']} is not at the centre"
            )
        paid = _fen(entry["cash_collected"]) - _fen(outcome["refund_to_patient"])
        if paid > _fen(entry["cash_collected"]):
            raise self._broken("store-and-forward", f"{c.name}'s sale {entry['sale']}: the patient was charged "
                               f"{paid - _fen(entry['cash_collected'])} fen more after the forward")  # fmt: skip
        total = paid + _fen(s["fund_pay_sumamt"]) + _fen(s["acct_pay"]) + _fen(outcome["institution_bears"])
        if total != _fen(s["medfee_sumamt"]):
            raise self._broken("store-and-forward", f"{c.name}'s sale {entry['sale']}: patient {paid}, fund, account "
                               f"and institution add up to {total} fen of {_fen(s['medfee_sumamt'])}")  # fmt: skip
