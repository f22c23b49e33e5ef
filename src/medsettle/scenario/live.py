"""Scenario files against real processes (``medsettle scenario run --live``, docs/scenarios.md 'Live mode').

The same steps and expectations as the deterministic world (:mod:`.runner` runs them unchanged), in a world
whose centre is a ``medsettle serve`` process: started on a data directory of its own with the deterministic
world's population (its persons file, so every patient alias names the same person with the same balance),
killed with SIGKILL for ``crash_centre`` and started again on its journal for ``restart_centre``. Each counter
reaches it over HTTP (signed, as ``medsettle terminal`` does) through a fault proxy of its own on loopback:
``cut_network`` resets its connections (a partition) or drops the answers of the messages named (the centre
has applied them). The counters, their card readers (the virtual bus, no pcscd) and their journals are in
this process, so a ``power_off`` loses the counter at its crash point as the deterministic world does.

Real clocks, moved: the world's clock is an :class:`~medsettle.seams.OffsetClock`, the real clock plus an offset in
a file of the scenario's directory, which the served centre reads too (``serve --clock-file``). It starts at the
scenario's ``start``, and ``advance_clock`` moves the centre's and the counters' days on together (a window closing,
the year end) while seconds keep passing as they really do. The checks at the end are the live simulator's
(:mod:`medsettle.sim.live_checks`): the centre's journal through the deterministic checkers, the counters' records
against the centre's, and the centre's answers the same after every kill and restart.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
from pathlib import Path
from typing import Any

from ..errors import MedsettleError
from ..seams import OffsetClock, RaiseOnCrash
from ..sim.checkers import Violation
from ..sim.clock import MovableClock
from ..sim.live_checks import centre_state, check_live_journal
from ..sim.world import World
from ..terminal import CentreClient, Counter, CounterStore
from ..testing.centre import RunningCentre
from ..testing.proxy import FaultProxy
from .format import Scenario
from .runner import ScenarioResult, run
from .world import ALL_ANSWERS, Desk, ScenarioWorld

ANSWER_TIMEOUT_S = 2.0  # the counters' HTTP timeout
RESEND_FOR_S = 1.0  # a counter's resend loop, in real seconds
ASKERS = ("H13010000002", "P13010000001", "H13010000001")  # who asks the centre's state (not a scenario's own)


def run_live(scenario: Scenario, world: World, persons_csv: Path) -> ScenarioResult:
    """Play ``scenario`` against a served centre. ``world``: the deterministic world whose population
    ``persons_csv`` holds (``World.population.to_csv``)."""
    return run(scenario, world, make_world=lambda s, w: LiveScenarioWorld(s, w, persons_csv))


class _LiveCentre:
    """What the runner asks of the world's centre besides the process: a card event (the agency's admin API)."""

    def __init__(self, process: RunningCentre) -> None:
        self.process = process

    def card_event(self, card_no: str, action: str, *, replace: bool = False) -> dict:
        answer = self.process.admin("card", card_no=card_no, card_action=action, replace=replace)
        if not isinstance(answer, dict) or answer.get("ok") is False or answer.get("error"):
            raise MedsettleError(f"the admin API refused the card event: {answer}")
        return answer


class _Network:
    """The deterministic network's controls (``partition``, ``heal``, ``step``), on the counters' proxies."""

    def __init__(self, world: LiveScenarioWorld) -> None:
        self.world = world
        self.step = 0
        self._timers: list[threading.Timer] = []

    def partition(self, name: str, seconds: float) -> None:  # ok-float: seconds
        proxy = self.world.proxy(name)
        proxy.reset()
        if seconds < 3600:  # a partition of its own length (cut_network seconds = ...); else until restored
            timer = threading.Timer(seconds, proxy.heal)
            timer.daemon = True
            timer.start()
            self._timers.append(timer)

    def heal(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for proxy in self.world.proxies.values():
            proxy.heal()


class _Link:
    """A counter's HTTP client to the centre through its proxy; a message whose answer a ``cut_network``
    with ``mode = "answers"`` loses has its answer dropped by the proxy (after the centre applied it)."""

    def __init__(self, world: LiveScenarioWorld, name: str, code: str) -> None:
        self.world, self.name = world, name
        self.client = CentreClient(
            world.proxy(name).url,
            timeout=ANSWER_TIMEOUT_S,
            credential=world.running.credentials.institution(code),
            clock=world.clock,
        )

    def post(self, body: bytes) -> dict:
        lost = self.world.lost.get(self.name, set())
        infno = str(json.loads(body).get("infno"))
        if lost and (ALL_ANSWERS in lost or infno in lost):
            self.world.proxy(self.name).drop(infno, what="answer", times=1)
        return self.client.post(body)


class _EndChecks:
    """The runner's checkers in live mode: nothing after each step (the centre is another process; its
    journal is read when it has stopped), everything at the end."""

    def __init__(self, world: LiveScenarioWorld) -> None:
        self.world = world
        self.checks = 0

    def after_step(self) -> None:
        """The persons who came are remembered for the end (the deterministic checkers look at them)."""
        self.world.seen |= self.world.touched
        self.world.touched.clear()

    def replay_equals_live(self, when: str) -> None:
        w = self.world
        w.running.stop()
        w.centre_up = False
        self.after_step()
        counters = [(d.sim.name, d.sim.institution.fixmedins_code, d.sim.counter.journal) for d in w.desks.values()]
        self.checks += check_live_journal(
            w.running.data_dir / "centre.db", w.world.policy, w.world.population, w.seen, counters, step=w.step,
            drain=False,
        )  # fmt: skip


class LiveScenarioWorld(ScenarioWorld):
    """:class:`ScenarioWorld` with a served centre, HTTP counters behind fault proxies and the real clock
    moved (the centre's and the counters' the same)."""

    def __init__(self, scenario: Scenario, world: World, persons_csv: Path) -> None:
        self.persons_csv = persons_csv
        self.proxies: dict[str, FaultProxy] = {}
        self.seen: set[str] = set()
        self.asker = next(code for code in ASKERS if code not in scenario.institutions)
        self._asker_sign_no = ""
        super().__init__(scenario, world)  # opens the centre (a process) and the desks through the methods below
        self.network = _Network(self)  # type: ignore[assignment]  # the same controls, on the proxies
        self.checkers = _EndChecks(self)  # type: ignore[assignment]

    def _make_clock(self, start: dt.datetime) -> MovableClock:
        """The real clock moved to ``start``, through a file the served centre reads too (``--clock-file``)."""
        clock = OffsetClock(self.dir / "clock")
        clock.set_now(start)
        return clock

    # -- the centre ----------------------------------------------------------------------------------

    def _open_centre(self) -> Any:
        if not hasattr(self, "running"):
            self.running = RunningCentre(
                self.dir / "centre",
                args=("--persons", str(self.persons_csv), "--log-level", "warning"),
                clock_file=self.dir / "clock",
            )
        self.running.start()
        for proxy in self.proxies.values():
            proxy.retarget(self.running.url)
        self._asker_sign_no = ""
        return _LiveCentre(self.running)

    def _state(self, persons: set[str] | None = None) -> dict[str, Any]:
        """The centre's answers about ``persons`` (default: everyone who came so far)."""
        self.seen |= self.touched
        return centre_state(self.running, self.asker, [], self._who(self.seen if persons is None else persons), [])

    def _who(self, psn_nos: set[str]) -> dict[str, tuple[str, str]]:
        """psn_no -> (ID number, insured region), of the world's population (the served centre's too)."""
        population, identities = self.world.population, self.world.registry.identities
        index = {p: i for i, p in enumerate(population.psn_nos)}
        return {p: (identities[p].certno, population.region_of(index[p])) for p in psn_nos}

    def crash_centre(self) -> None:
        """SIGKILL: what the centre answered before must come back when it starts again."""
        self.before_crash = self._state()
        self.running.kill()
        self.centre_up = False

    def restart_centre(self) -> None:
        before = self.before_crash or self._state()
        if self.centre_up:
            self.running.kill()
        self.centre = self._open_centre()
        self.centre_up = True
        self.before_crash = None
        after = self._state(set(before["balances"]))  # those who came while it was down are not in before
        if after != before:
            raise Violation("replay", self.step, f"the centre answers otherwise after a kill and restart: "
                            f"{before} before, {after} after")  # fmt: skip

    def balance_fen(self, alias: str) -> int:
        """The patient's balance as the centre process answers it (1101)."""
        psn_no = self.patient(alias)
        return int(centre_state(self.running, self.asker, [], self._who({psn_no}), [])["balances"][psn_no])

    # -- the counters --------------------------------------------------------------------------------

    def proxy(self, name: str) -> FaultProxy:
        if name not in self.proxies:
            self.proxies[name] = FaultProxy(self.running.url)
        return self.proxies[name]

    def _counter(self, desk: Desk, crash_at: str | None = None) -> Counter:
        from ..readers import VirtualReader  # noqa: PLC0415 - the readers are needed only once a desk is made

        name = desk.sim.name
        return Counter(
            desk.sim.institution.fixmedins_code,
            CounterStore(desk.sim.path, clock=self.clock),
            _Link(self, name, desk.sim.institution.fixmedins_code),
            reader=VirtualReader(bus=desk.bus, clock=self.clock),
            dev_no="001",
            resend_for=RESEND_FOR_S,
            clock=self.clock,
            crash=RaiseOnCrash(),
            crash_at=crash_at,
        )

    def close(self) -> None:
        try:
            for desk in self.desks.values():
                desk.sim.counter.journal.close()
                desk.bus.stop()
            for proxy in self.proxies.values():
                proxy.close()
        finally:
            self.running.stop()
            shutil.rmtree(self.dir, ignore_errors=True)


def write_persons(world: World, directory: Path) -> Path:
    """The deterministic world's population as a persons file the served centre loads."""
    path = directory / "persons.csv"
    world.population.to_csv(path)
    return path
