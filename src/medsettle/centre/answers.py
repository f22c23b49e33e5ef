"""The answer store: idempotency of state-changing requests, tombstones and stored answers (docs/messages.md).

A state-changing request is answered once: the same request (same msgid and hash) gets the stored answer
again, another request under a used msgid is refused, and a msgid that 2601 reversed before it arrived
(a tombstone) is refused for good. Until an answer is durable its Future is what is stored, so no copy
of an answer leaves before the original is durable.

What is held for a msgid, once its answer is durable (docs/security.md, 'Memory'):

- a settlement's or a cancel's answer is not stored at all: it is made again from the settlement's record
  when asked (:class:`Kept` with a remaker, as replay has always done), so a settlement costs its record;
- any other answer is held as its JSON text for the idempotency window (``window``, two days by default),
  then leaves memory: a resend past the window is answered from the journal entry that holds it (a
  :class:`Kept` (kind, key)), and the request's digest stays, so a reused msgid is still refused.

Also here: the platform's envelope, which every answer (stored or not) is written in, and the centre's
side of it (:class:`Stamps`: its own message id and the times).
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ..errors import InvalidInput, MedsettleError, SettlementRefused
from ..jsontext import dumps_bytes, dumps_kept, loads
from ..ledger.journal import Entry
from ..seams import Clock
from ..timeutil import SHANGHAI
from .core import Ledger, journal_key
from .messages import Envelope
from .pending import answered, when_all

ANSWER = "answer"
TOMBSTONE = "reversed-before-arrival"
IDEMPOTENCY_WINDOW = 2 * 86_400.0  # ok-float: seconds a stored answer is held in memory (serve --idempotency-window)
# What the platform answers in enctype and signtype when the answer is neither encrypted nor signed (its
# gateway does both when an institution is set up for them; medsettle's centre does neither): null.
ENCTYPE = None
SIGNTYPE = None


ENVELOPE_KEYS = (
    "infcode",
    "inf_refmsgid",
    "refmsg_time",
    "respond_time",
    "enctype",
    "signtype",
    "err_msg",
    "warn_msg",
    "output",
)


def answer_fields(env: Envelope, output: dict) -> dict:
    """The journal fields that let a replay give the same request its stored answer again (the institution
    too: each institution's msgids are its own)."""
    return {
        "fixmedins_code": env.fixmedins_code,
        "msgid": env.msgid,
        "hash": env.request_hash(),
        "answer_output": output,
    }


def ok_response(
    refmsgid: str, refmsg_time: str, respond_time: str, output: dict, *, warn_msg: str | None = None
) -> dict:
    """The platform's envelope of a success: ``refmsgid`` the centre's own message id (:class:`Stamps`),
    the times as 17 digits, err_msg null, warn_msg null unless there is something to warn about."""
    return {
        "infcode": 0,
        "inf_refmsgid": refmsgid,
        "refmsg_time": refmsg_time,
        "respond_time": respond_time,
        "enctype": ENCTYPE,
        "signtype": SIGNTYPE,
        "err_msg": None,
        "warn_msg": warn_msg,
        "output": output,
    }


def error_response(refmsgid: str, refmsg_time: str, respond_time: str, exc: MedsettleError) -> dict:
    """The platform's envelope of a refusal: infcode -1, err_msg "CODE: message", output {}."""
    return {
        "infcode": -1,
        "inf_refmsgid": refmsgid,
        "refmsg_time": refmsg_time,
        "respond_time": respond_time,
        "enctype": ENCTYPE,
        "signtype": SIGNTYPE,
        "err_msg": f"{exc.code}: {exc}",
        "warn_msg": None,
        "output": {},
    }


class Stamps:
    """The centre's side of every envelope: its own message id (inf_refmsgid) and the times, from its clock.

    The times are the platform's 17 digits, yyyyMMddHHmmssSSS (Asia/Shanghai, milliseconds last).
    ``inf_refmsgid`` is the platform's 30 characters: the 6-digit region, yyyyMMddHHmmss and a 10-digit
    sequence. The region is this process's (the lowest insured region it owns); the sequence is the
    microsecond of the second the id was made in (6 digits) then a 4-digit counter of this process. So ids
    stay apart across every centre process sharing one PostgreSQL journal without asking the database for a
    number: processes running at once own disjoint regions (the journal's region claims), so their region
    digits differ; a process that takes over regions after another released them makes its ids later in
    time; and within one process the counter separates ids made in the same microsecond (up to 10,000 of
    them: only a clock that stands still, as a test's may, can repeat an id, and nothing reads it back).

    A stored answer returned again (a resend of the same request, before or after a restart) is a new
    answer message: it gets a new inf_refmsgid and this request's times, and keeps everything else the
    journal kept (infcode, err_msg, warn_msg, output)."""

    def __init__(self, clock: Clock, region: str) -> None:
        self._clock = clock
        self._region = region
        self._counter = itertools.count()  # next() is atomic under the GIL: threads may share it

    def time(self) -> str:
        """Now as the platform writes an envelope's times: 17 digits, yyyyMMddHHmmssSSS."""
        now = self._clock.now()
        return f"{now:%Y%m%d%H%M%S}{now.microsecond // 1000:03d}"

    def respond(self) -> tuple[str, str]:
        """(a new inf_refmsgid, respond_time), from one reading of the clock."""
        now = self._clock.now()
        second = f"{now:%Y%m%d%H%M%S}"
        refmsgid = f"{self._region}{second}{now.microsecond:06d}{next(self._counter) % 10_000:04d}"
        return refmsgid, f"{second}{now.microsecond // 1000:03d}"

    def ok(self, refmsg_time: str, output: dict, *, warn_msg: str | None = None) -> dict:
        refmsgid, respond_time = self.respond()
        return ok_response(refmsgid, refmsg_time, respond_time, output, warn_msg=warn_msg)

    def error(self, refmsg_time: str, exc: MedsettleError) -> dict:
        refmsgid, respond_time = self.respond()
        return error_response(refmsgid, refmsg_time, respond_time, exc)

    def again(self, response: dict, refmsg_time: str) -> dict:
        """A stored (or just made) answer as it leaves for this request: a new id and this request's times."""
        refmsgid, respond_time = self.respond()
        return {**response, "inf_refmsgid": refmsgid, "refmsg_time": refmsg_time, "respond_time": respond_time}


class Kept:
    """Where an answer the store does not hold is found when it is asked for again: the journal entry of
    ``kind`` and ``key`` that answered the request, read back by the remaker of its kind (a settlement's
    record, in memory) or else from the journal."""

    __slots__ = ("key", "kind")

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key


# Made again from what is in memory: the output of the answer the entry of this kind and key gave.
Remaker = Callable[[str], dict]


class AnswerStore:
    """(fixmedins_code, msgid) -> (request hash, the answer: its Future while it is not yet durable, then its
    JSON bytes within the idempotency window, or a :class:`Kept` saying where it is found again).

    Each institution's msgids are its own namespace (DOMAIN.md's Security): another institution can
    neither read an answer, nor tombstone a msgid (a 2601 before it arrived), nor take a msgid first.
    Entries journaled before msgids were per institution, whose institution replay cannot tell (refusals,
    reversals, sign-outs), stay in one shared namespace, as they were written: any institution's resend
    of such a msgid gets its stored answer if the request is the same (its hash covers fixmedins_code, so
    only the institution that sent it can match), and another request under it is refused.

    Bytes, not dicts: millions of stored answers would otherwise be millions of containers for Python's
    cyclic garbage collector to walk again and again (pauses of a second and more)."""

    def __init__(
        self,
        ledger: Ledger,
        stamps: Stamps,
        *,
        window: float = IDEMPOTENCY_WINDOW,  # ok-float: seconds
    ) -> None:
        """``window``: seconds an answer's text is held after it was made (a resend later is answered from
        the journal)."""
        if not window > 0:
            raise ValueError(f"the idempotency window must be positive, not {window}")
        self._ledger = ledger
        self.stamps = stamps
        self.window = window
        self._answers: dict[str, dict[str, tuple[str, Any]]] = {}  # fixmedins_code -> msgid -> stored
        self._legacy: dict[str, tuple[str, Any]] = {}  # msgid -> stored, of entries without an institution
        # (fixmedins_code, msgid) whose journal key an entry of an older version holds (a msgid that looked
        # like a key of today's): a request under it would be refused by the journal after it was applied.
        self._reserved: set[tuple[str, str]] = set()
        # The answers held as text, oldest first: (when they leave memory, code, msgid, where they are kept).
        self._held: collections.deque[tuple[float, str, str, Kept]] = collections.deque()
        self._remakers: dict[str, Remaker] = {}
        ledger.owns(ANSWER, self._replay_refusal)
        ledger.observe_every(self._replay_answer)

    def remade_by(self, kind: str, remaker: Remaker) -> None:
        """The answers of requests journaled as entries of ``kind`` are not stored: ``remaker(key)`` makes
        one again from memory (under the ledger's lock) when it is asked for."""
        self._remakers[kind] = remaker

    def _find(self, code: str, msgid: str) -> tuple[str, Any] | None:
        own = self._answers.get(code)
        stored = own.get(msgid) if own is not None else None
        if stored is None and self._legacy:
            stored = self._legacy.get(msgid)
        return stored

    def _own(self, code: str) -> dict[str, tuple[str, Any]]:
        own = self._answers.get(code)
        if own is None:
            own = self._answers[code] = {}
        return own

    # -- answering once -------------------------------------------------------------------------

    def once(self, env: Envelope, region: str, work: Callable[[], dict]) -> Future:
        """Answer a state-changing request once; the same request gets the stored answer again.

        Returns the Future of the answer, resolved once the journal entries ``work`` queued are durable;
        until then an identical request gets that same Future. A refusal (SettlementRefused) is an answer
        too, stored and journaled in ``region``; bad input is not stored (a corrected resend may use the
        msgid). A failed journal fails the Future with CentreFailStopped."""
        digest = env.request_hash()
        code, msgid = env.fixmedins_code, env.msgid
        with self._ledger.lock:
            stored = self._find(code, msgid)
            if stored is None:
                if (code, msgid) in self._reserved:
                    raise InvalidInput(
                        f"msgid {msgid} cannot be used: a journal entry of an earlier version holds its key",
                        field="msgid",
                    )
                pending: Future = Future()
                self._own(code)[msgid] = (digest, pending)
        if stored is not None:
            return self._repeat(msgid, digest, stored)
        with self._ledger.collect_waits() as collected:
            try:
                try:
                    response = work()
                except SettlementRefused as exc:  # refusals are answers too: stored and journaled
                    response = self.stamps.error(self.stamps.time(), exc)
                    body = {"hash": digest, "response": response, "fixmedins_code": code, "msgid": msgid}
                    with self._ledger.lock:
                        self._ledger.wait(self._ledger.append(ANSWER, region, journal_key(code, msgid), body))
            except BaseException as exc:
                with self._ledger.lock:
                    del self._answers[code][msgid]
                pending.set_exception(exc)  # an identical request waiting meanwhile gets the same error
                raise
        # The entry that answers it (a 2601 queues its undoing first, then its own entry): where it is kept.
        kept = Kept(*collected.answer_entries[-1]) if collected.answer_entries else None
        when_all(collected.waits, lambda failure: self._settle(code, msgid, digest, pending, response, kept, failure))
        return pending

    def _repeat(self, msgid: str, digest: str, stored: tuple[str, Any]) -> Future:
        stored_digest, answer = stored
        if stored_digest == TOMBSTONE:
            raise InvalidInput(f"msgid {msgid} was reversed by 2601 before it arrived", field="msgid")
        if stored_digest != digest:
            raise InvalidInput(f"msgid {msgid} was already used for another request", field="msgid")
        if isinstance(answer, Future):
            return answer
        if isinstance(answer, Kept):
            with self._ledger.lock:
                return answered(self._again(answer))
        return answered(loads(answer))

    def _settle(
        self,
        code: str,
        msgid: str,
        digest: str,
        pending: Future,
        response: dict,
        kept: Kept | None,
        failure: BaseException | None,
    ) -> None:
        """Store a durable answer for repeats, or, if its journal entries failed, forget it and fail."""
        if failure is None:
            with self._ledger.lock:
                self._own(code)[msgid] = (digest, self._hold(code, msgid, response, kept, self._ledger.clock.time()))
                self._let_go(self._ledger.clock.time())
            pending.set_result(response)
            return
        unavailable = self._ledger.fail(failure)
        with self._ledger.lock:
            del self._answers[code][msgid]
        pending.set_exception(unavailable)

    def _hold(
        self,
        code: str,
        msgid: str,
        response: dict,
        kept: Kept | None,
        made_at: float,  # ok-float: a time
    ) -> bytes | Kept:
        """What is held of a durable answer made at ``made_at`` (under the lock): nothing but where it is kept
        if it can be made again from memory or its window has passed, else its text (and when it leaves)."""
        if kept is not None and kept.kind in self._remakers:
            return kept
        if kept is not None:
            leaves_at = made_at + self.window
            if leaves_at <= self._ledger.clock.time():
                return kept
            self._held.append((leaves_at, code, msgid, kept))
        return dumps_kept(response)  # an answer no entry holds (a voucher's repeat) stays: it is rare and small

    def _let_go(self, now: float) -> None:  # ok-float: time
        """Answers held past their window leave memory (under the lock): their entries now say where they are
        kept. Called as answers are stored, so a busy centre lets go as it goes."""
        held = self._held
        while held and held[0][0] <= now:
            _, code, msgid, kept = held.popleft()
            stored = self._find(code, msgid)
            if stored is not None and isinstance(stored[1], bytes):
                (self._own(code) if code else self._legacy)[msgid] = (stored[0], kept)

    def _again(self, kept: Kept) -> dict:
        """An answer not held, made again (under the lock): by its kind's remaker, or read from the journal."""
        remaker = self._remakers.get(kept.kind)
        if remaker is not None:
            return loads(dumps_bytes(ok_response("", "", "", remaker(kept.key))))
        entry = self._ledger.journal.find(kept.kind, kept.key)
        if entry is None:  # the entry was durable before the answer was kept: a journal that lost it
            raise self._ledger.fail(LookupError(f"the journal has no {kept.kind} entry {kept.key}"))
        if kept.kind == ANSWER:
            return _refusal_of(entry.body)
        return ok_response("", "", "", entry.body["answer_output"])

    # -- what 2601 reads and writes (under the ledger's lock) -----------------------------------

    def pending(self, code: str, msgid: str) -> Future | None:
        """The Future of institution ``code``'s ``msgid``'s answer while it is not yet durable, else None."""
        with self._ledger.lock:
            stored = self._find(code, msgid)
        return stored[1] if stored is not None and isinstance(stored[1], Future) else None

    def stored(self, code: str, msgid: str) -> tuple[str, dict | None] | None:
        """(hash or TOMBSTONE, the durable response or None) of institution ``code``'s ``msgid``; None if it
        never arrived. The caller holds the ledger's lock and has waited for a pending answer (:meth:`pending`)."""
        stored = self._find(code, msgid)
        if stored is None:
            return None
        digest, answer = stored
        if isinstance(answer, bytes):
            return digest, loads(answer)
        if isinstance(answer, Kept):
            return digest, self._again(answer)
        return digest, None

    def tombstone(self, code: str, msgid: str) -> None:
        """Mark institution ``code``'s ``msgid`` as reversed before it arrived: a late copy is refused (under
        the lock). ``code`` "" (an entry of an older version): any institution's copy."""
        (self._own(code) if code else self._legacy)[msgid] = (TOMBSTONE, None)

    # -- replay ---------------------------------------------------------------------------------

    def _remember(self, entry: Entry, code: str, msgid: str, digest: str, response: dict) -> None:
        """On replay: the answer ``entry`` journaled (``code`` "": an older entry's, shared), held as when it
        was made (its window counted from the entry's time)."""
        made_at = _unix_seconds(entry.at)
        stored = (digest, self._hold(code, msgid, response, Kept(entry.kind, entry.key), made_at))
        (self._own(code) if code else self._legacy)[msgid] = stored
        self._let_go(self._ledger.clock.time())

    def _replay_refusal(self, entry: Entry) -> None:
        """A journaled refusal, in today's envelope (a journal of an older version kept fewer keys, and
        keyed it by the msgid alone, without the institution)."""
        body = entry.body
        self._remember(
            entry, body.get("fixmedins_code", ""), body.get("msgid", entry.key), body["hash"], _refusal_of(body)
        )

    def _replay_answer(self, entry: Entry) -> None:
        """Every journaled success carries its answer, or, a settlement's, is remade from its record. The
        entry's owner has run first: an older entry without fixmedins_code has been given its encounter's
        where one can tell."""
        body = entry.body
        if entry.key.startswith("[") and (entry.kind == ANSWER or "msgid" in body):
            self._reserve_lookalike(entry)
        if entry.kind == ANSWER or "msgid" not in body or "hash" not in body:
            return
        code = body.get("fixmedins_code", "")
        if entry.kind in self._remakers:
            (self._own(code) if code else self._legacy)[body["msgid"]] = (body["hash"], Kept(entry.kind, entry.key))
        elif "answer_output" in body:
            self._remember(entry, code, body["msgid"], body["hash"], ok_response("", "", "", body["answer_output"]))

    def _reserve_lookalike(self, entry: Entry) -> None:
        """An older entry keyed by a msgid that reads as one of today's keys reserves that key's msgid."""
        try:
            parts = loads(entry.key)
        except ValueError:
            return
        if not isinstance(parts, list) or len(parts) not in (2, 3) or not all(isinstance(p, str) for p in parts):
            return
        body = entry.body
        if parts[0] != body.get("fixmedins_code") or parts[1] != body.get("msgid"):  # not one of today's
            self._reserved.add((parts[0], parts[1]))


def _refusal_of(body: dict) -> dict:
    """A journaled refusal's answer in today's envelope (a journal of an older version kept fewer keys)."""
    envelope = {"enctype": ENCTYPE, "signtype": SIGNTYPE, "warn_msg": None, **body["response"]}
    return {key: envelope.get(key) for key in ENVELOPE_KEYS}


def _unix_seconds(at: dt.datetime) -> float:
    """A journal row's time as Unix seconds: the rows are stamped with the centre's clock in Asia/Shanghai,
    written without their offset."""
    return (at if at.tzinfo is not None else at.replace(tzinfo=SHANGHAI)).timestamp()
