"""How pcscd names the two slots of one reader entry, for the PC/SC stack and the virtual bus alike."""

from __future__ import annotations


class ReaderEntryNames:
    """Mixin for a reader entry with a ``name``: slot 00 holds the card, slot 01 the PSAM."""

    name: str

    @property
    def card_reader(self) -> str:
        return f"{self.name} 00 00"

    @property
    def psam_reader(self) -> str:
        return f"{self.name} 00 01"
