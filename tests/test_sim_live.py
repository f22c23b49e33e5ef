"""``medsettle sim live`` (docs/simulation.md 'Live mode'): two seeds against real processes end with no
violation having really injected faults and killed the centre; the live checker catches a counter journal
corrupted on purpose (a settlement recorded twice, an amount that is not the centre's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medsettle.sim.checkers import Violation
from medsettle.sim.live_checks import AMOUNTS, CounterRecord, check_records, counter_records
from medsettle.terminal import CounterStore

LIVE_TIMEOUT_S = 170  # a bound for each seed (both run at once), not an expectation: half a minute on an idle machine


def test_two_seeds_run_clean_with_faults_and_centre_kills() -> None:
    """Seeds 3 and 4, two counters of four patients each, at once: no violation, faults injected, the centre
    killed (SIGKILL) and restarted at least once, every voucher settled."""
    command = [sys.executable, "-m", "medsettle.cli", "sim", "live", "--counters", "2", "--patients", "4", "--json"]
    env = {k: v for k, v in os.environ.items() if k != "MEDSETTLE_CRASH_AT"}
    runs = {
        seed: subprocess.Popen([*command, "--seed", str(seed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
        for seed in (3, 4)
    }  # fmt: skip
    for seed, proc in runs.items():
        try:
            out, err = proc.communicate(timeout=LIVE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            for p in runs.values():
                p.kill()
            pytest.fail(f"sim live --seed {seed} did not finish in {LIVE_TIMEOUT_S} s")
        assert proc.returncode == 0, f"seed {seed}: exit {proc.returncode}\n{out}\n{err[-3000:]}"
        result = json.loads(out)
        assert result["ok"] and result["violation"] is None, result
        assert result["faults"]["centre_kill"] >= 1, result
        assert sum(result["faults"].values()) > result["faults"]["centre_kill"], result  # network or power faults
        assert 1 <= result["bills"] <= 8 and result["checks"] > 0, result  # a patient may come back for a voucher
        assert set(result["vouchers"]) <= {"settled", "manual_claim"}, result
        assert result["replay"] == f"medsettle sim live --seed {seed} --profile default --counters 2 --patients 4"


def test_a_bad_profile_is_one_error_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "medsettle.cli", "sim", "live", "--seed", "1", "--profile", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and done.stderr.startswith("Error: --profile: no profile 'nope'"), done.stderr


# -- the checker catches a corrupted journal ---------------------------------------------------------------

SETLINFO = {"setl_id": "S000000000000007", "medfee_sumamt": 25.0, "fund_pay_sumamt": 0.0, "acct_pay": 20.0,
            "psn_cash_pay": 5.0}  # fmt: skip
CENTRE = {"S000000000000007": (2500, 0, 2000, 500)}


def _journal(tmp_path: Path, *sales: tuple[str, dict]) -> CounterStore:
    store = CounterStore(tmp_path / "counter.db")
    with store.transaction() as db:
        for sale, setlinfo in sales:
            data = json.dumps({"setlinfo": setlinfo, "medfee": "25.00"})
            db.execute("INSERT INTO sales (sale, state, data, updated) VALUES (?, 'done', ?, '')", (sale, data))
    return store


def test_a_clean_journal_passes(tmp_path: Path) -> None:
    store = _journal(tmp_path, ("SALE00000001", SETLINFO))
    try:
        records = counter_records("P1-0", store)
    finally:
        store.close()
    assert records == [CounterRecord("P1-0", "sale", "SALE00000001", "S000000000000007", (2500, 0, 2000, 500))]
    assert check_records(records, CENTRE, set(CENTRE)) == 1


def test_a_settlement_recorded_twice_is_flagged(tmp_path: Path) -> None:
    """The planted bug: the counter's journal holds a second sale row with the same settlement."""
    store = _journal(tmp_path, ("SALE00000001", SETLINFO), ("SALE00000002", SETLINFO))
    try:
        records = counter_records("P1-0", store)
    finally:
        store.close()
    with pytest.raises(Violation) as caught:
        check_records(records, CENTRE, set(CENTRE))
    assert caught.value.invariant == "exactly-once"
    assert "S000000000000007 is recorded twice" in caught.value.detail


def test_the_same_settlement_at_two_counters_is_flagged() -> None:
    one = CounterRecord("P1-0", "sale", "SALE00000001", "S000000000000007", CENTRE["S000000000000007"])
    other = CounterRecord("H1-1", "sale", "SALE00000001", "S000000000000007", CENTRE["S000000000000007"])
    with pytest.raises(Violation, match="recorded twice"):
        check_records([one, other], CENTRE, set(CENTRE))


def test_a_voucher_and_its_revisit_share_a_settlement() -> None:
    sale = CounterRecord("H1-1", "sale", "SALE00000003", "S000000000000007", CENTRE["S000000000000007"])
    voucher = CounterRecord("H1-1", "voucher", "V0001", "S000000000000007", CENTRE["S000000000000007"])
    assert check_records([sale, voucher], CENTRE, set(CENTRE)) == 2


def test_an_amount_that_is_not_the_centres_is_flagged(tmp_path: Path) -> None:
    store = _journal(tmp_path, ("SALE00000001", {**SETLINFO, "acct_pay": 25.0, "psn_cash_pay": 0.0}))
    try:
        records = counter_records("P1-0", store)
    finally:
        store.close()
    with pytest.raises(Violation) as caught:
        check_records(records, CENTRE, set(CENTRE))
    assert caught.value.invariant == "conservation" and "acct_pay" in caught.value.detail


def test_a_settlement_the_centre_cancelled_or_never_held_is_flagged() -> None:
    record = CounterRecord("P1-0", "sale", "SALE00000001", "S000000000000007", CENTRE["S000000000000007"])
    with pytest.raises(Violation, match="was cancelled at the centre"):
        check_records([record], CENTRE, set())
    with pytest.raises(Violation, match="which the centre does not hold"):
        check_records([record], {}, set())
    assert len(AMOUNTS) == 4


def test_a_violation_is_reported_with_the_seed_and_the_line_that_plays_it_again() -> None:
    from medsettle.cli.sim import _live_summary, _live_violation
    from medsettle.sim.live import LIVE_FAULTS, LiveOptions, LiveResult

    options = LiveOptions(seed=9, counters=2, patients=3)
    violation = Violation("exactly-once", 4, "settlement S1 is recorded twice")
    result = LiveResult(options, 6, 14, {k: 1 for k in LIVE_FAULTS}, {"sell sale": 3}, {"settled": 1}, 20, 12.5,
                        violation, ["3 P13010000001-0 sell: exit 0 sale"])  # fmt: skip
    summary = list(_live_summary(result))
    assert summary[0].startswith("seed 9 (live): profile default") and "not byte-identical" in summary[0]
    assert summary[-1].split() == ["result", "VIOLATION"]
    assert any(line.split() == ["centre_kill", "1"] for line in summary)
    report = list(_live_violation(result))
    assert "VIOLATION at seed 9 (live): exactly-once" in report
    assert "  detail:    settlement S1 is recorded twice" in report
    assert report[-1] == (
        "  replay (seeded, not byte-identical): medsettle sim live --seed 9 --profile default --counters 2 --patients 3"
    )
    assert result.as_json()["violation"] == {"invariant": "exactly-once", "step": 4, "detail": violation.detail}
