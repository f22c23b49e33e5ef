"""How a sale, visit or stay ends at the counter: settled with a receipt, or the whole bill in cash against a
deferred-settlement voucher (docs/failures.md), and how a voucher's re-settlement ends.

When the settle got no answer and the patient cannot wait, the sale is abandoned: a 2601 reversing the settle
is journaled (sent now or on resume), and the voucher waits for its answer, so a settle that did arrive is
undone before the voucher can be settled. A voucher settled (自费转医保) refunds the insured share; past the
window or the bill's year the centre refuses and the voucher becomes a manual claim.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from decimal import Decimal

from .client import CentreUnreachable
from .common import MANUAL_CLAIM_CODES, CounterError, Receipt, Refused, kept_identity, receipt_of
from .crash import CrashPoints
from .messaging import Messenger
from .states import SaleState
from .store import CounterStore


class Outcomes:
    """Settled sales' receipts, vouchers made, 2601s of abandoned settles, and vouchers' settlements."""

    def __init__(self, journal: CounterStore, messenger: Messenger, crash: CrashPoints) -> None:
        self._journal, self._messenger, self._crash = journal, messenger, crash

    # -- settled -------------------------------------------------------------------------------------

    def finish_settle(self, sale: str, msgid: str, answer: dict) -> Receipt:
        """Record a settle's answer (a pharmacy 2102 or a visit's 2207) and print the receipt."""
        _, data = self._journal.require_sale(sale)
        with self._journal.transaction() as db:
            self._journal.record_answer(db, msgid, answer)
            if answer.get("infcode") == 0:
                self._journal.put_sale(db, sale, SaleState.SETTLED, {**data, "setlinfo": answer["output"]["setlinfo"]})
            else:
                self._journal.put_sale(db, sale, SaleState.REFUSED, {**data, "err_msg": answer.get("err_msg", "")})
        self._crash.reach("settle_recorded")
        if answer.get("infcode") != 0:
            raise Refused(answer.get("err_msg", ""), sale=sale)
        return self.print_settled(sale)

    def print_settled(self, sale: str) -> Receipt:
        _, data = self._journal.require_sale(sale)
        receipt = receipt_of("sale", sale, data.get("psn_name", ""), data["setlinfo"])
        with self._journal.transaction() as db:
            self._journal.put_sale(db, sale, SaleState.DONE, {**data, "receipt": dataclasses.asdict(receipt)})
        return receipt

    # -- cash against a voucher ------------------------------------------------------------------------

    def defer(self, sale: str, reason: str) -> Receipt:
        """The patient pays the whole bill in cash; a voucher keeps the bill, its date and who it was."""
        with self._journal.transaction() as db:
            receipt = self._record_voucher(db, sale, reason, self._journal.require_sale(sale)[1])
        self._crash.reach("voucher_recorded")
        return receipt

    def _record_voucher(
        self, db: sqlite3.Connection, sale: str, reason: str, data: dict, blocked_by: str | None = None
    ) -> Receipt:
        voucher = f"V{self._messenger.code}{self._journal.next_seq(db):08d}"
        self._journal.put_voucher(
            db,
            voucher,
            sale,
            "pending",
            {
                "reason": reason,
                "lines": data["lines"],
                "bill_time": data["bill_time"],
                "medfee": data["medfee"],
                "identity": kept_identity(data),  # re-settled with it if the patient is gone: 03 with card_sn, or 02
                "psn_no": data.get("psn_no", ""),
                "psn_name": data.get("psn_name", ""),
                "insuplc_admdvs": data.get("insuplc_admdvs", ""),
                "insutype": data.get("insutype", ""),
                "kind": data.get("kind", "pharmacy"),
                "med_type": data.get("med_type", "41"),
                "diagnosis": data.get("diagnosis", ""),
            },
            blocked_by=blocked_by,
        )
        self._journal.put_sale(db, sale, SaleState.DEFERRED, {**data, "voucher": voucher, "reversal": blocked_by})
        return Receipt(
            "deferred",
            sale,
            data.get("psn_name", ""),
            data["medfee"],
            cash=data["medfee"],
            voucher=voucher,
            note=f"{reason}: paid in cash; bring this voucher back for the insured share",
        )

    def abandon(self, sale: str, msgid: str, oinfno: str = "2102") -> Receipt:
        """The settle got no answer and the patient cannot wait: in one step, journal a 2601 reversing it
        (sent now or on resume), stop resending the settle, and take cash against a voucher that waits for
        the reversal's answer, so a settle that did arrive is undone before the voucher can be settled."""
        _, data = self._journal.require_sale(sale)
        with self._journal.transaction() as db:
            reversal = self._messenger.new_message(
                db,
                "2601",
                {"data": {"psn_no": data["psn_no"], "omsgid": msgid, "oinfno": oinfno}},
                insuplc=data.get("insuplc_admdvs", ""),
                sale=sale,
            )
            self._journal.abandon_message(db, msgid)
            receipt = self._record_voucher(db, sale, "centre unreachable during settlement", data, blocked_by=reversal)
        self._crash.reach("reversal_written")
        with contextlib.suppress(CentreUnreachable):  # left written: resume() resends it until answered,
            self.finish_reversal(reversal, self._messenger.send(reversal, deadline_s=0))  # the voucher waits
        return receipt

    def finish_reversal(self, msgid: str, answer: dict) -> None:
        """Record a 2601's answer; once reversed, the vouchers that waited for it may be settled."""
        with self._journal.transaction() as db:
            self._journal.record_answer(db, msgid, answer)
            if answer.get("infcode") == 0:
                self._journal.unblock_vouchers(db, msgid)

    # -- a voucher settled -------------------------------------------------------------------------------

    def finish_voucher(self, voucher: str, msgid: str | None, answer: dict) -> Receipt:
        """Record how a voucher's settlement ended: a refund receipt, or pending again, or a manual claim.
        ``msgid`` None: a visit's or stay's voucher, whose messages were recorded step by step."""
        v = self._journal.require_voucher(voucher)
        data = self._journal.voucher_fields(v)
        if answer.get("infcode") == 0:
            s = answer["output"]["setlinfo"]
            refund = Decimal(str(s["fund_pay_sumamt"])) + Decimal(str(s["acct_pay"]))
            receipt = receipt_of("refund", v["sale"], v.get("psn_name", ""), s, voucher=voucher, refund=f"{refund:.2f}")
            state, data = "settled", {**data, "setlinfo": s, "receipt": dataclasses.asdict(receipt)}
        else:
            err = answer.get("err_msg", "")
            code = err.split(":", 1)[0]
            state = "manual_claim" if code in MANUAL_CLAIM_CODES else "pending"
            data = {**data, "err_msg": err}
            receipt = None
        with self._journal.transaction() as db:
            if msgid is not None:
                self._journal.record_answer(db, msgid, answer)
            self._journal.put_voucher(db, voucher, v["sale"], state, data)
        if receipt is None:
            if state == "manual_claim":
                raise CounterError(
                    f"voucher {voucher} could not be settled here ({err}): it is now a manual "
                    "claim for the insured region's agency"
                )
            raise Refused(err)
        return receipt
