"""2601 reversal (冲正, docs/messages.md): undo a message whose answer was lost, or make sure it never lands.

If the original was applied, it is undone (a settlement by a cancel mirror, a registration by its
cancel, a fee upload by cancelling its lines that are still unsettled); if it never arrived, a
tombstone makes a late copy of that msgid be refused. A second 2601 for the same omsgid answers as the
first. The effects and the reversal's own answer are journaled together, under one lock.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from ..errors import InvalidInput
from ..jsontext import loads
from .encounters import FEES_CANCEL, REGISTER_CANCEL
from .institutions import Institution
from .messages import Envelope, Reversal

REVERSAL = "reversal"
TOMBSTONE = "reversed-before-arrival"


class ReversalFlow:
    def _reverse(self, env: Envelope, institution: Institution, payload: Reversal) -> dict:
        data = payload.data
        with self._lock:
            stored = self._answers.get(data.omsgid)
        if stored is not None and isinstance(stored[1], Future):
            stored[1].exception()  # the original is being answered right now: wait for it
        with self._lock:
            self._refuse_if_failed()
            if data.omsgid in self._reversals:
                return self._reversals[data.omsgid]
            stored = self._answers.get(data.omsgid)
            futures: list[Future] = []
            if stored is None:
                self._answers[data.omsgid] = (TOMBSTONE, None)
                result = {"omsgid": data.omsgid, "oinfno": data.oinfno, "rvs_rslt": "tombstone"}
            elif stored[0] == TOMBSTONE or (original := loads(stored[1]))["infcode"] != 0:
                result = {"omsgid": data.omsgid, "oinfno": data.oinfno, "rvs_rslt": "nothing applied"}
            else:
                result = self._undo(env, institution, data.omsgid, data.oinfno, data.psn_no, original["output"], futures)
            output = {"data": result}
            self._reversals[data.omsgid] = output
            futures.append(self.journal.append_future(REVERSAL, institution.admdvs, env.msgid, {
                "omsgid": data.omsgid, "tombstone": stored is None, "msgid": env.msgid, "hash": env.request_hash(),
                "answer_output": output}))
        for future in futures:
            self._wait(future)
        return output

    def _undo(self, env: Envelope, institution: Institution, omsgid: str, oinfno: str, psn_no: str,
              original: dict[str, Any], futures: list[Future]) -> dict:
        """Undo an applied original (under the lock); queue its journal entries in ``futures``."""
        region = institution.admdvs
        if oinfno in ("2207", "2102", "2304"):
            setl_id = original.get("setlinfo", {}).get("setl_id")
            record = self.settler.records.get(setl_id or "")
            if record is None or record.psn_no != psn_no:
                raise InvalidInput(f"the original is not a settlement of {psn_no!r}", field="input.data.omsgid")
            if record.cancelled_by is not None:
                return {"omsgid": omsgid, "oinfno": oinfno, "rvs_rslt": f"already cancelled by {record.cancelled_by}"}
            mirror = self.settler.cancel(setl_id)
            self._setl_institution[mirror.setl_id] = institution.fixmedins_code
            self.encounters.mark_cancelled(setl_id)
            futures.append(self.journal.append_future("cancel", region, mirror.setl_id, {
                "setl_id": mirror.setl_id, "original": setl_id, "setl_time": mirror.setl_time.isoformat(),
                "row": mirror.row.tolist(), "fixmedins_code": institution.fixmedins_code}))
            # setl_id is the mirror's; reversed_setl_id the settlement whose answer was lost (medsettle adds
            # it so the institution can hold both for reconciliation).
            return {"omsgid": omsgid, "oinfno": oinfno, "rvs_rslt": "reversed", "setl_id": mirror.setl_id,
                    "reversed_setl_id": setl_id}
        if oinfno in ("2201", "2401"):
            enc = self.encounters.get(original.get("data", {}).get("mdtrt_id", ""))
            if enc is None or enc.psn_no != psn_no:
                raise InvalidInput(f"the original is not a registration of {psn_no!r}", field="input.data.omsgid")
            if enc.settled:
                raise InvalidInput("the visit has settled fees: cancel the settlement first (2208)",
                                   field="input.data.omsgid")
            if not enc.cancelled:
                body = {"mdtrt_id": enc.mdtrt_id}
                self.encounters.apply(REGISTER_CANCEL, body)
                futures.append(self.journal.append_future(REGISTER_CANCEL, region, f"{env.msgid}/2601", body))
            return {"omsgid": omsgid, "oinfno": oinfno, "rvs_rslt": "reversed", "mdtrt_id": enc.mdtrt_id}
        # 2204 and 2301: cancel the uploaded lines that are still unsettled
        sns = [r["feedetl_sn"] for r in original.get("result", [])]
        enc = next((e for e in self.encounters.by_id.values() if sns and sns[0] in e.lines), None)
        if enc is None or enc.psn_no != psn_no:
            raise InvalidInput(f"the original is not a fee upload of {psn_no!r}", field="input.data.omsgid")
        open_sns = [sn for sn in sns if sn in enc.lines and sn not in enc.settled]
        body = {"mdtrt_id": enc.mdtrt_id, "feedetl_sns": open_sns}
        self.encounters.apply(FEES_CANCEL, body)
        futures.append(self.journal.append_future(FEES_CANCEL, region, f"{env.msgid}/2601", body))
        return {"omsgid": omsgid, "oinfno": oinfno, "rvs_rslt": "reversed", "feedetl_sns": open_sns}
