"""National codes the engines index by: schemes, person types, med types, institution tiers.

Each code maps to a small index so compiled policies can be flat arrays. These are the platform's
code tables, not policy: a region chooses numbers for them, never new codes.
"""

from __future__ import annotations

from typing import Final, Literal

# The code tables as types: what the policy models accept and the engines' steps read.
Insutype = Literal["310", "390"]
PsnType = Literal["11", "12", "1501", "1502"]
MedType = Literal["11", "13", "14", "21", "41"]
TierName = Literal["pharmacy", "1", "2", "3"]

EMPLOYEE: Final = "310"  # 职工基本医疗保险: has personal accounts; second tier is 大额 (hifob_pay)
RESIDENT: Final = "390"  # 城乡居民基本医疗保险: no account; second tier is 大病 (hifmi_pay)
INSUTYPES: tuple[Insutype, ...] = (EMPLOYEE, RESIDENT)
INSUTYPE_INDEX: dict[str, int] = {code: i for i, code in enumerate(INSUTYPES)}

# psn_type: 11 in service, 12 retired (employee scheme); 1501 resident adult, 1502 minor/student.
PSN_TYPES: tuple[PsnType, ...] = ("11", "12", "1501", "1502")
PSN_TYPE_INDEX: dict[str, int] = {code: i for i, code in enumerate(PSN_TYPES)}
PSN_TYPES_OF_INSUTYPE: dict[str, tuple[PsnType, ...]] = {EMPLOYEE: ("11", "12"), RESIDENT: ("1501", "1502")}

# med_type: 11 general outpatient, 13 emergency, 14 chronic/special outpatient, 21 inpatient,
# 41 pharmacy purchase.
MED_TYPES: tuple[MedType, ...] = ("11", "13", "14", "21", "41")
MED_TYPE_INDEX: dict[str, int] = {code: i for i, code in enumerate(MED_TYPES)}
EMERGENCY_MED_TYPE: Final = "13"

# Institution tier: 0 = designated pharmacy, 1-3 = hospital tiers (一级/二级/三级).
TIER_NAMES: tuple[TierName, ...] = ("pharmacy", "1", "2", "3")
TIER_INDEX: dict[str, int] = {name: i for i, name in enumerate(TIER_NAMES)}

# Catalogue classes (chrgitm_lv): 01 甲 class A, 02 乙 class B, 03 丙 / out of catalogue.
CLASS_A, CLASS_B, CLASS_C = 1, 2, 3
CLASS_CODES = {"01": CLASS_A, "02": CLASS_B, "03": CLASS_C}

MAX_GROUPS = 3
ADMISSION_ORDINALS = 3  # deductible list by the admission's ordinal in the year: 1st, 2nd, 3rd and later

# Fund codes for setldetail (fund_pay_type).
FUND_EMPLOYEE_POOLED = "310100"
FUND_EMPLOYEE_ACCOUNT = "310200"
FUND_LARGE_AMOUNT = "330100"
FUND_RESIDENT_BASIC = "390100"
FUND_RESIDENT_CRITICAL = "390200"
FUND_ASSISTANCE = "610100"
FUND_INSTITUTION = "999996"
