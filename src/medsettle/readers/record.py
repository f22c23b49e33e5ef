"""The card as the counter sees it: the records of EF05 and EF06 parsed into a typed record."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ..hardware import apdu as A
from ..hardware.keys import card_digest
from .errors import CardUnreadable


@dataclass(frozen=True)
class CardRecord:
    region: str  # the issuing region (6 digits), from the identification code
    card_sn: str  # card identification code, 32 hex digits (EF05 01)
    card_type: str  # EF05 02
    spec_version: str  # EF05 03, "1.00" / "2.00" / "3.00"
    issuer: str  # EF05 04
    issue_date: dt.date  # EF05 05
    expiry: dt.date  # EF05 06
    card_no: str  # EF05 07
    certno: str  # EF06 08, the social security number (18-character ID number)
    name: str  # EF06 09
    sex: str  # EF06 0A: "1" male, "2" female
    nation: str  # EF06 0B
    birthplace: str  # EF06 0C
    birth_date: dt.date  # EF06 0D
    raw: dict[int, bytes] = field(repr=False, compare=False, default_factory=dict)

    @property
    def digest(self) -> bytes:
        """SM3 digest of the data as read, which the PSAM compares with the one the card was issued with."""
        return card_digest(self.raw[0x01], self.raw[0x08], self.raw[0x09])

    def expired(self, on: dt.date) -> bool:
        return on > self.expiry

    def as_dict(self) -> dict:
        out = {k: v for k, v in vars(self).items() if k != "raw"}
        return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in out.items()}


def _date(value: bytes, rec: int) -> dt.date:
    try:
        return dt.datetime.strptime(A.unbcd(value), "%Y%m%d").date()
    except ValueError:
        raise CardUnreadable(f"record {rec:02X} is not a BCD date: {value.hex()}") from None


def _text(value: bytes, rec: int, encoding: str = "ascii") -> str:
    try:
        return value.rstrip(b"\0").decode(encoding)
    except UnicodeDecodeError:
        raise CardUnreadable(f"record {rec:02X} is not {encoding} text: {value.hex()}") from None


def parse_record(rec: int, tlv: bytes) -> bytes:
    """The value of one READ RECORD answer, checked against docs/card.md's tag and length."""
    if len(tlv) < 2 or tlv[0] != rec or tlv[1] != A.RECORD_LENGTHS[rec] or len(tlv) != 2 + tlv[1]:
        raise CardUnreadable(f"record {rec:02X} is malformed: {tlv.hex()}")
    return tlv[2:]


def card_record(values: dict[int, bytes]) -> CardRecord:
    """Parse the 13 record values into a CardRecord; anything that does not parse is CardUnreadable."""
    sn = values[0x01].hex().upper()
    if sn[6:16] != "D156000005" or not sn[:6].isdigit():
        raise CardUnreadable(f"record 01 is not a card identification code: {sn}")
    try:
        return CardRecord(
            region=sn[:6],
            card_sn=sn,
            card_type=_text(values[0x02], 0x02),
            spec_version=_text(values[0x03], 0x03),
            issuer=_text(values[0x04], 0x04),
            issue_date=_date(values[0x05], 0x05),
            expiry=_date(values[0x06], 0x06),
            card_no=_text(values[0x07], 0x07),
            certno=_text(values[0x08], 0x08),
            name=_text(values[0x09], 0x09, "gbk"),
            sex=_text(values[0x0A], 0x0A),
            nation=A.unbcd(values[0x0B]),
            birthplace=A.unbcd(values[0x0C]),
            birth_date=_date(values[0x0D], 0x0D),
            raw=dict(values),
        )
    except ValueError as error:  # BCD of the nation or birthplace
        raise CardUnreadable(str(error)) from None
