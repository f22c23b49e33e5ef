"""The result rows of a fee-detail upload (2204 / 2301): each line's split and what the catalogue says of it.

An HIS reads these rows by key to print the patient's itemised list, so every key of the platform's row is
there (docs/messages.md), amounts and ratios as JSON numbers whatever the request used (a line sent with
``"pric": "12.5"`` answers ``12.5``), and null where the centre has no value (``memo``, ``exp_content``):

- the split (docs/settlement.md steps 1-5): det_item_fee_sumamt, fulamt_ownpay_amt, overlmt_amt,
  preselfpay_amt, inscp_scp_amt; and the line's own cnt and pric;
- from the treatment region's catalogue in force on the encounter's date: pric_uplmt_amt (the cap, null
  without one), chrgitm_lv (01/02/03), lmt_used_flag (restricted use), med_chrgitm_type, bas_medn_flag,
  hi_nego_drug_flag, chld_medc_flag, list_sp_item_flag, drt_reim_flag; flags "1" or "0", as the platform
  writes them;
- selfpay_prop, the self-pay ratio that applied to the line, as the platform answers it: 1 for a line that is
  all own pay (class C, or restricted without the hospital's approval), the person type's self-pay-first share
  for class B, 0 for class A.

``lmt_used_flag`` is the platform's 限制使用标志, the catalogue's restricted-use flag (the same flag the
engine reads in step 2), not whether a price cap applied: a capped line shows in ``overlmt_amt``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from ..engine.steps import is_all_own_pay
from ..money import PRICE_SCALE, bp_to_decimal
from ..policy.codes import CLASS_B, PsnType
from ..policy.models import Catalogue, CatalogueItem

FLAGS = ("bas_medn_flag", "hi_nego_drug_flag", "chld_medc_flag", "list_sp_item_flag", "lmt_used_flag", "drt_reim_flag")


def _flag(value: bool) -> str:
    return "1" if value else "0"


def selfpay_prop(item: CatalogueItem, approved: bool, psn_type: str) -> Decimal:
    """The self-pay ratio that applied to a line of ``item``, a fraction from 0 to 1."""
    if is_all_own_pay(item, approved):
        return Decimal(1)
    if item.item_class == CLASS_B:
        return bp_to_decimal(item.selfpay_for(cast(PsnType, psn_type)))
    return Decimal(0)


def result_row(split: dict[str, Any], line: dict[str, Any], item: CatalogueItem, psn_type: str) -> dict[str, Any]:
    """One result row: ``split`` the engine's line split, ``line`` the uploaded line as journaled (its pric
    and cnt the request's exact values, as text), ``item`` its catalogue entry."""
    approved = line.get("hosp_appr_flag") in (True, "1")  # journaled as the model dumps it: a bool
    cap = item.pric_uplmt_amt
    row = {
        "feedetl_sn": split["feedetl_sn"],
        "det_item_fee_sumamt": split["det_item_fee_sumamt"],
        "cnt": Decimal(str(line["cnt"])),
        "pric": Decimal(str(line["pric"])),
        "pric_uplmt_amt": None if cap is None else Decimal(cap) / PRICE_SCALE,
        "selfpay_prop": selfpay_prop(item, approved, psn_type),
        "fulamt_ownpay_amt": split["fulamt_ownpay_amt"],
        "overlmt_amt": split["overlmt_amt"],
        "preselfpay_amt": split["preselfpay_amt"],
        "inscp_scp_amt": split["inscp_scp_amt"],
        "chrgitm_lv": item.chrgitm_lv,
        "med_chrgitm_type": item.med_chrgitm_type,
    }
    row.update({name: _flag(getattr(item, name)) for name in FLAGS})
    row["memo"] = None
    row["exp_content"] = None
    return row


def result_rows(
    splits: list[dict[str, Any]], lines: list[dict[str, Any]], catalogue: Catalogue, psn_type: str
) -> list[dict[str, Any]]:
    """The upload's rows, in its lines' order (every line's code is in ``catalogue``: the split checked it)."""
    return [
        result_row(split, line, catalogue.by_code[line["med_list_codg"]], psn_type)
        for split, line in zip(splits, lines, strict=True)
    ]
