"""Files kept in the journal's database (9101 uploads, the centre's answer files): one table, both backends.

The journal is append-only and replayed; files are neither: they are kept 30 days and then deleted, and a
centre process reads them from the database when asked, so every process on one PostgreSQL sees the files
another stored, and a restart loses none. A file is a row of ``files``: its number (``file_qury_no``), its
owner (the institution's fixmedins_code, or ``""`` for what the centre publishes to every institution), its
name, the day and time it was stored (the centre's clock) and its bytes.

Bounds (docs/files.md) are checked in the same transaction as the insert, so two processes cannot both
store an institution's 1,000th file of a day: SQLite by BEGIN IMMEDIATE, PostgreSQL by an advisory lock
per owner held to the commit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidInput

MAX_FILE_BYTES = 10 * 1024 * 1024  # a file, decoded
MAX_FILES_PER_DAY = 1000  # files an institution stores in one day (the centre's clock)
KEEP_DAYS = 30  # a file is kept this long after it was stored

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    file_qury_no TEXT PRIMARY KEY,
    owner        TEXT NOT NULL,
    filename     TEXT NOT NULL,
    day          TEXT NOT NULL,
    at           TEXT NOT NULL,
    size         INTEGER NOT NULL,
    content      BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS files_owner_day ON files (owner, day);
CREATE INDEX IF NOT EXISTS files_at ON files (at);
"""
POSTGRES_SCHEMA = SQLITE_SCHEMA.replace("BLOB", "BYTEA")


@dataclass(frozen=True)
class StoredFile:
    file_qury_no: str
    owner: str
    filename: str
    at: dt.datetime  # when it was stored, the centre's local time (naive)
    content: bytes

    @property
    def expires(self) -> dt.datetime:
        """Until when it may be downloaded (the platform's dld_endtime)."""
        return self.at + dt.timedelta(days=KEEP_DAYS)


class FileStore:
    """put / get of files in one database; the backends supply a connection and their SQL dialect."""

    def put(
        self, file_qury_no: str, owner: str, filename: str, content: bytes, now: dt.datetime, *, counted: bool
    ) -> StoredFile:
        """Store a file (or find it stored already under that number: the same file again, a resend).

        ``counted``: whether it counts toward the owner's files of the day (an institution's uploads do;
        the centre's answer files do not). InvalidInput naming ``input.fsUploadIn.in`` past the size bound,
        naming ``fixmedins_code`` past the daily count; nothing is stored then."""
        if len(content) > MAX_FILE_BYTES:
            raise InvalidInput(
                f"a file is at most {MAX_FILE_BYTES:,} bytes (decoded); this one is {len(content):,}",
                field="input.fsUploadIn.in",
            )
        now = now.replace(tzinfo=None)
        at, day = now.isoformat(timespec="microseconds"), now.date().isoformat()
        cutoff = (now - dt.timedelta(days=KEEP_DAYS)).isoformat(timespec="microseconds")
        with self._transaction(owner) as execute:
            execute("DELETE FROM files WHERE at < {p}", (cutoff,))  # past its 30 days: gone for good
            found = execute("SELECT at FROM files WHERE file_qury_no = {p} AND owner = {p}", (file_qury_no, owner))
            if found:
                return StoredFile(file_qury_no, owner, filename, _when(found[0][0]), content)
            if counted:
                (count,) = execute("SELECT count(*) FROM files WHERE owner = {p} AND day = {p}", (owner, day))[0]
                if count >= MAX_FILES_PER_DAY:
                    raise InvalidInput(
                        f"an institution stores at most {MAX_FILES_PER_DAY:,} files a day; {owner} has stored "
                        f"{count:,} on {day}",
                        field="fixmedins_code",
                    )
            execute(
                "INSERT INTO files (file_qury_no, owner, filename, day, at, size, content) "
                "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})",
                (file_qury_no, owner, filename, day, at, len(content), content),
            )
        return StoredFile(file_qury_no, owner, filename, now, content)

    def get(self, file_qury_no: str, readers: tuple[str, ...], now: dt.datetime) -> StoredFile | None:
        """The file of that number if one of ``readers`` owns it and its 30 days are not over, else None."""
        marks = ", ".join(["{p}"] * len(readers))
        cutoff = (now.replace(tzinfo=None) - dt.timedelta(days=KEEP_DAYS)).isoformat(timespec="microseconds")
        with self._transaction(None) as execute:
            rows = execute(
                f"SELECT owner, filename, at, content FROM files WHERE file_qury_no = {{p}} AND owner IN ({marks})"
                " AND at >= {p}",
                (file_qury_no, *readers, cutoff),
            )
        if not rows:
            return None
        owner, filename, at, content = rows[0]
        return StoredFile(file_qury_no, owner, filename, _when(at), bytes(content))

    def _transaction(self, owner: str | None) -> contextlib.AbstractContextManager[Callable[[str, tuple], list]]:
        raise NotImplementedError


def _when(at: Any) -> dt.datetime:
    return at if isinstance(at, dt.datetime) else dt.datetime.fromisoformat(at)


class MemoryFileStore(FileStore):
    """Files in memory, for a journal without a database of its own (a test's journal); same bounds."""

    def __init__(self) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.executescript(SQLITE_SCHEMA)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _transaction(self, owner: str | None) -> Iterator[Callable[[str, tuple], list]]:
        with self._lock, self._db:
            yield lambda sql, params: self._db.execute(sql.format(p="?"), params).fetchall()


class SQLiteFileStore(FileStore):
    """The files table in the SQLite journal's file (a connection of its own per call, like its reads)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        with contextlib.closing(self._connect()) as conn:
            conn.executescript(SQLITE_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, timeout=30)
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    @contextlib.contextmanager
    def _transaction(self, owner: str | None) -> Iterator[Callable[[str, tuple], list]]:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE" if owner is not None else "BEGIN")
            yield lambda sql, params: conn.execute(sql.format(p="?"), params).fetchall()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()


class PostgresFileStore(FileStore):
    """The files table in the PostgreSQL journal's database; the daily count is serialised per owner."""

    def __init__(self, url: str) -> None:
        import psycopg  # noqa: PLC0415 (only deployments on PostgreSQL need it)

        self._url = url
        with psycopg.connect(url) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_id("medsettle-schema"),))
            conn.execute(POSTGRES_SCHEMA)

    @contextlib.contextmanager
    def _transaction(self, owner: str | None) -> Iterator[Callable[[str, tuple], list]]:
        import psycopg  # noqa: PLC0415

        with psycopg.connect(self._url) as conn, conn.transaction():
            if owner is not None:
                conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_lock_id("medsettle-files"), _lock_id(owner)))

            def execute(sql: str, params: tuple) -> list:
                cursor = conn.execute(sql.format(p="%s"), params)
                return cursor.fetchall() if cursor.description is not None else []

            yield execute


def _lock_id(name: str) -> int:
    return zlib.crc32(name.encode()) - 2**31
