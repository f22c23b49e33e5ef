"""Small, hand-computable policies and populations for tests (numbers chosen so examples work on paper)."""

from __future__ import annotations

import copy
from typing import Any

from medsettle.engine import Population, Settler
from medsettle.policy import policy_from_dict

REGION_A = "110100"
REGION_B = "220200"


def tiers(ded, ratio, ordinals=None):
    """The same deductible and ratio at every tier (ordinals: a per-admission list)."""
    d = ordinals if ordinals is not None else [ded]
    return {t: {"deductible": d, "ratio": ratio} for t in ("pharmacy", "1", "2", "3")}


def ruleset(version="R2026", effective_from="2026-01-01", **over: Any) -> dict:
    rs = {
        "version": version,
        "effective_from": effective_from,
        "med_type_groups": {
            "11": "outpatient",
            "13": "outpatient",
            "41": "outpatient",
            "14": "special",
            "21": "inpatient",
        },
        "waiting_months": 3,
        "account": {"scope": "all"},
        "cross_region_cut": {"emergency": "0.10", "other": "0.20"},
        "assistance": {"ratio": "0.70", "annual_cap": "1000.00"},
        "second_tier": [
            {"insutype": "310", "groups": ["outpatient", "inpatient"], "ratio": "0.80", "annual_cap": "5000.00"},
            {
                "insutype": "390",
                "groups": ["outpatient", "inpatient"],
                "ratio": "0.60",
                "annual_cap": "5000.00",
                "threshold": "1000.00",
            },
        ],
        "benefits": [],
    }
    for insutype, ptypes in (("310", ["11", "12"]), ("390", ["1501", "1502"])):
        rs["benefits"] += [
            {
                "group": "outpatient",
                "insutype": insutype,
                "psn_types": ptypes,
                "ceiling": "1000.00",
                "tiers": tiers("100.00", "0.80"),
            },
            {
                "group": "special",
                "insutype": insutype,
                "psn_types": ptypes,
                "ceiling": "2000.00",
                "tiers": tiers("0.00", "0.90"),
            },
            {
                "group": "inpatient",
                "insutype": insutype,
                "psn_types": ptypes,
                "ceiling": "50000.00",
                "tiers": tiers(None, "0.90", ordinals=["500.00", "300.00", "100.00"]),
            },
        ]
    rs.update(over)
    return rs


ITEMS_A = [
    {"med_list_codg": "A1", "chrgitm_lv": "01"},
    {"med_list_codg": "B05", "chrgitm_lv": "02", "selfpay_prop": "0.05"},
    {"med_list_codg": "B10", "chrgitm_lv": "02", "selfpay_prop": "0.10", "selfpay_prop_by_psn_type": {"12": "0.05"}},
    {"med_list_codg": "BCAP", "chrgitm_lv": "02", "selfpay_prop": "0.10", "pric_uplmt_amt": "100.00"},
    {"med_list_codg": "C1", "chrgitm_lv": "03"},
    {"med_list_codg": "R1", "chrgitm_lv": "02", "selfpay_prop": "0.10", "lmt_used_flag": True},
]
ITEMS_B = [
    {"med_list_codg": "A1", "chrgitm_lv": "01"},
    {"med_list_codg": "ONLYB", "chrgitm_lv": "02", "selfpay_prop": "0.20"},
]


def region(admdvs: str, items: list[dict], rulesets: list[dict] | None = None) -> dict:
    return {
        "admdvs": admdvs,
        "groups": [{"name": "outpatient"}, {"name": "special"}, {"name": "inpatient", "deductible_basis": "admission"}],
        "rulesets": rulesets or [ruleset()],
        "catalogues": [{"version": f"{admdvs}-C", "effective_from": "2020-01-01", "items": copy.deepcopy(items)}],
    }


def policy_dict(rulesets_a: list[dict] | None = None, rulesets_b: list[dict] | None = None) -> dict:
    return {"regions": [region(REGION_A, ITEMS_A, rulesets_a), region(REGION_B, ITEMS_B, rulesets_b)]}


def person(psn_no: str, insutype="310", psn_type="11", region_=REGION_A, balance="1000.00", **over) -> dict:
    row = {
        "psn_no": psn_no,
        "insutype": insutype,
        "psn_type": psn_type,
        "insuplc_admdvs": region_,
        "balance": balance,
        "active": "1",
        "assistance": "0",
        "contrib_from": "2020-01",
        "paid_through": "2030-12",
        "extra_wait_months": "0",
        "filing_admdvs": "",
        "filing_begin": "",
        "filing_end": "",
    }
    row.update(over)
    return row


DEFAULT_PERSONS = [
    person("E1"),  # employee in service, 1000.00
    person("E2", psn_type="12", balance="10.00"),  # retiree with a small balance
    person("R1", insutype="390", psn_type="1501", balance="0"),  # resident adult
    person("M1", insutype="390", psn_type="1501", balance="0", assistance="1"),  # resident with assistance
    person("X1", active="0"),  # inactive
    person("W1", contrib_from="2026-01"),  # waiting until April 2026
    person("F1", filing_admdvs=REGION_B, filing_begin="2026-01-01", filing_end="2026-12-31"),  # filed for B
]


def make_settler(engine: str, *, policy: dict | None = None, persons: list[dict] | None = None) -> Settler:
    pol = policy_from_dict(policy or policy_dict())
    pop = Population.from_rows(pol, persons or DEFAULT_PERSONS)
    return Settler(pol, pop, engine=engine)


def bill(
    psn_no: str,
    lines: list[tuple],
    *,
    med_type="11",
    when="2026-05-10 09:30:00",
    hosp_lv="2",
    mdtrt_id=None,
    region_=None,
    bill_id=None,
    **over,
) -> dict:
    """lines: (code, pric, cnt[, hosp_appr_flag])."""
    b = {
        "bill_id": bill_id or f"{psn_no}-{when}-{mdtrt_id}",
        "psn_no": psn_no,
        "mdtrt_id": mdtrt_id or f"MD-{psn_no}-{when}",
        "med_type": med_type,
        "setl_time": when,
        "hosp_lv": hosp_lv,
        "feedetail": [
            {
                "feedetl_sn": str(j + 1),
                "med_list_codg": ln[0],
                "pric": ln[1],
                "cnt": ln[2],
                "hosp_appr_flag": ln[3] if len(ln) > 3 else "0",
            }
            for j, ln in enumerate(lines)
        ],
    }
    if region_:
        b["mdtrtarea_admvs"] = region_
    b.update(over)
    return b
