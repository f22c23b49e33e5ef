"""The append-only journal: every state change of the centre, durable before its answer leaves.

An entry is (seq, at, kind, region, key, body): ``seq`` is the append order, ``kind`` what happened
(settle, cancel, credit, ...), ``region`` the insured region (the shard key), ``key`` the id that makes
an entry unique within its kind (a setl_id, a msgid), ``body`` a JSON object. Entries are never
updated or deleted; state is rebuilt by replaying them in ``seq`` order (:mod:`.replay`).

Appends go through one writer thread that commits whatever has queued up in one transaction (group
commit: many requests share one fsync, TigerBeetle's and PostgreSQL's trick). ``append`` returns only
once its entry is durable (SQLite WAL with synchronous=FULL).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import queue
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

from ..errors import MedsettleError
from ..jsontext import dumps, loads
from ..seams import SYSTEM_CLOCK, Clock
from .files import FileStore, MemoryFileStore, SQLiteFileStore
from .gate import GateStore, MemoryGateStore, SQLiteGateStore

SCHEMA_VERSION = "1"
MAX_GROUP = 512  # entries committed together at most; bounds a transaction's size

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    seq    INTEGER PRIMARY KEY,
    at     TEXT NOT NULL,
    kind   TEXT NOT NULL,
    region TEXT NOT NULL,
    key    TEXT NOT NULL,
    body   TEXT NOT NULL,
    UNIQUE (kind, key)
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class JournalError(MedsettleError):
    code = "JOURNAL_ERROR"


class DuplicateEntry(JournalError):
    """An entry of that kind with that key is already in the journal."""

    code = "DUPLICATE_ENTRY"


@dataclass(frozen=True)
class Entry:
    seq: int
    at: dt.datetime
    kind: str
    region: str
    key: str
    body: dict[str, Any]


# One row as it is written: (at, kind, region, key, body), all text; the database gives it its seq.
Row = tuple[str, str, str, str, str]
# What the writer thread takes off its queue: a row and the Future its seq goes to; None means stop.
Queued = tuple[Row, Future[int]]


class GroupCommitJournal:
    """The journal's shape on any database: one writer thread, grouped commits, ordered reads.

    A backend supplies ``_connect`` (the writer's connection, schema created and checked),
    ``_insert`` (one row in the open transaction, returning its seq), ``_is_duplicate`` and the
    read connection (``_read_rows``).
    """

    name = "journal"

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK, inline: bool = False) -> None:
        """``clock``: where the rows' timestamps come from (the simulator passes its virtual clock).
        ``inline``: no writer thread; each append commits in the caller's thread before it returns. The
        durability thread is a seam the simulator owns: it runs one thread, and a commit happens when it
        says, so thread hand-offs cost it nothing and cannot reorder anything."""
        self._clock = clock
        self.commits = 0  # transactions committed: fewer than entries when appends were grouped
        self.broken: JournalError | None = None  # the first failed commit: nothing after it is written
        self._queue: queue.Queue[Queued | None] = queue.Queue()
        self._closed = False
        self._inline_conn: Any = None
        if inline:
            self._inline_conn = self._connect()
            return
        ready: Future[None] = Future()
        self._writer = threading.Thread(target=self._write_loop, args=(ready,), name="medsettle-journal", daemon=True)
        self._writer.start()
        ready.result()  # raises if the database cannot be opened or has another schema

    # -- writing ------------------------------------------------------------------------------

    def append(self, kind: str, region: str, key: str, body: dict[str, Any]) -> int:
        """Append one entry; return its seq once it is durable. DuplicateEntry if (kind, key) exists."""
        return self.append_future(kind, region, key, body).result()

    def append_future(self, kind: str, region: str, key: str, body: dict[str, Any]) -> Future[int]:
        """Queue an entry; the Future resolves to its seq when durable (for callers that group their own)."""
        if self._closed:
            raise JournalError(f"{self.name} is closed")
        row: Row = (
            self._clock.now().replace(tzinfo=None).isoformat(timespec="microseconds"),
            kind,
            region,
            key,
            dumps(body),
        )
        future: Future[int] = Future()
        if self._inline_conn is not None:
            self._commit(self._inline_conn, [(row, future)])
        else:
            self._queue.put((row, future))
        return future

    def _write_loop(self, ready: Future[None]) -> None:
        try:
            conn = self._connect()
        except JournalError as exc:
            ready.set_exception(exc)
            return
        except Exception as exc:  # noqa: BLE001 (handed to the opener)
            ready.set_exception(JournalError(f"{self.name}: {exc}"))
            return
        ready.set_result(None)
        while True:
            item = self._queue.get()
            if item is None:
                break
            group = [item]
            while len(group) < MAX_GROUP:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this group, then stop
                    break
                group.append(nxt)
            self._commit(conn, group)
        conn.close()

    def _commit(self, conn: Any, group: list[Queued]) -> None:
        if self.broken is not None:
            # Once a commit has failed, later entries are refused too, so the journal never holds an
            # entry whose predecessor was lost (its writers answered "unavailable" for that one).
            for _, future in group:
                future.set_exception(JournalError(f"{self.name}: an earlier commit failed ({self.broken})"))
            return
        try:
            self._begin(conn)
            seqs = self._insert_many(conn, [row for row, _ in group])
            conn.commit()
            self.commits += 1
        except Exception as exc:  # noqa: BLE001 (every failure is handed to the waiting callers)
            self._rollback(conn)
            if self._is_duplicate(exc):
                if len(group) > 1:  # one bad entry must not fail its neighbours: commit them one by one
                    for one in group:
                        self._commit(conn, [one])
                    return
                row, future = group[0]
                future.set_exception(DuplicateEntry(f"a {row[1]} entry with key {row[3]!r} is already journaled"))
                return
            self.broken = JournalError(f"{self.name}: {exc}")
            for _, future in group:
                future.set_exception(self.broken)
            return
        for (_, future), seq in zip(group, seqs, strict=True):
            future.set_result(seq)

    # -- reading ------------------------------------------------------------------------------

    def entries(self, after: int = 0) -> Iterator[Entry]:
        """Entries with seq > ``after``, in seq order (read on a connection of its own)."""
        for seq, at, kind, region, key, body in self._read_rows(
            "SELECT seq, at, kind, region, key, body FROM journal WHERE seq > {p} ORDER BY seq", (after,)
        ):
            at = at if isinstance(at, dt.datetime) else dt.datetime.fromisoformat(at)
            yield Entry(seq, at, kind, region, key, loads(body))

    def count(self) -> int:
        return next(iter(self._read_rows("SELECT count(*) FROM journal", ())))[0]

    def find(self, kind: str, key: str) -> Entry | None:
        """The entry of this kind and key, if any (another process may have written it)."""
        for seq, at, kind_, region, key_, body in self._read_rows(
            "SELECT seq, at, kind, region, key, body FROM journal WHERE kind = {p} AND key = {p}", (kind, key)
        ):
            at = at if isinstance(at, dt.datetime) else dt.datetime.fromisoformat(at)
            return Entry(seq, at, kind_, region, key_, loads(body))
        return None

    @functools.cached_property
    def files(self) -> FileStore:
        """The files kept beside the journal (9101 uploads, the centre's answer files; ledger/files.py).
        In memory here; the SQLite and PostgreSQL journals keep them in their database."""
        return MemoryFileStore()

    @functools.cached_property
    def gate(self) -> GateStore:
        """The gateway's credentials and nonces (ledger/gate.py). In memory here; the SQLite and PostgreSQL
        journals keep them in their database."""
        return MemoryGateStore()

    def claim_regions(self, regions: list[str]) -> None:
        """Become the one writer of these insured regions' persons, for as long as this journal is open;
        JournalError naming the region if another centre process holds it."""
        raise NotImplementedError

    def close(self) -> None:
        """Finish every queued append, then stop the writer."""
        if not self._closed:
            self._closed = True
            if self._inline_conn is not None:
                self._inline_conn.close()
            else:
                self._queue.put(None)
                self._writer.join()
            if "gate" in self.__dict__:  # opened (a cached_property): its connections too
                self.gate.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- backend hooks ------------------------------------------------------------------------

    def _connect(self) -> Any:
        raise NotImplementedError

    def _begin(self, conn: Any) -> None:
        pass

    def _insert(self, conn: Any, row: Row) -> int:
        raise NotImplementedError

    def _insert_many(self, conn: Any, rows: list[Row]) -> list[int]:
        """Insert a group's rows in the open transaction; their seqs in order."""
        return [self._insert(conn, row) for row in rows]

    def _rollback(self, conn: Any) -> None:
        # Any failure is ignored: the connection may already be broken, and the error is reported.
        with contextlib.suppress(Exception):
            conn.rollback()

    def _is_duplicate(self, exc: Exception) -> bool:
        raise NotImplementedError

    def _read_rows(self, sql: str, params: tuple) -> Iterator[tuple]:
        raise NotImplementedError


_CHUNKS = (128, 32, 8, 1)  # rows per INSERT statement, largest first


@functools.lru_cache(maxsize=len(_CHUNKS))
def _insert_rows_sql(rows: int) -> str:
    return "INSERT INTO journal (at, kind, region, key, body) VALUES " + ", ".join(["(?, ?, ?, ?, ?)"] * rows)


class SQLiteJournal(GroupCommitJournal):
    """The embedded journal: one SQLite file in WAL mode, synchronous=FULL."""

    _owner_file: IO[str] | None = None  # the open ".owner" file whose lock claim_regions holds

    def __init__(self, path: str | Path, *, clock: Clock = SYSTEM_CLOCK, inline: bool = False) -> None:
        self.path = Path(path)
        self.name = f"journal {self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(clock=clock, inline=inline)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(SCHEMA)
        version = conn.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        if version is None:
            conn.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        elif version[0] != SCHEMA_VERSION:
            raise JournalError(f"{self.path}: journal schema {version[0]}, this medsettle reads {SCHEMA_VERSION}")
        return conn

    def _begin(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def _insert(self, conn: sqlite3.Connection, row: Row) -> int:
        seq = conn.execute("INSERT INTO journal (at, kind, region, key, body) VALUES (?, ?, ?, ?, ?)", row).lastrowid
        if seq is None:  # sqlite3 sets lastrowid after every INSERT; None would mean the row has no seq
            raise JournalError(f"{self.path}: the INSERT gave no seq")
        return seq

    def _insert_many(self, conn: sqlite3.Connection, rows: list[Row]) -> list[int]:
        # A few multi-row INSERTs per group instead of one step per row: the writer thread gives the GIL
        # up and takes it back once per statement, and every such hand-off stalls the event loop that
        # answers requests. Chunk sizes come from a fixed set so their statements stay in the cache.
        # seq is the rowid, and BEGIN IMMEDIATE keeps every other writer out until the commit, so the
        # group's seqs are consecutive.
        done = 0
        while done < len(rows):
            size = next(n for n in _CHUNKS if n <= len(rows) - done)
            chunk = rows[done : done + size]
            conn.execute(_insert_rows_sql(size), [value for row in chunk for value in row])
            done += size
        last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        return list(range(last - len(rows) + 1, last + 1))

    @functools.cached_property
    def files(self) -> FileStore:
        """The files table in this journal's SQLite file."""
        return SQLiteFileStore(self.path)

    @functools.cached_property
    def gate(self) -> GateStore:
        """The gateway's tables in this journal's SQLite file."""
        return SQLiteGateStore(self.path)

    def _rollback(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    def _is_duplicate(self, exc: Exception) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    def close(self) -> None:
        super().close()
        owner = self._owner_file
        if owner is not None:
            owner.close()  # releases the lock
            self._owner_file = None

    def claim_regions(self, regions: list[str]) -> None:
        """A SQLite journal has one writer process: an exclusive lock on a file beside it, whatever the regions."""
        import fcntl  # noqa: PLC0415 (POSIX only, like the rest of the stack)

        if self._owner_file is not None:
            return  # this journal object holds it already
        owner = open(self.path.with_name(self.path.name + ".owner"), "w")  # noqa: SIM115 - held open
        self._owner_file = owner
        try:
            fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner.close()
            raise JournalError(
                f"{self.path}: another centre process is using this journal (a SQLite journal has "
                "one; share a PostgreSQL database to run several)"
            ) from None

    def _read_rows(self, sql: str, params: tuple) -> Iterator[tuple]:
        if self._inline_conn is not None:  # one thread writes and reads: its own connection sees every commit
            yield from self._inline_conn.execute(sql.format(p="?"), params).fetchall()
            return
        conn = sqlite3.connect(self.path)
        try:
            yield from conn.execute(sql.format(p="?"), params)
        finally:
            conn.close()
