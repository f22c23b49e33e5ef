"""The demo's day: a hospital's outpatient counter and a pharmacy's counter from 08:00 to 18:00 on the virtual
clock, in the scenario world (:class:`medsettle.scenario.world.ScenarioWorld`: the simulator's centre on an
inline journal, each counter with its own journal and a virtual card reader, the in-memory network and the
simulator's checkers after every patient).

Patients come by the hour with a morning peak, each drawn from the simulator's patients (Zipf) and identified
by their card in the counter's reader (by ID number when they have no active card). The day's troubles are
fixed, so that every seed tells the same story with other patients: the centre is down mid-morning (the
hospital takes cash against vouchers, the store-and-forward pharmacy settles provisionally), comes back on its
journal, the pharmacy forwards its queue, the vouchers are re-settled at lunchtime; in the afternoon the
pharmacy's card reader fails (patients not identified: cash and vouchers), is repaired and those vouchers are
re-settled with the patients' ID numbers; at closing each counter reconciles (3201) and the centre's journal is
replayed. A broken invariant stops the day (:class:`medsettle.sim.checkers.Violation`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import random
import shutil
from collections import Counter as Tally
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..centre.institutions import Institution
from ..engine import Settler
from ..engine.columns import COL
from ..engine.settler import EngineName
from ..ledger.journaled import CANCEL, SETTLE
from ..money import fen_to_decimal, to_fen
from ..readers import ReaderError
from ..scenario.format import Scenario
from ..scenario.runner import CARD_MISTAKES
from ..scenario.world import Desk, ScenarioWorld
from ..sim.world import World
from ..terminal import Identity, Receipt, Refused
from ..terminal.common import CounterError
from ..timeutil import SHANGHAI
from .readers import PcscReaders, VirtualReaders

DAY = dt.date(2026, 6, 1)  # the simulator's default day (its profiles start there)
OPENING, CLOSING = 8, 18  # hours of the day
HOSPITAL, PHARMACY = (
    "H13010000001",
    "P13010000002",
)  # a tier-3 hospital (cash and vouchers); a store-and-forward pharmacy
ROLE = {HOSPITAL: "hospital", PHARMACY: "pharmacy"}
PATIENTS = {HOSPITAL: 300, PHARMACY: 200}  # the day's patients at each counter
# each hour's share of the day's patients, from 08:00 to 17:00: the morning peak, a lunch lull, an afternoon bump
HOURLY = (12, 17, 15, 11, 7, 5, 8, 10, 9, 6)
OUTAGE = (dt.time(10, 5), dt.time(10, 50))
FORWARDED_AT = dt.time(10, 51)
OUTAGE_RESETTLED_AT = dt.time(12, 30)
READER_FAILURE = (dt.time(14, 20), dt.time(15, 35))  # the pharmacy's card reader
READER_RESETTLED_AT = dt.time(15, 40)


@dataclasses.dataclass
class Event:
    at: dt.datetime
    text: str


@dataclasses.dataclass
class Totals:
    """One institution's live settlements at the centre at the day's end, in fen."""

    code: str
    name: str
    bills: int = 0
    medfee: int = 0
    fund: int = 0
    account: int = 0
    cash: int = 0
    institution: int = 0

    def add(self, row: list[int]) -> None:
        self.bills += 1
        self.medfee += row[COL["medfee_sumamt"]]
        self.fund += row[COL["fund_pay_sumamt"]]
        self.account += row[COL["acct_pay"]]
        self.cash += row[COL["psn_cash_pay"]]
        self.institution += row[COL["hosp_part_amt"]]


@dataclasses.dataclass
class DayResult:
    seed: int
    engine: str  # the engine the centre ran on
    day: dt.date
    institutions: dict[str, str]  # code -> name, hospital first
    timeline: list[Event]
    totals: list[Totals]
    hourly: dict[int, list[int]]  # hour -> [fund, account, cash] in fen, as it moved at the counters that hour
    outage: tuple[dt.datetime, dt.datetime]
    reader_failure: tuple[dt.datetime, dt.datetime]
    patients: int
    vouchers: Tally[str]  # made, by why: "outage", "reader failure"
    resettled: int
    manual_claims: int
    provisional: int
    forwarded: int
    flagged: int
    refused: Tally[str]  # by the centre's refusal code
    reconciled: dict[str, bool]  # code -> its 3201 was clean
    settlements: int  # live at the centre at the end
    balanced: bool  # medfee = fund + account + cash + institution on every one of them
    checks: int  # invariant checks the simulator's checkers made

    @property
    def hours_add_up(self) -> bool:
        """The fund's and the account's payments by hour (the chart) add up to the centre's totals (the table)."""
        t = self.total
        return (sum(f[0] for f in self.hourly.values()), sum(f[1] for f in self.hourly.values())) == (t.fund, t.account)

    @property
    def total(self) -> Totals:
        all_ = Totals("all", "")
        for t in self.totals:
            for field in ("bills", "medfee", "fund", "account", "cash", "institution"):
                setattr(all_, field, getattr(all_, field) + getattr(t, field))
        return all_


def _at(time: dt.time) -> dt.datetime:
    return dt.datetime.combine(DAY, time)


class _DayWorld(ScenarioWorld):
    """The scenario world with the engine the demo was asked for (a scenario's centre runs on the core)."""

    def __init__(self, scenario: Scenario, world: World, engine: EngineName) -> None:
        self._engine_choice: EngineName = engine
        try:
            super().__init__(scenario, world)
        except BaseException:  # the engine asked for is not there: leave no journal directory behind
            if hasattr(self, "dir"):
                shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def fresh_settler(self) -> Settler:
        return Settler(self.world.policy, self.world.population, engine=self._engine_choice)


class _Day:
    """One day played: the patients and the scheduled troubles in time order, and what they left."""

    def __init__(
        self, world: World, seed: int, engine: EngineName, patients: dict[str, int], *, pcsc: bool = False
    ) -> None:
        self.world, self.seed = world, seed
        self.rng = random.Random(seed)
        scenario = Scenario(Path("medsettle demo"), "a day", "", _at(dt.time(OPENING)), [HOSPITAL, PHARMACY], [])
        self.w = _DayWorld(scenario, world, engine)
        try:
            self.readers = PcscReaders(self.w.desks) if pcsc else VirtualReaders(self.w.desks)
        except BaseException:
            self.w.close()
            raise
        self.patients = patients
        self.timeline: list[Event] = []
        self.hourly: dict[int, list[int]] = {h: [0, 0, 0] for h in range(OPENING, CLOSING + 1)}
        self.vouchers: Tally[str] = Tally()
        self.refused: Tally[str] = Tally()
        self.why_voucher: dict[str, str] = {}  # voucher -> why it was made
        self.unidentified: dict[str, str] = {}  # voucher -> the certno of the patient the broken reader missed
        self.firsts: set[str] = set()
        self.resettled = self.manual_claims = self.provisional = self.forwarded = self.flagged = 0
        self.reconciled: dict[str, bool] = {}
        self._cards: dict[str, Any] = {}

    # -- the schedule ---------------------------------------------------------------------------------

    def play(self) -> DayResult:
        try:
            self._sign_in()
            for _, _, action in self._schedule():
                action()
            self._close()
            return self._result()
        finally:
            self.readers.close()
            self.w.close()

    def _schedule(self) -> list[tuple[dt.datetime, int, Callable[[], None]]]:
        arrivals: list[tuple[dt.datetime, str]] = []
        for code in (HOSPITAL, PHARMACY):
            for _ in range(self.patients[code]):
                hour = self.rng.choices(range(OPENING, CLOSING), HOURLY)[0]
                when = _at(dt.time(hour)) + dt.timedelta(seconds=self.rng.uniform(0, 3600))
                arrivals.append((when, code))
        arrivals.sort()
        by_hour = Tally(when.hour for when, _ in arrivals)
        peak, count = max(sorted(by_hour.items()), key=lambda hc: hc[1])
        note = f"the morning peak: {count} patients this hour, the day's most"
        troubles: list[tuple[dt.time, Callable[[], None]]] = [
            (dt.time(peak), lambda: self._note(note)),
            (OUTAGE[0], self._outage),
            (OUTAGE[1], self._centre_back),
            (FORWARDED_AT, self._forward),
            (OUTAGE_RESETTLED_AT, lambda: self._resettle("outage")),
            (READER_FAILURE[0], self._reader_fails),
            (READER_FAILURE[1], self._reader_repaired),
            (READER_RESETTLED_AT, lambda: self._resettle("reader failure")),
        ]
        plan: list[tuple[dt.datetime, int, Callable[[], None]]] = [
            (_at(time), k, self._when(_at(time), action)) for k, (time, action) in enumerate(troubles)
        ]
        plan += [
            (when, len(troubles) + k, self._when(when, functools.partial(self._patient, code)))
            for k, (when, code) in enumerate(arrivals)
        ]
        plan.sort(key=lambda p: (p[0], p[1]))
        return plan

    def _when(self, when: dt.datetime, action: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            self.w.clock.advance_to(when.replace(tzinfo=SHANGHAI))
            action()

        return run

    def _note(self, text: str) -> None:
        self.timeline.append(Event(self.w.clock.now().replace(tzinfo=None), text))

    def _desk(self, code: str) -> Desk:
        return self.w.desks[code]

    def _check(self) -> None:
        if self.w.centre_up:
            self.w.checkers.after_step()

    # -- opening --------------------------------------------------------------------------------------

    def _sign_in(self) -> None:
        for code in (HOSPITAL, PHARMACY):
            self._desk(code).sim.counter.sign_in()
        self._note("the hospital's outpatient counter and the pharmacy's counter sign in (9001); patients arrive")

    # -- a patient --------------------------------------------------------------------------------------

    def _patient(self, code: str) -> None:
        who = self.rng.choices(self.world.patients, self.world.patient_weights)[0]
        psn_no = self.world.registry.by_certno[who.mdtrt_cert_no]
        self.w.touched.add(psn_no)
        desk = self._desk(code)
        identity = self._identify(code, psn_no, who)
        items = [
            {"med_list_codg": self.rng.choice(self.world.drugs), "pric": f"{self.rng.randint(100, 20000) / 100:.2f}",
             "cnt": str(self.rng.randint(1, 3))}
            for _ in range(self.rng.randint(1, 4))
        ]  # fmt: skip
        counter = desk.sim.counter
        try:
            receipt = counter.visit(identity, items) if code == HOSPITAL else counter.sell(identity, items)
        except Refused as refused:
            self.refused[refused.refusal or refused.code] += 1
            self._check()
            return
        self._receipt(code, receipt, who.mdtrt_cert_no if identity is None else None)
        self._check()

    def _identify(self, code: str, psn_no: str, who: Identity) -> Identity | None:
        """The patient's card read in the counter's reader; None when the reader has failed (nobody identified:
        cash and a voucher); the ID number (02) for a patient with no active card."""
        card = self.world.registry.usable_card_of(psn_no)
        if card is None or card.status != "active":
            return who
        if psn_no not in self._cards:
            from ..hardware.card import VirtualCard  # noqa: PLC0415 - the card OS is needed only once a card is read
            from ..hardware.personalise import profile_for  # noqa: PLC0415

            self._cards[psn_no] = VirtualCard.issue(profile_for(self.world.registry, psn_no))
        self.readers.insert(code, self._cards[psn_no])  # the last patient's card swapped for this one's
        try:
            return self._desk(code).sim.counter.read_card()
        except ReaderError as error:
            if error.code in CARD_MISTAKES:
                raise
            return None

    def _receipt(self, code: str, receipt: Receipt, unidentified_certno: str | None) -> None:
        flows = self.hourly[self.w.clock.now().hour]
        role = ROLE[code]
        if receipt.kind == "sale":
            flows[0] += to_fen(receipt.fund)
            flows[1] += to_fen(receipt.account)
            flows[2] += to_fen(receipt.cash)
        elif receipt.kind == "provisional":
            flows[2] += to_fen(receipt.cash)  # the fund's provisional share is settled when it is forwarded
            self.provisional += 1
            medfee, cash = yuan(to_fen(receipt.medfee)), yuan(to_fen(receipt.cash))
            self._first(f"{role} provisional", f"{role}: the first provisional settlement, with the rules cached at "
                        f"sign-in: {medfee} of which {cash} in cash, queued to forward")  # fmt: skip
        elif receipt.kind == "deferred":
            flows[2] += to_fen(receipt.medfee)
            why = "reader failure" if unidentified_certno is not None else "outage"
            self.vouchers[why] += 1
            self.why_voucher[receipt.voucher] = why
            if unidentified_certno is not None:
                self.unidentified[receipt.voucher] = unidentified_certno
            reason = receipt.note.split(": paid in cash")[0]  # the counter's own words: why no settlement
            self._first(f"{role} {why}", f"{role}: the first voucher ({reason}): the patient pays "
                        f"{yuan(to_fen(receipt.medfee))} in cash against {receipt.voucher}")  # fmt: skip

    def _first(self, key: str, text: str) -> None:
        if key not in self.firsts:
            self.firsts.add(key)
            self._note(text)

    # -- the troubles -----------------------------------------------------------------------------------

    def _outage(self) -> None:
        self.w.crash_centre()
        self._note("centre outage: the centre's process stops (the hospital takes cash against vouchers, "
                   "the store-and-forward pharmacy settles provisionally)")  # fmt: skip

    def _centre_back(self) -> None:
        self.w.restart_centre()  # the replay checker: what it answered before the outage is all there
        settled = len(self.w.centre.settler.records)
        self._note(f"the centre is back: restarted on its journal, its {settled:,} settlements replayed as they were")
        self._check()

    def _forward(self) -> None:
        counter = self._desk(PHARMACY).sim.counter
        outcomes = counter.forward()
        self._forwarded(outcomes)
        done = [o for o in outcomes if o["state"] == "forwarded"]
        refunds = sum(to_fen(o["refund_to_patient"]) for o in done)
        borne = sum(to_fen(o["institution_bears"]) for o in outcomes)
        self._note(f"pharmacy forwards its queue (2102): {len(done)} provisional sales settled, "
                   f"{yuan(refunds)} refunded to patients, {yuan(borne)} borne by the pharmacy")  # fmt: skip
        self._check()

    def _forwarded(self, outcomes: list[dict]) -> None:
        """What the forwarded sales moved: the fund's and account's shares, the surplus back to the patient."""
        if not outcomes:
            return
        flows = self.hourly[self.w.clock.now().hour]
        entries = {e["sale"]: e for e in self._desk(PHARMACY).sim.counter.journal.saf_entries()}
        for o in outcomes:
            if o["state"] == "forwarded":
                s = entries[o["sale"]]["setlinfo"]
                flows[0] += to_fen(s["fund_pay_sumamt"])
                flows[1] += to_fen(s["acct_pay"])
                flows[2] -= to_fen(o["refund_to_patient"])
                self.forwarded += 1
            else:
                self.flagged += 1

    def _resettle(self, why: str) -> None:
        for code in (HOSPITAL, PHARMACY):
            counter = self._desk(code).sim.counter
            pending = [v["voucher"] for v in counter.pending_vouchers() if self.why_voucher.get(v["voucher"]) == why]
            if not pending:
                continue
            refunds = self._settle_vouchers(code, pending)
            how = "with the patients' ID numbers" if why == "reader failure" else "(自费转医保)"
            self._note(f"{ROLE[code]} re-settles the {why}'s {len(pending)} vouchers {how}: "
                       f"{yuan(refunds)} refunded to patients")  # fmt: skip

    def _settle_vouchers(self, code: str, vouchers: list[str]) -> int:
        """Each voucher settled (the insured share refunded); returns the refunds in fen."""
        counter = self._desk(code).sim.counter
        flows = self.hourly[self.w.clock.now().hour]
        refunds = 0
        for voucher in vouchers:
            certno = self.unidentified.get(voucher)
            identity = Identity("02", certno) if certno else None
            if certno:
                self.w.touched.add(self.world.registry.by_certno[certno])
            try:
                receipt = counter.settle_voucher(voucher, identity)
            except Refused as refused:
                self.refused[refused.refusal or refused.code] += 1
                continue
            except CounterError:  # past the window or the year: a manual claim (not on the demo's day)
                self.manual_claims += 1
                continue
            self.resettled += 1
            flows[0] += to_fen(receipt.fund)
            flows[1] += to_fen(receipt.account)
            flows[2] -= to_fen(receipt.refund)
            refunds += to_fen(receipt.refund)
            self._check()
        return refunds

    def _reader_fails(self) -> None:
        self.readers.fail(PHARMACY)
        self._note("pharmacy: the card reader fails (it stops answering): patients cannot be identified")

    def _reader_repaired(self) -> None:
        self.readers.repair(PHARMACY)
        self._note(f"pharmacy: the card reader is repaired, after {self.vouchers['reader failure']} patients paid "
                   "cash against vouchers")  # fmt: skip

    # -- closing ----------------------------------------------------------------------------------------

    def _close(self) -> None:
        self.w.clock.advance_to(_at(dt.time(CLOSING)).replace(tzinfo=SHANGHAI))
        for code in (HOSPITAL, PHARMACY):
            counter = self._desk(code).sim.counter
            if counter.journal.saf_entries("queued", "forwarding"):
                self._forwarded(counter.forward())
            left = [v["voucher"] for v in counter.pending_vouchers()]
            if left:
                self._settle_vouchers(code, left)
        for code in (HOSPITAL, PHARMACY):
            desk = self._desk(code)
            answer = desk.sim.counter.reconcile()
            self.reconciled[code] = bool(answer.get("clean"))
            self._note(f"closing: the {ROLE[code]}'s reconciliation with the centre (3201): "
                       f"{'clean' if self.reconciled[code] else 'NOT clean'}")  # fmt: skip
            self.w.checkers.reconciled(desk.sim, answer)
        self.w.checkers.after_step()
        self.w.checkers.replay_equals_live("the day's end")
        self.w.checkers.final()
        self._note(f"the centre's journal replayed into a fresh engine equals the live state; "
                   f"{self.w.checkers.checks:,} invariant checks held")  # fmt: skip

    def _result(self) -> DayResult:
        institutions: dict[str, Institution] = {i.fixmedins_code: i for i in self.w.institutions}
        totals = {code: Totals(code, institutions[code].fixmedins_name) for code in (HOSPITAL, PHARMACY)}
        settled: dict[str, tuple[str, list[int]]] = {}
        for entry in self.w.centre.journal.entries():
            if entry.kind == SETTLE:
                settled[entry.body["setl_id"]] = (entry.body.get("fixmedins_code", ""), entry.body["row"])
            elif entry.kind == CANCEL:
                settled.pop(entry.body["original"], None)
        balanced = True
        for code, row in settled.values():
            parts = (row[COL["fund_pay_sumamt"]] + row[COL["acct_pay"]] + row[COL["psn_cash_pay"]]
                     + row[COL["hosp_part_amt"]])  # fmt: skip
            balanced = balanced and row[COL["medfee_sumamt"]] == parts
            if code in totals:
                totals[code].add(row)
        return DayResult(
            seed=self.seed,
            engine=self.w.centre.settler.engine_name,
            day=DAY,
            institutions={code: t.name for code, t in totals.items()},
            timeline=self.timeline,
            totals=list(totals.values()),
            hourly=self.hourly,
            outage=(_at(OUTAGE[0]), _at(OUTAGE[1])),
            reader_failure=(_at(READER_FAILURE[0]), _at(READER_FAILURE[1])),
            patients=sum(self.patients.values()),
            vouchers=self.vouchers,
            resettled=self.resettled,
            manual_claims=self.manual_claims,
            provisional=self.provisional,
            forwarded=self.forwarded,
            flagged=self.flagged,
            refused=self.refused,
            reconciled=self.reconciled,
            settlements=len(settled),
            balanced=balanced,
            checks=self.w.checkers.checks,
        )


def yuan(fen: int) -> str:
    """Fen as yuan with thousands separators, as the demo prints money."""
    return f"{fen_to_decimal(fen):,}"


def play_day(
    seed: int = 0,
    *,
    engine: EngineName = "auto",
    patients: dict[str, int] | None = None,
    world: World | None = None,
    pcsc: bool = False,
) -> DayResult:
    """Play the demo's day for ``seed`` (the same seed, the same day). ``patients``: how many come to each
    counter (default :data:`PATIENTS`); ``world``: the simulator's world, built afresh unless given;
    ``pcsc``: the cards read through a pcscd of its own (:class:`~.readers.PcscReaders`), not the virtual bus."""
    return _Day(world or World(), seed, engine, patients or PATIENTS, pcsc=pcsc).play()
