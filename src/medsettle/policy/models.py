"""Pydantic models of a region's rules and catalogues (docs/settlement.md), as a policy file states them.

Money is validated into int fen, unit prices into int 0.0001-yuan units, ratios into int basis points,
so nothing downstream ever sees a float. These models are also what the reference engine reads:
they are the specification the compiled arrays must agree with.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_validator, model_validator

from .. import money
from ..bounds import LIMIT_MAX_FEN  # docs/settlement.md: limits are below 2^31 fen
from ..bounds import MAX_PRIC_UNITS as PRICE_MAX_UNITS
from .codes import (
    ADMISSION_ORDINALS,
    CLASS_CODES,
    INSUTYPES,
    MAX_GROUPS,
    MED_TYPES,
    PSN_TYPES,
    PSN_TYPES_OF_INSUTYPE,
    Insutype,
    MedType,
    PsnType,
    TierName,
)

BIG_MAX_FEN = 2**62


# Each converter checks its bounds itself, so a bad value is described in the units the policy file
# writes it in (yuan, fractions), not in the fen, basis points or price units it becomes inside.


def _yuan_within(max_fen: int) -> Callable[[object], int]:
    def to_fen(value: object) -> int:
        fen = money.to_fen(value, None)
        if fen < 0:
            raise ValueError(f"must not be negative (an amount in yuan), not {value}")
        if fen > max_fen:
            raise ValueError(f"must be at most {money.fen_to_decimal(max_fen)} yuan, not {value}")
        return fen

    return to_fen


def _fraction(value: object) -> int:
    bp = money.to_bp(value, None)
    if not 0 <= bp <= money.BP:
        bound = "at least 0 (0%)" if bp < 0 else "at most 1 (100%)"
        raise ValueError(f"must be {bound}, not {value}: ratios are fractions from 0 to 1")
    return bp


def _price(value: object) -> int:
    units = money.to_price_units(value, None)
    if not 0 <= units <= PRICE_MAX_UNITS:
        raise ValueError(f"must be a price from 0 to {PRICE_MAX_UNITS // money.PRICE_SCALE} yuan, not {value}")
    return units


# In JSON (mode="json") amounts go back out in yuan and ratios as fractions, exact strings, so a dumped
# policy loads again unchanged (counters cache rule sets downloaded this way).
_YUAN = PlainSerializer(lambda v: str(money.fen_to_decimal(v)), return_type=str, when_used="json")
_FRACTION = PlainSerializer(lambda v: str(money.bp_to_decimal(v)), return_type=str, when_used="json")
_PRICE = PlainSerializer(lambda v: str(Decimal(v).scaleb(-4)), return_type=str, when_used="json")

Fen = Annotated[int, BeforeValidator(_yuan_within(LIMIT_MAX_FEN)), _YUAN]
BigFen = Annotated[int, BeforeValidator(_yuan_within(BIG_MAX_FEN)), _YUAN]
Bp = Annotated[int, BeforeValidator(_fraction), _FRACTION]
PriceUnits = Annotated[int, BeforeValidator(_price), _PRICE]


def _admdvs(value: object) -> object:
    if not (isinstance(value, str) and len(value) == 6 and value.isascii() and value.isdigit()):
        raise ValueError(f'must be a region code of 6 digits in quotes (such as "130100"), not {value!r}')
    return value


Admdvs = Annotated[str, BeforeValidator(_admdvs)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Group(_Model):
    """A benefit group: deductible met and pooled paid are kept per person, per group, per year."""

    name: str = Field(min_length=1)
    deductible_basis: Literal["annual", "admission"] = "annual"


class TierRate(_Model):
    """Deductible and pooled ratio at one institution tier.

    ``deductible`` has one amount for an annual group, or one per admission ordinal (1st, 2nd, 3rd
    and later) for a per-admission group; a shorter list repeats its last amount.
    """

    deductible: list[Fen] = Field(min_length=1, max_length=ADMISSION_ORDINALS)
    ratio: Bp

    def deductible_for(self, ordinal: int) -> int:
        """Deductible standard for the admission's ordinal in the year (1-based; annual: 1)."""
        return self.deductible[min(ordinal, len(self.deductible)) - 1]


class Benefit(_Model):
    """Per group × scheme × person type: annual ceiling, and deductible and ratio per tier.

    A tier missing from ``tiers`` pays nothing from the pooled fund there (ratio 0, no deductible).
    """

    group: str
    insutype: Insutype
    psn_types: list[PsnType] = Field(min_length=1)
    ceiling: Fen
    tiers: dict[TierName, TierRate]

    @model_validator(mode="after")
    def _psn_types_match_scheme(self) -> Benefit:
        allowed = PSN_TYPES_OF_INSUTYPE[self.insutype]
        wrong = [p for p in self.psn_types if p not in allowed]
        if wrong:
            raise ValueError(f"psn_types {wrong} do not belong to insutype {self.insutype} (allowed: {list(allowed)})")
        return self


class SecondTier(_Model):
    """大额 (employees, no threshold) or 大病 (residents, above a yearly threshold of in-scope self-pay)."""

    insutype: Insutype
    groups: list[str]
    ratio: Bp
    annual_cap: Fen
    threshold: BigFen = 0


class Assistance(_Model):
    """Medical assistance (医疗救助) for persons with that identity."""

    ratio: Bp = 7000
    annual_cap: Fen = 0


class Account(_Model):
    """Which med types may draw on the personal account, and whether it pays all of the person's share
    (``all``) or only the part for covered items (``covered``)."""

    med_types: list[MedType] = list(MED_TYPES)
    scope: Literal["all", "covered"] = "all"
    # The monthly credit (划入): employees in service get this share of their contribution base, retirees a
    # fixed sum (the 2021 reform's shape); residents have no account.
    in_service_share: Bp = 200
    retiree_monthly: Fen = 10_000


class CrossRegionCut(_Model):
    """Basis points taken off the pooled ratio when treated outside the insured region without a filing."""

    emergency: Bp = 1000
    other: Bp = 2000


class LateEnrolment(_Model):
    """Residents who enrol late wait the waiting months plus this many per uncovered year, capped."""

    months_per_uncovered_year: int = Field(default=1, ge=0, le=12)
    cap_months: int = Field(default=12, ge=0, le=120)


class DeferredWindow(_Model):
    """How long after the bill's date (or discharge) a deferred voucher may still be settled (§4)."""

    outpatient_days: int = Field(default=7, ge=0, le=3650)
    inpatient_days: int = Field(default=30, ge=0, le=3650)
    manual_claim_days: int = Field(default=180, ge=0, le=3650)


class EmergencyScope(_Model):
    """The drug scope relaxed for emergency care at a non-agreed institution (社会保险法实施细则 art. 8: the
    scope of drugs that must be used in an emergency or rescue may be relaxed; the region sets how), applied to
    a manual claim at the insured region's agency
    (docs/agency.md 'Emergency care at a non-agreed institution').

    ``class_c_as``: the catalogue code of a class A or B item (no price cap, not restricted) whose class and
    self-pay-first share a class C drug of the claim is settled with; None: class C stays own pay.
    ``restricted_approved``: a restricted item (限定支付) is paid as if the hospital had approved it."""

    class_c_as: str | None = Field(default=None, min_length=1, max_length=50)
    restricted_approved: bool = False


class RuleSet(_Model):
    """The rules of one region in force from ``effective_from`` until the next rule set's date."""

    version: str = Field(min_length=1)
    effective_from: dt.date
    med_type_groups: dict[MedType, str]
    benefits: list[Benefit] = Field(min_length=1)
    second_tier: list[SecondTier] = []
    assistance: Assistance = Assistance()
    account: Account = Account()
    cross_region_cut: CrossRegionCut = CrossRegionCut()
    waiting_months: int = Field(default=3, ge=0, le=24)
    late_enrolment: LateEnrolment = LateEnrolment()
    deferred_window: DeferredWindow = DeferredWindow()
    emergency_scope: EmergencyScope = EmergencyScope()

    @field_validator("med_type_groups")
    @classmethod
    def _every_med_type_mapped(cls, value: dict[str, str]) -> dict[str, str]:
        missing = [m for m in MED_TYPES if m not in value]
        if missing:
            raise ValueError(f"med types {missing} are not mapped to a benefit group")
        return value

    def benefit(self, group: str, insutype: str, psn_type: str) -> Benefit:
        for b in self.benefits:
            if b.group == group and b.insutype == insutype and psn_type in b.psn_types:
                return b
        raise KeyError((group, insutype, psn_type))

    def second_tier_for(self, insutype: str) -> SecondTier | None:
        for t in self.second_tier:
            if t.insutype == insutype:
                return t
        return None


# The platform's medical charge item categories (医疗收费项目类别, med_chrgitm_type): 01 bed, 02 consultation,
# 03 examination, 04 laboratory test, 05 treatment, 06 surgery, 07 nursing, 08 medical materials, 09 western
# medicines, 10 herbal pieces, 11 Chinese patent medicines, 12 general consultation, 13 registration, 14 other.
MedChrgitmType = Literal["01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14"]
OTHER_CHRGITM_TYPE: MedChrgitmType = "14"


class CatalogueItem(_Model):
    """One catalogue entry. ``selfpay_prop_by_psn_type`` overrides ``selfpay_prop`` for a person type.

    The engines read the class, the ratios, the cap and ``lmt_used_flag`` (restricted use). The other flags
    are only answered (2204/2301's result rows), so a catalogue without them still settles the same:
    ``med_chrgitm_type`` (default 14, other), ``bas_medn_flag`` (a national essential medicine),
    ``hi_nego_drug_flag`` (a drug priced by the national insurance negotiation), ``chld_medc_flag`` (a
    children's medicine), ``list_sp_item_flag`` (a special item of the catalogue: high-value services and
    materials a region lists apart) and ``drt_reim_flag`` (reimbursed directly, 直报); each flag off by default.
    """

    med_list_codg: str = Field(min_length=1, max_length=50)
    name: str = ""
    chrgitm_lv: Literal["01", "02", "03"]
    selfpay_prop: Bp = 0
    selfpay_prop_by_psn_type: dict[PsnType, Bp] = {}
    pric_uplmt_amt: PriceUnits | None = None
    lmt_used_flag: bool = False
    med_chrgitm_type: MedChrgitmType = OTHER_CHRGITM_TYPE
    bas_medn_flag: bool = False
    hi_nego_drug_flag: bool = False
    chld_medc_flag: bool = False
    list_sp_item_flag: bool = False
    drt_reim_flag: bool = False

    @property
    def item_class(self) -> int:
        return CLASS_CODES[self.chrgitm_lv]

    def selfpay_for(self, psn_type: PsnType) -> int:
        return self.selfpay_prop_by_psn_type.get(psn_type, self.selfpay_prop)


class Catalogue(_Model):
    """A treatment region's catalogue version, in force from ``effective_from``."""

    version: str = Field(min_length=1)
    effective_from: dt.date
    items: list[CatalogueItem] = Field(min_length=1)

    @model_validator(mode="after")
    def _codes_unique(self) -> Catalogue:
        seen: set[str] = set()
        for item in self.items:
            if item.med_list_codg in seen:
                raise ValueError(f"med_list_codg {item.med_list_codg!r} appears twice")
            seen.add(item.med_list_codg)
        return self

    @cached_property
    def by_code(self) -> dict[str, CatalogueItem]:
        return {item.med_list_codg: item for item in self.items}


class Region(_Model):
    """A pooling region (统筹区): its benefit groups, rule sets and catalogues."""

    admdvs: Admdvs
    name: str = ""
    # The platform's clr_way (清算方式) that settlements insured here answer with: how this region's agency
    # clears them with the institution. Only answered, never computed with: "1" 按项目 (by item) by default.
    clr_way: str = Field(default="1", pattern=r"^\d{1,2}$")
    insutypes: list[Insutype] = list(INSUTYPES)
    groups: list[Group] = Field(min_length=1, max_length=MAX_GROUPS)
    rulesets: list[RuleSet] = Field(min_length=1)
    catalogues: list[Catalogue] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Region:
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise ValueError(f"groups: names repeat: {names}")
        for key, seq in (("rulesets", self.rulesets), ("catalogues", self.catalogues)):
            dates = [x.effective_from for x in seq]
            if dates != sorted(dates) or len(set(dates)) != len(dates):
                raise ValueError(f"{key}: effective_from dates must be strictly increasing, got {dates}")
        for i, rs in enumerate(self.rulesets):
            where = f"rulesets[{i}] ({rs.version})"
            for med_type, group in rs.med_type_groups.items():
                if group not in names:
                    raise ValueError(f"{where}.med_type_groups.{med_type}: unknown group {group!r} (groups: {names})")
            for j, b in enumerate(rs.benefits):
                if b.group not in names:
                    raise ValueError(f"{where}.benefits[{j}].group: unknown group {b.group!r}")
                if b.insutype not in self.insutypes:
                    raise ValueError(f"{where}.benefits[{j}].insutype: {b.insutype} is not a scheme of this region")
            for insutype in self.insutypes:
                for psn_type in PSN_TYPES_OF_INSUTYPE[insutype]:
                    for group in names:
                        matches = [
                            b
                            for b in rs.benefits
                            if b.group == group and b.insutype == insutype and psn_type in b.psn_types
                        ]
                        if len(matches) != 1:
                            raise ValueError(
                                f"{where}.benefits: group {group!r}, insutype {insutype}, psn_type {psn_type} "
                                f"has {len(matches)} benefit entries; exactly one is needed"
                            )
            for j, t in enumerate(rs.second_tier):
                bad = [g for g in t.groups if g not in names]
                if bad:
                    raise ValueError(f"{where}.second_tier[{j}].groups: unknown groups {bad}")
            if len({t.insutype for t in rs.second_tier}) != len(rs.second_tier):
                raise ValueError(f"{where}.second_tier: one entry per insutype")
            self._check_emergency_scope(where, rs.emergency_scope)
        return self

    def _check_emergency_scope(self, where: str, scope: EmergencyScope) -> None:
        """The item a relaxed class C drug is settled as: in every catalogue, class A or B, no cap, not restricted."""
        code = scope.class_c_as
        if code is None:
            return
        for cat in self.catalogues:
            item = cat.by_code.get(code)
            if item is None:
                raise ValueError(f"{where}.emergency_scope.class_c_as: {code!r} is not in catalogue {cat.version}")
            if item.chrgitm_lv == "03" or item.pric_uplmt_amt is not None or item.lmt_used_flag:
                raise ValueError(
                    f"{where}.emergency_scope.class_c_as: {code!r} must be a class A or B item (01, 02) with no "
                    f"price cap and not restricted, as catalogue {cat.version} holds it"
                )

    def group_index(self, name: str) -> int:
        return [g.name for g in self.groups].index(name)

    def ruleset_on(self, day: dt.date) -> RuleSet | None:
        """The rule set in force on ``day`` (the last one whose effective_from is not after it)."""
        chosen = None
        for rs in self.rulesets:
            if rs.effective_from <= day:
                chosen = rs
        return chosen

    def catalogue_on(self, day: dt.date) -> Catalogue | None:
        chosen = None
        for cat in self.catalogues:
            if cat.effective_from <= day:
                chosen = cat
        return chosen


class Policy(_Model):
    """Everything the engines need: the regions, each with rules and catalogues."""

    regions: list[Region] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_regions(self) -> Policy:
        codes = [r.admdvs for r in self.regions]
        if len(set(codes)) != len(codes):
            raise ValueError(f"regions: admdvs repeat: {codes}")
        return self

    def region(self, admdvs: str) -> Region:
        for r in self.regions:
            if r.admdvs == admdvs:
                return r
        raise KeyError(admdvs)

    def first_day_in_force(self) -> dt.date:
        """The first day on which every region has both a rule set and a catalogue in force (the last
        of each stays in force from its date on, so every later day is covered too)."""
        return max(max(r.rulesets[0].effective_from, r.catalogues[0].effective_from) for r in self.regions)

    def coverage(self) -> str:
        """What :meth:`first_day_in_force` rests on, in words for an error message:
        'the policy's rule sets cover 2025-2026 (130100 from 2025-01-01, 330300 from 2025-01-01)'."""
        years = sorted({rs.effective_from.year for r in self.regions for rs in r.rulesets})
        span = f"{years[0]}-{years[-1]}" if len(years) > 1 else str(years[0])
        starts = ", ".join(
            f"{r.admdvs} from {max(r.rulesets[0].effective_from, r.catalogues[0].effective_from)}" for r in self.regions
        )
        return f"the policy's rule sets cover {span} ({starts}; the latest stays in force after)"


__all__ = [
    "Account",
    "Assistance",
    "Benefit",
    "Catalogue",
    "CatalogueItem",
    "CrossRegionCut",
    "DeferredWindow",
    "Group",
    "LateEnrolment",
    "Policy",
    "Region",
    "RuleSet",
    "SecondTier",
    "TierRate",
    "PSN_TYPES",
]
