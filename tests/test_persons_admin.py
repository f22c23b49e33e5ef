"""Persons and cards at a real centre over HTTP: enrolment, contributions and the monthly
account credit, waiting periods, card channels, unit change, transfer between regions, the QR e-voucher,
bad admin requests that change nothing, and all of it surviving a restart (replayed from the journal)."""

from __future__ import annotations

import pytest

from centre_rig import (
    CODES,
    EMPLOYEE,
    PHARMACY,
    ServedCentre,
    card_of,
    certno,
    default_registry,
    envelope,
    first_person,
    persons_insured,
    shared_centre,
)
from medsettle.centre.persons import add_working_days
from medsettle.timeutil import now_shanghai

pytestmark = pytest.mark.timeout(120)
LETTER = {"letter_no": "UL-1", "operator_certno": certno("130100", "19700101", "013")}  # a bulk's papers


@pytest.fixture(scope="module")
def served_centre(tmp_path_factory):
    """One served centre for the tests that neither restart it nor need it new (a start is seconds): each
    enrols its own persons or takes its own of the default population's, and counts journal entries only
    across its own requests. The two tests that restart a centre start their own."""
    with shared_centre(tmp_path_factory.mktemp("persons") / "centre") as centre:
        yield centre


def ok(answer):
    assert answer.get("ok"), answer
    return answer


def call(server, infno, input_, sign_no, insuplc="130100"):
    msgid = ServedCentre.next_msgid(PHARMACY)
    return server.post(envelope(infno, input_, sign_no=sign_no, msgid=msgid, insuplc=insuplc))


def sale(psn_no, cert_type, cert_no, price="100.00", card_sn=""):
    """A 2102; a card (03) of the default registry goes with its card_sn, a new one with ``card_sn``."""
    if cert_type == "03" and not card_sn and cert_no in default_registry().cards:
        card_sn = default_registry().cards[cert_no].card_sn
    return {
        "data": {
            "psn_no": psn_no,
            "mdtrt_cert_type": cert_type,
            "mdtrt_cert_no": cert_no,
            **({"card_sn": card_sn} if card_sn else {}),
            "med_type": "41",
            "acct_used_flag": "1",
        },
        "feedetail": [
            {
                "feedetl_sn": "1",
                "med_list_codg": CODES[0],
                "pric": price,
                "cnt": "1",
                "fee_ocur_time": "2026-03-02 09:58:00",
            }
        ],
    }


def by_card(card: dict) -> dict:
    """The 03 certificate of a card the admin API issued: its number and card_sn."""
    return {"mdtrt_cert_type": "03", "mdtrt_cert_no": card["card_no"], "card_sn": card["card_sn"]}


def test_enrol_contribute_wait_then_settle_and_survive_a_restart(tmp_path):
    server = ServedCentre(tmp_path).start()
    try:
        sign_no = server.sign_in()
        enrolled = ok(server.admin(EMPLOYEE))
        psn = enrolled["psn_no"]
        assert psn.startswith("130100") and len(psn) == 20
        refused = call(server, "2102", sale(psn, "02", EMPLOYEE["certno"]), sign_no)
        assert refused["infcode"] == -1 and "WAITING_PERIOD" in refused["err_msg"]  # no contributions yet
        for month in ("2025-11", "2025-12"):
            ok(server.admin({"action": "contribute", "psn_no": psn, "month": month, "base": "8000.00"}))
        # waiting months 3 from November 2025: benefits from February; a bill of 2 March also needs
        # contributions reaching February (the bill's month or the one before)
        ok(server.admin({"action": "contribute", "psn_no": psn, "month": "2026-01", "base": "8000.00"}))
        still = call(server, "2102", sale(psn, "02", EMPLOYEE["certno"]), sign_no)
        assert "WAITING_PERIOD" in still["err_msg"]
        last = ok(server.admin({"action": "contribute", "psn_no": psn, "month": "2026-02", "base": "8000.00"}))
        assert (last["credit"], last["balc"], last["contrib_from"], last["paid_through"]) == (
            "160.00",
            "640.00",
            "2025-11",
            "2026-02",
        )  # 2% of 8,000.00 a month
        settled = call(server, "2102", sale(psn, "02", EMPLOYEE["certno"]), sign_no)
        assert settled["infcode"] == 0, settled
        setl = settled["output"]["setlinfo"]
        balance_after = setl["balc"]
        card = ok(server.admin({"action": "issue_card", "psn_no": psn, "channel": "on_the_spot"}))
        assert card["ready_on"] == "" and card["status"] == "issued" and card["card_sn"].startswith("130100D156")
        again = server.admin({"action": "issue_card", "psn_no": psn, "channel": "on_the_spot"})
        assert not again["ok"] and "already holds card" in again["error"]
        with_card = call(server, "2102", sale(psn, "03", card["card_no"], "10.00", card["card_sn"]), sign_no)
        assert with_card["infcode"] == 0, with_card  # first use at a pharmacy activates it
        info = call(server, "1101", {"data": by_card(card)}, sign_no)
        assert info["output"]["cardinfo"] == [{"card_no": card["card_no"], "status": "active"}]
        assert info["output"]["insuinfo"][0]["emp_name"] == "石家庄第一机械厂"
        balance = info["output"]["insuinfo"][0]["balc"]
    finally:
        server.stop()
    server = ServedCentre(tmp_path).start()  # everything above is replayed from the journal
    try:
        sign_no = server.sign_in()
        info = call(server, "1101", {"data": by_card(card)}, sign_no)
        assert info["infcode"] == 0, info
        assert info["output"]["baseinfo"]["psn_no"] == psn and info["output"]["insuinfo"][0]["balc"] == balance
        assert float(balance) < float(balance_after) < 640
        dup = server.admin({"action": "contribute", "psn_no": psn, "month": "2026-01", "base": "8000.00"})
        assert not dup["ok"] and "month" in dup["error"] and "already recorded" in dup["error"]
    finally:
        server.stop()


def test_retirees_get_a_fixed_sum_and_late_residents_wait_longer(served_centre):
    retiree = ok(
        served_centre.admin(
            {**EMPLOYEE, "psn_type": "12", "certno": certno("130100", "19550101", "011"), "brdy": "1955-01-01"}
        )
    )
    credit = ok(served_centre.admin({"action": "contribute", "psn_no": retiree["psn_no"], "month": "2026-01"}))
    assert credit["credit"] == "100.00" and credit["balc"] == "100.00"
    with_base = served_centre.admin(
        {"action": "contribute", "psn_no": retiree["psn_no"], "month": "2026-02", "base": "5000"}
    )
    assert not with_base["ok"] and "field base" in with_base["error"]
    resident = ok(
        served_centre.admin(
            {
                "action": "enrol",
                "insuplc_admdvs": "330300",
                "insutype": "390",
                "psn_type": "1501",
                "certno": certno("330300", "19851010", "022"),
                "psn_name": "吴佳",
                "gend": "2",
                "brdy": "1985-10-10",
                "uncovered_years": 5,
            }
        )
    )
    assert resident["extra_wait_months"] == 5 and resident["emp_no"] == "330300V00000"
    paid = ok(served_centre.admin({"action": "contribute", "psn_no": resident["psn_no"], "month": "2026-01"}))
    assert paid["credit"] == "0.00" and paid["balc"] == "0.00"


@pytest.mark.parametrize(
    "change, field",
    [
        (
            {"certno": EMPLOYEE["certno"][:-1] + ("1" if EMPLOYEE["certno"][-1] != "1" else "2")},
            "certno",
        ),  # check digit
        ({"emp_no": None, "emp_name": None}, "emp_no"),
        ({"insuplc_admdvs": "999999"}, "insuplc_admdvs"),
        ({"psn_type": "1501"}, "psn_type"),
        ({"brdy": "2990-01-01"}, "brdy"),
        ({"psn_name": "x" * 16}, "psn_name"),
        ({"gend": "3"}, "gend"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_enrolments_name_the_field_and_change_nothing(served_centre, change, field):
    before = served_centre.journal_count()
    body = {k: v for k, v in {**EMPLOYEE, **change}.items() if v is not None}
    answer = served_centre.admin(body)
    assert not answer["ok"] and f"field {field}" in answer["error"], answer
    assert served_centre.journal_count() == before


def test_unknown_actions_and_malformed_requests(served_centre):
    before = served_centre.journal_count()
    for body in (
        {"action": "fly"},
        {"action": "contribute", "psn_no": "nobody", "month": "2026-01"},
        {"action": "contribute", "psn_no": first_person(), "month": "2026-13"},
        ["not", "a", "dict"],
    ):
        answer = served_centre.admin(body)
        assert not answer["ok"] and "field" in answer["error"], answer
    assert served_centre.journal_count() == before


def test_card_channels(served_centre):
    sign_no = served_centre.sign_in()
    a = ok(served_centre.admin({**EMPLOYEE, "certno": certno("130100", "19910101", "029")}))["psn_no"]
    b = ok(served_centre.admin({**EMPLOYEE, "certno": certno("130100", "19920101", "035"), "psn_name": "郑平"}))[
        "psn_no"
    ]
    c = ok(served_centre.admin({**EMPLOYEE, "certno": certno("130100", "19930101", "047"), "emp_no": "U999"}))["psn_no"]
    for person in (a, b, c):  # a card only after paying
        ok(served_centre.admin({"action": "contribute", "psn_no": person, "month": "2025-09", "base": "6000"}))
    bulk = served_centre.admin(
        {"action": "issue_cards_employer", "emp_no": "U130100001", "psn_nos": [a, b, c], **LETTER}
    )
    assert not bulk["ok"] and "psn_nos[2]" in bulk["error"]  # c is not the unit's: no card made for anyone
    bulk = ok(
        served_centre.admin({"action": "issue_cards_employer", "emp_no": "U130100001", "psn_nos": [a, b], **LETTER})
    )
    ready = add_working_days(now_shanghai().date(), 3).isoformat()  # the centre's calendar is Asia/Shanghai
    assert [x["ready_on"] for x in bulk["cards"]] == [ready, ready]
    for month in ("2025-10", "2025-11", "2025-12", "2026-01", "2026-02"):
        ok(served_centre.admin({"action": "contribute", "psn_no": a, "month": month, "base": "6000"}))
    first = bulk["cards"][0]
    not_ready = call(served_centre, "2102", sale(a, "03", first["card_no"], card_sn=first["card_sn"]), sign_no)
    assert not_ready["infcode"] == -1 and "CARD_NOT_READY" in not_ready["err_msg"]
    no_delegate = served_centre.admin({"action": "issue_card", "psn_no": c, "channel": "delegate"})
    assert not no_delegate["ok"] and "delegate_certno" in no_delegate["error"]
    delegate = ok(
        served_centre.admin(
            {
                "action": "issue_card",
                "psn_no": c,
                "channel": "delegate",
                "delegate_certno": certno("130100", "19600101", "051"),
                "certno": certno("130100", "19930101", "047"),  # the holder's ID card, presented too
            }
        )
    )
    assert delegate["ready_on"] == ""
    point = ok(served_centre.admin({"action": "card", "card_no": bulk["cards"][1]["card_no"], "card_action": "lost"}))
    assert point["action"] == "lost"
    counter = ok(served_centre.admin({"action": "issue_card", "psn_no": b, "channel": "service_point"}))
    assert counter["ready_on"] == ready


def test_unit_change_with_certificate(served_centre):
    psn = persons_insured("130100", "310")[1]  # its own employee: the shared centre keeps the new unit
    sign_no = served_centre.sign_in()
    papers = {"card_no": card_of(psn), "certno": default_registry().identities[psn].certno}  # card and ID card
    ok(
        served_centre.admin(
            {
                "action": "change_unit",
                "psn_no": psn,
                "emp_no": "U77",
                "emp_name": "新单位",
                "certificate": "130100-REG-0077",
                **papers,
            }
        )
    )
    certno_of = _certno_of(served_centre, psn, sign_no)
    info = call(served_centre, "1101", {"data": {"mdtrt_cert_type": "02", "certno": certno_of}}, sign_no)
    assert info["output"]["insuinfo"][0]["emp_name"] == "新单位"
    again = served_centre.admin(
        {
            "action": "change_unit",
            "psn_no": psn,
            "emp_no": "U77",
            "emp_name": "新单位",
            "certificate": "130100-REG-0077",
            **papers,
        }
    )
    assert not again["ok"] and "already with unit" in again["error"]
    resident = first_person("130100", "390")
    refused = served_centre.admin(
        {"action": "change_unit", "psn_no": resident, "emp_no": "U1", "emp_name": "x", "certificate": "c"}
        | {"card_no": card_of(resident), "certno": default_registry().identities[resident].certno}
    )
    assert not refused["ok"] and "residents" in refused["error"]


def _certno_of(server, psn, sign_no):
    return default_registry().identities[psn].certno


def test_transfer_between_regions_moves_balance_and_accumulators(tmp_path):
    psn = first_person("130100", "310")
    server = ServedCentre(tmp_path).start()
    try:
        sign_no = server.sign_in()
        paid = call(server, "2102", sale(psn, "03", card_of(psn)), sign_no)
        assert paid["infcode"] == 0, paid
        by_id = {"mdtrt_cert_type": "02", "mdtrt_cert_no": default_registry().identities[psn].certno}
        before = call(server, "5206", {"data": {"psn_no": psn, **by_id}}, sign_no)["output"]
        cert = ok(
            server.admin({"action": "transfer_out", "psn_no": psn, "to_admdvs": "330300", "acceptance_letter": "AL-1"})
        )
        assert cert["from_admdvs"] == "130100"
        assert cert["balance"] == round(paid["output"]["setlinfo"]["balc"] * 100)  # fen, as the accumulators
        old_card = call(server, "2102", sale(psn, "03", card_of(psn)), sign_no)
        assert "CARD_CANCELLED" in old_card["err_msg"]
        between = call(server, "2102", sale(psn, "02", default_registry().identities[psn].certno), sign_no)
        assert "PERSON_INACTIVE" in between["err_msg"]
        bad = server.admin({"action": "transfer_in", "certificate_no": cert["certificate_no"]})
        assert not bad["ok"] and "field emp_no" in bad["error"]
        accepted = ok(
            server.admin(
                {
                    "action": "transfer_in",
                    "certificate_no": cert["certificate_no"],
                    "emp_no": "U330300009",
                    "emp_name": "温州鞋业",
                }
            )
        )
        assert accepted["insuplc_admdvs"] == "330300" and accepted["balc"] == f"{cert['balance'] / 100:.2f}"
        twice = server.admin(
            {
                "action": "transfer_in",
                "certificate_no": cert["certificate_no"],
                "emp_no": "U330300009",
                "emp_name": "温州鞋业",
            }
        )
        assert not twice["ok"] and "already accepted" in twice["error"]
        after = call(server, "5206", {"data": {"psn_no": psn, **by_id}}, sign_no, insuplc="330300")["output"]
        assert after == before  # the year's accumulators moved with the person
        new_card = ok(server.admin({"action": "issue_card", "psn_no": psn, "channel": "on_the_spot"}))
        assert new_card["card_sn"].startswith("330300")
        new = sale(psn, "03", new_card["card_no"], "10.00", new_card["card_sn"])
        cross = call(server, "2102", new, sign_no, insuplc="330300")
        assert cross["infcode"] == 0, cross  # settled in 130100 for a person now insured in 330300
        assert cross["output"]["setlinfo"]["psn_no"] == psn
    finally:
        server.stop()
    server = ServedCentre(tmp_path).start()
    try:
        sign_no = server.sign_in()
        info = call(
            server,
            "1101",
            {"data": by_card(new_card)},
            sign_no,
            insuplc="330300",
        )
        assert info["output"]["insuinfo"][0]["insuplc_admdvs"] == "330300"
    finally:
        server.stop()


def test_qr_e_voucher_identifies_the_person(served_centre):
    psn = persons_insured("130100", "310")[2]
    sign_no = served_centre.sign_in()
    qr = ok(served_centre.admin({"action": "issue_qr", "psn_no": psn}))
    token = qr["mdtrt_cert_no"]
    assert len(token) == 40 and token.startswith("130100")
    info = call(served_centre, "1101", {"data": {"mdtrt_cert_type": "01", "mdtrt_cert_no": token}}, sign_no)
    assert info["output"]["baseinfo"]["psn_no"] == psn
    paid = call(served_centre, "2102", sale(psn, "01", token), sign_no)
    assert paid["infcode"] == 0, paid
    unknown = call(
        served_centre, "1101", {"data": {"mdtrt_cert_type": "01", "mdtrt_cert_no": "130100" + "0" * 34}}, sign_no
    )
    assert unknown["infcode"] == -1 and "QR_UNKNOWN" in unknown["err_msg"]
    other = first_person("130100", "390")
    wrong = call(served_centre, "2102", sale(other, "01", token), sign_no)
    assert wrong["infcode"] == -1 and "QR_UNKNOWN" in wrong["err_msg"]


def test_the_persons_commands_drive_the_centre(served_centre):
    import json
    import subprocess
    import sys

    def medsettle(*args):
        return subprocess.run(
            [sys.executable, "-m", "medsettle.cli", "persons", *args, "--centre", served_centre.url],
            capture_output=True,
            text=True,
            timeout=60,
        )

    enrolled = medsettle(
        "enrol",
        "--region",
        "330300",
        "--insutype",
        "390",
        "--psn-type",
        "1502",
        "--certno",
        certno("330300", "20150601", "064"),
        "--name",
        "陈小明",
        "--sex",
        "1",
        "--born",
        "2015-06-01",
    )
    assert enrolled.returncode == 0, enrolled.stderr
    psn = json.loads(enrolled.stdout)["psn_no"]
    paid = medsettle("contribute", psn, "--month", "2026-01")
    assert paid.returncode == 0 and json.loads(paid.stdout)["paid_through"] == "2026-01"
    card = medsettle("issue-card", psn, "--channel", "on_the_spot")
    assert json.loads(card.stdout)["card_sn"].startswith("330300")
    bad = medsettle("contribute", psn, "--month", "2026-01")
    assert bad.returncode == 1 and "already recorded" in bad.stderr
    qr = medsettle("qr", psn)
    assert json.loads(qr.stdout)["mdtrt_cert_no"].startswith("330300")


NOT_YYYY_MM = ["March", "2026-13", "2026-3", "26-03", "2026-00", "0000-01", ""]


@pytest.mark.parametrize("month", NOT_YYYY_MM)
def test_a_credit_or_contribution_for_a_month_that_is_not_yyyy_mm_is_refused_and_changes_nothing(served_centre, month):
    psn = persons_insured()[3 + NOT_YYYY_MM.index(month)]  # each case its own person: its 2026-03 is credited once
    before = served_centre.journal_count()
    credit = served_centre.admin({"action": "credit", "psn_no": psn, "amount": "120.50", "key": month})
    assert not credit["ok"] and "field key" in credit["error"] and "yyyy-mm" in credit["error"], credit
    paid = served_centre.admin({"action": "contribute", "psn_no": psn, "month": month})
    assert not paid["ok"] and "field month" in paid["error"] and "yyyy-mm" in paid["error"], paid
    assert served_centre.journal_count() == before
    # The real month is credited once, and only once: the refusal above did not use it up or double it.
    first = ok(served_centre.admin({"action": "credit", "psn_no": psn, "amount": "120.50", "key": "2026-03"}))
    again = served_centre.admin({"action": "credit", "psn_no": psn, "amount": "120.50", "key": "2026-03"})
    assert first["amount"] == "120.50" and not again["ok"] and "already made" in again["error"]
    assert served_centre.journal_count() == before + 1


def test_the_persons_commands_refuse_a_month_that_is_not_yyyy_mm(served_centre):
    import subprocess
    import sys

    psn = first_person()
    before = served_centre.journal_count()
    for command in (["credit", psn, "120.50"], ["contribute", psn]):
        for month in ("March", "2026-13"):
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "medsettle",
                    "persons",
                    *command,
                    "--month",
                    month,
                    "--centre",
                    served_centre.url,
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            lines = r.stderr.splitlines()
            assert r.returncode == 1 and len(lines) == 1, r.stderr
            assert lines[0].startswith("Error: --month: ") and repr(month) in lines[0] and "yyyy-mm" in lines[0]
    assert served_centre.journal_count() == before


def test_a_credit_over_100000_yuan_is_refused_and_changes_nothing(served_centre):
    psn = persons_insured()[3 + len(NOT_YYYY_MM)]
    before = served_centre.journal_count()
    over = served_centre.admin({"action": "credit", "psn_no": psn, "amount": "100000.01", "key": "2026-04"})
    assert not over["ok"] and "field amount" in over["error"] and "100000.00" in over["error"], over
    assert served_centre.journal_count() == before
    at_bound = ok(served_centre.admin({"action": "credit", "psn_no": psn, "amount": "100000.00", "key": "2026-04"}))
    assert at_bound["amount"] == "100000.00" and served_centre.journal_count() == before + 1
