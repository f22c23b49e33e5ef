"""What the centre's gateway keeps in the journal's database: the institutions' credentials, the agency's
token and the nonces seen within the signature window. One store, both backends (and memory for tests).

These are kept in the database rather than in a file of the centre's because every centre process sharing
one PostgreSQL journal must accept the same credentials and refuse a nonce any of them has seen, and a
restart must neither change the credentials its clients hold nor forget the nonces of the last five
minutes. Neither table is part of the journal: a credential is configuration, a nonce lives 300 s.

- ``credentials``: one row per institution (``fixmedins_code``) with its gateway ``paasid`` and secret
  ``passtoken``; the row named ``AGENCY_ROW`` holds the agency's bearer token for /admin.
- ``nonces``: (paasid, nonce) seen, with the Unix second after which it may be forgotten. A claim inserts
  with ``ON CONFLICT DO NOTHING`` in one transaction for a whole batch, so of two processes claiming one
  nonce exactly one wins.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MedsettleError
from .files import _lock_id  # the same advisory lock ids as the journal's and the files' schema

SCHEMA = """
CREATE TABLE IF NOT EXISTS credentials (
    fixmedins_code TEXT PRIMARY KEY,
    paasid         TEXT NOT NULL UNIQUE,
    passtoken      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS nonces (
    paasid  TEXT NOT NULL,
    nonce   TEXT NOT NULL,
    expires BIGINT NOT NULL,
    PRIMARY KEY (paasid, nonce)
);
CREATE INDEX IF NOT EXISTS nonces_expires ON nonces (expires);
"""
AGENCY_ROW = "*agency*"  # not a fixmedins_code (those are 12 characters without '*')


@dataclass(frozen=True)
class Secret:
    """One institution's gateway credential (or the agency's token, as ``passtoken`` of AGENCY_ROW)."""

    paasid: str
    passtoken: str


Execute = Callable[[str, tuple], list]


class GateError(MedsettleError):
    """The gateway's tables could not be read or written (the journal's database failing: disk full, gone).
    The journal's own error code: it is the same database failing (ledger/journal.py imports this module)."""

    code = "JOURNAL_ERROR"


class GateStore:
    """Credentials and nonces in one database; the backends supply a transaction and their SQL dialect.

    ``shared``: whether other centre processes may use the same database at once (PostgreSQL), so that only
    the database can tell whether a nonce is fresh; a SQLite journal has one process (its lock file)."""

    shared = False

    def credentials(self) -> dict[str, Secret]:
        """Every stored credential by fixmedins_code (the agency's under AGENCY_ROW)."""
        with self._transaction(write=False) as execute:
            rows = execute("SELECT fixmedins_code, paasid, passtoken FROM credentials", ())
        return {code: Secret(paasid, token) for code, paasid, token in rows}

    def keep(self, wanted: Mapping[str, Secret], *, replace: bool) -> dict[str, Secret]:
        """Store ``wanted`` and answer what is stored afterwards.

        ``replace`` False (credentials the centre made up itself): a code already stored keeps its
        credential, so every process and every restart agrees with the first. ``replace`` True (an
        ``--institutions`` file, the operator's word): the file's credentials replace the stored ones."""
        with self._transaction(write=True) as execute:
            for code, secret in wanted.items():
                if replace:
                    execute("DELETE FROM credentials WHERE fixmedins_code = {p} OR paasid = {p}", (code, secret.paasid))
                execute(
                    "INSERT INTO credentials (fixmedins_code, paasid, passtoken) VALUES ({p}, {p}, {p}) "
                    "ON CONFLICT DO NOTHING",
                    (code, secret.paasid, secret.passtoken),
                )
            rows = execute("SELECT fixmedins_code, paasid, passtoken FROM credentials", ())
        return {code: Secret(paasid, token) for code, paasid, token in rows}

    def claim_nonces(self, claims: Sequence[tuple[str, str, int]], now: int) -> list[bool]:
        """Claim each (paasid, nonce, expires); True for a nonce not seen before (now taken), False for one
        seen. Nonces whose ``expires`` is before ``now`` are forgotten first. One transaction for all."""
        with self._transaction(write=True) as execute:
            execute("DELETE FROM nonces WHERE expires < {p}", (now,))
            taken = []
            for paasid, nonce, expires in claims:
                rows = execute(
                    "INSERT INTO nonces (paasid, nonce, expires) VALUES ({p}, {p}, {p}) "
                    "ON CONFLICT DO NOTHING RETURNING nonce",
                    (paasid, nonce, expires),
                )
                taken.append(bool(rows))
        return taken

    def close(self) -> None:
        """Close the connections this store opened (on whichever thread); the next use opens new ones."""

    def recent_nonces(self, now: int) -> list[tuple[str, str, int]]:
        """Every (paasid, nonce, expires) stored whose window is not over at ``now``."""
        with self._transaction(write=False) as execute:
            rows = execute("SELECT paasid, nonce, expires FROM nonces WHERE expires >= {p}", (now,))
        return [(paasid, nonce, int(expires)) for paasid, nonce, expires in rows]

    def _transaction(self, *, write: bool) -> contextlib.AbstractContextManager[Execute]:
        raise NotImplementedError


class _PerThread:
    """A database connection per thread (sqlite3's and psycopg's may not be shared), all closed on close()."""

    def __init__(self, connect: Callable[[], object]) -> None:
        self._connect = connect
        self._local = threading.local()
        self._opened: list = []
        self._lock = threading.Lock()

    def get(self) -> object:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._lock:
                self._opened.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()


class MemoryGateStore(GateStore):
    """The gate's tables in memory, for a journal without a database of its own (a test's, the simulator's)."""

    def __init__(self) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Execute]:
        with self._lock, self._db:
            yield lambda sql, params: self._db.execute(sql.format(p="?"), params).fetchall()


class SQLiteGateStore(GateStore):
    """The gate's tables in the SQLite journal's file. synchronous=NORMAL: in WAL mode a commit then costs no
    fsync (a nonce lost to a power cut was at most 300 s from expiring anyway; credentials are written once)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conns = _PerThread(self._connect)  # the nonce claimer's thread has its own
        with self._transaction(write=True) as execute:
            execute("SELECT 1", ())

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
        return conn

    def close(self) -> None:
        self._conns.close()

    @contextlib.contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Execute]:
        try:
            conn: sqlite3.Connection = self._conns.get()  # type: ignore[assignment]
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            raise GateError(f"{self._path}: {exc}") from exc
        try:
            yield lambda sql, params: conn.execute(sql.format(p="?"), params).fetchall()
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise GateError(f"{self._path}: {exc}") from exc
            raise


_SWEEP_EVERY_S = 60  # how often PostgreSQL's expired nonces are deleted (a claim retakes one meanwhile)
_CLAIM_NONCES = """
INSERT INTO nonces (paasid, nonce, expires)
SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[])
ON CONFLICT (paasid, nonce) DO UPDATE SET expires = EXCLUDED.expires WHERE nonces.expires < %s
RETURNING paasid, nonce
"""


class PostgresGateStore(GateStore):
    """The gate's tables in the PostgreSQL journal's database, shared by every centre process on it."""

    shared = True

    def __init__(self, url: str) -> None:
        import psycopg  # noqa: PLC0415 (only deployments on PostgreSQL need it)

        self._url = url
        self._conns = _PerThread(lambda: psycopg.connect(url))
        self._autocommit_conns = _PerThread(lambda: psycopg.connect(url, autocommit=True))
        self._next_sweep = 0  # the Unix second from which expired nonces are deleted again
        with psycopg.connect(url) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_id("medsettle-schema"),))
            conn.execute(SCHEMA)

    def close(self) -> None:
        self._conns.close()
        self._autocommit_conns.close()

    def claim_nonces(self, claims: Sequence[tuple[str, str, int]], now: int) -> list[bool]:
        """As the base class's, in one statement and one round trip to the server for the whole batch (a busy
        centre claims dozens of nonces at a time, and every request waits for its claim): the claims as
        arrays, inserted unless the nonce is held and unexpired (an expired one is taken again, as the
        base class's forgetting it first would). A nonce twice in one batch is taken by its first claim. The
        expired rows themselves are deleted at most once a minute, by a statement of their own."""
        first: dict[tuple[str, str], int] = {}
        for paasid, nonce, expires in claims:
            first.setdefault((paasid, nonce), expires)
        with self._autocommit() as conn:
            if now >= self._next_sweep:
                conn.execute("DELETE FROM nonces WHERE expires < %s", (now,))
                self._next_sweep = now + _SWEEP_EVERY_S
            rows = conn.execute(
                _CLAIM_NONCES,
                ([p for p, _ in first], [n for _, n in first], list(first.values()), now),
            ).fetchall()
        inserted = {(paasid, nonce) for paasid, nonce in rows}
        taken = []
        for paasid, nonce, _ in claims:
            taken.append((paasid, nonce) in inserted)
            inserted.discard((paasid, nonce))  # a second claim of it in this batch finds it taken
        return taken

    @contextlib.contextmanager
    def _autocommit(self) -> Iterator[Any]:
        """This thread's connection with each statement its own transaction (one round trip, no BEGIN and
        COMMIT of their own)."""
        import psycopg  # noqa: PLC0415

        try:
            yield self._autocommit_conns.get()
        except psycopg.Error as exc:
            self._autocommit_conns.close()  # a broken connection is not reused
            raise GateError(f"PostgreSQL: {exc}") from exc

    @contextlib.contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Execute]:
        import psycopg  # noqa: PLC0415

        try:
            with self._transaction_of(self._conns.get()) as execute:
                yield execute
        except psycopg.Error as exc:
            self._conns.close()  # a broken connection is not reused
            raise GateError(f"PostgreSQL: {exc}") from exc

    @staticmethod
    @contextlib.contextmanager
    def _transaction_of(conn: Any) -> Iterator[Execute]:
        with conn.transaction():

            def execute(sql: str, params: tuple) -> list:
                cursor = conn.execute(sql.format(p="%s"), params)
                return cursor.fetchall() if cursor.description is not None else []

            yield execute
