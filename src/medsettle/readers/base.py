"""The reader interface the counter programs against; :class:`medsettle.readers.pcsc.PcscReader` is
the PC/SC implementation (a physical reader and the virtual stack look the same through it), and
:class:`medsettle.readers.virtual.VirtualReader` the one on a virtual bus in this process (no pcscd)."""

from __future__ import annotations

import abc
from typing import Self

from .record import CardRecord


class Reader(abc.ABC):
    name: str

    @abc.abstractmethod
    def wait_for_card(self, timeout: float) -> None:
        """Return when a card is in the reader; NoCard after ``timeout`` seconds."""

    @abc.abstractmethod
    def card_present(self) -> bool:
        """Whether a card is in the reader now (removal is noticed here)."""

    @abc.abstractmethod
    def read_card(self) -> CardRecord:
        """Select the application and read EF05 and EF06."""

    @abc.abstractmethod
    def verify_pin(self, pin: str) -> None:
        """WrongPin (with tries left) or CardBlocked when the PIN is refused."""

    @abc.abstractmethod
    def authenticate(self, record: CardRecord) -> None:
        """Check through the PSAM that the card is genuine and its data unaltered; CardNotGenuine if not."""

    def read_and_authenticate(self, pin: str | None = None) -> CardRecord:
        """What a counter does when a card is presented: read it, check the PIN if one is given,
        authenticate it through the PSAM."""
        record = self.read_card()
        if pin is not None:
            self.verify_pin(pin)
        self.authenticate(record)
        return record

    @abc.abstractmethod
    def close(self) -> None:
        """Release the reader."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
