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

import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import AlreadyCancelled, InvalidInput, SettlementRefused
from ..policy.codes import INSUTYPES, PSN_TYPES
from ..policy.compile import CompiledPolicy, compile_policy
from ..policy.models import Policy
from ..timeutil import now_shanghai
from .admissions import AdmissionBook
from .backends import Engine, core_module, resolve_engine_name
from .bills import AdmissionKeys, AdmissionKeyTable, Bill, BillBatch, encode_bills, parse_bill, resolve_bill
from .bounds import MAX_BALANCE_FEN
from .columns import (
    BALANCE_LIMIT,
    CANCEL_PAST,
    COL,
    COLUMNS,
    NARROW_COLUMNS,
    NO_ADMISSION,
    REFUSAL_MESSAGES,
    REFUSALS,
)
from .core import CoreEngine
from .fastpath import CoreFastPath, ReferenceFastPath, fast_path
from .persons import ATTR_NAMES, Population
from .plainbill import BillHead, validate_plain
from .reference import ReferenceEngine
from .results import Settlement, mirror_row
from .state import PersonState

EngineName = Literal["auto", "core", "reference"]
_DED_KIND, _DEDC = COL["ded_kind"], COL["act_pay_dedc"]


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
    def __init__(
        self,
        policy: Policy,
        population: Population,
        *,
        engine: EngineName = "auto",
        compiled: CompiledPolicy | None = None,
    ) -> None:
        self.policy = policy
        self.compiled = compiled or compile_policy(policy)
        self.population = population
        self.engine_name = resolve_engine_name(engine)
        engine_class = CoreEngine if self.engine_name == "core" else ReferenceEngine
        self.engine: Engine = engine_class(policy, self.compiled, population)
        self.admissions: AdmissionKeyTable = AdmissionKeys()  # a stream's forget some (engine/streamkeys.py)
        self.records: dict[str, Settlement] = {}
        self.admission_book = AdmissionBook()  # what cancels need of admissions no longer in progress
        self._fast: CoreFastPath | ReferenceFastPath | None = None  # the single-bill fast path, made on first use
        self._last_seq = 0  # setl_ids are S + 15 digits, counting up
        self.id_prefix = ""  # digits that start this process's setl_ids when several share a database
        # what a cancel runs inside, given the original (the centre puts the year of the original's scheme in place)
        self.cancel_scope: Callable[[Settlement], contextlib.AbstractContextManager[object]] | None = None

    # -- one bill -------------------------------------------------------------------------------

    def settle(self, bill: Bill | dict, *, when: dt.datetime | None = None, setl_id: str | None = None) -> Settlement:
        """Settle one bill; raise SettlementRefused (nothing changed) when the rules refuse it.

        ``setl_id`` gives the settlement a known id (journal replay); by default the next one is made.
        """
        if setl_id is not None:
            self._check_unused(setl_id)
        return self._single(bill, False, when, setl_id)

    def presettle(self, bill: Bill | dict) -> Settlement:
        """Compute what settling would give; change nothing (2206/2101/2303)."""
        return self._single(bill, True, None, None)

    def _single(self, bill: Bill | dict, presettle: bool, when: dt.datetime | None, setl_id: str | None) -> Settlement:
        # Validated and resolved, then settled through the single-bill fast path (no batch to build): the
        # plain shape counters send by pydantic-core and the fast path's route, which writes the lines
        # straight into its buffers; anything else by the Bill model.
        fast = self._fast or self._make_fast_path()
        if isinstance(self.engine, ReferenceEngine):
            return self._single_on_reference(bill, presettle, when, setl_id)
        plain = None if isinstance(bill, Bill) else validate_plain(bill)
        routed = None if plain is None else fast.route(plain)
        if routed is not None:
            args, head = routed
            status = fast.settle_loaded(*args, presettle)
            person, adm, n_lines = args[0], args[6], args[8]
        else:
            model = bill if isinstance(bill, Bill) else parse_bill(bill)
            resolved = resolve_bill(model, self.compiled, self.population, self.admissions)
            head = BillHead.of(model)
            status = fast.settle(*resolved, presettle=presettle)
            person, adm, n_lines = resolved.person, resolved.adm, len(resolved.items)
        if status:
            raise SettlementRefused(REFUSALS[status], REFUSAL_MESSAGES[status], bill=head.bill_id or None)
        return self._record(head, person, adm, fast.out, fast.lines[:n_lines], presettle, when, setl_id)

    def _single_on_reference(
        self, bill: Bill | dict, presettle: bool, when: dt.datetime | None, setl_id: str | None
    ) -> Settlement:
        """The reference engine settles the parsed bill itself, against the policy models, once the bill
        has been validated and resolved as on the core (the same errors, the same admission key)."""
        assert isinstance(self.engine, ReferenceEngine)
        model = bill if isinstance(bill, Bill) else parse_bill(bill)
        resolved = resolve_bill(model, self.compiled, self.population, self.admissions)
        out, lines = self.engine.settle_bills([model], presettle=presettle, admissions=self.admissions)
        status = int(out[0, COL["status"]])
        if status:
            raise SettlementRefused(REFUSALS[status], REFUSAL_MESSAGES[status], bill=model.bill_id or None)
        return self._record(BillHead.of(model), resolved.person, resolved.adm, out[0], lines, presettle, when, setl_id)

    # -- many bills -----------------------------------------------------------------------------

    def settle_many(self, bills: list[Bill | dict], *, presettle: bool = False) -> list[Settlement | SettlementRefused]:
        """Validate every bill, then settle them in order. One invalid bill fails the call before any is
        settled; a refused bill gives its SettlementRefused in its place and the others go on."""
        models = [b if isinstance(b, Bill) else parse_bill(b, position=i) for i, b in enumerate(bills)]
        batch = encode_bills(models, self.compiled, self.population, self.admissions)
        batch.validate(self.compiled, len(self.population))
        lines: np.ndarray | None
        if isinstance(self.engine, ReferenceEngine):  # it settles the parsed bills, not their encoding
            out, lines = self.engine.settle_bills(models, presettle=presettle, admissions=self.admissions)
        else:
            out, lines = self.engine.run(batch, presettle=presettle)
        assert lines is not None  # not narrowed: the lines are split
        results: list[Settlement | SettlementRefused] = []
        for i, model in enumerate(models):
            status = int(out[i, COL["status"]])
            if status:
                results.append(SettlementRefused(REFUSALS[status], REFUSAL_MESSAGES[status], bill=model.bill_id or i))
            else:
                a, b = int(batch.line_start[i]), int(batch.line_start[i + 1])
                results.append(
                    self._record(
                        BillHead.of(model), int(batch.person[i]), int(batch.adm[i]), out[i], lines[a:b], presettle, None
                    )
                )
        return results

    def run_batch(
        self,
        batch: BillBatch,
        *,
        presettle: bool = False,
        outputs: Literal["full", "totals"] = "full",
        validate: bool = True,
        out: np.ndarray | None = None,
        line_out: np.ndarray | None = None,
    ) -> BatchResult:
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

    def fast_path(self) -> CoreFastPath | ReferenceFastPath:
        """The pre-validated single-bill path (see medsettle.engine.fastpath) on this settler's engine and state."""
        return fast_path(self.engine, self.admissions)

    def _make_fast_path(self) -> CoreFastPath | ReferenceFastPath:
        self._fast = self.fast_path()  # the Settler's own, made anew after an enrolment
        return self._fast

    # -- cancel ---------------------------------------------------------------------------------

    def cancel(self, setl_id: str, *, when: dt.datetime | None = None, mirror_id: str | None = None) -> Settlement:
        """Cancel a settlement: a mirror record with a new setl_id, state moved back by the original's amounts.

        Raises AlreadyCancelled for a second cancel, SettlementRefused(YEAR_CLOSED) for a closed year.
        """
        self._check_unused(mirror_id)
        original = self.records.get(setl_id)
        if original is None or original.mirror_of is not None:
            raise InvalidInput(f"no settlement {setl_id!r} to cancel", field="setl_id")
        if original.cancelled_by is not None:
            raise AlreadyCancelled(
                f"settlement {setl_id} was already cancelled by {original.cancelled_by}", field="setl_id"
            )
        with self.cancel_scope(original) if self.cancel_scope else contextlib.nullcontext():
            status, balance = self._cancel_in_engine(original)
        if status == BALANCE_LIMIT:  # refused by the engine, before anything moved (either engine)
            refund = int(original.row[COL["acct_pay"]])
            raise SettlementRefused(
                REFUSALS[status],
                f"field balc: cancelling settlement {setl_id} would refund {refund} fen to an account holding "
                f"{balance} fen, past the balance bound of {MAX_BALANCE_FEN} fen",
            )
        if status:
            raise SettlementRefused(
                REFUSALS[status], REFUSAL_MESSAGES[status] + f"; settlement {setl_id} can no longer be cancelled"
            )
        original_lines = original.lines
        mirror = Settlement(
            setl_id=self._claim_setl_id(mirror_id),
            bill_id=original.bill_id,
            psn_no=original.psn_no,
            mdtrt_id=original.mdtrt_id,
            insutype=original.insutype,
            psn_type=original.psn_type,
            med_type=original.med_type,
            setl_time=when or now_shanghai().replace(tzinfo=None),
            row_data=mirror_row(original.row, balance).tobytes(),
            lines_data=None if original_lines is None else (-original_lines).tobytes(),
            feedetl_sns=original.feedetl_sns,
            person=original.person,
            adm=original.adm,
            mirror_of=setl_id,
        )
        original.cancelled_by = mirror.setl_id
        _untrack(mirror)
        self.records[mirror.setl_id] = mirror
        return mirror

    def _cancel_in_engine(self, original: Settlement) -> tuple[int, int]:
        """The engine's cancel of ``original``, told what becomes of its admission
        (docs/settlement.md 'Admissions'): the admission book works that out from the records; the
        64-byte state cannot."""
        row, person = original.row, original.person
        if not row[_DED_KIND]:
            return self.engine.cancel(person, row, CANCEL_PAST, NO_ADMISSION)
        state = self.engine.get_state(person)
        role, restore = self.admission_book.plan_cancel(person, original.admission, state)
        status, balance = self.engine.cancel(person, row, role, restore)
        if status == 0:
            self.admission_book.cancelled(person, original.admission, int(row[_DEDC]), role)
        return status, balance

    # -- persons ----------------------------------------------------------------------------------

    def enrol(self, psn_no: str, attrs: dict[str, int], balance: int = 0) -> int:
        """Add a person (static attributes as ATTR_DTYPE fields) with an opening balance; return the row.

        The engine's state grows with the population; a fast path made before is stale afterwards
        (its arrays may have moved): the Settler's own is remade, callers holding one make a new one.
        """
        if not 0 <= balance <= MAX_BALANCE_FEN:
            raise InvalidInput(f"an opening balance is 0 to {MAX_BALANCE_FEN} fen, not {balance}", field="balance")
        row = self.population.append(psn_no, attrs, balance)
        self.engine.add_person()
        self._fast = None
        return row

    def update_person(self, psn_no: str, **attrs: int) -> None:
        """Change static attributes of a person (contributions, transfer, cancellation) between bills."""
        unknown = set(attrs) - ATTR_NAMES
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
        that would take the balance below 0, or a credit past the balance bound (bounds.MAX_BALANCE_FEN),
        is refused and changes nothing.
        """
        self.check_credit(psn_no, amount)
        person = self.population.index_of(psn_no)
        state = self.engine.get_state(person)
        state.balance += amount
        self.engine.set_state(person, state)
        return state.balance

    def check_credit(self, psn_no: str, amount: int, field: str = "amount") -> int:
        """The balance :meth:`credit` of ``amount`` fen would give, changing nothing; InvalidInput naming
        ``field`` for a debit below 0 or a credit past the balance bound (a caller applying other changes with
        the credit checks first, so that all or none are made)."""
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise InvalidInput("amount must be whole fen", field=field)
        balance = self.engine.get_state(self.population.index_of(psn_no)).balance
        if balance + amount < 0:
            raise InvalidInput(f"the balance {balance} fen cannot pay {-amount} fen", field=field)
        if balance + amount > MAX_BALANCE_FEN:
            raise InvalidInput(
                f"the balance {balance} fen plus {amount} fen would pass the bound of {MAX_BALANCE_FEN} fen",
                field=field,
            )
        return balance + amount

    # -- helpers --------------------------------------------------------------------------------

    def _check_unused(self, setl_id: str | None) -> None:
        if setl_id is not None and setl_id in self.records:
            raise InvalidInput(f"setl_id {setl_id} is already used", field="setl_id")

    @property
    def id_prefix(self) -> str:
        """Digits that start this process's setl_ids when several share a database ("" alone)."""
        return self._id_prefix

    @id_prefix.setter
    def id_prefix(self, prefix: str) -> None:
        self._id_prefix = prefix
        self._id_format = f"S{prefix}%0{15 - len(prefix)}d"  # made once: every settlement formats one

    def new_setl_ids(self, n: int) -> list[str]:
        """The next ``n`` setl_ids, claimed: for a stream that settles batches (run_batch) and answers each
        settled bill with its setl_id, keeping no records (medsettle settle)."""
        return [self._claim_setl_id(None) for _ in range(n)]

    def _claim_setl_id(self, setl_id: str | None) -> str:
        """A new setl_id, or the given one (replay), after which new ids continue past it. With an
        ``id_prefix`` (several centre processes on one database) the ids are S + prefix + sequence."""
        if setl_id is None:
            self._last_seq += 1
            return self._id_format % self._last_seq
        prefix = self._id_prefix
        if setl_id.startswith("S" + prefix) and setl_id[1 + len(prefix) :].isdigit() and len(setl_id) == 16:
            self._last_seq = max(self._last_seq, int(setl_id[1 + len(prefix) :]))
        return setl_id

    def _record(
        self,
        head: BillHead,
        p: int,
        adm: int,
        row: np.ndarray,
        lines: np.ndarray | None,
        presettle: bool,
        when: dt.datetime | None,
        setl_id: str | None = None,
    ) -> Settlement:
        insutype, psn_type = (self._fast or self._make_fast_path()).person_codes(p)
        setl_time = when or head.setl_time
        result = Settlement(
            "" if presettle else self._claim_setl_id(setl_id),
            head.bill_id,
            head.psn_no,
            head.mdtrt_id,
            INSUTYPES[insutype],
            PSN_TYPES[psn_type],
            head.med_type,
            setl_time,
            row.tobytes(),
            None if lines is None else lines.tobytes(),
            head.feedetl_sns,
            p,
            adm,
            presettle=presettle,
        )
        if not presettle:
            if row[_DED_KIND]:  # a per-admission settlement: its admission is booked for cancels
                result.admission = self.admission_book.settled(p, adm, row.tolist(), lambda: self.engine.get_state(p))
                _untrack(result.admission)
            _untrack(result)
            self.records[result.setl_id] = result
        return result


def _no_untrack(record: object) -> None:
    """Without the compiled core, records stay in the collector's lists (they cost it time, nothing else)."""


# Records hold only atoms and their Admission (ints and the older Admission it followed), so they are
# never part of a reference cycle: taken out of the cyclic collector's lists (medsettle._core.gc_untrack),
# millions of them cost its collections nothing.
_untrack = getattr(core_module(), "gc_untrack", _no_untrack)
