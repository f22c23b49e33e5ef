"""The APDU protocol of the social security card and the PSAM (docs/card.md), whatever carries the APDUs:
SELECT, READ RECORD of EF05 and EF06, VERIFY, authentication through the PSAM, and the 61xx / 6Cxx follow-ups.

Every reader backend (:mod:`.pcsc` over pcscd, :mod:`.virtual` straight to the card OS in this process) gives a
:class:`CardSession` a way to open a :class:`Link` to a slot; the session does the rest, so both backends send
the same APDUs in the same order and turn the same status words into the same errors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Protocol

from ..hardware import apdu as A
from .errors import (
    CardBlocked,
    CardNotGenuine,
    CardRemoved,
    CardUnreadable,
    NoCard,
    NoReader,
    ReaderError,
    WrongPin,
)
from .record import CardRecord, card_record, parse_record

KNOWN_ATRS = (A.CARD_ATR,)
MAX_CHAINED = 4  # 61xx / 6Cxx follow-ups per command, so a looping card cannot keep us forever

SELECT_SSSE = bytes([0x00, 0xA4, 0x04, 0x00, len(A.SSSE_AID)]) + A.SSSE_AID
SELECT_PSAM = bytes([0x00, 0xA4, 0x04, 0x00, len(A.PSAM_AID)]) + A.PSAM_AID

__all__ = ["KNOWN_ATRS", "MAX_CHAINED", "CardSession", "Link", "check_pin", "split_answer", "transmit"]


class Link(Protocol):
    """One connection to one slot (the card's or the PSAM's), as a backend provides it."""

    reader: str

    @property
    def connected(self) -> bool:
        """Whether the link holds a connection to the card now."""

    def connect(self) -> bytes:
        """Connect to the card in the slot and return its ATR (NoCard when the slot is empty)."""

    def transmit(self, command: bytes) -> tuple[bytes, int]:
        """One C-APDU with its 61xx / 6Cxx follow-ups (:func:`transmit`): the answer's data and status word."""

    def disconnect(self) -> None:
        """Let go of the card; :meth:`connect` may be called again."""

    def close(self) -> None:
        """Let go of the card and of everything the link holds."""


def check_pin(pin: str) -> None:
    """A PIN is refused before any APDU is sent when it cannot be one."""
    if not (isinstance(pin, str) and pin.isdigit() and 4 <= len(pin) <= 12):
        raise ValueError("a PIN is 4 to 12 digits")


def split_answer(answer: bytes, command: bytes, reader: str | None) -> tuple[bytes, int]:
    """An R-APDU as its data and status word; CardRemoved for no answer at all (the link to the card broke
    during the APDU), CardUnreadable for one that is not an ISO 7816 response."""
    if not answer:
        raise CardRemoved(f"the card went away during {command[:4].hex().upper()} (removed, or dead)", reader=reader)
    if len(answer) < 2 or answer[-2] >> 4 not in (0x6, 0x9):  # ISO 7816: SW1 is 6x or 9x
        raise CardUnreadable(
            f"answer {answer.hex().upper() or '(empty)'} to {command[:4].hex().upper()} is not an ISO 7816 response",
            reader=reader,
        )
    return answer[:-2], (answer[-2] << 8) | answer[-1]


def transmit(exchange: Callable[[bytes], tuple[bytes, int]], command: bytes, reader: str | None) -> tuple[bytes, int]:
    """Send one C-APDU through ``exchange`` (one APDU, its answer split); follow 61xx with GET RESPONSE and
    6Cxx with the same command and Le = xx, at most :data:`MAX_CHAINED` times."""
    sw = 0
    for _ in range(MAX_CHAINED):
        data, sw = exchange(command)
        if sw >> 8 == A.MORE_DATA:
            command = bytes([0x00, 0xC0, 0x00, 0x00, sw & 0xFF])
        elif sw >> 8 == A.WRONG_LE:
            command = command[:-1] + bytes([sw & 0xFF])
        else:
            return data, sw
    raise CardUnreadable(f"the card kept asking for another GET RESPONSE or Le (last {sw:04X})", reader=reader)


class CardSession:
    """A reader's conversation with the card in slot 00 and the PSAM in slot 01, over links that
    ``open_link(slot name)`` gives. It keeps the two links open between operations and reconnects when the
    card was swapped or reset."""

    def __init__(self, card_reader: str, psam_reader: str | None, open_link: Callable[[str], Link]) -> None:
        self.card_reader, self.psam_reader = card_reader, psam_reader
        self._open_link = open_link
        self._card: Link | None = None
        self._psam: Link | None = None

    # -- the links ----------------------------------------------------------------------------------

    def card_link(self, *, new_session: bool = False) -> Link:
        """The card's link. A new card session re-selects the application on the open connection; when the
        card was swapped or reset since, the old connection is refused and we reconnect (ATR check again)."""
        if self._card is None:
            self._card = self._open_link(self.card_reader)
        link = self._card
        if not link.connected:
            self._connect_card(link)
        elif new_session:
            try:
                self._select_application(link)
            except CardRemoved:
                link.disconnect()
                self._connect_card(link)
        return link

    def _connect_card(self, link: Link) -> None:
        atr = link.connect()
        if atr not in KNOWN_ATRS:
            # A card pulled less than one pcscd poll (0.4 s) ago still "connects", with a stale ATR: an APDU
            # tells a card that is gone (CardRemoved) from one that is there but not ours.
            try:
                link.transmit(SELECT_SSSE)
            except (CardRemoved, NoCard):
                link.disconnect()
                raise
            except ReaderError:
                pass
            link.disconnect()
            raise CardUnreadable(f"ATR {atr.hex().upper()} is not a social security card's", reader=self.card_reader)
        self._select_application(link)

    def _select_application(self, link: Link) -> None:
        _, sw = link.transmit(SELECT_SSSE)
        if sw != A.OK:
            raise CardUnreadable(
                f"the card has no social security application (SELECT answered {sw:04X})", reader=self.card_reader
            )

    def psam_link(self) -> Link:
        """The PSAM's link, connected and its application selected; NoReader when the slot is empty."""
        if self._psam is None:
            if self.psam_reader is None:
                raise NoReader(
                    "no PSAM slot is configured for this reader: cannot authenticate cards", reader=self.card_reader
                )
            link = self._open_link(self.psam_reader)
            try:
                link.connect()
                _, sw = link.transmit(SELECT_PSAM)
                self._psam_ok(sw, "SELECT")
            except NoCard:
                link.close()
                raise NoReader("no PSAM in the reader's second slot", reader=self.psam_reader) from None
            except ReaderError:
                link.close()
                raise
            self._psam = link
        return self._psam

    def _psam_ok(self, sw: int, what: str) -> None:
        if sw != A.OK:
            raise NoReader(f"the PSAM failed {what} ({sw:04X})", reader=self.psam_reader)

    def forget(self) -> None:
        """Leave both links behind unclosed (a call hung in one of them still holds it)."""
        self._card = self._psam = None

    def close(self) -> None:
        """Close both links; the next operation connects afresh."""
        for link in (self._card, self._psam):
            if link is not None:
                with contextlib.suppress(Exception):  # the service may be gone: nothing left to release
                    link.close()
        self._card = self._psam = None

    # -- the operations -------------------------------------------------------------------------------

    def transmit(self, command: bytes) -> tuple[bytes, int]:
        """One raw APDU to the card in the current session (61xx and 6Cxx followed), for support work."""
        return self.card_link().transmit(bytes(command))

    def read(self) -> CardRecord:
        """Select the application (a new card session) and read every record of EF05 and EF06."""
        link = self.card_link(new_session=True)
        values = {}
        for fid, records in A.RECORDS_OF_FILE.items():
            p2 = (A.SFI_OF_FILE[fid] << 3) | 0x04
            for rec in records:
                data, sw = link.transmit(bytes([0x00, 0xB2, rec, p2, 2 + A.RECORD_LENGTHS[rec]]))
                if sw != A.OK:
                    raise CardUnreadable(f"READ RECORD {rec:02X} answered {sw:04X}", reader=self.card_reader)
                values[rec] = parse_record(rec, data)
        return card_record(values)

    def verify(self, pin: str) -> None:
        """VERIFY the PIN: WrongPin with the tries left, CardBlocked once it is blocked."""
        padded = pin + "F" * (len(pin) % 2)
        _, sw = self.card_link().transmit(bytes([0x00, 0x20, 0x00, 0x00, len(padded) // 2]) + bytes.fromhex(padded))
        if sw == A.OK:
            return
        if sw == A.PIN_BLOCKED:
            raise CardBlocked(
                "the PIN is blocked: the holder must have it reset at the social security centre",
                reader=self.card_reader,
            )
        if sw >> 4 == 0x63C:
            raise WrongPin(sw & 0x0F, reader=self.card_reader)
        raise CardUnreadable(f"VERIFY answered {sw:04X}", reader=self.card_reader)

    def authenticate(self, record: CardRecord) -> None:
        """The PSAM's challenge, the card key derived in the PSAM, the card's INTERNAL AUTHENTICATE answer
        checked by the PSAM against the digest of the data read: CardNotGenuine when it does not verify."""
        psam = self.psam_link()
        challenge, sw = psam.transmit(bytes([0x00, 0x84, 0x00, 0x00, 0x08]))
        self._psam_ok(sw, "GET CHALLENGE")
        _, sw = psam.transmit(bytes([0x80, 0x1A, 0x00, 0x00, 0x10]) + bytes.fromhex(record.card_sn))
        if sw == A.KEY_NOT_FOUND:
            raise CardNotGenuine(f"the PSAM holds no issuing key for region {record.region}", reader=self.card_reader)
        self._psam_ok(sw, "DERIVE CARD KEY")
        cryptogram, sw = self.card_link().transmit(bytes([0x00, 0x88, 0x00, 0x01, 0x08]) + challenge)
        if sw != A.OK or len(cryptogram) != 16:
            raise CardNotGenuine(f"INTERNAL AUTHENTICATE answered {sw:04X}", reader=self.card_reader)
        _, sw = psam.transmit(bytes([0x80, 0x82, 0x00, 0x00, 0x18]) + cryptogram + record.digest)
        if sw == A.AUTH_FAILED:
            raise CardNotGenuine(
                f"card {record.card_no} is not genuine: its answer does not verify "
                "(a cloned card, or data altered after issue)",
                reader=self.card_reader,
            )
        self._psam_ok(sw, "VERIFY CARD")

    def read_and_authenticate(self, pin: str | None) -> CardRecord:
        """Read, verify the PIN (if given) and authenticate, as a counter does when a card is presented."""
        record = self.read()
        if pin is not None:
            self.verify(pin)
        self.authenticate(record)
        return record
