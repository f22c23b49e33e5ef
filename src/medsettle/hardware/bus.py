"""The virtual reader bus: named reader entries in this process, each with a card slot and a PSAM slot, that the
virtual reader backend (:mod:`medsettle.readers.virtual`) talks to directly, with no pcscd in between
(docs/card.md 'The virtual backend').

    bus = VirtualBus(["Counter A"])                          # a PSAM for both regions in every entry's slot 01
    bus.counters["Counter A"].card.insert(VirtualCard.issue(profile))
    bus.counters["Counter A"].card.set_faults(mute=True)     # the same fault modes as a vpcd slot's
    with open_reader("virtual", "Counter A 00 00", psam="Counter A 00 01", bus=bus) as reader: ...

The entries are named as :class:`.stack.PcscStack` names its readers (``<name> 00 00`` for the card,
``<name> 00 01`` for the PSAM) and hold the same hands (``insert``, ``remove``, ``set_faults``, ``clear_faults``,
``inserted``), so a test, the demo or the simulator drives either stack the same way. Time is the caller's
:class:`medsettle.seams.Clock`: a slow or mute card waits on it, so on a virtual clock it waits no real time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from ..seams import Clock
from .apdu import FOREIGN_ATR
from .names import ReaderEntryNames
from .psam import VirtualPSAM
from .vpcd import Faults, SlotCard, distort, switch_faults

__all__ = ["BusEntry", "SlotCard", "VirtualBus", "VirtualSlot"]


class VirtualSlot:
    """One slot: the card (or PSAM) in it, its faults, and a count of insertions and removals that tells a
    reader's connection the card it connected to is no longer the one there."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.card: SlotCard | None = None
        self.faults = Faults()
        self.apdus = 0  # C-APDUs answered, for tests and benchmarks
        self.atr = b""  # as the card answered power-on at its insertion
        self.generation = 0
        self._inserted = False
        self._lock = threading.Lock()

    # -- the tester's hands ---------------------------------------------------------------------

    def insert(self, card: SlotCard) -> None:
        """Put ``card`` in the slot (replacing any card already there), powered on: its session starts afresh,
        and its ATR is the foreign one when ``wrong_atr`` is on now."""
        with self._lock:
            self.card = card
            card.reset()
            self.atr = FOREIGN_ATR if self.faults.wrong_atr else card.atr
            self._inserted = True
            self.generation += 1

    def remove(self, timeout: float = 2.0) -> None:
        """Take the card out (``timeout`` is a vpcd slot's; here removal is immediate)."""
        with self._lock:
            self._pull()

    def _pull(self) -> None:
        if self._inserted:
            self._inserted = False
            self.generation += 1

    @property
    def inserted(self) -> bool:
        return self._inserted

    def set_faults(self, **faults: bool | float) -> None:
        """Switch these faults on (or off, with a false value); the others stay as they are. An unknown
        name changes nothing."""
        switch_faults(self.faults, faults)

    def clear_faults(self) -> None:
        self.faults.clear()

    # -- the contacts ---------------------------------------------------------------------------

    def answer(
        self,
        command: bytes,
        generation: int,
        *,
        within: float,  # ok-float: within is seconds
        clock: Clock,
    ) -> bytes | None:
        """The card's R-APDU to ``command`` as the faults bend it: ``b""`` when the card connected at
        ``generation`` is gone or leaves during the APDU, None when it does not answer within ``within``
        seconds (after waiting them on ``clock``)."""
        faults = self.faults
        if generation != self.generation or not self._inserted:
            return b""
        if faults.remove_mid_apdu:
            with self._lock:
                self._pull()
            return b""
        card = self.card
        assert card is not None  # inserted
        if faults.mute:
            clock.sleep(within)
            return b"" if generation != self.generation else None
        if faults.slow_s >= within:
            clock.sleep(within)
            card.process(command)  # the card answers after the reader has given up on it
            return None
        if faults.slow_s:
            clock.sleep(faults.slow_s)
        if generation != self.generation:
            return b""
        answer = distort(card.process(command), faults)
        self.apdus += 1
        return answer


@dataclass
class BusEntry(ReaderEntryNames):
    """One reader entry: the card slot (reader name ``<name> 00 00``) and the PSAM slot (``<name> 00 01``)."""

    name: str
    card: VirtualSlot
    psam: VirtualSlot


class VirtualBus:
    """The reader entries of one process (a counter each), with a PSAM for ``regions`` in every PSAM slot.
    ``stop_service`` and ``start_service`` stand for the PC/SC service going away and coming back."""

    def __init__(
        self, counters: Iterable[str] = ("Counter",), *, regions: Iterable[str] = ("130100", "330300")
    ) -> None:
        self.regions = tuple(regions)
        self.counters: dict[str, BusEntry] = {}
        self.service_up = True
        for name in counters:
            self.add_counter(name)

    def add_counter(self, name: str) -> BusEntry:
        """A new reader entry ``name`` with a PSAM in its slot 01 and its card slot empty."""
        if name in self.counters:
            raise ValueError(f"the virtual bus already has a reader entry {name!r}")
        entry = BusEntry(name, VirtualSlot(f"{name} 00 00"), VirtualSlot(f"{name} 00 01"))
        entry.psam.insert(VirtualPSAM.for_regions(self.regions))
        self.counters[name] = entry
        return entry

    def list_readers(self) -> list[str]:
        """Every slot's reader name, in the order the entries were added (as pcscd lists them)."""
        return [name for entry in self.counters.values() for name in (entry.card_reader, entry.psam_reader)]

    def slot(self, reader: str) -> VirtualSlot | None:
        """The slot of the reader name ``reader``, or None when the bus has no such reader."""
        for entry in self.counters.values():
            for slot in (entry.card, entry.psam):
                if slot.name == reader:
                    return slot
        return None

    def first_reader(self) -> tuple[str, str] | None:
        """The first entry's card reader and PSAM reader, or None when the bus has no entry."""
        entry = next(iter(self.counters.values()), None)
        return None if entry is None else (entry.card_reader, entry.psam_reader)

    def stop_service(self) -> None:
        self.service_up = False

    def start_service(self) -> None:
        self.service_up = True

    def stop(self) -> None:
        """Take every card and PSAM out."""
        for entry in self.counters.values():
            entry.card.remove()
            entry.psam.remove()

    def __enter__(self) -> VirtualBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
