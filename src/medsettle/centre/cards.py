"""Cards at the counter: card checks on every message that presents one, activation
on first use at a designated institution, and the card events and account credits of the admin API.

The centre's record of a card is authoritative (docs/card.md): a lost or cancelled card is refused at
every counter; an issued card is activated by its first registration (2201/2401) or pharmacy sale (2102);
a pre-settlement treats a card its registration would activate as active.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..bounds import MAX_CREDIT_FEN
from ..errors import InvalidInput
from ..ledger.journal import Entry
from ..money import fen_to_decimal, to_fen
from .certificates import Certificates
from .core import Ledger, journal_key
from .institutions import Institution
from .messages import Envelope
from .qr import QrVouchers
from .regions import OwnedRegions
from .registry import CANCELLED, CARD_EVENT, ISSUED, LOST, Card, CardRefused, Registry

CREDIT = "credit"


def credit_key(psn_no: str, key: str) -> str:
    """The journal key of a person's credit ``key`` (a month): parts no client text can run together."""
    return journal_key(psn_no, key)


class Cards:
    """The cards' state is the registry's (changed only through its ``apply``); this flow owns the keys of
        the account credits made (``psn_no/key``, the key a month yyyy-mm), so each month is credited once
    whichever command makes it (``credit``, or a contribution that credits the account)."""

    def __init__(self, ledger: Ledger, registry: Registry, qr: QrVouchers, regions: OwnedRegions) -> None:
        self._ledger = ledger
        self._registry = registry
        self._qr = qr
        self._regions = regions
        self._certificates = Certificates(registry, qr, ledger.clock)
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
        where: str = "input.data",
    ) -> Card | None:
        """Check the certificate a message presents (centre/certificates.py: every type, and that it names
        ``psn_no``); activate an issued card (03) on first use. ``where``: the path of ``data`` in the request."""
        card = self._certificates.check(data, psn_no, where=where, institution=institution.fixmedins_code)
        if card is None:
            return None
        if card.status == ISSUED:
            if activate:
                self._ledger.commit(
                    CARD_EVENT,
                    institution.admdvs,
                    journal_key(institution.fixmedins_code, env.msgid, "activate"),
                    {"card_no": card.card_no, "action": "activate", "by": institution.fixmedins_code},
                    apply=lambda: self._registry.apply(CARD_EVENT, {"card_no": card.card_no, "action": "activate"}),
                    unique=True,  # the institution's msgid, let through once by the answer store
                )
            elif not presettle:
                raise CardRefused(
                    "CARD_NOT_ACTIVATED",
                    f"card {card.card_no} is not activated: activate it at a "
                    "bank or by a registration or pharmacy sale",
                    field=f"{where}.mdtrt_cert_no",
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
        self._check_card_event(card, action, replace)
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

    def _check_card_event(self, card: Card, action: str, replace: bool) -> None:
        """A person has one usable card: only an issued, ready card of an insured person is activated; a card
        already lost or cancelled stays so (a second replacement would make a second usable card)."""
        if card.status in (LOST, CANCELLED):
            raise InvalidInput(f"card {card.card_no} is {card.status}: it stays so", field="card_no")
        population = self._ledger.settler.population
        insured = bool(population.describe(population.index_of(card.psn_no))["active"])
        if action == "activate":
            if card.status != ISSUED:
                raise InvalidInput(f"card {card.card_no} is already {card.status}", field="card_no")
            if not insured:
                raise InvalidInput(
                    f"card {card.card_no}'s holder {card.psn_no} is not insured here now", field="card_no"
                )
            today = self._ledger.clock.now().date()
            if card.ready_on and dt.date.fromisoformat(card.ready_on) > today:
                raise InvalidInput(
                    f"card {card.card_no} is still being made: ready on {card.ready_on}", field="card_no"
                )
        elif action == "lost" and replace and not insured:
            raise InvalidInput(
                f"card {card.card_no}'s holder {card.psn_no} is not insured here now: no replacement", field="replace"
            )

    def credit_account(self, psn_no: str, amount: Any, key: str) -> dict:
        """Credit a person's account (the monthly 划入) once per ``key`` (say "2026-03"); amount in yuan."""
        fen = to_fen(amount, "amount")
        if fen <= 0:
            raise InvalidInput("a credit is a positive amount", field="amount")
        if fen > MAX_CREDIT_FEN:
            raise InvalidInput(f"a credit is at most {fen_to_decimal(MAX_CREDIT_FEN)} yuan", field="amount")
        ledger = self._ledger
        population = ledger.settler.population
        index = population.index_of(psn_no)
        if not population.describe(index)["active"]:  # cancelled, or between regions (the transfer must balance)
            raise InvalidInput(f"person {psn_no} is not insured here now: no credit", field="psn_no")
        region = population.region_of(index)
        journal_key = credit_key(psn_no, key)
        with ledger.lock:
            ledger.refuse_if_failed()
            if journal_key in self._credit_keys:
                raise InvalidInput(
                    f"the credit {key} of {psn_no} was already made (by 'credit' or its contribution)", field="key"
                )
            balance = ledger.settler.credit(psn_no, fen)  # refused past the balance bound, before anything moves
            self._credit_keys.add(journal_key)
            future = ledger.append(
                CREDIT,
                region,
                journal_key,
                {"psn_no": psn_no, "amount": fen, "reason": f"monthly credit {key}", "balance": balance},
            )
        ledger.wait(future)
        return {"psn_no": psn_no, "amount": str(fen_to_decimal(fen)), "balc": str(fen_to_decimal(balance))}

    def credited(self, psn_no: str, month: str) -> bool:
        """Whether the account of ``psn_no`` was credited for ``month`` (yyyy-mm), by any command."""
        return credit_key(psn_no, month) in self._credit_keys

    def mark_credited(self, psn_no: str, month: str) -> None:
        """A contribution credited the account for ``month``: 'credit' must not credit it again."""
        self._credit_keys.add(credit_key(psn_no, month))

    # -- replay ---------------------------------------------------------------------------------

    def _replay_card_event(self, entry: Entry) -> None:
        self._registry.apply(entry.kind, entry.body)

    def _replay_credit(self, entry: Entry) -> None:
        # the settler has applied the credit (medsettle.ledger.replay); an older version's key was "psn_no/key"
        psn_no, slash, month = entry.key.partition("/")
        self._credit_keys.add(credit_key(psn_no, month) if slash and not entry.key.startswith("[") else entry.key)
