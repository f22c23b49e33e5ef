"""Shared pieces of the card and reader tests: personalised profiles from the default population, and the
stack fixtures (a real pcscd with vpcd readers; virtual cards in this process so faults are one call away)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from centre_rig import default_registry
from medsettle.centre.registry import Registry
from medsettle.hardware.card import VirtualCard
from medsettle.hardware.personalise import profile_for

# Fixed directories, so a run killed half-way leaves a pid file the next run finds and stops.
STACK_DIR = Path(tempfile.gettempdir()) / "medsettle-test-pcsc"
DAEMON_DIR = Path(tempfile.gettempdir()) / "medsettle-test-hardware"
COUNTERS = ("Counter A", "Counter B")


def registry() -> Registry:
    """The registry of the centre's default population (built once, shared with centre_rig)."""
    return default_registry()


def profiles(n: int):
    """n profiles from the default population: both regions, both sexes, one-, two- and three-character names."""
    reg = registry()
    return [profile_for(reg, psn_no) for psn_no in reg.population.psn_nos[:n]]


def genuine_card(index: int = 0) -> VirtualCard:
    return VirtualCard.issue(profiles(index + 1)[index])


def skip_without_pcsc() -> None:
    from medsettle.hardware.stack import unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(f"no PC/SC stack on this machine: {reason}")


class ReaderBackend:
    """One reader backend under test and its stack: the same reader entries (``counters``, each with ``card``
    and ``psam`` slots one call away from a fault) whether pcscd sits between reader and card or not, so one
    test body runs on both. ``poll``: how late the backend sees a card come or go (pcscd's 0.4 s poll)."""

    def __init__(self, name: str, counters: dict, *, poll: float, **options):
        self.name, self.counters, self.poll, self.options = name, counters, poll, options

    def __repr__(self) -> str:
        return f"ReaderBackend({self.name!r})"

    def reader_named(self, name: str, psam: str | None = None, **options):
        from medsettle.readers import open_reader

        return open_reader(self.name, name, psam=psam, **self.options, **options)

    def reader(self, slot, **options):
        """A reader for the card and PSAM slots of reader entry ``slot``."""
        return self.reader_named(slot.card_reader, psam=slot.psam_reader, **options)

    def seen(self) -> None:
        """Wait until the backend has seen the last insertion or removal."""
        if self.poll:
            import time

            time.sleep(self.poll)

    def reinsert(self, slot, card) -> None:
        """Take the card out, wait until the backend has seen that, put ``card`` in and wait until it is seen."""
        slot.card.remove()
        self.seen()
        slot.card.insert(card)
        with self.reader(slot) as probe:
            probe.wait_for_card(3)


PCSCD_POLL_S = 0.45  # pcscd notices insertion and removal up to 0.4 s late


def pcsc_backend(stack) -> ReaderBackend:
    return ReaderBackend("pcsc", stack.counters, poll=PCSCD_POLL_S)


def virtual_backend(bus=None, **options) -> ReaderBackend:
    from medsettle.hardware.bus import VirtualBus

    bus = VirtualBus(COUNTERS) if bus is None else bus
    return ReaderBackend("virtual", bus.counters, poll=0.0, bus=bus, **options)
