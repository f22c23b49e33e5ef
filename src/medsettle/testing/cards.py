"""A counter's card reader for a test, on the virtual reader backend without pcscd
(docs/card.md 'The virtual backend'): a bus with one reader entry (its card slot and a PSAM), and the tester's
hands on it: issue a card personalised for a person, insert it, pull it, make it misbehave, fail the PSAM."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..hardware.bus import BusEntry, VirtualBus
from ..hardware.card import CardProfile, VirtualCard
from ..hardware.personalise import profile_for, profile_from_record
from ..hardware.psam import VirtualPSAM
from ..readers.virtual import VirtualReader

READER = "medsettle test reader"
REGIONS = ("130100", "330300")


class VirtualCardRig:
    """One reader entry on its own virtual bus, and ``reader`` (a :class:`VirtualReader`) a counter takes.

    ``card_record``: how to ask a running centre for a person's card record (the admin API's
    ``card_record``); without one, cards are personalised from the default population's registry."""

    def __init__(self, *, card_record: Callable[[str], dict] | None = None, deadline: float = 1.0) -> None:
        self.bus = VirtualBus([READER], regions=REGIONS)
        self.entry: BusEntry = self.bus.counters[READER]
        self.reader = VirtualReader(
            self.entry.card_reader, psam=self.entry.psam_reader, bus=self.bus, deadline=deadline
        )
        self._card_record = card_record
        self.card: VirtualCard | None = None

    def issue(self, psn_no: str | None = None, *, pin: str = "123456", cloned: bool = False) -> VirtualCard:
        """A genuine card (``cloned``: a clone's key) personalised for ``psn_no`` (default: the first person
        of the default population), not yet inserted."""
        profile: CardProfile
        if psn_no is not None and self._card_record is not None:
            profile = profile_from_record(self._card_record(psn_no), pin)
        else:
            profile = profile_for(_default_registry(), psn_no, pin=pin)
        return VirtualCard.issue(profile, cloned=cloned)

    def insert(self, card: VirtualCard | str | None = None, *, pin: str = "123456") -> VirtualCard:
        """Put ``card`` in the reader: a card :meth:`issue` made, a psn_no to issue one for, or (None) the
        card last inserted again. Returns the card."""
        if card is None:
            card = self.card or self.issue(pin=pin)
        elif isinstance(card, str):
            card = self.issue(card, pin=pin)
        self.entry.card.insert(card)
        self.card = card
        return card

    def pull(self) -> None:
        """Take the card out (as a patient who leaves does)."""
        self.entry.card.remove()

    def fault(self, **faults: bool | float) -> None:
        """Switch card faults on (``mute=True``, ``slow_s=0.5``, ``remove_mid_apdu=True``, ``garbage=True``,
        ``truncated=True``, ``wrong_atr=True``) or off (a false value)."""
        unknown = set(faults) - set(vars(self.entry.card.faults))
        if unknown:
            raise ValueError(f"no such card fault: {', '.join(sorted(unknown))}")
        self.entry.card.set_faults(**faults)

    def repair(self) -> None:
        """Every card fault off, and a PSAM back in its slot if it had failed."""
        self.entry.card.clear_faults()
        if not self.entry.psam.inserted:
            self.entry.psam.insert(VirtualPSAM.for_regions(REGIONS))

    def fail_psam(self) -> None:
        """The PSAM stops answering (taken out of its slot): authentication fails until :meth:`repair`."""
        self.entry.psam.remove()

    @property
    def inserted(self) -> bool:
        return self.entry.card.inserted

    def close(self) -> None:
        self.reader.close()
        self.bus.stop()

    def __enter__(self) -> VirtualCardRig:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _default_registry() -> Any:
    """The registry ``serve`` gives its default population (built once per process, about a second)."""
    from .centre import default_registry  # noqa: PLC0415

    return default_registry()
