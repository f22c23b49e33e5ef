"""Cards at the counter: card checks on every message that presents one, activation
on first use at a designated institution, and the card events and account credits of the admin API.

The centre's record of a card is authoritative (docs/card.md): a lost or cancelled card is refused at
every counter; an issued card is activated by its first registration (2201/2401) or pharmacy sale (2102);
a pre-settlement treats a card its registration would activate as active.
"""

from __future__ import annotations

from typing import Any

from ..bounds import MAX_CREDIT_FEN
from ..errors import InvalidInput
from ..ledger.journal import Entry
from ..money import fen_to_decimal, to_fen
from .core import Ledger
from .institutions import Institution
from .messages import Envelope
from .qr import QrVouchers
from .regions import OwnedRegions
from .registry import CARD_EVENT, ISSUED, Card, CardRefused, Registry

CREDIT = "credit"


class Cards:
    """The cards' state is the registry's (changed only through its ``apply``); this flow owns the keys of
    the account credits made (``psn_no/key``), so each credit is made once."""

    def __init__(self, ledger: Ledger, registry: Registry, qr: QrVouchers, regions: OwnedRegions) -> None:
        self._ledger = ledger
        self._registry = registry
        self._qr = qr
        self._regions = regions
        self._credit_keys: set[str] = set()
        ledger.owns(CARD_EVENT, self._replay_card_event)
        ledger.owns(CREDIT, self._replay_credit)

    def handlers(self) -> dict:
        return {}  # 1101 is person_info.PersonInfo's

    def present(
        self,
        env: Envelope,
        institution: Institution,
        data: Any,
        psn_no: str,
        *,
        activate: bool = False,
        presettle: bool = False,
    ) -> Card | None:
        """Check the card a message presents (mdtrt_cert_type 03); activate an issued one on first use."""
        cert_type = getattr(data, "mdtrt_cert_type", "")
        if cert_type == "01":  # the QR e-voucher: valid, and this person's
            if self._qr.person_of(data.mdtrt_cert_no, field="input.data.mdtrt_cert_no") != psn_no:
                raise CardRefused(
                    "QR_UNKNOWN", f"the QR e-voucher is not person {psn_no}'s", field="input.data.mdtrt_cert_no"
                )
            return None
        if cert_type != "03":
            return None
        card_sn = (getattr(data, "model_extra", None) or {}).get("card_sn", "")
        card = self._registry.card_for(
            data.mdtrt_cert_no, card_sn, psn_no, field="input.data.mdtrt_cert_no", clock=self._ledger.clock
        )
        if card.status == ISSUED:
            if activate:
                self._ledger.commit(
                    CARD_EVENT,
                    institution.admdvs,
                    f"{env.msgid}/activate",
                    {"card_no": card.card_no, "action": "activate", "by": institution.fixmedins_code},
                    apply=lambda: self._registry.apply(CARD_EVENT, {"card_no": card.card_no, "action": "activate"}),
                )
            elif not presettle:
                raise CardRefused(
                    "CARD_NOT_ACTIVATED",
                    f"card {card.card_no} is not activated: activate it at a "
                    "bank or by a registration or pharmacy sale",
                    field="input.data.mdtrt_cert_no",
                )
        return card

    # -- admin API (journaled events) ---------------------------------------------------------

    def card_event(self, card_no: str, action: str, *, replace: bool = False) -> dict:
        """activate (at a bank), lost (optionally with a replacement card, issued), or cancel a card."""
        if action not in ("activate", "lost", "cancel"):
            raise InvalidInput(f"unknown card action {action!r}: activate, lost or cancel", field="action")
        card = self._registry.cards.get(card_no)
        if card is None:
            raise InvalidInput(f"no card {card_no!r}", field="card_no")
        body: dict[str, Any] = {"card_no": card_no, "action": action}
        if action == "lost" and replace:
            n = len(self._registry.cards)
            region = card.card_sn[:6]
            body["replacement"] = {
                "card_no": f"R{n:08d}",
                "card_sn": f"{region}D156000005{n:08d}FFFFFFFF",
                "psn_no": card.psn_no,
                "status": ISSUED,
            }
        self._ledger.commit(
            CARD_EVENT,
            card.card_sn[:6],
            f"admin/{card_no}/{action}/{len(self._registry.cards)}",
            body,
            apply=lambda: self._registry.apply(CARD_EVENT, body),
        )
        return body

    def credit_account(self, psn_no: str, amount: Any, key: str) -> dict:
        """Credit a person's account (the monthly 划入) once per ``key`` (say "2026-03"); amount in yuan."""
        fen = to_fen(amount, "amount")
        if fen <= 0:
            raise InvalidInput("a credit is a positive amount", field="amount")
        if fen > MAX_CREDIT_FEN:
            raise InvalidInput(f"a credit is at most {fen_to_decimal(MAX_CREDIT_FEN)} yuan", field="amount")
        ledger = self._ledger
        region = ledger.settler.population.region_of(ledger.settler.population.index_of(psn_no))
        journal_key = f"{psn_no}/{key}"
        with ledger.lock:
            ledger.refuse_if_failed()
            if journal_key in self._credit_keys:
                raise InvalidInput(f"the credit {key} of {psn_no} was already made", field="key")
            self._credit_keys.add(journal_key)
            balance = ledger.settler.credit(psn_no, fen)
            future = ledger.append(
                CREDIT,
                region,
                journal_key,
                {"psn_no": psn_no, "amount": fen, "reason": f"monthly credit {key}", "balance": balance},
            )
        ledger.wait(future)
        return {"psn_no": psn_no, "amount": str(fen_to_decimal(fen)), "balc": str(fen_to_decimal(balance))}

    # -- replay ---------------------------------------------------------------------------------

    def _replay_card_event(self, entry: Entry) -> None:
        self._registry.apply(entry.kind, entry.body)

    def _replay_credit(self, entry: Entry) -> None:
        self._credit_keys.add(entry.key)  # the settler has applied the credit (medsettle.ledger.replay)
