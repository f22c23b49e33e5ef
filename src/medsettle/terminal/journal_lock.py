"""One process at a time on a counter's journal (docs/failures.md 'One process per journal').

Two counter processes on one journal each believe they own its vouchers and queue: both re-settled one
voucher, and the patient's account paid a 25.00 bill twice. So the store takes an OS lock when it opens:
``flock`` on a lock file beside the journal (``<journal>.lock``), which the kernel releases when the
process closes it or dies (a SIGKILL or a power cut leaves no stale lock), and which holds the holder's pid
so the second process can say whom it met. SQLite's own locks are per transaction, not per process, and
``flock`` does not touch them.

Within one process a journal may be opened more than once (a test, a tool beside a counter): the lock is
the process's, counted, and released when its last store closes.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

from ..seams import Clock
from .common import CounterError

PID_WAIT_S = 1.0  # how long a refused opener waits for a holder that has just locked to write its pid


class JournalInUse(CounterError):
    """Another process holds the counter's journal: this one may not read or write it until that one ends."""

    code = "JOURNAL_IN_USE"

    def __init__(self, journal: Path, pid: str) -> None:
        self.journal, self.pid = journal, pid
        super().__init__(f"the counter journal {journal} is in use by process {pid}")


class _Held:
    """This process's lock on one lock file: its descriptor and how many stores use it."""

    def __init__(self, fd: int) -> None:
        self.fd, self.users = fd, 1


_held: dict[str, _Held] = {}
_guard = threading.Lock()


def lock_path(journal: Path) -> Path:
    """The lock file of ``journal``: beside the file itself (a symlink's target), its name and ``.lock``, so
    two names of one journal lock the same file."""
    real = Path(os.path.realpath(journal))
    return real.with_name(real.name + ".lock")


def hold(journal: Path, clock: Clock) -> str:
    """Take ``journal``'s lock for this process (or count one more user of it); returns the key to release
    it with. JournalInUse when another process holds it; nothing of the journal is touched then. ``clock``
    times the short wait for a holder's pid (:func:`_holder`)."""
    path = lock_path(journal)
    key = str(path)
    with _guard:
        held = _held.get(key)
        if held is not None:
            held.users += 1
            return key
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd, clock)
            os.close(fd)
            raise JournalInUse(journal, pid) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held[key] = _Held(fd)
        return key


def release(key: str) -> None:
    """One store of this process is done with the lock ``key``; the last one closes it (the lock is gone)."""
    with _guard:
        held = _held.get(key)
        if held is None:
            return
        held.users -= 1
        if held.users == 0:
            del _held[key]
            os.close(held.fd)


def _holder(fd: int, clock: Clock) -> str:
    """The pid the holder wrote; a holder that locked a moment ago may not have written it yet."""
    give_up = clock.monotonic() + PID_WAIT_S
    while True:
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if pid or clock.monotonic() > give_up:
            return pid or "unknown"
        clock.sleep(0.01)


def _forget_in_child() -> None:
    """A forked child has copies of the descriptors but is not the counter: it drops them (the parent's lock
    stays, as flock lasts while any copy is open), so the child cannot keep the journal locked after the
    parent is gone, and opening the journal in the child is refused like any other process."""
    global _guard  # a lock another thread held at the fork would never be released in the child
    _guard = threading.Lock()
    for held in _held.values():
        os.close(held.fd)
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)
