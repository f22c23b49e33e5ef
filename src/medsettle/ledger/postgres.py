"""The journal on PostgreSQL (psycopg 3), for deployments where several centre processes share a database.

Same schema, same behaviour and the same test suite as the SQLite journal. A commit is durable with
PostgreSQL's defaults (fsync and synchronous_commit on). Schema creation is serialised with an advisory
lock so several processes may open the same database at once. (Each centre process owning a disjoint
set of insured regions: :meth:`PostgresJournal.claim_regions` holds one session-level advisory lock per
region on a connection kept for the process's life, so a second process claiming a region is refused.)
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterator
from typing import Any

from ..seams import SYSTEM_CLOCK, Clock
from .files import FileStore, PostgresFileStore
from .gate import GateStore, PostgresGateStore
from .journal import SCHEMA_VERSION, GroupCommitJournal, JournalError, Row

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    seq    BIGSERIAL PRIMARY KEY,
    at     TIMESTAMP NOT NULL,
    kind   TEXT NOT NULL,
    region TEXT NOT NULL,
    key    TEXT NOT NULL,
    body   TEXT NOT NULL,
    UNIQUE (kind, key)
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class PostgresJournal(GroupCommitJournal):
    def __init__(self, url: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        try:
            import psycopg  # noqa: F401, PLC0415 (only deployments on PostgreSQL need it)
        except ImportError:
            raise JournalError("the PostgreSQL journal needs psycopg 3: pip install 'psycopg[binary]'") from None
        self.url = url
        self.name = "PostgreSQL journal"
        super().__init__(clock=clock)

    # -- backend hooks ------------------------------------------------------------------------

    def _connect(self) -> Any:
        import psycopg  # noqa: PLC0415

        conn = psycopg.connect(self.url)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_id("medsettle-schema"),))
            conn.execute(SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('schema', %s)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise JournalError(f"PostgreSQL journal schema {row[0]}, this medsettle reads {SCHEMA_VERSION}")
        # A group is one INSERT (_insert_many), so each statement is its own transaction: one round trip to
        # the server per group commit, instead of BEGIN, INSERT and COMMIT each of their own.
        conn.autocommit = True
        return conn

    def _insert(self, conn: Any, row: Row) -> int:
        return conn.execute(
            "INSERT INTO journal (at, kind, region, key, body) VALUES (%s, %s, %s, %s, %s) RETURNING seq", row
        ).fetchone()[0]

    def _insert_many(self, conn: Any, rows: list[Row]) -> list[int]:
        # One statement per group, whatever its size: the rows as five arrays, unnested in order. A
        # statement is atomic, so a duplicate key anywhere inserts none of the group (the caller then commits
        # them one by one). RETURNING gives each row's seq with its kind and key, which are unique together,
        # so the seqs are matched to the rows whatever order the server returns them in. The text never
        # changes, so psycopg prepares it once.
        columns = [list(column) for column in zip(*rows, strict=True)]
        found = conn.execute(_INSERT_ROWS, columns).fetchall()
        seqs = {(kind, key): seq for seq, kind, key in found}
        return [seqs[(row[1], row[3])] for row in rows]

    def _is_duplicate(self, exc: Exception) -> bool:
        import psycopg  # noqa: PLC0415

        return isinstance(exc, psycopg.errors.UniqueViolation)

    def _read_rows(self, sql: str, params: tuple) -> Iterator[tuple]:
        import psycopg  # noqa: PLC0415

        with psycopg.connect(self.url) as conn:
            yield from conn.execute(sql.format(p="%s"), params)

    @functools.cached_property
    def files(self) -> FileStore:
        """The files table in this journal's PostgreSQL database (every centre process on it sees them)."""
        return PostgresFileStore(self.url)

    @functools.cached_property
    def gate(self) -> GateStore:
        """The gateway's tables in this journal's PostgreSQL database (shared by every centre process on it)."""
        return PostgresGateStore(self.url)

    def claim_regions(self, regions: list[str]) -> None:
        import psycopg  # noqa: PLC0415

        owner = getattr(self, "_owner", None) or psycopg.connect(self.url, autocommit=True)  # locks live with it
        for region in regions:
            locked = owner.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", (_lock_id("medsettle-region"), int(region))
            ).fetchone()
            if locked is None:  # a SELECT of one function always answers one row
                raise JournalError(f"region {region}: PostgreSQL answered no row to pg_try_advisory_lock")
            if not locked[0]:
                owner.close()
                raise JournalError(f"region {region} is owned by another centre process on this database")
        self._owner = owner

    def close(self) -> None:
        super().close()
        owner = getattr(self, "_owner", None)
        if owner is not None:
            owner.close()  # releases the regions
            self._owner = None


_INSERT_ROWS = """
INSERT INTO journal (at, kind, region, key, body)
SELECT at::timestamp, kind, region, key, body
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
    WITH ORDINALITY AS t(at, kind, region, key, body, n)
ORDER BY n
RETURNING seq, kind, key
"""


def _lock_id(name: str) -> int:
    return zlib.crc32(name.encode()) - 2**31
