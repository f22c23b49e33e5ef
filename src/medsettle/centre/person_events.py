"""The person events of the agency (PERSON_EVENT): journaled through the ledger and applied by
:meth:`PersonEvents.apply` both live and on replay, so a restarted centre has the same persons.

Every flow that changes a person (enrolment, contributions, transfers) commits through here; only this
module knows how an event's body changes the settler's rows and the registry.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
from collections.abc import Iterator

from ..engine.persons import FLAG_ACTIVE, FLAG_ASSISTANCE, NO_MONTH
from ..engine.results import Settlement
from ..engine.settler import Settler
from ..engine.state import PersonState
from ..ledger.journal import Entry
from ..policy.codes import INSUTYPE_INDEX, PSN_TYPE_INDEX
from .cards import Cards
from .core import Ledger
from .registry import CANCELLED, PERSON_EVENT, Identity, Registry

# The year's accumulators, held per scheme (docs/agency.md 'Scheme changes'): a person's 64-byte state
# holds those of the scheme they are in; the others wait in the registry. The balance and the admission
# in progress are the person's, whatever the scheme.
SCHEME_ACCUMULATORS = ("t2_base", "ded_met", "pooled_paid", "t2_paid", "maf_paid", "adm_count", "acc_year")
RELATION_EVENTS = ("reenrol", "change_scheme", "unemployed", "reemployed")  # counted in Registry.changes
FLEXIBLE_UNIT = ("", "灵活就业人员")  # a flexible employee's unit: none (emp_no empty), as 1101 names it
UNEMPLOYED_UNIT = ("", "失业人员")


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
        ledger.settler.cancel_scope = self.under_scheme_of  # live and on replay (both cancel through the settler)
        self._presented: dict[str, list[dict]] = {}  # psn_no -> the papers of each procedure, in journal order

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
            if body.get("flexible"):
                registry.flexible.add(psn_no)
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
            registry.flexible.discard(psn_no)  # a flexible employee who joins a unit
        elif action in RELATION_EVENTS:
            self._apply_relation_event(action, psn_no, body)
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
        elif action == "transfer_undo":
            from .transfers import apply_transfer_undo  # noqa: PLC0415  # transfers commits through here

            apply_transfer_undo(settler, registry, body)
        else:
            raise ValueError(f"unknown person event {action!r}")
        if "presented" in body:  # events journaled before papers were asked for have none
            self.record_presented(psn_no, action, body["presented"])

    def record_presented(self, psn_no: str, procedure: str, presented: dict) -> None:
        """Keep what was presented with a procedure (a person event's, or a card issue's: live and on replay)."""
        self._presented.setdefault(psn_no, []).append({"procedure": procedure, **presented})

    def presented(self, psn_no: str) -> list[dict]:
        """What the person presented with each procedure that asks for papers, oldest first."""
        return [dict(p) for p in self._presented.get(psn_no, [])]

    def _apply_relation_event(self, action: str, psn_no: str, body: dict) -> None:
        """Re-enrolment, a scheme change, unemployment and re-employment (medsettle.centre.employment)."""
        settler, registry = self._ledger.settler, self._registry
        registry.changes[psn_no] = registry.changes.get(psn_no, 0) + 1
        if action == "reenrol":
            self._end_relation(psn_no)
            self._switch_scheme(psn_no, body["insutype"])
            regions = [r.admdvs for r in settler.policy.regions]
            settler.update_person(
                psn_no,
                insutype=INSUTYPE_INDEX[body["insutype"]],
                psn_type=PSN_TYPE_INDEX[body["psn_type"]],
                flags=FLAG_ACTIVE | (FLAG_ASSISTANCE if body["assistance"] else 0),
                region=regions.index(body["region"]),
                run_start=NO_MONTH,  # the new relation's run starts with its first contribution
                paid_through=NO_MONTH,
                extra_wait=body["extra_wait"],
            )
            registry.identities[psn_no].psn_name = body["psn_name"]
            self._set_unit(psn_no, body)
        elif action == "change_scheme":
            self._switch_scheme(psn_no, body["insutype"])
            settler.update_person(
                psn_no,
                insutype=INSUTYPE_INDEX[body["insutype"]],
                psn_type=PSN_TYPE_INDEX[body["psn_type"]],
                extra_wait=0,  # cover goes on: no late-enrolment wait between the schemes
            )
            self._set_unit(psn_no, body)
        elif action == "unemployed":
            registry.unemployed[psn_no] = {
                "since": body["month"],
                "emp_no": body["from_emp_no"],
                "emp_name": body["from_emp_name"],
            }
            registry.change_unit(psn_no, *UNEMPLOYED_UNIT)
        else:  # reemployed: the new unit applies for the new card (seed 000), the old one ends
            self._set_unit(psn_no, body)
            for card_no in body["cancelled_cards"]:
                registry.cards[card_no].status = CANCELLED

    def _set_unit(self, psn_no: str, body: dict) -> None:
        """The unit a relation event names; flexible and unemployed as the event says."""
        registry = self._registry
        registry.unemployed.pop(psn_no, None)
        if body.get("flexible"):
            registry.flexible.add(psn_no)
            registry.change_unit(psn_no, *FLEXIBLE_UNIT)
        else:
            registry.flexible.discard(psn_no)
            registry.change_unit(psn_no, body["emp_no"], body["emp_name"])

    def _end_relation(self, psn_no: str) -> None:
        """Keep the ended relation in the person's history; the next one has months of its own."""
        registry = self._registry
        population = self._ledger.settler.population
        d = population.describe(population.index_of(psn_no))
        ident = registry.identities[psn_no]
        registry.relations.setdefault(psn_no, []).append(
            {
                "insutype": d["insutype"],
                "psn_type": d["psn_type"],
                "insuplc_admdvs": d["insuplc_admdvs"],
                "emp_no": ident.emp_no,
                "emp_name": ident.emp_name,
                "contrib_from": d["contrib_from"],
                "paid_through": d["paid_through"],
                "months_paid": len(self.months_held(psn_no)),
                "ended": registry.ended.pop(psn_no, ""),
            }
        )
        registry.contributions[psn_no] = set()
        registry.transfer_gaps.pop(psn_no, None)
        registry.flexible.discard(psn_no)
        registry.unemployed.pop(psn_no, None)

    def _switch_scheme(self, psn_no: str, insutype: str) -> None:
        """Hold the year's accumulators of the scheme left; take those of ``insutype`` (none: a fresh year)."""
        settler, registry = self._ledger.settler, self._registry
        index = settler.population.index_of(psn_no)
        current = settler.population.describe(index)["insutype"]
        if current == insutype:
            return
        state = settler.engine.get_state(index)
        registry.scheme_accumulators[(psn_no, str(current))] = {
            name: copy.copy(getattr(state, name)) for name in SCHEME_ACCUMULATORS
        }
        held = registry.scheme_accumulators.pop((psn_no, insutype), None)
        fresh = PersonState()
        for name in SCHEME_ACCUMULATORS:
            setattr(state, name, held[name] if held else getattr(fresh, name))
        settler.engine.set_state(index, state)

    @contextlib.contextmanager
    def under_scheme_of(self, original: Settlement) -> Iterator[None]:
        """Cancel ``original`` against the year of the scheme it was settled under: a settlement made before a
        scheme change comes off that scheme's accumulators (held while the person is in the other), not the
        ones of the scheme the person is in now. The balance and the admission in progress move as always."""
        settler, registry = self._ledger.settler, self._registry
        index = original.person
        if settler.population.describe(index)["insutype"] == original.insutype:
            yield
            return
        key = (original.psn_no, original.insutype)
        held = registry.scheme_accumulators.get(key)
        state = settler.engine.get_state(index)
        now = {name: copy.copy(getattr(state, name)) for name in SCHEME_ACCUMULATORS}
        fresh = PersonState()
        for name in SCHEME_ACCUMULATORS:
            setattr(state, name, held[name] if held else getattr(fresh, name))
        settler.engine.set_state(index, state)
        try:
            yield
        except BaseException:
            _put_back(settler, index, now)  # refused before anything moved: the held year stays as it was
            raise
        after = settler.engine.get_state(index)
        registry.scheme_accumulators[key] = {name: copy.copy(getattr(after, name)) for name in SCHEME_ACCUMULATORS}
        _put_back(settler, index, now)

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
        if body.get("flexible"):  # a flexible employee accepted without a unit (docs/agency.md 'Flexible employees')
            registry.flexible.add(psn_no)
        else:
            registry.flexible.discard(psn_no)  # accepted with a unit (or the virtual one): neither flexible
        registry.unemployed.pop(psn_no, None)  # nor unemployed any more


def _put_back(settler: Settler, index: int, accumulators: dict) -> None:
    """Give person ``index`` the year's ``accumulators`` again (the balance and the admission as they are)."""
    state = settler.engine.get_state(index)
    for name in SCHEME_ACCUMULATORS:
        setattr(state, name, accumulators[name])
    settler.engine.set_state(index, state)


__all__ = ["PersonEvents"]
