"""The centre's ledgered core: the lock, the journal, the settler, the fail-stop state and the commit path.

Every flow of the centre (medsettle.centre.service builds them) changes state through this object: under
:attr:`Ledger.lock` it applies a change in memory and queues its journal entry; the answer of the request
waits for that entry (see :meth:`Ledger.collect_waits`), so many requests share one fsync. If the journal
fails, the core fails stop: its memory is ahead of its journal, so it refuses every later change until a
restart replays the journal.

Journal keys that hold client text (a msgid, an admin request's key) are made by :func:`journal_key`, so no
client can write a separator into one and forge another request's key; :meth:`Ledger.commit` refuses a
request whose key is taken before it changes anything. A conflict a client caused is that client's
refusal: the centre fails stop only when its journal fails.

On replay the core hands each journal entry to the flow that owns the entry's kind (:meth:`Ledger.owns`),
then to the observers that look at every entry (the answer store).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from ..engine import Settler
from ..errors import InvalidInput, MedsettleError
from ..ledger import GroupCommitJournal
from ..ledger.journal import Entry
from ..ledger.replay import replay
from ..seams import Clock

log = logging.getLogger(__name__)
Replayer = Callable[[Entry], None]

# The journal entries the request being answered has queued; its answer leaves once they are durable.
# Set by ``Ledger.collect_waits`` around a state-changing request; ``Ledger.wait`` outside one (the admin
# API) blocks instead.
_JOURNAL_WAITS: contextvars.ContextVar[list[Future] | None] = contextvars.ContextVar("journal_waits", default=None)
# The (kind, key) of each journal entry the request being answered has queued that answers it (its body names
# the request's msgid and hash): where the answer store finds that answer again once it no longer holds it.
_ANSWER_ENTRIES: contextvars.ContextVar[list[tuple[str, str]] | None] = contextvars.ContextVar(
    "answer_entries", default=None
)


class Collected:
    """What a state-changing request queued (:meth:`Ledger.collect_waits`): the journal entries its answer
    waits for, and the (kind, key) of those that answer it (their bodies name its msgid)."""

    __slots__ = ("answer_entries", "waits")

    def __init__(self) -> None:
        self.waits: list[Future] = []
        self.answer_entries: list[tuple[str, str]] = []


def journal_key(*parts: str) -> str:
    """A journal key made of ``parts``, some of them client text: a JSON array (ASCII), so no part can
    end early or hold a separator, and two requests' keys are equal only if all their parts are.

    Keys written by versions before this were joined with "/" (``msgid/2601``) or were the msgid alone;
    replay does not read keys back as parts, so those entries replay as they are."""
    return json.dumps(list(parts), separators=(",", ":"))


def _note_answer_entry(kind: str, key: str, body: dict) -> None:
    noted = _ANSWER_ENTRIES.get()
    if noted is not None and "msgid" in body and "hash" in body:
        noted.append((kind, key))


class CentreFailStopped(MedsettleError):
    """The centre's journal failed, so the centre has stopped taking changes (fail-stop) until it is restarted
    and replays its journal. Not :class:`~medsettle.terminal.client.CentreUnreachable`, which is a counter
    getting no answer over the network; the wire code stays CENTRE_UNAVAILABLE."""

    code = "CENTRE_UNAVAILABLE"


class Ledger:
    """The lock, the journal and the settler the flows share, and the one way to change state durably."""

    def __init__(self, settler: Settler, journal: GroupCommitJournal, clock: Clock) -> None:
        self.settler = settler
        self.journal = journal
        self.clock = clock
        self.lock = threading.Lock()
        self._failure: str | None = None
        self._failing = threading.Lock()  # the first failure is told apart from the others under it
        self._owners: dict[str, Replayer] = {}
        self._observers: list[Replayer] = []
        self._clock_text: tuple[int, str] = (0, "")
        self._in_flight: set[tuple[str, str]] = set()  # (kind, key) queued by commit(), not yet durable

    # -- the time, as answers write it ----------------------------------------------------------

    def now_text(self) -> str:
        """The time now in Asia/Shanghai as the platform writes it, made once per second (every answer
        carries it twice)."""
        second = int(self.clock.time())
        if self._clock_text[0] != second:
            self._clock_text = (second, self.clock.now().strftime("%Y-%m-%d %H:%M:%S"))
        return self._clock_text[1]

    # -- fail-stop ------------------------------------------------------------------------------

    @property
    def failed(self) -> str | None:
        """Why the centre stopped changing state (the journal failed), or None."""
        return self._failure

    def fail(self, failure: BaseException) -> CentreFailStopped:
        """Fail stop: record that the journal failed; the error every later change is refused with.

        Logged once: the journal's writer thread and the event loop (a nonce the gateway could not store) may
        both find the database failed at the same moment."""
        with self._failing:
            first = self._failure is None  # the first failure; the requests of its group commit fail with it
            self._failure = f"the journal failed: {failure}"
        if first:
            log.error(
                "fail-stop: the journal failed: %s; every change is refused until a restart replays the journal",
                failure,
            )
        return self.unavailable()

    def unavailable(self) -> CentreFailStopped:
        return CentreFailStopped(f"{self._failure}; restart the centre (it replays its journal)")

    def refuse_if_failed(self) -> None:
        if self._failure:
            raise self.unavailable()

    # -- the commit path ------------------------------------------------------------------------

    def commit(
        self,
        kind: str,
        region: str,
        key: str,
        body: dict,
        *,
        apply: Callable[[], Any],
        field: str = "request",
        unique: bool = False,
    ) -> None:
        """Apply a change and queue its journal entry, under the lock; the answer waits for it.

        A key already journaled (or queued) is the request's refusal (InvalidInput naming ``field``), found
        before anything changes: the journal would refuse the entry after the change was applied in memory,
        and the centre would have to fail stop. ``unique``: the caller's key cannot repeat (a centre-made id,
        or the institution and msgid the answer store lets through once), so the journal is not asked (a
        read of the database, under the lock); the flows that :meth:`append` make such keys only."""
        with self.lock:
            self.refuse_if_failed()
            if (kind, key) in self._in_flight or (not unique and self.journal.find(kind, key) is not None):
                raise InvalidInput(f"this {kind} ({key}) is already recorded", field=field)
            apply()
            future = self.journal.append_future(kind, region, key, body)
            self._in_flight.add((kind, key))
            _note_answer_entry(kind, key, body)
        future.add_done_callback(lambda _: self._landed(kind, key))
        self.wait(future)

    def _landed(self, kind: str, key: str) -> None:
        self._in_flight.discard((kind, key))  # on the journal's thread; a set's discard is atomic (GIL)

    def append(self, kind: str, region: str, key: str, body: dict) -> Future:
        """Queue one journal entry (the caller holds the lock and has applied the change)."""
        _note_answer_entry(kind, key, body)
        return self.journal.append_future(kind, region, key, body)

    def wait(self, future: Future) -> None:
        """Wait until a queued journal entry is durable; inside a state-changing request, the answer
        waits for it instead (see :meth:`collect_waits`)."""
        journal_waits = _JOURNAL_WAITS.get()
        if journal_waits is not None:
            journal_waits.append(future)
            return
        try:
            future.result()
        except Exception as exc:  # noqa: BLE001 (whatever the journal's commit failed with, the centre fail-stops)
            raise self.fail(exc) from None

    @contextlib.contextmanager
    def collect_waits(self) -> Iterator[Collected]:
        """Within this block, :meth:`wait` collects the journal entries into what it yields instead of
        blocking: the request's answer is then chained to them, and no thread waits. The entries queued
        that answer the request are noted too (where the answer store finds that answer again)."""
        collected = Collected()
        token = _JOURNAL_WAITS.set(collected.waits)
        answers_token = _ANSWER_ENTRIES.set(collected.answer_entries)
        try:
            yield collected
        finally:
            _ANSWER_ENTRIES.reset(answers_token)
            _JOURNAL_WAITS.reset(token)

    # -- replay ---------------------------------------------------------------------------------

    def owns(self, kind: str, replayer: Replayer) -> None:
        """Register the flow that rebuilds its state from the journal entries of ``kind``."""
        if kind in self._owners:
            raise ValueError(f"journal entries of kind {kind!r} already have an owner")
        self._owners[kind] = replayer

    def observe_every(self, observer: Replayer) -> None:
        """Register an observer of every entry (after its owner has replayed it)."""
        self._observers.append(observer)

    def replay(self) -> int:
        """Replay the journal into the (fresh) settler and every flow; return the number of entries."""
        return replay(self.journal, self.settler, observe=self._observe)

    def _observe(self, entry: Entry) -> None:
        owner = self._owners.get(entry.kind)
        if owner is not None:
            owner(entry)
        for observer in self._observers:
            observer(entry)
