"""APDU tracing for a support engineer: every command and answer through a reader, with its timing.

    PcscReader(name, trace=ApduTrace())            # to the 'medsettle.readers.apdu' logger (DEBUG)
    PcscReader(name, trace=ApduTrace(sys.stderr))  # or straight to a stream

The PIN of a VERIFY is masked: a trace can be mailed without giving the holder's PIN away.
"""

from __future__ import annotations

import logging
from typing import Protocol, TextIO

log = logging.getLogger("medsettle.readers.apdu")

NAMES = {
    (0x00, 0xA4): "SELECT",
    (0x00, 0xB2): "READ RECORD",
    (0x00, 0x20): "VERIFY",
    (0x00, 0x84): "GET CHALLENGE",
    (0x00, 0x88): "INTERNAL AUTHENTICATE",
    (0x00, 0xC0): "GET RESPONSE",
    (0x00, 0xB0): "READ BINARY",
    (0x80, 0x1A): "PSAM DERIVE CARD KEY",
    (0x80, 0x82): "PSAM VERIFY CARD",
}


def describe(command: bytes) -> str:
    return NAMES.get((command[0], command[1]), "?") if len(command) >= 2 else "?"


class Trace(Protocol):
    """What a reader calls after each exchange: the reader, the command, the answer (None when it failed),
    the seconds it took, and the error's name when it failed. :class:`ApduTrace` is one."""

    def __call__(
        self, reader: str, command: bytes, answer: bytes | None, elapsed_s: float, error: str = "", /
    ) -> None: ...


class ApduTrace:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.lines: list[str] = []  # the last traced exchanges, for a test or a support dump
        self.keep = 1000

    def __call__(self, reader: str, command: bytes, answer: bytes | None, elapsed_s: float, error: str = "") -> None:
        shown = command
        if describe(command) == "VERIFY" and len(command) > 5:
            shown = command[:5] + b"\xff" * (len(command) - 5)  # never log a PIN
        line = (
            f"{reader} > {shown.hex(' ').upper()} [{describe(command)}] "
            + (f"< {answer.hex(' ').upper()}" if answer is not None else f"< ({error})")
            + f" {elapsed_s * 1e3:.3f} ms"
        )
        self.lines.append(line)
        del self.lines[: -self.keep]
        if self.stream is not None:
            print(line, file=self.stream, flush=True)
        else:
            log.debug("%s", line)
