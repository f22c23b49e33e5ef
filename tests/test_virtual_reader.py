"""What only the virtual reader backend has: its bus, its clock seam (slow and mute cards on virtual time),
picking a backend by name, and working where pyscard is not installed. The reader behaviour it shares with
the PC/SC driver is tested on both backends in test_readers.py."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medsettle.hardware.bus import VirtualBus
from medsettle.readers import (
    CardMute,
    CardRemoved,
    NoCard,
    NoReader,
    Reader,
    ServiceDown,
    UnknownBackend,
    VirtualReader,
    backend_names,
    open_reader,
    register_backend,
)
from medsettle.readers.trace import ApduTrace
from medsettle.timeutil import SHANGHAI

from hw import COUNTERS, genuine_card, profiles

pytestmark = pytest.mark.timeout(60)


class ManualClock:
    """A virtual clock: sleeping advances it at once, and records how long each sleep was."""

    def __init__(self) -> None:
        self.now_s = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now_s, SHANGHAI)

    def time(self) -> float:
        return self.now_s

    def monotonic(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_s += max(0.0, seconds)


@pytest.fixture
def bus():
    with VirtualBus(COUNTERS) as bus:
        bus.counters["Counter A"].card.insert(genuine_card())
        yield bus


def test_a_slow_card_is_read_and_a_mute_one_times_out_on_virtual_time(bus):
    """Deadline semantics on the clock seam: 1.5 s per APDU under a 2 s deadline is read (17 card APDUs,
    over 25 virtual seconds); the card turned mute raises CardMute after exactly the deadline, virtually.
    None of it takes real time."""
    clock = ManualClock()
    slot = bus.counters["Counter A"]
    slot.card.set_faults(slow_s=1.5)
    real_start = time.monotonic()
    with VirtualReader("Counter A 00 00", psam="Counter A 00 01", bus=bus, deadline=2.0, clock=clock) as reader:
        started = clock.monotonic()
        assert reader.read_and_authenticate(pin="123456").card_no == profiles(1)[0].card_no
        assert clock.monotonic() - started >= 17 * 1.5
        assert set(clock.sleeps) == {1.5}
        slot.card.set_faults(mute=True)
        started = clock.monotonic()
        with pytest.raises(CardMute, match="within 2 s during a card read"):
            reader.read_and_authenticate(pin="123456")
        assert clock.monotonic() - started == 2.0
        slot.card.set_faults(mute=False, slow_s=2.5)  # an answer later than the deadline is no answer
        with pytest.raises(CardMute, match="during READ RECORD"):
            reader.read_card()
        slot.card.clear_faults()
        assert reader.read_card().card_no == profiles(1)[0].card_no
    assert time.monotonic() - real_start < 5


def test_wait_for_card_counts_virtual_time(bus):
    clock = ManualClock()
    slot = bus.counters["Counter B"]
    reader = open_reader("virtual", slot.card_reader, psam=slot.psam_reader, bus=bus, clock=clock)
    with pytest.raises(NoCard, match="no card within 30 s"):
        reader.wait_for_card(30)
    assert clock.now_s == 1030.0
    slot.card.insert(genuine_card(1))
    reader.wait_for_card(30)
    assert reader.read_and_authenticate().card_no == profiles(2)[1].card_no


def test_the_bus_names_its_readers_as_pcscd_lists_them_and_a_reader_takes_the_first(bus):
    assert bus.list_readers() == ["Counter A 00 00", "Counter A 00 01", "Counter B 00 00", "Counter B 00 01"]
    reader = open_reader("virtual", bus=bus)
    assert (reader.name, reader.psam_name) == ("Counter A 00 00", "Counter A 00 01")
    assert isinstance(reader, Reader) and reader.read_and_authenticate().certno == profiles(1)[0].certno
    assert bus.counters["Counter A"].card.apdus == 16 and bus.counters["Counter A"].psam.apdus == 4
    with pytest.raises(NoReader, match="no reader entry"):
        VirtualReader(bus=VirtualBus([]))
    with pytest.raises(ValueError, match="already has"):
        bus.add_counter("Counter A")


def test_a_card_pulled_or_swapped_under_an_open_session(bus):
    slot = bus.counters["Counter A"]
    with open_reader("virtual", bus=bus) as reader:
        record = reader.read_card()
        slot.card.remove()
        with pytest.raises(CardRemoved):
            reader.authenticate(record)
        assert not reader.card_present()
        with pytest.raises(NoCard):
            reader.read_card()
        slot.card.insert(genuine_card())
        reader.read_card()
        slot.card.insert(genuine_card(1))  # swapped: a physical reader sees the removal in between
        with pytest.raises(CardRemoved):  # the session of the card that left does not carry over
            reader.verify_pin("123456")
        assert reader.read_card().card_no == profiles(2)[1].card_no


def test_the_service_stopped_under_a_session_then_back(bus):
    trace = ApduTrace()
    with open_reader("virtual", bus=bus, trace=trace) as reader:
        reader.read_card()
        bus.stop_service()
        with pytest.raises(ServiceDown, match="stopped"):
            reader.read_card()
        with pytest.raises(ServiceDown):
            reader.card_present()
        bus.start_service()
        assert reader.read_and_authenticate().card_no == profiles(1)[0].card_no
    assert sum("[READ RECORD]" in line for line in trace.lines) == 26


def test_a_backend_is_picked_by_name_and_an_unknown_one_lists_those_there_are(bus):
    assert {"pcsc", "virtual"} <= set(backend_names())
    with pytest.raises(UnknownBackend, match="no reader backend 'serial'; the backends are: .*pcsc.*virtual"):
        open_reader("serial", "Counter A 00 00")
    opened = []

    def loopback(name, psam=None, **options):
        opened.append((name, psam, options))
        return VirtualReader(name, psam, bus=bus)

    register_backend("loopback", loopback)
    try:
        reader = open_reader("loopback", "Counter A 00 00", psam="Counter A 00 01", deadline=1.0)
        assert opened == [("Counter A 00 00", "Counter A 00 01", {"deadline": 1.0})]
        assert reader.read_and_authenticate().card_no == profiles(1)[0].card_no
    finally:
        from medsettle.readers.backends import BACKENDS

        del BACKENDS["loopback"]


def test_the_virtual_backend_works_without_pyscard_and_pcsc_says_how_to_install_it():
    script = """
import sys
sys.modules["smartcard"] = None  # as if pyscard were not installed
from hw import genuine_card
from medsettle.hardware.bus import VirtualBus
from medsettle.readers import PyscardMissing, open_reader
bus = VirtualBus(["Desk"])
bus.counters["Desk"].card.insert(genuine_card())
print(open_reader("virtual", bus=bus).read_and_authenticate("123456").card_no)
try:
    open_reader("pcsc", "Desk 00 00")
except PyscardMissing as error:
    print(error)
"""
    tests = str(Path(__file__).parent)  # so the child can import hw, as pytest's pythonpath lets us
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert result.returncode == 0, result.stderr
    card_no, missing = result.stdout.splitlines()
    assert card_no == profiles(1)[0].card_no
    assert missing.startswith("pyscard is not installed")
