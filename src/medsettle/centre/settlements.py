"""Settling and cancelling, for every flow that settles (pharmacy, outpatient, inpatient) and for 2601.

Owns which institution each settlement and cancel mirror belongs to (reconciliation reads it), journals
settlements and cancels with their answers, and replays them. The deferred-settlement window and the
routing by insured region are checked here too, as every settling flow checks them alike.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Future
from typing import Any

from ..engine.results import Settlement
from ..errors import InvalidInput, SettlementRefused
from ..jsontext import fen_number
from ..ledger.journal import Entry
from ..timeutil import local_date
from .answers import AnswerStore
from .core import Ledger
from .encounters import Encounters
from .institutions import Institution
from .messages import Cancel, Envelope

SETTLE, CANCEL = "settle", "cancel"


def settlement_output(result: Settlement) -> dict:
    """setlinfo, setldetail and the per-line split, as the platform answers a settlement; the amounts
    are pre-written JSON numbers (jsontext.fen_number): an answer is only ever written out."""
    return result.to_json(fen_number)


class Settlements:
    """setl_id (settlements and mirrors) -> fixmedins_code, and the settling and cancelling of bills."""

    def __init__(self, ledger: Ledger, answers: AnswerStore, encounters: Encounters) -> None:
        self._ledger = ledger
        self._answers = answers
        self._encounters = encounters
        self._setl_institution: dict[str, str] = {}
        ledger.owns(SETTLE, self._replay_settle)
        ledger.owns(CANCEL, self._replay_cancel)

    def handlers(self) -> dict:
        return {"2103": self.cancel, "2208": self.cancel, "2305": self.cancel}

    def institution_of(self, setl_id: str) -> str | None:
        """The fixmedins_code of a settlement or cancel mirror (None if unknown)."""
        return self._setl_institution.get(setl_id)

    # -- settling -------------------------------------------------------------------------------

    def presettle(self, bill: dict) -> dict:
        """A pre-settlement's answer (2101/2206/2303): nothing changes."""
        with self._ledger.lock:
            return settlement_output(self._ledger.settler.presettle(bill))

    def settle(self, env: Envelope, institution: Institution, bill: dict, extra: dict) -> dict:
        """Settle a bill and journal it with its answer (``extra``: the visit's lines it settles)."""
        ledger = self._ledger
        with ledger.lock:
            ledger.refuse_if_failed()
            result = ledger.settler.settle(bill, when=ledger.clock.now().replace(tzinfo=None, microsecond=0))
            self._setl_institution[result.setl_id] = institution.fixmedins_code
            output = settlement_output(result)
            if extra:
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
                    **extra,
                },
            )
        ledger.wait(future)
        return output

    def cancel(self, env: Envelope, institution: Institution, payload: Cancel) -> dict:
        """2103/2208/2305: cancel a settlement by a mirror with negative amounts."""
        original = self._ledger.settler.records.get(payload.data.setl_id)
        if original is None or original.psn_no != payload.data.psn_no:
            raise InvalidInput(
                f"no settlement {payload.data.setl_id} of person {payload.data.psn_no}", field="input.data.setl_id"
            )
        with self._ledger.lock:
            self._ledger.refuse_if_failed()
            mirror, future = self.cancel_locked(
                institution, payload.data.setl_id, {"msgid": env.msgid, "hash": env.request_hash()}
            )
        self._ledger.wait(future)
        return settlement_output(mirror)

    def cancel_locked(
        self, institution: Institution, setl_id: str, answer: dict[str, str]
    ) -> tuple[Settlement, Future]:
        """Cancel ``setl_id`` and queue its journal entry (the caller holds the lock); ``answer``: the
        msgid and hash of the request it answers, if any (a 2601 journals its own answer)."""
        # The mirror's setl_time is the centre's clock, to the microsecond, as the journal has always kept it.
        mirror = self._ledger.settler.cancel(setl_id, when=self._ledger.clock.now().replace(tzinfo=None))
        self._setl_institution[mirror.setl_id] = institution.fixmedins_code
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
            },
        )
        return mirror, future

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
        if "feedetl_sns" in body:
            self._encounters.mark_settled(body["mdtrt_id"], body["feedetl_sns"], body["setl_id"])
        self._remember_answer(body)

    def _replay_cancel(self, entry: Entry) -> None:
        body = entry.body
        self._setl_institution[body["setl_id"]] = body["fixmedins_code"]
        self._encounters.mark_cancelled(body["original"])
        self._remember_answer(body)

    def _remember_answer(self, body: dict[str, Any]) -> None:
        """A settlement's answer is a function of its record, so it is not journaled twice."""
        if "msgid" in body:
            self._answers.remember(
                body["msgid"], body["hash"], settlement_output(self._ledger.settler.records[body["setl_id"]])
            )
