"""A hospital's outpatient counter: registration (2201), visit and diagnosis (2203), fee upload (2204),
pre-settle (2206) and settle (2207), as steps of one visit journaled like a pharmacy sale.

Each step's msgid is written before it is sent and its answer recorded, and :meth:`Visits.advance_visit` takes a
visit from wherever it stopped (a crash, an outage) to its end: a restarted terminal finishes the visit the
patient is waiting for. When a step gets no answer and the patient cannot wait, the visit is abandoned: a
2601 reverses the unanswered step if 2601 covers it (2201, 2204, 2207), and the patient pays cash against a
voucher. A voucher of a visit is re-settled as a new visit dated on the original day, its 2207 carrying
``deferred_voucher_no`` (the centre applies the window: 7 days for outpatient by default).
"""

from __future__ import annotations

import dataclasses

from ..seams import Clock
from .client import CentreUnreachable
from .common import Identity, Receipt, Refused, bill_lines, bill_total, cert_of, check_items, later_cert_of
from .crash import CrashPoints
from .identify import Identification
from .messaging import Messenger
from .outcomes import Outcomes
from .saf import Provisional
from .signin import SignIn
from .states import SaleState
from .store import CounterStore

STEPS = ("2201", "2203", "2204", "2207")
REVERSIBLE = ("2201", "2204", "2207")  # what 2601 covers among the visit's steps (docs/messages.md)
STEP_STATE = {
    "2201": SaleState.VISIT_2201,
    "2203": SaleState.VISIT_2203,
    "2204": SaleState.VISIT_2204,
    "2207": SaleState.VISIT_2207,
}


class Visits:
    """Outpatient visits, their provisional forwards and their vouchers' re-settlements."""

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

    def visit(
        self,
        identity: Identity | None,
        items: list[dict],
        *,
        med_type: str = "11",
        acct_used: bool = True,
        diagnosis: str = "J06.900",
    ) -> Receipt:
        """Register, record the visit, upload the fees and settle; ``identity`` None: cash and a voucher."""
        if med_type not in ("11", "13", "14"):
            raise ValueError("an outpatient visit has med_type 11, 13 or 14")
        check_items(items, self._signin.cached_catalogue_codes())
        begntime = self._clock.now().strftime("%Y-%m-%d %H:%M:%S")
        lines = bill_lines(items, begntime)
        with self._journal.transaction() as db:
            sale = f"SALE{self._journal.next_seq(db):08d}"
            data = {
                "kind": "outpatient",
                "identity": dataclasses.asdict(identity) if identity else None,
                "lines": lines,
                "bill_time": begntime,
                "medfee": bill_total(lines),
                "acct_used": acct_used,
                "med_type": med_type,
                "diagnosis": diagnosis,
                "steps": {},
            }
            self._journal.put_sale(db, sale, SaleState.NEW, data)
        self._crash.reach("sale_recorded")
        if identity is None:
            return self._outcomes.defer(sale, "equipment failure: the patient could not be identified")
        try:
            self._identification.identify_for(sale, identity)
        except CentreUnreachable:
            return self._provisional.centre_away(sale, identity)  # the institution's policy: voucher or provisional
        return self.advance_visit(sale)

    @staticmethod
    def _request(infno: str, data: dict) -> dict:
        """The input of step ``infno`` of the visit ``data`` (its ``sale`` included)."""
        cert = cert_of(data)
        if infno == "2201":
            return {
                "data": {
                    "psn_no": data["psn_no"],
                    "insutype": data["insutype"],
                    "begntime": data["bill_time"],
                    "ipt_otp_no": data["sale"],
                    **cert,
                }
            }
        mdtrt_id = data["mdtrt_id"]
        if infno == "2203":
            return {
                "mdtrtinfo": {
                    "mdtrt_id": mdtrt_id,
                    "psn_no": data["psn_no"],
                    "med_type": data["med_type"],
                    "begntime": data["bill_time"],
                },
                "diseinfo": [{"diag_type": "1", "diag_srt_no": "1", "diag_code": data["diagnosis"]}],
            }
        if infno == "2204":
            return {
                "feedetail": [
                    {**line, "mdtrt_id": mdtrt_id, "psn_no": data["psn_no"], "med_type": data["med_type"]}
                    for line in data["lines"]
                ]
            }
        later = data.get("voucher") or data.get("saf_cash") is not None  # the patient may be gone
        settle = {
            "data": {
                "psn_no": data["psn_no"],
                "mdtrt_id": mdtrt_id,
                "med_type": data["med_type"],
                "medfee_sumamt": data["medfee"],
                "insutype": data["insutype"],
                "acct_used_flag": "1" if data["acct_used"] else "0",
                **(later_cert_of(data) if later else cert),
            }
        }
        if data.get("voucher"):
            settle["data"]["deferred_voucher_no"] = data["voucher"]
        if data.get("saf_cash") is not None:  # the forward of a provisional visit: the cash collected
            settle["data"]["saf_cash_amt"] = data["saf_cash"]
        return settle

    def forward_visit(self, entry: dict) -> dict:
        """Forward a provisional visit: the whole visit on its original day, 2207 with the cash collected.
        Returns the 2207's setlinfo; CentreUnreachable leaves it to the next round; Refused if refused."""
        resale = entry.get("resale")
        if resale is None:
            with self._journal.transaction() as db:
                resale = f"SALE{self._journal.next_seq(db):08d}"
                self._journal.put_sale(
                    db,
                    resale,
                    SaleState.NEW,
                    {
                        "kind": "outpatient",
                        "identity": entry["identity"],
                        "lines": entry["lines"],
                        "bill_time": entry["bill_time"],
                        "medfee": entry["medfee"],
                        "acct_used": False,
                        "med_type": entry["med_type"],
                        "diagnosis": entry.get("diagnosis", "J06.900"),
                        "steps": {},
                        "saf_cash": entry["cash_collected"],
                        "forward_of": entry["sale"],
                    },
                )
                data = self._journal.saf_fields(entry)
                self._journal.put_saf(
                    db, entry["sale"], "forwarding", {**data, "resale": resale}, attempts=entry["attempts"]
                )
        state, data = self._journal.require_sale(resale)
        if state is SaleState.DONE:  # settled, and its receipt printed by an older resume
            return data["setlinfo"]
        if "psn_no" not in data:
            self._identification.identify_for(resale, Identity(**entry["identity"]))
        self.advance_visit(resale)
        return self._journal.require_sale(resale)[1]["setlinfo"]

    def _identify_resale(self, voucher_no: str, resale: str, identity: Identity) -> None:
        """The 1101 of a voucher's new visit; the voucher learns whom it was for, for reconciliation."""
        self._identification.identify_for(resale, identity)
        _, data = self._journal.require_sale(resale)
        v = self._journal.require_voucher(voucher_no)
        fields = self._journal.voucher_fields(v)
        with self._journal.transaction() as db:
            self._journal.put_voucher(
                db,
                voucher_no,
                v["sale"],
                v["state"],
                {**fields, **{k: data[k] for k in ("psn_no", "psn_name", "insuplc_admdvs", "insutype")}},
            )

    def advance_visit(self, sale: str) -> Receipt:
        """Take a visit from where it stopped to its settlement (each step sent once, resent unchanged)."""
        for infno in STEPS:
            _, data = self._journal.require_sale(sale)
            msgid = data["steps"].get(infno)
            if msgid is not None and infno != "2207":
                message = self._journal.require_message(msgid)
                if message["state"] == "answered":
                    if infno == "2201" and "mdtrt_id" not in data:  # answered by resume's resend: record it here
                        self._record_step(sale, infno, msgid, message["answer"], data)
                    continue
            # a voucher's new visit, or a provisional visit's forward: no patient waits at the counter
            unattended = bool(data.get("voucher") or data.get("forward_of"))
            try:
                if msgid is None:
                    msgid = self._write_step(sale, infno, data)  # the 2207's pre-settle 2206 may find no centre
                answer = self._messenger.send(msgid)
            except CentreUnreachable:
                if unattended:  # left where it stopped: the next try goes on from here, resending the same msgid
                    raise
                if msgid is None:  # no answer to the 2206, nothing sent that moves money: cash and a voucher
                    return self._outcomes.defer(sale, "centre unreachable before the settlement")
                return self._abandon_visit(sale, infno, msgid)
            if infno == "2207":
                self._crash.reach("settle_sent")
                return self._outcomes.finish_settle(sale, msgid, answer)
            self._record_step(sale, infno, msgid, answer, data)
        return self._outcomes.print_settled(sale)

    def _write_step(self, sale: str, infno: str, data: dict) -> str:
        """Write step ``infno`` of the visit (the 2207 after its pre-settle 2206, which changes nothing)."""
        if infno == "2207":  # the clerk sees the split first; refused: the visit ends
            self._messenger.query(
                "2206", self._request("2207", {**data, "sale": sale}), insuplc=data["insuplc_admdvs"], sale=sale
            )
        with self._journal.transaction() as db:
            msgid = self._messenger.new_message(
                db, infno, self._request(infno, {**data, "sale": sale}), insuplc=data["insuplc_admdvs"], sale=sale
            )
            data["steps"][infno] = msgid
            self._journal.put_sale(db, sale, STEP_STATE[infno], data)
        if infno == "2207":
            self._crash.reach("settle_written")
        return msgid

    def _record_step(self, sale: str, infno: str, msgid: str, answer: dict, data: dict) -> None:
        """Record a step's answer (2201's: the visit's mdtrt_id); a refusal ends the visit."""
        with self._journal.transaction() as db:
            self._journal.record_answer(db, msgid, answer)
            if answer.get("infcode") != 0:
                self._journal.put_sale(db, sale, SaleState.REFUSED, {**data, "err_msg": answer.get("err_msg", "")})
            elif infno == "2201":
                data["mdtrt_id"] = answer["output"]["data"]["mdtrt_id"]
                self._journal.put_sale(db, sale, SaleState.VISIT_2201, data)
        if answer.get("infcode") != 0:
            raise Refused(answer.get("err_msg", ""), sale=sale)

    def _abandon_visit(self, sale: str, infno: str, msgid: str) -> Receipt:
        """No answer to a step: reverse it if 2601 covers it, and take cash against a voucher."""
        if infno not in REVERSIBLE:  # 2203 changes no money: leave it, the registration stays unused
            with self._journal.transaction() as db:
                self._journal.abandon_message(db, msgid)
            return self._outcomes.defer(sale, "centre unreachable during the visit")
        return self._outcomes.abandon(sale, msgid, oinfno=infno)

    def resettle_voucher(self, voucher: dict, identity: Identity) -> Receipt:
        """A voucher of a visit: a new visit on the original day, its 2207 naming the voucher."""
        with self._journal.transaction() as db:
            resale = f"SALE{self._journal.next_seq(db):08d}"
            data = {
                "kind": "outpatient",
                "identity": dataclasses.asdict(identity),
                "lines": voucher["lines"],
                "bill_time": voucher["bill_time"],
                "medfee": voucher["medfee"],
                "acct_used": True,
                "med_type": voucher.get("med_type", "11"),
                "diagnosis": voucher.get("diagnosis", "J06.900"),
                "steps": {},
                "voucher": voucher["voucher"],
            }
            self._journal.put_sale(db, resale, SaleState.NEW, data)
            fields = self._journal.voucher_fields(voucher)
            self._journal.put_voucher(db, voucher["voucher"], voucher["sale"], "settling", {**fields, "resale": resale})
        return self.continue_resale(voucher["voucher"], resale, identity)

    def continue_resale(self, voucher_no: str, resale: str, identity: Identity | None = None) -> Receipt:
        """Take a voucher's new visit on from where it stopped, and record how the voucher ended."""
        state, data = self._journal.require_sale(resale)
        if state is SaleState.REFUSED:  # refused before a crash or an outage stopped the voucher's record
            return self._outcomes.finish_voucher(voucher_no, None, {"infcode": -1, "err_msg": data.get("err_msg", "")})
        if state is SaleState.DONE:  # settled, and its receipt printed by an older resume: record the voucher
            return self._outcomes.finish_voucher(
                voucher_no, None, {"infcode": 0, "output": {"setlinfo": data["setlinfo"]}}
            )
        try:
            if "psn_no" not in data:
                self._identify_resale(voucher_no, resale, identity or Identity(**data["identity"]))
            self.advance_visit(resale)
        except Refused as refused:
            return self._outcomes.finish_voucher(voucher_no, None, {"infcode": -1, "err_msg": refused.err_msg})
        _, data = self._journal.require_sale(resale)
        return self._outcomes.finish_voucher(voucher_no, None, {"infcode": 0, "output": {"setlinfo": data["setlinfo"]}})
