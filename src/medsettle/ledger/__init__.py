"""The durable journal and state rebuilt from it: SQLite (the embedded default) and PostgreSQL, one schema."""

from ..seams import SYSTEM_CLOCK, Clock
from .journal import DuplicateEntry, Entry, GroupCommitJournal, JournalError, SQLiteJournal
from .journaled import JournaledSettler
from .postgres import PostgresJournal
from .replay import ReplayMismatch, replay


def open_journal(url: str, *, clock: Clock = SYSTEM_CLOCK) -> GroupCommitJournal:
    """A journal from a URL: ``postgresql://...`` for PostgreSQL, ``sqlite:///path`` or a plain path for SQLite.

    ``clock`` stamps the rows (the real one by default; the simulator passes its own)."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresJournal(url, clock=clock)
    return SQLiteJournal(url.removeprefix("sqlite://") if url.startswith("sqlite:///") else url, clock=clock)


__all__ = [
    "DuplicateEntry",
    "Entry",
    "GroupCommitJournal",
    "JournalError",
    "JournaledSettler",
    "PostgresJournal",
    "ReplayMismatch",
    "SQLiteJournal",
    "open_journal",
    "replay",
]
