"""An inpatient stay at a hospital counter against a real centre: admission, fees over the stay, a mid-stay
settlement, discharge and the final settlement; a lost settle answer resolved by resending; the terminal
crashing after a settle was sent; a final settlement the patient cannot wait for, deferred to a voucher
inside and outside the 30 days after discharge; reconciliation clean."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from centre_rig import CODES
from medsettle.terminal import CentreUnreachable, CounterError
from medsettle.terminal.crash import EXIT_CODE
from terminal_rig import LossyProxy, balance_of, by_certno, days_ago, make_counter, patient_certno, terminal

pytestmark = pytest.mark.timeout(180)
HOSPITAL = "H13010000002"
DAY1 = [{"med_list_codg": CODES[0], "pric": "800.00", "cnt": "1"}]
DAY2 = [{"med_list_codg": CODES[1], "pric": "350.00", "cnt": "2"}]


def test_a_stay_with_a_mid_stay_and_a_final_settlement(served_centre, tmp_path):
    counter = make_counter(served_centre.url, tmp_path / "h.db", HOSPITAL)
    counter.sign_in()
    before = balance_of(served_centre, served_centre.sign_in())
    stay = counter.admit(by_certno())
    split = counter.stay_fees(stay, DAY1)
    assert [line["feedetl_sn"] for line in split] == ["1"]
    mid = counter.settle_stay(stay, final=False)
    assert Decimal(mid.medfee) == Decimal("800.00") and mid.note == "mid-stay settlement"
    counter.stay_fees(stay, DAY2)
    counter.discharge(stay)
    final = counter.settle_stay(stay, final=True)
    assert Decimal(final.medfee) == Decimal("700.00")  # only the lines not settled mid-stay
    # the admission's deductible is charged once across both settlements
    assert balance_of(served_centre, served_centre.sign_in()) == before - Decimal(mid.account) - Decimal(final.account)
    report = counter.reconcile(detail=True)
    assert report["clean"], report
    assert {g["clr_type"] for g in report["groups"]} == {"21"}
    cancelled = counter.cancel_stay_settlement(stay, final.setl_id)
    assert Decimal(cancelled.medfee) == -Decimal("700.00")
    assert counter.cancel_stay_settlement(stay, final.setl_id) == cancelled  # resent, not made twice
    assert balance_of(served_centre, served_centre.sign_in()) == before - Decimal(mid.account)
    assert counter.reconcile(detail=True)["clean"]


def test_a_lost_settle_answer_is_resent_unchanged(served_centre, tmp_path):
    proxy = LossyProxy(served_centre.url)
    try:
        counter = make_counter(proxy.url, tmp_path / "h.db", HOSPITAL)
        counter.sign_in()
        stay = counter.admit(by_certno())
        counter.stay_fees(stay, DAY1)
        counter.discharge(stay)
        proxy.drop = {"2304"}
        with pytest.raises(CentreUnreachable):
            counter.settle_stay(stay, final=True)  # applied, never answered: left to resend
        proxy.drop = set()
        assert counter.resume()["answered"] == 1
        _, data = counter.journal.sale(stay)
        assert len(counter.stay_settlements(data)) == 1
        assert counter.reconcile(detail=True)["clean"]  # one settlement on both sides, not two
    finally:
        proxy.close()


def test_the_terminal_crashing_after_a_stays_settle_was_sent(served_centre, tmp_path):
    journal = tmp_path / "h.db"
    terminal(served_centre.url, journal, "signin", code=HOSPITAL)
    admitted = terminal(served_centre.url, journal, "admit", "--certno", patient_certno(), code=HOSPITAL)
    stay = json.loads(admitted.stdout)["stay"]
    terminal(served_centre.url, journal, "stay-fees", stay, f"{CODES[0]}:800.00:1", code=HOSPITAL)
    crashed = terminal(
        served_centre.url, journal, "settle-stay", stay, code=HOSPITAL, crash_at="settle_sent", check=False
    )
    assert crashed.returncode == EXIT_CODE
    report = json.loads(terminal(served_centre.url, journal, "reconcile", "--detail", code=HOSPITAL).stdout)
    assert report["clean"], report  # the resume before reconcile recorded the answer, once
    counter = make_counter(served_centre.url, journal, HOSPITAL)
    _, data = counter.journal.sale(stay)
    assert len(counter.stay_settlements(data)) == 1


def test_final_settlement_unanswered_patient_leaves_then_the_stays_voucher(served_centre, tmp_path):
    proxy = LossyProxy(served_centre.url)
    try:
        counter = make_counter(proxy.url, tmp_path / "h.db", HOSPITAL)
        counter.sign_in()
        before = balance_of(served_centre, served_centre.sign_in())
        stay = counter.admit(by_certno())
        counter.stay_fees(stay, DAY1)
        mid = counter.settle_stay(stay, final=False)
        counter.stay_fees(stay, DAY2)
        counter.discharge(stay)
        proxy.drop = {"2304"}
        with pytest.raises(CentreUnreachable):
            counter.settle_stay(stay, final=True)
        deferred = counter.defer_stay(stay)  # the 2601 goes through and undoes the lost settlement
        assert deferred.kind == "deferred" and Decimal(deferred.cash) == Decimal("700.00")
        assert counter.journal.voucher(deferred.voucher)["blocked_by"] is None
        assert balance_of(served_centre, served_centre.sign_in()) == before - Decimal(mid.account)
        proxy.drop = set()
        refund = counter.settle_voucher(deferred.voucher)
        assert refund.kind == "refund" and Decimal(refund.medfee) == Decimal("700.00")
        after = balance_of(served_centre, served_centre.sign_in())
        assert after == before - Decimal(mid.account) - Decimal(refund.account)
        report = counter.reconcile(detail=True)
        assert report["clean"], report
    finally:
        proxy.close()


def test_a_stays_voucher_more_than_30_days_after_discharge_is_a_manual_claim(served_centre, tmp_path):
    proxy = LossyProxy(served_centre.url)
    try:
        past = make_counter(proxy.url, tmp_path / "h.db", HOSPITAL, clock=days_ago(40))
        past.sign_in()
        stay = past.admit(by_certno())
        past.stay_fees(stay, DAY1)
        past.discharge(stay)  # discharged 40 days ago
        proxy.drop = {"2304"}
        with pytest.raises(CentreUnreachable):
            past.settle_stay(stay, final=True)
        deferred = past.defer_stay(stay)
        proxy.drop = set()
        today = make_counter(proxy.url, tmp_path / "h.db", HOSPITAL)
        with pytest.raises(CounterError, match="manual claim"):
            today.settle_voucher(deferred.voucher)
        assert "WINDOW_EXPIRED" in today.journal.voucher(deferred.voucher)["err_msg"]
    finally:
        proxy.close()
