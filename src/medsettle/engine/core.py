"""The Cython core behind the same interface as the reference engine (a thin, checking shell).

Like scikit-learn's loss.py over _loss.pyx: this class owns the arrays, allocates outputs and hands
validated columns to the kernel, which only loops.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..policy.compile import CompiledPolicy
from ..policy.models import Policy
from .backends import REBUILD_HINT, CoreUnavailable, core_module, core_problem
from .bills import BillBatch
from .bounds import COMPILED_BOUNDS
from .columns import CANCEL_ROLES, COLUMNS, LINE_COLUMNS, N_COLUMNS, NARROW_COLUMNS
from .persons import ATTR_DTYPE, Population
from .state import STATE_DTYPE, PersonState, aligned_zeros, new_state_array, reset_state

if TYPE_CHECKING:
    from .backends import CoreSession


def build_mismatch(core: ModuleType, plain: ModuleType | None = None) -> str | None:
    """Why a compiled core (and its quick route) that import do not fit these sources (built from an older
    checkout), or None. backends asks this before choosing the core, so 'auto' falls back and says why
    instead of failing here."""
    try:
        if tuple(core.COLUMN_NAMES) != COLUMNS:
            return "the Cython core was built from other sources (its result columns differ)"
        if tuple(getattr(core, "CANCEL_ROLES", ())) != CANCEL_ROLES:
            return "the Cython core was built from other sources (its cancel differs)"
        sizes = core.layout_sizes()
    except AttributeError as exc:
        return f"the Cython core was built from other sources ({exc})"
    if sizes != {"PersonState": STATE_DTYPE.itemsize, "PersonAttrs": ATTR_DTYPE.itemsize}:
        return f"the Cython core was built from other sources (record sizes {sizes})"
    for module in (core, plain):
        if module is not None and getattr(module, "BOUNDS", None) != COMPILED_BOUNDS:
            return (
                f"the Cython core was built from other sources ({module.__name__}'s bounds differ from "
                "medsettle.engine.bounds)"
            )
    return None


class CoreEngine:
    """Settles batches with medsettle._core over a 64-byte-per-person state array."""

    name: ClassVar[str] = "core"

    def __init__(
        self, policy: Policy, compiled: CompiledPolicy, population: Population, core: ModuleType | None = None
    ) -> None:
        """``core`` is medsettle._core by default (from backends, the one place it is imported)."""
        if core is None:
            core = core_module()
            if core is None:
                raise CoreUnavailable(f"the core engine was asked for, but {core_problem()}")
        mismatch = build_mismatch(core)
        if mismatch:
            raise CoreUnavailable(f"{mismatch}; {REBUILD_HINT}")
        self._core = core
        self.policy = policy
        self.compiled = compiled
        self.population = population
        self._policy = core.CorePolicy(compiled)
        self.state = new_state_array(population.balances)
        self._state_buf = self.state  # room to grow into (add_person)

    def run(
        self,
        batch: BillBatch,
        *,
        presettle: bool = False,
        narrow: bool = False,
        out: np.ndarray | None = None,
        line_out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Settle a validated batch. ``out``/``line_out`` may be given to reuse buffers across batches
        (the kernel checks their shapes); otherwise they are allocated here."""
        if out is None:
            out = np.empty((len(batch), len(NARROW_COLUMNS) if narrow else N_COLUMNS), np.int64)
        if narrow:
            line_out = None
        elif line_out is None:
            line_out = np.empty((len(batch.item), len(LINE_COLUMNS)), np.int64)
        self._core.run(
            self._policy,
            self.population.attrs.view(np.uint8),
            self.state.view(np.uint8),
            batch.person,
            batch.day,
            batch.year,
            batch.month,
            batch.med_type,
            batch.tier,
            batch.treat_region,
            batch.acct_flag,
            batch.adm,
            batch.saf_cash,
            batch.line_start,
            batch.item,
            batch.pric,
            batch.cnt,
            batch.appr,
            out,
            line_out,
            presettle,
        )
        return out, line_out

    def session(self) -> CoreSession:
        """A single-bill Session of the kernel over this engine's policy, persons and state (the fast path's)."""
        return self._core.Session(self._policy, self.population.attrs, self.state, len(self.compiled.region_codes))

    def add_person(self) -> None:
        """Make room for the person just appended to the population (state grows by doubling, like it)."""
        n = len(self.population)
        if n > len(self._state_buf):
            grown = aligned_zeros(max(16, 2 * len(self._state_buf)), STATE_DTYPE)
            grown[: len(self.state)] = self.state
            self._state_buf = grown
        self.state = self._state_buf[:n]
        reset_state(self.state[n - 1 : n], self.population.balances[n - 1 : n])

    def cancel(
        self, person: int, original: np.ndarray, role: int, restore: tuple[int, int, int, int]
    ) -> tuple[int, int]:
        """As ReferenceEngine.cancel: ``role`` (columns.CANCEL_*) says what happens to the admission."""
        status, balance = self._core.cancel(
            self.state.view(np.uint8), person, np.ascontiguousarray(original, np.int64), role, tuple(restore)
        )
        return int(status), int(balance)

    def get_state(self, person: int) -> PersonState:
        return PersonState.from_record(self.state[person])

    def set_state(self, person: int, state: PersonState) -> None:
        self.state[person] = state.to_record()

    def reset(self) -> None:
        reset_state(self.state, self.population.balances)
