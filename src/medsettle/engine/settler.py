"""The settlement facade: bills in, settlements out, on either engine.

:class:`Settler` owns a policy, a population, one engine (core or reference) and the records of the
settlements it made, so it can cancel them. Three ways in:

- :meth:`Settler.settle` / :meth:`presettle` / :meth:`cancel`: one bill, validated with pydantic;
- :meth:`Settler.settle_many`: a list of bills, all validated before any is settled;
- :meth:`Settler.run_batch`: a pre-built :class:`BillBatch` (struct-of-arrays), validated with
  vectorised checks, returning the raw result arrays: the load-run path.

Invalid input raises :class:`InvalidInput` and changes nothing. A refusal (PERSON_INACTIVE, ...)
raises :class:`SettlementRefused` from the single-bill calls and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import AlreadyCancelled, InvalidInput, SettlementRefused
from ..policy.codes import INSUTYPES, PSN_TYPES
from ..policy.compile import CompiledPolicy, compile_policy
from ..policy.models import Policy
from ..timeutil import now_shanghai
from .backends import resolve_engine_name
from .bills import AdmissionKeys, Bill, BillBatch, encode_bills, parse_bill, resolve_bill
from .columns import COL, COLUMNS, NARROW_COLUMNS, REFUSAL_MESSAGES, REFUSALS, YEAR_CLOSED
from .core import CoreEngine
from .fastpath import fast_path
from .persons import ATTR_DTYPE, Population
from .plainbill import BillHead, quick_resolve
from .reference import ReferenceEngine
from .results import Settlement, mirror_row
from .state import PersonState

EngineName = Literal["auto", "core", "reference"]


@dataclass
class BatchResult:
    """Raw results of a batch: ``out`` rows in ``columns`` order, ``lines`` per line (None when narrowed)."""

    out: np.ndarray
    lines: np.ndarray | None
    columns: tuple[str, ...]

    def column(self, name: str) -> np.ndarray:
        return self.out[:, self.columns.index(name)]

    @property
    def settled(self) -> int:
        return int(np.count_nonzero(self.column("status") == 0))


class Settler:
    def __init__(self, policy: Policy, population: Population, *, engine: EngineName = "auto",
                 compiled: CompiledPolicy | None = None):
        self.policy = policy
        self.compiled = compiled or compile_policy(policy)
        self.population = population
        self.engine_name = resolve_engine_name(engine)
        engine_class = CoreEngine if self.engine_name == "core" else ReferenceEngine
        self.engine = engine_class(policy, self.compiled, population)
        self.admissions = AdmissionKeys()
        self.records: dict[str, Settlement] = {}
        self._fast = None  # the single-bill fast path, made on first use
        self._last_seq = 0  # setl_ids are S + 15 digits, counting up
        self.id_prefix = ""  # digits that start this process's setl_ids when several share a database

    # -- one bill -------------------------------------------------------------------------------

    def settle(self, bill: Bill | dict, *, when: dt.datetime | None = None, setl_id: str | None = None
               ) -> Settlement:
        """Settle one bill; raise SettlementRefused (nothing changed) when the rules refuse it.

        ``setl_id`` gives the settlement a known id (journal replay); by default the next one is made.
        """
        self._check_unused(setl_id)
        return self._single(bill, presettle=False, when=when, setl_id=setl_id)

    def presettle(self, bill: Bill | dict) -> Settlement:
        """Compute what settling would give; change nothing (2206/2101/2303)."""
        return self._single(bill, presettle=True, when=None, setl_id=None)

    def _single(self, bill: Bill | dict, *, presettle: bool, when: dt.datetime | None,
                setl_id: str | None) -> Settlement:
        # Validated (the plain shape by plainbill's quick route, anything else by the Bill model) and
        # resolved, then through the single-bill fast path: no batch to build.
        quick = None if isinstance(bill, Bill) else quick_resolve(bill, self.compiled, self.population,
                                                                   self.admissions)
        if quick is None:
            model = bill if isinstance(bill, Bill) else parse_bill(bill)
            quick = resolve_bill(model, self.compiled, self.population, self.admissions), BillHead.of(model)
        resolved, head = quick
        if self._fast is None:
            self._fast = fast_path(self.engine)
        status = self._fast.settle(*resolved, presettle=presettle)
        if status:
            raise SettlementRefused(REFUSALS[status], REFUSAL_MESSAGES[status], bill=head.bill_id or None)
        lines = self._fast.lines[:len(resolved.items)]
        return self._record(head, resolved.person, resolved.adm, self._fast.out, lines, presettle=presettle,
                            when=when, setl_id=setl_id)

    # -- many bills -----------------------------------------------------------------------------

    def settle_many(self, bills: list[Bill | dict], *, presettle: bool = False
                    ) -> list[Settlement | SettlementRefused]:
        """Validate every bill, then settle them in order. One invalid bill fails the call before any is
        settled; a refused bill gives its SettlementRefused in its place and the others go on."""
        models = [b if isinstance(b, Bill) else parse_bill(b, position=i) for i, b in enumerate(bills)]
        batch = encode_bills(models, self.compiled, self.population, self.admissions)
        batch.validate(self.compiled, len(self.population))
        out, lines = self.engine.run(batch, presettle=presettle)
        results: list[Settlement | SettlementRefused] = []
        for i, model in enumerate(models):
            status = int(out[i, COL["status"]])
            if status:
                results.append(SettlementRefused(REFUSALS[status], REFUSAL_MESSAGES[status],
                                                 bill=model.bill_id or i))
            else:
                a, b = int(batch.line_start[i]), int(batch.line_start[i + 1])
                results.append(self._record(BillHead.of(model), int(batch.person[i]), int(batch.adm[i]), out[i], lines[a:b],
                                            presettle=presettle, when=None))
        return results

    def run_batch(self, batch: BillBatch, *, presettle: bool = False,
                  outputs: Literal["full", "totals"] = "full", validate: bool = True,
                  out: np.ndarray | None = None, line_out: np.ndarray | None = None) -> BatchResult:
        """The load-run path: settle a struct-of-arrays batch; no per-settlement records are kept.

        ``outputs="totals"`` narrows the result to NARROW_COLUMNS and skips the line split.
        ``validate=False`` is for batches this process built and validated itself.
        ``out``/``line_out`` reuse result buffers across batches (load runs, benchmarks).
        """
        if outputs not in ("full", "totals"):
            raise InvalidInput(f"unknown outputs {outputs!r}: choose full or totals", field="outputs")
        if validate:
            batch.validate(self.compiled, len(self.population))
        narrow = outputs == "totals"
        out, lines = self.engine.run(batch, presettle=presettle, narrow=narrow, out=out, line_out=line_out)
        return BatchResult(out, lines, NARROW_COLUMNS if narrow else COLUMNS)

    def fast_path(self):
        """The pre-validated single-bill path (see medsettle.engine.fastpath) on this settler's engine and state."""
        return fast_path(self.engine)

    # -- cancel ---------------------------------------------------------------------------------

    def cancel(self, setl_id: str, *, when: dt.datetime | None = None, mirror_id: str | None = None
               ) -> Settlement:
        """Cancel a settlement: a mirror record with a new setl_id, state moved back by the original's amounts.

        Raises AlreadyCancelled for a second cancel, SettlementRefused(YEAR_CLOSED) for a closed year.
        """
        self._check_unused(mirror_id)
        original = self.records.get(setl_id)
        if original is None or original.mirror_of is not None:
            raise InvalidInput(f"no settlement {setl_id!r} to cancel", field="setl_id")
        if original.cancelled_by is not None:
            raise AlreadyCancelled(f"settlement {setl_id} was already cancelled by {original.cancelled_by}",
                                   field="setl_id")
        status, balance = self.engine.cancel(original.person, original.row, original.adm)
        if status:
            raise SettlementRefused(REFUSALS[status], REFUSAL_MESSAGES[status]
                                    + f"; settlement {setl_id} can no longer be cancelled")
        assert status != YEAR_CLOSED
        mirror = Settlement(
            setl_id=self._claim_setl_id(mirror_id), bill_id=original.bill_id, psn_no=original.psn_no,
            mdtrt_id=original.mdtrt_id, insutype=original.insutype, psn_type=original.psn_type,
            med_type=original.med_type, setl_time=when or now_shanghai().replace(tzinfo=None),
            row=mirror_row(original.row, balance),
            lines=None if original.lines is None else -original.lines,
            feedetl_sns=original.feedetl_sns, person=original.person, adm=original.adm, mirror_of=setl_id,
        )
        original.cancelled_by = mirror.setl_id
        self.records[mirror.setl_id] = mirror
        return mirror

    # -- persons ----------------------------------------------------------------------------------

    def enrol(self, psn_no: str, attrs: dict[str, int], balance: int = 0) -> int:
        """Add a person (static attributes as ATTR_DTYPE fields) with an opening balance; return the row.

        The engine's state grows with the population; a fast path made before is stale afterwards
        (its arrays may have moved): the Settler's own is remade, callers holding one make a new one.
        """
        row = self.population.append(psn_no, attrs, balance)
        self.engine.add_person()
        self._fast = None
        return row

    def update_person(self, psn_no: str, **attrs: int) -> None:
        """Change static attributes of a person (contributions, transfer, cancellation) between bills."""
        unknown = set(attrs) - set(ATTR_DTYPE.names)
        if unknown:
            raise ValueError(f"unknown person attributes {sorted(unknown)}")
        row = self.population.attrs[self.population.index_of(psn_no)]
        for name, value in attrs.items():
            row[name] = value

    # -- state ----------------------------------------------------------------------------------

    def person_state(self, psn_no: str) -> PersonState:
        return self.engine.get_state(self.population.index_of(psn_no))

    def credit(self, psn_no: str, amount: int) -> int:
        """Credit (or, negative, debit) a person's account by ``amount`` fen; return the new balance.

        Monthly account credits (划入) and balances moving with a transfer come through here. A debit
        that would take the balance below 0 is refused and changes nothing.
        """
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise InvalidInput("amount must be whole fen", field="amount")
        person = self.population.index_of(psn_no)
        state = self.engine.get_state(person)
        if state.balance + amount < 0:
            raise InvalidInput(f"the balance {state.balance} fen cannot pay {-amount} fen", field="amount")
        state.balance += amount
        self.engine.set_state(person, state)
        return state.balance

    # -- helpers --------------------------------------------------------------------------------

    def _check_unused(self, setl_id: str | None) -> None:
        if setl_id is not None and setl_id in self.records:
            raise InvalidInput(f"setl_id {setl_id} is already used", field="setl_id")

    def _claim_setl_id(self, setl_id: str | None) -> str:
        """A new setl_id, or the given one (replay), after which new ids continue past it. With an
        ``id_prefix`` (several centre processes on one database) the ids are S + prefix + sequence."""
        prefix = self.id_prefix
        if setl_id is None:
            self._last_seq += 1
            return f"S{prefix}{self._last_seq:0{15 - len(prefix)}d}"
        if setl_id.startswith("S" + prefix) and setl_id[1 + len(prefix):].isdigit() and len(setl_id) == 16:
            self._last_seq = max(self._last_seq, int(setl_id[1 + len(prefix):]))
        return setl_id

    def _record(self, head: BillHead, p: int, adm: int, row: np.ndarray, lines: np.ndarray | None, *,
                presettle: bool, when: dt.datetime | None, setl_id: str | None = None) -> Settlement:
        attrs = self.population.attrs[p]
        setl_time = when or (head.setl_time if isinstance(head.setl_time, dt.datetime)
                             else dt.datetime.combine(head.setl_time, dt.time()))
        result = Settlement(
            setl_id="" if presettle else self._claim_setl_id(setl_id), bill_id=head.bill_id, psn_no=head.psn_no,
            mdtrt_id=head.mdtrt_id, insutype=INSUTYPES[attrs["insutype"]], psn_type=PSN_TYPES[attrs["psn_type"]],
            med_type=head.med_type, setl_time=setl_time, row=row.copy(),
            lines=None if lines is None else lines.copy(), feedetl_sns=head.feedetl_sns,
            person=p, adm=adm, presettle=presettle,
        )
        if not presettle:
            self.records[result.setl_id] = result
        return result
