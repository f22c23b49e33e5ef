"""Cancelling a settled sale or visit (2103, 2208): its mirror, a negative receipt. The cancel's msgid is
written with the sale's ``cancelling`` state, so a lost answer is resolved by resending the same request."""

from __future__ import annotations

from ..errors import InvalidInput
from .common import Receipt, Refused, receipt_of
from .messaging import Messenger
from .states import SaleState
from .store import CounterStore

CANCELLABLE = (SaleState.DONE, SaleState.SETTLED, SaleState.CANCELLING)


class Cancels:
    """Cancels the counter's settled pharmacy sales and outpatient visits."""

    def __init__(self, journal: CounterStore, messenger: Messenger) -> None:
        self._journal, self._messenger = journal, messenger

    def cancel(self, sale: str) -> Receipt:
        """Cancel a settled sale (2103) or visit (2208); a lost answer is resolved by resending the same request."""
        found = self._journal.sale(sale)
        if found is None:
            raise InvalidInput(f"no sale {sale!r} at this counter (sell prints the sale's id)", field="sale")
        state, data = found
        if state not in CANCELLABLE:
            why = f"refused by the centre ({data.get('err_msg', '')})" if state is SaleState.REFUSED else state.value
            raise InvalidInput(f"sale {sale} is not settled ({why}): there is nothing to cancel", field="sale")
        if data.get("voucher") or data.get("forward_of"):
            # Its settlement belongs to the voucher (or to the provisional sale it forwards): the counter's
            # records and its reconciliation count it there, so a cancel here would leave the voucher
            # "settled" with no settlement, and the day unreconciled. Found by `medsettle sim live`.
            if data.get("voucher"):
                what = f"the re-settlement of voucher {data['voucher']}"
            else:
                what = f"the forward of provisional sale {data['forward_of']}"
            raise InvalidInput(
                f"sale {sale} is {what}, not a sale of its own: it cannot be cancelled at the counter",
                field="sale",
            )
        msgid = data["cancel_msgid"] if state is SaleState.CANCELLING else self._write_cancel(sale, data)
        answer = self._messenger.send(msgid)
        with self._journal.transaction() as db:
            self._journal.record_answer(db, msgid, answer)
            if answer.get("infcode") == 0:
                self._journal.put_sale(db, sale, SaleState.CANCELLED, {**data, "mirror": answer["output"]["setlinfo"]})
        if answer.get("infcode") != 0:
            raise Refused(answer.get("err_msg", ""))
        return receipt_of("cancel", sale, data.get("psn_name", ""), answer["output"]["setlinfo"])

    def _write_cancel(self, sale: str, data: dict) -> str:
        with self._journal.transaction() as db:
            infno = "2208" if data.get("kind") == "outpatient" else "2103"
            msgid = self._messenger.new_message(
                db,
                infno,
                {
                    "data": {
                        "setl_id": data["setlinfo"]["setl_id"],
                        "psn_no": data["psn_no"],
                        "mdtrt_id": data["setlinfo"]["mdtrt_id"],
                    }
                },
                insuplc=data.get("insuplc_admdvs", ""),
                sale=sale,
            )
            self._journal.put_sale(db, sale, SaleState.CANCELLING, {**data, "cancel_msgid": msgid})
        return msgid
