"""The virtual PSAM in the reader's second slot (slot 01): it holds the issuing keys of every region and
checks a card's INTERNAL AUTHENTICATE answer, so the terminal never holds a key.

Commands (our simulation's PSAM; real PSAMs follow the same pattern with vendor-specific codes):

- SELECT the PSAM application: ``00 A4 04 00 0E "MEDSETTLE.PSAM"`` → 9000
- GET CHALLENGE: ``00 84 00 00 08`` → 8 random bytes, 9000; the PSAM remembers them for one check
- DERIVE CARD KEY: ``80 1A 00 00 10 <card identification code, 16 bytes>`` → 9000; 6A88 when the region's
  issuing key is not held
- VERIFY CARD: ``80 82 00 00 18 <card's 16-byte answer> <8-byte digest of the data read>`` → 9000 genuine;
  6988 not genuine; 6985 without a challenge and a derived key
- READ TERMINAL NUMBER: ``00 B0 96 00 06`` → the 6-byte PSAM terminal number (BCD), 9000

The challenge and the derived key are used once: every check starts with GET CHALLENGE and DERIVE CARD KEY.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import apdu as A
from .keys import SIMULATION_ROOT_KEY, card_key, issuing_key, sm4_ecb_decrypt

DERIVE_CARD_KEY, VERIFY_CARD = 0x1A, 0x82


@dataclass
class VirtualPSAM:
    region_keys: dict[str, bytes]
    terminal_no: str = "000000000001"
    atr: bytes = A.PSAM_ATR
    selected: bool = field(default=False, init=False)
    challenge: bytes = field(default=b"", init=False)
    derived_key: bytes = field(default=b"", init=False)

    @classmethod
    def for_regions(
        cls, regions: Iterable[str], *, root_key: bytes = SIMULATION_ROOT_KEY, terminal_no: str = "000000000001"
    ) -> VirtualPSAM:
        return cls({r: issuing_key(r, root_key) for r in regions}, terminal_no=terminal_no)

    def reset(self) -> bytes:
        self.selected, self.challenge, self.derived_key = False, b"", b""
        return self.atr

    def process(self, command: bytes) -> bytes:
        if len(command) < 4:
            return A.sw(A.WRONG_LENGTH)
        cla, ins, p1, _p2 = command[:4]
        body = command[4:]
        data = body[1 : 1 + body[0]] if body and len(body) >= 1 + body[0] else b""
        if (cla, ins) == (0x00, 0xA4):
            self.selected = p1 == 0x04 and data == A.PSAM_AID
            return A.sw(A.OK if self.selected else A.FILE_NOT_FOUND)
        if not self.selected:
            return A.sw(A.CONDITIONS_NOT_SATISFIED)
        if (cla, ins) == (0x00, 0x84):
            self.challenge = os.urandom(8)
            return self.challenge + A.sw(A.OK)
        if (cla, ins) == (0x00, 0xB0) and p1 == 0x96:
            return A.bcd(self.terminal_no) + A.sw(A.OK)
        if (cla, ins) == (0x80, DERIVE_CARD_KEY):
            if len(data) != 16:
                return A.sw(A.WRONG_LENGTH)
            region_key = self.region_keys.get(data[:3].hex())
            if region_key is None:
                return A.sw(A.KEY_NOT_FOUND)
            self.derived_key = card_key(data, region_key)
            return A.sw(A.OK)
        if (cla, ins) == (0x80, VERIFY_CARD):
            if len(data) != 24:
                return A.sw(A.WRONG_LENGTH)
            if not (self.challenge and self.derived_key):
                return A.sw(A.CONDITIONS_NOT_SATISFIED)
            expected = self.challenge + data[16:]
            genuine = sm4_ecb_decrypt(self.derived_key, data[:16]) == expected
            self.challenge, self.derived_key = b"", b""
            return A.sw(A.OK if genuine else A.AUTH_FAILED)
        return A.sw(A.INS_NOT_SUPPORTED)
