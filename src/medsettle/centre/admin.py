"""The admin API's requests (POST /admin, ``medsettle persons ...``): one pydantic model per action, so a
bad request names its field like every other message of the centre."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from .. import money
from ..bounds import MAX_CNT_UNITS, MAX_LINES, MAX_MEDFEE, MAX_PRIC_UNITS

YuanText = str  # validated by money.to_fen where used, so the field is named in the error

FIRST_MONTH_YEAR, LAST_MONTH_YEAR = 1900, 2099  # contributions go back decades; bills stop at 2099


def check_month(text: str) -> str:
    """``text`` when it is a real month written yyyy-mm (2026-03); else ValueError saying how to write one.
    Shared by the admin API and the ``medsettle persons`` commands, so both refuse the same months."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if not match or not 1 <= int(match[2]) <= 12 or not FIRST_MONTH_YEAR <= int(match[1]) <= LAST_MONTH_YEAR:
        raise ValueError(
            f"{text!r} is not a month: write it as yyyy-mm, such as 2026-03 "
            f"(years {FIRST_MONTH_YEAR}-{LAST_MONTH_YEAR}, months 01-12)"
        )
    return text


def _month_field(text: str) -> str:
    try:
        return check_month(text)
    except ValueError as exc:  # pydantic's own message would start 'Value error, '
        raise PydanticCustomError("month", "{reason}", {"reason": str(exc)}) from None


Month = Annotated[str, AfterValidator(_month_field)]


def _check_digit(text: str) -> str:
    """A citizen ID number whose 18th character is its check digit (ISO 7064 MOD 11-2); else refused."""
    from .registry import id_check_digit  # noqa: PLC0415  # the CLI imports these models: no engine at its start

    if id_check_digit(text[:17]) != text[17]:
        raise PydanticCustomError("certno", "the ID number's check digit is wrong: {certno}", {"certno": text})
    return text


# An ID number presented at a window (a delegate's, a holder's, a unit's operator's): 18 characters, the check
# digit right (docs/agency.md 'Paperwork').
CertNo = Annotated[str, Field(pattern=r"^\d{17}[\dX]$"), AfterValidator(_check_digit)]
DocumentNo = Annotated[str, Field(min_length=1, max_length=60)]  # a letter's or certificate's number


class AdminRequest(BaseModel):
    """What every admin request shares: unknown fields refused, text stripped; ``action`` names its model."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CardAction(AdminRequest):
    action: Literal["card"]
    card_no: str = Field(min_length=1)
    card_action: Literal["activate", "lost", "cancel"]
    replace: bool = False


class Credit(AdminRequest):
    action: Literal["credit"]
    psn_no: str = Field(min_length=1)
    amount: YuanText
    key: Month = Field(description="the month credited, yyyy-mm: each is credited once")


class CancelPerson(AdminRequest):
    action: Literal["cancel_person"]
    psn_no: str = Field(min_length=1)
    reason: Literal["emigration", "household", "transfer_out", "death"]


class Enrol(AdminRequest):
    """A new insured person: employees with their unit (or none: flexible), residents in the region's virtual
    unit. An ID number whose relation here ended (not by death) is re-enrolled under its psn_no."""

    action: Literal["enrol"]
    insuplc_admdvs: str = Field(pattern=r"^\d{6}$")
    insutype: Literal["310", "390"]
    psn_type: Literal["11", "12", "1501", "1502"]
    certno: str = Field(pattern=r"^\d{17}[\dX]$")
    psn_name: str = Field(min_length=1, max_length=15)
    gend: Literal["1", "2"]
    brdy: dt.date
    emp_no: str | None = Field(None, min_length=1, max_length=30)
    emp_name: str | None = Field(None, min_length=1, max_length=100)
    uncovered_years: int = Field(0, ge=0, le=100, description="residents enrolling late: years not covered")
    assistance: bool = False
    flexible: bool = Field(False, description="a flexible employee (310): no unit, pays on their own base")


class ChangeUnit(AdminRequest):
    """A new unit: its certificate, and the person's card and ID card presented (seed 000)."""

    action: Literal["change_unit"]
    psn_no: str = Field(min_length=1)
    emp_no: str = Field(min_length=1, max_length=30)
    emp_name: str = Field(min_length=1, max_length=100)
    certificate: str = Field(min_length=1, max_length=60, description="the new unit's registration certificate")
    card_no: str = Field(min_length=1, max_length=30, description="the person's card, presented")
    certno: CertNo = Field(description="the person's ID number, as their ID card shows it")


class ChangeScheme(AdminRequest):
    """Between the resident scheme (390, the virtual unit) and the employee scheme (310, a unit or flexible)."""

    action: Literal["change_scheme"]
    psn_no: str = Field(min_length=1)
    insutype: Literal["310", "390"]
    psn_type: Literal["11", "12", "1501", "1502"]
    emp_no: str | None = Field(None, min_length=1, max_length=30)
    emp_name: str | None = Field(None, min_length=1, max_length=100)
    certificate: str | None = Field(
        None, min_length=1, max_length=60, description="the new unit's registration certificate"
    )
    flexible: bool = Field(False, description="into 310 as a flexible employee: no unit")


class Unemployed(AdminRequest):
    """An employee in service leaves their unit: insured in 310 while the months are paid."""

    action: Literal["unemployed"]
    psn_no: str = Field(min_length=1)


class Reemployed(AdminRequest):
    """An unemployed person's new unit: the old card ends, the new unit applies for the new one."""

    action: Literal["reemployed"]
    psn_no: str = Field(min_length=1)
    emp_no: str = Field(min_length=1, max_length=30)
    emp_name: str = Field(min_length=1, max_length=100)
    certificate: str = Field(min_length=1, max_length=60, description="the new unit's registration certificate")


class Contribute(AdminRequest):
    """One month's contribution; an employee in service gives the base, retirees and residents none."""

    action: Literal["contribute"]
    psn_no: str = Field(min_length=1)
    month: Month
    base: YuanText | None = None


class IssueCard(AdminRequest):
    """A card at a window; a delegate presents their own ID and the holder's (seed 004)."""

    action: Literal["issue_card"]
    psn_no: str = Field(min_length=1)
    channel: Literal["on_the_spot", "service_point", "delegate"]
    delegate_certno: CertNo | None = None
    certno: CertNo | None = Field(None, description="the holder's ID number (a delegate presents it)")


class IssueCardsEmployer(AdminRequest):
    """Cards in bulk: the unit's letter of introduction and its operator's ID presented (seed 004)."""

    action: Literal["issue_cards_employer"]
    emp_no: str = Field(min_length=1)
    psn_nos: list[str] = Field(min_length=1, max_length=10_000)
    letter_no: DocumentNo = Field(description="the unit's letter of introduction")
    operator_certno: CertNo = Field(description="the ID number of the unit's person who applies")


class TransferOut(AdminRequest):
    """The new region's letter of acceptance of the relation presented (seed 001)."""

    action: Literal["transfer_out"]
    psn_no: str = Field(min_length=1)
    to_admdvs: str = Field(pattern=r"^\d{6}$")
    acceptance_letter: DocumentNo = Field(description="the new region's letter of acceptance")


class TransferIn(AdminRequest):
    action: Literal["transfer_in"]
    certificate_no: str = Field(min_length=1)
    emp_no: str | None = Field(None, min_length=1, max_length=30)
    emp_name: str | None = Field(None, min_length=1, max_length=100)


class TransferUndo(AdminRequest):
    """Undo a transfer out not yet accepted: the person is back as before it, the certificate void."""

    action: Literal["transfer_undo"]
    certificate_no: str = Field(min_length=1)


class CreditRun(AdminRequest):
    """The month-end credit, as the bank makes it: every eligible account credited once for ``month``."""

    action: Literal["credit_run"]
    month: Month


class IssueQr(AdminRequest):
    action: Literal["issue_qr"]
    psn_no: str = Field(min_length=1)


class Paperwork(AdminRequest):
    """Read-only: what the person presented with each procedure that asks for papers."""

    action: Literal["paperwork"]
    psn_no: str = Field(min_length=1)


class CardRecord(AdminRequest):
    """Read-only: what the issuing bureau writes on a person's card (for personalising a virtual card)."""

    action: Literal["card_record"]
    psn_no: str = Field(min_length=1)


CLAIM_MAX_PRIC_FEN = MAX_PRIC_UNITS // (money.PRICE_SCALE // 100)  # a bill line's bound on pric, in fen


class ClaimItem(AdminRequest):
    """One line of the institution's receipt: the catalogue code, the price of one unit and the count."""

    med_list_codg: str = Field(min_length=1, max_length=50)
    # strict: fen are integers, so "120.00" (yuan written as text) is refused, never read as 120 fen
    pric: int = Field(ge=0, le=CLAIM_MAX_PRIC_FEN, strict=True, description="fen for one unit")
    cnt: int = Field(ge=1, le=MAX_CNT_UNITS // money.CNT_SCALE, strict=True)


class EmergencyClaim(AdminRequest):
    """Emergency care at a non-agreed institution (seed 003), claimed at the insured region's agency: settled
    with the drug scope the region's rule set relaxes for it (its ``emergency_scope``); amounts in fen."""

    action: Literal["emergency_claim"]
    psn_no: str = Field(min_length=1)
    date: dt.date = Field(description="the day of the care")
    med_type: Literal["13", "21"] = Field("13", description="13 emergency, 21 an emergency admission")
    institution_name: str = Field(min_length=1, max_length=100)
    institution_code: str | None = Field(None, min_length=1, max_length=30, description="its code, if it has one")
    institution_admdvs: str = Field(pattern=r"^\d{6}$", description="the region the institution is in")
    hosp_lv: Literal["1", "2", "3"]
    invoice_no: str = Field(min_length=1, max_length=50, description="the institution's receipt: claimed once")
    items: list[ClaimItem] = Field(min_length=1, max_length=MAX_LINES)
    medfee_sumamt: int = Field(ge=0, le=MAX_MEDFEE, strict=True, description="the receipt's total, fen")


ADMIN_REQUESTS: dict[str, type[AdminRequest]] = {
    "card": CardAction,
    "credit": Credit,
    "cancel_person": CancelPerson,
    "enrol": Enrol,
    "change_unit": ChangeUnit,
    "change_scheme": ChangeScheme,
    "unemployed": Unemployed,
    "reemployed": Reemployed,
    "contribute": Contribute,
    "issue_card": IssueCard,
    "issue_cards_employer": IssueCardsEmployer,
    "transfer_out": TransferOut,
    "transfer_in": TransferIn,
    "transfer_undo": TransferUndo,
    "credit_run": CreditRun,
    "issue_qr": IssueQr,
    "card_record": CardRecord,
    "emergency_claim": EmergencyClaim,
    "paperwork": Paperwork,
}
