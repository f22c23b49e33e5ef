"""Seeded, vectorised bill streams over a population: the input of `medsettle demo` and the benchmarks.

A stream has 1-8 lines per bill (mean 4), med types in realistic proportions (general outpatient most,
pharmacy sales next, few admissions), institutions of every tier, 5% of bills treated in another
region, and persons drawn uniformly or by Zipf (s = 1: a few persons have many bills). The same seed
gives the same stream. Nothing here settles anything.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

import numpy as np

from ..engine.bills import BillBatch
from ..engine.persons import Population
from ..policy.codes import MED_TYPE_INDEX, MED_TYPES, TIER_INDEX, TIER_NAMES
from ..policy.compile import CompiledPolicy
from ..timeutil import day_number, from_day_number

MED_TYPE_SHARES = {"11": 0.55, "13": 0.05, "14": 0.10, "21": 0.05, "41": 0.25}
CROSS_REGION_SHARE = 0.05


@dataclass
class BillStream:
    """A generated batch plus what is needed to write it out as platform bills."""

    batch: BillBatch
    compiled: CompiledPolicy
    population: Population

    def bill_dict(self, i: int) -> dict[str, object]:
        """Bill ``i`` with the platform's field names (amounts as exact decimal strings)."""
        b = self.batch
        a, z = int(b.line_start[i]), int(b.line_start[i + 1])
        day = from_day_number(int(b.day[i]))
        return {
            "bill_id": f"G{i:010d}",
            "psn_no": self.population.psn_nos[int(b.person[i])],
            "mdtrt_id": f"MD{int(b.adm[i]):010d}",
            "med_type": MED_TYPES[b.med_type[i]],
            "setl_time": f"{day.isoformat()} {9 + i % 9:02d}:{i % 60:02d}:00",
            "hosp_lv": TIER_NAMES[b.tier[i]],
            "mdtrtarea_admvs": self.compiled.region_codes[b.treat_region[i]],
            "acct_used_flag": str(int(b.acct_flag[i])),
            "feedetail": [
                {
                    "feedetl_sn": str(j - a + 1),
                    "med_list_codg": self.compiled.item_codes[b.item[j]],
                    "pric": str(Decimal(int(b.pric[j])).scaleb(-4)),
                    "cnt": str(Decimal(int(b.cnt[j])).scaleb(-4)),
                    "hosp_appr_flag": str(int(b.appr[j])),
                }
                for j in range(a, z)
            ],
        }


def item_prices(compiled: CompiledPolicy, seed: int = 7) -> np.ndarray:
    """A list price per catalogue item (0.0001 yuan): log-normal, near the cap where the item has one."""
    rng = np.random.default_rng(seed)
    n = len(compiled.item_class)
    price = np.exp(rng.normal(np.log(15.0), 1.0, n))  # ok-float: generating illustrative prices
    units = np.clip((price * 100).astype(np.int64) * 100, 100, 10**8)  # whole fen, 0.01-10000 yuan
    has_cap = compiled.item_cap >= 0
    near_cap = (compiled.item_cap * rng.uniform(0.85, 1.15, n)).astype(np.int64) // 100 * 100
    return np.where(has_cap, np.maximum(near_cap, 100), units)


def generate_bills(
    compiled: CompiledPolicy,
    population: Population,
    n_bills: int,
    *,
    seed: int = 0,
    start: dt.date = dt.date(2026, 3, 2),
    days: int = 1,
    persons: Literal["uniform", "zipf"] = "uniform",
    lines_max: int = 8,
) -> BillStream:
    """n_bills bills dated ``start`` .. ``start + days - 1`` (in date order), persons drawn as asked."""
    rng = np.random.default_rng(seed)
    n_persons = len(population)
    if n_persons == 0:
        raise ValueError("the population is empty")
    if persons == "uniform":
        person = rng.integers(0, n_persons, n_bills, dtype=np.int64)
    elif persons == "zipf":
        person = _zipf_ranks(rng, n_persons, n_bills)
    else:
        raise ValueError(f"persons must be uniform or zipf, not {persons!r}")
    person = person.astype(np.int32)
    insured = population.attrs["region"][person].astype(np.int16)
    n_regions = len(compiled.region_codes)
    cross = rng.random(n_bills) < CROSS_REGION_SHARE
    treat_region = np.where(cross, (insured + rng.integers(1, max(n_regions, 2), n_bills)) % n_regions, insured).astype(
        np.int16
    )
    codes = list(MED_TYPE_SHARES)
    med_code = rng.choice(len(codes), n_bills, p=list(MED_TYPE_SHARES.values()))
    med_type = np.array([MED_TYPE_INDEX[c] for c in codes], np.uint8)[med_code]
    pharmacy = med_type == MED_TYPE_INDEX["41"]
    tier = np.where(pharmacy, TIER_INDEX["pharmacy"], rng.integers(1, 4, n_bills)).astype(np.uint8)
    day0 = day_number(start)
    _check_in_force(compiled, day0, start)
    day = (day0 + np.sort(rng.integers(0, days, n_bills))).astype(np.int32)

    # 1..lines_max lines, mean about 4 (a binomial shifted by one).
    counts = 1 + rng.binomial(lines_max - 1, 3 / (lines_max - 1) if lines_max > 1 else 0, n_bills)
    line_start = np.zeros(n_bills + 1, np.int64)
    np.cumsum(counts, out=line_start[1:])
    n_lines = int(line_start[-1])
    line_region = np.repeat(treat_region, counts)
    line_day = np.repeat(day, counts)
    item = np.empty(n_lines, np.int32)
    prices = item_prices(compiled)
    # Items come from the treatment region's catalogue in force on the bill's date; cheap items are
    # billed more often than dear ones (weight 1/price^0.8), as at a real counter.
    for r in range(n_regions):
        for from_day, lookup in compiled.catalogue_index[r]:
            idx = np.fromiter(lookup.values(), np.int32)
            to_day = int(compiled.item_to_day[idx[0]])
            mask = (line_region == r) & (line_day >= from_day) & (line_day < to_day)
            weight = prices[idx].astype(np.float64) ** -0.8  # ok-float: sampling weights
            item[mask] = rng.choice(idx, int(mask.sum()), p=weight / weight.sum())
    pric = prices[item]
    cnt = rng.choice(np.array([10_000, 10_000, 10_000, 20_000, 30_000, 5_000, 15_000], np.int64), n_lines)
    appr = (rng.random(n_lines) < 0.5).astype(np.uint8)
    acct_flag = (rng.random(n_bills) < 0.9).astype(np.uint8)
    adm = np.arange(n_bills, dtype=np.int32)
    batch = BillBatch.from_columns(
        person=person,
        day=day,
        med_type=med_type,
        tier=tier,
        treat_region=treat_region,
        acct_flag=acct_flag,
        adm=adm,
        line_start=line_start,
        item=item,
        pric=pric,
        cnt=cnt,
        appr=appr,
    )
    return BillStream(batch, compiled, population)


def _check_in_force(compiled: CompiledPolicy, day0: int, start: dt.date) -> None:
    """Items are drawn from the catalogue in force, so every region needs one (and a rule set) from
    ``start`` on; otherwise the draw would index nothing."""
    for r, code in enumerate(compiled.region_codes):
        first_rules = int(compiled.rs_from_day[compiled.region_rs_start[r]])
        first_catalogue = compiled.catalogue_index[r][0][0]
        first = max(first_rules, first_catalogue)
        if day0 < first:
            raise ValueError(
                f"start {start}: region {code} has no rule set and catalogue in force before {from_day_number(first)}"
            )


def _zipf_ranks(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Zipf with s = 1 over n persons (P(rank k) ∝ 1/k), by inverting the continuous CDF, then a fixed
    shuffle so the busiest persons are spread over the state array rather than packed at its start."""
    u = rng.random(size)
    ranks = np.minimum(np.exp(u * np.log(n + 1)).astype(np.int64) - 1, n - 1)  # ok-float: sampling only
    spread = np.random.default_rng(12345).permutation(n)
    return spread[ranks]
