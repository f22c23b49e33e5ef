"""Resolving validated bills into what the engines take: :func:`resolve_bill` turns one :class:`~.bills.Bill`
into a :class:`ResolvedBill` (the fast path's arguments: person, regions, catalogue items and admission as
the engines' indices, amounts as int units), checking what the model cannot; :func:`encode_bills` makes a
:class:`~.billbatch.BillBatch` of many. The model way of ``Settler.settle`` and every bill of a stream
(``medsettle settle``) pass through here: the path is hot, so it stays a plain loop over the lines."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .. import money
from ..errors import InvalidInput, TotalMismatch, UnknownItem
from ..policy.codes import MED_TYPE_INDEX, TIER_INDEX
from ..policy.compile import CompiledPolicy
from ..timeutil import day_number
from .admissionkeys import AdmissionKeySource
from .billbatch import NO_VALUE, BillBatch
from .bounds import LINE_DIVISOR, MAX_MEDFEE, MAX_YEAR, MIN_YEAR
from .persons import Population

if TYPE_CHECKING:  # bills.py names this module's functions too, so it is imported here for the annotations only
    from .bills import Bill


def line_fee(pric_units: int, cnt_units: int) -> int:
    """det_item_fee_sumamt = round(pric × cnt) in fen, half up (docs/settlement.md step 1)."""
    return money.round_half_up_div(pric_units * cnt_units, LINE_DIVISOR)


class ResolvedBill(NamedTuple):
    """One bill with every code resolved to the index the engines use (the fast path's arguments)."""

    person: int
    day: int
    med_type: int
    tier: int
    treat_region: int
    acct_flag: int
    adm: int
    saf_cash: int
    items: list[int]
    prices: list[int]
    cnts: list[int]
    apprs: list[int]


def resolve_bill(
    bill: Bill,
    compiled: CompiledPolicy,
    population: Population,
    admissions: AdmissionKeySource,
    *,
    name: str | int | None = None,
) -> ResolvedBill:
    """Resolve a validated bill's person, regions, items and admission, and check what the model cannot:
    the date's year, the catalogue in force, the caller's totals and the medfee bound. Raises
    InvalidInput naming the bill and field; changes nothing but the admission key table."""
    name = bill.bill_id or name
    try:
        return _resolve(bill, compiled, population, admissions, name)
    except InvalidInput as exc:
        if exc.bill is None and name is not None:  # name the bill in errors about one of its fields
            raise type(exc)(exc.reason, bill=name, field=exc.field) from None
        raise


def _resolve(
    bill: Bill, compiled: CompiledPolicy, population: Population, admissions: AdmissionKeySource, name: str | int | None
) -> ResolvedBill:
    p = population.index_of(bill.psn_no)
    if bill.mdtrtarea_admvs is None:
        region = int(population.attrs[p]["region"])
    else:
        try:
            region = compiled.region_index(bill.mdtrtarea_admvs)
        except KeyError:
            raise InvalidInput(
                f"treatment region {bill.mdtrtarea_admvs} is not in the policy", bill=name, field="mdtrtarea_admvs"
            ) from None
    bill_date = bill.bill_date
    if not MIN_YEAR <= bill_date.year <= MAX_YEAR:
        raise InvalidInput(f"the bill's date must be in {MIN_YEAR}-{MAX_YEAR}", bill=name, field="setl_time")
    d = day_number(bill_date)
    lookup = compiled.item_lookup(region, d) or {}
    items, prices, cnts, apprs = [], [], [], []
    medfee = 0
    for j, line in enumerate(bill.feedetail):
        idx = lookup.get(line.med_list_codg)
        if idx is None:
            raise UnknownItem(
                f"UNKNOWN_ITEM: {line.med_list_codg!r} is not in the catalogue of "
                f"{compiled.region_codes[region]} in force on {bill_date}",
                bill=name,
                field=f"feedetail[{j}].med_list_codg",
            )
        pric, cnt, caller_fee = line.units(j)
        fee = line_fee(pric, cnt)
        if caller_fee is not None and caller_fee != fee:
            raise TotalMismatch(
                f"{money.fen_to_decimal(caller_fee)} disagrees with round(pric × cnt) = {money.fen_to_decimal(fee)}",
                bill=name,
                field=f"feedetail[{j}].det_item_fee_sumamt",
            )
        medfee += fee
        items.append(idx)
        prices.append(pric)
        cnts.append(cnt)
        apprs.append(int(line.hosp_appr_flag))
    if medfee > MAX_MEDFEE:
        raise InvalidInput("more than 10^11 fen", bill=name, field="medfee_sumamt")
    caller_medfee = bill.medfee_fen
    if caller_medfee is not None and caller_medfee != medfee:
        raise TotalMismatch(
            f"{money.fen_to_decimal(caller_medfee)} disagrees with the sum of the lines' "
            f"det_item_fee_sumamt {money.fen_to_decimal(medfee)}",
            bill=name,
            field="medfee_sumamt",
        )
    saf_cash_fen = bill.saf_cash_fen  # None exactly when there is no saf_cash_amt
    saf_cash = NO_VALUE if saf_cash_fen is None else saf_cash_fen
    if saf_cash >= 0 and bill.acct_used_flag:
        raise InvalidInput(
            "a store-and-forward forward is settled without the personal account (acct_used_flag 0)",
            bill=name,
            field="acct_used_flag",
        )
    return ResolvedBill(
        p,
        d,
        MED_TYPE_INDEX[bill.med_type],
        TIER_INDEX[bill.hosp_lv],
        region,
        int(bill.acct_used_flag),
        admissions.key(bill.mdtrt_id),
        saf_cash,
        items,
        prices,
        cnts,
        apprs,
    )


def encode_bills(
    bills: list[Bill], compiled: CompiledPolicy, population: Population, admissions: AdmissionKeySource
) -> BillBatch:
    """Resolve validated bills into a BillBatch; raises before anything is returned, so a bad bill never
    reaches an engine."""
    resolved = [resolve_bill(b, compiled, population, admissions, name=i) for i, b in enumerate(bills)]
    counts = [len(r.items) for r in resolved]
    line_start = np.zeros(len(bills) + 1, np.int64)
    np.cumsum(counts, out=line_start[1:])

    def column(field: str, dtype: type | str) -> np.ndarray:
        return np.fromiter((getattr(r, field) for r in resolved), dtype, len(resolved))

    def lines(field: str, dtype: type | str) -> np.ndarray:
        return np.fromiter((x for r in resolved for x in getattr(r, field)), dtype, int(line_start[-1]))

    return BillBatch.from_columns(
        person=column("person", np.int32),
        day=column("day", np.int32),
        med_type=column("med_type", np.uint8),
        tier=column("tier", np.uint8),
        treat_region=column("treat_region", np.int16),
        acct_flag=column("acct_flag", np.uint8),
        adm=column("adm", np.int32),
        saf_cash=column("saf_cash", np.int64),
        line_start=line_start,
        item=lines("items", np.int32),
        pric=lines("prices", np.int64),
        cnt=lines("cnts", np.int64),
        appr=lines("apprs", np.uint8),
        bill_ids=[b.bill_id for b in bills],
    )
