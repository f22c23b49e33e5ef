"""Designated institutions (docs/messages.md 'Institutions'): who may settle what, and how their counters fail.

A hospital settles med types 11, 13, 14 and 21 at its tier; a pharmacy settles 41. The failure policy
and floor limits are read by counters (issue 5); the centre only keeps them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..policy.models import Policy

HOSPITAL_MED_TYPES = ("11", "13", "14", "21")
PHARMACY_MED_TYPES = ("41",)


class Institution(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fixmedins_code: str = Field(min_length=12, max_length=12)
    fixmedins_name: str
    admdvs: str = Field(pattern=r"^\d{6}$")
    tier: Literal["pharmacy", "1", "2", "3"]
    failure_policy: Literal["cash_deferred", "store_and_forward"] = "cash_deferred"
    floor_per_bill: int = 50_000  # fen, provisional fund_pay_sumamt per bill (store-and-forward)
    floor_per_person_day: int = 100_000
    floor_outstanding: int = 5_000_000

    @property
    def med_types(self) -> tuple[str, ...]:
        return PHARMACY_MED_TYPES if self.tier == "pharmacy" else HOSPITAL_MED_TYPES


def default_institutions(policy: Policy) -> list[Institution]:
    """Per region: one hospital of each tier and two pharmacies; the tier-1 community health centre and the
    second pharmacy work store-and-forward when the centre is away, the others cash with deferral."""
    out = []
    for region in policy.regions:
        a = region.admdvs
        out += [
            Institution(fixmedins_code=f"H{a}00001", fixmedins_name=f"{a} 第一人民医院 (三级)", admdvs=a, tier="3"),
            Institution(fixmedins_code=f"H{a}00002", fixmedins_name=f"{a} 中心医院 (二级)", admdvs=a, tier="2"),
            Institution(
                fixmedins_code=f"H{a}00003",
                fixmedins_name=f"{a} 社区卫生服务中心 (一级)",
                admdvs=a,
                tier="1",
                failure_policy="store_and_forward",
            ),
            Institution(fixmedins_code=f"P{a}00001", fixmedins_name=f"{a} 大药房", admdvs=a, tier="pharmacy"),
            Institution(
                fixmedins_code=f"P{a}00002",
                fixmedins_name=f"{a} 便民药店",
                admdvs=a,
                tier="pharmacy",
                failure_policy="store_and_forward",
            ),
        ]
    return out
