"""Settling and cancelling, for every flow that settles (pharmacy, outpatient, inpatient) and for 2601.

Owns which institution each settlement and cancel mirror belongs to (reconciliation reads it), journals
settlements and cancels with their answers, and replays them. The deferred-settlement window and the
routing by insured region are checked here too, as every settling flow checks them alike.

The answer of a settlement (2101-2103, 2206-2208, 2303-2305) is the platform's: ``setlinfo`` with its 41
keys and ``setldetail`` rows with their six (docs/messages.md 'The settlement answer'). The amounts come
from the settlement's record; who the person is from the registry; the clearing keys from the policy;
what each fund may still pay this year from the person's accumulators just after the settlement. So a
replay, which settles again in journal order, rebuilds every answer as it was first given: nothing of it
is journaled twice, except the certificate type the request named (new entries keep it; older ones
answer null). ``Settler.setlinfo()`` and ``medsettle settle`` keep the amounts only: they have no registry.

Nor is the answer stored in memory: a resend, a 2601 or a voucher's repeat gets it made again from the
record, with what each fund could still pay just after it, kept packed per settlement (three numbers),
since the accumulators have moved on since (the answer store's remaker, medsettle.centre.answers).
"""

from __future__ import annotations

import datetime as dt
import struct
from concurrent.futures import Future
from typing import Any

from ..engine.columns import COL
from ..engine.results import Settlement
from ..errors import InvalidInput, SettlementRefused
from ..jsontext import fen_number
from ..ledger.journal import Entry
from ..policy import codes
from ..timeutil import local_date
from .answers import AnswerStore
from .core import Ledger
from .encounters import Encounters
from .institutions import Institution
from .messages import Cancel, Envelope
from .registry import Registry

SETTLE, CANCEL = "settle", "cancel"

# setlinfo's 41 keys in the platform's order (DOMAIN: what real adapters read back).
SETLINFO_KEYS = (
    "setl_id",
    "mdtrt_id",
    "psn_no",
    "psn_name",
    "psn_cert_type",
    "certno",
    "gend",
    "naty",
    "brdy",
    "age",
    "insutype",
    "psn_type",
    "cvlserv_flag",
    "setl_time",
    "mdtrt_cert_type",
    "med_type",
    "medfee_sumamt",
    "fulamt_ownpay_amt",
    "overlmt_selfpay",
    "preselfpay_amt",
    "inscp_scp_amt",
    "act_pay_dedc",
    "hifp_pay",
    "pool_prop_selfpay",
    "cvlserv_pay",
    "hifes_pay",
    "hifmi_pay",
    "hifob_pay",
    "maf_pay",
    "oth_pay",
    "fund_pay_sumamt",
    "psn_part_amt",
    "acct_pay",
    "psn_cash_pay",
    "hosp_part_amt",
    "balc",
    "acct_mulaid_pay",
    "medins_setl_id",
    "clr_optins",
    "clr_way",
    "clr_type",
)
# The clearing type (clr_type) of a med type, as 3201 groups settlements (reconciliation.CLR_TYPE).
CLR_TYPE = {"11": "11", "13": "11", "14": "11", "21": "21", "41": "41"}
# The platform's fund names (fund_pay_type_name) of the funds medsettle pays from.
FUND_NAMES = {
    codes.FUND_EMPLOYEE_POOLED: "职工基本医疗保险统筹基金",
    codes.FUND_EMPLOYEE_ACCOUNT: "职工基本医疗保险个人账户基金",
    codes.FUND_LARGE_AMOUNT: "职工大额医疗费用补助基金",
    codes.FUND_RESIDENT_BASIC: "城乡居民基本医疗保险基金",
    codes.FUND_RESIDENT_CRITICAL: "城乡居民大病医疗保险资金",
    codes.FUND_ASSISTANCE: "医疗救助基金",
    codes.FUND_INSTITUTION: "医疗机构负担",
}
PSN_CERT_TYPE = "01"  # 居民身份证: the registry knows every person by their 18-digit ID number
CVLSERV_FLAG = "0"  # medsettle has no civil-servant supplement (cvlserv_pay is always 0), as 1101 says
_ZERO = fen_number(0)  # hifes_pay, oth_pay, acct_mulaid_pay: funds medsettle's engines do not have
_CAPPED_FUNDS = tuple((name, COL[name]) for name in ("hifp_pay", "hifob_pay", "hifmi_pay", "maf_pay"))
# What the pooled fund, the second tier (-1: the scheme has none) and medical assistance could still pay the
# person just after a settlement, packed: kept per settlement to make its answer again (b"": no rules in force).
_ROOMS = struct.Struct("<qqq")


def settlement_output(result: Settlement) -> dict:
    """setlinfo, setldetail and the per-line split with the amounts only (Settler.setlinfo()'s keys): what
    the centre answers without a registry. The amounts are pre-written JSON numbers (jsontext.fen_number):
    an answer is only ever written out."""
    return result.to_json(fen_number)


def age_on(brdy: dt.date, day: dt.date) -> int:
    """Age in whole years on ``day`` (a birthday not yet reached this year does not count)."""
    return day.year - brdy.year - ((day.month, day.day) < (brdy.month, brdy.day))


def certificate_type(env: Envelope) -> str | None:
    """The mdtrt_cert_type a settlement request names (input.data), or None when it names none."""
    data = env.input.get("data")
    value = data.get("mdtrt_cert_type") if isinstance(data, dict) else None
    return None if value is None or value == "" else str(value)


class Settlements:
    """setl_id (settlements and mirrors) -> fixmedins_code, and the settling and cancelling of bills."""

    def __init__(
        self, ledger: Ledger, answers: AnswerStore, encounters: Encounters, registry: Registry | None = None
    ) -> None:
        """``registry``: who the persons are (setlinfo's psn_name, certno, ...); without one those keys are null."""
        self._ledger = ledger
        self._answers = answers
        self._encounters = encounters
        self._registry = registry
        self._setl_institution: dict[str, str] = {}
        self._cert_types: dict[str, str] = {}  # setl_id -> the mdtrt_cert_type its request named (its cancel's too)
        self._vouchers: dict[tuple[str, str], str] = {}  # (fixmedins_code, deferred_voucher_no) -> setl_id
        self._rooms_after: dict[str, bytes] = {}  # setl_id -> _ROOMS just after it (its answer's crt_payb_lmt_amt)
        ledger.owns(SETTLE, self._replay_settle)
        ledger.owns(CANCEL, self._replay_cancel)
        answers.remade_by(SETTLE, self._answer_again)
        answers.remade_by(CANCEL, self._answer_again)

    def handlers(self) -> dict:
        return {"2103": self.cancel, "2208": self.cancel, "2305": self.cancel}

    def institution_of(self, setl_id: str) -> str | None:
        """The fixmedins_code of a settlement or cancel mirror (None if unknown)."""
        return self._setl_institution.get(setl_id)

    # -- settling -------------------------------------------------------------------------------

    def presettle(self, bill: dict, env: Envelope | None = None) -> dict:
        """A pre-settlement's answer (2101/2206/2303): nothing changes. ``env``: the request (its
        mdtrt_cert_type is answered)."""
        with self._ledger.lock:
            return self.answer(self._ledger.settler.presettle(bill), certificate_type(env) if env else None)

    def settle(
        self, env: Envelope, institution: Institution, bill: dict, extra: dict, *, voucher: str | None = None
    ) -> dict:
        """Settle a bill and journal it with its answer (``extra``: the visit's lines it settles).

        ``voucher``: the deferred_voucher_no a re-settlement names. An institution's voucher is settled once:
        a second attempt under another msgid (two counter processes re-settling one voucher) settles nothing
        and is answered with the first settlement's answer, until that settlement is cancelled."""
        ledger = self._ledger
        with ledger.lock:
            ledger.refuse_if_failed()
            if voucher is not None:
                first = self._voucher_answer(institution.fixmedins_code, voucher)
                if first is not None:
                    return first
                extra = {**extra, "deferred_voucher_no": voucher}
            result = ledger.settler.settle(bill, when=ledger.clock.now().replace(tzinfo=None, microsecond=0))
            if voucher is not None:
                self._vouchers[(institution.fixmedins_code, voucher)] = result.setl_id
            self._setl_institution[result.setl_id] = institution.fixmedins_code
            cert_type = certificate_type(env)
            if cert_type is not None:
                self._cert_types[result.setl_id] = cert_type
            output = self._answer_kept(result, cert_type)
            if "mdtrt_id" in extra:
                self._encounters.mark_settled(extra["mdtrt_id"], extra["feedetl_sns"], result.setl_id)
            future = ledger.append(
                SETTLE,
                institution.admdvs,
                result.setl_id,
                {
                    "setl_id": result.setl_id,
                    "bill": bill,
                    "setl_time": result.setl_time.isoformat(),
                    "adm": result.adm,
                    "row": result.row.tolist(),
                    "msgid": env.msgid,
                    "hash": env.request_hash(),
                    "fixmedins_code": institution.fixmedins_code,
                    "mdtrt_cert_type": cert_type,
                    **extra,
                },
            )
        ledger.wait(future)
        return output

    def _voucher_answer(self, code: str, voucher: str) -> dict | None:
        """The answer of institution ``code``'s settlement of ``voucher`` if it stands (under the lock): its
        stored answer, or, while that is not yet durable, the same answer made again from its record."""
        setl_id = self._vouchers.get((code, voucher))
        record = self._ledger.settler.records.get(setl_id or "")
        if setl_id is None or record is None or record.cancelled_by is not None:
            return None
        return self._answer_again(setl_id)

    def cancel(self, env: Envelope, institution: Institution, payload: Cancel) -> dict:
        """2103/2208/2305: cancel a settlement by a mirror with negative amounts. An institution cancels only
        its own settlements: another's is answered as if it did not exist (nothing tells it exists)."""
        original = self._ledger.settler.records.get(payload.data.setl_id)
        if (
            original is None
            or original.psn_no != payload.data.psn_no
            or self._setl_institution.get(payload.data.setl_id) != institution.fixmedins_code
        ):
            raise InvalidInput(
                f"no settlement {payload.data.setl_id} of person {payload.data.psn_no}", field="input.data.setl_id"
            )
        with self._ledger.lock:
            self._ledger.refuse_if_failed()
            mirror, future = self.cancel_locked(
                institution, payload.data.setl_id, {"msgid": env.msgid, "hash": env.request_hash()}
            )
            output = self._answer_kept(mirror, self._cert_types.get(mirror.setl_id))
        self._ledger.wait(future)
        return output

    def cancel_locked(
        self, institution: Institution, setl_id: str, answer: dict[str, str]
    ) -> tuple[Settlement, Future]:
        """Cancel ``setl_id`` and queue its journal entry (the caller holds the lock); ``answer``: the
        msgid and hash of the request it answers, if any (a 2601 journals its own answer)."""
        # The mirror's setl_time is the centre's clock, to the microsecond, as the journal has always kept it.
        mirror = self._ledger.settler.cancel(setl_id, when=self._ledger.clock.now().replace(tzinfo=None))
        self._setl_institution[mirror.setl_id] = institution.fixmedins_code
        cert_type = self._cert_types.get(setl_id)  # a mirror answers with its original's certificate type
        if cert_type is not None:
            self._cert_types[mirror.setl_id] = cert_type
        self._encounters.mark_cancelled(setl_id)
        future = self._ledger.append(
            CANCEL,
            institution.admdvs,
            mirror.setl_id,
            {
                "setl_id": mirror.setl_id,
                "original": setl_id,
                "setl_time": mirror.setl_time.isoformat(),
                "row": mirror.row.tolist(),
                **answer,
                "fixmedins_code": institution.fixmedins_code,
                "mdtrt_cert_type": cert_type,
            },
        )
        return mirror, future

    # -- the answer -----------------------------------------------------------------------------

    def answer(self, record: Settlement, cert_type: str | None, rooms: bytes | None = None) -> dict:
        """The platform's answer of a settlement, a pre-settlement or a cancel mirror (under the lock): setlinfo's
        41 keys, setldetail's rows, the line split. ``rooms``: what the capped funds could still pay just after
        it (:data:`_ROOMS`), as kept; by default the person's accumulators now say it (just after the settler
        made ``record``)."""
        settler = self._ledger.settler
        values = record.row.tolist()
        amounts = record.setlinfo(values, fen_number)
        population = settler.population
        insured = population.region_of(population.index_of(record.psn_no))
        ident = self._registry.identities.get(record.psn_no) if self._registry is not None else None
        extra: dict[str, object] = {
            "psn_name": ident.psn_name if ident else None,
            "psn_cert_type": PSN_CERT_TYPE if ident else None,
            "certno": ident.certno if ident else None,
            "gend": ident.gend if ident else None,
            "naty": ident.naty if ident else None,
            "brdy": ident.brdy.isoformat() if ident else None,
            "age": age_on(ident.brdy, record.setl_time.date()) if ident else None,
            "cvlserv_flag": CVLSERV_FLAG,
            "mdtrt_cert_type": cert_type,
            "med_type": record.med_type,
            "hifes_pay": _ZERO,
            "oth_pay": _ZERO,
            "acct_mulaid_pay": _ZERO,
            "clr_optins": insured,
            "clr_way": settler.policy.region(insured).clr_way,
            "clr_type": CLR_TYPE[record.med_type],
        }
        room_of = _rooms_of(self._rooms_now(record, values, insured) if rooms is None else rooms, values)
        detail = []
        for row in record.setldetail(values, fen_number):  # the funds that paid, in the platform's order
            code = str(row["fund_pay_type"])
            room = room_of.get(code)
            detail.append(
                {
                    "fund_pay_type": code,
                    "fund_pay_type_name": FUND_NAMES[code],
                    "inscp_scp_amt": amounts["inscp_scp_amt"],
                    "crt_payb_lmt_amt": None if room is None else fen_number(room),
                    "fund_payamt": row["fund_payamt"],
                    "setl_proc_info": None,
                }
            )
        out: dict[str, object] = {
            "setlinfo": {key: extra[key] if key in extra else amounts[key] for key in SETLINFO_KEYS},
            "setldetail": detail,
        }
        if record.lines is not None:
            out["feedetail"] = record.line_split(fen_number)
        return out

    def _answer_kept(self, record: Settlement, cert_type: str | None) -> dict:
        """:meth:`answer` of a settlement or mirror just made, keeping what it needs to be made again."""
        values = record.row.tolist()
        population = self._ledger.settler.population
        rooms = self._rooms_after[record.setl_id] = self._rooms_now(
            record, values, population.region_of(population.index_of(record.psn_no))
        )
        return self.answer(record, cert_type, rooms)

    def _answer_again(self, setl_id: str) -> dict:
        """The answer a settlement or mirror was given, made again from its record (under the lock)."""
        record = self._ledger.settler.records[setl_id]
        return self.answer(record, self._cert_types.get(setl_id), self._rooms_after[setl_id])

    def _rooms_now(self, record: Settlement, values: list[int], insured: str) -> bytes:
        """What each capped fund may still pay the person in the settlement's year once it is made
        (crt_payb_lmt_amt), as :data:`_ROOMS`: the ceiling of the rules in force (the insured region's, on the
        settlement's date, or on the last day of the year a later settlement counts in) less what the fund has
        paid this year, this settlement included."""
        settler = self._ledger.settler
        region = settler.policy.region(insured)
        year = values[COL["year"]]
        day = record.setl_time.date()
        rules = region.ruleset_on(day if day.year == year else dt.date(year, 12, 31))
        if rules is None:
            return b""
        state = settler.person_state(record.psn_no)
        counted = state.acc_year == year  # before the person's first settlement of the year, nothing is paid
        # a pre-settlement moved nothing: count what it would pay
        this = {name: values[col] if record.presettle else 0 for name, col in _CAPPED_FUNDS}
        group = values[COL["group"]]
        pooled = rules.benefit(region.groups[group].name, record.insutype, record.psn_type).ceiling
        pooled_room = pooled - (state.pooled_paid[group] if counted else 0) - this["hifp_pay"]
        tier2 = rules.second_tier_for(record.insutype)
        t2_room = -1
        if tier2 is not None:
            t2_paid = (state.t2_paid if counted else 0) + this["hifob_pay"] + this["hifmi_pay"]
            t2_room = max(0, tier2.annual_cap - t2_paid)
        maf_room = rules.assistance.annual_cap - (state.maf_paid if counted else 0) - this["maf_pay"]
        return _ROOMS.pack(max(0, pooled_room), t2_room, max(0, maf_room))

    # -- checks every settling flow makes -------------------------------------------------------

    def check_routing(self, env: Envelope, psn_no: str) -> None:
        """A settlement message is routed by insuplc_admdvs: when sent, it must be the person's insured region."""
        if not env.insuplc_admdvs:
            return
        population = self._ledger.settler.population
        insured = population.region_of(population.index_of(psn_no, "input.data.psn_no"))
        if insured != env.insuplc_admdvs:
            raise InvalidInput(
                f"person {psn_no} is insured in {insured}, not {env.insuplc_admdvs}", field="insuplc_admdvs"
            )

    def check_deferred_window(self, institution: Institution, setl_time: str, med_type: str) -> None:
        """A deferred settlement (自费转医保) must come within the treatment region's window (docs/failures.md):
        until 23:59:59 of the Nth calendar day after the bill's date; later it is a manual claim."""
        try:
            bill_date = local_date(setl_time)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="input.feedetail[0].fee_ocur_time") from None
        region = self._ledger.settler.policy.region(institution.admdvs)
        rules = region.ruleset_on(bill_date) or region.rulesets[0]
        days = rules.deferred_window.inpatient_days if med_type == "21" else rules.deferred_window.outpatient_days
        last_day = bill_date + dt.timedelta(days=days)
        if self._ledger.clock.now().date() > last_day:
            raise SettlementRefused(
                "WINDOW_EXPIRED",
                f"the bill of {bill_date} could be settled until {last_day}; "
                "it is now a manual claim at the insured region's agency",
            )

    # -- replay ---------------------------------------------------------------------------------

    def _replay_settle(self, entry: Entry) -> None:
        body = entry.body
        self._setl_institution[body["setl_id"]] = body["fixmedins_code"]
        if body.get("mdtrt_cert_type") is not None:
            self._cert_types[body["setl_id"]] = body["mdtrt_cert_type"]
        if "feedetl_sns" in body:
            self._encounters.mark_settled(body["mdtrt_id"], body["feedetl_sns"], body["setl_id"])
        if "deferred_voucher_no" in body:
            self._vouchers[(body["fixmedins_code"], body["deferred_voucher_no"])] = body["setl_id"]
        self._remember_answer(body)

    def _replay_cancel(self, entry: Entry) -> None:
        body = entry.body
        self._setl_institution[body["setl_id"]] = body["fixmedins_code"]
        if body.get("mdtrt_cert_type") is not None:
            self._cert_types[body["setl_id"]] = body["mdtrt_cert_type"]
        self._encounters.mark_cancelled(body["original"])
        self._remember_answer(body)

    def _remember_answer(self, body: dict[str, Any]) -> None:
        """A settlement's answer is a function of its record (and of the registry, the policy and the
        accumulators just after it, which the replay has rebuilt up to this entry), so it is not journaled
        twice: what the accumulators say now is kept, to make it again. An entry older than the certificate
        type answers it null. (A 2601's mirror answers no request of its own: nothing is kept.)"""
        if "msgid" not in body:
            return
        record = self._ledger.settler.records[body["setl_id"]]
        population = self._ledger.settler.population
        insured = population.region_of(population.index_of(record.psn_no))
        self._rooms_after[record.setl_id] = self._rooms_now(record, record.row.tolist(), insured)


def _rooms_of(rooms: bytes, values: list[int]) -> dict[str, int | None]:
    """crt_payb_lmt_amt of each fund (by fund_pay_type) from kept :data:`_ROOMS`: the account's room is its
    balance after; the institution's share has no ceiling (None)."""
    if not rooms:
        return {}
    pooled_room, t2_room, maf_room = _ROOMS.unpack(rooms)
    t2 = None if t2_room < 0 else t2_room
    return {
        codes.FUND_EMPLOYEE_POOLED: pooled_room,
        codes.FUND_RESIDENT_BASIC: pooled_room,
        codes.FUND_LARGE_AMOUNT: t2,
        codes.FUND_RESIDENT_CRITICAL: t2,
        codes.FUND_ASSISTANCE: maf_room,
        codes.FUND_EMPLOYEE_ACCOUNT: values[COL["balc"]],
        codes.FUND_INSTITUTION: None,
    }
