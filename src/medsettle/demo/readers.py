"""The card readers of the demo's counters: the virtual backend (the scenario world's own virtual bus, no pcscd)
or, with ``--pcsc``, readers through a private pcscd with vpcd reader entries (:class:`PcscStack`,
docs/card.md). Both offer the same hands: a card put in (swapped in place for the last patient's), and the
reader failing (it stops answering: the card is mute) and being repaired."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from ..scenario.world import Desk

CARD_SEEN_S = 5.0  # how long pcscd may take to see a card (it polls every 0.4 s)
PCSC_DEADLINE_S = 0.5  # real seconds a mute reader keeps a clerk waiting through pcscd, each patient
FLUSH_S = 0.5  # real seconds for the calls a mute reader left hanging to come back when it is repaired


class VirtualReaders:
    """The desks' virtual buses (a mute reader waits on the virtual clock: no real time)."""

    def __init__(self, desks: dict[str, Desk]) -> None:
        self.desks = desks

    def slot(self, code: str) -> Any:
        return self.desks[code].entry.card

    def insert(self, code: str, card: Any) -> None:
        self.slot(code).insert(card)

    def fail(self, code: str) -> None:
        self.slot(code).set_faults(mute=True)

    def repair(self, code: str) -> None:
        self.slot(code).clear_faults()

    def close(self) -> None:
        """Nothing of its own: the world takes the buses' cards out."""


class PcscReaders(VirtualReaders):
    """One pcscd of this process's own with a vpcd reader entry per desk (card slot 00, PSAM slot 01), each
    counter reading through :class:`medsettle.readers.PcscReader` in real time."""

    def __init__(self, desks: dict[str, Desk]) -> None:
        from ..hardware.stack import PcscStack  # noqa: PLC0415 - pyscard and pcscd only for --pcsc

        super().__init__(desks)
        self._dir = tempfile.TemporaryDirectory(prefix="medsettle-demo-pcsc-")
        self.stack = PcscStack(Path(self._dir.name), list(desks))
        try:
            self.stack.start()  # StackError says what is missing (pcscd, vpcd, pyscard) or who holds pcscd
        except BaseException:
            self._dir.cleanup()
            raise
        self._unseen = set(desks)  # card slots pcscd has not yet seen a card in
        for code in desks:
            self._new_reader(code)

    def slot(self, code: str) -> Any:
        return self.stack.counters[code].card

    def insert(self, code: str, card: Any) -> None:
        reader = self.desks[code].sim.counter.reader
        reader.close()  # the last card's session ends: the next read connects to this card afresh
        self.slot(code).insert(card)  # in place: pcscd sees no removal, so no 0.4 s poll per patient
        if code in self._unseen:
            self.desks[code].sim.counter.reader.wait_for_card(CARD_SEEN_S)
            self._unseen.discard(code)

    def repair(self, code: str) -> None:
        """The reader answers again: the calls a mute reader left hanging are answered first (into the void),
        then the counter reads through a fresh reader, so none of them lands in the next patient's read."""
        super().repair(code)
        time.sleep(FLUSH_S)
        self.desks[code].sim.counter.reader.close()
        self._new_reader(code)

    def _new_reader(self, code: str) -> None:
        from ..readers import PcscReader  # noqa: PLC0415 - pyscard only for --pcsc

        entry = self.stack.counters[code]
        self.desks[code].sim.counter.reader = PcscReader(
            entry.card_reader, psam=entry.psam_reader, deadline=PCSC_DEADLINE_S
        )

    def close(self) -> None:
        for desk in self.desks.values():
            desk.sim.counter.reader.close()
        self.stack.stop()
        self._dir.cleanup()
