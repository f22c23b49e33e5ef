"""The durable journal and state rebuilt from it: SQLite (the embedded default) and PostgreSQL, one schema."""

from .journal import DuplicateEntry, Entry, GroupCommitJournal, JournalError, SQLiteJournal
from .postgres import PostgresJournal
from .journaled import JournaledSettler
from .replay import ReplayMismatch, replay


def open_journal(url: str) -> GroupCommitJournal:
    """A journal from a URL: ``postgresql://...`` for PostgreSQL, ``sqlite:///path`` or a plain path for SQLite."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresJournal(url)
    return SQLiteJournal(url.removeprefix("sqlite://") if url.startswith("sqlite:///") else url)

__all__ = ["DuplicateEntry", "Entry", "GroupCommitJournal", "JournalError", "JournaledSettler", "PostgresJournal",
           "ReplayMismatch", "SQLiteJournal", "open_journal", "replay"]
