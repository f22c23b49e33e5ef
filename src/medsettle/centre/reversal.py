"""2601 reversal (冲正, docs/messages.md): undo a message whose answer was lost, or make sure it never lands.

If the original was applied, it is undone (a settlement by a cancel mirror, a registration by its
cancel, a fee upload by cancelling its lines that are still unsettled); if it never arrived, a
tombstone makes a late copy of that msgid be refused. A second 2601 for the same omsgid answers as the
first. The effects and the reversal's own answer are journaled together, under one lock.

A 2601 whose original is still waiting for the journal is not answered on a waiting thread: the centre
answers it once the original's answer is durable (:meth:`ReversalFlow.waits_for`, a chained Future).
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from ..errors import InvalidInput
from ..ledger.journal import Entry
from .answers import TOMBSTONE, AnswerStore
from .core import Ledger
from .encounters import FEES_CANCEL, REGISTER_CANCEL, Encounters
from .institutions import Institution
from .messages import Envelope, Reversal
from .settlements import Settlements

REVERSAL = "reversal"


class ReversalFlow:
    """omsgid -> the first 2601's answer output (a second 2601 for the same omsgid answers as the first)."""

    def __init__(self, ledger: Ledger, answers: AnswerStore, settlements: Settlements, encounters: Encounters) -> None:
        self._ledger = ledger
        self._answers = answers
        self._settlements = settlements
        self._encounters = encounters
        self._reversals: dict[str, dict] = {}
        ledger.owns(REVERSAL, self._replay)

    def handlers(self) -> dict:
        return {"2601": self._reverse}

    def waits_for(self, payload: Reversal) -> Future | None:
        """The answer a 2601 must wait for: its original's, while that is not yet durable (else None)."""
        return self._answers.pending(payload.data.omsgid)

    def _reverse(self, env: Envelope, institution: Institution, payload: Reversal) -> dict:
        data = payload.data
        futures: list[Future] = []
        with self._ledger.lock:
            self._ledger.refuse_if_failed()
            if data.omsgid in self._reversals:
                return self._reversals[data.omsgid]
            stored = self._answers.stored(data.omsgid)
            if stored is None:
                self._answers.tombstone(data.omsgid)
                result = {"omsgid": data.omsgid, "oinfno": data.oinfno, "rvs_rslt": "tombstone"}
            elif stored[0] == TOMBSTONE:
                result = {"omsgid": data.omsgid, "oinfno": data.oinfno, "rvs_rslt": "nothing applied"}
            elif (original := stored[1]) is None:  # a resend of the original came in meanwhile
                raise InvalidInput(
                    f"the answer of {data.omsgid} is being made: send the 2601 again", field="input.data.omsgid"
                )
            elif original["infcode"] != 0:
                result = {"omsgid": data.omsgid, "oinfno": data.oinfno, "rvs_rslt": "nothing applied"}
            else:
                result = self._undo(
                    env, institution, data.omsgid, data.oinfno, data.psn_no, original["output"], futures
                )
            output = {"data": result}
            self._reversals[data.omsgid] = output
            futures.append(
                self._ledger.append(
                    REVERSAL,
                    institution.admdvs,
                    env.msgid,
                    {
                        "omsgid": data.omsgid,
                        "tombstone": stored is None,
                        "msgid": env.msgid,
                        "hash": env.request_hash(),
                        "answer_output": output,
                    },
                )
            )
        for future in futures:
            self._ledger.wait(future)
        return output

    def _replay(self, entry: Entry) -> None:
        body = entry.body
        self._reversals[body["omsgid"]] = body["answer_output"]
        if body["tombstone"]:
            self._answers.tombstone(body["omsgid"])

    def _undo(
        self,
        env: Envelope,
        institution: Institution,
        omsgid: str,
        oinfno: str,
        psn_no: str,
        original: dict[str, Any],
        futures: list[Future],
    ) -> dict:
        """Undo an applied original (under the lock); queue its journal entries in ``futures``."""
        region = institution.admdvs
        if oinfno in ("2207", "2102", "2304"):
            setl_id = original.get("setlinfo", {}).get("setl_id")
            record = self._ledger.settler.records.get(setl_id or "")
            if record is None or record.psn_no != psn_no:
                raise InvalidInput(f"the original is not a settlement of {psn_no!r}", field="input.data.omsgid")
            if record.cancelled_by is not None:
                return {"omsgid": omsgid, "oinfno": oinfno, "rvs_rslt": f"already cancelled by {record.cancelled_by}"}
            mirror, future = self._settlements.cancel_locked(institution, setl_id, {})
            futures.append(future)
            # setl_id is the mirror's; reversed_setl_id the settlement whose answer was lost (medsettle adds
            # it so the institution can hold both for reconciliation).
            return {
                "omsgid": omsgid,
                "oinfno": oinfno,
                "rvs_rslt": "reversed",
                "setl_id": mirror.setl_id,
                "reversed_setl_id": setl_id,
            }
        if oinfno in ("2201", "2401"):
            enc = self._encounters.get(original.get("data", {}).get("mdtrt_id", ""))
            if enc is None or enc.psn_no != psn_no:
                raise InvalidInput(f"the original is not a registration of {psn_no!r}", field="input.data.omsgid")
            if enc.settled:
                raise InvalidInput(
                    "the visit has settled fees: cancel the settlement first (2208)", field="input.data.omsgid"
                )
            if not enc.cancelled:
                cancel = {"mdtrt_id": enc.mdtrt_id}
                self._encounters.apply(REGISTER_CANCEL, cancel)
                futures.append(self._ledger.append(REGISTER_CANCEL, region, f"{env.msgid}/2601", cancel))
            return {"omsgid": omsgid, "oinfno": oinfno, "rvs_rslt": "reversed", "mdtrt_id": enc.mdtrt_id}
        # 2204 and 2301: cancel the uploaded lines that are still unsettled
        sns = [r["feedetl_sn"] for r in original.get("result", [])]
        enc = next((e for e in self._encounters.by_id.values() if sns and sns[0] in e.lines), None)
        if enc is None or enc.psn_no != psn_no:
            raise InvalidInput(f"the original is not a fee upload of {psn_no!r}", field="input.data.omsgid")
        open_sns = [sn for sn in sns if sn in enc.lines and sn not in enc.settled]
        body = {"mdtrt_id": enc.mdtrt_id, "feedetl_sns": open_sns}
        self._encounters.apply(FEES_CANCEL, body)
        futures.append(self._ledger.append(FEES_CANCEL, region, f"{env.msgid}/2601", body))
        return {"omsgid": omsgid, "oinfno": oinfno, "rvs_rslt": "reversed", "feedetl_sns": open_sns}
