"""Designated institutions (docs/messages.md 'Institutions'): who may settle what, and how their counters fail.

A hospital settles med types 11, 13, 14 and 21 at its tier; a pharmacy settles 41. The failure policy
and floor limits are read by counters (issue 5); the centre only keeps them.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import PolicyError
from ..ledger.gate import AGENCY_ROW, Secret
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


def load_institutions(path: str | Path, policy: Policy) -> tuple[list[Institution], dict[str, Secret]]:
    """The institutions of a ``serve --institutions`` TOML file (docs/security.md), and the credentials it
    names: per institution its paasid and passtoken when both are given, and ``agency_token`` at the top
    (as ``AGENCY_ROW``). Institutions without credentials get them made at the centre's first start.

    One ``[[institution]]`` table per institution, with the keys of :class:`Institution` plus ``paasid``
    and ``passtoken``. PolicyError naming the file, the institution and the key when something is wrong."""
    where = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"--institutions {where}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"--institutions {where}: {exc}") from None
    unknown = set(data) - {"institution", "agency_token"}
    if unknown:
        raise PolicyError(f"{where}: unknown key {sorted(unknown)[0]!r} (expected [[institution]] and agency_token)")
    entries = data.get("institution")
    if not isinstance(entries, list) or not entries:
        raise PolicyError(f"{where}: expected at least one [[institution]] table")
    regions = {r.admdvs for r in policy.regions}
    institutions: list[Institution] = []
    credentials: dict[str, Secret] = {}
    for n, entry in enumerate(entries, 1):
        label = f"{where}: institution {n}"
        if not isinstance(entry, dict):
            raise PolicyError(f"{label}: expected a table")
        entry = dict(entry)
        paasid, passtoken = entry.pop("paasid", None), entry.pop("passtoken", None)
        try:
            institution = Institution.model_validate(entry)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise PolicyError(f"{label}: {'.'.join(map(str, err['loc'])) or 'table'}: {err['msg']}") from None
        code = institution.fixmedins_code
        if institution.admdvs not in regions:
            raise PolicyError(f"{label} ({code}): admdvs {institution.admdvs} is not a region of the policy")
        if any(i.fixmedins_code == code for i in institutions):
            raise PolicyError(f"{label}: fixmedins_code {code} appears twice")
        if (paasid is None) != (passtoken is None):
            raise PolicyError(f"{label} ({code}): give both paasid and passtoken, or neither")
        if paasid is not None:
            if not (isinstance(paasid, str) and isinstance(passtoken, str) and paasid and len(passtoken) >= 16):
                raise PolicyError(f"{label} ({code}): paasid must be a string, passtoken one of 16 characters or more")
            if any(s.paasid == paasid for s in credentials.values()):
                raise PolicyError(f"{label} ({code}): paasid {paasid!r} is another institution's too")
            credentials[code] = Secret(paasid, passtoken)
        institutions.append(institution)
    token = data.get("agency_token")
    if token is not None:
        if not isinstance(token, str) or len(token) < 16:
            raise PolicyError(f"{where}: agency_token must be a string of 16 characters or more")
        credentials[AGENCY_ROW] = Secret("agency", token)
    return institutions, credentials
