"""The one exception hierarchy of medsettle.

Every error has a stable ``code`` (what a program matches on) and a message a clerk can act on.
At the platform boundary every one of them becomes ``infcode = -1`` with ``err_msg = str(error)``.
Raising one of these never leaves state changed: callers validate before they mutate.
"""

from __future__ import annotations


class MedsettleError(Exception):
    """Root of all medsettle errors."""

    code = "MEDSETTLE_ERROR"

    def __init__(self, message: str, *, field: str | None = None, bill: int | str | None = None) -> None:
        self.field = field
        self.bill = bill
        self.reason = message  # without the bill and field prefix
        parts = []
        if bill is not None:
            parts.append(f"bill {bill}")
        if field is not None:
            parts.append(f"field {field}")
        prefix = (", ".join(parts) + ": ") if parts else ""
        super().__init__(prefix + message)


class PolicyError(MedsettleError):
    """A policy file or rule set is invalid; the message names the file, the field and the reason."""

    code = "POLICY_INVALID"


class InvalidInput(MedsettleError, ValueError):
    """A bill or message is malformed or out of bounds (docs/settlement.md 'Units and limits')."""

    code = "INVALID_INPUT"


class UnknownItem(InvalidInput):
    """A line's med_list_codg is not in the treatment region's catalogue in force on the bill's date."""

    code = "UNKNOWN_ITEM"


class UnknownPerson(InvalidInput):
    code = "UNKNOWN_PERSON"


class TotalMismatch(InvalidInput):
    """A caller-sent det_item_fee_sumamt or medfee_sumamt disagrees with the computed one."""

    code = "TOTAL_MISMATCH"


class SettlementRefused(MedsettleError):
    """A well-formed bill that the rules refuse; nothing was changed.

    ``code`` is one of :data:`medsettle.engine.columns.REFUSALS` or a card refusal (CARD_LOST, ...).
    """

    def __init__(self, code: str, message: str, *, bill: int | str | None = None) -> None:
        self.code = code
        super().__init__(message, bill=bill)


class AlreadyCancelled(MedsettleError):
    code = "ALREADY_CANCELLED"
