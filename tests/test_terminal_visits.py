"""A hospital's outpatient counter (H13010000001, tier 3) against a real centre: a visit from registration
to settlement and its cancel, the centre away before and during a visit, a lost settle answer reversed,
the terminal crashing mid-visit, and vouchers of visits inside and outside the window."""

from __future__ import annotations

from decimal import Decimal

import pytest

from centre_rig import ServedCentre
from medsettle.terminal import CounterError
from medsettle.terminal.crash import EXIT_CODE
from terminal_rig import (
    ITEMS,
    LossyProxy,
    balance_of,
    by_certno,
    days_ago,
    make_counter,
    own_institution,
    patient_certno,
    terminal,
)

pytestmark = pytest.mark.timeout(180)
HOSPITAL = "H13010000001"
MEDFEE = Decimal("55.00")
ITEM_ARGS = [f"{i['med_list_codg']}:{i['pric']}:{i['cnt']}" for i in ITEMS]


@pytest.fixture()
def code():
    """This test's own copy of the tier-3 hospital."""
    return own_institution(HOSPITAL)


def hospital(url, tmp_path, code=HOSPITAL, **kwargs):
    counter = make_counter(url, tmp_path / "h.db", code, **kwargs)
    counter.sign_in()
    return counter


def test_a_visit_from_registration_to_settlement_and_its_cancel(centre, code, tmp_path):
    counter = hospital(centre.url, tmp_path, code)
    before = balance_of(centre, centre.sign_in())
    receipt = counter.visit(by_certno(), ITEMS, med_type="11")
    assert receipt.kind == "sale" and Decimal(receipt.medfee) == MEDFEE
    assert Decimal(receipt.fund) + Decimal(receipt.account) + Decimal(receipt.cash) == MEDFEE
    assert balance_of(centre, centre.sign_in()) == before - Decimal(receipt.account)
    _, data = counter.journal.sale(receipt.sale)
    assert data["mdtrt_id"].startswith("MD130100") and set(data["steps"]) == {"2201", "2203", "2204", "2207"}
    cancelled = counter.cancel(receipt.sale)
    assert Decimal(cancelled.medfee) == -MEDFEE
    assert balance_of(centre, centre.sign_in()) == before
    second = counter.visit(by_certno(), ITEMS[:1], med_type="13")
    report = counter.reconcile(detail=True)
    assert report["clean"], report
    assert {g["clr_type"] for g in report["groups"]} == {"11"} and second.kind == "sale"


def test_centre_away_before_the_visit_then_its_voucher(tmp_path):
    server = ServedCentre(tmp_path / "centre").start()
    counter = hospital(server.url, tmp_path)
    server.stop()
    try:
        deferred = counter.visit(by_certno(), ITEMS)
        assert deferred.kind == "deferred" and Decimal(deferred.cash) == MEDFEE
        server.start()
        counter.client.url = server.url
        refund = counter.settle_voucher(deferred.voucher)
        assert refund.kind == "refund" and Decimal(refund.medfee) == MEDFEE
        assert counter.settle_voucher(deferred.voucher) == refund
        assert counter.reconcile(detail=True)["clean"]
    finally:
        server.stop()


def test_lost_settle_answer_in_a_visit_is_reversed_and_paid_once(centre, code, tmp_path):
    proxy = LossyProxy(centre.url)
    try:
        counter = hospital(proxy.url, tmp_path, code)
        before = balance_of(centre, centre.sign_in())
        proxy.drop = {"2207"}
        deferred = counter.visit(by_certno(), ITEMS)
        assert deferred.kind == "deferred" and proxy.dropped >= 1
        assert counter.journal.voucher(deferred.voucher)["blocked_by"] is None  # the 2601 was answered
        assert balance_of(centre, centre.sign_in()) == before
        proxy.drop = set()
        refund = counter.settle_voucher(deferred.voucher)
        assert balance_of(centre, centre.sign_in()) == before - Decimal(refund.account)
        assert counter.reconcile(detail=True)["clean"]
    finally:
        proxy.close()


def test_a_visits_voucher_past_the_window_is_a_manual_claim(centre, code, tmp_path):
    counter = hospital(centre.url, tmp_path, code)
    old = make_counter(centre.url, tmp_path / "h.db", code, clock=days_ago(8))
    deferred = old.visit(None, ITEMS)
    with pytest.raises(CounterError, match="manual claim"):
        counter.settle_voucher(deferred.voucher, by_certno())
    assert counter.journal.voucher(deferred.voucher)["state"] == "manual_claim"
    assert counter.reconcile(detail=True)["clean"]


@pytest.mark.parametrize("point", ["sale_recorded", "settle_written", "settle_sent", "settle_recorded"])
def test_the_terminal_crashing_mid_visit(centre, code, tmp_path, point):
    """The terminal process exits at ``point`` mid-visit and a new process's resume finishes what was left;
    the sign-in before and the checks after run in this process (their CLI is test_terminal's)."""
    journal = tmp_path / "h.db"
    hospital(centre.url, tmp_path, code).journal.close()  # the CLI is another process: one holds a journal
    before = balance_of(centre, centre.sign_in())
    crashed = terminal(
        centre.url,
        journal,
        "visit",
        "--certno",
        patient_certno(),
        *ITEM_ARGS,
        code=code,
        crash_at=point,
        check=False,
    )
    assert crashed.returncode == EXIT_CODE, crashed.stderr
    terminal(centre.url, journal, "resume", code=code)  # the restarted terminal
    counter = make_counter(centre.url, journal, code)
    for v in counter.pending_vouchers():
        counter.settle_voucher(v["voucher"], by_certno())
    report = counter.reconcile(detail=True)
    assert report["clean"], report
    paid = [d["setlinfo"] for _s, _st, d in counter.journal.sales("done") if not d.get("voucher")]
    paid += [v["setlinfo"] for v in counter.journal.vouchers("settled")]
    assert len(paid) == 1 and Decimal(str(paid[0]["medfee_sumamt"])) == MEDFEE
    assert balance_of(centre, centre.sign_in()) == before - Decimal(str(paid[0]["acct_pay"]))
