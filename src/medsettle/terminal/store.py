"""The counter's durable store (SQLite, WAL, synchronous=FULL), separate from the centre's journal.

It is a store, not a journal: its rows are updated in place as a sale moves on (the centre's journal only
appends). The CLI still calls its file the terminal's journal (``--journal``), as it always has.

Every msgid is written (with the exact bytes to send) before it is sent, and every step of a sale or a
voucher is a state recorded in one transaction with the message it concerns, so a terminal killed at any
point finds on restart exactly what it had done and what it had not.

Tables:
- ``outbox``:   msgid → infno, request bytes, state (``written`` → ``answered``, or ``abandoned``: no longer
                resent), answer, sale or voucher
- ``sales``:    one row per sale, visit or stay at the counter; its state is a :class:`~.states.SaleState`
                (a pharmacy sale ``new`` → ``settling`` → ``settled`` → ``done`` (receipt printed), or →
                ``deferred`` (cash taken, voucher made), ``provisional``, ``cancelled``, ``aborted`` or
                ``refused`` (the centre refused the person, an item or the settle: nothing owed, no voucher);
                a visit's and a stay's steps in between), every write checked against its transitions
- ``vouchers``: deferred-settlement vouchers; state ``pending`` → ``settling`` → ``settled``, or
                ``manual_claim``; ``blocked_by`` is a 2601 that must be answered first
- ``saf``:      store-and-forward entries in the order taken; state ``queued`` → ``forwarding`` (msgid
                written) → ``forwarded``, or ``flagged`` for a clerk (refused, too old, too many tries)
- ``persons``:  who the counter has seen (1101 answers), by card number or ID number, for provisional
                settlement while the centre is away
- ``meta``:     sign_no, the msgid sequence, the failure policy and floor limits, the cached rules

One process at a time holds it (:mod:`.journal_lock`): a second process opening the same file is refused
with :class:`~.journal_lock.JournalInUse` before anything is read or written.

This module is the only one that speaks SQL: the counter's parts read and write rows through its methods,
inside :meth:`CounterStore.transaction` where a step must be durable as one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, overload

import orjson

from ..seams import SYSTEM_CLOCK, Clock
from .common import CounterError
from .journal_lock import hold, release
from .states import SaleState, check_transition

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    msgid    TEXT PRIMARY KEY,
    infno    TEXT NOT NULL,
    request  BLOB NOT NULL,
    state    TEXT NOT NULL,
    answer   TEXT,
    sale     TEXT,
    voucher  TEXT,
    created  TEXT NOT NULL,
    answered TEXT
);
CREATE TABLE IF NOT EXISTS sales (
    sale     TEXT PRIMARY KEY,
    state    TEXT NOT NULL,
    data     TEXT NOT NULL,
    updated  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS vouchers (
    voucher    TEXT PRIMARY KEY,
    sale       TEXT NOT NULL UNIQUE,
    state      TEXT NOT NULL,
    data       TEXT NOT NULL,
    blocked_by TEXT,
    updated    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS saf (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    sale     TEXT NOT NULL UNIQUE,
    state    TEXT NOT NULL,
    data     TEXT NOT NULL,
    msgid    TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS persons (key TEXT PRIMARY KEY, person TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class JournalUnwritable(CounterError):
    """The counter's store cannot be written (the disk is full, or the file is read-only): the step did not
    happen, and nothing of it was sent (every message is written before it is sent). Once the disk has room
    again, a restart's resume finishes what was in flight."""

    code = "JOURNAL_UNWRITABLE"


class MissingRow(CounterError):
    """A row the counter wrote before is not in its store (the file was changed, or is another counter's):
    the flow that needs it cannot go on. Raised by the ``require_*`` reads instead of a crash on None."""


def _text(value: Any) -> str:
    """A row's JSON text (UTF-8 kept, compact): orjson, several times quicker than the json module, which a
    counter's every step calls several times (its rows are written and read back whole)."""
    return orjson.dumps(value).decode()


class CounterStore:
    """The counter's tables and the only SQL the counter runs; every state write checked by its transitions."""

    def __init__(self, path: str | Path, *, clock: Clock = SYSTEM_CLOCK) -> None:
        """``clock``: the rows' timestamps (``created``, ``answered``, ``updated``) come from its wall time.
        JournalInUse (nothing opened) when another process holds the journal."""
        self.path = Path(path)
        self._clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._held: str | None = hold(self.path, clock)  # before SQLite opens it: a refused opener touches nothing
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except BaseException:
            self.close()
            raise
        self._lock = threading.RLock()

    def close(self) -> None:
        """Close the database and give up the journal's lock (once, however often it is called)."""
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()
        if self._held is not None:
            release(self._held)
            self._held = None

    def __del__(self) -> None:
        """A store dropped without close (a test's temporary counter) gives the journal back too."""
        with contextlib.suppress(Exception):
            self.close()

    def limit_size(self, pages: int | None) -> None:
        """The disk's seam: let the file grow by at most ``pages`` more pages (None: as the disk allows), so a
        simulated or tested disk fills up as a real one does, with SQLite's own SQLITE_FULL."""
        with self._lock:
            current = self._db.execute("PRAGMA page_count").fetchone()[0]
            limit = 2**31 - 2 if pages is None else current + max(0, pages)  # SQLite's largest page count
            self._db.execute(f"PRAGMA max_page_count = {int(limit)}")

    def _now(self) -> str:
        """A row's timestamp: UTC, to the millisecond, as journals have always stored it."""
        return self._clock.now().astimezone(dt.UTC).isoformat(timespec="milliseconds")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One durable step: everything inside commits together (fsync) or not at all."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:  # SQLITE_FULL, SQLITE_READONLY, SQLITE_IOERR: nothing written
                raise JournalUnwritable(f"the counter's journal {self.path} cannot be written: {exc}") from None

    # -- meta ----------------------------------------------------------------------------------------

    @overload
    def get_meta(self, name: str) -> str | None: ...
    @overload
    def get_meta(self, name: str, default: str) -> str: ...

    def get_meta(self, name: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else default

    def set_meta(self, db: sqlite3.Connection, name: str, value: str) -> None:
        db.execute(
            "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = ?",
            (name, value, value),
        )

    def next_seq(self, db: sqlite3.Connection) -> int:
        seq = int(self.get_meta("seq", "0")) + 1
        self.set_meta(db, "seq", str(seq))
        return seq

    # -- outbox --------------------------------------------------------------------------------------

    def write_message(
        self,
        db: sqlite3.Connection,
        msgid: str,
        infno: str,
        request: bytes,
        *,
        sale: str | None = None,
        voucher: str | None = None,
    ) -> None:
        db.execute(
            "INSERT INTO outbox (msgid, infno, request, state, sale, voucher, created) "
            "VALUES (?, ?, ?, 'written', ?, ?, ?)",
            (msgid, infno, request, sale, voucher, self._now()),
        )

    def record_answer(self, db: sqlite3.Connection, msgid: str, answer: dict[str, Any]) -> None:
        db.execute(
            "UPDATE outbox SET state = 'answered', answer = ?, answered = ? WHERE msgid = ?",
            (_text(answer), self._now(), msgid),
        )

    def abandon_message(self, db: sqlite3.Connection, msgid: str) -> None:
        """Stop resending ``msgid`` (it changes nothing, or a 2601 now reverses it)."""
        db.execute("UPDATE outbox SET state = 'abandoned' WHERE msgid = ?", (msgid,))

    def message(self, msgid: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT msgid, infno, request, state, answer, sale, voucher FROM outbox WHERE msgid = ?", (msgid,)
        ).fetchone()
        if row is None:
            return None
        return {
            "msgid": row[0],
            "infno": row[1],
            "request": bytes(row[2]),
            "state": row[3],
            "answer": orjson.loads(row[4]) if row[4] else None,
            "sale": row[5],
            "voucher": row[6],
        }

    def require_message(self, msgid: str) -> dict[str, Any]:
        """The message ``msgid``, which this counter wrote (a flow holds its msgid): MissingRow if it is gone."""
        message = self.message(msgid)
        if message is None:
            raise MissingRow(f"message {msgid} is not in the counter's journal {self.path}: was the file replaced?")
        return message

    def messages_of(self, sale: str) -> list[dict[str, Any]]:
        """The messages written for ``sale``, oldest first."""
        rows = self._db.execute("SELECT msgid FROM outbox WHERE sale = ? ORDER BY rowid", (sale,)).fetchall()
        return [self.require_message(r[0]) for r in rows]

    def unanswered(self) -> list[dict[str, Any]]:
        """Messages written and never answered, oldest first: each is resent unchanged until answered."""
        rows = self._db.execute("SELECT msgid FROM outbox WHERE state = 'written' ORDER BY rowid").fetchall()
        return [self.require_message(r[0]) for r in rows]

    # -- sales and vouchers ----------------------------------------------------------------------------

    def put_sale(
        self, db: sqlite3.Connection, sale: str, state: SaleState, data: dict[str, Any], *, step: str | None = None
    ) -> None:
        """Write ``sale`` in ``state`` (a stay's :attr:`~SaleState.STAY_STEP` names its ``step``); a state
        its present one may not go to raises :class:`~.states.IllegalTransition`, and nothing is written."""
        row = db.execute("SELECT state FROM sales WHERE sale = ?", (sale,)).fetchone()
        check_transition(sale, SaleState.parse(row[0]) if row else None, state)
        db.execute(
            "INSERT INTO sales (sale, state, data, updated) VALUES (?, ?, ?, ?) ON CONFLICT (sale) "
            "DO UPDATE SET state = excluded.state, data = excluded.data, updated = excluded.updated",
            (sale, state.stored(step), _text(data), self._now()),
        )

    def put_refused(self, db: sqlite3.Connection, sale: str, err_msg: str) -> None:
        """The centre refused a step of ``sale`` before anything was settled: it ends, nothing owed."""
        _, data = self.require_sale(sale)
        self.put_sale(db, sale, SaleState.REFUSED, {**data, "err_msg": err_msg})

    def sale(self, sale: str) -> tuple[SaleState, dict[str, Any]] | None:
        row = self._db.execute("SELECT state, data FROM sales WHERE sale = ?", (sale,)).fetchone()
        return (SaleState.parse(row[0]), orjson.loads(row[1])) if row else None

    def require_sale(self, sale: str) -> tuple[SaleState, dict[str, Any]]:
        """The state and data of ``sale``, which this counter recorded (a flow holds its id): MissingRow if
        it is gone. A clerk's id that may be a typo is looked up with :meth:`sale` and refused by name."""
        found = self.sale(sale)
        if found is None:
            raise MissingRow(f"sale {sale} is not in the counter's journal {self.path}: was the file replaced?")
        return found

    def sales(self, *states: SaleState | str) -> list[tuple[str, SaleState, dict[str, Any]]]:
        """The sales in any of ``states`` (all without), oldest first."""
        wanted = tuple(SaleState(s) for s in states)
        query, args = "SELECT sale, state, data FROM sales", [s.value for s in wanted if s is not SaleState.STAY_STEP]
        if wanted:
            query += f" WHERE state IN ({','.join('?' * len(args))})"
            if SaleState.STAY_STEP in wanted:
                query += " OR (state LIKE 'stay %' AND state != ?)"
                args.append(SaleState.STAY_DEFERRED.value)
        return [
            (r[0], SaleState.parse(r[1]), orjson.loads(r[2])) for r in self._db.execute(query + " ORDER BY rowid", args)
        ]

    def put_voucher(
        self,
        db: sqlite3.Connection,
        voucher: str,
        sale: str,
        state: str,
        data: dict[str, Any],
        blocked_by: str | None = None,
    ) -> None:
        db.execute(
            "INSERT INTO vouchers (voucher, sale, state, data, blocked_by, updated) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (voucher) DO UPDATE SET state = excluded.state, data = excluded.data, "
            "blocked_by = excluded.blocked_by, updated = excluded.updated",
            (voucher, sale, state, _text(data), blocked_by, self._now()),
        )

    def unblock_vouchers(self, db: sqlite3.Connection, reversal: str) -> None:
        """The 2601 ``reversal`` is answered: the vouchers that waited for it may be settled."""
        db.execute("UPDATE vouchers SET blocked_by = NULL WHERE blocked_by = ?", (reversal,))

    def voucher(self, voucher: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT voucher, sale, state, data, blocked_by FROM vouchers WHERE voucher = ?", (voucher,)
        ).fetchone()
        return self._voucher_row(row) if row else None

    def require_voucher(self, voucher: str) -> dict[str, Any]:
        """The voucher ``voucher``, which this counter made (a flow holds its number): MissingRow if it is gone."""
        found = self.voucher(voucher)
        if found is None:
            raise MissingRow(f"voucher {voucher} is not in the counter's journal {self.path}: was the file replaced?")
        return found

    def vouchers(self, *states: str) -> list[dict[str, Any]]:
        query = "SELECT voucher, sale, state, data, blocked_by FROM vouchers"
        if states:
            query += f" WHERE state IN ({','.join('?' * len(states))})"
        return [self._voucher_row(r) for r in self._db.execute(query + " ORDER BY rowid", states)]

    # -- store-and-forward ---------------------------------------------------------------------------

    def put_saf(
        self,
        db: sqlite3.Connection,
        sale: str,
        state: str,
        data: dict[str, Any],
        *,
        msgid: str | None = None,
        attempts: int = 0,
    ) -> None:
        db.execute(
            "INSERT INTO saf (sale, state, data, msgid, attempts, updated) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (sale) DO UPDATE SET state = excluded.state, data = excluded.data, "
            "msgid = excluded.msgid, attempts = excluded.attempts, updated = excluded.updated",
            (sale, state, _text(data), msgid, attempts, self._now()),
        )

    def saf_entries(self, *states: str) -> list[dict[str, Any]]:
        query = "SELECT seq, sale, state, data, msgid, attempts FROM saf"
        if states:
            query += f" WHERE state IN ({','.join('?' * len(states))})"
        return [
            {"seq": r[0], "sale": r[1], "state": r[2], **orjson.loads(r[3]), "msgid": r[4], "attempts": r[5]}
            for r in self._db.execute(query + " ORDER BY seq", states)
        ]

    def remember_person(self, db: sqlite3.Connection, keys: list[str], person: dict[str, Any]) -> None:
        for key in keys:
            db.execute(
                "INSERT INTO persons (key, person) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                "person = excluded.person",
                (key, _text(person)),
            )

    def known_person(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT person FROM persons WHERE key = ?", (key,)).fetchone()
        return orjson.loads(row[0]) if row else None

    @staticmethod
    def voucher_fields(voucher: dict[str, Any]) -> dict[str, Any]:
        """A voucher's stored data, without the columns ``voucher()`` adds (to write it back changed)."""
        return {k: v for k, v in voucher.items() if k not in ("voucher", "sale", "state", "blocked_by")}

    @staticmethod
    def saf_fields(entry: dict[str, Any]) -> dict[str, Any]:
        """A queued entry's stored data, without the columns ``saf_entries()`` adds."""
        return {k: v for k, v in entry.items() if k not in ("seq", "sale", "state", "msgid", "attempts")}

    @staticmethod
    def _voucher_row(row: tuple[Any, ...]) -> dict[str, Any]:
        return {"voucher": row[0], "sale": row[1], "state": row[2], **orjson.loads(row[3]), "blocked_by": row[4]}
