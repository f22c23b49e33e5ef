"""The counter with a reader on each backend (the virtual bus always; pcscd where it is installed), a virtual
card personalised from the centre's records and a PSAM. Happy path by card, the card pulled mid-settlement, the
reader or the PSAM failing (cash and a voucher) and the voucher settled after repair by reading the card."""

from __future__ import annotations

from decimal import Decimal

import pytest

from centre_rig import ServedCentre, default_registry
from medsettle.hardware.card import VirtualCard
from medsettle.hardware.personalise import profile_for
from medsettle.hardware.psam import VirtualPSAM
from medsettle.readers import CardMute, CardRemoved, NoReader, ReaderError
from medsettle.terminal import CounterError
from terminal_rig import ITEMS, balance_of, centre_records, days_ago, make_counter, patient

pytestmark = pytest.mark.timeout(180)


@pytest.fixture()
def rig(reader_backend, tmp_path):
    """A centre process and Counter A of the backend's stack with the person's genuine card and a PSAM."""
    slot = reader_backend.counters["Counter A"]
    slot.card.clear_faults()
    slot.card.insert(VirtualCard.issue(profile_for(default_registry(), patient())))
    reader = reader_backend.reader(slot, deadline=1.0)
    reader.wait_for_card(3)
    server = ServedCentre(tmp_path / "centre").start()
    counter = make_counter(server.url, tmp_path / "t.db", reader=reader)
    counter.sign_in()
    yield server, counter, slot
    slot.card.clear_faults()
    reader.close()
    server.stop()


def test_sale_by_card_with_pin(rig):
    server, counter, _slot = rig
    before = balance_of(server, counter.journal.get_meta("sign_no"))
    identity = counter.read_card(pin="123456")
    assert identity.mdtrt_cert_type == "03" and identity.certno == default_registry().identities[patient()].certno
    receipt = counter.sell(identity, ITEMS)
    assert receipt.kind == "sale" and receipt.psn_name == default_registry().identities[patient()].psn_name
    assert balance_of(server, counter.journal.get_meta("sign_no")) == before - Decimal(receipt.account)
    assert counter.reconcile(detail=True)["clean"]


def test_card_pulled_mid_settlement_sends_nothing(rig, reader_backend):
    server, counter, slot = rig
    identity = counter.read_card()
    slot.card.remove()
    reader_backend.seen()  # pcscd sees the removal at its next poll
    with pytest.raises(CardRemoved):
        counter.sell(identity, ITEMS)
    assert centre_records(server, counter.journal.get_meta("sign_no")) == []  # no settlement was sent
    slot.card.insert(VirtualCard.issue(profile_for(default_registry(), patient())))
    counter.reader.wait_for_card(3)
    assert counter.sell(counter.read_card(), ITEMS).kind == "sale"
    assert counter.reconcile(detail=True)["clean"]


@pytest.mark.parametrize("failure", ["mute_card", "removed_mid_apdu", "psam_failed"])
def test_equipment_failure_then_the_voucher_is_settled_by_reading_the_card(rig, reader_backend, failure):
    server, counter, slot = rig
    if failure == "mute_card":
        slot.card.set_faults(mute=True)
    elif failure == "removed_mid_apdu":
        slot.card.set_faults(remove_mid_apdu=True)
    else:
        slot.psam.remove()
    with pytest.raises((CardMute, CardRemoved, NoReader, ReaderError)):
        counter.read_card()
    deferred = counter.sell(None, ITEMS)  # the equipment failed: cash for the whole bill
    assert deferred.kind == "deferred" and Decimal(deferred.cash) == Decimal("55.00")
    # repaired
    slot.card.clear_faults()
    if failure == "psam_failed":
        slot.psam.insert(VirtualPSAM.for_regions(["130100", "330300"]))
    if not slot.card.inserted:
        slot.card.insert(VirtualCard.issue(profile_for(default_registry(), patient())))
    reader_backend.seen()
    counter.reader.close()
    counter.reader.wait_for_card(3)
    refund = counter.settle_voucher(deferred.voucher, counter.read_card())
    assert refund.kind == "refund" and Decimal(refund.refund) > 0
    assert counter.reconcile(detail=True)["clean"]


def test_reader_failure_then_resettlement_past_the_window_is_a_manual_claim(rig):
    server, counter, slot = rig
    slot.card.set_faults(garbage=True)  # the reader answers nonsense
    with pytest.raises(ReaderError):
        counter.read_card()
    nine_days_ago = make_counter(server.url, counter.journal.path, reader=counter.reader, clock=days_ago(9))
    deferred = nine_days_ago.sell(None, ITEMS)  # the bill of 9 days ago, paid in cash
    slot.card.clear_faults()  # repaired, but too late: the pharmacy window is 7 days
    with pytest.raises(CounterError, match="manual claim"):
        counter.settle_voucher(deferred.voucher, counter.read_card())
    assert counter.journal.voucher(deferred.voucher)["state"] == "manual_claim"
    assert centre_records(server, counter.journal.get_meta("sign_no")) == []
