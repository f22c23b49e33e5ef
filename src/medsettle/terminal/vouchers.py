"""Deferred-settlement vouchers re-settled at this counter (自费转医保, docs/failures.md): a 2102 with the bill's
original date and the ``deferred_voucher_no`` extension (a visit's: a new visit on the original day; a stay's:
its final settlement); the insured share (fund and account) is refunded to the patient. Past the window or
the bill's year, the centre refuses and the voucher becomes a manual claim.

A voucher's settlement has one msgid, written before it is sent, so it is settled at most once whatever
crashes; a voucher whose sale was abandoned waits until the 2601 is answered, so a settle that did arrive is
reversed before the voucher can be settled. A voucher is settled only for the person it was made for: another
person's card or ID number is refused (InvalidInput naming ``identity``), the voucher left as it was.
"""

from __future__ import annotations

import dataclasses

from ..errors import InvalidInput
from .common import CounterError, Identity, Receipt, later_cert_of
from .crash import CrashPoints
from .identify import Identification
from .messaging import Messenger
from .outcomes import Outcomes
from .stays import Stays
from .store import CounterStore
from .visits import Visits


class Vouchers:
    """Settles the counter's vouchers, each the way its sale was made (pharmacy, visit or stay)."""

    def __init__(
        self,
        journal: CounterStore,
        messenger: Messenger,
        identification: Identification,
        outcomes: Outcomes,
        visits: Visits,
        stays: Stays,
        *,
        crash: CrashPoints,
    ) -> None:
        self._journal, self._messenger, self._identification = journal, messenger, identification
        self._outcomes, self._visits, self._stays = outcomes, visits, stays
        self._crash = crash

    def pending_vouchers(self) -> list[dict]:
        return self._journal.vouchers("pending", "settling")

    def settle_voucher(self, voucher: str, identity: Identity | None = None) -> Receipt:
        """Re-settle a voucher at this counter (自费转医保): refunds the insured share, or makes it a manual claim."""
        v = self._journal.voucher(voucher)
        if v is None:
            raise InvalidInput(f"no voucher {voucher!r}", field="voucher")
        if v["state"] == "settled":
            return Receipt(**v["receipt"])
        if v["state"] == "manual_claim":
            raise CounterError(f"voucher {voucher} is a manual claim now: {v.get('err_msg', '')}")
        if v["state"] == "settling" and v.get("resale"):  # a visit's voucher: its visit goes on where it stopped
            return self._visits.continue_resale(voucher, v["resale"], identity)
        if v.get("kind") == "inpatient" and (v["state"] == "settling" or not v["blocked_by"]):
            return self._stays.resettle_voucher(v)
        if v["state"] == "settling":  # written before a crash or an outage: the same msgid again, never a new one
            return self._outcomes.finish_voucher(voucher, v["msgid"], self._messenger.send(v["msgid"]))
        if v["blocked_by"]:
            self._wait_for_reversal(voucher, v["blocked_by"])
        who = identity or (Identity(**v["identity"]) if v.get("identity") else None)
        if who is None:
            raise InvalidInput(
                "identify the patient (card, QR e-voucher or ID number) to settle the voucher", field="identity"
            )
        if identity is not None:
            self._check_same_person(v, identity)
        if v.get("kind") == "outpatient":
            return self._visits.resettle_voucher(v, who)
        if v.get("kind") == "inpatient":
            return self._stays.resettle_voucher(self._journal.require_voucher(voucher))
        return self._resettle_sale(v, who)

    def _check_same_person(self, v: dict, identity: Identity) -> None:
        """A voucher is settled only for the person it was made for (not borrowed by another): the identity
        given now must name the person the sale identified (its psn_no, or the certificate captured at the
        sale when the centre was away). A voucher made before anyone was identified has no one to check."""
        captured = Identity(**v["identity"]) if v.get("identity") else None
        made_for = v.get("psn_no") or ""
        if captured == identity or (captured is None and not made_for):
            return
        if not made_for and captured is not None:  # the ID number a card carries still names its holder once
            named = Identity("02", captured.certno) if captured.certno else captured  # the card is lost
            made_for = self._identification.person_info(named)["baseinfo"]["psn_no"]
        given = self._identification.person_info(identity)["baseinfo"]["psn_no"]
        if given != made_for:
            raise InvalidInput(
                f"voucher {v['voucher']} was made for person {made_for}, not {given}: "
                "it is settled only for the person it was made for",
                field="identity",
            )

    def _wait_for_reversal(self, voucher: str, reversal: str) -> None:
        """The 2601 of the abandoned settle, resent now: the voucher is settled only once it is answered."""
        self._outcomes.finish_reversal(reversal, self._messenger.send(reversal))
        if self._journal.require_voucher(voucher)["blocked_by"]:
            raise CounterError(f"the reversal {reversal} of the abandoned settlement was refused")

    def _resettle_sale(self, v: dict, who: Identity) -> Receipt:
        """A pharmacy sale's voucher: one 2102 naming the voucher, written before it is sent."""
        voucher = v["voucher"]
        info = self._identification.person_info(who)
        psn_no, insu = info["baseinfo"]["psn_no"], info["insuinfo"][0]
        # The 2102 carries 03 with its card_sn or 02: a QR e-voucher shown now stands as the ID number its
        # 1101 answered (the centre takes no 01 on a re-settlement, centre/certificates.py).
        cert = later_cert_of({"identity": dataclasses.asdict(who), "certno": info["baseinfo"]["certno"]})
        request = {
            "data": {
                "psn_no": psn_no,
                "med_type": "41",
                "medfee_sumamt": v["medfee"],
                "insutype": insu["insutype"],
                "acct_used_flag": "1",
                "deferred_voucher_no": voucher,
                **cert,
            },
            "feedetail": v["lines"],
        }
        with self._journal.transaction() as db:
            msgid = self._messenger.new_message(db, "2102", request, insuplc=insu["insuplc_admdvs"], voucher=voucher)
            data = self._journal.voucher_fields(v)
            self._journal.put_voucher(
                db,
                voucher,
                v["sale"],
                "settling",
                {
                    **data,
                    "msgid": msgid,
                    "psn_no": psn_no,
                    "psn_name": info["baseinfo"]["psn_name"],
                    "insuplc_admdvs": insu["insuplc_admdvs"],
                    "insutype": insu["insutype"],
                },
            )
        self._crash.reach("voucher_settle_written")
        answer = self._messenger.send(msgid)
        self._crash.reach("voucher_settle_sent")
        return self._outcomes.finish_voucher(voucher, msgid, answer)
