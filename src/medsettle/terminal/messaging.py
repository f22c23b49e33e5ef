"""The counter's messages to the centre (docs/messages.md 'Rules for the counter'): every message is written to
the journal with its msgid and exact bytes before it is sent, and resent unchanged (same msgid, same bytes)
until it is answered or the counter gives up on it.

The msgid is the institution's code, the wall time to the second and the journal's sequence (four digits),
so msgids come from the counter's clock and journal alone. The resend loop backs off with jitter (counters
that lost the centre together do not come back in step); its time, its waiting and its jitter are the
counter's :class:`~medsettle.seams.Clock` and :class:`~medsettle.seams.Randomness`.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

from ..seams import Clock, Randomness
from .client import CentreUnreachable, Transport
from .common import Refused
from .store import CounterStore

# Answers that say the centre is away, not that it refused the message (docs/failures.md 'The centre unreachable'):
# a fail-stopped centre (CENTRE_UNAVAILABLE, until restarted) and one past its connection cap (CENTRE_BUSY).
# The counter resends them as it resends after no answer, then takes a voucher or settles provisionally.
CENTRE_AWAY_CODES = ("CENTRE_UNAVAILABLE", "CENTRE_BUSY")

FIRST_DELAY = 0.05  # seconds before the first resend; doubled each time, at most MAX_DELAY
MAX_DELAY = 1.0


class Messenger:
    """Writes, sends and resends the counter's messages; owns the envelope's fixed fields and the transport."""

    def __init__(
        self,
        journal: CounterStore,
        transport: Transport,
        *,
        code: str,
        admdvs: str,
        opter: str,
        dev_no: str,
        resend_for: float,
        clock: Clock,
        randomness: Randomness,
    ) -> None:
        self.journal = journal
        self.transport = transport
        self.code, self.admdvs, self.opter, self.dev_no = code, admdvs, opter, dev_no
        self.resend_for = resend_for  # seconds a message is resent before the counter gives up (by default)
        self.clock, self.randomness = clock, randomness

    def new_message(
        self,
        db: sqlite3.Connection,
        infno: str,
        input_: dict,
        *,
        insuplc: str = "",
        sale: str | None = None,
        voucher: str | None = None,
    ) -> str:
        """Write a message (in the caller's transaction) and return its msgid; it is sent by :meth:`send`."""
        now = self.clock.now()
        msgid = f"{self.code}{now:%Y%m%d%H%M%S}{self.journal.next_seq(db) % 10_000:04d}"
        while self.journal.message(msgid) is not None:  # 10,000 messages in one second: take the next second
            now += dt.timedelta(seconds=1)
            msgid = f"{self.code}{now:%Y%m%d%H%M%S}{self.journal.next_seq(db) % 10_000:04d}"
        envelope = {
            "infno": infno,
            "msgid": msgid,
            "mdtrtarea_admvs": self.admdvs,
            "insuplc_admdvs": insuplc,
            "recer_sys_code": "MEDSETTLE",
            "dev_no": self.dev_no,
            "infver": "V1.0",
            "opter_type": "1",
            "opter": self.opter,
            "opter_name": self.opter,
            "inf_time": now.strftime("%Y-%m-%d %H:%M:%S"),
            "fixmedins_code": self.code,
            "fixmedins_name": self.code,
            "sign_no": self.journal.get_meta("sign_no", ""),
            "input": input_,
        }
        self.journal.write_message(
            db, msgid, infno, json.dumps(envelope, ensure_ascii=False).encode(), sale=sale, voucher=voucher
        )
        return msgid

    def send(self, msgid: str, deadline_s: float | None = None) -> dict:
        """Send the journaled bytes, resending them unchanged until answered or ``deadline_s`` (default
        ``resend_for``) passes; then CentreUnreachable. An answered message answers from the journal. A
        CENTRE_UNAVAILABLE or CENTRE_BUSY answer is the centre being away, never a final refusal: resent too."""
        message = self.journal.require_message(msgid)
        if message["state"] == "answered":
            return message["answer"]
        give_up = self.clock.monotonic() + (self.resend_for if deadline_s is None else deadline_s)
        delay = FIRST_DELAY
        while True:
            try:
                return centre_answer(self.transport.post(message["request"]))
            except CentreUnreachable:
                if self.clock.monotonic() + delay > give_up:
                    raise
                self.clock.sleep(delay * self.randomness.uniform(0.5, 1.5))  # jitter: counters do not march
                delay = min(delay * 2, MAX_DELAY)

    def query(self, infno: str, input_: dict, insuplc: str = "", *, sale: str | None = None) -> dict:
        """A message that changes nothing (1101, 2101, 2206, 2303, 3201, 3202, 9002, 9901, 1312): journaled,
        sent, answered or raised. With ``sale``, the message is the sale's and a refusal ends the sale: it is
        put ``refused`` in the transaction that records the answer, so no restart can take it for an
        interrupted sale."""
        with self.journal.transaction() as db:
            msgid = self.new_message(db, infno, input_, insuplc=insuplc, sale=sale)
        try:
            answer = self.send(msgid)
        except CentreUnreachable:
            with self.journal.transaction() as db:  # it changes nothing: not worth resending later
                self.journal.abandon_message(db, msgid)
            raise
        refused = answer.get("infcode") != 0
        with self.journal.transaction() as db:
            self.journal.record_answer(db, msgid, answer)
            if refused and sale is not None:
                self.journal.put_refused(db, sale, answer.get("err_msg", ""))
        if refused:
            raise Refused(answer.get("err_msg", ""), sale=sale)
        return answer["output"]

    def record(self, msgid: str, answer: dict) -> None:
        """Record an answer that needs nothing more than recording."""
        with self.journal.transaction() as db:
            self.journal.record_answer(db, msgid, answer)

    def refusal_of(self, sale: str) -> str | None:
        """The err_msg of a refused message of ``sale`` (a restart recorded its answer), else None."""
        for message in self.journal.messages_of(sale):
            answer = message["answer"]
            if answer is not None and answer.get("infcode") != 0:
                return answer.get("err_msg", "")
        return None


def centre_answer(answer: dict) -> dict:
    """``answer``, unless it says the centre is away (:data:`CENTRE_AWAY_CODES`): then CentreUnreachable, so
    the message is resent and, when the patient cannot wait, the sale gets a voucher or a provisional
    settlement. Checked here, on every transport's answer, not only over HTTP."""
    err_msg = str(answer.get("err_msg") or "")
    if answer.get("infcode") != 0 and err_msg.split(":", 1)[0] in CENTRE_AWAY_CODES:
        raise CentreUnreachable(f"the centre is away: {err_msg}")
    return answer
