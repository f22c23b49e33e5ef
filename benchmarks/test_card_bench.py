"""Reading and authenticating a card through pcscd (issue 4): SELECT, EF05, EF06, VERIFY, INTERNAL
AUTHENTICATE with the PSAM, median and p99 over 1,000 reads; target under 2 ms median.

The cards run in the hardware daemon, another process, as a physical card is another device. The
baseline measured in the same run is one APDU round trip (a SELECT) through the same stack: the read
costs about 20 of them, so the ratio says how much is the stack and how much is the driver. The same read
on the virtual backend (the card OS in this process, no pcscd) says what the driver and the card OS cost alone.
The measuring code is medsettle.bench.layers.card's (what `medsettle bench all` measures).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from figures import record_latency
from medsettle.bench.layers import card

READS = 1_000
DIR = Path(tempfile.gettempdir()) / "medsettle-bench-hardware"


@pytest.fixture(scope="module")
def reader():
    from medsettle.hardware.stack import unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(f"no PC/SC stack: {reason}")
    with card.pcsc_reader(DIR) as r:
        yield r


def test_apdu_round_trip(benchmark, reader):
    select = card.select_apdu()
    benchmark.pedantic(lambda: reader.transmit(select), rounds=READS, iterations=1, warmup_rounds=20)
    record_latency("one APDU (SELECT) through pcscd", benchmark)


def test_read_and_authenticate(benchmark, reader):
    record = benchmark.pedantic(
        lambda: reader.read_and_authenticate(card.PIN), rounds=READS, iterations=1, warmup_rounds=20
    )
    assert record.certno
    record_latency("card read + PIN + authenticate (20 APDUs)", benchmark)


@pytest.fixture(scope="module")
def virtual_reader():
    """The same read on the virtual backend: the card OS and PSAM in this process, no pcscd (the cost of the
    driver and the card OS alone, next to the PC/SC figures above)."""
    with card.virtual_reader() as r:
        yield r


def test_read_and_authenticate_virtual(benchmark, virtual_reader):
    record = benchmark.pedantic(
        lambda: virtual_reader.read_and_authenticate(card.PIN), rounds=READS, iterations=1, warmup_rounds=20
    )
    assert record.certno
    record_latency("card read + PIN + authenticate, virtual backend (20 APDUs)", benchmark)
