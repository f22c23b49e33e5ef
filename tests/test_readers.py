"""The reader backends with virtual cards: every field, PIN, authenticity, each fault mode ending in its error
within its deadline, two counters at once, on both backends (``virtual`` always; ``pcsc``, a real pcscd with vpcd
readers, where it is installed); pcscd's own behaviour (its reader list, going away under a session, the
watcher) on PC/SC only."""

import threading
import time

import pytest

from medsettle.hardware.card import VirtualCard
from medsettle.readers import (
    CardBlocked,
    CardMute,
    CardNotGenuine,
    CardRemoved,
    CardUnreadable,
    NoCard,
    NoReader,
    ServiceDown,
    WrongPin,
)
from medsettle.readers.trace import ApduTrace

from hw import genuine_card, profiles

pytestmark = pytest.mark.timeout(60)
DEADLINE = 0.5


def pcsc():
    """The PC/SC driver, imported when a test runs, not when the module is collected: without pyscard every
    test here is skipped by its stack fixture, naming pyscard, instead of the module failing to import."""
    from medsettle.readers import pcsc

    return pcsc


def card_watcher(readers):
    from medsettle.readers.watcher import CardWatcher

    return CardWatcher(readers)


def reader_for(slot, **kwargs):
    """A PC/SC reader for the pcscd-only tests."""
    return pcsc().PcscReader(
        slot.card_reader, psam=slot.psam_reader, deadline=kwargs.pop("deadline", DEADLINE), **kwargs
    )


def open_for(backend, slot, **kwargs):
    """A reader of ``backend`` for reader entry ``slot``, with the tests' deadline unless given."""
    return backend.reader(slot, deadline=kwargs.pop("deadline", DEADLINE), **kwargs)


def test_pcscd_lists_both_counters_with_their_psam_slots(pcsc_stack):
    assert {"Counter A 00 00", "Counter A 00 01", "Counter B 00 00", "Counter B 00 01"} <= set(pcsc().list_readers())


def test_reads_every_field_of_several_personalised_cards(reader_backend, counter):
    with open_for(reader_backend, counter) as reader:
        for p in profiles(8):
            counter.card.insert(VirtualCard.issue(p))
            record = reader.read_and_authenticate(pin="123456")
            assert (record.region, record.card_sn, record.card_no, record.certno, record.name, record.sex) == (
                p.region,
                p.card_sn,
                p.card_no,
                p.certno,
                p.name,
                p.sex,
            )
            assert (record.birth_date, record.issue_date, record.expiry) == (p.birth_date, p.issue_date, p.expiry)
            assert (record.spec_version, record.card_type, record.issuer, record.nation, record.birthplace) == (
                "3.00",
                "1",
                p.region + "000000",
                "01",
                p.certno[:6],
            )
    assert {p.region for p in profiles(8)} == {"130100", "330300"}


def test_wrong_pin_until_blocked(reader_backend, counter):
    with open_for(reader_backend, counter) as reader:
        reader.read_card()
        with pytest.raises(WrongPin) as first:
            reader.verify_pin("000000")
        assert first.value.tries_left == 2
        reader.verify_pin("123456")  # a right PIN resets the count
        for tries_left in (2, 1):
            with pytest.raises(WrongPin, match=f"{tries_left} tr") as wrong:
                reader.verify_pin("654321")
            assert wrong.value.tries_left == tries_left
        with pytest.raises(CardBlocked, match="blocked"):
            reader.verify_pin("654321")
        with pytest.raises(CardBlocked):
            reader.verify_pin("123456")
        with pytest.raises(ValueError, match="PIN"):
            reader.verify_pin("12a4")


def test_genuine_cards_authenticate_and_clones_and_altered_cards_are_refused(reader_backend, counter):
    p = profiles(1)[0]
    with open_for(reader_backend, counter) as reader:
        reader.read_and_authenticate()
        counter.card.insert(VirtualCard.issue(p, cloned=True))
        record = reader.read_card()
        assert record.name == p.name  # a clone reads like the real card ...
        with pytest.raises(CardNotGenuine, match="not genuine"):
            reader.authenticate(record)  # ... but cannot answer the challenge
        counter.card.insert(VirtualCard.issue(p, altered={0x09: "张三".encode("gbk")}))
        assert reader.read_card().name == "张三"
        with pytest.raises(CardNotGenuine):
            reader.read_and_authenticate()


@pytest.mark.parametrize(
    "fault, error",
    [
        ({"mute": True}, CardMute),
        ({"slow_s": 2 * DEADLINE}, CardMute),  # one APDU unanswered past the deadline is as good as mute
        ({"garbage": True}, CardUnreadable),
        ({"truncated": True}, CardUnreadable),
    ],
)
def test_each_fault_ends_in_its_error_within_the_deadline(reader_backend, counter, fault, error):
    reader = open_for(reader_backend, counter)
    reader.read_card()
    counter.card.set_faults(**fault)
    started = time.monotonic()
    with pytest.raises(error):
        reader.read_and_authenticate()
    assert time.monotonic() - started < DEADLINE + 0.25
    counter.card.clear_faults()
    if reader_backend.name == "pcsc":  # let a hung APDU finish in pcscd before the next test uses the reader
        time.sleep(0.35 + fault.get("slow_s", 0))
    assert reader.read_card().card_no == profiles(1)[0].card_no  # the reader recovers once the card does
    reader.close()


def test_a_slow_card_is_read_however_long_the_whole_read_takes_and_only_a_mute_one_times_out(reader_backend, counter):
    """The deadline is per APDU: 0.15 s per APDU is well within 0.5 s, though the read's 16 card APDUs
    take far longer than 0.5 s in all; the same card turned mute fails within the deadline."""
    counter.card.set_faults(slow_s=0.3 * DEADLINE)
    with open_for(reader_backend, counter) as reader:
        started = time.monotonic()
        record = reader.read_and_authenticate(pin="123456")
        took = time.monotonic() - started
        assert record.card_no == profiles(1)[0].card_no
        assert took > 4 * DEADLINE  # the whole read was far past one deadline, and still read
        counter.card.set_faults(mute=True)
        started = time.monotonic()
        with pytest.raises(CardMute, match=f"within {DEADLINE:g} s"):
            reader.read_and_authenticate(pin="123456")
        assert DEADLINE <= time.monotonic() - started < DEADLINE + 0.25
    counter.card.clear_faults()


def test_card_removed_mid_apdu(reader_backend, counter):
    with open_for(reader_backend, counter) as reader:
        reader.read_card()
        counter.card.set_faults(remove_mid_apdu=True)
        started = time.monotonic()
        with pytest.raises((CardRemoved, NoCard)):
            reader.read_card()
        assert time.monotonic() - started < DEADLINE + 0.25
        counter.card.clear_faults()
        reader_backend.seen()
        assert not reader.card_present()
        with pytest.raises(NoCard):
            reader.read_card()
        reader_backend.reinsert(counter, genuine_card())
        assert reader.read_card().card_no == profiles(1)[0].card_no


def test_card_pulled_between_operations_is_noticed(reader_backend, counter):
    with open_for(reader_backend, counter) as reader:
        record = reader.read_card()
        counter.card.remove()
        reader_backend.seen()
        assert not reader.card_present()
        with pytest.raises((CardRemoved, NoCard)):
            reader.authenticate(record)
        reader_backend.reinsert(counter, genuine_card())
        assert reader.card_present()


def test_wrong_atr_is_not_a_social_security_card(reader_backend, counter):
    counter.card.set_faults(wrong_atr=True)
    reader_backend.reinsert(counter, genuine_card())
    with open_for(reader_backend, counter) as reader, pytest.raises(CardUnreadable, match="ATR"):
        reader.read_card()
    counter.card.clear_faults()
    reader_backend.reinsert(counter, genuine_card())


def test_no_card_and_no_reader(reader_backend):
    slot = reader_backend.counters["Counter B"]
    slot.card.remove()
    reader_backend.seen()
    with open_for(reader_backend, slot) as reader:
        started = time.monotonic()
        with pytest.raises(NoCard, match="within 0.3 s"):
            reader.wait_for_card(0.3)
        assert 0.25 < time.monotonic() - started < 1.0
        with pytest.raises(NoCard):
            reader.read_card()
    with reader_backend.reader_named("No Such Reader 00 00", deadline=DEADLINE) as ghost, pytest.raises(NoReader):
        ghost.read_card()
    with reader_backend.reader_named(slot.card_reader, deadline=DEADLINE) as without_psam:
        slot.card.insert(genuine_card(1))
        without_psam.wait_for_card(3)
        with pytest.raises(NoReader, match="no PSAM"):
            without_psam.authenticate(without_psam.read_card())


def test_two_counters_at_once(reader_backend):
    a, b = reader_backend.counters["Counter A"], reader_backend.counters["Counter B"]
    pa, pb = profiles(3)[1:3]
    a.card.clear_faults()
    a.card.insert(VirtualCard.issue(pa))
    b.card.insert(VirtualCard.issue(pb))
    results, errors = {a.name: [], b.name: []}, []

    def serve(slot):
        try:
            with open_for(reader_backend, slot, deadline=2.0) as reader:
                reader.wait_for_card(3)
                for _ in range(50):
                    results[slot.name].append(reader.read_and_authenticate(pin="123456").card_no)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=serve, args=(slot,)) for slot in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert results == {a.name: [pa.card_no] * 50, b.name: [pb.card_no] * 50}


def test_trace_logs_every_apdu_and_masks_the_pin(reader_backend, counter):
    trace = ApduTrace()
    with open_for(reader_backend, counter, trace=trace) as reader:
        reader.read_and_authenticate(pin="123456")
    text = "\n".join(trace.lines)
    assert "[SELECT]" in text and text.count("[READ RECORD]") == 13 and "[INTERNAL AUTHENTICATE]" in text
    assert "[GET RESPONSE]" in text and "[PSAM VERIFY CARD]" in text
    verify = next(line for line in trace.lines if "[VERIFY]" in line)
    assert "12 34 56" not in verify and "FF FF FF" in verify


def test_raw_transmit_follows_6cxx(reader_backend, counter):
    with open_for(reader_backend, counter) as reader:
        reader.read_card()
        data, sw = reader.transmit(bytes([0x00, 0xB2, 0x07, 0x2C, 0x01]))  # wrong Le: the card says 6C0B
        assert sw == 0x9000 and data == b"\x07\x09" + profiles(1)[0].card_no.encode()


def test_pcscd_stopped_under_a_session_then_back(pcsc_stack, pcsc_counter):
    counter = pcsc_counter
    watcher = card_watcher([counter.card_reader]).start()
    try:
        assert watcher.events.get(timeout=3).kind == "service_up"
        assert watcher.events.get(timeout=3).kind == "inserted"
        reader = reader_for(counter)
        reader.read_card()
        pcsc_stack.stop_pcscd()
        started = time.monotonic()
        with pytest.raises(ServiceDown, match="pcscd"):
            reader.read_card()
        assert time.monotonic() - started < DEADLINE + 0.25
        assert watcher.events.get(timeout=3).kind == "service_down"
        with pytest.raises(ServiceDown):
            pcsc().list_readers()
        pcsc_stack.start_pcscd()
        assert watcher.events.get(timeout=5).kind == "service_up"  # the monitor was restarted
        assert watcher.events.get(timeout=3).kind == "inserted"  # and sees the card that stayed in
        assert watcher.restarts >= 1
        reader.wait_for_card(3)
        assert reader.read_card().card_no == profiles(1)[0].card_no
        reader.close()
    finally:
        watcher.stop()
        if pcsc_stack.process is None:
            pcsc_stack.start_pcscd()


def test_watcher_reports_removal_and_insertion(pcsc_counter):
    counter = pcsc_counter
    watcher = card_watcher([counter.card_reader]).start()
    try:
        assert [watcher.events.get(timeout=3).kind for _ in range(2)] == ["service_up", "inserted"]
        counter.card.remove()
        event = watcher.events.get(timeout=2)
        assert (event.kind, event.reader) == ("removed", counter.card_reader)
        counter.card.insert(genuine_card())
        event = watcher.events.get(timeout=2)
        assert (event.kind, event.reader) == ("inserted", counter.card_reader)
    finally:
        watcher.stop()


def test_a_card_pulled_just_before_a_read_is_removed_not_unreadable(reader_backend, counter):
    """Within pcscd's 0.4 s poll a pulled card still 'connects' with a stale ATR: the driver must say removed."""
    with open_for(reader_backend, counter) as reader:
        for _ in range(3):
            reader.close()
            counter.card.remove()
            with pytest.raises((CardRemoved, NoCard)):
                reader.read_card()
            reader_backend.reinsert(counter, genuine_card())
            assert reader.read_card().card_no == profiles(1)[0].card_no


def test_both_backends_send_the_same_apdus_for_a_read(pcsc_counter):
    """One protocol for both: the same commands, in the same order, to the card and the PSAM (only the
    random challenge inside INTERNAL AUTHENTICATE differs)."""
    from hw import virtual_backend

    virtual = virtual_backend()
    virtual.counters["Counter A"].card.insert(genuine_card())

    def commands(reader) -> list[tuple[str, str]]:
        trace = ApduTrace()
        reader.trace = trace
        reader.read_and_authenticate(pin="123456")
        reader.close()
        return [(line.split(" > ")[0][-2:], line.split(" > ")[1].split(" [")[1].split("]")[0]) for line in trace.lines]

    on_pcsc = commands(reader_for(pcsc_counter, deadline=2.0))
    on_virtual = commands(virtual.reader(virtual.counters["Counter A"], deadline=2.0))
    assert on_pcsc == on_virtual and len(on_virtual) == 21
    assert [name for slot, name in on_virtual if slot == "01"] == [
        "SELECT",
        "GET CHALLENGE",
        "PSAM DERIVE CARD KEY",
        "PSAM VERIFY CARD",
    ]
