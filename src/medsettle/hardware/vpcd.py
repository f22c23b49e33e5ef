"""One reader slot: a virtual card (or PSAM) linked to vpcd over TCP, as the plastic is to the contacts.

vpcd's wire format (docs/card.md): 2-byte big-endian length, then the payload. A 1-byte payload is a control
message (0 power off, 1 power on, 2 reset: no reply; 4 get ATR: reply with the ATR); anything longer is
a C-APDU, answered with the R-APDU. Connecting is inserting the card; closing is removing it.

Debian's vpcd writes the length and the APDU in two sends with Nagle on, so the card re-arms
TCP_QUICKACK before every recv, or every APDU stalls about 40 ms on the delayed ACK.

Fault modes (:class:`Faults`) act on the link, the way a worn contact or a dying chip does: mute, slow,
removed mid-APDU, garbage or truncated answers, wrong ATR. The data faults (cloned, altered) are made at
personalisation (:meth:`VirtualCard.issue`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

POWER_OFF, POWER_ON, RESET, GET_ATR = 0, 1, 2, 4
CONNECT_RETRY_S = 0.02


class SlotCard(Protocol):
    """What goes into a slot: a card's (or a PSAM's) operating system, as VirtualCard and VirtualPSAM are."""

    atr: bytes

    def reset(self) -> bytes: ...

    def process(self, command: bytes) -> bytes: ...


@dataclass
class Faults:
    """What is wrong with the card in a slot now; tests switch these on and off at any time."""

    mute: bool = False  # takes APDUs and never answers
    slow_s: float = 0.0  # answers every APDU this late
    remove_mid_apdu: bool = False  # pulled out while an APDU is in flight
    garbage: bool = False  # answers random bytes
    truncated: bool = False  # answers only the first half of the right answer
    wrong_atr: bool = False  # answers power-on with a non-social-security ATR (seen at the next insertion)

    def clear(self) -> None:
        for fault in dataclasses.fields(self):
            setattr(self, fault.name, fault.default)


FAULT_WORDS = (
    ", ".join(f"{name}=SECONDS" if isinstance(value, float) else name for name, value in vars(Faults()).items())
    + "; none clears them all"
)


def parse_faults(words: Iterable[str]) -> dict[str, bool | float]:
    """``card fault`` words (``mute``, ``slow_s=0.5``, ``none``) as the settings for :meth:`Slot.set_faults`;
    an empty dict for ``none`` or no word (the card works again). ValueError naming the word and listing
    the known faults for anything else."""
    known = {name: type(value) for name, value in vars(Faults()).items()}
    given = list(words)
    if given == ["none"]:
        return {}
    settings: dict[str, bool | float] = {}
    for word in given:
        name, has_value, value = word.partition("=")
        if name == "none":
            raise ValueError(f"fault 'none' stands alone (got {' '.join(given)!r}); known faults: {FAULT_WORDS}")
        if name not in known:
            raise ValueError(f"unknown fault {word!r}; known faults: {FAULT_WORDS}")
        if known[name] is bool:
            if has_value:
                raise ValueError(f"fault {name!r} takes no value (got {word!r}); known faults: {FAULT_WORDS}")
            settings[name] = True
            continue
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not has_value or not 0 < seconds < 3600:  # also refuses nan and inf
            raise ValueError(
                f"fault {name!r} needs seconds between 0 and 3600, as in {name}=0.5 (got {word!r}); "
                f"known faults: {FAULT_WORDS}"
            )
        settings[name] = seconds
    return settings


def switch_faults(current: Faults, settings: Mapping[str, bool | float]) -> None:
    """Switch the named faults on (or off, with a false value), the others as they are; ValueError naming an
    unknown fault (and nothing changed)."""
    unknown = sorted(set(settings) - set(vars(Faults())))
    if unknown:
        raise ValueError(f"unknown fault {unknown[0]!r}; known faults: {FAULT_WORDS}")
    for name, value in settings.items():
        setattr(current, name, value)


def distort(answer: bytes, faults: Faults) -> bytes:
    """The card's R-APDU as the contacts deliver it with the answer faults switched on (garbage, truncated)."""
    if faults.garbage:  # random bytes under a status word no card may give (SW1 must be 6x or 9x)
        return os.urandom(max(1, len(answer) - 2)) + b"\x0f\x0f"
    if faults.truncated:
        return answer[: max(1, len(answer) // 2)]
    return answer


class Slot:
    """A slot of a vpcd reader entry: ``insert`` a card (anything with ``reset()``, ``process()`` and
    ``atr``), ``remove`` it. While a card is inserted the slot reconnects to vpcd by itself when pcscd
    restarts, as a card left in a reader would reappear."""

    def __init__(self, port: int, host: str = "127.0.0.1", *, name: str = "") -> None:
        self.host, self.port, self.name = host, port, name or f"vpcd:{port}"
        self.card: SlotCard | None = None
        self.faults = Faults()
        self.apdus = 0  # C-APDUs answered, for tests and benchmarks
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._inserted = threading.Event()
        self._unmuted = threading.Event()
        self._lock = threading.Lock()

    # -- the tester's hands ---------------------------------------------------------------------

    def insert(self, card: SlotCard) -> None:
        """Put ``card`` in the slot (replacing any card already there, without a removal pcscd could see
        when the slot is already connected: a card swap between tests costs nothing)."""
        with self._lock:
            self.card = card
            card.reset()
            if self._thread is None or not self._thread.is_alive():
                self._inserted.set()
                self._thread = threading.Thread(target=self._run, name=f"card-{self.name}", daemon=True)
                self._thread.start()

    def remove(self, timeout: float = 2.0) -> None:
        """Take the card out: the link closes, pcscd sees the removal at its next poll (≤ 0.4 s)."""
        with self._lock:
            self._inserted.clear()
            self._unmuted.set()  # a mute card held in a hung APDU lets go when pulled out
            self._close()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def inserted(self) -> bool:
        return self._inserted.is_set()

    def set_faults(self, **faults: bool | float) -> None:
        """Switch these faults on (or off, with a false value); the others stay as they are. An unknown
        name changes nothing."""
        switch_faults(self.faults, faults)
        if not self.faults.mute:
            self._unmuted.set()

    def clear_faults(self) -> None:
        self.faults.clear()
        self._unmuted.set()

    # -- the link -----------------------------------------------------------------------------------

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):  # the other end may have closed first
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _run(self) -> None:
        while self._inserted.is_set():
            try:
                sock = socket.create_connection((self.host, self.port), timeout=1.0)
            except OSError:  # pcscd not (yet, or no longer) listening: try again while inserted
                time.sleep(CONNECT_RETRY_S)
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if not self._inserted.is_set():
                    sock.close()
                    return
                self._sock = sock
            try:
                self._serve(sock)
            except (OSError, EOFError):
                pass
            finally:
                with self._lock:
                    if self._sock is sock:
                        self._sock = None
                sock.close()
            if self._inserted.is_set():
                time.sleep(CONNECT_RETRY_S)

    @staticmethod
    def _messages(sock: socket.socket) -> Iterator[bytes]:
        """vpcd's messages, one by one: reads whatever has arrived and splits it on the length prefixes."""
        buffer = b""
        while True:
            while len(buffer) < 2 or len(buffer) < 2 + ((buffer[0] << 8) | buffer[1]):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)  # re-armed before every recv
                chunk = sock.recv(4096)
                if not chunk:
                    raise EOFError
                buffer += chunk
            end = 2 + ((buffer[0] << 8) | buffer[1])
            yield buffer[2:end]
            buffer = buffer[end:]

    @staticmethod
    def _send(sock: socket.socket, payload: bytes) -> None:
        sock.sendall(struct.pack(">H", len(payload)) + payload)  # one send: length and answer together

    def _serve(self, sock: socket.socket) -> None:
        from .apdu import FOREIGN_ATR  # noqa: PLC0415

        for message in self._messages(sock):
            card = self.card
            if card is None:  # insert() puts the card in before it starts the link, and no one takes it away
                raise RuntimeError(f"{self.name}: vpcd is linked with no card in the slot")
            if len(message) == 1:
                if message[0] in (POWER_ON, RESET):
                    card.reset()
                elif message[0] == GET_ATR:
                    self._send(sock, FOREIGN_ATR if self.faults.wrong_atr else card.atr)
                continue
            answer = self._answer(card, message)
            if answer is None:
                return
            self._send(sock, answer)
            self.apdus += 1

    def _answer(self, card: SlotCard, command: bytes) -> bytes | None:
        """The R-APDU, as bent by the faults switched on; None when the card left mid-APDU."""
        faults = self.faults
        if faults.remove_mid_apdu:
            log.debug("%s: removed mid-APDU", self.name)
            self._inserted.clear()
            return None
        if faults.mute:
            self._unmuted.clear()
            while faults.mute and self._inserted.is_set():
                self._unmuted.wait(0.05)
            if not self._inserted.is_set():
                return None
        if faults.slow_s:
            time.sleep(faults.slow_s)
        return distort(card.process(command), faults)
