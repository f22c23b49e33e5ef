"""A card read through pcscd (issue 4): SELECT, EF05, EF06, VERIFY and INTERNAL AUTHENTICATE with the PSAM,
against one APDU round trip (a SELECT) through the same stack in the same run: the read costs about 20 of
them, so the ratio says how much is the stack and how much is the driver.

The cards run in the hardware daemon, another process, as a physical card is another device. Only one
pcscd can run on a machine (it owns /run/pcscd): when another is running, or pcscd, the vpcd driver or
pyscard is missing, the layer is skipped with that reason, and never stops someone else's pcscd.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import LayerResult, LayerSkipped, Size, ratio
from .timing import median, rounds

TITLE = "card read through pcscd"
PIN = "123456"


def running_pcscd() -> int | None:
    """The pid of a pcscd already running on this machine (from its pid file in /run/pcscd), or None."""
    from ...hardware.stack import PCSCD_RUN_DIR  # noqa: PLC0415

    try:
        pid = int((PCSCD_RUN_DIR / "pcscd.pid").read_bytes().rstrip(b"\0\n ") or 0)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if pid else b""
    except (OSError, ValueError):
        return None
    return pid if b"pcscd" in cmdline else None


def unavailable() -> str | None:
    """Why the card layer cannot run here, or None (a seam: tests make it say why)."""
    from ...hardware.stack import unavailable_reason  # noqa: PLC0415

    reason = unavailable_reason()
    if reason:
        return f"no PC/SC stack: {reason}"
    pid = running_pcscd()
    if pid:
        return f"another pcscd (pid {pid}) is running: one PC/SC stack per machine, stop it first"
    return None


def profile() -> Any:
    """The card profile of the first person of a generated registry of 100."""
    from ...centre.registry import Registry  # noqa: PLC0415
    from ...engine import Population  # noqa: PLC0415
    from ...hardware.personalise import profile_for  # noqa: PLC0415
    from ...policy import load_default_policy  # noqa: PLC0415

    return profile_for(Registry.generate(Population.generate(load_default_policy(), 100, seed=0)))


@contextmanager
def pcsc_reader(directory: str | os.PathLike[str]) -> Iterator[Any]:
    """A PcscReader on a card in the hardware daemon started in ``directory``, warmed by one read."""
    from ...hardware import daemon  # noqa: PLC0415
    from ...readers import PcscReader  # noqa: PLC0415

    daemon.stop(directory)
    client = daemon.start(directory, ["Bench"])
    try:
        client.insert(profile())
        reader = PcscReader("Bench 00 00", psam="Bench 00 01", deadline=5.0)
        try:
            reader.wait_for_card(3)
            reader.read_and_authenticate(PIN)  # warm: connect and select the PSAM once
            yield reader
        finally:
            reader.close()
    finally:
        daemon.stop(directory)


@contextmanager
def virtual_reader() -> Iterator[Any]:
    """The same read on the virtual backend: the card OS and PSAM in this process, no pcscd."""
    from ...hardware.bus import VirtualBus  # noqa: PLC0415
    from ...hardware.card import VirtualCard  # noqa: PLC0415
    from ...readers import open_reader  # noqa: PLC0415

    bus = VirtualBus(["Bench"])
    bus.counters["Bench"].card.insert(VirtualCard.issue(profile()))
    reader = open_reader("virtual", "Bench 00 00", psam="Bench 00 01", bus=bus, deadline=5.0)
    try:
        reader.read_and_authenticate(PIN)
        yield reader
    finally:
        reader.close()


def select_apdu() -> bytes:
    """SELECT of the social security application: one APDU round trip."""
    from ...hardware.apdu import SSSE_AID  # noqa: PLC0415

    return bytes([0x00, 0xA4, 0x04, 0x00, len(SSSE_AID)]) + SSSE_AID


def measure(size: Size) -> LayerResult:
    """Reads/s and the median read, against APDUs/s of one SELECT through the same pcscd."""
    reason = unavailable()
    if reason:
        raise LayerSkipped(reason)
    reads = size.n(1_000, 200, 10)
    select = select_apdu()
    with tempfile.TemporaryDirectory(prefix="medsettle-bench-card-") as tmp, pcsc_reader(tmp) as reader:
        rounds(lambda: reader.transmit(select), 20)
        apdu = rounds(lambda: reader.transmit(select), reads)
        rounds(lambda: reader.read_and_authenticate(PIN), 20)
        read = rounds(lambda: reader.read_and_authenticate(PIN), reads)
    throughput, yardstick = 1 / median(read), 1 / median(apdu)
    return LayerResult(
        layer="card",
        title=TITLE,
        throughput=throughput,
        throughput_unit="reads/s",
        latency_ms=median(read) * 1e3,
        latency_kind="median read + PIN + authenticate",
        yardstick="one APDU (SELECT) through the same pcscd",
        yardstick_throughput=yardstick,
        yardstick_unit="APDUs/s",
        ratio=ratio(throughput, yardstick),
        note="throughputs are 1 / median; the read is about 20 APDUs",
        details={"reads": reads, "apdu_median_ms": median(apdu) * 1e3},
    )
