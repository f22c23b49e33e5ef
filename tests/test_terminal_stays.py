"""An inpatient stay at a hospital counter against a real centre: admission, fees over the stay, a mid-stay
settlement, discharge and the final settlement; a lost settle answer resolved by resending; the terminal
crashing after a settle was sent; a final settlement the patient cannot wait for, deferred to a voucher
inside and outside the 30 days after discharge; reconciliation clean."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal

import pytest

from centre_rig import CODES
from medsettle.terminal import CentreUnreachable, CounterError
from medsettle.terminal.crash import EXIT_CODE
from terminal_rig import (
    LossyProxy,
    balance_of,
    by_certno,
    days_ago,
    employees,
    make_counter,
    own_institution,
    patient_certno,
    terminal,
)

pytestmark = pytest.mark.timeout(180)
HOSPITAL = "H13010000002"
DAY1 = [{"med_list_codg": CODES[0], "pric": "800.00", "cnt": "1"}]
DAY2 = [{"med_list_codg": CODES[1], "pric": "350.00", "cnt": "2"}]


@pytest.fixture()
def code():
    """This test's own copy of the tier-2 hospital."""
    return own_institution(HOSPITAL)


_patients = itertools.count(1)


@pytest.fixture()
def psn():
    """This test's own patient (an employee of 130100): a stay is the person's, and a cancelled final
    settlement leaves them in hospital, so tests sharing the centre do not share a patient."""
    return employees()[next(_patients)]


def test_a_stay_with_a_mid_stay_and_a_final_settlement(centre, code, psn, tmp_path):
    counter = make_counter(centre.url, tmp_path / "h.db", code)
    counter.sign_in()
    before = balance_of(centre, centre.sign_in(), psn_no=psn)
    stay = counter.admit(by_certno(psn))
    split = counter.stay_fees(stay, DAY1)
    assert [line["feedetl_sn"] for line in split] == ["1"]
    mid = counter.settle_stay(stay, final=False)
    assert Decimal(mid.medfee) == Decimal("800.00") and mid.note == "mid-stay settlement"
    counter.stay_fees(stay, DAY2)
    counter.discharge(stay)
    final = counter.settle_stay(stay, final=True)
    assert Decimal(final.medfee) == Decimal("700.00")  # only the lines not settled mid-stay
    # the admission's deductible is charged once across both settlements
    assert balance_of(centre, centre.sign_in(), psn_no=psn) == before - Decimal(mid.account) - Decimal(final.account)
    report = counter.reconcile(detail=True)
    assert report["clean"], report
    assert {g["clr_type"] for g in report["groups"]} == {"21"}
    cancelled = counter.cancel_stay_settlement(stay, final.setl_id)
    assert Decimal(cancelled.medfee) == -Decimal("700.00")
    assert counter.cancel_stay_settlement(stay, final.setl_id) == cancelled  # resent, not made twice
    assert balance_of(centre, centre.sign_in(), psn_no=psn) == before - Decimal(mid.account)
    assert counter.reconcile(detail=True)["clean"]


def test_a_lost_settle_answer_is_resent_unchanged(centre, code, psn, tmp_path):
    proxy = LossyProxy(centre.url)
    try:
        counter = make_counter(proxy.url, tmp_path / "h.db", code)
        counter.sign_in()
        stay = counter.admit(by_certno(psn))
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


def test_the_terminal_crashing_after_a_stays_settle_was_sent(centre, code, psn, tmp_path):
    journal = tmp_path / "h.db"
    signed_in = make_counter(centre.url, journal, code)  # in process: the CLI's signin is test_terminal's
    signed_in.sign_in()
    signed_in.journal.close()  # the CLI is another process: a journal is held by one at a time
    admitted = terminal(centre.url, journal, "admit", "--certno", patient_certno(psn), code=code)
    stay = json.loads(admitted.stdout)["stay"]
    terminal(centre.url, journal, "stay-fees", stay, f"{CODES[0]}:800.00:1", code=code)
    crashed = terminal(centre.url, journal, "settle-stay", stay, code=code, crash_at="settle_sent", check=False)
    assert crashed.returncode == EXIT_CODE
    report = json.loads(terminal(centre.url, journal, "reconcile", "--detail", code=code).stdout)
    assert report["clean"], report  # the resume before reconcile recorded the answer, once
    counter = make_counter(centre.url, journal, code)
    _, data = counter.journal.sale(stay)
    assert len(counter.stay_settlements(data)) == 1


def test_final_settlement_unanswered_patient_leaves_then_the_stays_voucher(centre, code, psn, tmp_path):
    proxy = LossyProxy(centre.url)
    try:
        counter = make_counter(proxy.url, tmp_path / "h.db", code)
        counter.sign_in()
        before = balance_of(centre, centre.sign_in(), psn_no=psn)
        stay = counter.admit(by_certno(psn))
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
        assert balance_of(centre, centre.sign_in(), psn_no=psn) == before - Decimal(mid.account)
        proxy.drop = set()
        refund = counter.settle_voucher(deferred.voucher)
        assert refund.kind == "refund" and Decimal(refund.medfee) == Decimal("700.00")
        after = balance_of(centre, centre.sign_in(), psn_no=psn)
        assert after == before - Decimal(mid.account) - Decimal(refund.account)
        report = counter.reconcile(detail=True)
        assert report["clean"], report
    finally:
        proxy.close()


def test_a_stays_voucher_more_than_30_days_after_discharge_is_a_manual_claim(centre, code, psn, tmp_path):
    proxy = LossyProxy(centre.url)
    try:
        past = make_counter(proxy.url, tmp_path / "h.db", code, clock=days_ago(40))
        past.sign_in()
        stay = past.admit(by_certno(psn))
        past.stay_fees(stay, DAY1)
        past.discharge(stay)  # discharged 40 days ago
        proxy.drop = {"2304"}
        with pytest.raises(CentreUnreachable):
            past.settle_stay(stay, final=True)
        deferred = past.defer_stay(stay)
        proxy.drop = set()
        today = make_counter(proxy.url, tmp_path / "h.db", code)
        with pytest.raises(CounterError, match="manual claim"):
            today.settle_voucher(deferred.voucher)
        assert "WINDOW_EXPIRED" in today.journal.voucher(deferred.voucher)["err_msg"]
    finally:
        proxy.close()
