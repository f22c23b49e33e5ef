"""Reading and authenticating a card through pcscd (issue 4): SELECT, EF05, EF06, VERIFY, INTERNAL
AUTHENTICATE with the PSAM, median and p99 over 1,000 reads; target under 2 ms median.

The cards run in the hardware daemon, another process, as a physical card is another device. The
baseline measured in the same run is one APDU round trip (a SELECT) through the same stack: the read
costs about 20 of them, so the ratio says how much is the stack and how much is the driver. The same read
on the virtual backend (the card OS in this process, no pcscd) says what the driver and the card OS cost alone.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from figures import record_latency

READS = 1_000
DIR = Path(tempfile.gettempdir()) / "medsettle-bench-hardware"


@pytest.fixture(scope="module")
def reader():
    from medsettle.hardware.stack import unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(f"no PC/SC stack: {reason}")
    from medsettle.centre.registry import Registry
    from medsettle.engine import Population
    from medsettle.hardware import daemon
    from medsettle.hardware.personalise import profile_for
    from medsettle.policy import load_default_policy
    from medsettle.readers import PcscReader

    daemon.stop(DIR)
    client = daemon.start(DIR, ["Bench"])
    client.insert(profile_for(Registry.generate(Population.generate(load_default_policy(), 100, seed=0))))
    r = PcscReader("Bench 00 00", psam="Bench 00 01", deadline=5.0)
    r.wait_for_card(3)
    r.read_and_authenticate("123456")  # warm: connect and select the PSAM once
    yield r
    r.close()
    daemon.stop(DIR)


def test_apdu_round_trip(benchmark, reader):
    from medsettle.hardware.apdu import SSSE_AID

    select = bytes([0x00, 0xA4, 0x04, 0x00, len(SSSE_AID)]) + SSSE_AID
    benchmark.pedantic(lambda: reader.transmit(select), rounds=READS, iterations=1, warmup_rounds=20)
    record_latency("one APDU (SELECT) through pcscd", benchmark)


def test_read_and_authenticate(benchmark, reader):
    record = benchmark.pedantic(
        lambda: reader.read_and_authenticate("123456"), rounds=READS, iterations=1, warmup_rounds=20
    )
    assert record.certno
    record_latency("card read + PIN + authenticate (20 APDUs)", benchmark)


@pytest.fixture(scope="module")
def virtual_reader():
    """The same read on the virtual backend: the card OS and PSAM in this process, no pcscd (the cost of the
    driver and the card OS alone, next to the PC/SC figures above)."""
    from medsettle.centre.registry import Registry
    from medsettle.engine import Population
    from medsettle.hardware.bus import VirtualBus
    from medsettle.hardware.card import VirtualCard
    from medsettle.hardware.personalise import profile_for
    from medsettle.policy import load_default_policy
    from medsettle.readers import open_reader

    bus = VirtualBus(["Bench"])
    bus.counters["Bench"].card.insert(
        VirtualCard.issue(profile_for(Registry.generate(Population.generate(load_default_policy(), 100, seed=0))))
    )
    r = open_reader("virtual", "Bench 00 00", psam="Bench 00 01", bus=bus, deadline=5.0)
    r.read_and_authenticate("123456")
    yield r
    r.close()


def test_read_and_authenticate_virtual(benchmark, virtual_reader):
    record = benchmark.pedantic(
        lambda: virtual_reader.read_and_authenticate("123456"), rounds=READS, iterations=1, warmup_rounds=20
    )
    assert record.certno
    record_latency("card read + PIN + authenticate, virtual backend (20 APDUs)", benchmark)
