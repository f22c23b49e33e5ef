"""Batches back to bills: what the reference engine settles when it is handed what the core reads.

A :class:`~.bills.BillBatch` holds indices (person row, med type, tier, region, catalogue item) and int
units; :func:`decode_batch` turns each bill back into the :class:`~.bills.Bill` it stands for, with the
platform's codes and exact decimal amounts, so the reference engine can look everything up in the
policy models by code and date as docs/settlement.md says. Encoding the decoded bills again gives the
same batch (tests/test_decode.py), so encoder and decoder check each other.

A batch knows an admission only by its key (:class:`~.bills.AdmissionKeys`), not by the mdtrt_id it
was made from: a decoded bill's mdtrt_id is :func:`admission_name` of the key, and the keys given are
bound to those names, so the same key is the same admission again.
"""

from __future__ import annotations

from decimal import Decimal

from ..policy.codes import MED_TYPES, TIER_NAMES
from ..policy.compile import CompiledPolicy
from ..timeutil import from_day_number
from .bills import NO_VALUE, AdmissionKeys, Bill, BillBatch, FeeLine
from .persons import Population

_PRICE_PLACES = 4  # pric and cnt in units of 0.0001
_FEN_PLACES = 2  # amounts in fen


def admission_name(key: int) -> str:
    """The mdtrt_id a decoded bill carries for admission key ``key``."""
    return f"ADM-{key}"


def decode_batch(
    batch: BillBatch, compiled: CompiledPolicy, population: Population, admissions: AdmissionKeys
) -> list[Bill]:
    """Every bill of a validated ``batch`` as a Bill; ``admissions`` learns the admission names' keys."""
    bills = []
    for i in range(len(batch)):
        key = int(batch.adm[i])
        admissions.bind(admission_name(key), key)
        bills.append(_bill(batch, i, compiled, population))
    return bills


# The bills are built with model_construct, pydantic's way for trusted data: a validated batch holds
# nothing the models would refuse, and every value below has the type validation would give it (str,
# bool, Decimal, date), so the checks would cost the reference engine more than its settling does.


def _bill(batch: BillBatch, i: int, compiled: CompiledPolicy, population: Population) -> Bill:
    lines = [_line(batch, j, compiled) for j in range(int(batch.line_start[i]), int(batch.line_start[i + 1]))]
    return Bill.model_construct(
        bill_id=batch.bill_ids[i] if batch.bill_ids is not None else "",
        psn_no=population.psn_nos[int(batch.person[i])],
        mdtrt_id=admission_name(int(batch.adm[i])),
        med_type=MED_TYPES[int(batch.med_type[i])],
        setl_time=from_day_number(int(batch.day[i])),
        hosp_lv=TIER_NAMES[int(batch.tier[i])],
        mdtrtarea_admvs=compiled.region_codes[int(batch.treat_region[i])],
        acct_used_flag=bool(batch.acct_flag[i]),
        medfee_sumamt=_amount(int(batch.caller_medfee[i]), _FEN_PLACES),
        saf_cash_amt=_amount(int(batch.saf_cash[i]), _FEN_PLACES),
        feedetail=lines,
    )


def _line(batch: BillBatch, j: int, compiled: CompiledPolicy) -> FeeLine:
    return FeeLine.model_construct(
        feedetl_sn="",
        med_list_codg=compiled.item_codes[int(batch.item[j])],
        pric=Decimal(int(batch.pric[j])).scaleb(-_PRICE_PLACES),
        cnt=Decimal(int(batch.cnt[j])).scaleb(-_PRICE_PLACES),
        det_item_fee_sumamt=_amount(int(batch.caller_fee[j]), _FEN_PLACES),
        hosp_appr_flag=bool(batch.appr[j]),
    )


def _amount(units: int, places: int) -> Decimal | None:
    """``units`` of 10^-places as the exact decimal a bill writes; None for NO_VALUE (not sent)."""
    return None if units == NO_VALUE else Decimal(units).scaleb(-places)
