"""Compile a :class:`Policy` to the flat arrays the Cython core loops over.

Nothing here decides a rule: every number is copied from the models. Shapes (S rule sets, R regions,
I catalogue items; g group, s scheme, p person type, t tier, o admission ordinal):

    region_rs_start/count  int32[R]              rule sets of a region, oldest first
    rs_from_day            int32[S]              effective_from as a day number
    rs_group_of_mt         int8[S, 5]            benefit group of each med type
    region_group_basis     int8[R, 3]            1 = per-admission deductible, 0 = annual
    rs_deductible          int32[S, 3, 2, 4, 4, 3]
    rs_ratio               int32[S, 3, 2, 4, 4]  pooled ratio, bp (0 where a tier is not listed)
    rs_ceiling             int32[S, 3, 2, 4]
    rs_t2_mask             uint8[S, 2]           bit g set: second tier covers group g
    rs_t2_ratio / _cap     int32[S, 2]; rs_t2_threshold int64[S, 2]
    rs_misc                int32[S, 7]           see MISC_* below
    item_class             uint8[I]; item_restricted uint8[I]; item_cap int64[I] (-1 = no cap)
    item_selfpay           int32[I, 4]           self-pay-first ratio per person type, bp
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..timeutil import day_number
from .codes import (
    ADMISSION_ORDINALS,
    INSUTYPE_INDEX,
    INSUTYPES,
    MAX_GROUPS,
    MED_TYPE_INDEX,
    MED_TYPES,
    PSN_TYPE_INDEX,
    PSN_TYPES,
    TIER_INDEX,
)
from .models import Policy

# Columns of rs_misc.
MISC_MAF_RATIO, MISC_MAF_CAP, MISC_ACCT_MT_MASK, MISC_ACCT_COVERED, MISC_CUT_EMERG, MISC_CUT_OTHER, MISC_WAITING = (
    range(7)
)
N_MISC = 7


@dataclass
class CompiledPolicy:
    region_codes: tuple[str, ...]
    region_rs_start: np.ndarray
    region_rs_count: np.ndarray
    region_group_basis: np.ndarray
    rs_from_day: np.ndarray
    rs_group_of_mt: np.ndarray
    rs_deductible: np.ndarray
    rs_ratio: np.ndarray
    rs_ceiling: np.ndarray
    rs_t2_mask: np.ndarray
    rs_t2_ratio: np.ndarray
    rs_t2_cap: np.ndarray
    rs_t2_threshold: np.ndarray
    rs_misc: np.ndarray
    item_class: np.ndarray
    item_restricted: np.ndarray
    item_cap: np.ndarray
    item_selfpay: np.ndarray
    item_codes: list[str]
    item_region: np.ndarray  # int16[I]: the treatment region whose catalogue holds the item
    item_from_day: np.ndarray  # int32[I]: that catalogue version is in force from this day...
    item_to_day: np.ndarray  # int32[I]: ...until the day before this one
    # (region index) -> list of (from_day, {code: global item index}), oldest first
    catalogue_index: list[list[tuple[int, dict[str, int]]]] = field(default_factory=list)

    def region_index(self, admdvs: str) -> int:
        try:
            return self.region_codes.index(admdvs)
        except ValueError:
            raise KeyError(admdvs) from None

    def item_lookup(self, region: int, day: int) -> dict[str, int] | None:
        """The treatment region's catalogue in force on ``day`` as {code: item index}, or None."""
        chosen = None
        for from_day, codes in self.catalogue_index[region]:
            if from_day <= day:
                chosen = codes
        return chosen


def compile_policy(policy: Policy) -> CompiledPolicy:
    rulesets = [(r_i, rs) for r_i, region in enumerate(policy.regions) for rs in region.rulesets]
    n_rs, n_regions = len(rulesets), len(policy.regions)
    shape_gspt = (n_rs, MAX_GROUPS, len(INSUTYPES), len(PSN_TYPES), len(TIER_INDEX))
    c: dict[str, np.ndarray] = dict(  # the rule sets' arrays, by CompiledPolicy field
        region_rs_start=np.zeros(n_regions, np.int32),
        region_rs_count=np.zeros(n_regions, np.int32),
        region_group_basis=np.zeros((n_regions, MAX_GROUPS), np.int8),
        rs_from_day=np.zeros(n_rs, np.int32),
        rs_group_of_mt=np.zeros((n_rs, len(MED_TYPES)), np.int8),
        rs_deductible=np.zeros(shape_gspt + (ADMISSION_ORDINALS,), np.int32),
        rs_ratio=np.zeros(shape_gspt, np.int32),
        rs_ceiling=np.zeros(shape_gspt[:4], np.int32),
        rs_t2_mask=np.zeros((n_rs, len(INSUTYPES)), np.uint8),
        rs_t2_ratio=np.zeros((n_rs, len(INSUTYPES)), np.int32),
        rs_t2_cap=np.zeros((n_rs, len(INSUTYPES)), np.int32),
        rs_t2_threshold=np.zeros((n_rs, len(INSUTYPES)), np.int64),
        rs_misc=np.zeros((n_rs, N_MISC), np.int32),
    )
    s = 0
    for r_i, region in enumerate(policy.regions):
        c["region_rs_start"][r_i] = s
        c["region_rs_count"][r_i] = len(region.rulesets)
        for g_i, group in enumerate(region.groups):
            c["region_group_basis"][r_i, g_i] = 1 if group.deductible_basis == "admission" else 0
        for rs in region.rulesets:
            c["rs_from_day"][s] = day_number(rs.effective_from)
            for mt, group_name in rs.med_type_groups.items():
                c["rs_group_of_mt"][s, MED_TYPE_INDEX[mt]] = region.group_index(group_name)
            for b in rs.benefits:
                g = region.group_index(b.group)
                sch = INSUTYPE_INDEX[b.insutype]
                for p in b.psn_types:
                    pt = PSN_TYPE_INDEX[p]
                    c["rs_ceiling"][s, g, sch, pt] = b.ceiling
                    for tier_name, rate in b.tiers.items():
                        t = TIER_INDEX[tier_name]
                        c["rs_ratio"][s, g, sch, pt, t] = rate.ratio
                        for o in range(ADMISSION_ORDINALS):
                            c["rs_deductible"][s, g, sch, pt, t, o] = rate.deductible_for(o + 1)
            for t2 in rs.second_tier:
                sch = INSUTYPE_INDEX[t2.insutype]
                c["rs_t2_mask"][s, sch] = sum(1 << region.group_index(g) for g in set(t2.groups))
                c["rs_t2_ratio"][s, sch] = t2.ratio
                c["rs_t2_cap"][s, sch] = t2.annual_cap
                c["rs_t2_threshold"][s, sch] = t2.threshold
            misc = c["rs_misc"][s]
            misc[MISC_MAF_RATIO] = rs.assistance.ratio
            misc[MISC_MAF_CAP] = rs.assistance.annual_cap
            misc[MISC_ACCT_MT_MASK] = sum(1 << MED_TYPE_INDEX[m] for m in set(rs.account.med_types))
            misc[MISC_ACCT_COVERED] = 1 if rs.account.scope == "covered" else 0
            misc[MISC_CUT_EMERG] = rs.cross_region_cut.emergency
            misc[MISC_CUT_OTHER] = rs.cross_region_cut.other
            misc[MISC_WAITING] = rs.waiting_months
            s += 1

    items = [
        (r_i, cat_i, item)
        for r_i, region in enumerate(policy.regions)
        for cat_i, cat in enumerate(region.catalogues)
        for item in cat.items
    ]
    n_items = len(items)
    item_class = np.zeros(n_items, np.uint8)
    item_restricted = np.zeros(n_items, np.uint8)
    item_cap = np.full(n_items, -1, np.int64)
    item_selfpay = np.zeros((n_items, len(PSN_TYPES)), np.int32)
    catalogue_index: list[list[tuple[int, dict[str, int]]]] = [
        [(day_number(cat.effective_from), {}) for cat in region.catalogues] for region in policy.regions
    ]
    item_region = np.zeros(n_items, np.int16)
    item_from_day = np.zeros(n_items, np.int32)
    item_to_day = np.full(n_items, np.iinfo(np.int32).max, np.int32)
    for idx, (r_i, cat_i, item) in enumerate(items):
        cats = policy.regions[r_i].catalogues
        item_region[idx] = r_i
        item_from_day[idx] = day_number(cats[cat_i].effective_from)
        if cat_i + 1 < len(cats):
            item_to_day[idx] = day_number(cats[cat_i + 1].effective_from)
        item_class[idx] = item.item_class
        item_restricted[idx] = 1 if item.lmt_used_flag else 0
        if item.pric_uplmt_amt is not None:
            item_cap[idx] = item.pric_uplmt_amt
        for p_i, p in enumerate(PSN_TYPES):
            item_selfpay[idx, p_i] = item.selfpay_for(p)
        catalogue_index[r_i][cat_i][1][item.med_list_codg] = idx

    return CompiledPolicy(
        region_codes=tuple(r.admdvs for r in policy.regions),
        item_class=item_class,
        item_restricted=item_restricted,
        item_cap=item_cap,
        item_selfpay=item_selfpay,
        item_codes=[item.med_list_codg for _, _, item in items],
        item_region=item_region,
        item_from_day=item_from_day,
        item_to_day=item_to_day,
        catalogue_index=catalogue_index,
        **c,
    )


def ruleset_index_on(compiled: CompiledPolicy, region: int, day: int) -> int:
    """Index of the rule set in force in ``region`` on ``day``, or -1 (NO_RULES_IN_FORCE)."""
    start = int(compiled.region_rs_start[region])
    chosen = -1
    for s in range(start, start + int(compiled.region_rs_count[region])):
        if compiled.rs_from_day[s] <= day:
            chosen = s
    return chosen
