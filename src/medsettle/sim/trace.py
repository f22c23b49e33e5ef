"""A run's trace: every request and answer byte, every journal entry, every fault, hashed as it is written.

The hash (``trace sha256``) is what proves a seed gives the same run byte for byte. Only the last events are
kept in memory (the short history a violation prints); ``echo`` prints every event as it happens (replay).
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Callable

RECENT = 25  # events a violation report shows


class Trace:
    def __init__(self, echo: Callable[[str], None] | None = None, *, redact: str | None = None) -> None:
        """``redact``: a text (the run's directory) written as ``<run>`` wherever an event names it."""
        self.redact = redact
        self._hash = hashlib.sha256()
        self.recent: collections.deque[str] = collections.deque(maxlen=RECENT)
        self.events = 0
        self._echo = echo

    def event(self, step: int, what: str, data: bytes = b"") -> None:
        """Record one event of step ``step``: a one-line summary ``what`` and the exact bytes it carried."""
        line = f"{step} {what}"
        if self.redact:
            line = line.replace(self.redact, "<run>")
        self._hash.update(line.encode() + b"\n" + len(data).to_bytes(8, "big") + data)
        self.events += 1
        self.recent.append(line)
        if self._echo is not None:
            self._echo(line if not data else f"{line}  {data[:160].decode('utf-8', 'replace')}")

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
