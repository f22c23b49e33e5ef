"""Live mode (docs/simulation.md 'Live mode'): the simulator's kind of world against real processes.

A ``medsettle serve`` process on a data directory of its own; a fault proxy on loopback in front of it for
each counter; each counter driven through ``medsettle terminal`` (a process per command, from its own
thread, so counters work at once as they do in a town). From one ``random.Random(seed)`` come the patients,
the bills and the faults: requests and answers dropped, exchanges delayed, connections reset, the centre
blackholed for a command, counters losing power at their crash points (``MEDSETTLE_CRASH_AT``, then
``resume``), and the centre killed with SIGKILL and started again mid-run.

The run is seeded but not byte-identical: real processes, real clocks and threads decide what interleaves.
Midnight, the year end and the re-settlement windows are the deterministic mode's alone (the clock is real).

At the end the network is healed, every counter resumes, forwards its queue, re-settles its vouchers and
reconciles its day; then the checks of :mod:`medsettle.sim.live_checks` run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import shutil
import tempfile
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..terminal.crash import POINTS
from ..testing.centre import RunningCentre
from .checkers import Violation
from .live_checks import LiveChecks, centre_state
from .live_counter import LiveCounter, Outcome, each_counter
from .profiles import Profile, profile_named

REGION = "130100"
# the region's counters in the order a run takes them: a pharmacy, a tier-3 hospital, the tier-1 hospital and
# the pharmacy that settle provisionally (store-and-forward), a tier-2 hospital
CODES = ("P13010000001", "H13010000001", "H13010000003", "P13010000002", "H13010000002")
MAX_COUNTERS = len(CODES)  # one counter per institution: a 3201 reconciles one counter's journal
PERSONS = 200  # who comes to the counters, drawn by Zipf (s = 1)
LIVE_FAULTS = ("request_dropped", "answer_dropped", "delayed", "reset", "blackhole", "power_loss", "centre_kill")
# a live step's chance of each fault: the profile's (per request or per step) scaled up, a live run having
# tens of steps where a deterministic one has hundreds
_FROM_PROFILE = {
    "request_dropped": (("request_lost",), 3.0),
    "answer_dropped": (("answer_lost",), 3.0),
    "delayed": (("delayed",), 3.0),
    "reset": (("duplicated", "reordered"), 2.0),
    "blackhole": (("partition",), 5.0),
    "power_loss": (("power_loss",), 4.0),
}
MOST_CHANCE = 0.5  # ok-float: a probability
MOST_NETWORK = 0.8  # ok-float: the chance of a network fault at one command, at most
NETWORK_FAULTS = ("request_dropped", "answer_dropped", "delayed", "reset", "blackhole")
CANCELS = 0.08  # ok-float: the chance that a patient comes back to have a settled sale cancelled
SETTLE_INFNOS = {"sell": "2102", "visit": "2207"}  # the message a dropped settle aims at
# the crash points a command of each flow may reach (a bill's: some only when its settle gets no answer)
_BILL_POINTS = (*POINTS[:5], "reversal_written", "saf_recorded")
FLOW_POINTS = {
    "sell": _BILL_POINTS,
    "visit": _BILL_POINTS,
    "resettle": ("voucher_settle_written", "voucher_settle_sent"),
}
DOWN_S = (0.2, 1.5)  # how long the killed centre stays down


@dataclasses.dataclass
class LiveOptions:
    seed: int
    profile: str = "default"
    counters: int = 3
    patients: int = 6  # bills at each counter

    def command(self) -> str:
        """The one line that plays this run again (seeded, not byte-identical)."""
        return (f"medsettle sim live --seed {self.seed} --profile {self.profile} --counters {self.counters} "
                f"--patients {self.patients}")  # fmt: skip


@dataclasses.dataclass
class LiveResult:
    options: LiveOptions
    bills: int
    commands: int
    faults: dict[str, int]
    outcomes: dict[str, int]
    vouchers: dict[str, int]
    checks: int
    seconds: float  # ok-float: real time
    violation: Violation | None = None
    recent: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.violation is None

    def as_json(self) -> dict[str, Any]:
        v = self.violation
        return {
            "seed": self.options.seed,
            "profile": self.options.profile,
            "counters": self.options.counters,
            "patients": self.options.patients,
            "bills": self.bills,
            "commands": self.commands,
            "faults": self.faults,
            "outcomes": self.outcomes,
            "vouchers": self.vouchers,
            "checks": self.checks,
            "seconds": round(self.seconds, 1),
            "ok": self.ok,
            "violation": None if v is None else {"invariant": v.invariant, "step": v.step, "detail": v.detail},
            "replay": self.options.command(),
        }


def live_chances(profile: Profile) -> dict[str, float]:
    """Each live fault's chance at one command of a counter, from ``profile``'s probabilities."""
    chances = {}
    for kind, (sources, scale) in _FROM_PROFILE.items():
        chances[kind] = min(MOST_CHANCE, scale * sum(profile.chance(s) for s in sources))
    network = sum(p for kind, p in chances.items() if kind in NETWORK_FAULTS)
    if network > MOST_NETWORK:  # one network fault a command at most: each keeps its share of the chance
        chances.update({kind: p * MOST_NETWORK / network for kind, p in chances.items() if kind in NETWORK_FAULTS})
    return chances


class _Persons:
    """The patients: persons of the centre's default population (what ``serve`` generates), 5% of them
    insured in another region, drawn by Zipf; and the catalogue's drugs."""

    def __init__(self) -> None:
        from ..policy import load_default_policy  # noqa: PLC0415  (a second: only when a run starts)
        from ..testing.centre import _default_persons, default_registry  # noqa: PLC0415

        persons = _default_persons()
        local = [p for p in persons if p.insuplc_admdvs == REGION]
        other = [p for p in persons if p.insuplc_admdvs != REGION]
        chosen = local[: PERSONS - PERSONS // 20] + other[: PERSONS // 20]
        random.Random(0).shuffle(chosen)
        self.persons = chosen
        self.weights = [1.0 / (k + 1) for k in range(len(chosen))]
        self.registry = default_registry()
        catalogue = load_default_policy().region(REGION).catalogues[0].items
        self.drugs = [item.med_list_codg for item in catalogue if item.chrgitm_lv in ("01", "02")]


class LiveRun:
    """One seed against real processes, from start to the checks; :meth:`play` returns its result."""

    def __init__(self, options: LiveOptions, *, echo: Callable[[str], None] | None = None) -> None:
        if not 1 <= options.counters <= MAX_COUNTERS:
            raise ValueError(f"--counters: 1 to {MAX_COUNTERS}")
        self.options = options
        self.profile = profile_named(options.profile)
        self.chances = live_chances(self.profile)
        self.rng = random.Random(options.seed)
        self.echo = echo
        self.faults: Tally[str] = Tally({k: 0 for k in LIVE_FAULTS})
        self.outcomes: Tally[str] = Tally()
        self.recent: list[str] = []
        self.bills = 0
        self.step = 0
        self._lock = threading.Lock()
        self._centre_lock = threading.RLock()  # a kill and restart, against the counters' proxies' retarget
        self.touched: set[str] = set()  # psn_nos of the patients who came
        self.started = time.monotonic()

    def event(self, what: str) -> None:
        with self._lock:
            line = f"{self.step} {what}"
            self.recent = [*self.recent[-24:], line]
        if self.echo is not None:
            self.echo(f"{time.monotonic() - self.started:6.1f}s {line}")

    # -- the run ------------------------------------------------------------------------------------

    def play(self) -> LiveResult:
        started = self.started = time.monotonic()
        workdir = Path(tempfile.mkdtemp(prefix="medsettle-live-"))
        self.centre = RunningCentre(workdir / "centre", args=("--log-level", "warning"))
        counters: list[LiveCounter] = []
        violation: Violation | None = None
        vouchers: Tally[str] = Tally()
        checks = 0
        try:
            loading = threading.Thread(target=self._load_persons, daemon=True)  # while the centre starts
            loading.start()
            self.centre.start()
            loading.join()
            if getattr(self, "_load_error", None) is not None:
                raise RuntimeError("the patients could not be loaded") from self._load_error
            self.event(f"centre started at {self.centre.url}")
            self.day = _today()
            for k, code in enumerate(CODES[: self.options.counters]):
                counters.append(
                    LiveCounter(
                        f"{code}-{k}", code, workdir / f"{code}.db", self.centre.url, self.centre.credentials_file
                    )
                )
            self.counters = counters
            self._play_counters()
            self._drain()
            checker = LiveChecks(self.centre, counters, self.persons.registry, self.touched, self.days())
            try:
                self.step += 1
                checker.run(self.event, self._restart_centre)
            except Violation as v:
                violation = v
            checks = checker.checks
            for c in counters:
                with c.journal() as store:
                    vouchers.update(v["state"] for v in store.vouchers())
        finally:
            for c in counters:
                c.close()
            self.centre.stop()
            shutil.rmtree(workdir, ignore_errors=True)
        return LiveResult(
            self.options, self.bills, sum(c.commands for c in counters), dict(self.faults),
            dict(sorted(self.outcomes.items())), dict(sorted(vouchers.items())), checks,
            time.monotonic() - started, violation, list(self.recent),
        )  # fmt: skip

    def _load_persons(self) -> None:
        try:
            self.persons = _Persons()
        except BaseException as exc:  # noqa: BLE001 - raised in play's thread
            self._load_error: BaseException | None = exc

    def days(self) -> list[str]:
        """The run's days at the centre (Asia/Shanghai): the first and, past midnight, the next."""
        return sorted({self.day, _today()})

    def _play_counters(self) -> None:
        """Every counter's patients, counters at once; the centre killed meanwhile at seeded points."""
        plans = [random.Random(self.rng.getrandbits(64)) for _ in self.counters]
        total = len(self.counters) * self.options.patients
        kills = 0
        if self.profile.faults:
            kills = 1 + (self.rng.random() < min(0.9, 300 * self.profile.chance("centre_crash")))
        self._kill_at = sorted(self.rng.sample(range(max(1, total // 4), max(2, 3 * total // 4)), kills))
        self._done = 0
        self._failure: BaseException | None = None
        threads = [
            threading.Thread(target=self._counter_thread, args=(c, rng), name=f"live-{c.name}", daemon=True)
            for c, rng in zip(self.counters, plans, strict=True)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120 + 30 * total
        while any(t.is_alive() for t in threads):
            if self._kill_at and self._done >= self._kill_at[0]:
                self._kill_at.pop(0)
                self._kill_and_restart()
                self._kill_at = [max(at, self._done + len(self.counters)) for at in self._kill_at]  # not at once
            time.sleep(0.05)
            if time.monotonic() > deadline:
                raise RuntimeError("the counters did not finish in time")
        if self._failure is not None:
            raise self._failure

    def _kill_and_restart(self) -> None:
        with self._centre_lock:
            self.faults["centre_kill"] += 1
            self.event("centre killed (SIGKILL)")
            self.centre.kill()
            time.sleep(self.rng.uniform(*DOWN_S))
            self._start_centre()

    def _restart_centre(self, how: str) -> None:
        """For the checks: the centre stopped (``kill``: SIGKILL, else SIGTERM) and started on its journal."""
        with self._centre_lock:
            self.centre.kill() if how == "kill" else self.centre.stop()
            self._start_centre()

    def _start_centre(self) -> None:
        self.centre.start()
        for c in self.counters:
            c.proxy.retarget(self.centre.url)
        self.event(f"centre started again at {self.centre.url} (its journal replayed)")

    def _counter_thread(self, c: LiveCounter, rng: random.Random) -> None:
        try:
            signed = c.run("signin")
            self.event(f"{c.name} signin: {signed.status} {signed.error}")
            for _ in range(self.options.patients):
                self._patient_at(c, rng)
                with self._lock:
                    self._done += 1
                    self.step += 1
        except BaseException as exc:  # noqa: BLE001 - the main thread re-raises it
            self._failure = exc

    def _patient_at(self, c: LiveCounter, rng: random.Random) -> None:
        pending, roll = c.unsettled_vouchers(), rng.random()
        cancellable = c.cancellable() if roll > 1 - CANCELS else []
        if pending and roll < 0.3:
            args: tuple[str, ...] = ("resettle", pending[0])
            flow = "resettle"
        elif cancellable:  # a patient comes back: the sale is cancelled (2103, 2208)
            args, flow = ("cancel", rng.choice(cancellable)), "cancel"
        else:
            person = rng.choices(self.persons.persons, self.persons.weights)[0]
            self.touched.add(person.psn_no)
            items = [
                f"{rng.choice(self.persons.drugs)}:{rng.randint(100, 20000) / 100:.2f}:{rng.randint(1, 3)}"
                for _ in range(rng.randint(1, 4))
            ]
            flow = "sell" if c.code.startswith("P") else "visit"
            args = (flow, "--certno", person.certno, *items)
            with self._lock:
                self.bills += 1
        fault = self._arm(c, rng, flow)
        crash_at = None
        if rng.random() < self.chances["power_loss"] and FLOW_POINTS.get(flow):
            crash_at = rng.choice(FLOW_POINTS[flow])
        outcome = c.run(*args, crash_at=crash_at)
        c.proxy.heal()
        self._record(c, flow, outcome, fault)
        if outcome.crashed_at or outcome.timed_out:
            resumed = c.run("resume", "--wait", "3")
            self._record(c, "resume", resumed, None)
        if c.queued():
            self._record(c, "forward", c.run("forward", "--rounds", "2"), None)

    def _arm(self, c: LiveCounter, rng: random.Random, flow: str) -> str | None:
        """At most one network fault for this command, on this counter's proxy."""
        roll, at = rng.random(), 0.0
        for kind in NETWORK_FAULTS:
            at += self.chances[kind]
            if roll < at:
                break
        else:
            return None
        if kind in ("request_dropped", "answer_dropped"):
            aimed = SETTLE_INFNOS.get(flow) or ({"P": "2103", "H": "2208"}[c.code[0]] if flow == "cancel" else None)
            infnos = (aimed,) if aimed and rng.random() < 0.7 else ()
            c.proxy.drop(*infnos, what="request" if kind == "request_dropped" else "answer", times=1)
            return f"{kind} {'/'.join(infnos) or 'next message'}"
        if kind == "delayed":
            seconds = rng.uniform(0.2, 2.5)
            c.proxy.delay(seconds)
            return f"delayed {seconds:.1f} s"
        c.proxy.reset() if kind == "reset" else c.proxy.blackhole()
        return kind

    def _record(self, c: LiveCounter, flow: str, outcome: Outcome, fault: str | None) -> None:
        with self._lock:
            if fault is not None:
                self.faults[fault.split()[0]] += 1
            if outcome.crashed_at:
                self.faults["power_loss"] += 1
                self.outcomes[f"{flow} crashed"] += 1
            elif outcome.timed_out:
                self.outcomes[f"{flow} timed out"] += 1
            elif outcome.ok:
                kind = outcome.answer.get("kind") if isinstance(outcome.answer, dict) else None
                self.outcomes[f"{flow} {kind}" if kind else flow] += 1
            else:
                self.outcomes[f"{flow} refused"] += 1
        said = outcome.error or (outcome.answer.get("kind", "") if isinstance(outcome.answer, dict) else "")
        crash = f" crashed at {outcome.crashed_at}" if outcome.crashed_at else ""
        self.event(f"{c.name} {' '.join(outcome.args[:1])}: exit {outcome.status}{crash} {said}"
                   + (f" [{fault}]" if fault else ""))  # fmt: skip

    # -- the drain ----------------------------------------------------------------------------------

    def _drain(self) -> None:
        """Network healed: each counter (all at once) resumes, forwards its queue and re-settles its vouchers."""
        self.event("drain: network healed")
        self.step += 1
        for c in self.counters:
            c.proxy.heal()
        each_counter(self.counters, self._drain_counter)

    def _drain_counter(self, c: LiveCounter) -> None:
        self._record(c, "resume", c.run("resume", "--wait", "10"), None)
        if c.queued():
            self._record(c, "forward", c.run("forward"), None)
        for voucher in c.unsettled_vouchers():
            self._record(c, "resettle", c.run("resettle", voucher), None)


def _today() -> str:
    from ..timeutil import SHANGHAI  # noqa: PLC0415

    return f"{dt.datetime.now(SHANGHAI):%Y-%m-%d}"


__all__ = ["LIVE_FAULTS", "LiveOptions", "LiveResult", "LiveRun", "centre_state", "live_chances"]
