"""The virtual card and PSAM answer APDUs as docs/card.md says, checked byte by byte without any stack."""

import datetime as dt

import pytest

from medsettle.hardware import apdu as A
from medsettle.hardware.card import CardProfile, VirtualCard
from medsettle.hardware.keys import auth_cryptogram, card_digest, card_key, issuing_key, sm3, sm4_ecb_encrypt
from medsettle.hardware.psam import VirtualPSAM

from hw import profiles

SELECT_SSSE = bytes([0x00, 0xA4, 0x04, 0x00, 0x0F]) + A.SSSE_AID


def profile() -> CardProfile:
    return CardProfile(
        card_sn="330300D15600000512345678FFFFFFFF",
        card_no="330123456",
        certno="33030019800101001X",
        name="欧阳明华",
        sex="1",
        birth_date=dt.date(1980, 1, 1),
        issue_date=dt.date(2021, 6, 30),
        expiry=dt.date(2031, 6, 30),
        pin="246810",
    )


def selected(card: VirtualCard) -> VirtualCard:
    assert card.process(SELECT_SSSE) == b"\x90\x00"
    return card


def test_sm4_and_sm3_are_the_standard_ones():
    # GB/T 32907 example: key = plaintext = 0123456789ABCDEFFEDCBA9876543210
    key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    assert sm4_ecb_encrypt(key, key).hex() == "681edf34d206965e86b3e94f536e4246"
    # GB/T 32905 example: SM3("abc")
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_every_record_has_its_documented_tag_length_and_encoding():
    card = selected(VirtualCard.issue(profile()))
    expected = {
        0x01: bytes.fromhex("330300D15600000512345678FFFFFFFF"),
        0x02: b"1",
        0x03: b"3.00",
        0x04: b"330300000000",
        0x05: bytes.fromhex("20210630"),
        0x06: bytes.fromhex("20310630"),
        0x07: b"330123456",
        0x08: b"33030019800101001X",
        0x09: "欧阳明华".encode("gbk") + bytes(22),
        0x0A: b"1",
        0x0B: b"\x01",
        0x0C: bytes.fromhex("330300"),
        0x0D: bytes.fromhex("19800101"),
    }
    for rec, value in expected.items():
        sfi = 5 if rec <= 7 else 6
        answer = card.process(bytes([0x00, 0xB2, rec, (sfi << 3) | 4, 2 + len(value)]))
        assert answer == bytes([rec, len(value)]) + value + b"\x90\x00", f"record {rec:02X}"
        assert len(value) == A.RECORD_LENGTHS[rec]


def test_records_of_the_other_file_and_without_selection_are_refused():
    card = VirtualCard.issue(profile())
    assert card.process(bytes([0x00, 0xB2, 0x01, 0x2C, 0x12])) == A.sw(A.FILE_NOT_FOUND)  # application not selected
    selected(card)
    assert card.process(bytes([0x00, 0xB2, 0x08, 0x2C, 0x14])) == A.sw(A.RECORD_NOT_FOUND)  # 08 is in EF06
    assert card.process(bytes([0x00, 0xB2, 0x01, 0x3C, 0x12])) == A.sw(A.FILE_NOT_FOUND)  # SFI 7
    assert card.process(bytes([0x00, 0xA4, 0x04, 0x00, 0x03, 1, 2, 3])) == A.sw(A.FILE_NOT_FOUND)


def test_select_ef_by_identifier_then_read_the_current_file():
    card = selected(VirtualCard.issue(profile()))
    assert card.process(bytes([0x00, 0xA4, 0x02, 0x00, 0x02, 0xEF, 0x06])) == b"\x90\x00"
    assert card.process(bytes([0x00, 0xB2, 0x0A, 0x04, 0x03])) == b"\x0a\x01" + b"1" + b"\x90\x00"
    assert card.process(bytes([0x00, 0xA4, 0x02, 0x00, 0x02, 0xEF, 0x07])) == A.sw(A.FILE_NOT_FOUND)


def test_wrong_le_answers_6cxx_and_le_zero_gives_the_whole_record():
    card = selected(VirtualCard.issue(profile()))
    assert card.process(bytes([0x00, 0xB2, 0x07, 0x2C, 0x05])) == bytes([0x6C, 11])
    assert card.process(bytes([0x00, 0xB2, 0x07, 0x2C, 0x00])) == b"\x07\x09330123456\x90\x00"


def test_pin_counter_counts_down_blocks_at_zero_and_a_right_pin_resets_it():
    card = VirtualCard.issue(profile())
    verify = lambda pin: card.process(bytes([0x00, 0x20, 0x00, 0x00, 0x03]) + bytes.fromhex(pin))  # noqa: E731
    assert verify("111111") == b"\x63\xc2"
    assert verify("246810") == b"\x90\x00"  # resets the counter
    assert verify("111111") == b"\x63\xc2"
    assert verify("111111") == b"\x63\xc1"
    assert verify("111111") == b"\x69\x83"
    assert verify("246810") == b"\x69\x83"  # blocked stays blocked, even for the right PIN
    card.reset()
    assert verify("246810") == b"\x69\x83"  # and across a reset: the counter is in EEPROM


def test_internal_authenticate_answers_61xx_then_get_response_with_the_cryptogram():
    p = profile()
    card = selected(VirtualCard.issue(p))
    random8 = bytes(range(8))
    assert card.process(bytes([0x00, 0x88, 0x00, 0x01, 0x08]) + random8) == b"\x61\x10"
    assert card.process(bytes([0x00, 0xC0, 0x00, 0x00, 0x08])) == b"\x6c\x10"  # wrong Le keeps the answer
    answer = card.process(bytes([0x00, 0xC0, 0x00, 0x00, 0x10]))
    records = p.records()
    key = card_key(records[1], issuing_key("330300"))
    assert answer == auth_cryptogram(key, random8, card_digest(records[1], records[8], records[9])) + b"\x90\x00"
    assert card.process(bytes([0x00, 0xC0, 0x00, 0x00, 0x10])) == A.sw(A.CONDITIONS_NOT_SATISFIED)  # used once


def test_get_challenge_gives_fresh_random_bytes():
    card = VirtualCard.issue(profile())
    first, second = (card.process(bytes([0x00, 0x84, 0x00, 0x00, 0x08])) for _ in range(2))
    assert first[-2:] == second[-2:] == b"\x90\x00" and len(first) == 10 and first != second


def test_unknown_instruction_and_class():
    card = VirtualCard.issue(profile())
    assert card.process(bytes([0x00, 0xFE, 0, 0])) == A.sw(A.INS_NOT_SUPPORTED)
    assert card.process(bytes([0xA0, 0xA4, 0, 0])) == A.sw(A.CLA_NOT_SUPPORTED)
    assert card.process(b"\x00") == A.sw(A.WRONG_LENGTH)


def _psam_check(card: VirtualCard, *, regions=("130100", "330300"), digest: bytes | None = None) -> bytes:
    psam = VirtualPSAM.for_regions(regions)
    assert psam.process(bytes([0x00, 0xA4, 0x04, 0x00, len(A.PSAM_AID)]) + A.PSAM_AID) == b"\x90\x00"
    challenge = psam.process(bytes([0x00, 0x84, 0x00, 0x00, 0x08]))[:8]
    derive = psam.process(bytes([0x80, 0x1A, 0x00, 0x00, 0x10]) + card.records[1])
    if derive != b"\x90\x00":
        return derive
    selected(card).process(bytes([0x00, 0x88, 0x00, 0x01, 0x08]) + challenge)
    cryptogram = card.process(bytes([0x00, 0xC0, 0x00, 0x00, 0x10]))[:16]
    read_digest = digest or card_digest(card.records[1], card.records[8], card.records[9])
    return psam.process(bytes([0x80, 0x82, 0x00, 0x00, 0x18]) + cryptogram + read_digest)


def test_psam_accepts_genuine_cards_of_every_region():
    for p in profiles(6):
        assert _psam_check(VirtualCard.issue(p)) == b"\x90\x00", p.card_no


def test_psam_refuses_a_clone_and_altered_data():
    assert _psam_check(VirtualCard.issue(profile(), cloned=True)) == A.sw(A.AUTH_FAILED)
    altered = VirtualCard.issue(profile(), altered={0x09: "李四".encode("gbk")})
    assert _psam_check(altered) == A.sw(A.AUTH_FAILED)
    altered_id = VirtualCard.issue(profile(), altered={0x08: b"330300198001010038"})
    assert _psam_check(altered_id) == A.sw(A.AUTH_FAILED)


def test_psam_without_the_regions_key_and_without_a_challenge():
    assert _psam_check(VirtualCard.issue(profile()), regions=("130100",)) == A.sw(A.KEY_NOT_FOUND)
    psam = VirtualPSAM.for_regions(["330300"])
    assert psam.process(bytes([0x00, 0x84, 0x00, 0x00, 0x08])) == A.sw(A.CONDITIONS_NOT_SATISFIED)  # not selected
    psam.process(bytes([0x00, 0xA4, 0x04, 0x00, len(A.PSAM_AID)]) + A.PSAM_AID)
    assert psam.process(bytes([0x80, 0x82, 0x00, 0x00, 0x18]) + bytes(24)) == A.sw(A.CONDITIONS_NOT_SATISFIED)
    assert psam.process(bytes([0x00, 0xB0, 0x96, 0x00, 0x06])) == bytes.fromhex("000000000001") + b"\x90\x00"


def test_a_profile_that_does_not_fit_its_records_is_refused():
    with pytest.raises(ValueError, match="longer than 30 bytes"):
        CardProfile(**{**vars(profile()), "name": "长" * 16}).records()
    with pytest.raises(ValueError, match="record 08"):
        CardProfile(**{**vars(profile()), "certno": "12345"}).records()
