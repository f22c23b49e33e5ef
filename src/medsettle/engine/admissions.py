"""Admissions as the Settler's settlement records know them: what a cancel needs of a past admission.

The rule (docs/settlement.md 'Admissions'): an admission's deductible standard and ordinal are fixed at its
first settlement; it counts once, in the year of its first settlement; cancelling its last settlement not
yet cancelled un-counts it, whether or not a later admission has begun since. Later admissions keep the
ordinals they were settled with, and the next new admission takes the count as it then stands.

The per-person state (64 bytes, engine/state.py) holds only the admission in progress and the year's
count. What an earlier admission needs (how many of its settlements are still live, the deductible they
met) lives here instead, in one small :class:`Admission` per admission, which its settlement records
point to. The Settler's :class:`AdmissionBook` books each per-admission settlement as it is recorded and,
for a cancel, tells the engine what to do (:meth:`AdmissionBook.plan_cancel`): move the admission in
progress back (and, once it has no live settlement left, which admission is in progress instead), or
un-count an earlier admission whose last live settlement it is, or leave the count alone.

Settlements made without a record (a load run's batch, the bare fast path, a stream) cannot be cancelled.
When the book finds an admission in progress it did not see begin or go on (from the state a new
admission's row reports, or the state itself), it books it as *unrecorded*: one that never stops counting
through a cancel, since some of its settlements can never be cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .columns import CANCEL_IN_PROGRESS, CANCEL_PAST, CANCEL_PAST_LAST, COL, NO_ADMISSION

if TYPE_CHECKING:
    from .state import PersonState

_COUNTED, _DEDC = COL["adm_counted"], COL["act_pay_dedc"]
_PREV = (COL["prev_adm_id"], COL["prev_adm_ded_std"], COL["prev_adm_ded_met"], COL["prev_adm_nsetl"])


@dataclass(slots=True, eq=False)
class Admission:
    """One admission (one run of settlements of an mdtrt_id, opened by a counted settlement).

    Holds only ints and the older Admission it followed, so settlement records that point to it are
    still never part of a reference cycle (the Settler takes them out of the cyclic collector)."""

    key: int  # its mdtrt_id's admission key (AdmissionKeys)
    ded_met: int  # the deductible its live settlements met
    live: int  # its settlements not yet cancelled
    before: Admission | None  # the admission in progress when it began: in progress again if this one is
    # cancelled away while in progress (settle then cancel gives back the state)
    ded_std: int = 0  # its deductible standard; learnt when a later admission begins after it
    # (only an admission some later one began after is ever put back in progress)
    unrecorded: bool = False  # some of its settlements have no record (so it never stops counting)

    def as_state(self) -> tuple[int, int, int, int]:
        """(adm_id, adm_ded_std, adm_ded_met, adm_nsetl) of the state with this admission in progress."""
        return self.key, self.ded_std, self.ded_met, self.live


class AdmissionBook:
    """Which admission is in progress for each person with a recorded per-admission settlement."""

    def __init__(self) -> None:
        self._in_progress: dict[int, Admission] = {}

    def settled(self, person: int, adm: int, row: list[int], state_now: Callable[[], PersonState]) -> Admission:
        """Book a per-admission settlement just recorded (``row``: its result row as ints); return its
        admission. ``state_now()`` gives the person's state, asked only when the book is behind it."""
        current = self._in_progress.get(person)
        dedc = row[_DEDC]
        if row[_COUNTED]:  # it began a new admission, after the one the state had in progress
            prev_id, prev_std, prev_met, prev_nsetl = (row[c] for c in _PREV)
            if prev_nsetl > 0 and current is not None and current.key == prev_id:
                if (current.live, current.ded_met) != (prev_nsetl, prev_met):  # went on without a record
                    current.unrecorded = True
                    current.live, current.ded_met = prev_nsetl, prev_met
                current.ded_std = prev_std
                before = current
            else:  # nothing was in progress, or one the book did not see begin
                before = Admission(prev_id, prev_met, prev_nsetl, None, prev_std, unrecorded=prev_nsetl > 0)
            admission = Admission(adm, dedc, 1, before)
            self._in_progress[person] = admission
            return admission
        if current is None or current.key != adm or current.live == 0:
            # It went on with an admission the book did not see begin: book that one as the state has it.
            state = state_now()
            current = Admission(
                adm, state.adm_ded_met - dedc, max(1, state.adm_nsetl) - 1, None, state.adm_ded_std, unrecorded=True
            )
            self._in_progress[person] = current
        current.live += 1
        current.ded_met += dedc
        return current

    def plan_cancel(
        self, person: int, admission: Admission | None, state: PersonState
    ) -> tuple[int, tuple[int, int, int, int]]:
        """(role, restore) for the engine's cancel of a live settlement of ``admission``, the person's
        ``state`` being as it is now. Changes nothing (the engine may still refuse the cancel)."""
        if admission is None:  # recorded before the book knew it: leave the count alone
            return CANCEL_PAST, NO_ADMISSION
        if self._is_in_progress(person, admission, state):
            return CANCEL_IN_PROGRESS, self._restore_after(admission)
        last = admission.live == 1 and not admission.unrecorded
        return (CANCEL_PAST_LAST if last else CANCEL_PAST), NO_ADMISSION

    def cancelled(self, person: int, admission: Admission | None, dedc: int, role: int) -> None:
        """Book a cancel the engine made with :meth:`plan_cancel`'s role."""
        if admission is None:
            return
        admission.live -= 1
        admission.ded_met -= dedc
        if role == CANCEL_IN_PROGRESS and admission.live == 0 and not admission.unrecorded:
            restored = self._live_before(admission)
            if restored is None:
                self._in_progress.pop(person, None)
            else:
                self._in_progress[person] = restored

    # -- rolling back (a journal that refused the change) -----------------------------------------

    def snapshot(self, person: int, *also: Admission | None) -> tuple:
        """What :meth:`settled` or :meth:`cancelled` may change for ``person`` (and the admissions given)."""
        current = self._in_progress.get(person)
        touched = {id(a): a for a in (current, *also) if a is not None}
        return person, current, [(a, a.live, a.ded_met) for a in touched.values()]

    def restore(self, snapshot: tuple) -> None:
        person, current, saved = snapshot
        if current is None:
            self._in_progress.pop(person, None)
        else:
            self._in_progress[person] = current
        for admission, live, ded_met in saved:
            admission.live, admission.ded_met = live, ded_met

    # -- helpers ----------------------------------------------------------------------------------

    def _is_in_progress(self, person: int, admission: Admission, state: PersonState) -> bool:
        """The book's admission in progress, and the state agrees (nothing settled since without a record)."""
        if self._in_progress.get(person) is not admission or state.adm_id != admission.key or not state.adm_nsetl:
            return False
        return admission.unrecorded or (state.adm_nsetl, state.adm_ded_met) == (admission.live, admission.ded_met)

    def _restore_after(self, admission: Admission) -> tuple[int, int, int, int]:
        """The state's admission fields once ``admission`` has no live settlement left: the latest one it
        followed that still has one, else those it found when it began, with nothing in progress."""
        restored = self._live_before(admission)
        if restored is not None:
            return restored.as_state()
        before = admission.before
        return NO_ADMISSION if before is None else (before.key, before.ded_std, before.ded_met, 0)

    @staticmethod
    def _live_before(admission: Admission) -> Admission | None:
        before = admission.before
        while before is not None and before.live == 0:
            before = before.before
        return before
