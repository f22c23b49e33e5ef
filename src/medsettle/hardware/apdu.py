"""Status words and encodings shared by the virtual card, the PSAM and the reader driver (ISO 7816-4,
the social security card specification's usage of it)."""

from __future__ import annotations

OK = 0x9000
MORE_DATA = 0x61  # 61xx: xx bytes wait for GET RESPONSE
WRONG_LE = 0x6C  # 6Cxx: repeat the command with Le = xx
PIN_TRIES = 0x63  # 63Cx: wrong PIN, x tries left
WRONG_LENGTH = 0x6700
SECURITY_NOT_SATISFIED = 0x6982
PIN_BLOCKED = 0x6983
CONDITIONS_NOT_SATISFIED = 0x6985
AUTH_FAILED = 0x6988  # the PSAM's "secure message data incorrect": the card's answer does not verify
FILE_NOT_FOUND = 0x6A82
RECORD_NOT_FOUND = 0x6A83
KEY_NOT_FOUND = 0x6A88
WRONG_P1P2 = 0x6B00
INS_NOT_SUPPORTED = 0x6D00
CLA_NOT_SUPPORTED = 0x6E00

# "sx1.sh.社会保障" in GBK: the name of the social security application SSSE.
SSSE_AID = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")
EF05, EF06 = 0xEF05, 0xEF06
SFI_OF_FILE = {EF05: 5, EF06: 6}
# Record number (= data item number) → value length, docs/card.md.
RECORD_LENGTHS = {
    0x01: 16,
    0x02: 1,
    0x03: 4,
    0x04: 12,
    0x05: 4,
    0x06: 4,
    0x07: 9,
    0x08: 18,
    0x09: 30,
    0x0A: 1,
    0x0B: 1,
    0x0C: 3,
    0x0D: 4,
}
RECORDS_OF_FILE = {EF05: range(0x01, 0x08), EF06: range(0x08, 0x0E)}

# The ATR our virtual social security cards answer with (T=0/T=1, historical bytes "SSC3.00").
CARD_ATR = bytes.fromhex("3B6A00008031C073D65353433300")
# A card that is not a social security card (a bank card's ATR), for the wrong-ATR fault.
FOREIGN_ATR = bytes.fromhex("3B6800000073C84000009000")
PSAM_ATR = bytes.fromhex("3B6800008031C04D5350534D")
PSAM_AID = b"MEDSETTLE.PSAM"


def sw(code: int) -> bytes:
    return code.to_bytes(2, "big")


def bcd(digits: str) -> bytes:
    """'20260315' → 20 26 03 15."""
    if len(digits) % 2 or not digits.isdigit():
        raise ValueError(f"BCD needs an even number of digits, got {digits!r}")
    return bytes.fromhex(digits)


def unbcd(value: bytes) -> str:
    text = value.hex().upper()
    if not text.isdigit():
        raise ValueError(f"not BCD: {text}")
    return text
