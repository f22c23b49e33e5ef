"""Real failures to inject in tests: no mocks, the real parts made to fail as they do in the field."""

from __future__ import annotations

from medsettle.ledger import SQLiteJournal


def small_sqlite_journal(path, pages: int):
    """A SQLite journal whose file may not grow past ``pages`` pages (SQLite's max_page_count): once it
    is full, a commit fails with a real SQLITE_FULL, as on a full disk."""

    class SmallSQLiteJournal(SQLiteJournal):
        def _connect(self):
            conn = super()._connect()
            conn.execute(f"PRAGMA max_page_count = {int(pages)}")
            return conn

    return SmallSQLiteJournal(path)
