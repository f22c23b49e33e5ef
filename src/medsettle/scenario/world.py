"""The deterministic world a scenario runs in: the simulator's parts (docs/simulation.md), driven by a file's
steps instead of a seed's dice.

One centre on an inline SQLite journal, one counter per institution the scenario names (each with its own
journal, a virtual card reader with its PSAM on a virtual bus, and its link over the simulator's in-memory
network), the virtual clock, and the simulator's checkers (:class:`medsettle.sim.checkers.Checkers`) after
every step: conservation and exactly-once, and the journal replayed equal to the live state at every centre
restart and at the end. No fault happens that a step does not ask for.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..centre.institutions import Institution
from ..centre.service import Centre
from ..engine import Settler
from ..hardware.bus import BusEntry, VirtualBus
from ..ledger import SQLiteJournal
from ..seams import RaiseOnCrash, SeededRandomness
from ..sim.checkers import Checkers
from ..sim.clock import MovableClock, VirtualClock
from ..sim.network import REQUEST_TIMEOUT_S, SimNetwork
from ..sim.profiles import profile_named
from ..sim.trace import Trace
from ..sim.world import REGION, RESEND_FOR_S, SimCounter, World
from ..terminal import CentreUnreachable, Counter, CounterStore, Identity
from ..timeutil import SHANGHAI
from .format import ALIAS, Scenario, ScenarioFileError

ALL_ANSWERS = "*"


@dataclasses.dataclass
class Desk:
    """What a scenario keeps of one counter besides the simulator's :class:`SimCounter`: its reader's bus
    entry, the patient last identified, and the crash point armed by a ``power_off``."""

    sim: SimCounter
    bus: VirtualBus
    entry: BusEntry
    identity: Identity | None = None
    identified: bool = False
    armed: str | None = None


class _Link:
    """A counter's end of the network, where a ``cut_network`` with ``mode = "answers"`` loses answers: the
    request reaches the centre (which applies it), the answer never comes back."""

    def __init__(self, world: ScenarioWorld, name: str) -> None:
        self.world, self.name = world, name
        self.inner = world.network.transport(name)

    def post(self, body: bytes) -> dict:
        answer = self.inner.post(body)
        lost = self.world.lost.get(self.name, set())
        if lost and (ALL_ANSWERS in lost or str(json.loads(body).get("infno")) in lost):
            self.world.clock.advance(REQUEST_TIMEOUT_S)
            raise CentreUnreachable("the answer was lost (scenario)")
        return answer


class ScenarioWorld:
    """The run-like object :class:`Checkers` reads (``world``, ``centre``, ``step``, ``touched``, ``counters``,
    ``fresh_settler``), and the parts each step drives."""

    def __init__(self, scenario: Scenario, world: World) -> None:
        self.world, self.scenario = world, scenario
        self.engine = "core"
        shm = Path("/dev/shm")
        self.dir = Path(tempfile.mkdtemp(prefix="medsettle-scenario-", dir=shm if shm.is_dir() else None))
        self.clock = self._make_clock(scenario.start.replace(tzinfo=SHANGHAI))
        self.rng = random.Random(0)
        self.trace = Trace(None)
        self.step = 0
        self.touched: set[str] = set()
        self.lost: dict[str, set[str]] = {}
        self.institutions = world.all_institutions
        by_code = {i.fixmedins_code: i for i in self.institutions}
        for code in scenario.institutions:
            if code not in by_code:
                shutil.rmtree(self.dir, ignore_errors=True)
                known = ", ".join(sorted(by_code))
                raise ScenarioFileError(f"{scenario.path}: [scenario]: institutions: no institution {code!r}; "
                                        f"the region's are {known}")  # fmt: skip
        self.network = SimNetwork(
            self._deliver, self.clock, self.rng, profile_named("none"), self.trace, lambda kind: None
        )
        self.centre: Centre = self._open_centre()
        self.centre_up = True
        self.before_crash: dict[str, Any] | None = None
        self.checkers = Checkers(self)  # type: ignore[arg-type]  # the run-like object it reads
        self.desks: dict[str, Desk] = {code: self._desk(by_code[code]) for code in scenario.institutions}
        self.counters = [d.sim for d in self.desks.values()]
        self._patients: dict[str, str] = {}

    def _make_clock(self, start: dt.datetime) -> MovableClock:
        """The world's clock, at ``start``: the virtual one (live mode's is the real one, moved)."""
        return VirtualClock(start)

    # -- the centre ----------------------------------------------------------------------------------

    def _open_centre(self) -> Centre:
        """As the simulator opens its centre (sim/world.py ``Run._open_centre``)."""
        settler = self.fresh_settler()
        self.world.registry.card_reads.clear()  # what a restart forgets anyway
        journal = SQLiteJournal(self.dir / "centre.db", clock=self.clock, inline=True)
        return Centre(settler, journal, self.institutions, registry=self.world.registry, clock=self.clock,
                      randomness=SeededRandomness(self.rng.getrandbits(64)))  # fmt: skip

    def fresh_settler(self) -> Settler:
        return Settler(self.world.policy, self.world.population, engine=self.engine)  # type: ignore[arg-type]

    def _deliver(self, request: Any) -> dict:
        if not self.centre_up:
            raise CentreUnreachable("the centre is down (scenario)")
        return self.centre.submit(request).result()  # resolved already: the journal commits inline

    def crash_centre(self) -> None:
        self.before_crash = self.checkers.live_state()
        self.centre.journal.close()
        self.centre_up = False

    def restart_centre(self) -> None:
        """The centre starts again on its journal: what it answered must come back (the replay checker)."""
        before = self.before_crash or self.checkers.live_state()
        if self.centre_up:
            self.centre.journal.close()
        self.centre = self._open_centre()
        self.centre_up = True
        self.before_crash = None
        self.checkers.same_state("the centre's state after a crash and restart", before, self.checkers.live_state())

    # -- the counters --------------------------------------------------------------------------------

    def _desk(self, institution: Institution) -> Desk:
        name = institution.fixmedins_code
        bus = VirtualBus([name])
        path = self.dir / f"{name}.db"
        desk = Desk(SimCounter(name, institution, path, None), bus, bus.counters[name])  # type: ignore[arg-type]
        desk.sim.counter = self._counter(desk)
        return desk

    def _counter(self, desk: Desk, crash_at: str | None = None) -> Counter:
        """As the simulator builds a counter (sim/world.py ``Run._counter``), with the desk's virtual reader."""
        from ..readers import VirtualReader  # noqa: PLC0415 - the readers are needed only once a desk is made

        name = desk.sim.name
        return Counter(
            desk.sim.institution.fixmedins_code,
            CounterStore(desk.sim.path, clock=self.clock),
            _Link(self, name),
            reader=VirtualReader(bus=desk.bus, clock=self.clock),
            dev_no="001",
            resend_for=RESEND_FOR_S,
            clock=self.clock,
            randomness=SeededRandomness(self.rng.getrandbits(64)),
            crash=RaiseOnCrash(),
            crash_at=crash_at,
        )

    def reopen(self, desk: Desk, crash_at: str | None = None) -> None:
        """The counter's process starts again on its journal (armed to lose power at ``crash_at``)."""
        desk.sim.counter.journal.close()
        desk.sim.counter = self._counter(desk, crash_at)
        desk.armed = crash_at

    # -- the patients --------------------------------------------------------------------------------

    def patient(self, alias: str) -> str:
        """The psn_no an alias stands for: the n-th person of the population (in its order) of that kind,
        insured and paid up, with no extra waiting months, an activated card, and (but for a resident) money
        in the personal account. ``employee``: scheme 310, in service; ``retiree``: 310, retired;
        ``resident``: 390; ``other_region``: an employee insured in another region."""
        if alias in self._patients:
            return self._patients[alias]
        m = ALIAS.match(alias)
        assert m is not None  # checked when the file was read
        kind, nth = m.group(1), int(m.group(2) or 1)
        population, registry = self.world.population, self.world.registry
        month = f"{self.clock.now():%Y-%m}"
        seen = 0
        for i, psn_no in enumerate(population.psn_nos):
            d = population.describe(i)
            local = d["insuplc_admdvs"] == REGION
            wanted = {
                "employee": local and d["insutype"] == "310" and d["psn_type"] == "11",
                "retiree": local and d["insutype"] == "310" and d["psn_type"] == "12",
                "resident": local and d["insutype"] == "390",
                "other_region": not local and d["insutype"] == "310",
            }[kind]
            card = registry.usable_card_of(psn_no)
            if not (wanted and d["active"] and not d["assistance"] and not d["extra_wait_months"]):
                continue
            if str(d["paid_through"]) < month or d["filing_admdvs"] or card is None or card.status != "active":
                continue
            if kind != "resident" and int(population.balances[i]) <= 0:
                continue
            seen += 1
            if seen == nth:
                self._patients[alias] = psn_no
                return psn_no
        raise ScenarioFileError(f"{self.scenario.path}: no {nth}. person of kind {kind} in the population")

    def certno(self, alias: str) -> str:
        return self.world.registry.identities[self.patient(alias)].certno

    def card_no(self, alias: str) -> str:
        card = self.world.registry.usable_card_of(self.patient(alias))
        if card is None:
            raise ScenarioFileError(f"{self.scenario.path}: {alias} has no usable card")
        return card.card_no

    def balance_fen(self, alias: str) -> int:
        return int(self.centre.settler.person_state(self.patient(alias)).balance)

    def close(self) -> None:
        for desk in self.desks.values():
            desk.sim.counter.journal.close()
            desk.bus.stop()
        if self.centre_up:
            self.centre.journal.close()
        shutil.rmtree(self.dir, ignore_errors=True)
