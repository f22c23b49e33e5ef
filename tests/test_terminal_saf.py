"""Store-and-forward at a pharmacy whose policy says so (P13010000002): provisional settlement with the
cached rules and without the account while the centre is down, floor limits, forwarding in order when it is
back, the provisional/actual difference (surplus refunded to the patient), a refused forward flagged and
borne by the institution, and the crash points of the queue."""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
import sqlite3
from decimal import Decimal

import pytest

from centre_rig import CODES, ServedCentre, default_registry, first_person
from medsettle import credentials
from medsettle.policy import load_policy
from medsettle.policy.loader import default_policy_path
from medsettle.terminal import CentreClient, Identity
from medsettle.terminal.crash import EXIT_CODE
from medsettle.timeutil import now_shanghai
from terminal_rig import (
    ITEMS,
    SAF_PHARMACY,
    balance_of,
    by_certno,
    dead_url,
    institutions_args,
    make_counter,
    own_institution,
    patient,
    patient_certno,
    terminal,
)

pytestmark = pytest.mark.timeout(180)
ITEM_ARGS = [f"{i['med_list_codg']}:{i['pric']}:{i['cnt']}" for i in ITEMS]
BIG = [{"med_list_codg": CODES[0], "pric": "2000.00", "cnt": "1"}]  # crosses the 1,500.00 deductible


@pytest.fixture()
def world(centres, tmp_path):
    """The shared centre and a signed-in counter of the test's own store-and-forward pharmacy."""
    server = centres()
    counter = make_counter(server.url, tmp_path / "t.db", own_institution(SAF_PHARMACY))
    counter.sign_in()
    assert counter.failure_policy == "store_and_forward"
    return server, counter


@pytest.fixture()
def fresh_world(tmp_path):
    """A centre of the test's own, for a test that changes the patient for good (cancels them)."""
    server = ServedCentre(tmp_path / "centre").start()
    counter = make_counter(server.url, tmp_path / "t.db", SAF_PHARMACY)
    counter.sign_in()
    assert counter.failure_policy == "store_and_forward"
    yield server, counter
    server.stop()


def go_down(server, counter):
    counter.client.url = dead_url()  # the counter's next message finds nobody listening


def come_back(server, counter):
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


def test_a_refused_forward_is_flagged_and_borne_by_the_institution(fresh_world):
    server, counter = fresh_world
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
def test_crash_points_of_the_queue(centres, tmp_path, point):
    """The terminal process exits at ``point`` and the next process forwards the queue exactly once. The
    online sale before (the counter learns the person) and the checks after run in this process."""
    server, code, journal = centres(), own_institution(SAF_PHARMACY), tmp_path / "t.db"
    setup = make_counter(server.url, journal, code)
    setup.sign_in()
    assert setup.sell(by_certno(), ITEMS).kind == "sale"
    setup.journal.close()  # the CLI is another process: a journal is held by one at a time
    crashed = terminal(
        dead_url(),  # the centre is away
        journal,
        "sell",
        "--certno",
        patient_certno(),
        *ITEM_ARGS,
        code=code,
        crash_at=point if point == "saf_recorded" else None,
        check=False,
    )
    if point == "saf_recorded":
        assert crashed.returncode == EXIT_CODE
    else:
        assert json.loads(crashed.stdout)["kind"] == "provisional"
    if point != "saf_recorded":  # the next command's resume forwards the queue, and crashes there
        again = terminal(server.url, journal, "signin", code=code, crash_at=point, check=False)
        assert again.returncode == EXIT_CODE, again.stderr
    terminal(server.url, journal, "signin", code=code)
    counter = make_counter(server.url, journal, code)
    assert [e["state"] for e in counter.journal.saf_entries()] == ["forwarded"]  # forwarded exactly once
    report = counter.reconcile(detail=True)
    assert report["clean"], report


def test_a_store_and_forward_hospital_forwards_a_provisional_visit(centres, tmp_path):
    server = centres()
    counter = make_counter(server.url, tmp_path / "h.db", own_institution("H13010000003"))  # tier 1, SAF
    counter.sign_in()
    assert counter.failure_policy == "store_and_forward"
    online = counter.visit(by_certno(), BIG)  # known to the counter; the deductible is met
    assert online.kind == "sale"
    balance = balance_of(server, server.sign_in())
    counter.client.url = dead_url()  # the centre is away
    provisional = counter.visit(by_certno(), ITEMS, med_type="11")
    assert provisional.kind == "provisional" and provisional.account == "0.00"
    assert Decimal(provisional.fund) + Decimal(provisional.cash) == Decimal("55.00")
    assert counter.forward() == []  # still away
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


# -- the cache of rules and catalogue (issue 14: the platform's catalogue downloads, fetched with 9102) -----

DOWNLOADS = ["1301", "1302", "1305", "1306", "1318", "1319"]
ITEM_DOWNLOADS = DOWNLOADS[:4]


def outbox(counter) -> list[dict]:
    """The counter's messages, oldest first: infno, the request's input and the answer recorded."""
    with sqlite3.connect(counter.journal.path) as db:
        rows = db.execute("SELECT infno, request, answer FROM outbox ORDER BY rowid").fetchall()
    return [
        {"infno": infno, "input": json.loads(request)["input"], "answer": json.loads(answer) if answer else None}
        for infno, request, answer in rows
    ]


def by_code(items: list[dict]) -> dict[str, dict]:
    return {item["med_list_codg"]: item for item in items}


def check_downloads(sent: list[dict], held: str) -> dict[str, dict]:
    """The six downloads were sent with the version ``held``; a 9102 fetched exactly the files of those that
    had rows. Returns each download's answer by code."""
    answers = {m["infno"]: m["answer"]["output"] for m in sent if m["infno"] in DOWNLOADS}
    assert sorted(answers) == sorted(DOWNLOADS)
    assert {m["input"]["data"]["ver"] for m in sent if m["infno"] in DOWNLOADS} == {held}
    fetched = [m["input"]["fsDownloadIn"]["file_qury_no"] for m in sent if m["infno"] == "9102"]
    assert sorted(fetched) == sorted(a["file_qury_no"] for a in answers.values() if a["data_cnt"])
    assert all(m["answer"]["infcode"] == 0 for m in sent if m["infno"] == "9102")
    assert "1312" not in [m["infno"] for m in sent]
    return answers


def test_the_cache_is_filled_by_the_catalogue_downloads_and_a_second_refresh_fetches_nothing(world):
    server, counter = world
    first = outbox(counter)
    answers = check_downloads(first, held="")  # held nothing: every row
    rules, catalogue = counter.signin.cached_rules()
    page, _ = server.call("1312", {"data": {"page_size": 5000}}, sign_no=server.sign_in())  # the centre's own
    in_force = page["output"]
    assert catalogue["ver"] == in_force["ver"] and catalogue["effective_from"] == in_force["effective_from"]
    assert by_code(catalogue["items"]) == by_code(in_force["items"])  # item for item, every field
    assert sum(answers[code]["data_cnt"] for code in ITEM_DOWNLOADS) == in_force["total"]
    assert [m["infno"] for m in first].count("9102") >= 4  # the files came over HTTP, not in the answers

    counter.sign_in()  # the next sign-in refreshes with the versions held
    again = outbox(counter)[len(first) :]
    assert [m["infno"] for m in again] == ["9001", "9901", *DOWNLOADS]  # no file fetched
    answers = check_downloads(again, held=catalogue["ver"])
    assert all(answer["data_cnt"] == 0 and answer["ver"] == catalogue["ver"] for answer in answers.values())
    assert again[1]["input"]["data"]["ver"] == rules["ver"] and again[1]["answer"]["output"]["unchanged"]
    assert counter.signin.cached_rules() == (rules, catalogue)


EMERGENCY_CLASS_C_AS = "XJ01AA000A3930101"  # the shipped policy's emergency_scope.class_c_as for 130100


def policy_with_a_new_catalogue(where, effective_from: dt.date):
    """The shipped policy, with a second 130100 catalogue in force from ``effective_from``: one item's price
    cap and another's ratio for a person type changed, one item added and the last one withdrawn."""
    shutil.copytree(default_policy_path().parent, where)
    with (where / "catalogue-130100.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    # not the item the region's emergency scope settles class C drugs as: that one must stay without a price cap
    capped = next(r for r in rows if r["med_list_codg"] != EMERGENCY_CLASS_C_AS)
    capped["pric_uplmt_amt"] = "99.50"
    next(r for r in rows if r is not capped)["selfpay_prop_11"] = "0.3"
    rows = rows[:-1] + [{**capped, "med_list_codg": "XA01AA999A0000101", "name": "新药#999", "pric_uplmt_amt": ""}]
    with (where / "catalogue-130100-new.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    toml = where / default_policy_path().name
    old = 'file = "catalogue-130100.csv"\n'
    new = f'{old}\n[[regions.catalogues]]\nversion = "130100-CAT-NEW"\neffective_from = {effective_from}\n'
    toml.write_text(toml.read_text(encoding="utf-8").replace(old, new + 'file = "catalogue-130100-new.csv"\n'))
    return toml


def test_a_refresh_after_the_catalogue_changed_fetches_only_the_changed_rows(centres, tmp_path):
    """A counter that holds 130100-CAT-2025 meets a centre whose catalogue in force is newer: it downloads the
    four rows that differ (two changed, one added, one withdrawn), not the catalogue, and then holds exactly
    the catalogue in force."""
    effective_from = now_shanghai().date() - dt.timedelta(days=2)
    policy = policy_with_a_new_catalogue(tmp_path / "policy", effective_from)
    code = own_institution(SAF_PHARMACY)
    counter = make_counter(centres().url, tmp_path / "t.db", code)  # the shipped policy
    counter.sign_in()
    assert counter.signin.cached_rules()[1]["ver"] == "130100-CAT-2025"
    args = ["--policy", str(policy), *institutions_args(tmp_path)]
    with ServedCentre(tmp_path / "new", args=args) as new:
        counter.client = CentreClient(new.url, timeout=2.0, credential=credentials.load().institution(code))
        before = len(outbox(counter))
        counter.sign_in()
        sent = outbox(counter)[before:]
        answers = check_downloads(sent, held="130100-CAT-2025")
        assert {answer["ver"] for answer in answers.values()} == {"130100-CAT-NEW"}
        assert sum(answers[code]["data_cnt"] for code in ITEM_DOWNLOADS) == 4  # of 240 items
        _, catalogue = counter.signin.cached_rules()
        in_force = load_policy(policy).region("130100").catalogues[1]
        assert catalogue["ver"] == "130100-CAT-NEW" and catalogue["effective_from"] == effective_from.isoformat()
        assert by_code(catalogue["items"]) == {i.med_list_codg: i.model_dump(mode="json") for i in in_force.items}

        again = len(outbox(counter))
        counter.sign_in()
        assert "9102" not in [m["infno"] for m in outbox(counter)[again:]]  # holds the version in force now
        assert counter.signin.cached_rules()[1] == catalogue


class PostOnly:
    """A transport that cannot fetch a file (like a centre in the same process, whose 9102 answers no bytes)."""

    def __init__(self, client: CentreClient) -> None:
        self.client = client

    def post(self, body: bytes) -> dict:
        return self.client.post(body)


class OlderCentre(PostOnly):
    """An older medsettle centre: it offers none of the platform's catalogue downloads (refused naming infno)."""

    def post(self, body: bytes) -> dict:
        request = json.loads(body)
        if request["infno"] in DOWNLOADS:
            err_msg = f"INVALID_INPUT: field infno: transaction {request['infno']} is not offered by this centre"
            return {"infcode": -1, "err_msg": err_msg, "output": {}}
        return self.client.post(body)

    def post_raw(self, body: bytes) -> bytes:
        return self.client.post_raw(body)


@pytest.mark.parametrize("transport", [PostOnly, OlderCentre])
def test_without_the_downloads_the_cache_is_filled_by_1312_as_before(world, tmp_path, transport):
    server, _ = world
    counter = make_counter(server.url, tmp_path / "other.db", own_institution(SAF_PHARMACY))
    counter.client = transport(counter.client)
    counter.sign_in()
    sent = outbox(counter)
    assert "1312" in [m["infno"] for m in sent] and "9102" not in [m["infno"] for m in sent]
    _, catalogue = counter.signin.cached_rules()
    page, _ = server.call("1312", {"data": {"page_size": 5000}}, sign_no=server.sign_in())
    assert by_code(catalogue["items"]) == by_code(page["output"]["items"])
    counter.sign_in()  # again: 1312 with the version held answers 'unchanged', and the cache stays
    last = [m for m in outbox(counter) if m["infno"] == "1312"][-1]
    assert last["input"]["data"]["ver"] == catalogue["ver"] and last["answer"]["output"]["unchanged"]
    assert counter.signin.cached_rules()[1] == catalogue
