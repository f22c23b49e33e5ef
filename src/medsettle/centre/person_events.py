"""The person events of the agency (PERSON_EVENT): journaled through the ledger and applied by
:meth:`PersonEvents.apply` both live and on replay, so a restarted centre has the same persons.

Every flow that changes a person (enrolment, contributions, transfers) commits through here; only this
module knows how an event's body changes the settler's rows and the registry.
"""

from __future__ import annotations

import datetime as dt

from ..engine.persons import FLAG_ACTIVE, FLAG_ASSISTANCE
from ..ledger.journal import Entry
from ..policy.codes import INSUTYPE_INDEX, PSN_TYPE_INDEX
from .cards import Cards
from .core import Ledger
from .registry import PERSON_EVENT, Identity, Registry


def month_text(m: int) -> str:
    """A month index (year*12+month-1) written yyyy-mm, as the admin API takes it."""
    return f"{m // 12:04d}-{m % 12 + 1:02d}"


class PersonEvents:
    """Commits person events and applies them; owns the PERSON_EVENT kind of the journal."""

    def __init__(self, ledger: Ledger, registry: Registry, cards: Cards) -> None:
        self._ledger = ledger
        self._registry = registry
        self._cards = cards
        ledger.owns(PERSON_EVENT, self._replay)

    def months_held(self, psn_no: str) -> set[int]:
        """The months the person has paid for: those recorded here, or (before the first contribution
        recorded here) the unbroken run the person's record holds (a generated or loaded population)."""
        months = self._registry.contributions.get(psn_no)
        if months is not None:
            return months
        index = self._ledger.settler.population.index_of(psn_no)
        attrs = self._ledger.settler.population.attrs[index]
        run_start, paid_through = int(attrs["run_start"]), int(attrs["paid_through"])
        return set(range(run_start, paid_through + 1)) if run_start >= 0 else set()

    def credited(self, psn_no: str, month: str) -> bool:
        """Whether the person's account was credited for ``month`` (yyyy-mm) by 'credit' or a contribution."""
        return self._cards.credited(psn_no, month)

    def describe(self, psn_no: str, field: str = "psn_no") -> dict:
        """The person's attributes as the settler holds them (InvalidInput naming ``field`` if unknown)."""
        population = self._ledger.settler.population
        return population.describe(population.index_of(psn_no, field))

    def commit(self, region: str, key: str, body: dict) -> None:
        """Journal ``body`` once under ``key`` and apply it (under the ledger's lock, before it is durable)."""
        self._ledger.commit(PERSON_EVENT, region, key, body, apply=lambda: self.apply(body))

    def _replay(self, entry: Entry) -> None:
        self.apply(entry.body)

    def apply(self, body: dict) -> None:
        """Apply a person event, live (under the lock, before it is journaled) or on replay."""
        action, psn_no = body["action"], body.get("psn_no")
        if not isinstance(psn_no, str):  # every person event names its person
            raise ValueError(f"person event {action!r} without a psn_no")
        settler, registry = self._ledger.settler, self._registry
        if action == "cancel":
            registry.apply(PERSON_EVENT, body)
        elif action == "enrol":
            regions = [r.admdvs for r in settler.policy.regions]
            flags = FLAG_ACTIVE | (FLAG_ASSISTANCE if body["assistance"] else 0)
            settler.enrol(
                psn_no,
                {
                    "insutype": INSUTYPE_INDEX[body["insutype"]],
                    "psn_type": PSN_TYPE_INDEX[body["psn_type"]],
                    "flags": flags,
                    "region": regions.index(body["region"]),
                    "extra_wait": body["extra_wait"],
                },
            )
            ident = body["identity"]
            registry.add_identity(
                Identity(
                    psn_no,
                    ident["psn_name"],
                    ident["certno"],
                    ident["gend"],
                    dt.date.fromisoformat(ident["brdy"]),
                    ident["emp_name"],
                    ident["emp_no"],
                )
            )
        elif action == "change_unit":
            registry.change_unit(psn_no, body["emp_no"], body["emp_name"])
        elif action == "contribute":
            month = month_text(body["month"])
            if body["credit"] and not self._cards.credited(psn_no, month):  # past the balance bound: nothing moves
                settler.check_credit(psn_no, body["credit"], field="balc")
            registry.contributions.setdefault(psn_no, self.months_held(psn_no))  # the record's run, extended
            run_start, paid_through = registry.add_contribution(psn_no, body["month"])
            settler.update_person(psn_no, run_start=run_start, paid_through=paid_through)
            if body["credit"] and not self._cards.credited(psn_no, month):  # one credit a month, in journal order
                settler.credit(psn_no, body["credit"])
                self._cards.mark_credited(psn_no, month)
        elif action == "transfer_out":
            registry.file_transfer(body["certificate"])  # ends the relation, cards too
        elif action == "transfer_in":
            self._apply_transfer_in(psn_no, body)
        else:
            raise ValueError(f"unknown person event {action!r}")

    def _apply_transfer_in(self, psn_no: str, body: dict) -> None:
        settler, registry = self._ledger.settler, self._registry
        cert, run = registry.accept_transfer(body["certificate_no"], psn_no, body["gap_months"])
        regions = [r.admdvs for r in settler.policy.regions]
        index = settler.population.index_of(psn_no)
        flags = int(settler.population.attrs[index]["flags"]) | FLAG_ACTIVE
        run_start, paid_through = run or (
            int(settler.population.attrs[index]["run_start"]),
            int(settler.population.attrs[index]["paid_through"]),
        )
        settler.update_person(
            psn_no,
            region=regions.index(cert["to_admdvs"]),
            flags=flags,
            run_start=run_start,
            paid_through=paid_through,
        )
        registry.change_unit(psn_no, body["emp_no"], body["emp_name"])


__all__ = ["PersonEvents"]
