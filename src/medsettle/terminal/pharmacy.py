"""A pharmacy sale (docs/messages.md-§4): identify the patient (1101), pre-settle (2101), settle (2102), receipt.

When the centre does not answer, the settle is resent unchanged (same msgid and bytes) for ``resend_for``
seconds; if the patient cannot wait, the sale is abandoned: a 2601 is journaled (sent now or on resume) and
the patient pays the whole bill in cash against a deferred-settlement voucher. When the counter's own
equipment fails (reader, card, PSAM) the same: cash and a voucher. When the centre is away before the
settle was sent, the institution's policy decides (a voucher, or a provisional settlement).

A refusal is not a failure: when the centre refuses the person (1101), the pre-settle (2101: an item not in
the catalogue) or the settle, the sale ends ``refused`` with the centre's err_msg (:class:`~.common.Refused`):
nothing is owed, no voucher is made, and a restart leaves it so. Items malformed or (with a cached catalogue)
unknown are refused before anything is journaled or sent (:func:`~.common.check_items`).
"""

from __future__ import annotations

import dataclasses

from ..seams import Clock
from .client import CentreUnreachable
from .common import Identity, Receipt, bill_lines, bill_total, cert_of, check_items
from .crash import CrashPoints
from .identify import Identification
from .messaging import Messenger
from .outcomes import Outcomes
from .saf import Provisional
from .signin import SignIn
from .states import SaleState
from .store import CounterStore


class PharmacySales:
    """The pharmacy counter's sales."""

    def __init__(
        self,
        journal: CounterStore,
        messenger: Messenger,
        identification: Identification,
        signin: SignIn,
        outcomes: Outcomes,
        provisional: Provisional,
        *,
        clock: Clock,
        crash: CrashPoints,
    ) -> None:
        self._journal, self._messenger, self._identification = journal, messenger, identification
        self._signin, self._outcomes, self._provisional = signin, outcomes, provisional
        self._clock, self._crash = clock, crash

    def sell(self, identity: Identity | None, items: list[dict], *, acct_used: bool = True) -> Receipt:
        """Settle a pharmacy sale; ``identity`` None means the equipment failed before anyone was identified.
        ``items``: dicts with med_list_codg, pric, cnt (yuan and counts as strings)."""
        check_items(items, self._signin.cached_catalogue_codes())
        sale, data = self._record(identity, items, acct_used)
        self._crash.reach("sale_recorded")
        if identity is None:
            return self._outcomes.defer(sale, "equipment failure: the patient could not be identified")
        try:  # the sale stays "new": a crash before its settle is written makes it a voucher on resume
            data = self._identification.identify_for(sale, identity, state=SaleState.NEW)
        except CentreUnreachable:
            return self._provisional.centre_away(sale, identity)
        request = {
            "data": {
                "psn_no": data["psn_no"],
                "med_type": "41",
                "medfee_sumamt": data["medfee"],
                "insutype": data["insutype"],
                "acct_used_flag": "1" if acct_used else "0",
                **cert_of(data),
            },
            "feedetail": data["lines"],
        }
        try:
            # pre-settle: the clerk sees the split; a refusal (an unknown item) ends the sale
            self._messenger.query("2101", request, insuplc=data["insuplc_admdvs"], sale=sale)
        except CentreUnreachable:
            return self._provisional.centre_away(sale, identity)
        if self._identification.card_taken_out(identity):
            with self._journal.transaction() as db:  # pulled before the settle was sent: nothing happened
                self._journal.put_sale(
                    db, sale, SaleState.ABORTED, {**data, "reason": "card removed before settlement"}
                )
            raise self._identification.card_removed_error()
        return self._settle(sale, data, request)

    def _record(self, identity: Identity | None, items: list[dict], acct_used: bool) -> tuple[str, dict]:
        """The sale, recorded ``new`` before anything is sent: its bill, its time and who it is for."""
        bill_time = self._clock.now().strftime("%Y-%m-%d %H:%M:%S")
        lines = bill_lines(items, bill_time)
        with self._journal.transaction() as db:
            sale = f"SALE{self._journal.next_seq(db):08d}"
            data = {
                "identity": dataclasses.asdict(identity) if identity else None,
                "lines": lines,
                "bill_time": bill_time,
                "medfee": bill_total(lines),
                "acct_used": acct_used,
            }
            self._journal.put_sale(db, sale, SaleState.NEW, data)
        return sale, data

    def _settle(self, sale: str, data: dict, request: dict) -> Receipt:
        """Write the 2102, send it (resent unchanged), and record its answer; abandoned if unanswered."""
        with self._journal.transaction() as db:
            msgid = self._messenger.new_message(db, "2102", request, insuplc=data["insuplc_admdvs"], sale=sale)
            self._journal.put_sale(db, sale, SaleState.SETTLING, {**data, "msgid": msgid})
        self._crash.reach("settle_written")
        try:
            answer = self._messenger.send(msgid)
        except CentreUnreachable:
            return self._outcomes.abandon(sale, msgid)
        self._crash.reach("settle_sent")
        return self._outcomes.finish_settle(sale, msgid, answer)
