"""`medsettle terminal sell --card` without --reader takes the first card reader pcscd lists (its PSAM in slot
01 of the same reader), as `medsettle card read` does; without pyscard, --card is one Error line saying how
to install it, and nothing is written. The first test runs on the real pcscd stack (skipped, naming what
is missing, where pcscd, vpcd or pyscard cannot run); the second needs none of it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from centre_rig import PHARMACY, ServedCentre, default_registry
from terminal_rig import ITEMS, patient

pytestmark = pytest.mark.timeout(180)
ITEM_ARGS = [f"{i['med_list_codg']}:{i['pric']}:{i['cnt']}" for i in ITEMS]


def terminal(url, journal, *args):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "medsettle.cli",
            "terminal",
            "-i",
            PHARMACY,
            "--centre",
            url,
            "--journal",
            str(journal),
            "--resend-for",
            "0.5",
            "--timeout",
            "2",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_sell_by_card_without_reader_takes_the_first_reader(pcsc_stack, tmp_path):
    from medsettle.hardware.card import VirtualCard
    from medsettle.hardware.personalise import profile_for
    from medsettle.readers import PcscReader, first_reader

    name, psam = first_reader()
    slot = next(s for s in pcsc_stack.counters.values() if s.card_reader == name)
    assert psam == slot.psam_reader  # the PSAM of the same reader, found without being named
    slot.card.clear_faults()
    slot.card.insert(VirtualCard.issue(profile_for(default_registry(), patient())))
    with PcscReader(name, psam=psam, deadline=1.0) as probe:
        probe.wait_for_card(3)
    server = ServedCentre(tmp_path / "centre").start()
    try:
        journal = tmp_path / "t.db"
        assert terminal(server.url, journal, "signin").returncode == 0
        result = terminal(server.url, journal, "sell", "--card", "--pin", "123456", *ITEM_ARGS)
        assert result.returncode == 0, result.stderr
        receipt = json.loads(result.stdout)
        assert receipt["kind"] == "sale" and receipt["psn_name"] == default_registry().identities[patient()].psn_name
        assert "card not usable" not in result.stderr
    finally:
        server.stop()
        slot.card.clear_faults()


@pytest.mark.parametrize(
    "mistake, code", [("wrong_pin", "WRONG_PIN"), ("no_card", "NO_CARD"), ("cloned", "CARD_NOT_GENUINE")]
)
def test_a_card_mistake_is_one_error_line_and_no_voucher(pcsc_stack, tmp_path, mistake, code):
    """A wrong PIN, no card inserted or a cloned card is not an equipment failure: no cash-and-voucher sale,
    one Error line saying what to do; the right card and PIN then settle as usual."""
    from medsettle.hardware.card import VirtualCard
    from medsettle.hardware.personalise import profile_for
    from medsettle.readers import first_reader

    name, _psam = first_reader()
    slot = next(s for s in pcsc_stack.counters.values() if s.card_reader == name)
    slot.card.clear_faults()
    profile = profile_for(default_registry(), patient())
    if mistake == "no_card":
        if slot.card.inserted:
            slot.card.remove()
    else:
        slot.card.insert(VirtualCard.issue(profile, cloned=mistake == "cloned"))
    time.sleep(0.5)  # pcscd sees the insertion or removal at its next poll
    server = ServedCentre(tmp_path / "centre").start()
    try:
        journal = tmp_path / "t.db"
        assert terminal(server.url, journal, "signin").returncode == 0
        pin = "000000" if mistake == "wrong_pin" else "123456"
        result = terminal(server.url, journal, "sell", "--card", "--pin", pin, *ITEM_ARGS)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1 and code in errors[0], result.stderr
        assert json.loads(terminal(server.url, journal, "vouchers").stdout) == []  # no cash-and-voucher sale
        slot.card.insert(VirtualCard.issue(profile))
        time.sleep(0.5)
        again = terminal(server.url, journal, "sell", "--card", "--pin", "123456", *ITEM_ARGS)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["kind"] == "sale"
    finally:
        server.stop()
        slot.card.clear_faults()


BLOCK_PYSCARD = textwrap.dedent("""
    import sys

    class NoPyscard:  # this interpreter behaves as one where pyscard was never installed
        def find_spec(self, name, path=None, target=None):
            if name == "smartcard" or name.startswith("smartcard."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoPyscard())
    from medsettle.cli import main
    main(sys.argv[1:], prog_name="medsettle")
""")


@pytest.mark.parametrize("reader", [[], ["--reader", "Counter A 00 00"]])
def test_sell_by_card_without_pyscard_is_one_error_line_and_writes_nothing(tmp_path, reader):
    journal = tmp_path / "t.db"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCK_PYSCARD,
            "terminal",
            "-i",
            PHARMACY,
            "--centre",
            "http://127.0.0.1:9/",
            "--journal",
            str(journal),
            *reader,
            "sell",
            "--card",
            *ITEM_ARGS,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "pip install 'medsettle[readers]'" in errors[0], result.stderr
    assert not journal.exists()  # nothing sold, nothing journaled
