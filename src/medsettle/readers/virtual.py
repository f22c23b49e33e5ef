"""The virtual reader backend: the same :class:`.base.Reader` as the PC/SC driver, talking to the Python card
OS and PSAM on a :class:`medsettle.hardware.bus.VirtualBus` in this process; no pcscd, no pyscard
(docs/card.md 'The virtual backend').

    bus = VirtualBus(["Counter A"])
    bus.counters["Counter A"].card.insert(VirtualCard.issue(profile))
    with VirtualReader("Counter A 00 00", psam="Counter A 00 01", bus=bus) as reader:
        record = reader.read_and_authenticate(pin="123456")

The APDUs are :mod:`.protocol`'s, as the PC/SC driver's are, and every fault mode of a slot ends in the error the
PC/SC driver raises for it. Deadlines are per APDU, as there: a slow card is read however long the whole read
takes; an APDU left unanswered for ``deadline`` seconds is a mute card (CardMute). The waiting is done on the
reader's ``clock`` (:data:`medsettle.seams.SYSTEM_CLOCK` unless given), so the simulator runs it on virtual time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from ..hardware.bus import VirtualBus, VirtualSlot
from ..seams import SYSTEM_CLOCK, Clock
from . import protocol
from .base import Reader
from .errors import CardMute, CardRemoved, CardUnreadable, NoCard, NoReader, ServiceDown
from .protocol import CardSession
from .record import CardRecord
from .trace import Trace

__all__ = ["POLL_S", "VirtualReader"]

POLL_S = 0.02  # how often wait_for_card looks at the slot (on the reader's clock)
T = TypeVar("T")


class _Unanswered(Exception):
    """An APDU went unanswered past the deadline; the reader turns it into CardMute naming the operation."""


def _service_down(reader: str) -> ServiceDown:
    return ServiceDown(
        "the virtual reader service is stopped (VirtualBus.stop_service); start it again with VirtualBus.start_service",
        reader=reader,
    )


class _Link:
    """One connection to one slot of the bus; it holds the slot's insertion count at connect, so a card
    pulled or swapped since is refused, as pcscd refuses a stale handle."""

    def __init__(self, bus: VirtualBus, reader: str, *, trace: Trace | None, clock: Clock, deadline: float) -> None:
        if not bus.service_up:
            raise _service_down(reader)
        slot = bus.slot(reader)
        if slot is None:
            raise NoReader(
                f"no such reader on the virtual bus (it has {', '.join(bus.list_readers()) or 'none'})", reader=reader
            )
        self.bus, self.reader, self.slot = bus, reader, slot
        self.trace, self.clock, self.deadline = trace, clock, deadline
        self._generation: int | None = None

    @property
    def connected(self) -> bool:
        return self._generation is not None

    def connect(self) -> bytes:
        if not self.bus.service_up:
            raise _service_down(self.reader)
        slot: VirtualSlot = self.slot
        if not slot.inserted:
            raise NoCard("no card in the reader", reader=self.reader)
        self._generation = slot.generation
        return slot.atr

    def transmit(self, command: bytes) -> tuple[bytes, int]:
        return protocol.transmit(self._exchange, command, self.reader)

    def _exchange(self, command: bytes) -> tuple[bytes, int]:
        if not self.bus.service_up:
            raise _service_down(self.reader)
        if self._generation is None or self._generation != self.slot.generation:
            raise CardRemoved("the card was removed (or swapped) since the reader connected to it", reader=self.reader)
        started = self.clock.monotonic()
        answer = self.slot.answer(command, self._generation, within=self.deadline, clock=self.clock)
        elapsed = self.clock.monotonic() - started
        if answer is None:
            if self.trace:
                self.trace(self.reader, command, None, elapsed, CardMute.__name__)
            raise _Unanswered
        if self.trace:
            self.trace(self.reader, command, answer, elapsed)
        return protocol.split_answer(answer, command, self.reader)

    def disconnect(self) -> None:
        self._generation = None

    def close(self) -> None:
        self.disconnect()


class VirtualReader(Reader):
    """A counter's reader on a virtual bus: the card in ``name`` (slot 00) and, for authentication, the PSAM
    in ``psam`` (slot 01). ``name=None`` takes the bus's first entry and its PSAM. ``deadline``: the seconds
    one APDU may go unanswered before the card counts as mute, on ``clock``."""

    def __init__(
        self,
        name: str | None = None,
        psam: str | None = None,
        *,
        bus: VirtualBus,
        deadline: float = 2.0,
        trace: Trace | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if name is None:
            first = bus.first_reader()
            if first is None:
                raise NoReader("the virtual bus has no reader entry: add one (VirtualBus.add_counter)")
            name, first_psam = first
            psam = first_psam if psam is None else psam
        self.name, self.psam_name = name, psam
        self.bus, self.deadline, self.trace, self.clock = bus, deadline, trace, clock
        self._session = CardSession(name, psam, self._open_link)
        self._lock = threading.Lock()  # one operation at a time, as the PC/SC driver's worker runs them

    def _open_link(self, reader: str) -> _Link:
        return _Link(self.bus, reader, trace=self.trace, clock=self.clock, deadline=self.deadline)

    def _run(self, what: str, operation: Callable[[], T]) -> T:
        with self._lock:
            try:
                return operation()
            except _Unanswered:
                self._session.close()
                raise CardMute(
                    f"the card did not answer within {self.deadline:g} s during {what}", reader=self.name
                ) from None
            except (CardRemoved, ServiceDown, CardUnreadable, NoCard):
                self._session.close()  # the next operation connects afresh
                raise

    # -- the card ---------------------------------------------------------------------------------

    def read_card(self) -> CardRecord:
        return self._run("READ RECORD", self._session.read)

    def transmit(self, command: bytes) -> tuple[bytes, int]:
        """One raw APDU to the card in the current session (61xx and 6Cxx followed), for support work."""
        return self._run("an APDU", lambda: self._session.transmit(bytes(command)))

    def verify_pin(self, pin: str) -> None:
        protocol.check_pin(pin)
        self._run("VERIFY", lambda: self._session.verify(pin))

    def authenticate(self, record: CardRecord) -> None:
        self._run("INTERNAL AUTHENTICATE", lambda: self._session.authenticate(record))

    def read_and_authenticate(self, pin: str | None = None) -> CardRecord:
        """Read, verify the PIN (if given) and authenticate as one operation (each APDU under the deadline)."""
        if pin is not None:
            protocol.check_pin(pin)
        return self._run("a card read", lambda: self._session.read_and_authenticate(pin))

    # -- presence -----------------------------------------------------------------------------------

    def _slot(self) -> VirtualSlot:
        if not self.bus.service_up:
            raise _service_down(self.name)
        slot = self.bus.slot(self.name)
        if slot is None:
            raise NoReader("no such reader", reader=self.name)
        return slot

    def card_present(self) -> bool:
        present = self._slot().inserted
        if not present:
            with self._lock:
                self._session.close()
        return present

    def wait_for_card(self, timeout: float) -> None:
        """Return when a card is present; NoCard after ``timeout`` seconds on the reader's clock."""
        deadline = self.clock.monotonic() + timeout
        while not self._slot().inserted:
            left = deadline - self.clock.monotonic()
            if left <= 0:
                raise NoCard(f"no card within {timeout:g} s", reader=self.name)
            self.clock.sleep(min(left, POLL_S))

    def close(self) -> None:
        with self._lock:
            self._session.close()
