"""The pharmacy flow (docs/messages.md): 2101 pre-settlement and 2102 settlement of a sale, med_type 41.

A sale is one message: the bill is the message's fee lines, settled at once; its cancel is 2103
(:class:`medsettle.centre.settlements.Settlements`).
"""

from __future__ import annotations

from ..errors import InvalidInput
from .cards import Cards
from .core import Ledger
from .institutions import Institution
from .messages import Envelope, PharmacySale
from .settlements import Settlements


class PharmacyFlow:
    def __init__(self, ledger: Ledger, settlements: Settlements, cards: Cards) -> None:
        self._ledger = ledger
        self._settlements = settlements
        self._cards = cards

    def handlers(self) -> dict:
        return {"2101": self.presettle, "2102": self.settle}

    def presettle(self, env: Envelope, institution: Institution, payload: PharmacySale) -> dict:
        bill = self._bill(env, institution, payload)
        self._cards.present(env, institution, payload.data, payload.data.psn_no, presettle=True)
        return self._settlements.presettle(bill, env)

    def settle(self, env: Envelope, institution: Institution, payload: PharmacySale) -> dict:
        bill = self._bill(env, institution, payload)
        self._cards.present(env, institution, payload.data, payload.data.psn_no, activate=True)
        return self._settlements.settle(env, institution, bill, {}, voucher=payload.data.deferred_voucher_no)

    def _bill(self, env: Envelope, institution: Institution, payload: PharmacySale) -> dict:
        data = payload.data
        if data.med_type != "41":
            raise InvalidInput("a pharmacy sale has med_type 41", field="input.data.med_type")
        if "41" not in institution.med_types:
            raise InvalidInput(
                f"institution {institution.fixmedins_code} may not settle med_type 41", field="input.data.med_type"
            )
        self._settlements.check_routing(env, data.psn_no)
        when = next((f.fee_ocur_time for f in payload.feedetail if f.fee_ocur_time), "") or env.inf_time
        setl_time = when or self._ledger.now_text()
        bill = {
            "bill_id": env.msgid,
            "psn_no": data.psn_no,
            "mdtrt_id": f"MD{env.msgid}",
            "med_type": "41",
            "setl_time": setl_time,
            "hosp_lv": institution.tier,
            "mdtrtarea_admvs": institution.admdvs,
            "acct_used_flag": str(data.acct_used_flag),
            "feedetail": [f.model_dump(mode="json", exclude_none=True) for f in payload.feedetail],
        }
        if data.medfee_sumamt is not None:
            bill["medfee_sumamt"] = str(data.medfee_sumamt)
        if data.saf_cash_amt is not None:
            bill["saf_cash_amt"] = str(data.saf_cash_amt)
        if data.deferred_voucher_no is not None:
            self._settlements.check_deferred_window(institution, setl_time, "41")
        return bill
