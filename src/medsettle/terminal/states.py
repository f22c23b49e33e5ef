"""The states a sale, visit or stay goes through at the counter, and which step may follow which.

A state is stored in the journal's ``sales`` table as its value, exactly the strings journals have always
held, so a journal written before opens and resumes unchanged. The stay's steps are stored as ``stay <step>``
(``stay 2401``, ``stay 2301#2``, ``stay 2304#1``, ...): one state, :attr:`SaleState.STAY_STEP`, whose stored
form carries the step's key (the key is also in the stay's ``steps``).

Every write of a state goes through :meth:`CounterStore.put_sale
<medsettle.terminal.store.CounterStore.put_sale>`, which checks :func:`check_transition`: a flow that
would take a sale where no flow may take it (a refused sale settled, a cancelled one deferred) raises
:class:`IllegalTransition` before anything is written. Writing a sale's own state again (its data changed) is
always allowed.
"""

from __future__ import annotations

from enum import StrEnum

from ..errors import MedsettleError


class SaleState(StrEnum):
    """Where a sale, visit or stay is (its value is what the journal stores)."""

    NEW = "new"  # recorded, nothing settled; a crash here makes it a voucher on restart
    IDENTIFIED = "identified"  # the person is known (a visit or stay, before its first step)
    SETTLING = "settling"  # the pharmacy settle (2102) is written: resent until answered or abandoned
    SETTLED = "settled"  # the settle is answered, the receipt not yet printed
    DONE = "done"  # the receipt is printed
    DEFERRED = "deferred"  # cash taken against a voucher
    PROVISIONAL = "provisional"  # settled provisionally (store-and-forward), queued to be forwarded
    CANCELLING = "cancelling"  # the cancel (2103/2208) is written
    CANCELLED = "cancelled"  # cancelled: its mirror is recorded
    REFUSED = "refused"  # the centre refused the person, an item or the settle: nothing owed
    ABORTED = "aborted"  # the card was taken out before the settle was sent: nothing happened
    VISIT_2201 = "visit 2201"  # an outpatient visit's registration is written
    VISIT_2203 = "visit 2203"  # ... its visit and diagnosis
    VISIT_2204 = "visit 2204"  # ... its fee upload
    VISIT_2207 = "visit 2207"  # ... its settle
    STAY_STEP = "stay"  # a stay's step is written; stored as "stay <step>"
    STAY_DEFERRED = "stay deferred"  # a stay's final settlement is being abandoned for cash and a voucher

    @classmethod
    def parse(cls, stored: str) -> SaleState:
        """The state a stored string names (``stay 2301#1`` is :attr:`STAY_STEP`)."""
        if stored.startswith("stay ") and stored != cls.STAY_DEFERRED.value:
            return cls.STAY_STEP
        return cls(stored)

    def stored(self, step: str | None = None) -> str:
        """The string the journal stores for this state (a stay's step carries its key)."""
        if self is SaleState.STAY_STEP:
            if not step:
                raise ValueError("a stay's step state names its step")
            return f"stay {step}"
        if step:
            raise ValueError(f"state {self.value!r} has no step")
        return self.value


_VISIT = (SaleState.VISIT_2201, SaleState.VISIT_2203, SaleState.VISIT_2204, SaleState.VISIT_2207)

# state -> the states a flow may write next (besides writing the same state again)
TRANSITIONS: dict[SaleState | None, frozenset[SaleState]] = {
    None: frozenset({SaleState.NEW}),  # a sale, visit or stay begins
    SaleState.NEW: frozenset(
        {
            SaleState.IDENTIFIED,
            SaleState.SETTLING,
            SaleState.DEFERRED,
            SaleState.PROVISIONAL,
            SaleState.REFUSED,
            SaleState.ABORTED,
        }
    ),
    SaleState.IDENTIFIED: frozenset(
        {SaleState.VISIT_2201, SaleState.STAY_STEP, SaleState.DEFERRED, SaleState.PROVISIONAL, SaleState.REFUSED}
    ),
    SaleState.SETTLING: frozenset({SaleState.SETTLED, SaleState.REFUSED, SaleState.DEFERRED}),
    SaleState.SETTLED: frozenset({SaleState.DONE, SaleState.CANCELLING}),
    SaleState.DONE: frozenset({SaleState.CANCELLING}),
    SaleState.CANCELLING: frozenset({SaleState.CANCELLED}),
    SaleState.VISIT_2201: frozenset({SaleState.VISIT_2203, SaleState.REFUSED, SaleState.DEFERRED}),
    SaleState.VISIT_2203: frozenset({SaleState.VISIT_2204, SaleState.REFUSED, SaleState.DEFERRED}),
    SaleState.VISIT_2204: frozenset({SaleState.VISIT_2207, SaleState.REFUSED, SaleState.DEFERRED}),
    SaleState.VISIT_2207: frozenset({SaleState.SETTLED, SaleState.REFUSED, SaleState.DEFERRED}),
    SaleState.STAY_STEP: frozenset({SaleState.REFUSED, SaleState.STAY_DEFERRED}),
    # deferring writes the stay's remaining amount, then abandons its settle: a stop in between leaves it here
    SaleState.STAY_DEFERRED: frozenset({SaleState.DEFERRED, SaleState.STAY_STEP}),
    # a deferred stay goes on: its voucher is settled, it is discharged or a settlement cancelled, step by step
    SaleState.DEFERRED: frozenset({SaleState.STAY_STEP}),
    SaleState.PROVISIONAL: frozenset(),
    SaleState.CANCELLED: frozenset(),
    SaleState.REFUSED: frozenset(),
    SaleState.ABORTED: frozenset(),
}


class IllegalTransition(MedsettleError):
    """A flow tried to take a sale to a state no flow may take it to from where it is (a bug, not a mistake
    at the counter): nothing was written."""

    code = "ILLEGAL_TRANSITION"


def check_transition(sale: str, old: SaleState | None, new: SaleState) -> None:
    """Raise :class:`IllegalTransition` unless a flow may take ``sale`` from ``old`` (None: not yet
    recorded) to ``new``."""
    if old is new or new in TRANSITIONS[old]:
        return
    was = old.value if old is not None else "not recorded"
    raise IllegalTransition(f"sale {sale} cannot go from {was!r} to {new.value!r}")


__all__ = ["IllegalTransition", "SaleState", "TRANSITIONS", "check_transition"]
