"""Store-and-forward at a pharmacy whose policy says so (P13010000002): provisional settlement with the
cached rules and without the account while the centre is down, floor limits, forwarding in order when it is
back, the provisional/actual difference (surplus refunded to the patient), a refused forward flagged and
borne by the institution, and the crash points of the queue."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from centre_rig import CODES, ServedCentre, default_registry, first_person
from medsettle.terminal import Identity
from medsettle.terminal.crash import EXIT_CODE
from terminal_rig import (
    ITEMS,
    SAF_PHARMACY,
    balance_of,
    by_certno,
    make_counter,
    patient,
    patient_certno,
    terminal,
)

pytestmark = pytest.mark.timeout(180)
ITEM_ARGS = [f"{i['med_list_codg']}:{i['pric']}:{i['cnt']}" for i in ITEMS]
BIG = [{"med_list_codg": CODES[0], "pric": "2000.00", "cnt": "1"}]  # crosses the 1,500.00 deductible


@pytest.fixture()
def world(tmp_path):
    server = ServedCentre(tmp_path / "centre").start()
    counter = make_counter(server.url, tmp_path / "t.db", SAF_PHARMACY)
    counter.sign_in()
    assert counter.failure_policy == "store_and_forward"
    yield server, counter
    server.stop()


def go_down(server, counter):
    server.stop()  # the counter's next message finds nobody listening


def come_back(server, counter):
    server.start()
    counter.client.url = server.url


def test_provisional_then_forwarded_with_the_surplus_refunded(world):
    server, counter = world
    online = counter.sell(by_certno(), BIG)  # the deductible is met now; the counter knows the person
    assert online.kind == "sale" and Decimal(online.fund) > 0
    balance = balance_of(server, server.sign_in())  # the test's own eyes on the centre
    go_down(server, counter)
    provisional = counter.sell(by_certno(), ITEMS)
    # provisional: the cached rules, nothing met this year (so under the deductible: no fund), no account
    assert provisional.kind == "provisional"
    assert (provisional.fund, provisional.account, provisional.cash) == ("0.00", "0.00", "55.00")
    come_back(server, counter)
    counter.sign_in()
    [outcome] = counter.forward()
    assert outcome["state"] == "forwarded"
    actual = next(e for e in counter.journal.saf_entries("forwarded"))["setlinfo"]
    assert Decimal(str(actual["acct_pay"])) == 0 and Decimal(str(actual["fund_pay_sumamt"])) > 0
    # the deductible was met: the fund pays part, so the patient paid too much and gets the difference back
    assert Decimal(outcome["refund_to_patient"]) == Decimal("55.00") - Decimal(str(actual["psn_cash_pay"])) > 0
    assert outcome["institution_bears"] == "0.00"
    assert balance_of(server, server.sign_in()) == balance  # the account was not touched
    assert counter.reconcile(detail=True)["clean"]


def test_floor_limits_unknown_persons_and_forwarding_order(world):
    server, counter = world
    counter.sell(by_certno(), ITEMS)  # known to the counter from now on
    go_down(server, counter)
    over = counter.sell(by_certno(), [{"med_list_codg": CODES[0], "pric": "3000.00", "cnt": "1"}])
    assert over.kind == "deferred" and "floor_per_bill" in over.note  # 825.00 provisional fund > 500.00
    stranger = default_registry().identities[first_person("130100", "390")].certno
    unknown = counter.sell(Identity("02", stranger), ITEMS)
    assert unknown.kind == "deferred" and "does not know" in unknown.note
    first = counter.sell(by_certno(), ITEMS)
    second = counter.sell(by_certno(), ITEMS[:1])
    assert first.kind == second.kind == "provisional"
    assert counter.forward() == []  # still down: nothing forwarded, attempts counted
    assert [e["attempts"] for e in counter.journal.saf_entries("forwarding")] == [1]
    come_back(server, counter)
    counter.sign_in()
    outcomes = counter.forward_until_done(rounds=3, base_delay=0.01)
    assert [o["sale"] for o in outcomes] == [first.sale, second.sale]  # in the order taken
    assert counter.reconcile(detail=True)["clean"]


def test_a_refused_forward_is_flagged_and_borne_by_the_institution(world):
    server, counter = world
    counter.sell(by_certno(), ITEMS)
    go_down(server, counter)
    provisional = counter.sell(by_certno(), ITEMS)
    come_back(server, counter)
    counter.sign_in()
    assert server.admin({"action": "cancel_person", "psn_no": patient(), "reason": "emigration"})["ok"]
    [outcome] = counter.forward()
    assert outcome["state"] == "flagged" and "PERSON_INACTIVE" in outcome["why"]
    assert outcome["sale"] == provisional.sale and outcome["institution_bears"] == provisional.fund
    assert counter.journal.saf_entries("flagged")[0]["flag"]
    assert counter.reconcile(detail=True)["clean"]  # a refused forward is in neither side's books


@pytest.mark.parametrize("point", ["saf_recorded", "forward_written", "forward_sent"])
def test_crash_points_of_the_queue(tmp_path, point):
    server = ServedCentre(tmp_path / "centre").start()
    journal = tmp_path / "t.db"
    try:
        terminal(server.url, journal, "signin", code=SAF_PHARMACY)
        terminal(server.url, journal, "sell", "--certno", patient_certno(), *ITEM_ARGS, code=SAF_PHARMACY)
        server.stop()
        crashed = terminal(
            server.url,
            journal,
            "sell",
            "--certno",
            patient_certno(),
            *ITEM_ARGS,
            code=SAF_PHARMACY,
            crash_at=point if point == "saf_recorded" else None,
            check=False,
        )
        if point == "saf_recorded":
            assert crashed.returncode == EXIT_CODE
        else:
            assert json.loads(crashed.stdout)["kind"] == "provisional"
        server.start()
        if point != "saf_recorded":  # the next command's resume forwards the queue, and crashes there
            again = terminal(server.url, journal, "signin", code=SAF_PHARMACY, crash_at=point, check=False)
            assert again.returncode == EXIT_CODE, again.stderr
        terminal(server.url, journal, "signin", code=SAF_PHARMACY)
        counter = make_counter(server.url, journal, SAF_PHARMACY)
        entries = counter.journal.saf_entries()
        counter.journal.close()  # the CLI is another process: a journal is held by one at a time
        assert [e["state"] for e in entries] == ["forwarded"]  # forwarded exactly once
        report = json.loads(terminal(server.url, journal, "reconcile", "--detail", code=SAF_PHARMACY).stdout)
        assert report["clean"], report
    finally:
        server.stop()


def test_a_store_and_forward_hospital_forwards_a_provisional_visit(tmp_path):
    server = ServedCentre(tmp_path / "centre").start()
    try:
        counter = make_counter(server.url, tmp_path / "h.db", "H13010000003")  # tier 1, store-and-forward
        counter.sign_in()
        assert counter.failure_policy == "store_and_forward"
        online = counter.visit(by_certno(), BIG)  # known to the counter; the deductible is met
        assert online.kind == "sale"
        balance = balance_of(server, server.sign_in())
        server.stop()
        provisional = counter.visit(by_certno(), ITEMS, med_type="11")
        assert provisional.kind == "provisional" and provisional.account == "0.00"
        assert Decimal(provisional.fund) + Decimal(provisional.cash) == Decimal("55.00")
        assert counter.forward() == []  # still away
        server.start()
        counter.client.url = server.url
        counter.sign_in()
        [outcome] = counter.forward_until_done(rounds=3, base_delay=0.01)
        assert outcome["state"] == "forwarded"
        actual = counter.journal.saf_entries("forwarded")[0]["setlinfo"]
        assert Decimal(str(actual["acct_pay"])) == 0
        # provisional: nothing met, so no fund share; actual: the deductible was met, so a refund
        assert provisional.fund == "0.00"
        assert Decimal(outcome["refund_to_patient"]) == Decimal(provisional.cash) - Decimal(str(actual["psn_cash_pay"]))
        assert Decimal(outcome["refund_to_patient"]) > 0
        assert balance_of(server, server.sign_in()) == balance
        report = counter.reconcile(detail=True)
        assert report["clean"], report
    finally:
        server.stop()


def test_entries_past_the_retry_or_age_limit_are_flagged_for_a_clerk(world):
    import datetime as dt

    server, counter = world
    counter.sell(by_certno(), ITEMS)
    go_down(server, counter)
    tried = counter.sell(by_certno(), ITEMS)
    other = counter.sell(by_certno(), ITEMS[:1])
    for _ in range(2):
        assert counter.forward() == []  # the first entry is tried (written, sent, no answer); the rest wait
    come_back(server, counter)
    counter.sign_in()
    outcomes = counter.forward(max_attempts=2)
    assert outcomes[0] == {"sale": tried.sale, "state": "flagged", "why": "too old or too many tries"}
    assert outcomes[1]["sale"] == other.sale and outcomes[1]["state"] == "forwarded"  # the flag does not block
    assert counter.resume()["answered"] == 1  # the flagged forward was written: resent, and its answer settles it
    assert [e["state"] for e in counter.journal.saf_entries()] == ["forwarded", "forwarded"]
    go_down(server, counter)
    stale = counter.sell(by_certno(), ITEMS)
    come_back(server, counter)
    counter.sign_in()
    assert counter.forward(max_age=dt.timedelta(0)) == [
        {"sale": stale.sale, "state": "flagged", "why": "too old or too many tries"}
    ]
    assert counter.resume().get("forwarded", 0) == 0  # never written, so never sent: the clerk decides
    assert counter.reconcile(detail=True)["clean"]  # a flagged entry never sent is in neither side's books
