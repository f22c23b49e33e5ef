"""The seams through which medsettle's production code reaches time, randomness and process exit.

The centre, the counter and the journal never ask the wall clock, the OS's randomness or ``os._exit`` directly:
they take a :class:`Clock`, a :class:`Randomness` and a :class:`CrashHook` as parameters whose defaults are the
real ones (:data:`SYSTEM_CLOCK`, :data:`SYSTEM_RANDOM`, :data:`EXIT_ON_CRASH`). The fault simulator passes its
virtual clock, one seeded random source per run and a crash hook that raises, so the same seed gives the same run;
tests do the same. Nothing here may keep global state beyond the real defaults.

Times are Asia/Shanghai, as the platform keeps them.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import random
import secrets
import time
from typing import NoReturn, Protocol

from .timeutil import SHANGHAI

__all__ = [
    "Clock",
    "SystemClock",
    "SYSTEM_CLOCK",
    "OffsetClock",
    "ClockFileError",
    "Randomness",
    "SystemRandomness",
    "SeededRandomness",
    "SYSTEM_RANDOM",
    "CrashHook",
    "ExitOnCrash",
    "EXIT_ON_CRASH",
    "RaiseOnCrash",
    "Crashed",
]


class Clock(Protocol):
    """Wall time (for dates, setl_time, sign-in days) and a monotonic time (for deadlines and back-off)."""

    def now(self) -> dt.datetime:
        """The current time, aware, in Asia/Shanghai."""

    def time(self) -> float:
        """Unix seconds (for signatures' timestamps and windows)."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that never goes back (deadlines, resend loops)."""

    def sleep(self, seconds: float) -> None:
        """Wait this long (a virtual clock advances instead)."""


class SystemClock:
    """The real clock: the OS's wall and monotonic time, and a real sleep."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(SHANGHAI)

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class ClockFileError(ValueError):
    """A clock file that holds no offset (``medsettle serve --clock-file``)."""


class OffsetClock(SystemClock):
    """The real clock moved by a whole number of seconds kept in a file: a test clock for scenario tests of
    served processes (``medsettle serve --clock-file``, ``medsettle scenario run --live``).

    The file holds one integer, the seconds to add to the real wall time (negative: back). Whoever writes it
    (:meth:`set_now`, :meth:`advance`, or any other process) moves the wall time of every process that reads it;
    each reads it again when the file changes (its inode, size or modification time), so a step of the test
    moves the centre's and the counters' days on together. Time keeps flowing as the real clock's does.
    Monotonic time and sleep stay real: a deadline or a resend loop is unaffected, as by a jump of the system
    clock. A missing file is an offset of 0; a file that holds no integer is :class:`ClockFileError` when the
    clock is made, and is ignored later (the last offset read stays, as a writer that replaces the file
    atomically never leaves half a number).

    Never for a real centre: whoever can write the file moves the centre's clock.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._seen: tuple[int, int, int] | None = None  # (inode, size, mtime_ns) of the file last read
        self._offset = 0
        self._offset = self._read(strict=True)

    def offset(self) -> int:
        """The seconds added to the real wall time, as the file holds them now."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._seen, self._offset = None, 0
            return 0
        if (st.st_ino, st.st_size, st.st_mtime_ns) != self._seen:
            self._offset = self._read(strict=False)
        return self._offset

    def _read(self, *, strict: bool) -> int:
        try:
            st = os.stat(self.path)
            with open(self.path, encoding="ascii") as f:
                text = f.read().strip()
            value = int(text)
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            if strict:
                raise ClockFileError(f"{self.path}: a clock file holds whole seconds to add (-86400, 0, 3600): "
                                     f"{exc}") from None  # fmt: skip
            return self._offset
        self._seen = (st.st_ino, st.st_size, st.st_mtime_ns)
        return value

    def now(self) -> dt.datetime:
        return dt.datetime.now(SHANGHAI) + dt.timedelta(seconds=self.offset())

    def time(self) -> float:
        return time.time() + self.offset()

    def set_now(self, when: dt.datetime) -> None:
        """Move the wall time of every reader of the file to ``when`` (aware), or less than a second after it
        (the offset is whole seconds, the real clock's fraction stays)."""
        self._write(math.ceil((when - dt.datetime.now(SHANGHAI)).total_seconds()))

    def advance(self, seconds: float) -> None:  # ok-float: seconds of time, not money
        """Move the wall time on by ``seconds`` (never back)."""
        self._write(self.offset() + max(0, round(seconds)))

    def advance_to(self, when: dt.datetime) -> None:
        """Move the wall time on to ``when`` if it is later than now."""
        if when > self.now():
            self.set_now(when)

    def _write(self, offset: int) -> None:
        """Replace the file atomically: a reader sees the old offset or the new one, never half of one."""
        temporary = f"{self.path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="ascii") as f:
            f.write(f"{offset}\n")
        os.replace(temporary, self.path)
        self._offset = self._read(strict=True)


class Randomness(Protocol):
    """Where tokens, nonces and jitter come from."""

    def token_hex(self, nbytes: int) -> str:
        """A random string of 2 * nbytes hex digits (QR tokens, nonces)."""

    def uniform(self, low: float, high: float) -> float:  # ok-float: back-off jitter, not money
        """A float in [low, high] (back-off jitter)."""

    def randbelow(self, n: int) -> int:
        """An int in [0, n)."""


class SystemRandomness:
    """The OS's cryptographic randomness (tokens that must not be guessed) and the process PRNG for jitter."""

    def token_hex(self, nbytes: int) -> str:
        return secrets.token_hex(nbytes)

    def uniform(self, low: float, high: float) -> float:  # ok-float: back-off jitter, not money
        return random.uniform(low, high)

    def randbelow(self, n: int) -> int:
        return secrets.randbelow(n)


class SeededRandomness:
    """One seeded PRNG for everything: the same seed gives the same tokens, nonces and jitter.

    Only for simulation and tests: its tokens can be guessed by anyone who knows the seed.
    """

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def token_hex(self, nbytes: int) -> str:
        return self._rng.getrandbits(8 * nbytes).to_bytes(nbytes, "big").hex()

    def uniform(self, low: float, high: float) -> float:  # ok-float: back-off jitter, not money
        return self._rng.uniform(low, high)

    def randbelow(self, n: int) -> int:
        return self._rng.randrange(n)


class CrashHook(Protocol):
    """What happens when a process reaches a crash point that was asked for: it never returns."""

    def __call__(self, point: str) -> NoReturn: ...


class ExitOnCrash:
    """The real default: exit the process at once, with no cleanup and no flush, as a power cut would."""

    exit_code = 86

    def __call__(self, point: str) -> NoReturn:
        os._exit(self.exit_code)


class Crashed(BaseException):
    """Raised by :class:`RaiseOnCrash` at a crash point. A BaseException, so ``except Exception`` in the code
    under test cannot swallow the simulated power cut."""

    def __init__(self, point: str) -> None:
        super().__init__(point)
        self.point = point


class RaiseOnCrash:
    """For tests and the simulator: a crash point raises :class:`Crashed` instead of ending the process."""

    def __call__(self, point: str) -> NoReturn:
        raise Crashed(point)


SYSTEM_CLOCK: Clock = SystemClock()
SYSTEM_RANDOM: Randomness = SystemRandomness()
EXIT_ON_CRASH: CrashHook = ExitOnCrash()
