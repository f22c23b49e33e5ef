"""The durable journal and state rebuilt from it (SQLite now; PostgreSQL with the same schema next)."""

from .journal import DuplicateEntry, Entry, JournalError, SQLiteJournal
from .journaled import JournaledSettler
from .replay import ReplayMismatch, replay

__all__ = ["DuplicateEntry", "Entry", "JournalError", "JournaledSettler", "ReplayMismatch", "SQLiteJournal", "replay"]
