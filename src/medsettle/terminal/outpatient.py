"""A hospital's outpatient counter: registration (2201), visit and diagnosis (2203), fee upload (2204),
pre-settle (2206) and settle (2207), as steps of one visit journaled like a pharmacy sale.

Each step's msgid is written before it is sent and its answer recorded, and :meth:`advance_visit` takes a
visit from wherever it stopped (a crash, an outage) to its end: a restarted terminal finishes the visit the
patient is waiting for. When a step gets no answer and the patient cannot wait, the visit is abandoned: a
2601 reverses the unanswered step if 2601 covers it (2201, 2204, 2207), and the patient pays cash against a
voucher. A voucher of a visit is re-settled as a new visit dated on the original day, its 2207 carrying
``deferred_voucher_no`` (the centre applies the window: 7 days for outpatient by default).
"""

from __future__ import annotations

import dataclasses

from .client import CentreUnreachable
from .crash import crash_point

STEPS = ("2201", "2203", "2204", "2207")
REVERSIBLE = ("2201", "2204", "2207")  # what 2601 covers among the visit's steps (docs/messages.md)


class OutpatientCounter:
    """Mixin of :class:`medsettle.terminal.Counter`."""

    def visit(self, identity, items: list[dict], *, med_type: str = "11", acct_used: bool = True,
              diagnosis: str = "J06.900"):
        """Register, record the visit, upload the fees and settle; ``identity`` None: cash and a voucher."""
        from .counter import bill_total, check_items  # noqa: PLC0415 - shared with the pharmacy flow

        if med_type not in ("11", "13", "14"):
            raise ValueError("an outpatient visit has med_type 11, 13 or 14")
        check_items(items, self.cached_catalogue_codes())
        begntime = self.now().strftime("%Y-%m-%d %H:%M:%S")
        lines = [{"feedetl_sn": str(i + 1), "med_list_codg": it["med_list_codg"], "pric": str(it["pric"]),
                  "cnt": str(it["cnt"]), "fee_ocur_time": begntime} for i, it in enumerate(items)]
        with self.journal.transaction() as db:
            sale = f"SALE{self.journal.next_seq(db):08d}"
            data = {"kind": "outpatient", "identity": dataclasses.asdict(identity) if identity else None,
                    "lines": lines, "bill_time": begntime, "medfee": bill_total(lines), "acct_used": acct_used,
                    "med_type": med_type, "diagnosis": diagnosis, "steps": {}}
            self.journal.put_sale(db, sale, "new", data)
        crash_point("sale_recorded")
        if identity is None:
            return self._defer(sale, "equipment failure: the patient could not be identified")
        try:
            self._identify_for(sale, identity)
        except CentreUnreachable:
            return self._centre_away(sale, identity)  # the institution's policy: voucher or provisional
        return self.advance_visit(sale)

    def _visit_request(self, infno: str, data: dict) -> dict:
        cert = self._cert_of(data)
        if infno == "2201":
            return {"data": {"psn_no": data["psn_no"], "insutype": data["insutype"], "begntime": data["bill_time"],
                             "ipt_otp_no": data["sale"], **cert}}
        mdtrt_id = data["mdtrt_id"]
        if infno == "2203":
            return {"mdtrtinfo": {"mdtrt_id": mdtrt_id, "psn_no": data["psn_no"], "med_type": data["med_type"],
                                  "begntime": data["bill_time"]},
                    "diseinfo": [{"diag_type": "1", "diag_srt_no": "1", "diag_code": data["diagnosis"]}]}
        if infno == "2204":
            return {"feedetail": [{**line, "mdtrt_id": mdtrt_id, "psn_no": data["psn_no"],
                                   "med_type": data["med_type"]} for line in data["lines"]]}
        settle = {"data": {"psn_no": data["psn_no"], "mdtrt_id": mdtrt_id, "med_type": data["med_type"],
                           "medfee_sumamt": data["medfee"], "insutype": data["insutype"],
                           "acct_used_flag": "1" if data["acct_used"] else "0", **cert}}
        if data.get("voucher"):
            settle["data"]["deferred_voucher_no"] = data["voucher"]
        if data.get("saf_cash") is not None:  # the forward of a provisional visit: the cash collected
            settle["data"]["saf_cash_amt"] = data["saf_cash"]
        return settle

    def _forward_visit(self, entry: dict):
        """Forward a provisional visit: the whole visit on its original day, 2207 with the cash collected.
        Returns the 2207's setlinfo; CentreUnreachable leaves it to the next round; Refused if refused."""
        from .counter import Identity  # noqa: PLC0415

        resale = entry.get("resale")
        if resale is None:
            with self.journal.transaction() as db:
                resale = f"SALE{self.journal.next_seq(db):08d}"
                self.journal.put_sale(db, resale, "new", {
                    "kind": "outpatient", "identity": entry["identity"], "lines": entry["lines"],
                    "bill_time": entry["bill_time"], "medfee": entry["medfee"], "acct_used": False,
                    "med_type": entry["med_type"], "diagnosis": entry.get("diagnosis", "J06.900"), "steps": {},
                    "saf_cash": entry["cash_collected"], "forward_of": entry["sale"]})
                data = self.journal.saf_fields(entry)
                self.journal.put_saf(db, entry["sale"], "forwarding", {**data, "resale": resale},
                                     attempts=entry["attempts"])
        _, data = self.journal.sale(resale)
        if "psn_no" not in data:
            self._identify_for(resale, Identity(**entry["identity"]))
        self.advance_visit(resale)
        return self.journal.sale(resale)[1]["setlinfo"]

    def advance_visit(self, sale: str):
        """Take a visit from where it stopped to its settlement (each step sent once, resent unchanged)."""
        from .counter import Refused  # noqa: PLC0415

        for infno in STEPS:
            _, data = self.journal.sale(sale)
            msgid = data["steps"].get(infno)
            if msgid is not None and self.journal.message(msgid)["state"] == "answered" and infno != "2207":
                continue
            if msgid is None:
                if infno == "2207":  # the clerk sees the split first; it changes nothing
                    self._query("2206", self._visit_request("2207", {**data, "sale": sale}),
                                insuplc=data["insuplc_admdvs"], sale=sale)  # refused: the visit ends
                with self.journal.transaction() as db:
                    msgid = self._new_message(db, infno, self._visit_request(infno, {**data, "sale": sale}),
                                              insuplc=data["insuplc_admdvs"], sale=sale)
                    data["steps"][infno] = msgid
                    self.journal.put_sale(db, sale, f"visit {infno}", data)
                if infno == "2207":
                    crash_point("settle_written")
            try:
                answer = self._send(msgid)
            except CentreUnreachable:
                return self._abandon_visit(sale, infno, msgid)
            if infno == "2207":
                crash_point("settle_sent")
                return self._finish_settle(sale, msgid, answer)
            with self.journal.transaction() as db:
                self.journal.record_answer(db, msgid, answer)
                if answer.get("infcode") != 0:
                    self.journal.put_sale(db, sale, "refused", {**data, "err_msg": answer.get("err_msg", "")})
                elif infno == "2201":
                    data["mdtrt_id"] = answer["output"]["data"]["mdtrt_id"]
                    self.journal.put_sale(db, sale, "visit 2201", data)
            if answer.get("infcode") != 0:
                raise Refused(answer.get("err_msg", ""), sale=sale)
        return self._print_settled(sale)

    def _abandon_visit(self, sale: str, infno: str, msgid: str):
        """No answer to a step: reverse it if 2601 covers it, and take cash against a voucher."""
        if infno not in REVERSIBLE:  # 2203 changes no money: leave it, the registration stays unused
            with self.journal.transaction() as db:
                db.execute("UPDATE outbox SET state = 'abandoned' WHERE msgid = ?", (msgid,))
            return self._defer(sale, "centre unreachable during the visit")
        return self._abandon(sale, msgid, oinfno=infno)

    def _resettle_visit_voucher(self, voucher: dict, identity):
        """A voucher of a visit: a new visit on the original day, its 2207 naming the voucher."""
        with self.journal.transaction() as db:
            resale = f"SALE{self.journal.next_seq(db):08d}"
            data = {"kind": "outpatient", "identity": dataclasses.asdict(identity), "lines": voucher["lines"],
                    "bill_time": voucher["bill_time"], "medfee": voucher["medfee"], "acct_used": True,
                    "med_type": voucher.get("med_type", "11"), "diagnosis": voucher.get("diagnosis", "J06.900"),
                    "steps": {}, "voucher": voucher["voucher"]}
            self.journal.put_sale(db, resale, "new", data)
            fields = self.journal.voucher_fields(voucher)
            self.journal.put_voucher(db, voucher["voucher"], voucher["sale"], "settling", {**fields, "resale": resale})
        return self._continue_resale(voucher["voucher"], resale, identity)

    def _continue_resale(self, voucher_no: str, resale: str, identity=None):
        from .counter import Identity, Refused  # noqa: PLC0415

        _, data = self.journal.sale(resale)
        if "psn_no" not in data:
            self._identify_for(resale, identity or Identity(**data["identity"]))
            _, data = self.journal.sale(resale)
            v = self.journal.voucher(voucher_no)
            fields = self.journal.voucher_fields(v)
            with self.journal.transaction() as db:  # the voucher learns whom it was for, for reconciliation
                self.journal.put_voucher(db, voucher_no, v["sale"], v["state"], {
                    **fields, **{k: data[k] for k in ("psn_no", "psn_name", "insuplc_admdvs", "insutype")}})
        try:
            self.advance_visit(resale)
        except Refused as refused:
            return self._finish_voucher(voucher_no, None, {"infcode": -1, "err_msg": refused.err_msg})
        _, data = self.journal.sale(resale)
        return self._finish_voucher(voucher_no, None, {"infcode": 0, "output": {"setlinfo": data["setlinfo"]}})

