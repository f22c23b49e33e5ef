"""Running a scenario: each step done in the deterministic world, what it answered compared with its
``expect`` table, and the simulator's checkers after every step.

A step passes when it did what it was asked and every field its ``expect`` names has the value given (an
expected error is a pass when the step raised that code). A step that fails its expectations does not stop
the scenario; a broken invariant or a failure of the runner itself does (the rest is not run).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter as Tally
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ..errors import MedsettleError
from ..readers import ReaderError
from ..seams import Crashed
from ..sim.checkers import Violation
from ..sim.world import World
from ..terminal import CentreUnreachable, Identity, Receipt
from ..terminal.common import Refused
from .format import MONEY_FIELDS, Scenario, Step, parse_duration, parse_time
from .world import ALL_ANSWERS, Desk, ScenarioWorld

FOREVER_S = 365 * 24 * 3600  # a cut_network without seconds lasts until restore_network
# a card mistake the patient can put right is an error of the step; anything else the reader raises is an
# equipment failure: nobody identified (cash and a voucher), as `medsettle terminal` does (docs/failures.md)
CARD_MISTAKES = ("NO_CARD", "WRONG_PIN", "CARD_BLOCKED", "CARD_NOT_GENUINE")
# the steps that run the counter's code: the one after a power_off is the step it interrupts
COUNTER_STEPS = ("sign_in", "read_card", "sell", "visit", "admit", "stay_fees", "discharge", "settle_stay",
                 "resettle", "forward", "reconcile")  # fmt: skip


@dataclasses.dataclass
class StepResult:
    index: int
    do: str
    ok: bool
    detail: str = ""  # what failed, or what it answered

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        return f"  {mark} {self.index:>2} {self.do}" + (f": {self.detail}" if self.detail else "")


@dataclasses.dataclass
class ScenarioResult:
    scenario: Scenario
    steps: list[StepResult]
    seconds: float  # ok-float: seconds of real time, for the JUnit report
    stopped: str = ""  # why the rest was not run (a broken invariant)

    @property
    def ok(self) -> bool:
        return not self.stopped and all(s.ok for s in self.steps)

    def failures(self) -> list[StepResult]:
        return [s for s in self.steps if not s.ok]


def _yuan(fen: int) -> str:
    return f"{Decimal(fen) / 100:.2f}"


def _same_money(expected: str, seen: Any) -> bool:
    try:
        return Decimal(str(seen)) == Decimal(expected)
    except ArithmeticError:
        return False


def run(
    scenario: Scenario,
    world: World | None = None,
    *,
    make_world: Callable[[Scenario, World], ScenarioWorld] = ScenarioWorld,
) -> ScenarioResult:
    """Play ``scenario`` in a fresh deterministic world (a new :class:`World` unless one is given: a
    scenario may cancel a card or a person, which changes a world's registry for good). ``make_world``:
    the world the steps run in (live mode's, :mod:`.live`, against real processes)."""
    started = time.monotonic()
    w = make_world(scenario, world or World())
    runner = _Runner(w)
    results: list[StepResult] = []
    stopped = ""
    try:
        for step in scenario.steps:
            result = runner.step(step)
            results.append(result)
            if runner.stopped:
                stopped = runner.stopped
                break
        if not stopped:
            try:
                if not w.centre_up:
                    w.restart_centre()
                w.checkers.after_step()
                w.checkers.replay_equals_live("the end")
            except Violation as v:
                stopped = f"invariant {v.invariant}: {v.detail}"
    finally:
        w.close()
    return ScenarioResult(scenario, results, time.monotonic() - started, stopped)


class _Runner:
    def __init__(self, world: ScenarioWorld) -> None:
        self.w = world
        self.named: dict[str, Any] = {}  # ``as`` names -> the step's receipt, or an admitted stay's id
        self.stopped = ""

    def step(self, step: Step) -> StepResult:
        w = self.w
        w.step = step.index
        w.network.step = step.index
        desk = w.desks[step.counter]
        armed = desk.armed if step.do in COUNTER_STEPS else None
        seen: dict[str, Any] = {}
        error: MedsettleError | None = None
        try:
            seen = getattr(self, f"_do_{step.do}")(step, desk) or {}
        except Crashed as crashed:
            seen = {"crashed": True, "note": f"power lost at {crashed}"}
            w.reopen(desk)
            try:  # the restarted counter finishes what was left, as every terminal command does first
                seen["note"] += f"; resumed: {dict(desk.sim.counter.resume())}"
            except MedsettleError as exc:
                error = exc
        except Violation as v:
            self.stopped = f"invariant {v.invariant}: {v.detail}"
            return StepResult(step.index, step.do, False, self.stopped)
        except MedsettleError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - a failure of the runner or the code under test: say what
            self.stopped = f"{type(exc).__name__}: {exc}"
            return StepResult(step.index, step.do, False, self.stopped)
        if armed is not None:
            seen.setdefault("crashed", False)
            if desk.armed is not None:
                w.reopen(desk)  # the point was not reached: the counter runs on without it
        try:
            if w.centre_up:
                w.checkers.after_step()
        except Violation as v:
            self.stopped = f"invariant {v.invariant}: {v.detail}"
            return StepResult(step.index, step.do, False, self.stopped)
        problems = self._compare(step, desk, seen, error, armed)
        if problems:
            return StepResult(step.index, step.do, False, "; ".join(problems))
        return StepResult(step.index, step.do, True, self._summary(seen, error))

    # -- expectations --------------------------------------------------------------------------------

    def _compare(
        self, step: Step, desk: Desk, seen: dict[str, Any], error: MedsettleError | None, armed: str | None
    ) -> list[str]:
        expect = dict(step.expect)
        problems = []
        wanted_error = expect.pop("error", None)
        if error is not None:
            codes = {error.code} | ({error.refusal} if isinstance(error, Refused) and error.refusal else set())
            if wanted_error is None:
                return [f"{error.code}: {error}"]
            if wanted_error not in codes:
                return [f"expect.error: {wanted_error} expected, got {error.code}: {error}"]
        elif wanted_error is not None:
            problems.append(f"expect.error: {wanted_error} expected, the step succeeded")
        if armed is not None and "crashed" not in expect and not seen.get("crashed"):
            problems.append(f"power_off at {armed}: the step finished without reaching that point")
        for field, want in expect.items():
            got = self._observe(field, want, desk, seen)
            if field == "balances":
                problems += [f"expect.balances.{k}: {v} expected, got {got.get(k)}" for k, v in want.items()
                             if not self._equal(field, v, got.get(k))]  # fmt: skip
            elif field in ("vouchers", "queue"):  # every state: one not named is expected at 0
                problems += [f"expect.{field}.{k}: {want.get(k, 0)} expected, got {got.get(k, 0)}"
                             for k in sorted(set(want) | set(got)) if want.get(k, 0) != got.get(k, 0)]  # fmt: skip
            elif field == "note":
                if want not in str(got or ""):
                    problems.append(f"expect.note: {want!r} expected in {got!r}")
            elif not self._equal(field, want, got):
                problems.append(f"expect.{field}: {want} expected, got {got}")
        return problems

    @staticmethod
    def _equal(field: str, want: Any, got: Any) -> bool:
        if field in MONEY_FIELDS or field == "balances":
            return got is not None and _same_money(want, got)
        return bool(want == got)

    def _observe(self, field: str, want: Any, desk: Desk, seen: dict[str, Any]) -> Any:
        journal = desk.sim.counter.journal
        if field == "balances":
            return {who: _yuan(self.w.balance_fen(who)) for who in want}
        if field == "vouchers":
            return dict(Tally(v["state"] for v in journal.vouchers()))
        if field == "queue":
            return dict(Tally(e["state"] for e in journal.saf_entries()))
        if field == "voucher_state":
            found = journal.voucher(seen["voucher"]) if seen.get("voucher") else None
            return found["state"] if found else None
        return seen.get(field)

    @staticmethod
    def _summary(seen: dict[str, Any], error: MedsettleError | None) -> str:
        if error is not None:
            return f"{error.code} (expected)"
        if "medfee" in seen:
            parts = f"{seen['kind']} medfee {seen['medfee']} fund {seen['fund']} account {seen['account']} "
            return parts + f"cash {seen['cash']}" + (f" refund {seen['refund']}" if seen["kind"] == "refund" else "")
        return ", ".join(f"{k} {v}" for k, v in seen.items() if k != "voucher")

    # -- the steps -----------------------------------------------------------------------------------

    def _named(self, name: str) -> Any:
        if name not in self.named:
            raise MedsettleError(f"{name!r}: the step that names it did not succeed")
        return self.named[name]

    def _receipt(self, step: Step, receipt: Receipt) -> dict[str, Any]:
        if step.name:
            self.named[step.name] = receipt
        seen = dataclasses.asdict(receipt)
        seen["balance"] = receipt.balance or None
        return seen

    def _do_sign_in(self, step: Step, desk: Desk) -> dict:
        return {"sign_no": desk.sim.counter.sign_in()}

    def _do_read_card(self, step: Step, desk: Desk) -> dict:
        w, alias = self.w, step.fields["patient"]
        w.touched.add(w.patient(alias))
        desk.identity, desk.identified = None, False
        if step.fields.get("by", "certno") == "certno":
            desk.identity, desk.identified = Identity("02", w.certno(alias)), True
            return {"identified": True}
        from ..hardware.card import VirtualCard  # noqa: PLC0415
        from ..hardware.personalise import profile_for  # noqa: PLC0415

        desk.entry.card.insert(VirtualCard.issue(profile_for(w.world.registry, w.patient(alias))))
        try:
            desk.identity = desk.sim.counter.read_card(step.fields.get("pin"))
        except ReaderError as exc:
            if exc.code in CARD_MISTAKES:
                raise
            return {"identified": False, "note": f"equipment failure: {exc.code}: {exc}"}
        desk.identified = True
        return {"identified": True}

    def _do_sell(self, step: Step, desk: Desk) -> dict:
        receipt = desk.sim.counter.sell(desk.identity, _items(step), acct_used=step.fields.get("acct_used", True))
        return self._receipt(step, receipt)

    def _do_visit(self, step: Step, desk: Desk) -> dict:
        receipt = desk.sim.counter.visit(
            desk.identity,
            _items(step),
            med_type=step.fields.get("med_type", "11"),
            acct_used=step.fields.get("acct_used", True),
        )
        return self._receipt(step, receipt)

    def _do_admit(self, step: Step, desk: Desk) -> dict:
        if desk.identity is None:
            raise MedsettleError("admit: nobody identified (read_card first)")
        stay = desk.sim.counter.admit(desk.identity, diagnosis=step.fields.get("diagnosis", "K35.900"))
        if step.name:
            self.named[step.name] = stay
        return {"stay": stay}

    def _do_stay_fees(self, step: Step, desk: Desk) -> dict:
        lines = desk.sim.counter.stay_fees(self._named(step.fields["stay"]), _items(step))
        return {"lines": len(lines)}

    def _do_discharge(self, step: Step, desk: Desk) -> dict:
        desk.sim.counter.discharge(self._named(step.fields["stay"]))
        return {"discharged": True}

    def _do_settle_stay(self, step: Step, desk: Desk) -> dict:
        stay, final = self._named(step.fields["stay"]), step.fields.get("final", True)
        try:
            receipt = desk.sim.counter.settle_stay(stay, final=final)
        except CentreUnreachable:
            if not final:
                raise
            receipt = desk.sim.counter.defer_stay(stay)  # the patient goes home: a 2601 and a cash voucher
        return self._receipt(step, receipt)

    def _do_cut_network(self, step: Step, desk: Desk) -> dict:
        if step.fields.get("mode", "partition") == "answers":
            self.w.lost[desk.sim.name] = set(step.fields.get("infno", [ALL_ANSWERS]))
            return {"answers_lost": ",".join(sorted(self.w.lost[desk.sim.name]))}
        self.w.network.partition(desk.sim.name, step.fields.get("seconds", FOREVER_S))
        return {"partitioned": desk.sim.name}

    def _do_restore_network(self, step: Step, desk: Desk) -> dict:
        self.w.network.heal()
        self.w.lost.clear()
        return {}

    def _do_crash_centre(self, step: Step, desk: Desk) -> dict:
        self.w.crash_centre()
        return {"centre": "down"}

    def _do_restart_centre(self, step: Step, desk: Desk) -> dict:
        self.w.restart_centre()
        return {"centre": "up, its journal replayed"}

    def _do_power_off(self, step: Step, desk: Desk) -> dict:
        self.w.reopen(desk, step.fields["at"])
        return {"armed": step.fields["at"]}

    def _do_break_reader(self, step: Step, desk: Desk) -> dict:
        part = step.fields.get("part", "reader")
        if part == "reader":
            desk.bus.stop_service()
        else:
            getattr(desk.entry, part).set_faults(mute=True)
        return {"broken": part}

    def _do_repair_reader(self, step: Step, desk: Desk) -> dict:
        part = step.fields.get("part", "reader")
        if part == "reader":
            desk.bus.start_service()
        else:
            getattr(desk.entry, part).clear_faults()
        return {"repaired": part}

    def _do_pull_card(self, step: Step, desk: Desk) -> dict:
        desk.entry.card.remove()
        return {"card": "pulled"}

    def _do_advance_clock(self, step: Step, desk: Desk) -> dict:
        clock = self.w.clock
        if "by" in step.fields:
            clock.advance(parse_duration(step.fields["by"]).total_seconds())
        else:
            from ..timeutil import SHANGHAI  # noqa: PLC0415

            clock.advance_to(parse_time(step.fields["to"]).replace(tzinfo=SHANGHAI))
        return {"now": f"{clock.now():%Y-%m-%d %H:%M}"}

    def _do_resettle(self, step: Step, desk: Desk) -> dict:
        counter = desk.sim.counter
        if "voucher" in step.fields:
            voucher = self._named(step.fields["voucher"]).voucher
        else:
            pending = counter.pending_vouchers()
            if not pending:
                raise MedsettleError("resettle: the counter has no pending voucher")
            voucher = pending[0]["voucher"]
        identity = None
        if "patient" in step.fields:
            self.w.touched.add(self.w.patient(step.fields["patient"]))
            identity = Identity("02", self.w.certno(step.fields["patient"]))
        seen: dict[str, Any] = {"voucher": voucher}
        try:
            seen.update(self._receipt(step, counter.settle_voucher(voucher, identity)))
        except MedsettleError as exc:
            seen["note"] = f"{exc.code}: {exc}"
            if (counter.journal.voucher(voucher) or {}).get("state") != "manual_claim":
                raise
            seen["kind"] = "manual_claim"
        seen["voucher"] = voucher
        return seen

    def _do_forward(self, step: Step, desk: Desk) -> dict:
        outcomes = desk.sim.counter.forward()
        done = [o for o in outcomes if o["state"] == "forwarded"]
        flagged = [o for o in outcomes if o["state"] == "flagged"]
        return {
            "forwarded": len(done),
            "flagged": len(flagged),
            "refund_to_patient": f"{sum(Decimal(o.get('refund_to_patient', '0')) for o in outcomes):.2f}",
            "institution_bears": f"{sum(Decimal(o.get('institution_bears', '0')) for o in outcomes):.2f}",
        }

    def _do_reconcile(self, step: Step, desk: Desk) -> dict:
        answer = desk.sim.counter.reconcile()
        return {"clean": bool(answer.get("clean"))}

    def _do_cancel_card(self, step: Step, desk: Desk) -> dict:
        card_no = self.w.card_no(step.fields["patient"])
        self.w.centre.card_event(card_no, "cancel")
        return {"cancelled": card_no}


def _items(step: Step) -> list[dict]:
    return [{"med_list_codg": i["code"], "pric": i["price"], "cnt": str(i["count"])} for i in step.fields["items"]]
