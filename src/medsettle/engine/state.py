"""Per-person mutable settlement state: one 64-byte record per person (docs/settlement.md accumulators).

The core keeps a numpy structured array with :data:`STATE_DTYPE` and reads it as a C struct of the
same layout (ext/_core.pyx ``PersonState``); the reference engine keeps :class:`PersonState` objects.
Both convert to and from each other so tests can compare them field by field.

Layout (64 bytes, naturally aligned):

    balance        int64   personal account balance, fen
    t2_base        int64   residents' year running total T of in-scope self-paid amount (大病 base)
    ded_met[3]     int32   deductible met this year, per benefit group (annual groups)
    pooled_paid[3] int32   pooled fund paid this year, per benefit group
    t2_paid        int32   second tier (大额 or 大病) paid this year
    maf_paid       int32   medical assistance paid this year
    adm_id         int32   key of the admission in progress (its mdtrt_id), -1 none
    adm_ded_std    int32   that admission's deductible standard, fixed at its first settlement
    adm_ded_met    int32   deductible met by that admission (survives a year rollover)
    adm_nsetl      uint16  live (not cancelled) settlements of that admission
    adm_count      uint8   admissions counted in the accumulator year
    acc_year       uint8   accumulator year - 1900; 0 = no bill settled yet

Only the admission in progress is here. What cancelling needs of an earlier one (its live settlements,
the deductible they met) lives with its settlement records (engine/admissions.py), not in this record.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field

import numpy as np

from ..policy.codes import MAX_GROUPS

# Bill years and the admission limits are bounds (bounds.py); named here too for their importers.
from .bounds import MAX_ADMISSIONS_PER_YEAR, MAX_SETTLEMENTS_PER_ADMISSION, MAX_YEAR, MIN_YEAR  # noqa: F401

STATE_DTYPE = np.dtype(
    [
        ("balance", "<i8"),
        ("t2_base", "<i8"),
        ("ded_met", "<i4", (MAX_GROUPS,)),
        ("pooled_paid", "<i4", (MAX_GROUPS,)),
        ("t2_paid", "<i4"),
        ("maf_paid", "<i4"),
        ("adm_id", "<i4"),
        ("adm_ded_std", "<i4"),
        ("adm_ded_met", "<i4"),
        ("adm_nsetl", "<u2"),
        ("adm_count", "u1"),
        ("acc_year", "u1"),
    ]
)
assert STATE_DTYPE.itemsize == 64, STATE_DTYPE.itemsize

HUGE_PAGE = 2 * 1024 * 1024
YEAR_BASE = 1900


@dataclass
class PersonState:
    """The reference engine's view of one person's mutable state; ``acc_year`` is the calendar year."""

    balance: int = 0
    t2_base: int = 0
    ded_met: list[int] = field(default_factory=lambda: [0] * MAX_GROUPS)
    pooled_paid: list[int] = field(default_factory=lambda: [0] * MAX_GROUPS)
    t2_paid: int = 0
    maf_paid: int = 0
    adm_id: int = -1
    adm_ded_std: int = 0
    adm_ded_met: int = 0
    adm_nsetl: int = 0
    adm_count: int = 0
    acc_year: int = 0  # 0 = no bill settled yet

    def copy(self) -> PersonState:
        return PersonState(
            self.balance,
            self.t2_base,
            list(self.ded_met),
            list(self.pooled_paid),
            self.t2_paid,
            self.maf_paid,
            self.adm_id,
            self.adm_ded_std,
            self.adm_ded_met,
            self.adm_nsetl,
            self.adm_count,
            self.acc_year,
        )

    @classmethod
    def from_record(cls, rec: np.void) -> PersonState:
        return cls(
            balance=int(rec["balance"]),
            t2_base=int(rec["t2_base"]),
            ded_met=[int(x) for x in rec["ded_met"]],
            pooled_paid=[int(x) for x in rec["pooled_paid"]],
            t2_paid=int(rec["t2_paid"]),
            maf_paid=int(rec["maf_paid"]),
            adm_id=int(rec["adm_id"]),
            adm_ded_std=int(rec["adm_ded_std"]),
            adm_ded_met=int(rec["adm_ded_met"]),
            adm_nsetl=int(rec["adm_nsetl"]),
            adm_count=int(rec["adm_count"]),
            acc_year=int(rec["acc_year"]) + YEAR_BASE if rec["acc_year"] else 0,
        )

    def to_record(self) -> tuple:
        return (
            self.balance,
            self.t2_base,
            tuple(self.ded_met),
            tuple(self.pooled_paid),
            self.t2_paid,
            self.maf_paid,
            self.adm_id,
            self.adm_ded_std,
            self.adm_ded_met,
            self.adm_nsetl,
            self.adm_count,
            self.acc_year - YEAR_BASE if self.acc_year else 0,
        )


def aligned_zeros(n: int, dtype: np.dtype, align: int = 64) -> np.ndarray:
    """A zeroed array whose first record starts on an ``align``-byte boundary.

    numpy aligns to 16 bytes only; a 64-byte record that straddles two cache lines costs two memory
    accesses instead of one (and a prefetch brings only one), which halves the core's speed on large
    populations.
    """
    dtype = np.dtype(dtype)
    size = n * dtype.itemsize
    if size >= HUGE_PAGE:
        # Large tables: an anonymous mapping (page-aligned, zeroed by the kernel) with transparent huge
        # pages asked for, so random access over gigabytes of state does not miss the TLB on every bill.
        buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_HUGEPAGE"):
            buf.madvise(mmap.MADV_HUGEPAGE)
        return np.frombuffer(buf, dtype=dtype, count=n)
    raw = np.zeros(size + align, dtype=np.uint8)
    offset = (-raw.ctypes.data) % align
    return raw[offset : offset + size].view(dtype)


def new_state_array(balances: np.ndarray) -> np.ndarray:
    """A fresh state array (64-byte aligned): given balances, nothing accumulated, no admission."""
    state = aligned_zeros(len(balances), STATE_DTYPE)
    reset_state(state, balances)
    return state


def reset_state(state: np.ndarray, balances: np.ndarray) -> None:
    """Re-initialise a state array in place (benchmarks do this between rounds)."""
    state.view(np.uint8)[:] = 0
    state["balance"] = balances
    state["adm_id"] = -1
