"""A pharmacy counter's flows (docs/messages.md-§4), every step journaled before it takes effect.

Online: sign in (9001), identify the patient (card read through the reader, or QR e-voucher, or ID card),
1101, pre-settle (2101), settle (2102), receipt; cancel (2103); reconciliation (3201, then 3202 when the
totals differ); sign out (9002).

When the centre does not answer, a settle is resent unchanged (same msgid and bytes) for ``resend_for``
seconds; if the patient cannot wait, the sale is abandoned: a 2601 is journaled (sent now or on resume)
and the patient pays the whole bill in cash against a deferred-settlement voucher. When the counter's own
equipment fails (reader, card, PSAM), or the terminal crashed mid-sale, the same: cash and a voucher.
A voucher is re-settled later at this counter (自费转医保): a 2102 with the bill's original date and the
``deferred_voucher_no`` extension; the insured share (fund and account) is refunded to the patient. Past
the window or the bill's year, the centre refuses and the voucher becomes a manual claim. A voucher's
settlement has one msgid, written before it is sent, so it is settled at most once whatever crashes.

A refusal is not a failure: when the centre refuses the person (1101), the pre-settle (2101: an item not in
the catalogue) or the settle, the sale ends ``refused`` with the centre's err_msg (:class:`Refused`): nothing
is owed, no voucher is made, and a restart leaves it so. Items malformed or (with a cached catalogue) unknown
are refused before anything is journaled or sent (:func:`check_items`).

A store-and-forward counter (the institution's policy, learnt at sign-in) settles provisionally instead
when the centre is away before the settle was sent (:mod:`.provisional`): within the floor limits the
patient pays the provisional cash share and the entry is queued; :meth:`Counter.forward` sends the queue in
order (the settle with acct_used_flag 0 and the cash collected), refunds a surplus to the patient and
reports the institution's share of a shortfall; refused, too old or too often tried entries are flagged.

Choices where the platform's contract is silent: a sale interrupted by a crash before its settle was written is turned
into a voucher on restart (the patient paid cash); a voucher whose sale was abandoned waits until the
2601 is answered, so a settle that did arrive is reversed before the voucher can be settled.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .. import money
from ..engine.bills import MAX_CNT_UNITS, MAX_LINES, MAX_PRIC_UNITS
from ..errors import InvalidInput, MedsettleError, UnknownItem
from ..timeutil import local_date, now_shanghai
from .client import CentreClient, CentreUnreachable
from .crash import crash_point
from .inpatient import InpatientCounter
from .journal import TerminalJournal
from .outpatient import OutpatientCounter
from .provisional import CannotSettleProvisionally, provisional_split

MANUAL_CLAIM_CODES = ("WINDOW_EXPIRED", "YEAR_CLOSED")


class CounterError(MedsettleError):
    code = "COUNTER_ERROR"


class Refused(CounterError):
    """The centre refused (infcode -1); ``err_msg`` is its message, ``refusal`` its code. ``sale`` is the
    sale, visit or stay the refusal ended (state ``refused``: nothing owed, no voucher), when it ended one."""

    code = "REFUSED"

    def __init__(self, err_msg: str, *, sale: str | None = None):
        self.err_msg = err_msg
        self.refusal = err_msg.split(":", 1)[0] if ":" in err_msg else ""
        self.sale = sale
        what = f"sale {sale}" if sale else "the request"
        super().__init__(f"the centre refused {what}: {err_msg}")


@dataclass
class Identity:
    """How the patient was identified: 03 card (card_no, card_sn), 01 QR token, 02 ID number."""

    mdtrt_cert_type: str
    mdtrt_cert_no: str
    card_sn: str = ""
    certno: str = ""
    psn_name: str = ""
    psn_no: str = ""


@dataclass
class Receipt:
    """What is printed for the patient (all amounts in yuan)."""

    kind: str  # sale, deferred, refund, cancel
    sale: str
    psn_name: str = ""
    medfee: str = "0.00"
    fund: str = "0.00"
    account: str = "0.00"
    cash: str = "0.00"
    balance: str = ""
    setl_id: str = ""
    voucher: str = ""
    refund: str = "0.00"
    note: str = ""

    def text(self) -> str:
        title = {"sale": "医保结算单 settlement", "deferred": "自费收据 cash receipt (deferred settlement)",
                 "provisional": "临时结算单 provisional settlement",
                 "refund": "自费转医保 refund", "cancel": "退费 cancellation"}[self.kind]
        lines = [title, f"sale {self.sale}" + (f"  setl_id {self.setl_id}" if self.setl_id else ""),
                 f"patient {self.psn_name}", f"total {self.medfee}", f"fund {self.fund}", f"account {self.account}",
                 f"cash {self.cash}"]
        if self.balance:
            lines.append(f"account balance {self.balance}")
        if self.voucher:
            lines.append(f"voucher {self.voucher}")
        if self.kind == "refund":
            lines.append(f"refunded to the patient {self.refund}")
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


def _yuan(value: Any) -> str:
    return f"{Decimal(str(value)):.2f}"


def check_items(items: list[dict], catalogue_codes: set[str] | None = None) -> None:
    """Refuse, before anything is journaled or sent, items the centre would refuse for their form: a
    code, a price (yuan, at most 4 decimals, 0 to 10^6) and a count (more than 0, at most 10^4, at most 4
    decimals), as docs/settlement.md 'Units and limits' says; with the counter's cached catalogue, a code
    not in it too (without one, the centre's refusal of the pre-settle ends the sale)."""
    if not items:
        raise InvalidInput("a sale has at least one item", field="items")
    if len(items) > MAX_LINES:
        raise InvalidInput(f"{len(items)} items: at most {MAX_LINES} in one bill", field="items")
    for n, item in enumerate(items, 1):
        code = str(item.get("med_list_codg") or "").strip()
        if not code:
            raise InvalidInput("the item code is empty", field=f"item {n}")
        if catalogue_codes is not None and code not in catalogue_codes:
            raise UnknownItem(f"{code!r} is not in the catalogue: check the code", field=f"item {n}")
        pric = money.to_price_units(item.get("pric"), field=f"item {n} price")
        if not 0 <= pric <= MAX_PRIC_UNITS:
            raise InvalidInput(f"{item.get('pric')!r} must be at least 0 and at most 1000000 yuan",
                               field=f"item {n} price")
        cnt = money.to_cnt_units(item.get("cnt"), field=f"item {n} count")
        if not 0 < cnt <= MAX_CNT_UNITS:
            raise InvalidInput(f"{item.get('cnt')!r} must be more than 0 and at most 10000", field=f"item {n} count")


def bill_total(items: list[dict]) -> str:
    """The bill's total as the centre computes it: each line round(pric × cnt) half up, summed."""
    total = sum((Decimal(i["pric"]) * Decimal(i["cnt"])).quantize(Decimal("0.01"), ROUND_HALF_UP) for i in items)
    return f"{total:.2f}"


class Counter(OutpatientCounter, InpatientCounter):
    def __init__(self, fixmedins_code: str, journal: TerminalJournal, client: CentreClient, *, reader=None,
                 admdvs: str | None = None, opter: str = "001", dev_no: str = "T01", resend_for: float = 3.0,
                 clock=now_shanghai):
        self.code = fixmedins_code
        self.admdvs = admdvs or fixmedins_code[1:7]
        self.journal, self.client, self.reader = journal, client, reader
        self.opter, self.dev_no = opter, dev_no
        self.resend_for = resend_for
        self.now = clock  # Asia/Shanghai wall time; a test may set the counter's clock back

    # -- messages ------------------------------------------------------------------------------------

    def _new_message(self, db, infno: str, input_: dict, *, insuplc: str = "", sale: str | None = None,
                     voucher: str | None = None) -> str:
        now = self.now()
        msgid = f"{self.code}{now:%Y%m%d%H%M%S}{self.journal.next_seq(db) % 10_000:04d}"
        while self.journal.message(msgid) is not None:  # 10,000 messages in one second: take the next second
            now += dt.timedelta(seconds=1)
            msgid = f"{self.code}{now:%Y%m%d%H%M%S}{self.journal.next_seq(db) % 10_000:04d}"
        envelope = {"infno": infno, "msgid": msgid, "mdtrtarea_admvs": self.admdvs, "insuplc_admdvs": insuplc,
                    "recer_sys_code": "MEDSETTLE", "dev_no": self.dev_no, "infver": "V1.0", "opter_type": "1",
                    "opter": self.opter, "opter_name": self.opter, "inf_time": now.strftime("%Y-%m-%d %H:%M:%S"),
                    "fixmedins_code": self.code, "fixmedins_name": self.code,
                    "sign_no": self.journal.get_meta("sign_no", ""), "input": input_}
        self.journal.write_message(db, msgid, infno, json.dumps(envelope, ensure_ascii=False).encode(), sale=sale,
                                   voucher=voucher)
        return msgid

    def _send(self, msgid: str, deadline_s: float | None = None) -> dict:
        """Send the journaled bytes, resending them unchanged until answered or ``deadline_s`` passes."""
        message = self.journal.message(msgid)
        if message["state"] == "answered":
            return message["answer"]
        give_up = time.monotonic() + (self.resend_for if deadline_s is None else deadline_s)
        delay = 0.05
        while True:
            try:
                return self.client.post(message["request"])
            except CentreUnreachable:
                if time.monotonic() + delay > give_up:
                    raise
                time.sleep(delay * random.uniform(0.5, 1.5))  # back-off with jitter: counters do not march
                delay = min(delay * 2, 1.0)

    def _query(self, infno: str, input_: dict, insuplc: str = "", *, sale: str | None = None) -> dict:
        """A message that changes nothing (1101, 2101, 3201, 3202): journaled, sent, answered or raised.
        With ``sale``, the message is the sale's and a refusal ends the sale: it is put ``refused`` in the
        transaction that records the answer, so no restart can take it for an interrupted sale."""
        with self.journal.transaction() as db:
            msgid = self._new_message(db, infno, input_, insuplc=insuplc, sale=sale)
        try:
            answer = self._send(msgid)
        except CentreUnreachable:
            with self.journal.transaction() as db:  # it changes nothing: not worth resending later
                db.execute("UPDATE outbox SET state = 'abandoned' WHERE msgid = ?", (msgid,))
            raise
        refused = answer.get("infcode") != 0
        with self.journal.transaction() as db:
            self.journal.record_answer(db, msgid, answer)
            if refused and sale is not None:
                self._put_refused(db, sale, answer.get("err_msg", ""))
        if refused:
            raise Refused(answer.get("err_msg", ""), sale=sale)
        return answer["output"]

    def _put_refused(self, db, sale: str, err_msg: str) -> None:
        """The centre refused a step of ``sale`` before anything was settled: the sale ends, nothing owed."""
        _, data = self.journal.sale(sale)
        self.journal.put_sale(db, sale, "refused", {**data, "err_msg": err_msg})

    def _refusal_of(self, sale: str) -> str | None:
        """The err_msg of a refused message of ``sale`` (a restart recorded its answer), else None."""
        for message in self.journal.messages_of(sale):
            answer = message["answer"]
            if answer is not None and answer.get("infcode") != 0:
                return answer.get("err_msg", "")
        return None

    # -- sign in and out -----------------------------------------------------------------------------

    def sign_in(self) -> str:
        with self.journal.transaction() as db:
            msgid = self._new_message(db, "9001", {"signIn": {"opter_no": self.opter, "mac": "00:00:00:00:00:00",
                                                              "ip": "127.0.0.1"}})
        answer = self._send(msgid)
        return self._finish_sign_in(msgid, answer)

    def _finish_sign_in(self, msgid: str, answer: dict) -> str:
        if answer.get("infcode") != 0:
            raise Refused(answer.get("err_msg", ""))
        sign_no = answer["output"]["signinoutb"]["sign_no"]
        with self.journal.transaction() as db:
            self.journal.record_answer(db, msgid, answer)
            self.journal.set_meta(db, "sign_no", sign_no)
            self.journal.set_meta(db, "insinfo", json.dumps(answer["output"].get("insinfo") or {}))
        if self.failure_policy == "store_and_forward":
            self.cache_rules()
        return sign_no

    @property
    def failure_policy(self) -> str:
        return json.loads(self.journal.get_meta("insinfo", "{}")).get("failure_policy", "cash_deferred")

    def cache_rules(self) -> None:
        """Download the rule set (9901) and catalogue (1312) in force for provisional settlement."""
        rules = self._query("9901", {"data": {}})
        catalogue = self._query("1312", {"data": {"page_size": 5000}})
        with self.journal.transaction() as db:
            self.journal.set_meta(db, "rules", json.dumps(rules, ensure_ascii=False))
            self.journal.set_meta(db, "catalogue", json.dumps(catalogue, ensure_ascii=False))

    def cached_catalogue_codes(self) -> set[str] | None:
        """The item codes of the catalogue cached at sign-in (a store-and-forward counter), or None when the
        counter holds no complete catalogue (then only the centre knows which codes exist)."""
        cached = self.journal.get_meta("catalogue")
        if not cached:
            return None
        catalogue = json.loads(cached)
        items = catalogue.get("items") or []
        if not items or catalogue.get("total", len(items)) != len(items):
            return None
        return {item["med_list_codg"] for item in items}

    def sign_out(self) -> None:
        sign_no = self.journal.get_meta("sign_no", "")
        self._query("9002", {"signOut": {"sign_no": sign_no, "opter_no": self.opter}})
        with self.journal.transaction() as db:
            self.journal.set_meta(db, "sign_no", "")

    # -- identifying the patient ---------------------------------------------------------------------

    def read_card(self, pin: str | None = None) -> Identity:
        """Read and authenticate the card in the counter's reader (reader errors propagate)."""
        if self.reader is None:
            raise CounterError("this counter has no reader: identify by QR e-voucher or ID number")
        record = self.reader.read_and_authenticate(pin)
        return Identity("03", record.card_no, record.card_sn, certno=record.certno, psn_name=record.name)

    @staticmethod
    def _cert_of(data: dict) -> dict:
        """The mdtrt_cert fields of a message, from a sale's, visit's or stay's stored identity."""
        who = data["identity"]
        cert = {"mdtrt_cert_type": who["mdtrt_cert_type"], "mdtrt_cert_no": who["mdtrt_cert_no"]}
        if who.get("card_sn"):
            cert["card_sn"] = who["card_sn"]
        return cert

    def person_info(self, identity: Identity, *, sale: str | None = None) -> dict:
        """1101; with ``sale``, a refusal (an unknown person, card or QR e-voucher) ends that sale."""
        data = self._cert_of({"identity": dataclasses.asdict(identity)})
        if identity.mdtrt_cert_type == "02":
            data["certno"] = identity.mdtrt_cert_no
        return self._query("1101", {"data": data}, sale=sale)

    def _identify_for(self, sale: str, identity: Identity, state: str = "identified") -> dict:
        """1101 for a sale, visit or stay: who it is, kept in its data (put in ``state``) and in the counter's
        person cache (for provisional settlement while the centre is away). Returns the updated data.
        A refusal ends the sale (Refused, state ``refused``): nobody to settle for, nothing owed."""
        info = self.person_info(identity, sale=sale)
        person, insu = info["baseinfo"], info["insuinfo"][0]
        _, data = self.journal.sale(sale)
        data = {**data, "psn_no": person["psn_no"], "psn_name": person["psn_name"],
                "insuplc_admdvs": insu["insuplc_admdvs"], "insutype": insu["insutype"]}
        keys = [f"02:{person['certno']}"] + ([f"03:{identity.mdtrt_cert_no}"] if identity.mdtrt_cert_type == "03"
                                              else [])
        with self.journal.transaction() as db:
            self.journal.put_sale(db, sale, state, data)
            self.journal.remember_person(db, keys, {"psn_no": person["psn_no"], "psn_name": person["psn_name"],
                                                    "insutype": insu["insutype"], "psn_type": insu["psn_type"],
                                                    "insuplc_admdvs": insu["insuplc_admdvs"]})
        return data

    # -- a sale ----------------------------------------------------------------------------------------

    def sell(self, identity: Identity | None, items: list[dict], *, acct_used: bool = True) -> Receipt:
        """Settle a pharmacy sale; ``identity`` None means the equipment failed before anyone was identified.
        ``items``: dicts with med_list_codg, pric, cnt (yuan and counts as strings)."""
        check_items(items, self.cached_catalogue_codes())
        bill_time = self.now().strftime("%Y-%m-%d %H:%M:%S")
        lines = [{"feedetl_sn": str(i + 1), "med_list_codg": it["med_list_codg"], "pric": str(it["pric"]),
                  "cnt": str(it["cnt"]), "fee_ocur_time": bill_time} for i, it in enumerate(items)]
        medfee = bill_total(lines)
        with self.journal.transaction() as db:
            sale = f"SALE{self.journal.next_seq(db):08d}"
            data = {"identity": dataclasses.asdict(identity) if identity else None, "lines": lines,
                    "bill_time": bill_time, "medfee": medfee, "acct_used": acct_used}
            self.journal.put_sale(db, sale, "new", data)
        crash_point("sale_recorded")
        if identity is None:
            return self._defer(sale, "equipment failure: the patient could not be identified")
        try:  # the sale stays "new": a crash before its settle is written makes it a voucher on resume
            data = self._identify_for(sale, identity, state="new")
        except CentreUnreachable:
            return self._centre_away(sale, identity)
        request = {"data": {"psn_no": data["psn_no"], "med_type": "41", "medfee_sumamt": medfee,
                            "insutype": data["insutype"], "acct_used_flag": "1" if acct_used else "0",
                            **self._cert_of(data)},
                   "feedetail": lines}
        try:
            # pre-settle: the clerk sees the split; a refusal (an unknown item) ends the sale
            self._query("2101", request, insuplc=data["insuplc_admdvs"], sale=sale)
        except CentreUnreachable:
            return self._centre_away(sale, identity)
        if identity.mdtrt_cert_type == "03" and self.reader is not None and not self.reader.card_present():
            with self.journal.transaction() as db:  # pulled before the settle was sent: nothing happened
                self.journal.put_sale(db, sale, "aborted", {**data, "reason": "card removed before settlement"})
            from ..readers import CardRemoved  # noqa: PLC0415

            raise CardRemoved("the card was taken out before the settlement: insert it and start the sale again",
                              reader=getattr(self.reader, "name", None))
        with self.journal.transaction() as db:
            msgid = self._new_message(db, "2102", request, insuplc=data["insuplc_admdvs"], sale=sale)
            self.journal.put_sale(db, sale, "settling", {**data, "msgid": msgid})
        crash_point("settle_written")
        try:
            answer = self._send(msgid)
        except CentreUnreachable:
            return self._abandon(sale, msgid)
        crash_point("settle_sent")
        return self._finish_settle(sale, msgid, answer)

    def _finish_settle(self, sale: str, msgid: str, answer: dict) -> Receipt:
        _, data = self.journal.sale(sale)
        with self.journal.transaction() as db:
            self.journal.record_answer(db, msgid, answer)
            if answer.get("infcode") == 0:
                self.journal.put_sale(db, sale, "settled", {**data, "setlinfo": answer["output"]["setlinfo"]})
            else:
                self.journal.put_sale(db, sale, "refused", {**data, "err_msg": answer.get("err_msg", "")})
        crash_point("settle_recorded")
        if answer.get("infcode") != 0:
            raise Refused(answer.get("err_msg", ""), sale=sale)
        return self._print_settled(sale)

    def _print_settled(self, sale: str) -> Receipt:
        _, data = self.journal.sale(sale)
        s = data["setlinfo"]
        receipt = Receipt("sale", sale, data.get("psn_name", ""), _yuan(s["medfee_sumamt"]), _yuan(s["fund_pay_sumamt"]),
                          _yuan(s["acct_pay"]), _yuan(s["psn_cash_pay"]), _yuan(s["balc"]), s["setl_id"])
        with self.journal.transaction() as db:
            self.journal.put_sale(db, sale, "done", {**data, "receipt": dataclasses.asdict(receipt)})
        return receipt

    # -- cash with deferred settlement -----------------------------------------------------------------

    def _defer(self, sale: str, reason: str, *, data: dict | None = None) -> Receipt:
        """The patient pays the whole bill in cash; a voucher keeps the bill, its date and who it was."""
        with self.journal.transaction() as db:
            receipt = self._record_voucher(db, sale, reason, data)
        crash_point("voucher_recorded")
        return receipt

    def _record_voucher(self, db, sale: str, reason: str, data: dict | None = None,
                        blocked_by: str | None = None) -> Receipt:
        data = data or self.journal.sale(sale)[1]
        voucher = f"V{self.code}{self.journal.next_seq(db):08d}"
        self.journal.put_voucher(db, voucher, sale, "pending", {
            "reason": reason, "lines": data["lines"], "bill_time": data["bill_time"], "medfee": data["medfee"],
            "identity": data.get("identity"), "psn_no": data.get("psn_no", ""), "psn_name": data.get("psn_name", ""),
            "insuplc_admdvs": data.get("insuplc_admdvs", ""), "insutype": data.get("insutype", ""),
            "kind": data.get("kind", "pharmacy"), "med_type": data.get("med_type", "41"),
            "diagnosis": data.get("diagnosis", "")}, blocked_by=blocked_by)
        self.journal.put_sale(db, sale, "deferred", {**data, "voucher": voucher, "reversal": blocked_by})
        return Receipt("deferred", sale, data.get("psn_name", ""), data["medfee"], cash=data["medfee"], voucher=voucher,
                       note=f"{reason}: paid in cash; bring this voucher back for the insured share")

    def _abandon(self, sale: str, msgid: str, oinfno: str = "2102") -> Receipt:
        """The settle got no answer and the patient cannot wait: in one step, journal a 2601 reversing it
        (sent now or on resume), stop resending the settle, and take cash against a voucher that waits for
        the reversal's answer, so a settle that did arrive is undone before the voucher can be settled."""
        _, data = self.journal.sale(sale)
        with self.journal.transaction() as db:
            reversal = self._new_message(db, "2601", {"data": {"psn_no": data["psn_no"], "omsgid": msgid,
                                                               "oinfno": oinfno}},
                                         insuplc=data.get("insuplc_admdvs", ""), sale=sale)
            db.execute("UPDATE outbox SET state = 'abandoned' WHERE msgid = ?", (msgid,))
            receipt = self._record_voucher(db, sale, "centre unreachable during settlement", data,
                                           blocked_by=reversal)
        crash_point("reversal_written")
        try:
            self._finish_reversal(reversal, self._send(reversal, deadline_s=0))
        except CentreUnreachable:
            pass  # resent by resume() until answered
        return receipt

    def _finish_reversal(self, msgid: str, answer: dict) -> None:
        with self.journal.transaction() as db:
            self.journal.record_answer(db, msgid, answer)
            if answer.get("infcode") == 0:
                db.execute("UPDATE vouchers SET blocked_by = NULL WHERE blocked_by = ?", (msgid,))

    def pending_vouchers(self) -> list[dict]:
        return self.journal.vouchers("pending", "settling")

    def settle_voucher(self, voucher: str, identity: Identity | None = None) -> Receipt:
        """Re-settle a voucher at this counter (自费转医保): refunds the insured share, or makes it a manual claim."""
        v = self.journal.voucher(voucher)
        if v is None:
            raise InvalidInput(f"no voucher {voucher!r}", field="voucher")
        if v["state"] == "settled":
            return Receipt(**v["receipt"])
        if v["state"] == "manual_claim":
            raise CounterError(f"voucher {voucher} is a manual claim now: {v.get('err_msg', '')}")
        if v["state"] == "settling" and v.get("resale"):  # a visit's voucher: its visit goes on where it stopped
            return self._continue_resale(voucher, v["resale"], identity)
        if v.get("kind") == "inpatient" and (v["state"] == "settling" or not v["blocked_by"]):
            return self._resettle_stay_voucher(v)
        if v["state"] == "settling":  # written before a crash or an outage: the same msgid again, never a new one
            return self._finish_voucher(voucher, v["msgid"], self._send(v["msgid"]))
        if v["blocked_by"]:
            reversal = self.journal.message(v["blocked_by"])
            self._finish_reversal(reversal["msgid"], self._send(reversal["msgid"]))
            if self.journal.voucher(voucher)["blocked_by"]:
                raise CounterError(f"the reversal {reversal['msgid']} of the abandoned settlement was refused")
        who = identity or (Identity(**v["identity"]) if v.get("identity") else None)
        if who is None:
            raise InvalidInput("identify the patient (card, QR e-voucher or ID number) to settle the voucher",
                               field="identity")
        if v.get("kind") == "outpatient":
            return self._resettle_visit_voucher(v, who)
        if v.get("kind") == "inpatient":
            return self._resettle_stay_voucher(self.journal.voucher(voucher))
        info = self.person_info(who)
        psn_no, insu = info["baseinfo"]["psn_no"], info["insuinfo"][0]
        request = {"data": {"psn_no": psn_no, "med_type": "41", "medfee_sumamt": v["medfee"],
                            "insutype": insu["insutype"], "acct_used_flag": "1", "deferred_voucher_no": voucher,
                            **self._cert_of({"identity": dataclasses.asdict(who)})},
                   "feedetail": v["lines"]}
        with self.journal.transaction() as db:
            msgid = self._new_message(db, "2102", request, insuplc=insu["insuplc_admdvs"], voucher=voucher)
            data = self.journal.voucher_fields(v)
            self.journal.put_voucher(db, voucher, v["sale"], "settling",
                                     {**data, "msgid": msgid, "psn_no": psn_no, "psn_name": info["baseinfo"]["psn_name"],
                                      "insuplc_admdvs": insu["insuplc_admdvs"], "insutype": insu["insutype"]})
        crash_point("voucher_settle_written")
        answer = self._send(msgid)
        crash_point("voucher_settle_sent")
        return self._finish_voucher(voucher, msgid, answer)

    def _finish_voucher(self, voucher: str, msgid: str, answer: dict) -> Receipt:
        v = self.journal.voucher(voucher)
        data = self.journal.voucher_fields(v)
        if answer.get("infcode") == 0:
            s = answer["output"]["setlinfo"]
            refund = Decimal(str(s["fund_pay_sumamt"])) + Decimal(str(s["acct_pay"]))
            receipt = Receipt("refund", v["sale"], v.get("psn_name", ""), _yuan(s["medfee_sumamt"]),
                              _yuan(s["fund_pay_sumamt"]), _yuan(s["acct_pay"]), _yuan(s["psn_cash_pay"]),
                              _yuan(s["balc"]), s["setl_id"], voucher, f"{refund:.2f}")
            state, data = "settled", {**data, "setlinfo": s, "receipt": dataclasses.asdict(receipt)}
        else:
            err = answer.get("err_msg", "")
            code = err.split(":", 1)[0]
            state = "manual_claim" if code in MANUAL_CLAIM_CODES else "pending"
            data = {**data, "err_msg": err}
            receipt = None
        with self.journal.transaction() as db:
            if msgid is not None:  # None: a visit's voucher, whose messages were recorded step by step
                self.journal.record_answer(db, msgid, answer)
            self.journal.put_voucher(db, voucher, v["sale"], state, data)
        if receipt is None:
            if state == "manual_claim":
                raise CounterError(f"voucher {voucher} could not be settled here ({err}): it is now a manual "
                                   "claim for the insured region's agency")
            raise Refused(err)
        return receipt

    # -- store-and-forward ------------------------------------------------------------------------------

    def _centre_away(self, sale: str, identity: Identity) -> Receipt:
        """The centre did not answer before the settle was sent: the institution's policy decides."""
        if self.failure_policy != "store_and_forward":
            return self._defer(sale, "centre unreachable")
        try:
            return self._provisional(sale, identity)
        except CannotSettleProvisionally as why:
            return self._defer(sale, f"centre unreachable; {why}")

    def _provisional(self, sale: str, identity: Identity) -> Receipt:
        _, data = self.journal.sale(sale)
        key = f"{identity.mdtrt_cert_type}:{identity.mdtrt_cert_no}"
        person = self.journal.known_person(key)
        if person is None:
            raise CannotSettleProvisionally("the counter does not know this person yet")
        if person["insuplc_admdvs"] != self.admdvs:
            raise CannotSettleProvisionally("the person is insured in another region")
        rules, catalogue = self.journal.get_meta("rules"), self.journal.get_meta("catalogue")
        if not (rules and catalogue):
            raise CannotSettleProvisionally("no cached rules: sign in while the centre is up")
        tier = json.loads(self.journal.get_meta("insinfo", "{}")).get("tier", "pharmacy")
        bill = {"bill_id": sale, "mdtrt_id": f"SAF{sale}", "med_type": data.get("med_type", "41"),
                "setl_time": data["bill_time"], "hosp_lv": tier,
                "feedetail": [{k: v for k, v in line.items() if k != "fee_ocur_time"} for line in data["lines"]]}
        split = provisional_split(json.loads(rules), json.loads(catalogue), person, bill)
        fund, cash = Decimal(str(split["fund_pay_sumamt"])), Decimal(str(split["psn_cash_pay"]))
        limits = json.loads(self.journal.get_meta("insinfo", "{}"))
        outstanding = self.journal.saf_entries("queued", "forwarding")
        today = data["bill_time"][:10]
        same_day = [e for e in outstanding if e["psn_no"] == person["psn_no"] and e["bill_time"][:10] == today]
        for name, used in (("floor_per_bill", Decimal(0)),
                           ("floor_per_person_day", sum(Decimal(e["provisional_fund"]) for e in same_day)),
                           ("floor_outstanding", sum(Decimal(e["provisional_fund"]) for e in outstanding))):
            if used + fund > Decimal(limits.get(name, "0")):
                raise CannotSettleProvisionally(f"over the floor limit {name} ({limits.get(name)})")
        data = {**data, **person, "identity": dataclasses.asdict(identity)}
        entry = {"psn_no": person["psn_no"], "psn_name": person["psn_name"], "insutype": person["insutype"],
                 "insuplc_admdvs": person["insuplc_admdvs"], "bill_time": data["bill_time"], "lines": data["lines"],
                 "medfee": data["medfee"], "identity": data["identity"], "provisional_fund": f"{fund:.2f}",
                 "cash_collected": f"{cash:.2f}", "created": self.now().isoformat(),
                 "kind": data.get("kind", "pharmacy"), "med_type": data.get("med_type", "41"),
                 "diagnosis": data.get("diagnosis", "")}
        with self.journal.transaction() as db:
            self.journal.put_sale(db, sale, "provisional", data)
            self.journal.put_saf(db, sale, "queued", entry)
        crash_point("saf_recorded")
        return Receipt("provisional", sale, person["psn_name"], data["medfee"], f"{fund:.2f}", "0.00", f"{cash:.2f}",
                       note="provisional settlement (centre unreachable): forwarded when the centre is back")

    def forward(self, *, max_attempts: int = 20, max_age: dt.timedelta = dt.timedelta(days=7)) -> list[dict]:
        """Forward queued provisional settlements in order; stop at the first that gets no answer.
        Returns what happened to each entry handled (forwarded with refund or institution share, flagged)."""
        results = []
        for entry in self.journal.saf_entries("queued", "forwarding"):
            data = self.journal.saf_fields(entry)
            age = self.now() - dt.datetime.fromisoformat(entry["created"])
            # Past the limits an entry is flagged for a clerk; a forward already written stays in the outbox
            # and is still resent (resume), since it may have arrived: its answer settles the flag.
            if entry["attempts"] >= max_attempts or age > max_age:
                with self.journal.transaction() as db:
                    self.journal.put_saf(db, entry["sale"], "flagged", {**data, "flag": "too old or too many tries"},
                                         attempts=entry["attempts"])
                results.append({"sale": entry["sale"], "state": "flagged", "why": "too old or too many tries"})
                continue
            if entry.get("kind") == "outpatient":  # a visit is forwarded as a visit, step by step
                try:
                    setlinfo = self._forward_visit(entry)
                except CentreUnreachable:
                    fresh = next(e for e in self.journal.saf_entries() if e["sale"] == entry["sale"])
                    with self.journal.transaction() as db:
                        rest = self.journal.saf_fields(fresh)
                        self.journal.put_saf(db, entry["sale"], "forwarding", rest, attempts=fresh["attempts"] + 1)
                    break
                except Refused as refused:
                    results.append(self._finish_forward(entry["sale"], None, {"infcode": -1,
                                                                               "err_msg": refused.err_msg}))
                    continue
                results.append(self._finish_forward(entry["sale"], None, {"infcode": 0,
                                                                           "output": {"setlinfo": setlinfo}}))
                continue
            msgid = entry["msgid"]
            if msgid is None:
                identity = entry["identity"]
                request = {"data": {"psn_no": entry["psn_no"], "mdtrt_cert_type": identity["mdtrt_cert_type"],
                                    "mdtrt_cert_no": identity["mdtrt_cert_no"], "med_type": "41",
                                    "medfee_sumamt": entry["medfee"], "insutype": entry["insutype"],
                                    "acct_used_flag": "0", "saf_cash_amt": entry["cash_collected"]},
                           "feedetail": entry["lines"]}
                with self.journal.transaction() as db:
                    msgid = self._new_message(db, "2102", request, insuplc=entry["insuplc_admdvs"], sale=entry["sale"])
                    self.journal.put_saf(db, entry["sale"], "forwarding", data, msgid=msgid,
                                         attempts=entry["attempts"])
                crash_point("forward_written")
            try:
                answer = self._send(msgid, deadline_s=0)
            except CentreUnreachable:
                with self.journal.transaction() as db:
                    self.journal.put_saf(db, entry["sale"], "forwarding", data, msgid=msgid,
                                         attempts=entry["attempts"] + 1)
                break  # in order: the next waits for this one
            crash_point("forward_sent")
            results.append(self._finish_forward(entry["sale"], msgid, answer))
        return results

    def forward_until_done(self, rounds: int = 10, base_delay: float = 0.1, max_delay: float = 5.0) -> list[dict]:
        """Forward with exponential back-off and jitter between rounds, at most ``rounds`` rounds."""
        results, delay = [], base_delay
        for _ in range(rounds):
            results += self.forward()
            if not self.journal.saf_entries("queued", "forwarding"):
                break
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, max_delay)
        return results

    def _finish_forward(self, sale: str, msgid: str, answer: dict) -> dict:
        entry = next(e for e in self.journal.saf_entries() if e["sale"] == sale)
        data = self.journal.saf_fields(entry)
        if answer.get("infcode") == 0:
            s = answer["output"]["setlinfo"]
            surplus = Decimal(entry["cash_collected"]) - Decimal(str(s["psn_cash_pay"]))
            outcome = {"sale": sale, "state": "forwarded", "setl_id": s["setl_id"],
                       "refund_to_patient": f"{max(surplus, Decimal(0)):.2f}",
                       "institution_bears": f"{Decimal(str(s['hosp_part_amt'])):.2f}"}
            state, data = "forwarded", {**data, "setlinfo": s, "outcome": outcome}
        else:  # refused outright: the institution bears the provisional fund share; a clerk looks at it
            outcome = {"sale": sale, "state": "flagged", "why": answer.get("err_msg", ""),
                       "institution_bears": entry["provisional_fund"]}
            state, data = "flagged", {**data, "flag": answer.get("err_msg", ""), "outcome": outcome}
        with self.journal.transaction() as db:
            if msgid is not None:  # None: a visit, whose steps recorded their own answers
                self.journal.record_answer(db, msgid, answer)
            self.journal.put_saf(db, sale, state, data, msgid=msgid, attempts=entry["attempts"])
        return outcome

    # -- cancel ----------------------------------------------------------------------------------------

    def cancel(self, sale: str) -> Receipt:
        """Cancel a settled sale (2103); a lost answer is resolved by resending the same request."""
        found = self.journal.sale(sale)
        if found is None:
            raise InvalidInput(f"no sale {sale!r} at this counter (sell prints the sale's id)", field="sale")
        state, data = found
        if state not in ("done", "settled", "cancelling"):
            why = f"refused by the centre ({data.get('err_msg', '')})" if state == "refused" else state
            raise InvalidInput(f"sale {sale} is not settled ({why}): there is nothing to cancel", field="sale")
        if state == "cancelling":
            msgid = data["cancel_msgid"]
        else:
            with self.journal.transaction() as db:
                infno = "2208" if data.get("kind") == "outpatient" else "2103"
                msgid = self._new_message(db, infno, {"data": {"setl_id": data["setlinfo"]["setl_id"],
                                                               "psn_no": data["psn_no"],
                                                               "mdtrt_id": data["setlinfo"]["mdtrt_id"]}},
                                          insuplc=data.get("insuplc_admdvs", ""), sale=sale)
                self.journal.put_sale(db, sale, "cancelling", {**data, "cancel_msgid": msgid})
        answer = self._send(msgid)
        with self.journal.transaction() as db:
            self.journal.record_answer(db, msgid, answer)
            if answer.get("infcode") == 0:
                self.journal.put_sale(db, sale, "cancelled", {**data, "mirror": answer["output"]["setlinfo"]})
        if answer.get("infcode") != 0:
            raise Refused(answer.get("err_msg", ""))
        m = answer["output"]["setlinfo"]
        return Receipt("cancel", sale, data.get("psn_name", ""), _yuan(m["medfee_sumamt"]), _yuan(m["fund_pay_sumamt"]),
                       _yuan(m["acct_pay"]), _yuan(m["psn_cash_pay"]), _yuan(m["balc"]), m["setl_id"])

    def _is_forward(self, sale: str) -> bool:
        return any(e["sale"] == sale for e in self.journal.saf_entries())

    # -- after a restart -------------------------------------------------------------------------------

    def resume(self, deadline_s: float = 0.0) -> dict:
        """Finish what a crash or an outage left: resend every unanswered message unchanged, record the
        answers, print receipts not printed, turn sales interrupted before their settle into vouchers
        (but a sale the centre refused stays refused: nothing is owed for it)."""
        done = {"answered": 0, "still_unanswered": 0, "vouchers_made": 0, "receipts": 0}
        for message in self.journal.unanswered():
            try:
                answer = self._send(message["msgid"], deadline_s=deadline_s)
            except CentreUnreachable:
                done["still_unanswered"] += 1
                continue
            done["answered"] += 1
            infno = message["infno"]
            try:
                if infno == "9001":
                    self._finish_sign_in(message["msgid"], answer)
                elif infno == "2601":
                    self._finish_reversal(message["msgid"], answer)
                elif infno == "2102" and message["voucher"]:
                    self._finish_voucher(message["voucher"], message["msgid"], answer)
                elif infno == "2102" and message["sale"] and self._is_forward(message["sale"]):
                    self._finish_forward(message["sale"], message["msgid"], answer)
                elif infno == "2102" and message["sale"]:
                    self._finish_settle(message["sale"], message["msgid"], answer)
                elif infno in ("2103", "2208"):
                    self.cancel(message["sale"])
                else:
                    with self.journal.transaction() as db:
                        self.journal.record_answer(db, message["msgid"], answer)
            except (Refused, CounterError):
                pass  # recorded; the clerk sees it in the sale or voucher
        for sale, state, data in self.journal.sales("new", "identified", "visit 2201", "visit 2203", "visit 2204",
                                                    "visit 2207"):
            if data.get("kind") == "inpatient":
                continue  # a stay goes on by the clerk's next step; its unanswered steps were resent above
            try:
                if data.get("forward_of"):
                    continue  # a provisional visit's forward: forward() below takes it on
                if data.get("voucher"):  # the new visit of a voucher's re-settlement
                    self._continue_resale(data["voucher"], sale)
                elif state == "new" and (err_msg := self._refusal_of(sale)) is not None:
                    with self.journal.transaction() as db:  # refused, then stopped: a refusal, not a voucher
                        self._put_refused(db, sale, err_msg)
                elif state == "new":
                    self._defer(sale, "the terminal stopped during the sale")
                    done["vouchers_made"] += 1
                else:  # a visit the patient is waiting for: on with it from where it stopped
                    self.advance_visit(sale)
            except (Refused, CounterError, CentreUnreachable):
                pass  # recorded; the clerk sees it
        for sale, _state, _data in self.journal.sales("settled"):
            self._print_settled(sale)
            done["receipts"] += 1
        if self.journal.saf_entries("queued", "forwarding"):
            done["forwarded"] = sum(1 for r in self.forward() if r["state"] == "forwarded")
        return done

    # -- end of day ------------------------------------------------------------------------------------

    def reconcile(self, day: dt.date | None = None, *, detail: bool = False) -> dict:
        """3201 per scheme, clearing type and insured region for ``day``; 3202 where the totals differ
        (or always, with ``detail``), listing the one-sided settlements."""
        day = day or self.now().date()
        records = self._settlements_on(day)
        groups: dict[tuple, list[dict]] = {}
        for r in records:
            groups.setdefault((r["insutype"], r["clr_type"], r["insuplc_admdvs"]), []).append(r)
        results, one_sided = [], []
        for (insutype, clr_type, region), rows in sorted(groups.items()):
            def total(name: str, rows=rows) -> str:
                return f"{sum(Decimal(str(r[name])) for r in rows):.2f}"

            out = self._query("3201", {"data": {
                "insutype": insutype, "clr_type": clr_type, "setl_optins": region, "stmt_begndate": day.isoformat(),
                "stmt_enddate": day.isoformat(), "medfee_sumamt": total("medfee_sumamt"),
                "fund_pay_sumamt": total("fund_pay_sumamt"), "acct_pay": total("acct_pay"),
                "fixmedins_setl_cnt": sum(-1 if r["mirror"] else 1 for r in rows)}})
            results.append({"insutype": insutype, "clr_type": clr_type, "setl_optins": region,
                            "stmt_rslt": out["stmtinfo"]["stmt_rslt"]})
        if detail or not groups or any(r["stmt_rslt"] != "0" for r in results):
            detail = self._query("3202", {"data": {"stmt_begndate": day.isoformat(), "stmt_enddate": day.isoformat()},
                                          "detail": [{"setl_id": r["setl_id"]} for r in records]})
            one_sided = [row for row in detail["detail"] if row["stmt_rslt"] != "both"]
        return {"day": day.isoformat(), "groups": results, "one_sided": one_sided,
                "clean": not one_sided and all(r["stmt_rslt"] == "0" for r in results)}

    def _settlements_on(self, day: dt.date) -> list[dict]:
        """Every settlement and mirror this counter holds with a setl_time on ``day``."""
        rows = []

        def add(setlinfo: dict, region: str, mirror: bool, kind: str = "pharmacy") -> None:
            if local_date(setlinfo["setl_time"]) == day:
                rows.append({**setlinfo, "insuplc_admdvs": region, "mirror": mirror,
                             "clr_type": {"pharmacy": "41", "outpatient": "11", "inpatient": "21"}[kind]})

        for _sale, _state, data in self.journal.sales():
            if data.get("kind") != "inpatient":
                continue
            for setlinfo in self.stay_settlements(data):
                add(setlinfo, data["insuplc_admdvs"], False, "inpatient")
            for setlinfo in self.stay_mirrors(data):
                add(setlinfo, data["insuplc_admdvs"], True, "inpatient")
        for _sale, state, data in self.journal.sales("done", "settled", "cancelled", "cancelling"):
            if data.get("voucher") or data.get("forward_of"):
                continue  # a voucher's re-settlement or a forward: counted with its voucher or entry below
            add(data["setlinfo"], data["insuplc_admdvs"], False, data.get("kind", "pharmacy"))
            if state == "cancelled":
                add(data["mirror"], data["insuplc_admdvs"], True, data.get("kind", "pharmacy"))
        for v in self.journal.vouchers("settled"):
            if v.get("kind") != "inpatient":  # a stay's voucher is settled by a step of the stay, counted above
                add(v["setlinfo"], v["insuplc_admdvs"], False, v.get("kind", "pharmacy"))
        for e in self.journal.saf_entries("forwarded"):
            add(e["setlinfo"], e["insuplc_admdvs"], False, e.get("kind", "pharmacy"))
        for _sale, _state, data in self.journal.sales():  # abandoned settles, whatever the sale did next
            reversal = self.journal.message(data["reversal"]) if data.get("reversal") else None
            result = ((reversal or {}).get("answer") or {}).get("output", {}).get("data", {})
            if result.get("reversed_setl_id"):  # a settle that arrived and was undone: both sides hold both
                zero = {"setl_time": data["bill_time"], "medfee_sumamt": 0, "fund_pay_sumamt": 0, "acct_pay": 0,
                        "insutype": data["insutype"]}
                kind = data.get("kind", "pharmacy")
                add({**zero, "setl_id": result["reversed_setl_id"]}, data["insuplc_admdvs"], False, kind)
                add({**zero, "setl_id": result["setl_id"]}, data["insuplc_admdvs"], True, kind)
        return rows


__all__ = ["Counter", "CounterError", "Identity", "Receipt", "Refused", "bill_total"]
