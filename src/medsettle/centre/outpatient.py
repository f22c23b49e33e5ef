"""The outpatient flow (docs/messages.md): 2201/2202 registration, 2203 visit, 2204/2205 fees, 2206/2207 settle.

Owns the encounters' journal entries (registrations, visits, fee lines, discharges: every change is an
entry applied through :class:`Encounters`, so a replay rebuilds them) and offers the inpatient flow what
both share: finding an encounter, making its bill, journaling an event, numbering a new mdtrt_id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidInput
from ..ledger.journal import Entry
from ..timeutil import local_date
from .answers import answer_fields
from .cards import Cards
from .core import Ledger, journal_key
from .encounters import (
    ALL_LINES,
    EVENT_KINDS,
    FEES,
    FEES_CANCEL,
    REGISTER,
    REGISTER_CANCEL,
    VISIT,
    Encounter,
    Encounters,
)
from .fee_rows import result_rows
from .institutions import Institution
from .messages import (
    Envelope,
    FeeCancel,
    FeeUpload,
    OutpatientSettle,
    Register,
    RegisterCancel,
    Visit,
)
from .settlements import Settlements


class OutpatientFlow:
    def __init__(
        self, ledger: Ledger, settlements: Settlements, cards: Cards, encounters: Encounters, *, id_prefix: str
    ) -> None:
        self._ledger = ledger
        self._settlements = settlements
        self._cards = cards
        self._encounters = encounters
        self._id_prefix = id_prefix  # mdtrt_ids apart when several processes share one database
        for kind in EVENT_KINDS:
            ledger.owns(kind, self._replay_event)

    def handlers(self) -> dict:
        return {
            "2201": self._register,
            "2202": self._register_cancel,
            "2203": self._visit,
            "2204": self.fees,
            "2205": self.fees_cancel,
            "2206": self._outpatient_presettle,
            "2207": self._outpatient_settle,
        }

    def _register(self, env: Envelope, institution: Institution, payload: Register) -> dict:
        if institution.tier == "pharmacy":
            raise InvalidInput("a pharmacy does not register visits (use 2101/2102)", field="infno")
        self._ledger.settler.population.index_of(payload.data.psn_no, "input.data.psn_no")
        self._cards.present(env, institution, payload.data, payload.data.psn_no, activate=True)

        def body() -> dict[str, Any]:
            mdtrt_id = self.new_mdtrt_id("MD", institution)
            return {
                "mdtrt_id": mdtrt_id,
                "psn_no": payload.data.psn_no,
                "fixmedins_code": institution.fixmedins_code,
                "begntime": payload.data.begntime,
            }

        done = self.event(
            REGISTER,
            institution,
            env,
            body,
            lambda b: {
                "data": {
                    "mdtrt_id": b["mdtrt_id"],
                    "psn_no": b["psn_no"],
                    "ipt_otp_no": payload.data.ipt_otp_no,
                    "exp_content": None,  # the platform's extension field: nothing extra to say
                }
            },
        )
        return done

    def _register_cancel(self, env: Envelope, institution: Institution, payload: RegisterCancel) -> dict:
        enc = self.encounter(payload.data.mdtrt_id, payload.data.psn_no, institution, "input.data")
        if enc.inpatient:
            raise InvalidInput(f"{enc.mdtrt_id} is an admission: cancel it with 2404", field="input.data.mdtrt_id")
        if enc.settled:
            raise InvalidInput(
                "the visit has settled fees: cancel the settlement first (2208)", field="input.data.mdtrt_id"
            )
        return self.event(REGISTER_CANCEL, institution, env, lambda: {"mdtrt_id": enc.mdtrt_id}, lambda b: {})

    def _visit(self, env: Envelope, institution: Institution, payload: Visit) -> dict:
        info = payload.mdtrtinfo
        enc = self.encounter(info.mdtrt_id, info.psn_no, institution, "input.mdtrtinfo")
        if enc.inpatient:
            raise InvalidInput(f"{enc.mdtrt_id} is an admission", field="input.mdtrtinfo.mdtrt_id")
        if info.med_type not in institution.med_types:
            raise InvalidInput(
                f"institution {institution.fixmedins_code} may not settle med_type {info.med_type}",
                field="input.mdtrtinfo.med_type",
            )
        return self.event(
            VISIT, institution, env, lambda: {"mdtrt_id": enc.mdtrt_id, "med_type": info.med_type}, lambda b: {}
        )

    def fees(self, env: Envelope, institution: Institution, payload: FeeUpload) -> dict:
        """2204 for a visit, 2301 for an admission."""
        first = payload.feedetail[0]
        enc = self.encounter(first.mdtrt_id, first.psn_no, institution, "input.feedetail[0]")
        if enc.inpatient != (env.infno == "2301"):
            raise InvalidInput(
                "upload an admission's fees with 2301 and a visit's with 2204", field="input.feedetail[0].mdtrt_id"
            )
        seen: set[str] = set()
        for j, line in enumerate(payload.feedetail):
            if line.mdtrt_id != enc.mdtrt_id or line.psn_no != enc.psn_no:
                raise InvalidInput(
                    "every line of one upload belongs to one visit and person", field=f"input.feedetail[{j}].mdtrt_id"
                )
            if not line.feedetl_sn or line.feedetl_sn in enc.lines or line.feedetl_sn in seen:
                raise InvalidInput(
                    f"feedetl_sn {line.feedetl_sn!r} is missing or already uploaded",
                    field=f"input.feedetail[{j}].feedetl_sn",
                )
            seen.add(line.feedetl_sn)
        lines = [
            line.model_dump(
                mode="json",
                include={"feedetl_sn", "med_list_codg", "pric", "cnt", "det_item_fee_sumamt", "hosp_appr_flag"},
                exclude_none=True,
            )
            for line in payload.feedetail
        ]
        settler = self._ledger.settler
        priced = settler.presettle(self.bill(env, institution, enc, lines))
        catalogue = settler.policy.region(institution.admdvs).catalogue_on(local_date(priced.setl_time))
        assert catalogue is not None  # the presettle priced every line with it
        result = result_rows(priced.line_split(), lines, catalogue, priced.psn_type)
        return self.event(
            FEES, institution, env, lambda: {"mdtrt_id": enc.mdtrt_id, "lines": lines}, lambda b: {"result": result}
        )

    def fees_cancel(self, env: Envelope, institution: Institution, payload: FeeCancel) -> dict:
        enc = self.encounter(payload.data.mdtrt_id, payload.data.psn_no, institution, "input.data")
        sn = payload.data.feedetl_sn
        if sn == ALL_LINES:
            sns = [line["feedetl_sn"] for line in enc.open_lines()]
        elif sn in enc.lines and sn not in enc.settled:
            sns = [sn]
        else:
            raise InvalidInput(f"no unsettled line {sn!r} in visit {enc.mdtrt_id}", field="input.data.feedetl_sn")
        return self.event(
            FEES_CANCEL, institution, env, lambda: {"mdtrt_id": enc.mdtrt_id, "feedetl_sns": sns}, lambda b: {}
        )

    def _outpatient_presettle(self, env: Envelope, institution: Institution, payload: OutpatientSettle) -> dict:
        enc, bill = self._outpatient_bill(env, institution, payload)
        self._cards.present(env, institution, payload.data, enc.psn_no, presettle=True)
        return self._settlements.presettle(bill, env)

    def _outpatient_settle(self, env: Envelope, institution: Institution, payload: OutpatientSettle) -> dict:
        enc, bill = self._outpatient_bill(env, institution, payload)
        if payload.data.deferred_voucher_no is not None:
            self._settlements.check_deferred_window(institution, enc.begntime, enc.med_type)
        self._cards.present(env, institution, payload.data, enc.psn_no)
        return self._settlements.settle(
            env,
            institution,
            bill,
            {"mdtrt_id": enc.mdtrt_id, "feedetl_sns": [ln["feedetl_sn"] for ln in bill["feedetail"]]},
            voucher=payload.data.deferred_voucher_no,
        )

    # -- what the inpatient flow shares ------------------------------------------------------------

    def event(
        self,
        kind: str,
        institution: Institution,
        env: Envelope,
        make_body: Callable[[], dict],
        make_output: Callable[[dict], dict],
    ) -> dict:
        """Apply an encounter event and journal it with its answer; return the answer's output."""
        ledger = self._ledger
        with ledger.lock:
            ledger.refuse_if_failed()
            body = make_body()
            output = make_output(body)
            self._encounters.apply(kind, body)
            key = journal_key(institution.fixmedins_code, env.msgid)
            future = ledger.append(kind, institution.admdvs, key, {**body, **answer_fields(env, output)})
        ledger.wait(future)
        return output

    def new_mdtrt_id(self, kind: str, institution: Institution) -> str:
        """The next encounter's id (called under the lock): MD for a visit, ZY for an admission."""
        n = self._encounters.count + 1
        if self._id_prefix:
            return f"{kind}{institution.admdvs}{self._id_prefix}{n:06d}"
        return f"{kind}{institution.admdvs}{n:012d}"

    def _replay_event(self, entry: Entry) -> None:
        body = entry.body
        self._encounters.apply(entry.kind, body)
        if "fixmedins_code" not in body and "msgid" in body:  # an older entry: its answer is its encounter's
            enc = self._encounters.get(body.get("mdtrt_id", ""))  # institution's (the answer store reads it)
            if enc is not None:
                body["fixmedins_code"] = enc.fixmedins_code

    # -- helpers ------------------------------------------------------------------------------

    def _outpatient_bill(
        self, env: Envelope, institution: Institution, payload: OutpatientSettle
    ) -> tuple[Encounter, dict]:
        data = payload.data
        enc = self.encounter(data.mdtrt_id, data.psn_no, institution, "input.data")
        if enc.inpatient:
            raise InvalidInput(f"{enc.mdtrt_id} is an admission: settle it with 2303/2304", field="input.data.mdtrt_id")
        if data.med_type and data.med_type != enc.med_type:
            raise InvalidInput(f"the visit's med_type is {enc.med_type} (2203)", field="input.data.med_type")
        lines = enc.open_lines()
        if not lines:
            raise InvalidInput("the visit has no unsettled fee lines (2204)", field="input.data.mdtrt_id")
        return enc, self.bill(env, institution, enc, lines, data)

    def bill(
        self, env: Envelope, institution: Institution, enc: Encounter, lines: list[dict], data: Any = None
    ) -> dict:
        """The bill of an encounter's lines; ``data`` (a settle message's) adds acct_used_flag and the
        caller's medfee_sumamt."""
        self._settlements.check_routing(env, enc.psn_no)
        bill = {
            "bill_id": env.msgid,
            "psn_no": enc.psn_no,
            "mdtrt_id": enc.mdtrt_id,
            "med_type": enc.med_type,
            "setl_time": enc.begntime,
            "hosp_lv": institution.tier,
            "mdtrtarea_admvs": institution.admdvs,
            "feedetail": lines,
        }
        if data is not None:
            bill["acct_used_flag"] = str(data.acct_used_flag)
            if data.medfee_sumamt is not None:
                bill["medfee_sumamt"] = str(data.medfee_sumamt)
            if getattr(data, "saf_cash_amt", None) is not None:
                bill["saf_cash_amt"] = str(data.saf_cash_amt)
        return bill

    def encounter(self, mdtrt_id: str, psn_no: str, institution: Institution, where: str) -> Encounter:
        enc = self._encounters.get(mdtrt_id)
        if enc is None or enc.cancelled or enc.fixmedins_code != institution.fixmedins_code:
            raise InvalidInput(f"no open visit {mdtrt_id!r} at {institution.fixmedins_code}", field=f"{where}.mdtrt_id")
        if enc.psn_no != psn_no:
            raise InvalidInput(f"visit {mdtrt_id} is not person {psn_no!r}'s", field=f"{where}.psn_no")
        return enc
