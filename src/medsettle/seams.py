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
