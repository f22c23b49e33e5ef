"""Hypothesis strategies: random policies, populations and streams of operations (settle, pre-settle, cancel)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import strategies as st

from worlds import REGION_A, REGION_B

GROUPS = ["outpatient", "special", "inpatient"]
TIERS = ["pharmacy", "1", "2", "3"]
CODES = [f"I{i}" for i in range(8)]


def yuan(fen: int) -> str:
    return str(Decimal(fen).scaleb(-2).quantize(Decimal("0.01")))


def frac(bp: int) -> str:
    return str(Decimal(bp).scaleb(-4))


fen_small = st.one_of(st.just(0), st.integers(0, 20_000))
bp = st.integers(0, 10_000)


@st.composite
def rulesets(draw, region: str, effective_from: dt.date) -> dict:
    benefits = []
    for insutype, ptypes in (("310", ["11", "12"]), ("390", ["1501", "1502"])):
        for p in ptypes:
            for g in GROUPS:
                tiers = {}
                for t in TIERS:
                    if draw(st.integers(0, 9)) == 0:
                        continue  # a tier the group does not pay at
                    ded = draw(st.lists(fen_small, min_size=1, max_size=3))
                    tiers[t] = {"deductible": [yuan(d) for d in ded], "ratio": frac(draw(bp))}
                benefits.append(
                    {
                        "group": g,
                        "insutype": insutype,
                        "psn_types": [p],
                        "ceiling": yuan(draw(st.one_of(st.integers(0, 5_000), st.integers(0, 150_000)))),
                        "tiers": tiers,
                    }
                )
    second = []
    for insutype in ("310", "390"):
        if draw(st.integers(0, 3)) > 0:
            second.append(
                {
                    "insutype": insutype,
                    "groups": draw(st.lists(st.sampled_from(GROUPS), unique=True, min_size=1)),
                    "ratio": frac(draw(bp)),
                    "annual_cap": yuan(draw(st.integers(0, 200_000))),
                    "threshold": yuan(draw(st.integers(0, 30_000))),
                }
            )
    mapping = {m: draw(st.sampled_from(GROUPS)) for m in ("11", "13", "14", "41")}
    mapping["21"] = draw(st.sampled_from(GROUPS))
    return {
        "version": f"{region}-{effective_from}",
        "effective_from": effective_from.isoformat(),
        "med_type_groups": mapping,
        "benefits": benefits,
        "second_tier": second,
        "assistance": {"ratio": frac(draw(bp)), "annual_cap": yuan(draw(st.integers(0, 100_000)))},
        "account": {
            "scope": draw(st.sampled_from(["all", "covered"])),
            "med_types": draw(
                st.lists(st.sampled_from(["11", "13", "14", "21", "41"]), unique=True, min_size=draw(st.integers(0, 3)))
            ),
        },
        "cross_region_cut": {"emergency": frac(draw(bp)), "other": frac(draw(bp))},
        "waiting_months": draw(st.integers(0, 4)),
    }


@st.composite
def catalogue_items(draw) -> list[dict]:
    items = []
    for code in CODES:
        if draw(st.integers(0, 19)) == 0:
            continue  # not in this region's catalogue
        cls = draw(st.sampled_from(["01", "02", "03"]))
        item = {
            "med_list_codg": code,
            "chrgitm_lv": cls,
            "selfpay_prop": frac(draw(bp)),
            "lmt_used_flag": draw(st.booleans()),
        }
        if draw(st.booleans()):
            item["pric_uplmt_amt"] = str(Decimal(draw(st.integers(0, 2_000_000))).scaleb(-4))
        if draw(st.booleans()):
            item["selfpay_prop_by_psn_type"] = {draw(st.sampled_from(["11", "12", "1501", "1502"])): frac(draw(bp))}
        items.append(item)
    if not items:
        items.append({"med_list_codg": CODES[0], "chrgitm_lv": "01"})
    return items


@st.composite
def policies(draw) -> dict:
    regions = []
    for admdvs in (REGION_A, REGION_B):
        dates = [dt.date(2025, 1, 1)]
        if draw(st.booleans()):
            dates.append(dt.date(2025, 1, 1) + dt.timedelta(days=draw(st.integers(30, 900))))
        regions.append(
            {
                "admdvs": admdvs,
                "groups": [
                    {"name": "outpatient", "deductible_basis": draw(st.sampled_from(["annual", "admission"]))},
                    {"name": "special"},
                    {"name": "inpatient", "deductible_basis": "admission"},
                ],
                "rulesets": [draw(rulesets(admdvs, d)) for d in dates],
                "catalogues": [
                    {"version": f"{admdvs}-C", "effective_from": "2024-01-01", "items": draw(catalogue_items())}
                ],
            }
        )
    return {"regions": regions}


@st.composite
def persons(draw) -> list[dict]:
    rows = []
    for i in range(draw(st.integers(1, 3))):
        insutype = draw(st.sampled_from(["310", "390"]))
        filing = draw(st.booleans())
        rows.append(
            {
                "psn_no": f"P{i}",
                "insutype": insutype,
                "psn_type": draw(st.sampled_from(["11", "12"] if insutype == "310" else ["1501", "1502"])),
                "insuplc_admdvs": draw(st.sampled_from([REGION_A, REGION_B])),
                "balance": yuan(draw(st.integers(0, 200_000))),
                "active": "0" if draw(st.integers(0, 19)) == 0 else "1",
                "assistance": "1" if draw(st.booleans()) else "0",
                "contrib_from": draw(st.sampled_from(["2020-01"] * 6 + ["2024-11", "2025-03", "2026-02"])),
                "paid_through": draw(st.sampled_from(["2030-12"] * 6 + ["2025-08", "2026-06"])),
                "extra_wait_months": str(draw(st.integers(0, 2))),
                "filing_admdvs": draw(st.sampled_from([REGION_A, REGION_B])) if filing else "",
                "filing_begin": "2025-06-01" if filing else "",
                "filing_end": "2026-06-30" if filing else "",
            }
        )
    return rows


@st.composite
def bills(draw, n_persons: int, index: int, day: dt.date | None = None) -> dict:
    if day is None:
        day = dt.date(2025, 1, 1) + dt.timedelta(days=draw(st.integers(0, 3 * 365)))
    region = draw(st.sampled_from([None, REGION_A, REGION_B]))
    saf = draw(st.integers(0, 6)) == 0
    lines = []
    for j in range(draw(st.integers(1, 5))):
        lines.append(
            {
                "feedetl_sn": str(j + 1),
                "med_list_codg": draw(st.sampled_from(CODES)),
                "pric": str(Decimal(draw(st.integers(0, 30_000_000))).scaleb(-4)),
                "cnt": str(Decimal(draw(st.integers(1, 200_000))).scaleb(-4)),
                "hosp_appr_flag": draw(st.sampled_from(["0", "1"])),
            }
        )
    b = {
        "bill_id": f"B{index}",
        "psn_no": f"P{draw(st.integers(0, n_persons - 1))}",
        "mdtrt_id": f"M{draw(st.integers(0, 4))}",
        "med_type": draw(st.sampled_from(["11", "13", "14", "21", "41"])),
        "setl_time": f"{day.isoformat()} 10:00:00",
        "hosp_lv": draw(st.sampled_from(TIERS)),
        "acct_used_flag": "0" if saf else draw(st.sampled_from(["0", "1"])),
        "feedetail": lines,
    }
    if saf:
        b["saf_cash_amt"] = yuan(draw(st.integers(0, 50_000)))
    if region:
        b["mdtrtarea_admvs"] = region
    return b


@st.composite
def operations(draw, n_persons: int) -> list[tuple]:
    """('settle', bill) | ('presettle', bill) | ('cancel', k): cancel the k-th settlement made so far."""
    ops = []
    n = draw(st.integers(1, 25))
    # Mostly in date order, as a counter sends them, with some bills out of order (late, closed years).
    days = sorted(draw(st.lists(st.integers(0, 3 * 365), min_size=n, max_size=n)))
    for i in range(n):
        kind = draw(st.sampled_from(["settle", "settle", "settle", "presettle", "cancel", "cancel"]))
        if kind == "cancel":
            ops.append(("cancel", draw(st.integers(0, 6))))
        else:
            day = days[i] if draw(st.integers(0, 5)) else draw(st.integers(0, 3 * 365))
            ops.append((kind, draw(bills(n_persons, i, dt.date(2025, 1, 1) + dt.timedelta(days=day)))))
    return ops
