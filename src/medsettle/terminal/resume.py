"""After a restart (or an outage): finish what the counter left. Every unanswered message is resent unchanged
and its answer recorded where its flow would have recorded it; receipts not printed are printed; a sale
interrupted before its settle was written becomes a voucher (the patient paid cash), but a sale the centre
refused stays refused (nothing is owed for it); a visit the patient waits for goes on where it stopped; the
store-and-forward queue is forwarded.

A step that fails (refused, the centre away again, a voucher now a manual claim) does not stop the others:
it is said in the result's ``failed`` lines (and logged), and the clerk sees it in the sale or voucher.

Choices where the platform's contract is silent: a sale interrupted by a crash before its settle was written is
turned into a voucher on restart (the patient paid cash).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, NotRequired, TypedDict

from .cancel import Cancels
from .client import CentreUnreachable
from .common import CounterError
from .messaging import Messenger
from .outcomes import Outcomes
from .saf import Forwarding
from .signin import SignIn
from .states import SaleState
from .store import CounterStore
from .visits import Visits

log = logging.getLogger(__name__)

# the sales a restart takes on (a stay goes on by the clerk's next step; its unanswered steps are resent)
INTERRUPTED = (
    SaleState.NEW,
    SaleState.IDENTIFIED,
    SaleState.VISIT_2201,
    SaleState.VISIT_2203,
    SaleState.VISIT_2204,
    SaleState.VISIT_2207,
)


class Resumed(TypedDict):
    """What :meth:`Resumption.resume` did (the CLI prints it as JSON, keys in this order)."""

    answered: int
    still_unanswered: int
    vouchers_made: int
    receipts: int
    forwarded: NotRequired[int]  # when store-and-forward entries were waiting
    failed: NotRequired[list[str]]  # one line per step that could not be finished, when one failed


class Resumption:
    """Takes every flow's unfinished work on after a restart, each step by its own flow's public methods."""

    def __init__(
        self,
        journal: CounterStore,
        messenger: Messenger,
        signin: SignIn,
        outcomes: Outcomes,
        visits: Visits,
        forwarding: Forwarding,
        cancels: Cancels,
    ) -> None:
        self._journal, self._messenger, self._signin, self._outcomes = journal, messenger, signin, outcomes
        self._visits, self._forwarding, self._cancels = visits, forwarding, cancels

    def resume(self, deadline_s: float = 0.0) -> Resumed:
        """Finish what a crash or an outage left (see the module's docstring). Returns the counts, and
        ``failed`` (one line per step that could not be finished) when something failed."""
        done: Resumed = {"answered": 0, "still_unanswered": 0, "vouchers_made": 0, "receipts": 0}
        failed: list[str] = []
        self._resend_unanswered(deadline_s, done, failed)
        self._take_on_interrupted(done, failed)
        for sale, _state, data in self._journal.sales(SaleState.SETTLED):
            if data.get("forward_of"):
                continue  # a provisional visit's forward, settled: forward() below records its entry
            if data.get("voucher"):  # a voucher's new visit, settled: the voucher's refund is its receipt
                resale = functools.partial(self._visits.continue_resale, data["voucher"], sale)
                self._attempt(failed, f"voucher {data['voucher']} (sale {sale}, settled)", resale)
            else:
                self._outcomes.print_settled(sale)
            done["receipts"] += 1
        if self._journal.saf_entries("queued", "forwarding"):
            done["forwarded"] = sum(1 for r in self._forwarding.forward() if r["state"] == "forwarded")
        if failed:
            done["failed"] = failed
        return done

    def _resend_unanswered(self, deadline_s: float, done: Resumed, failed: list[str]) -> None:
        for message in self._journal.unanswered():
            msgid = message["msgid"]
            try:
                answer = self._messenger.send(msgid, deadline_s=deadline_s)
            except CentreUnreachable:
                done["still_unanswered"] += 1
                continue
            done["answered"] += 1
            what = (
                f"{message['infno']} {msgid}"
                + (f" of sale {message['sale']}" if message["sale"] else "")
                + (f" of voucher {message['voucher']}" if message["voucher"] else "")
            )
            self._attempt(failed, what, functools.partial(self._record, message, answer))

    def _record(self, message: dict[str, Any], answer: dict[str, Any]) -> None:
        """Record an answer where the message's flow would have recorded it."""
        infno, msgid, sale, voucher = message["infno"], message["msgid"], message["sale"], message["voucher"]
        if infno == "9001":
            self._signin.finish_sign_in(msgid, answer)
        elif infno == "2601":
            self._outcomes.finish_reversal(msgid, answer)
        elif infno == "2102" and voucher:
            self._outcomes.finish_voucher(voucher, msgid, answer)
        elif infno == "2102" and sale and self._forwarding.is_forward(sale):
            self._forwarding.finish_forward(sale, msgid, answer)
        elif infno == "2102" and sale:
            self._outcomes.finish_settle(sale, msgid, answer)
        elif infno in ("2103", "2208"):
            self._cancels.cancel(sale)
        else:
            self._messenger.record(msgid, answer)

    def _take_on_interrupted(self, done: Resumed, failed: list[str]) -> None:
        for sale, state, data in self._journal.sales(*INTERRUPTED):
            if data.get("kind") == "inpatient":
                continue  # a stay goes on by the clerk's next step; its unanswered steps were resent above
            if data.get("forward_of"):
                continue  # a provisional visit's forward: forward() takes it on
            take_on = functools.partial(self._take_on, sale, state, data)
            if self._attempt(failed, f"sale {sale} ({state.value})", take_on):
                done["vouchers_made"] += 1

    def _take_on(self, sale: str, state: SaleState, data: dict[str, Any]) -> bool:
        """Take one interrupted sale or visit on; True when it became a voucher."""
        if data.get("voucher"):  # the new visit of a voucher's re-settlement
            self._visits.continue_resale(data["voucher"], sale)
        elif state is SaleState.NEW and (err_msg := self._messenger.refusal_of(sale)) is not None:
            with self._journal.transaction() as db:  # refused, then stopped: a refusal, not a voucher
                self._journal.put_refused(db, sale, err_msg)
        elif state is SaleState.NEW:
            self._outcomes.defer(sale, "the terminal stopped during the sale")
            return True
        else:  # a visit the patient is waiting for: on with it from where it stopped
            self._visits.advance_visit(sale)
        return False

    @staticmethod
    def _attempt(failed: list[str], what: str, step: Callable[[], object]) -> object:
        """Run ``step``; a refusal, a counter error or the centre away again is said (``failed``, the log) and
        the resumption goes on with the next."""
        try:
            return step()
        except (CounterError, CentreUnreachable) as error:  # Refused is a CounterError
            line = f"{what}: {error}"
            log.warning("resume: %s", line)
            failed.append(line)
            return None
