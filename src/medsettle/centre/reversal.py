"""2601 reversal (冲正, docs/messages.md): undo a message whose answer was lost, or make sure it never lands.

If the original was applied, it is undone (a settlement by a cancel mirror, a registration by its
cancel, a fee upload by cancelling its lines that are still unsettled); if it never arrived, a
tombstone makes a late copy of that msgid be refused. A second 2601 for the same omsgid answers as the
first. The effects and the reversal's own answer are journaled together, under one lock.

An institution reverses only its own messages: omsgid is looked up among the sending institution's msgids
(each institution's are its own namespace), and a settlement, registration or fee upload of another
institution is as if it never arrived (a tombstone in the sender's namespace), so a 2601 neither undoes nor
tells of another's work.

A 2601 whose original is still waiting for the journal is not answered on a waiting thread: the centre
answers it once the original's answer is durable (:meth:`ReversalFlow.waits_for`, a chained Future). The
original is never a 2601 still waiting itself (those wait before they are taken in), and a 2601 naming
its own msgid is refused, so no answer waits on one that waits on it.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from ..errors import InvalidInput
from ..ledger.journal import Entry
from .answers import TOMBSTONE, AnswerStore
from .core import Ledger, journal_key
from .encounters import FEES_CANCEL, REGISTER_CANCEL, Encounters
from .institutions import Institution
from .messages import Envelope, Reversal
from .settlements import Settlements

REVERSAL = "reversal"


class ReversalFlow:
    """(fixmedins_code, omsgid) -> the first 2601's answer output (a second 2601 of that institution for the
    same omsgid answers as the first). Reversals journaled by older versions name no institution: they
    are kept under "" and found by any institution's 2601 of that omsgid, as they were."""

    def __init__(self, ledger: Ledger, answers: AnswerStore, settlements: Settlements, encounters: Encounters) -> None:
        self._ledger = ledger
        self._answers = answers
        self._settlements = settlements
        self._encounters = encounters
        self._reversals: dict[tuple[str, str], dict] = {}
        ledger.owns(REVERSAL, self._replay)

    def handlers(self) -> dict:
        return {"2601": self._reverse}

    def waits_for(self, env: Envelope, payload: Reversal) -> Future | None:
        """The answer a 2601 must wait for: its original's (of the same institution), while that is not yet
        durable (else None). A 2601 naming its own msgid is refused: it would wait on itself."""
        _refuse_its_own(env, payload)
        return self._answers.pending(env.fixmedins_code, payload.data.omsgid)

    def _reverse(self, env: Envelope, institution: Institution, payload: Reversal) -> dict:
        data = payload.data
        code = institution.fixmedins_code
        _refuse_its_own(env, payload)
        futures: list[Future] = []
        with self._ledger.lock:
            self._ledger.refuse_if_failed()
            earlier = self._reversals.get((code, data.omsgid)) or self._reversals.get(("", data.omsgid))
            if earlier is not None:
                return earlier
            stored = self._answers.stored(code, data.omsgid)
            original = stored[1] if stored is not None else None
            if (
                original is not None
                and original["infcode"] == 0
                and not self._is_own(code, data.oinfno, data.psn_no, original)
            ):
                stored = None  # another institution's work (a shared entry of an older version): as if absent
            if stored is None:
                self._answers.tombstone(code, data.omsgid)
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
            self._reversals[(code, data.omsgid)] = output
            futures.append(
                self._ledger.append(
                    REVERSAL,
                    institution.admdvs,
                    journal_key(code, env.msgid),
                    {
                        "omsgid": data.omsgid,
                        "tombstone": stored is None,
                        "fixmedins_code": code,
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
        code = body.get("fixmedins_code", "")  # "" for an entry of an older version: shared, as it was
        self._reversals[(code, body["omsgid"])] = body["answer_output"]
        if body["tombstone"]:
            self._answers.tombstone(code, body["omsgid"])

    def _is_own(self, code: str, oinfno: str, psn_no: str, original: dict[str, Any]) -> bool:
        """Whether the applied original (its answer) is institution ``code``'s own work, as far as the
        centre can tell (a stored answer of an older version is shared by every institution)."""
        output = original.get("output", {})
        if oinfno in ("2207", "2102", "2304"):
            setl_id = output.get("setlinfo", {}).get("setl_id") or ""
            return self._settlements.institution_of(setl_id) in (code, None)
        if oinfno in ("2201", "2401"):
            enc = self._encounters.get(output.get("data", {}).get("mdtrt_id", ""))
            return enc is None or enc.fixmedins_code == code
        sns = [r["feedetl_sn"] for r in output.get("result", [])]
        return self._encounters.of_upload(code, psn_no, sns) is not None or (
            self._encounters.of_upload(None, psn_no, sns) is None
        )

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
            if record.bill_id != omsgid:  # a voucher's repeat, answered with the settlement it repeats
                return {"omsgid": omsgid, "oinfno": oinfno, "rvs_rslt": "nothing applied"}
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
                key = journal_key(institution.fixmedins_code, env.msgid, "2601")
                futures.append(self._ledger.append(REGISTER_CANCEL, region, key, cancel))
            return {"omsgid": omsgid, "oinfno": oinfno, "rvs_rslt": "reversed", "mdtrt_id": enc.mdtrt_id}
        # 2204 and 2301: cancel the uploaded lines that are still unsettled
        sns = [r["feedetl_sn"] for r in original.get("result", [])]
        enc = self._encounters.of_upload(institution.fixmedins_code, psn_no, sns) if sns else None
        if enc is None or enc.psn_no != psn_no:
            raise InvalidInput(f"the original is not a fee upload of {psn_no!r}", field="input.data.omsgid")
        open_sns = [sn for sn in sns if sn in enc.lines and sn not in enc.settled]
        body = {"mdtrt_id": enc.mdtrt_id, "feedetl_sns": open_sns}
        self._encounters.apply(FEES_CANCEL, body)
        key = journal_key(institution.fixmedins_code, env.msgid, "2601")
        futures.append(self._ledger.append(FEES_CANCEL, region, key, body))
        return {"omsgid": omsgid, "oinfno": oinfno, "rvs_rslt": "reversed", "feedetl_sns": open_sns}


def _refuse_its_own(env: Envelope, payload: Reversal) -> None:
    """A 2601 naming its own msgid would wait on its own answer: refused (not stored, as bad input)."""
    if payload.data.omsgid == env.msgid:
        raise InvalidInput(
            f"omsgid {env.msgid} is this 2601's own msgid: a 2601 reverses another message", field="input.data.omsgid"
        )
