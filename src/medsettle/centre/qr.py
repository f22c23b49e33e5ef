"""The QR e-voucher (mdtrt_cert_type 01): a token a person shows instead of a card, valid 5 minutes.

Held in memory only: a restart voids the vouchers issued before (docs/card.md). Tokens come from the
centre's random source (the OS's by default), their expiry from its clock.
"""

from __future__ import annotations

import datetime as dt

from ..seams import Randomness
from .core import Ledger
from .registry import CardRefused

QR_VALID = dt.timedelta(minutes=5)
QR_LENGTH = 40


class QrVouchers:
    """token -> (psn_no, expiry)."""

    def __init__(self, ledger: Ledger, randomness: Randomness) -> None:
        self._ledger = ledger
        self._randomness = randomness
        self._tokens: dict[str, tuple[str, dt.datetime]] = {}

    def issue(self, psn_no: str, region: str) -> tuple[str, dt.datetime]:
        """A new voucher for ``psn_no``: its token (the region's 6 digits first) and expiry."""
        token = region + self._randomness.token_hex((QR_LENGTH - 6) // 2)
        expires = self._ledger.clock.now() + QR_VALID
        with self._ledger.lock:
            now = self._ledger.clock.now()
            self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
            self._tokens[token] = (psn_no, expires)
        return token, expires

    def person_of(self, token: str, field: str = "mdtrt_cert_no") -> str:
        """The person a valid voucher is for; CardRefused QR_UNKNOWN or QR_EXPIRED."""
        entry = self._tokens.get(token)
        if entry is None:
            raise CardRefused("QR_UNKNOWN", "unknown QR e-voucher: ask the patient to refresh it", field=field)
        psn_no, expires = entry
        if expires <= self._ledger.clock.now():
            raise CardRefused("QR_EXPIRED", "the QR e-voucher has expired: ask the patient to refresh it", field=field)
        return psn_no
