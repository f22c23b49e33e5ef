"""A hospital's inpatient counter (住院): admission (2401), fee uploads during the stay (2301), mid-stay and
final settlement (2303 pre-settle, 2304), discharge (2402).

A stay lives for days, so it is not one flow but a series of journaled steps, each keyed in the stay's
record (``2401``, ``2301#1``, ``2304#2``, ...) with its msgid written before it is sent. Everything the
counter knows of a stay (its mdtrt_id, the lines uploaded, the settlements) is read from the answers of its
steps, so a step answered just before a crash counts exactly once. An inpatient is in the hospital: when the
centre does not answer, the step is left to be resent unchanged (``resume``) rather than abandoned, except
the final settlement of a patient who is going home (:meth:`defer_stay`): a 2601 and a cash voucher,
settled later within the window after discharge (30 days by default).
"""

from __future__ import annotations

import dataclasses
import json
from decimal import ROUND_HALF_UP, Decimal

from ..errors import InvalidInput
from ..seams import Clock
from .common import CounterError, Identity, Receipt, Refused, cert_of, check_items, later_cert_of, receipt_of
from .crash import CrashPoints
from .identify import Identification
from .messaging import Messenger
from .outcomes import Outcomes
from .signin import SignIn
from .states import SaleState
from .store import CounterStore


class Stays:
    """Inpatient stays: their steps, their settlements and mirrors, and their vouchers' settlements."""

    def __init__(
        self,
        journal: CounterStore,
        messenger: Messenger,
        identification: Identification,
        signin: SignIn,
        outcomes: Outcomes,
        *,
        clock: Clock,
        crash: CrashPoints,
    ) -> None:
        self._journal, self._messenger, self._identification = journal, messenger, identification
        self._signin, self._outcomes = signin, outcomes
        self._clock, self._crash = clock, crash

    def _now_text(self) -> str:
        return self._clock.now().strftime("%Y-%m-%d %H:%M:%S")

    def admit(self, identity: Identity, *, diagnosis: str = "K35.900") -> str:
        """Admit the patient (2401); returns the stay's id (the counter's; the centre's mdtrt_id is in it)."""
        begntime = self._now_text()
        with self._journal.transaction() as db:
            stay = f"STAY{self._journal.next_seq(db):08d}"
            self._journal.put_sale(
                db,
                stay,
                SaleState.NEW,
                {
                    "kind": "inpatient",
                    "identity": dataclasses.asdict(identity),
                    "bill_time": begntime,
                    "diagnosis": diagnosis,
                    "steps": {},
                    "lines": [],
                    "lines_sent": 0,
                    "medfee": "0.00",
                },
            )
        self._identification.identify_for(stay, identity)
        data = self._stay_data(stay)
        who = cert_of(data)
        try:
            self._stay_step(
                stay,
                "2401",
                {
                    "mdtrtinfo": {
                        "psn_no": data["psn_no"],
                        "insutype": data["insutype"],
                        "med_type": "21",
                        "begntime": begntime,
                        "ipt_no": stay,
                        **who,
                    },
                    "diseinfo": [{"diag_type": "1", "diag_srt_no": "1", "diag_code": diagnosis}],
                },
            )
        except Refused as refused:  # not admitted: the stay ends here
            with self._journal.transaction() as db:
                self._journal.put_refused(db, stay, refused.err_msg)
            raise Refused(refused.err_msg, sale=stay) from None
        return stay

    def stay_fees(self, stay: str, items: list[dict]) -> list[dict]:
        """Upload fee lines of the stay (2301); answers the centre's per-line split."""
        data = self._stay_data(stay)
        check_items(items, self._signin.cached_catalogue_codes())
        first = len(self._stay_lines(data)) + 1
        when = self._now_text()
        lines = [
            {
                "feedetl_sn": str(first + i),
                "med_list_codg": it["med_list_codg"],
                "pric": str(it["pric"]),
                "cnt": str(it["cnt"]),
                "fee_ocur_time": when,
                "mdtrt_id": self._mdtrt_id(data),
                "psn_no": data["psn_no"],
                "med_type": "21",
            }
            for i, it in enumerate(items)
        ]
        key = f"2301#{sum(1 for k in data['steps'] if k.startswith('2301')) + 1}"
        return self._stay_step(stay, key, {"feedetail": lines})["result"]

    def settle_stay(self, stay: str, *, final: bool) -> Receipt:
        """Settle the lines uploaded so far: mid-stay (``final=False``) or after discharge."""
        data = self._stay_data(stay)
        request = {
            "data": {
                "psn_no": data["psn_no"],
                "mdtrt_id": self._mdtrt_id(data),
                "med_type": "21",
                "insutype": data["insutype"],
                "acct_used_flag": "1",
                "mid_setl_flag": "0" if final else "1",
                **later_cert_of(data),  # days after the admission: the certificate kept (common.kept_identity)
            }
        }
        self._messenger.query("2303", request, insuplc=data["insuplc_admdvs"])
        key = f"2304#{sum(1 for k in data['steps'] if k.startswith('2304')) + 1}"
        s = self._stay_step(stay, key, request)["setlinfo"]
        return receipt_of(
            "sale", stay, data.get("psn_name", ""), s, note="final settlement" if final else "mid-stay settlement"
        )

    def defer_stay(self, stay: str) -> Receipt:
        """The final settlement got no answer and the patient is going home: reverse it (2601) and take
        cash for the unsettled part against a voucher, settled later within the window after discharge."""
        data = self._stay_data(stay)
        pending = [
            (k, m)
            for k, m in data["steps"].items()
            if k.startswith("2304") and self._journal.require_message(m)["state"] == "written"
        ]
        if not pending:
            raise CounterError(f"stay {stay} has no unanswered settlement to defer")
        settled = sum(Decimal(str(s["medfee_sumamt"])) for s in self.stay_settlements(data))
        total = sum(
            (Decimal(line["pric"]) * Decimal(line["cnt"])).quantize(Decimal("0.01"), ROUND_HALF_UP)
            for line in self._stay_lines(data)
        )
        with self._journal.transaction() as db:
            self._journal.put_sale(db, stay, SaleState.STAY_DEFERRED, {**data, "medfee": f"{total - settled:.2f}"})
        return self._outcomes.abandon(stay, pending[-1][1], oinfno="2304")

    def resettle_voucher(self, voucher: dict) -> Receipt:
        """A stay's voucher: its final settlement, sent now with the voucher's number."""
        stay = voucher["sale"]
        data = self._stay_data(stay)
        request = {
            "data": {
                "psn_no": data["psn_no"],
                "mdtrt_id": self._mdtrt_id(data),
                "med_type": "21",
                "insutype": data["insutype"],
                "acct_used_flag": "1",
                "mid_setl_flag": "0",
                "deferred_voucher_no": voucher["voucher"],
                **later_cert_of(data),  # days after the admission: the certificate kept (common.kept_identity)
            }
        }
        key = voucher.get("step") or f"2304#{sum(1 for k in data['steps'] if k.startswith('2304')) + 1}"
        if not voucher.get("step"):
            fields = self._journal.voucher_fields(voucher)
            with self._journal.transaction() as db:
                self._journal.put_voucher(db, voucher["voucher"], stay, "settling", {**fields, "step": key})
        try:
            output = self._stay_step(stay, key, request)
        except Refused as refused:
            return self._outcomes.finish_voucher(voucher["voucher"], None, {"infcode": -1, "err_msg": refused.err_msg})
        return self._outcomes.finish_voucher(voucher["voucher"], None, {"infcode": 0, "output": output})

    def cancel_stay_settlement(self, stay: str, setl_id: str) -> Receipt:
        """Cancel one of the stay's settlements (2305): its mirror, a negative receipt."""
        data = self._stay_data(stay)
        if setl_id not in [s["setl_id"] for s in self.stay_settlements(data)]:
            raise InvalidInput(f"no settlement {setl_id!r} of stay {stay}", field="setl_id")
        key = f"2305#{setl_id}"  # one cancel per settlement: resent, never made twice
        m = self._stay_step(
            stay, key, {"data": {"setl_id": setl_id, "psn_no": data["psn_no"], "mdtrt_id": self._mdtrt_id(data)}}
        )["setlinfo"]
        return receipt_of("cancel", stay, data.get("psn_name", ""), m)

    def stay_mirrors(self, data: dict) -> list[dict]:
        """The setlinfo of every answered 2305 (cancel mirror) of a stay."""
        out = []
        for key, msgid in data["steps"].items():
            message = self._journal.require_message(msgid)
            if key.startswith("2305") and message["state"] == "answered" and message["answer"]["infcode"] == 0:
                out.append(message["answer"]["output"]["setlinfo"])
        return out

    def discharge(self, stay: str) -> None:
        data = self._stay_data(stay)
        self._stay_step(
            stay,
            "2402",
            {
                "dscginfo": {"mdtrt_id": self._mdtrt_id(data), "psn_no": data["psn_no"], "endtime": self._now_text()},
                "diseinfo": [{"diag_type": "1", "diag_srt_no": "1", "diag_code": data["diagnosis"]}],
            },
        )

    def stay_settlements(self, data: dict) -> list[dict]:
        """The setlinfo of every answered 2304 of a stay, in order."""
        out = []
        for key, msgid in data["steps"].items():
            message = self._journal.require_message(msgid)
            if key.startswith("2304") and message["state"] == "answered" and message["answer"]["infcode"] == 0:
                out.append(message["answer"]["output"]["setlinfo"])
        return out

    # -- helpers -----------------------------------------------------------------------------------------

    def _stay_step(self, stay: str, key: str, request: dict) -> dict:
        """Write (once), send and record one step of a stay; its output, or Refused."""
        data = self._stay_data(stay)
        msgid = data["steps"].get(key)
        if msgid is None:
            with self._journal.transaction() as db:
                msgid = self._messenger.new_message(
                    db, key.split("#")[0], request, insuplc=data["insuplc_admdvs"], sale=stay
                )
                data["steps"][key] = msgid
                self._journal.put_sale(db, stay, SaleState.STAY_STEP, data, step=key)
            if key.startswith("2304"):
                self._crash.reach("settle_written")
        answer = self._messenger.send(msgid)  # CentreUnreachable: left written, resent unchanged by resume()
        if key.startswith("2304"):
            self._crash.reach("settle_sent")
        self._messenger.record(msgid, answer)
        if answer.get("infcode") != 0:
            raise Refused(answer.get("err_msg", ""))
        return answer["output"]

    def _stay_data(self, stay: str) -> dict:
        """The journaled record of ``stay``; an id that is not one of this counter's admitted stays is an
        error naming it (a typo at the counter), never a crash."""
        found = self._journal.sale(stay)
        if found is None or found[1].get("kind") != "inpatient":
            raise InvalidInput(f"no stay {stay!r} at this counter (admit prints the stay's id)", field="stay")
        state, data = found
        if state is SaleState.REFUSED:
            raise InvalidInput(
                f"stay {stay} was refused by the centre ({data.get('err_msg', '')}): admit again", field="stay"
            )
        return data

    def _mdtrt_id(self, data: dict) -> str:
        message = self._journal.require_message(data["steps"]["2401"])
        if message["state"] != "answered":
            raise CounterError("the admission is not answered yet: run resume when the centre is back")
        return message["answer"]["output"]["data"]["mdtrt_id"]

    def _stay_lines(self, data: dict) -> list[dict]:
        lines = []
        for key, msgid in data["steps"].items():
            if key.startswith("2301"):
                lines += json.loads(self._journal.require_message(msgid)["request"])["input"]["feedetail"]
        return lines
