"""The operating system of a virtual social security card: it takes a C-APDU and gives the R-APDU,
exactly as docs/card.md describes the real one. No sockets here (see :mod:`.vpcd`), so it is easy to test.

A card is personalised from a :class:`CardProfile` (the issuer's data: the centre's person and card
records). At personalisation it is given its key and the digest of the issuer's data; the two data
faults are made here:

- *cloned*: the data is genuine but the key is not (a copier cannot read the key out of a real card);
- *altered*: a record of EF06 is changed after issue, so the digest written at issue no longer matches.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field

from . import apdu as A
from .keys import (
    SIMULATION_ROOT_KEY,
    auth_cryptogram,
    card_digest,
    card_key,
    issuing_key,
)


@dataclass(frozen=True)
class CardProfile:
    """What the issuer writes on a card (EF05 01-07, EF06 08-0D) and the PIN set at issue."""

    card_sn: str  # card identification code, 32 hex digits: region, D156000005, serial, FFFFFFFF
    card_no: str  # 9 characters printed on the card
    certno: str  # 18-character citizen ID number (the social security number)
    name: str
    sex: str  # "1" male, "2" female
    birth_date: dt.date
    issue_date: dt.date
    expiry: dt.date
    spec_version: str = "3.00"
    card_type: str = "1"
    issuer: str = ""  # 12 characters; default: the region's code followed by zeros
    nation: str = "01"  # 2 BCD digits, 01 = Han
    birthplace: str = ""  # 6-digit region; default: the card's region
    pin: str = "123456"

    @property
    def region(self) -> str:
        return self.card_sn[:6]

    def records(self) -> dict[int, bytes]:
        """Record number → value, with the documented lengths and encodings."""
        name = self.name.encode("gbk")
        if len(name) > 30:
            raise ValueError(f"name {self.name!r} is longer than 30 bytes in GBK")
        values = {
            0x01: bytes.fromhex(self.card_sn),
            0x02: self.card_type.encode("ascii"),
            0x03: self.spec_version.encode("ascii"),
            0x04: (self.issuer or self.region + "000000").encode("ascii"),
            0x05: A.bcd(f"{self.issue_date:%Y%m%d}"),
            0x06: A.bcd(f"{self.expiry:%Y%m%d}"),
            0x07: self.card_no.encode("ascii"),
            0x08: self.certno.encode("ascii"),
            0x09: name.ljust(30, b"\0"),
            0x0A: self.sex.encode("ascii"),
            0x0B: A.bcd(self.nation),
            0x0C: A.bcd(self.birthplace or self.region),
            0x0D: A.bcd(f"{self.birth_date:%Y%m%d}"),
        }
        for rec, value in values.items():
            if len(value) != A.RECORD_LENGTHS[rec]:
                raise ValueError(f"record {rec:02X} must be {A.RECORD_LENGTHS[rec]} bytes, got {len(value)}")
        return values


@dataclass
class VirtualCard:
    """One card: its files, key, PIN counter and the state of its current session."""

    profile: CardProfile
    key: bytes
    digest: bytes  # of the issuer's data, written at issue
    records: dict[int, bytes]
    pin_tries_left: int = 3
    atr: bytes = A.CARD_ATR
    # session state (a reset clears it)
    selected_app: bool = field(default=False, init=False)
    selected_file: int | None = field(default=None, init=False)
    pending_response: bytes = field(default=b"", init=False)
    challenge: bytes = field(default=b"", init=False)

    PIN_TRIES = 3

    @classmethod
    def issue(
        cls,
        profile: CardProfile,
        *,
        root_key: bytes = SIMULATION_ROOT_KEY,
        cloned: bool = False,
        altered: dict[int, bytes] | None = None,
    ) -> VirtualCard:
        """Personalise a card from the issuer's data. ``cloned``: a random key instead of the real one;
        ``altered``: record number → new value written after issue (the digest stays the issuer's)."""
        records = profile.records()
        digest = card_digest(records[0x01], records[0x08], records[0x09])
        key = os.urandom(16) if cloned else card_key(records[0x01], issuing_key(profile.region, root_key))
        for rec, value in (altered or {}).items():
            records[rec] = value.ljust(A.RECORD_LENGTHS[rec], b"\0")[: A.RECORD_LENGTHS[rec]]
        return cls(profile=profile, key=key, digest=digest, records=records)

    def reset(self) -> bytes:
        """Power on or warm reset: the session ends (selection, challenge, pending answer), the PIN
        counter does not (it lives in the card's EEPROM)."""
        self.selected_app, self.selected_file = False, None
        self.pending_response, self.challenge = b"", b""
        return self.atr

    # -- the APDU dispatcher -----------------------------------------------------------------

    def process(self, command: bytes) -> bytes:
        if len(command) < 4:
            return A.sw(A.WRONG_LENGTH)
        cla, ins, p1, p2 = command[:4]
        body = command[4:]
        if cla not in (0x00, 0x80):
            return A.sw(A.CLA_NOT_SUPPORTED)
        if ins != 0xC0:
            self.pending_response = b""  # any other command discards an answer not fetched
        handler = {
            0xA4: self._select,
            0xB2: self._read_record,
            0x20: self._verify,
            0x84: self._get_challenge,
            0x88: self._internal_authenticate,
            0xC0: self._get_response,
        }.get(ins)
        if handler is None:
            return A.sw(A.INS_NOT_SUPPORTED)
        return handler(p1, p2, body)

    @staticmethod
    def _lc_data(body: bytes) -> bytes | None:
        if not body or len(body) < 1 + body[0]:
            return None
        return body[1 : 1 + body[0]]

    @staticmethod
    def _le(body: bytes) -> int:
        return body[-1] if body else 0

    def _answer(self, data: bytes, le: int) -> bytes:
        """Data with 9000, or 6Cxx when the caller asked for a length other than the data's."""
        if le not in (0, len(data)):
            return bytes([A.WRONG_LE, len(data)])
        return data + A.sw(A.OK)

    def _select(self, p1: int, p2: int, body: bytes) -> bytes:
        data = self._lc_data(body)
        if data is None:
            return A.sw(A.WRONG_LENGTH)
        if p1 == 0x04:  # by application name
            if data != A.SSSE_AID:
                return A.sw(A.FILE_NOT_FOUND)
            self.selected_app, self.selected_file = True, None
            return A.sw(A.OK)
        if p1 in (0x00, 0x02) and len(data) == 2 and self.selected_app:  # EF by file identifier
            fid = int.from_bytes(data, "big")
            if fid not in A.RECORDS_OF_FILE:
                return A.sw(A.FILE_NOT_FOUND)
            self.selected_file = fid
            return A.sw(A.OK)
        return A.sw(A.FILE_NOT_FOUND)

    def _read_record(self, rec: int, p2: int, body: bytes) -> bytes:
        if not self.selected_app:
            return A.sw(A.FILE_NOT_FOUND)
        if p2 & 0x07 != 0x04:  # only "record number in P1"
            return A.sw(A.WRONG_P1P2)
        sfi = p2 >> 3
        fid = self.selected_file if sfi == 0 else {5: A.EF05, 6: A.EF06}.get(sfi)
        if fid is None:
            return A.sw(A.FILE_NOT_FOUND)
        if rec not in A.RECORDS_OF_FILE[fid]:
            return A.sw(A.RECORD_NOT_FOUND)
        value = self.records[rec]
        return self._answer(bytes([rec, len(value)]) + value, self._le(body))

    def _verify(self, p1: int, p2: int, body: bytes) -> bytes:
        data = self._lc_data(body)
        if data is None or not 2 <= len(data) <= 6:
            return A.sw(A.WRONG_LENGTH)
        if self.pin_tries_left == 0:
            return A.sw(A.PIN_BLOCKED)
        if data.hex().upper().rstrip("F") == self.profile.pin:
            self.pin_tries_left = self.PIN_TRIES
            return A.sw(A.OK)
        self.pin_tries_left -= 1
        if self.pin_tries_left == 0:
            return A.sw(A.PIN_BLOCKED)
        return bytes([A.PIN_TRIES, 0xC0 | self.pin_tries_left])

    def _get_challenge(self, p1: int, p2: int, body: bytes) -> bytes:
        le = self._le(body)
        if le not in (4, 8):
            return bytes([A.WRONG_LE, 8])
        self.challenge = os.urandom(le)
        return self.challenge + A.sw(A.OK)

    def _internal_authenticate(self, p1: int, p2: int, body: bytes) -> bytes:
        data = self._lc_data(body)
        if data is None or len(data) != 8:
            return A.sw(A.WRONG_LENGTH)
        self.pending_response = auth_cryptogram(self.key, data, self.digest)
        return bytes([A.MORE_DATA, len(self.pending_response)])

    def _get_response(self, p1: int, p2: int, body: bytes) -> bytes:
        if not self.pending_response:
            return A.sw(A.CONDITIONS_NOT_SATISFIED)
        answer = self._answer(self.pending_response, self._le(body))
        if answer[-2:] == A.sw(A.OK):
            self.pending_response = b""
        return answer
