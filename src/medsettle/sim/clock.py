"""The simulator's virtual clock: time moves only when the world advances it or code under test sleeps.

It is the :class:`medsettle.seams.Clock` of every part of a simulated world (the centre, the counters, their
journals), so a resend loop's back-off or a five-day wait costs no real time and the same seed gives the same
times to the microsecond.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from ..seams import Clock


class MovableClock(Clock, Protocol):
    """A clock the world moves on: the virtual one, or a real one moved by an offset
    (:class:`medsettle.seams.OffsetClock`, scenario files' live mode)."""

    def advance(self, seconds: float) -> None:  # ok-float: seconds, not money
        """Move time on by ``seconds`` (never back)."""

    def advance_to(self, when: dt.datetime) -> None:
        """Move time on to ``when`` if it is later than now."""


class VirtualClock:
    """Wall time ``start`` plus the seconds elapsed; ``monotonic`` is the elapsed seconds themselves."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a virtual clock starts at an aware time (Asia/Shanghai)")
        self.start = start
        self._elapsed_us = 0  # integer microseconds: no float drift between runs of one seed
        self.slept = 0.0  # seconds the code under test asked to sleep (its resend back-off)

    def now(self) -> dt.datetime:
        return self.start + dt.timedelta(microseconds=self._elapsed_us)

    def time(self) -> float:
        return self.now().timestamp()

    def monotonic(self) -> float:
        return self._elapsed_us / 1_000_000

    def sleep(self, seconds: float) -> None:
        self.slept += max(0.0, seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds`` (never back)."""
        self._elapsed_us += max(0, round(seconds * 1_000_000))

    def advance_to(self, when: dt.datetime) -> None:
        """Move time on to ``when`` if it is later than now."""
        gap = when - self.now()
        if gap > dt.timedelta(0):
            self._elapsed_us += gap // dt.timedelta(microseconds=1)
