"""Progress of ``medsettle settle`` on a terminal: one line, rewritten a few times a second."""

from __future__ import annotations

import time
from typing import IO


def progress_wanted(stream: IO[str]) -> bool:
    """Progress is shown on a terminal only: a pipe or a file gets nothing (a log wants no \\r lines)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


class Progress:
    """One line on a terminal, rewritten at most a few times a second: what is done, how fast."""

    EVERY = 1024  # bills between looks at the clock

    def __init__(self, stream: IO[str] | None, verb: str, total: int | None = None) -> None:
        self._stream, self._verb, self._total = stream, verb, total
        self._start = self._shown = time.monotonic()

    def update(self, done: int) -> None:
        if self._stream is None or done % self.EVERY:
            return
        now = time.monotonic()
        if now - self._shown >= 0.25:
            self._shown = now
            self._show(self._stream, done, now)

    def finish(self, done: int) -> None:
        if self._stream is not None:
            self._show(self._stream, done, time.monotonic())
            self._stream.write("\n")
            self._stream.flush()

    def _show(self, stream: IO[str], done: int, now: float) -> None:  # ok-float: a monotonic time
        of = f" of {self._total:,}" if self._total is not None else ""
        rate = done / max(now - self._start, 1e-9)
        stream.write(f"\r{self._verb} {done:,}{of} bills ({rate:,.0f} bills/s)")
        stream.flush()


__all__ = ["Progress", "progress_wanted"]
