"""A Settler whose every state change is journaled before it is answered.

The engine applies a change in memory, the journal makes it durable, and only then does the call
return. If the journal refuses or fails, the person's in-memory state is put back as it was (the
64-byte record snapshot taken before, and what the Settler's admission book held of the person), so
memory never holds what the journal does not.
"""

from __future__ import annotations

import datetime as dt
from types import TracebackType
from typing import Any

from ..engine import Bill, Settler, parse_bill
from ..engine.results import Settlement
from .journal import GroupCommitJournal

SETTLE, CANCEL, CREDIT = "settle", "cancel", "credit"


class JournaledSettler:
    def __init__(self, settler: Settler, journal: GroupCommitJournal) -> None:
        self.settler = settler
        self.journal = journal

    def settle(self, bill: Bill | dict, *, when: dt.datetime | None = None) -> Settlement:
        model = bill if isinstance(bill, Bill) else parse_bill(bill)
        person = self.settler.population.index_of(model.psn_no)
        with _rollback_on_failure(self.settler, person):
            result = self.settler.settle(model, when=when)
            try:
                self.journal.append(
                    SETTLE,
                    self._region(person),
                    result.setl_id,
                    {
                        "setl_id": result.setl_id,
                        "bill": model.model_dump(mode="json"),
                        "setl_time": result.setl_time.isoformat(),
                        "adm": result.adm,
                        "row": result.row.tolist(),
                    },
                )
            except BaseException:
                del self.settler.records[result.setl_id]
                raise
        return result

    def cancel(self, setl_id: str, *, when: dt.datetime | None = None) -> Settlement:
        original = self.settler.records.get(setl_id)
        person = original.person if original is not None else None
        with _rollback_on_failure(self.settler, person, original):
            mirror = self.settler.cancel(setl_id, when=when)
            try:
                self.journal.append(
                    CANCEL,
                    self._region(mirror.person),
                    mirror.setl_id,
                    {
                        "setl_id": mirror.setl_id,
                        "original": setl_id,
                        "setl_time": mirror.setl_time.isoformat(),
                        "row": mirror.row.tolist(),
                    },
                )
            except BaseException:
                del self.settler.records[mirror.setl_id]
                self.settler.records[setl_id].cancelled_by = None
                raise
        return mirror

    def credit(self, psn_no: str, amount: int, *, key: str, reason: str = "") -> int:
        """Credit a person's account; ``key`` makes the credit unique (a month's 划入 is credited once)."""
        person = self.settler.population.index_of(psn_no)
        with _rollback_on_failure(self.settler, person):
            balance = self.settler.credit(psn_no, amount)
            self.journal.append(
                CREDIT,
                self._region(person),
                key,
                {"psn_no": psn_no, "amount": amount, "reason": reason, "balance": balance},
            )
        return balance

    def _region(self, person: int) -> str:
        return self.settler.population.region_of(person)


class _rollback_on_failure:
    """Snapshot one person's state and admission bookkeeping (with that of the settlement to cancel);
    put them back if the block raises."""

    def __init__(self, settler: Settler, person: int | None, original: Settlement | None = None) -> None:
        self.settler = settler
        self.person = person
        self.original = original
        self.saved: Any = None
        self.booked: Any = None

    def __enter__(self) -> None:
        if self.person is not None:
            self.saved = self.settler.engine.get_state(self.person)
            admission = None if self.original is None else self.original.admission
            self.booked = self.settler.admission_book.snapshot(self.person, admission)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Put the person back; the exception always goes on (this never swallows one)."""
        if exc_type is not None and self.person is not None:
            self.settler.engine.set_state(self.person, self.saved)
            self.settler.admission_book.restore(self.booked)
