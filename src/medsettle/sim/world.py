"""A simulated world: a centre, counters of several institutions, patients and their bills, on one seed.

:class:`World` holds what every seed shares and is built once per process: the policy, the population and its
registry, the institutions, the catalogue and the patients' Zipf weights. :meth:`World.run` plays one seed: a
fresh centre on a fresh journal, fresh counter journals, one PRNG for every choice and fault, the virtual clock,
the in-memory network, and the checkers after every step. The same seed gives the same run byte for byte; its
trace's hash says so.

A run is days of patients (each day 08:00 to about 18:00 on the virtual clock), each day ended at every counter
(network restored, the journal resumed, queued entries forwarded, vouchers re-settled, 3201 reconciled), then
a drain: every counter finishes what it can, the clock moves past every re-settlement window, and what is
still a voucher is tried once more, so each ends settled or a manual claim.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import shutil
import tempfile
from collections import Counter as Tally
from pathlib import Path
from typing import Any

from ..centre.institutions import Institution, default_institutions
from ..centre.registry import Registry
from ..centre.service import Centre
from ..engine import Population, Settler
from ..errors import MedsettleError
from ..hardware.bus import BusEntry, VirtualBus
from ..hardware.card import VirtualCard
from ..hardware.personalise import profile_for
from ..ledger import SQLiteJournal
from ..policy import Policy, load_default_policy
from ..readers import ReaderError, VirtualReader
from ..seams import Crashed, RaiseOnCrash, SeededRandomness
from ..terminal import CentreUnreachable, Counter, CounterStore, Identity
from ..terminal.crash import POINTS
from ..terminal.states import IllegalTransition
from ..timeutil import SHANGHAI
from .checkers import Checkers, Violation
from .clock import VirtualClock
from .network import SimNetwork
from .profiles import FAULT_KINDS, Profile, profile_named
from .trace import Trace

REGION = "130100"  # the institutions' region; a few patients come from the policy's other region
POPULATION = 3000
PATIENTS = 400  # the persons who come to the counters, drawn by Zipf (s = 1)
RESEND_FOR_S = 3.0  # a counter's resend loop, on the virtual clock
MAX_INSTITUTIONS = 500
WINDOW_PAST = dt.timedelta(days=8)  # past every re-settlement window (docs/failures.md: 7 days)
CARD_SHARE = 0.5  # of the patients with an active card, those who hand it over (the others their ID card)
NO_CARD = "NO_CARD"  # what the reader says of a card pulled during its read: the clerk takes the ID card instead


@dataclasses.dataclass
class RunOptions:
    seed: int
    profile: str = "default"
    days: int = 1
    institutions: int = 10
    engine: str = "core"

    def command(self, verb: str = "replay") -> str:
        """The one line that plays this run again."""
        return (f"medsettle sim {verb} --seed {self.seed} --profile {self.profile} --days {self.days} "
                f"--institutions {self.institutions} --engine {self.engine}")  # fmt: skip


@dataclasses.dataclass
class RunResult:
    options: RunOptions
    trace_sha256: str
    steps: int
    bills: int
    faults: dict[str, int]
    outcomes: dict[str, int]
    vouchers: dict[str, int]
    checks: int
    violation: Violation | None = None
    replay_line: str = ""
    recent: list[str] = dataclasses.field(default_factory=list)  # the trace's last events (what led to a violation)

    @property
    def ok(self) -> bool:
        return self.violation is None


@dataclasses.dataclass
class SimCounter:
    """A counter of the world: its institution, journal file, and the Counter over them (reopened after a
    power loss)."""

    name: str
    institution: Institution
    path: Path
    counter: Counter
    stays: list[str] = dataclasses.field(default_factory=list)  # stays admitted and not yet settled
    sales: list[str] = dataclasses.field(default_factory=list)  # settled sales a patient may come back to cancel
    disk_full_until: int = 0  # the step at which a full disk is cleared (0: not full)
    signed_in: dt.date | None = None  # the day of the counter's sign-in (None: its last try failed)
    bus: VirtualBus | None = None  # the counter's card reader and PSAM (the virtual reader backend)
    broken: dict[str, int] = dataclasses.field(default_factory=dict)  # "reader"/"psam" -> the step it is repaired

    @property
    def entry(self) -> BusEntry:
        assert self.bus is not None
        return self.bus.counters[self.name]


class World:
    """What every seed shares: built once, then :meth:`run` any number of seeds."""

    def __init__(self, policy: Policy | None = None, *, population: int = POPULATION) -> None:
        self.policy = policy or load_default_policy()
        self.population = Population.generate(self.policy, population, seed=0)
        self.registry = Registry.generate(self.population)
        self.all_institutions = default_institutions(self.policy)
        local = [p for i, p in enumerate(self.population.psn_nos) if self.population.region_of(i) == REGION]
        other = [p for i, p in enumerate(self.population.psn_nos) if self.population.region_of(i) != REGION]
        chosen = local[: PATIENTS - PATIENTS // 20] + other[: PATIENTS // 20]  # 5% from another region
        random.Random(0).shuffle(chosen)
        self.patients = [Identity("02", self.registry.identities[p].certno) for p in chosen]
        self.patient_weights = [1.0 / (k + 1) for k in range(len(self.patients))]  # Zipf, s = 1
        catalogue = self.policy.region(REGION).catalogues[0].items
        self.drugs = [item.med_list_codg for item in catalogue if item.chrgitm_lv in ("01", "02")]
        self._local_institutions = [i for i in self.all_institutions if i.admdvs == REGION]

    def institutions(self, n: int) -> list[Institution]:
        """``n`` institutions of the region, one counter each: the region's own five (hospitals of tiers 3, 2
        and 1, the last store-and-forward, and two pharmacies, one store-and-forward), then more like them
        with codes of their own. One counter per institution: a 3201 reconciles an institution's day, which
        is one counter's journal here (a hospital of several counters reconciles from its HIS's database)."""
        if not 1 <= n <= MAX_INSTITUTIONS:
            raise ValueError(f"--institutions: 1 to {MAX_INSTITUTIONS}")
        out = []
        for k in range(n):
            model = self._local_institutions[k % len(self._local_institutions)]
            if k < len(self._local_institutions):
                out.append(model)
                continue
            code = f"{model.fixmedins_code[0]}{REGION}{k + 1:05d}"
            out.append(
                model.model_copy(update={"fixmedins_code": code, "fixmedins_name": f"{model.fixmedins_name} {k + 1}"})
            )
        return out

    def run(
        self,
        options: RunOptions,
        *,
        echo: Any = None,
        workdir: Path | None = None,
        delivered: list[tuple[float, bytes]] | None = None,
    ) -> RunResult:
        """Play one seed. ``echo``: called with every trace line (replay's verbose trace); ``delivered``: a
        list to which every request the centre received is appended with its virtual time (the baseline)."""
        run = Run(self, options, echo=echo, workdir=workdir, delivered=delivered)
        return run.play()


class Run:
    """One seed of a world, played to its end or to the first violation."""

    def __init__(
        self,
        world: World,
        options: RunOptions,
        *,
        echo: Any = None,
        workdir: Path | None = None,
        delivered: list[tuple[float, bytes]] | None = None,
    ) -> None:
        self.world, self.options = world, options
        self.profile: Profile = profile_named(options.profile)
        if options.days < 1:
            raise ValueError("--days: at least 1")
        self.rng = random.Random(options.seed)
        self.clock = VirtualClock(self.profile.start.replace(tzinfo=SHANGHAI))
        self.trace = Trace(echo, redact=None)
        self.faults: Tally[str] = Tally({k: 0 for k in FAULT_KINDS})
        self.outcomes: Tally[str] = Tally()
        self.step = 0
        self.bills = 0
        self.touched: set[str] = set()  # persons who came to a counter since the last check
        self.unidentified: dict[str, str] = {}  # voucher -> the ID number of the patient no reader identified
        # counter -> the ID number of the last patient its reader missed (a sale cut short by a power loss leaves
        # its voucher to resume: it is that patient's)
        self._unread: dict[str, str] = {}
        self._cards: dict[str, VirtualCard] = {}  # psn_no -> the patient's card (issued at the first read)
        self._own_dir = workdir is None
        shm = Path("/dev/shm")
        self.dir = workdir or Path(tempfile.mkdtemp(prefix="medsettle-sim-", dir=shm if shm.is_dir() else None))
        self.trace.redact = str(
            self.dir
        )  # a message naming a journal's path names it as <run>/...: same bytes each run
        self.institutions = world.all_institutions + world.institutions(options.institutions)[5:]
        self.network = SimNetwork(self._deliver, self.clock, self.rng, self.profile, self.trace, self._count)
        self.network.delivered = delivered
        self.centre = self._open_centre()
        self.checkers = Checkers(self)
        self.counters = [self._new_counter(k, inst) for k, inst in enumerate(world.institutions(options.institutions))]

    # -- the parts --------------------------------------------------------------------------------

    def _open_centre(self) -> Centre:
        world = self.world
        settler = Settler(world.policy, world.population, engine=self.options.engine)  # type: ignore[arg-type]
        world.registry.card_reads.clear()  # what a restart forgets anyway
        journal = SQLiteJournal(self.dir / "centre.db", clock=self.clock, inline=True)
        return Centre(settler, journal, self.institutions, registry=world.registry, clock=self.clock,
                      randomness=SeededRandomness(self.rng.getrandbits(64)))  # fmt: skip

    def fresh_settler(self) -> Settler:
        return Settler(self.world.policy, self.world.population, engine=self.options.engine)  # type: ignore[arg-type]

    def _deliver(self, request: Any) -> dict:
        return self.centre.submit(request).result()  # resolved already: the journal commits inline

    def _new_counter(self, k: int, institution: Institution) -> SimCounter:
        name = f"{institution.fixmedins_code}-{k}"
        path = self.dir / f"{name}.db"
        bus = VirtualBus([name])
        counter = SimCounter(name, institution, path, self._counter(name, institution, path, bus), bus=bus)
        self._sign_in(counter)
        return counter

    def _counter(
        self, name: str, institution: Institution, path: Path, bus: VirtualBus | None, crash_at: str | None = None
    ) -> Counter:
        return Counter(
            institution.fixmedins_code,
            CounterStore(path, clock=self.clock),
            self.network.transport(name),
            reader=VirtualReader(bus=bus, clock=self.clock) if bus is not None else None,
            dev_no=name.rsplit("-", 1)[1].rjust(3, "0"),
            resend_for=RESEND_FOR_S,
            clock=self.clock,
            randomness=SeededRandomness(self.rng.getrandbits(64)),
            crash=RaiseOnCrash(),
            crash_at=crash_at,
        )

    def _reopen(self, c: SimCounter, crash_at: str | None = None) -> None:
        c.counter.journal.close()
        c.counter = self._counter(c.name, c.institution, c.path, c.bus, crash_at)
        if c.disk_full_until:
            c.counter.journal.limit_size(0)  # the disk is still full after a restart

    def _sign_in(self, c: SimCounter) -> None:
        try:
            c.counter.sign_in()
            c.signed_in = self.clock.now().date()
        except MedsettleError as exc:
            self._bug_if_illegal(exc)
            c.signed_in = None
            self.trace.event(self.step, f"{c.name} sign-in failed: {exc}")

    def _bug_if_illegal(self, exc: MedsettleError) -> None:
        """A counter's refusal is part of the run; an illegal transition of a sale's state is a bug in it."""
        if isinstance(exc, IllegalTransition):
            raise Violation("counter-states", self.step, f"{exc}") from None

    def _count(self, kind: str) -> None:
        self.faults[kind] += 1

    # -- the run ----------------------------------------------------------------------------------

    def play(self) -> RunResult:
        try:
            try:
                for day in range(self.options.days):
                    self._day(day)
                self._drain()
                self.checkers.final()
            except Violation as violation:
                return self._result(violation)
            return self._result(None)
        finally:
            self.close()

    def close(self) -> None:
        for c in self.counters:
            c.counter.journal.close()
        self.centre.journal.close()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _result(self, violation: Violation | None) -> RunResult:
        self.trace.event(self.step, "final state", self.checkers.state_digest().encode())
        vouchers: Tally[str] = Tally()
        for c in self.counters:
            for v in c.counter.journal.vouchers():
                vouchers[v["state"]] += 1
        return RunResult(
            options=self.options,
            trace_sha256=self.trace.hexdigest(),
            steps=self.step,
            bills=self.bills,
            faults=dict(self.faults),
            outcomes=dict(sorted(self.outcomes.items())),
            vouchers=dict(sorted(vouchers.items())),
            checks=self.checkers.checks,
            violation=violation,
            replay_line=self.options.command("replay"),
            recent=list(self.trace.recent),
        )

    def _day(self, day: int) -> None:
        opening = (self.profile.start + dt.timedelta(days=day)).replace(tzinfo=SHANGHAI)
        self.clock.advance_to(opening)
        if day:
            for c in self.counters:  # each morning the clerk signs in: yesterday's sign_no is closed
                self._sign_in(c)
        patients = self.profile.patients_per_counter * len(self.counters)
        gap_s = 10 * 3600 / patients  # the day's patients spread over ten hours
        for _ in range(patients):
            self.clock.advance(self.rng.uniform(0.2, 1.8) * gap_s)
            self._step()
        self._end_of_day()

    def _step(self) -> None:
        self.step += 1
        self.network.step = self.step
        c = self.rng.choice(self.counters)
        self._step_faults(c)
        if c.signed_in != self.clock.now().date():  # the clerk signs in before the next patient
            self._sign_in(c)
        crash_at = None
        if self.network.faults_on and self._chance("power_loss"):
            crash_at = self.rng.choice(POINTS)
            self.trace.event(self.step, f"{c.name} power loss armed at {crash_at}")
            self._reopen(c, crash_at)
        try:
            self._patient_at(c)
        except Crashed as crashed:
            self.trace.event(self.step, f"{c.name} power lost at {crashed}")
            self._restart_counter(c)
        else:
            if crash_at is not None:  # the point was not reached: the counter runs on without it
                self._reopen(c)
        self.network.release_held()
        self.checkers.after_step()

    def _chance(self, kind: str) -> bool:
        p = self.profile.chance(kind)
        if p and self.rng.random() < p:
            self._count(kind)
            return True
        return False

    def _step_faults(self, c: SimCounter) -> None:
        if self._chance("centre_crash"):
            self.trace.event(self.step, "centre crash and restart")
            self.restart_centre()
        if c.disk_full_until and self.step >= c.disk_full_until:
            c.disk_full_until = 0
            c.counter.journal.limit_size(None)
            self.trace.event(self.step, f"{c.name} disk repaired")
            self._restart_counter(c)
        elif not c.disk_full_until and self._chance("disk_full"):
            c.disk_full_until = self.step + self.rng.randint(1, 40)
            c.counter.journal.limit_size(0)
            self.trace.event(self.step, f"{c.name} disk full")
        if self._chance("partition"):
            seconds = self.rng.uniform(60, 1800)
            self.network.partition(c.name, seconds)
            self.trace.event(self.step, f"{c.name} partitioned for {seconds:.0f} s")
        self._equipment_faults(c)

    def _equipment_faults(self, c: SimCounter) -> None:
        """The card reader (its PC/SC service) or the PSAM stops answering for a while, then is repaired."""
        for part, kind in (("reader", "reader_dead"), ("psam", "psam_failed")):
            if part in c.broken and self.step >= c.broken[part]:
                self._repair(c, part)
            elif part not in c.broken and self._chance(kind):
                c.broken[part] = self.step + self.rng.randint(1, 30)
                if part == "reader":
                    self._bus(c).stop_service()
                else:
                    c.entry.psam.set_faults(mute=True)
                self.trace.event(self.step, f"{c.name} {part} stops answering")

    def _bus(self, c: SimCounter) -> VirtualBus:
        assert c.bus is not None
        return c.bus

    def _repair(self, c: SimCounter, part: str) -> None:
        del c.broken[part]
        if part == "reader":
            self._bus(c).start_service()
        else:
            c.entry.psam.clear_faults()
        self.trace.event(self.step, f"{c.name} {part} repaired")

    def restart_centre(self) -> None:
        """The centre process dies and starts again on its journal: what it answered must come back."""
        before = self.checkers.live_state()
        self.centre.journal.close()
        self.centre = self._open_centre()
        self.checkers.same_state("the centre's state after a crash and restart", before, self.checkers.live_state())

    def _restart_counter(self, c: SimCounter) -> None:
        self._reopen(c)
        try:
            resumed = c.counter.resume()
            self.trace.event(self.step, f"{c.name} resumed: {resumed}")
        except MedsettleError as exc:
            self._bug_if_illegal(exc)
            self.trace.event(self.step, f"{c.name} resume stopped: {exc.code}: {exc}")
            self.outcomes["resume stopped"] += 1

    # -- what a patient does at a counter -------------------------------------------------------

    def _patient(self) -> Identity:
        who = self.rng.choices(self.world.patients, self.world.patient_weights)[0]
        self.touched.add(self.world.registry.by_certno[who.mdtrt_cert_no])
        return who

    def _identified(self, c: SimCounter, who: Identity) -> Identity | None:
        """Who the counter settles for: the patient's card read in its reader (half of those with an active
        card hand it over), their ID card otherwise, or a card pulled during the read; None when the reader or
        its PSAM has failed (nobody identified: cash and a voucher, re-settled later with the ID number)."""
        registry = self.world.registry
        psn_no = registry.by_certno[who.mdtrt_cert_no]
        card = registry.usable_card_of(psn_no)
        if card is None or card.status != "active" or self.rng.random() >= CARD_SHARE:
            return who
        if psn_no not in self._cards:
            self._cards[psn_no] = VirtualCard.issue(profile_for(registry, psn_no))
        slot = c.entry.card
        if slot.inserted:
            slot.remove()
        slot.insert(self._cards[psn_no])
        if self._chance("card_pulled"):
            slot.remove()
            self.trace.event(self.step, f"{c.name} card pulled during its read")
        try:
            return c.counter.read_card()
        except ReaderError as exc:
            if exc.code == NO_CARD:
                return who  # the clerk asks for the ID card
            self.trace.event(self.step, f"{c.name} card not read: {exc.code}: {exc}")
            return None

    def _settle_voucher(self, c: SimCounter, voucher: str) -> Any:
        """A voucher re-settled: a patient no reader identified shows the ID card this time."""
        certno = self.unidentified.get(voucher)
        if certno is None:
            _, sale = c.counter.journal.require_sale(c.counter.journal.require_voucher(voucher)["sale"])
            if sale.get("identity") is None and c.name in self._unread:  # made by a sale a power loss cut short
                certno = self.unidentified[voucher] = self._unread[c.name]
        if certno is not None:
            self.touched.add(self.world.registry.by_certno[certno])
        return c.counter.settle_voucher(voucher, Identity("02", certno) if certno else None)

    def _items(self, most: int = 4) -> list[dict]:
        return [
            {"med_list_codg": self.rng.choice(self.world.drugs), "pric": f"{self.rng.randint(100, 20000) / 100:.2f}",
             "cnt": str(self.rng.randint(1, 3))}
            for _ in range(self.rng.randint(1, most))
        ]  # fmt: skip

    def _patient_at(self, c: SimCounter) -> None:
        counter, tier = c.counter, c.institution.tier
        roll = self.rng.random()
        try:
            if c.stays and roll < 0.3:
                self._stay_step(c)
            elif c.sales and roll < 0.35:
                sale = c.sales.pop(self.rng.randrange(len(c.sales)))
                self._receipt(c, "cancel", counter.cancel(sale))
            elif tier != "pharmacy" and roll > 0.93:
                who = self._patient()
                c.stays.append(counter.admit(self._identified(c, who) or who))  # no card read: the ID card
                self.outcomes["admitted"] += 1
            elif counter.pending_vouchers() and roll < 0.45:
                voucher = counter.pending_vouchers()[0]["voucher"]
                self._receipt(c, "voucher", self._settle_voucher(c, voucher))
            else:
                self.bills += 1
                items = self._items()
                who = self._patient()
                identity = self._identified(c, who)
                if identity is None:
                    self._unread[c.name] = who.mdtrt_cert_no
                receipt = counter.sell(identity, items) if tier == "pharmacy" else counter.visit(identity, items)
                if identity is None and receipt.voucher:
                    self.unidentified[receipt.voucher] = who.mdtrt_cert_no
                self._receipt(c, "sale" if tier == "pharmacy" else "visit", receipt)
            if counter.journal.saf_entries("queued"):
                counter.forward()
        except Crashed:
            raise
        except MedsettleError as exc:
            self._bug_if_illegal(exc)
            self.outcomes[f"refused {exc.code}"] += 1
            self.trace.event(self.step, f"{c.name} refused: {exc.code}: {exc}")

    def _stay_step(self, c: SimCounter) -> None:
        stay = c.stays[0]
        state, data = c.counter.journal.require_sale(stay)
        if not data.get("lines"):
            c.counter.stay_fees(stay, self._items(6))
            self.outcomes["stay fees"] += 1
            return
        c.stays.pop(0)
        self._settle_stay(c, stay)

    def _settle_stay(self, c: SimCounter, stay: str) -> None:
        """The final settlement; no answer and the patient going home: a 2601 and a cash voucher."""
        self.bills += 1
        try:
            receipt = c.counter.settle_stay(stay, final=True)
        except CentreUnreachable:
            receipt = c.counter.defer_stay(stay)
        self._receipt(c, "stay", receipt)

    def _receipt(self, c: SimCounter, what: str, receipt: Any) -> None:
        self.outcomes[f"{what} {receipt.kind}"] += 1
        split = f"{receipt.medfee} fund {receipt.fund} account {receipt.account} cash {receipt.cash}"
        self.trace.event(self.step, f"{c.name} {what}: {receipt.kind} {receipt.sale} {receipt.setl_id} {split}")
        if receipt.kind == "sale" and what in ("sale", "visit") and self.rng.random() < 0.05:
            c.sales.append(receipt.sale)

    # -- the end of a day and the drain -------------------------------------------------------------

    def _finish_counters(self) -> None:
        """Network restored: each counter resumes, forwards its queue and re-settles its vouchers."""
        self.network.faults_on = False
        self.network.heal()
        for c in self.counters:
            self.step += 1
            self.network.step = self.step
            if c.disk_full_until:  # equipment repaired
                c.disk_full_until = 0
                c.counter.journal.limit_size(None)
            for part in list(c.broken):
                self._repair(c, part)
            self._restart_counter(c)
            try:
                c.counter.forward()
            except MedsettleError as exc:
                self._bug_if_illegal(exc)
                self.trace.event(self.step, f"{c.name} forward stopped: {exc.code}: {exc}")
            for v in c.counter.pending_vouchers():
                try:
                    self._receipt(c, "voucher", self._settle_voucher(c, v["voucher"]))
                except MedsettleError as exc:
                    self._bug_if_illegal(exc)
                    self.outcomes[f"voucher {exc.code}"] += 1
                    self.trace.event(self.step, f"{c.name} voucher {v['voucher']}: {exc.code}: {exc}")
            self.checkers.after_step()

    def _end_of_day(self) -> None:
        self._finish_counters()
        for c in self.counters:
            for stay in list(c.stays):  # discharged by the evening, settled or given a voucher
                c.stays.remove(stay)
                try:
                    self._stay_final(c, stay)
                except MedsettleError as exc:
                    self._bug_if_illegal(exc)
                    self.trace.event(self.step, f"{c.name} stay {stay}: {exc.code}: {exc}")
        self.restart_centre_if_asked()
        for c in self.counters:
            try:
                answer = c.counter.reconcile()
            except MedsettleError as exc:
                self._bug_if_illegal(exc)
                raise Violation(
                    "reconciliation", self.step, f"{c.name}'s 3201 was refused: {exc.code}: {exc}"
                ) from None
            self.checkers.reconciled(c, answer)
        self.checkers.replay_equals_live("the day's end")
        self.network.faults_on = True

    def _stay_final(self, c: SimCounter, stay: str) -> None:
        _, data = c.counter.journal.require_sale(stay)
        if not data.get("lines"):
            c.counter.stay_fees(stay, self._items(3))
        self._settle_stay(c, stay)

    def restart_centre_if_asked(self) -> None:
        if self._chance("centre_crash"):
            self.trace.event(self.step, "centre crash and restart at the day's end")
            self.restart_centre()

    def _drain(self) -> None:
        self._finish_counters()
        self.clock.advance_to(self.clock.now() + WINDOW_PAST)
        self.trace.event(self.step, f"the clock moved past every window: {self.clock.now():%Y-%m-%d %H:%M}")
        for c in self.counters:
            self._sign_in(c)
        self._finish_counters()
        self.checkers.replay_equals_live("the end")
