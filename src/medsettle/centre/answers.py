"""The answer store: idempotency of state-changing requests, tombstones and stored answers (docs/messages.md).

A state-changing request is answered once: the same request (same msgid and hash) gets the stored answer
again, another request under a used msgid is refused, and a msgid that 2601 reversed before it arrived
(a tombstone) is refused for good. Until an answer is durable its Future is what is stored, so no copy
of an answer leaves before the original is durable.

Also here: the platform's response shapes, which every answer (stored or not) is written in.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ..errors import InvalidInput, MedsettleError, SettlementRefused
from ..jsontext import dumps_bytes, loads
from ..ledger.journal import Entry
from .core import Ledger
from .messages import Envelope
from .pending import answered, when_all

ANSWER = "answer"
TOMBSTONE = "reversed-before-arrival"


def answer_fields(env: Envelope, output: dict) -> dict:
    """The journal fields that let a replay give the same request its stored answer again."""
    return {"msgid": env.msgid, "hash": env.request_hash(), "answer_output": output}


def ok_response(msgid: str, refmsg_time: str, respond_time: str, output: dict) -> dict:
    return {
        "infcode": 0,
        "inf_refmsgid": msgid,
        "refmsg_time": refmsg_time,
        "respond_time": respond_time,
        "err_msg": "",
        "output": output,
    }


def error_response(msgid: str, refmsg_time: str, respond_time: str, exc: MedsettleError) -> dict:
    return {
        "infcode": -1,
        "inf_refmsgid": msgid,
        "refmsg_time": refmsg_time,
        "respond_time": respond_time,
        "err_msg": f"{exc.code}: {exc}",
        "output": {},
    }


class AnswerStore:
    """msgid -> (request hash, the response as JSON bytes, or its Future while it is not yet durable).

    Bytes, not dicts: millions of stored answers would otherwise be millions of containers for Python's
    cyclic garbage collector to walk again and again (pauses of a second and more)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._answers: dict[str, tuple[str, Any]] = {}
        ledger.owns(ANSWER, self._replay_refusal)
        ledger.observe_every(self._replay_answer)

    # -- answering once -------------------------------------------------------------------------

    def once(self, env: Envelope, region: str, work: Callable[[], dict]) -> Future:
        """Answer a state-changing request once; the same request gets the stored answer again.

        Returns the Future of the answer, resolved once the journal entries ``work`` queued are durable;
        until then an identical request gets that same Future. A refusal (SettlementRefused) is an answer
        too, stored and journaled in ``region``; bad input is not stored (a corrected resend may use the
        msgid). A failed journal fails the Future with CentreFailStopped."""
        digest = env.request_hash()
        with self._ledger.lock:
            stored = self._answers.get(env.msgid)
            if stored is None:
                pending: Future = Future()
                self._answers[env.msgid] = (digest, pending)
        if stored is not None:
            return self._repeat(env.msgid, digest, stored)
        with self._ledger.collect_waits() as journal_waits:
            try:
                try:
                    response = work()
                except SettlementRefused as exc:  # refusals are answers too: stored and journaled
                    response = error_response(env.msgid, self._ledger.now_text(), self._ledger.now_text(), exc)
                    with self._ledger.lock:
                        self._ledger.wait(
                            self._ledger.append(ANSWER, region, env.msgid, {"hash": digest, "response": response})
                        )
            except BaseException as exc:
                with self._ledger.lock:
                    del self._answers[env.msgid]
                pending.set_exception(exc)  # an identical request waiting meanwhile gets the same error
                raise
        when_all(journal_waits, lambda failure: self._settle(env.msgid, digest, pending, response, failure))
        return pending

    @staticmethod
    def _repeat(msgid: str, digest: str, stored: tuple[str, Any]) -> Future:
        stored_digest, answer = stored
        if stored_digest == TOMBSTONE:
            raise InvalidInput(f"msgid {msgid} was reversed by 2601 before it arrived", field="msgid")
        if stored_digest != digest:
            raise InvalidInput(f"msgid {msgid} was already used for another request", field="msgid")
        return answer if isinstance(answer, Future) else answered(loads(answer))

    def _settle(self, msgid: str, digest: str, pending: Future, response: dict, failure: BaseException | None) -> None:
        """Store a durable answer for repeats, or, if its journal entries failed, forget it and fail."""
        if failure is None:
            with self._ledger.lock:
                self._answers[msgid] = (digest, dumps_bytes(response))
            pending.set_result(response)
            return
        unavailable = self._ledger.fail(failure)
        with self._ledger.lock:
            del self._answers[msgid]
        pending.set_exception(unavailable)

    # -- what 2601 reads and writes (under the ledger's lock) -----------------------------------

    def pending(self, msgid: str) -> Future | None:
        """The Future of ``msgid``'s answer while it is not yet durable, else None."""
        with self._ledger.lock:
            stored = self._answers.get(msgid)
        return stored[1] if stored is not None and isinstance(stored[1], Future) else None

    def stored(self, msgid: str) -> tuple[str, dict | None] | None:
        """(hash or TOMBSTONE, the durable response or None) of ``msgid``; None if it never arrived.
        The caller holds the ledger's lock and has waited for a pending answer (:meth:`pending`)."""
        stored = self._answers.get(msgid)
        if stored is None:
            return None
        digest, answer = stored
        return digest, (loads(answer) if isinstance(answer, bytes) else None)

    def tombstone(self, msgid: str) -> None:
        """Mark ``msgid`` as reversed before it arrived: a late copy is refused (under the lock)."""
        self._answers[msgid] = (TOMBSTONE, None)

    def remember(self, msgid: str, digest: str, output: dict) -> None:
        """On replay: the stored answer of a journaled success."""
        self._answers[msgid] = (
            digest,
            dumps_bytes({"infcode": 0, "inf_refmsgid": msgid, "err_msg": "", "output": output}),
        )

    # -- replay ---------------------------------------------------------------------------------

    def _replay_refusal(self, entry: Entry) -> None:
        self._answers[entry.key] = (entry.body["hash"], dumps_bytes(entry.body["response"]))

    def _replay_answer(self, entry: Entry) -> None:
        """Every journaled success but a settlement's carries its answer (a settlement's answer is a
        function of its record, so its flow remembers it)."""
        body = entry.body
        if entry.kind != ANSWER and "answer_output" in body:
            self.remember(body["msgid"], body["hash"], body["answer_output"])
