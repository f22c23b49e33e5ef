"""The simulator's checkers catch bugs (issue 17): known bugs, each planted by monkeypatching production code
(no switch in it), are each reported by the checker named for them within 20 seeds of a profile that exercises
them, and the first of those seeds passes without the bug. The issue's five (a voucher settled twice, a resent
settle applied twice, a 2601 that does not undo, a store-and-forward shortfall charged to the patient, an account
debited on a pre-settle), and one no centre journal entry tells of, which the day's 3201 finds.

How many seeds each bug took is in its assertion message, printed (``pytest -s``) and recorded as the test's
``seeds`` property (``--junitxml``).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from medsettle.centre.answers import TOMBSTONE, AnswerStore, Kept
from medsettle.centre.reversal import ReversalFlow
from medsettle.centre.settlements import Settlements
from medsettle.engine.columns import COL
from medsettle.engine.settler import Settler
from medsettle.sim.checkers import SETTLE_INFNOS, Checkers
from medsettle.sim.world import RunOptions, RunResult, World
from medsettle.terminal.outcomes import Outcomes
from medsettle.terminal.saf import Forwarding
from medsettle.terminal.vouchers import Vouchers

SEEDS = 20
INSTITUTIONS = 5


@pytest.fixture(scope="module")
def world() -> World:
    return World()


# -- the bugs ------------------------------------------------------------------------------------------


def voucher_settled_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pharmacy voucher's re-settlement sends its 2102 twice, under two fresh msgids (as two counter processes
    re-settling one voucher would), and the centre has forgotten the voucher was settled, so it settles it again.
    (The centre's memory of settled vouchers alone absorbs the counter's double send: both are planted.)"""
    resettle = Vouchers._resettle_sale

    def twice(self: Vouchers, v: dict, who: Any) -> Any:
        resettle(self, v, who)
        return resettle(self, self._journal.require_voucher(v["voucher"]), who)

    monkeypatch.setattr(Vouchers, "_resettle_sale", twice)
    monkeypatch.setattr(Settlements, "_voucher_answer", lambda self, code, voucher: None)


def resent_settle_applied_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The centre's answer store forgets a settlement's durable answer when the same request comes again, so a
    resent settle (its answer was lost) is applied once more instead of answered again."""
    once = AnswerStore.once

    def forgetful(self: AnswerStore, env: Any, region: str, work: Callable[[], dict]) -> Any:
        if env.infno in SETTLE_INFNOS:
            own = self._answers.get(env.fixmedins_code, {})
            stored = own.get(env.msgid)
            durable = isinstance(stored[1], bytes | Kept) if stored is not None else False  # held, or made again
            if stored is not None and stored[0] not in (TOMBSTONE, None) and durable:
                del own[env.msgid]
        return once(self, env, region, work)

    monkeypatch.setattr(AnswerStore, "once", forgetful)


def reversal_does_not_undo(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2601 of a settlement answers that it reversed it, and cancels nothing."""
    undo = ReversalFlow._undo

    def pretend(self: ReversalFlow, env: Any, institution: Any, omsgid: str, oinfno: str, psn_no: str,
                original: dict, futures: list) -> dict:  # fmt: skip
        if oinfno in SETTLE_INFNOS:
            setl_id = original.get("setlinfo", {}).get("setl_id")
            return {"omsgid": omsgid, "oinfno": oinfno, "rvs_rslt": "reversed", "reversed_setl_id": setl_id}
        return undo(self, env, institution, omsgid, oinfno, psn_no, original, futures)

    monkeypatch.setattr(ReversalFlow, "_undo", pretend)


def shortfall_charged_to_patient(monkeypatch: pytest.MonkeyPatch) -> None:
    """A forward whose centre answer leaves a shortfall (the institution's share) charges it to the patient: a
    negative refund, and the institution bears nothing."""
    finish = Forwarding.finish_forward

    def charge(self: Forwarding, sale: str, msgid: str | None, answer: dict) -> dict:
        outcome = finish(self, sale, msgid, answer)
        shortfall = Decimal(outcome.get("institution_bears", "0"))
        if outcome["state"] != "forwarded" or shortfall <= 0:
            return outcome
        outcome = {**outcome, "refund_to_patient": f"{-shortfall:.2f}", "institution_bears": "0.00"}
        entry = self._entry(sale)
        data = {**self._journal.saf_fields(entry), "outcome": outcome}
        with self._journal.transaction() as db:
            self._journal.put_saf(db, sale, "forwarded", data, msgid=entry["msgid"], attempts=entry["attempts"])
        return outcome

    monkeypatch.setattr(Forwarding, "finish_forward", charge)


def presettle_debits_account(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pre-settlement (2101/2206/2303), which must change nothing, debits the account what it would pay."""
    presettle = Settler.presettle

    def debit(self: Settler, bill: Any) -> Any:
        result = presettle(self, bill)
        acct_pay = int(result.row[COL["acct_pay"]])
        if acct_pay:
            self.credit(result.psn_no, -acct_pay)
        return result

    monkeypatch.setattr(Settler, "presettle", debit)


def abandoned_without_reversal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A settle that got no answer is abandoned for cash and a voucher without its 2601, so a settle that did
    arrive stands at the centre while the patient paid the whole bill. No journal entry at the centre tells of
    it; the day's 3201 finds the settlement the counter does not hold (and the drain would, after the last one)."""

    def abandon(self: Outcomes, sale: str, msgid: str, oinfno: str = "2102") -> Any:
        _, data = self._journal.require_sale(sale)
        with self._journal.transaction() as db:
            self._journal.abandon_message(db, msgid)
            return self._record_voucher(db, sale, "centre unreachable during settlement", data)

    monkeypatch.setattr(Outcomes, "abandon", abandon)


def abandoned_without_reversal_unreconciled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same bug with the day's 3201 check turned off: the drain's comparison of what each counter holds with
    what the centre holds is a second net (it is what sees a bug of the drain itself, after the last 3201)."""
    abandoned_without_reversal(monkeypatch)
    monkeypatch.setattr(Checkers, "reconciled", lambda self, c, answer: None)


BUGS = [
    pytest.param(voucher_settled_twice, "lost_answers", "exactly-once", id="voucher-settled-twice"),
    pytest.param(resent_settle_applied_twice, "lost_answers", "exactly-once", id="resent-settle-applied-twice"),
    pytest.param(reversal_does_not_undo, "lost_answers", "exactly-once", id="2601-does-not-undo"),
    pytest.param(shortfall_charged_to_patient, "partitions", "store-and-forward", id="saf-shortfall-to-patient"),
    pytest.param(presettle_debits_account, "none", "conservation", id="presettle-debits-account"),
    pytest.param(abandoned_without_reversal, "lost_answers", "reconciliation", id="abandoned-without-2601"),
    pytest.param(abandoned_without_reversal_unreconciled, "lost_answers", "drain", id="abandoned-without-2601-drain"),
]

_clean: dict[tuple[str, str], RunResult] = {}  # (profile, engine) -> its first seed without a bug


def _options(seed: int, profile: str, engine: str) -> RunOptions:
    return RunOptions(seed, profile=profile, institutions=INSTITUTIONS, engine=engine)


@pytest.mark.parametrize("engine", ["core", "reference"])
@pytest.mark.parametrize(("plant", "profile", "invariant"), BUGS)
def test_checker_catches_planted_bug(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    plant: Callable[[pytest.MonkeyPatch], None],
    profile: str,
    invariant: str,
    engine: str,
) -> None:
    key = (profile, engine)
    if key not in _clean:
        _clean[key] = world.run(_options(0, profile, engine))
    clean = _clean[key]
    assert clean.ok, f"without the bug, {clean.replay_line} broke: {clean.violation}"
    plant(monkeypatch)
    for seed in range(SEEDS):
        result = world.run(_options(seed, profile, engine))
        if result.violation is not None:
            break
    else:
        pytest.fail(f"{plant.__name__}: no checker reported it in {SEEDS} seeds of profile {profile} ({engine})")
    taken = seed + 1
    request.node.user_properties.append(("seeds", taken))  # not record_property: it warns under xunit2 reports
    print(f"\nplanted {plant.__name__} ({engine}): {result.violation.invariant} after {taken} seed(s): "
          f"{result.violation}")  # fmt: skip
    assert result.violation.invariant == invariant, (
        f"{plant.__name__}: {result.violation.invariant} reported it, not {invariant}, after {taken} seed(s): "
        f"{result.violation} ({result.replay_line})"
    )
