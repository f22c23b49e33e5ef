"""The checks at the end of a live run (docs/simulation.md 'Live mode'), in the deterministic checkers' spirit
and, where they fit, by the same code (:class:`medsettle.sim.checkers.Checkers`):

- **reconciliation**: every counter's ``reconcile --detail`` of each day of the run is clean (3201 and 3202
  by the real terminal against the real centre);
- **replay**: what the centre process answers (1101 balances, 5206 accumulators, 3202 settlement lists)
  is the same after it is killed (SIGKILL) and started again on its journal;
- **conservation** and **exactly-once**: the centre's journal, read once the centre has stopped, checked
  entry by entry by :class:`Checkers` (every split exact, every balance what the journal gives, no message
  settled twice, no bill or voucher with two live settlements), and the balances the process answered
  are those; every counter's settled records (sales, vouchers, forwards) name a live settlement at the
  centre with the same amounts, and no settlement is recorded twice (:func:`check_records`);
- **drain**: :meth:`Checkers.final` over the counters' journals: every voucher settled or a manual claim,
  nothing left queued, what a counter believes is what the centre holds.

A broken check raises :class:`~medsettle.sim.checkers.Violation`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from ..terminal.states import SaleState
from .checkers import Checkers, Violation
from .live_counter import LiveCounter, each_counter

if TYPE_CHECKING:
    from ..terminal import CounterStore
    from ..testing.centre import RunningCentre

AMOUNTS = ("medfee_sumamt", "fund_pay_sumamt", "acct_pay", "psn_cash_pay")
_msgids = itertools.count(1)


@dataclasses.dataclass(frozen=True)
class CounterRecord:
    """One settlement a counter's journal holds: where (a sale, a voucher, a forwarded provisional
    settlement), its setl_id and amounts in fen."""

    counter: str
    source: str  # "sale", "voucher" or "forward"
    ref: str  # the sale's or voucher's number
    setl_id: str
    amounts: tuple[int, ...]  # AMOUNTS, in fen


def _fen(value: Any) -> int:
    return int(Decimal(str(value)) * 100)


def counter_records(name: str, store: CounterStore) -> list[CounterRecord]:
    """Every settlement counter ``name``'s journal says it made: its done and settled sales, its settled
    vouchers and its forwarded provisional settlements, each with the centre's setlinfo it recorded."""
    found: list[CounterRecord] = []

    def add(source: str, ref: str, setlinfo: Any) -> None:
        if isinstance(setlinfo, dict) and setlinfo.get("setl_id"):
            amounts = tuple(_fen(setlinfo.get(a, 0)) for a in AMOUNTS)
            found.append(CounterRecord(name, source, ref, str(setlinfo["setl_id"]), amounts))

    for sale, _, data in store.sales(SaleState.DONE, SaleState.SETTLED):
        add("sale", sale, data.get("setlinfo"))
    for v in store.vouchers("settled"):
        add("voucher", v["voucher"], v.get("setlinfo"))
    for entry in store.saf_entries("forwarded"):
        add("forward", entry["sale"], entry.get("setlinfo"))
    return found


def check_records(
    records: Iterable[CounterRecord], centre: Mapping[str, tuple[int, ...]], live: Iterable[str], step: int = 0
) -> int:
    """The counters' records against the centre's: each settlement a counter recorded is live at the centre
    with the same amounts (``centre``: setl_id -> AMOUNTS in fen; ``live``: the setl_ids not cancelled), and no
    settlement is recorded twice (by two counters, or twice as a sale, a voucher or a forward at one; a
    voucher's re-visit is its voucher's and its sale's at once). Returns the number of checks made."""
    live = set(live)
    seen: dict[tuple[str, str], CounterRecord] = {}
    owner: dict[str, str] = {}
    checks = 0
    for r in records:
        checks += 1
        first = seen.get((r.setl_id, r.source))
        if first is not None or owner.setdefault(r.setl_id, r.counter) != r.counter:
            other = first or next(s for (sid, _), s in seen.items() if sid == r.setl_id)
            raise Violation("exactly-once", step, f"settlement {r.setl_id} is recorded twice: {other.counter}'s "
                            f"{other.source} {other.ref} and {r.counter}'s {r.source} {r.ref}")  # fmt: skip
        seen[(r.setl_id, r.source)] = r
        if r.setl_id not in centre:
            raise Violation("drain", step, f"{r.counter}'s {r.source} {r.ref} is settled as {r.setl_id}, which the "
                            "centre does not hold")  # fmt: skip
        if r.setl_id not in live and r.source != "forward":  # a forwarded sale may be cancelled later
            raise Violation("drain", step, f"{r.counter}'s {r.source} {r.ref}: {r.setl_id} was cancelled at the centre")
        if r.amounts != centre[r.setl_id]:
            raise Violation("conservation", step, f"{r.counter}'s {r.source} {r.ref}: {r.setl_id} recorded as "
                            f"{dict(zip(AMOUNTS, r.amounts, strict=True))} fen, the centre's is "
                            f"{dict(zip(AMOUNTS, centre[r.setl_id], strict=True))}")  # fmt: skip
    return checks


# -- what the centre process answers ------------------------------------------------------------------


def _ask(centre: RunningCentre, code: str, sign_no: str, infno: str, input_: Any, insuplc: str) -> Any:
    from ..testing.centre import envelope  # noqa: PLC0415
    from ..timeutil import SHANGHAI  # noqa: PLC0415

    msgid = f"{code}{dt.datetime.now(SHANGHAI):%Y%m%d%H%M%S}{next(_msgids) % 10_000:04d}"
    body = envelope(infno, input_, institution=code, sign_no=sign_no, msgid=msgid)
    body["insuplc_admdvs"] = insuplc
    return centre.post(body)


def centre_state(
    centre: RunningCentre, asker: str, codes: list[str], persons: Mapping[str, tuple[str, str]], days: list[str]
) -> dict[str, Any]:
    """What the running centre answers: the 1101 balance (fen) and 5206 accumulators of each of ``persons``
    (psn_no -> their ID number and insured region), asked by institution ``asker`` (signed in for it: not a
    counter's own institution while that counter still works), and each institution of ``codes``' 3202 list
    of settlements of each day."""
    from ..timeutil import SHANGHAI  # noqa: PLC0415

    sign_no = centre.sign_in(asker)
    month = f"{dt.datetime.now(SHANGHAI):%Y%m}"
    state: dict[str, Any] = {"balances": {}, "cum": {}, "settlements": {}}
    for psn_no in sorted(persons):
        certno, insuplc = persons[psn_no]
        cert = {"mdtrt_cert_type": "02", "mdtrt_cert_no": certno, "card_sn": ""}
        info = _ask(centre, asker, sign_no, "1101", {"data": {**cert, "certno": certno}}, insuplc)
        state["balances"][psn_no] = _fen(info["output"]["insuinfo"][0]["balc"]) if info.get("infcode") == 0 else info
        cum = _ask(centre, asker, sign_no, "5206", {"data": {"psn_no": psn_no, "cum_ym": month, **cert}}, insuplc)
        state["cum"][psn_no] = cum.get("output") if cum.get("infcode") == 0 else cum.get("err_msg")
    for c in codes:
        for day in days:
            state["settlements"][f"{c} {day}"] = sorted(r["setl_id"] for r in centre.settlements(c, day))
    return state


def default_persons(psn_nos: Iterable[str]) -> dict[str, tuple[str, str]]:
    """psn_no -> (ID number, insured region) of persons of the centre's default population."""
    from ..testing.centre import _default_persons  # noqa: PLC0415

    wanted = set(psn_nos)
    return {p.psn_no: (p.certno, p.insuplc_admdvs) for p in _default_persons() if p.psn_no in wanted}


def _first_difference(before: dict[str, Any], after: dict[str, Any]) -> str:
    for part in before:
        for key in sorted(set(before[part]) | set(after[part])):
            if before[part].get(key) != after[part].get(key):
                return f"{part} of {key}: {before[part].get(key)!r} before, {after[part].get(key)!r} after"
    return "(no difference)"


# -- the checks -----------------------------------------------------------------------------------------


class LiveChecks:
    """The end of a live run: ``run`` makes every check, counting them in ``checks``."""

    def __init__(
        self,
        centre: RunningCentre,
        counters: list[LiveCounter],
        registry: Any,
        touched: set[str],
        days: list[str],
    ) -> None:
        self.centre, self.counters, self.registry = centre, counters, registry
        self.touched, self.days = set(touched), days
        self.checks = 0
        self.step = 0

    def run(self, event: Callable[[str], None], restart: Callable[[str], None]) -> None:
        """``restart("kill")`` kills the centre with SIGKILL and starts it again on its journal."""
        self._reconciled(event)
        codes = [c.code for c in self.counters]
        persons = default_persons(self.touched)
        before = centre_state(self.centre, codes[0], codes, persons, self.days)
        restart("kill")
        after = centre_state(self.centre, codes[0], codes, persons, self.days)
        self.checks += 1
        if before != after:
            raise Violation("replay", self.step, "the centre answers otherwise after a kill and restart: "
                            + _first_difference(before, after))  # fmt: skip
        event("replay: the centre answers the same after a kill and restart")
        self.centre.stop()  # its journal is read as it is on disk
        self._journal(after, event)

    def _reconciled(self, event: Callable[[str], None]) -> None:
        """Every counter's ``reconcile --detail`` of each day, counters at once."""

        def reconcile(c: LiveCounter) -> None:
            for day in self.days:
                self.checks += 1
                outcome = c.run("reconcile", "--day", day, "--detail")
                answer = outcome.answer if isinstance(outcome.answer, dict) else {}
                if not outcome.ok or not answer.get("clean"):
                    raise Violation("reconciliation", self.step, f"{c.name}'s reconciliation of {day} is not clean: "
                                    f"{outcome.error or answer}")  # fmt: skip

        each_counter(self.counters, reconcile)
        event("reconciliation: every counter's day is clean")

    def _journal(self, answered: dict[str, Any], event: Callable[[str], None]) -> None:
        """The centre's journal and the counters' journals, checked by the deterministic checkers."""
        from ..terminal import CounterStore  # noqa: PLC0415

        stores = [CounterStore(c.journal_path) for c in self.counters]
        try:
            counters = [(c.name, c.code, store) for c, store in zip(self.counters, stores, strict=True)]
            self.checks += check_live_journal(
                self.centre.data_dir / "centre.db", _policy(), self.registry.population, self.touched, counters,
                step=self.step, answered=answered["balances"], event=event,
            )  # fmt: skip
        finally:
            for store in stores:
                store.close()


def check_live_journal(
    journal_path: Path,
    policy: Any,
    population: Any,
    touched: Iterable[str],
    counters: list[tuple[str, str, CounterStore]],
    *,
    step: int = 0,
    drain: bool = True,
    answered: Mapping[str, Any] | None = None,
    event: Callable[[str], None] | None = None,
) -> int:
    """A stopped centre's journal (``journal_path``) and its counters' journals (name, institution code,
    store), checked by the deterministic checkers (:class:`Checkers`: conservation and exactly-once entry by
    entry; with ``drain``, its final checks on the counters' journals) and by :func:`check_records`; the
    balances the centre process ``answered`` (psn_no -> fen) must be its journal's. Returns the checks made."""
    from ..engine import Settler  # noqa: PLC0415
    from ..ledger import SQLiteJournal, replay  # noqa: PLC0415

    journal = SQLiteJournal(journal_path, inline=True)
    checks = 0
    try:
        settler = Settler(policy, population)
        replay(journal, settler, observe=lambda entry: None)
        run = SimpleNamespace(
            world=SimpleNamespace(population=population),
            centre=SimpleNamespace(journal=journal, settler=settler),
            step=step,
            touched=set(touched),
            counters=[
                SimpleNamespace(name=name, institution=SimpleNamespace(fixmedins_code=code),
                                counter=SimpleNamespace(journal=store))
                for name, code, store in counters
            ],
            fresh_settler=lambda: Settler(policy, population),
        )  # fmt: skip
        checkers = Checkers(run)  # type: ignore[arg-type]  # the run-like object it reads
        checkers.after_step()  # conservation and exactly-once, entry by entry
        for psn_no, balance in (answered or {}).items():
            checks += 1
            journal_gives = int(settler.person_state(psn_no).balance)  # Checkers.after_step checked it
            if balance != journal_gives:
                raise Violation("conservation", step, f"person {psn_no}: the centre answers a balance of "
                                f"{balance} fen, its journal gives {journal_gives}")  # fmt: skip
        records = [r for name, _, store in counters for r in counter_records(name, store)]
        if drain:
            checkers.final()  # vouchers, queues, what counters believe against what the centre holds
        centre = {s: tuple(r.amount(a) for a in AMOUNTS) for s, r in settler.records.items()}
        cancelled = {r.mirror_of for r in settler.records.values() if r.mirror_of}
        live = {s for s, r in settler.records.items() if r.mirror_of is None and s not in cancelled}
        checks += check_records(records, centre, live, step)
        if event is not None:
            event(f"journals: {len(records)} counter records agree with the centre's {len(centre)}")
        return checks + checkers.checks
    finally:
        journal.close()


def _policy() -> Any:
    from ..policy import load_default_policy  # noqa: PLC0415

    return load_default_policy()
