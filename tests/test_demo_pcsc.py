"""`medsettle demo --pcsc`: the same day with the cards read through a pcscd of the demo's own (vpcd readers),
where pcscd, vpcd and pyscard are installed (skipped naming what is missing otherwise). It starts pcscd, as
the other card and reader tests do: one pcscd per machine."""

import os
import subprocess
import sys

import pytest

from hw import DAEMON_DIR, skip_without_pcsc

pytestmark = pytest.mark.timeout(300)


def test_the_day_through_pcscd_is_the_virtual_day(tmp_path):
    skip_without_pcsc()
    from medsettle.hardware import daemon

    daemon.stop(DAEMON_DIR)  # a CLI test's stack an interrupted run left up would own /run/pcscd

    def demo(*args):
        return subprocess.run(
            [sys.executable, "-m", "medsettle.cli", "demo", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=dict(os.environ),
            timeout=240,
        )

    pcsc = demo("--pcsc", "--chart", "pcsc.png")
    assert pcsc.returncode == 0, pcsc.stderr
    virtual = demo("--chart", "virtual.png")
    assert virtual.returncode == 0, virtual.stderr

    def day(out):  # the timeline and the table: all but where the chart went and the real time taken
        return [line for line in out.splitlines() if not line.startswith(("chart:", "the day took"))]

    assert day(pcsc.stdout) == day(virtual.stdout)
    assert "pharmacy: the card reader fails" in pcsc.stdout and "clean at both counters" in pcsc.stdout
