"""Bringing the PC/SC stack up and down: leftovers of an interrupted run are found and stopped, a pcscd
that is not ours is reported (one pcscd per machine), and a machine without pcscd says why."""

import tempfile
from pathlib import Path

import pytest

from medsettle.hardware import stack as stack_module
from medsettle.hardware.stack import PcscStack, StackError

from hw import skip_without_pcsc

pytestmark = pytest.mark.timeout(60)
BASE = Path(tempfile.gettempdir()) / "medsettle-test-stack"


def test_a_pcscd_left_behind_by_an_interrupted_run_is_stopped():
    skip_without_pcsc()
    crashed = PcscStack(BASE / "same", ["Left"]).start()  # never stopped: as if the run was killed
    leftover = crashed.process
    again = PcscStack(BASE / "same", ["Left"])
    try:
        again.start()
        assert leftover.wait(5) == 0  # SIGTERM from the new run's stop_leftovers; we reap it here
        assert again.process.poll() is None
    finally:
        again.stop()
        crashed.counters["Left"].psam.remove()


def test_another_running_pcscd_is_reported_not_killed():
    skip_without_pcsc()
    first = PcscStack(BASE / "first", ["One"]).start()
    try:
        with pytest.raises(StackError, match=r"another pcscd \(pid \d+\) is running"):
            PcscStack(BASE / "second", ["Two"]).start()
        assert first.process.poll() is None
    finally:
        first.stop()


def test_without_pcscd_the_reason_names_what_to_install(monkeypatch):
    monkeypatch.setattr(stack_module, "pcscd_path", lambda: None)
    assert "apt-get install pcscd" in stack_module.unavailable_reason()
    with pytest.raises(StackError, match="pcscd is not installed"):
        PcscStack(BASE / "none").start()
    monkeypatch.setattr(stack_module, "pcscd_path", lambda: "/usr/sbin/pcscd")
    monkeypatch.setattr(stack_module, "vpcd_driver", lambda: None)
    assert "vsmartcard-vpcd" in stack_module.unavailable_reason()
