"""What every part of the counter shares: how the patient was identified, the receipt, the counter's
errors, and the checks of a bill's items before anything is journaled."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .. import money
from ..bounds import MAX_CNT_UNITS, MAX_LINES, MAX_PRIC_UNITS
from ..errors import InvalidInput, MedsettleError, UnknownItem

MANUAL_CLAIM_CODES = ("WINDOW_EXPIRED", "YEAR_CLOSED")


class CounterError(MedsettleError):
    code = "COUNTER_ERROR"


class Refused(CounterError):
    """The centre refused (infcode -1); ``err_msg`` is its message, ``refusal`` its code. ``sale`` is the
    sale, visit or stay the refusal ended (state ``refused``: nothing owed, no voucher), when it ended one."""

    code = "REFUSED"

    def __init__(self, err_msg: str, *, sale: str | None = None):
        self.err_msg = err_msg
        self.refusal = err_msg.split(":", 1)[0] if ":" in err_msg else ""
        self.sale = sale
        what = f"sale {sale}" if sale else "the request"
        super().__init__(f"the centre refused {what}: {err_msg}")


@dataclass
class Identity:
    """How the patient was identified: 03 card (card_no, card_sn), 01 QR token, 02 ID number."""

    mdtrt_cert_type: str
    mdtrt_cert_no: str
    card_sn: str = ""
    certno: str = ""
    psn_name: str = ""
    psn_no: str = ""


@dataclass
class Receipt:
    """What is printed for the patient (all amounts in yuan)."""

    kind: str  # sale, deferred, refund, cancel
    sale: str
    psn_name: str = ""
    medfee: str = "0.00"
    fund: str = "0.00"
    account: str = "0.00"
    cash: str = "0.00"
    balance: str = ""
    setl_id: str = ""
    voucher: str = ""
    refund: str = "0.00"
    note: str = ""

    def text(self) -> str:
        title = {
            "sale": "医保结算单 settlement",
            "deferred": "自费收据 cash receipt (deferred settlement)",
            "provisional": "临时结算单 provisional settlement",
            "refund": "自费转医保 refund",
            "cancel": "退费 cancellation",
        }[self.kind]
        lines = [
            title,
            f"sale {self.sale}" + (f"  setl_id {self.setl_id}" if self.setl_id else ""),
            f"patient {self.psn_name}",
            f"total {self.medfee}",
            f"fund {self.fund}",
            f"account {self.account}",
            f"cash {self.cash}",
        ]
        if self.balance:
            lines.append(f"account balance {self.balance}")
        if self.voucher:
            lines.append(f"voucher {self.voucher}")
        if self.kind == "refund":
            lines.append(f"refunded to the patient {self.refund}")
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


def yuan(value: Any) -> str:
    """An amount of the centre's answer as printed on a receipt: yuan with two decimals (read as Decimal)."""
    return f"{Decimal(str(value)):.2f}"


def receipt_of(kind: str, sale: str, psn_name: str, setlinfo: dict, **extra: Any) -> Receipt:
    """A receipt of ``kind`` printing a settlement's (or a mirror's) amounts."""
    s = setlinfo
    return Receipt(
        kind,
        sale,
        psn_name,
        yuan(s["medfee_sumamt"]),
        yuan(s["fund_pay_sumamt"]),
        yuan(s["acct_pay"]),
        yuan(s["psn_cash_pay"]),
        yuan(s["balc"]),
        s["setl_id"],
        **extra,
    )


def cert_of(data: dict) -> dict:
    """The mdtrt_cert fields of a message, from a sale's, visit's or stay's stored identity."""
    who = data["identity"]
    cert = {"mdtrt_cert_type": who["mdtrt_cert_type"], "mdtrt_cert_no": who["mdtrt_cert_no"]}
    if who.get("card_sn"):
        cert["card_sn"] = who["card_sn"]
    return cert


def kept_identity(data: dict) -> dict | None:
    """The certificate kept with a sale, visit or stay for the messages sent when the patient may be gone (a
    store-and-forward forward, a voucher's re-settlement, a stay's later settlements): 03 with the card_sn
    read at the sale, or 02. A QR e-voucher (01) lives minutes and is never kept: the ID number the sale's
    1101 answered (``certno``) stands for it (docs/failures.md); None when the 1101 was never answered."""
    who = data.get("identity")
    if not who:
        return None
    if who["mdtrt_cert_type"] != "01":
        return dict(who)
    if not data.get("certno"):
        return None
    return {**who, "mdtrt_cert_type": "02", "mdtrt_cert_no": data["certno"], "card_sn": ""}


def later_cert_of(data: dict) -> dict:
    """The mdtrt_cert fields of a message sent when the patient may be gone (:func:`kept_identity`)."""
    kept = kept_identity(data)
    if kept is None:
        raise CounterError("the patient was identified by a QR e-voucher only: identify them again")
    return cert_of({"identity": kept})


def bill_lines(items: list[dict], when: str) -> list[dict]:
    """A bill's fee lines from the clerk's items, numbered from 1, all at ``when``."""
    return [
        {
            "feedetl_sn": str(i + 1),
            "med_list_codg": it["med_list_codg"],
            "pric": str(it["pric"]),
            "cnt": str(it["cnt"]),
            "fee_ocur_time": when,
        }
        for i, it in enumerate(items)
    ]


def check_items(items: list[dict], catalogue_codes: set[str] | None = None) -> None:
    """Refuse, before anything is journaled or sent, items the centre would refuse for their form: a
    code, a price (yuan, at most 4 decimals, 0 to 10^6) and a count (more than 0, at most 10^4, at most 4
    decimals), as docs/settlement.md 'Units and limits' says; with the counter's cached catalogue, a code
    not in it too (without one, the centre's refusal of the pre-settle ends the sale)."""
    if not items:
        raise InvalidInput("a sale has at least one item", field="items")
    if len(items) > MAX_LINES:
        raise InvalidInput(f"{len(items)} items: at most {MAX_LINES} in one bill", field="items")
    for n, item in enumerate(items, 1):
        code = str(item.get("med_list_codg") or "").strip()
        if not code:
            raise InvalidInput("the item code is empty", field=f"item {n}")
        if catalogue_codes is not None and code not in catalogue_codes:
            raise UnknownItem(f"{code!r} is not in the catalogue: check the code", field=f"item {n}")
        pric = money.to_price_units(item.get("pric"), field=f"item {n} price")
        if not 0 <= pric <= MAX_PRIC_UNITS:
            raise InvalidInput(
                f"{item.get('pric')!r} must be at least 0 and at most 1000000 yuan", field=f"item {n} price"
            )
        cnt = money.to_cnt_units(item.get("cnt"), field=f"item {n} count")
        if not 0 < cnt <= MAX_CNT_UNITS:
            raise InvalidInput(f"{item.get('cnt')!r} must be more than 0 and at most 10000", field=f"item {n} count")


def bill_total(items: list[dict]) -> str:
    """The bill's total as the centre computes it: each line round(pric × cnt) half up, summed."""
    total = sum((Decimal(i["pric"]) * Decimal(i["cnt"])).quantize(Decimal("0.01"), ROUND_HALF_UP) for i in items)
    return f"{total:.2f}"
