"""The agency's procedures of coming back and of employment (issue 16, seed 000), followed end to end against a
served centre over HTTP (the admin API, a counter's 1101, 5206 and 2102 sales) and through ``medsettle persons``,
on both ledgers (SQLite and PostgreSQL):

- coming back: an emigrant who returns, a household move, re-enrolment at a new place of work: ``enrol`` with
  the same ID number re-enrols the same psn_no (a new relation, the old one kept, a new waiting period);
- a resident who finds a job: a scheme change 390 -> 310 and back (the account opens, accumulators per scheme);
- flexible employees: 310 without a unit, paying themselves, their card at a window;
- unemployment and re-employment: insured while the months are paid; the new unit applies for the new card;
- every refusal names its field and changes nothing (the journal, the person as 1101 shows them), and a
  restart replays the same persons, accounts and cards.
"""

from __future__ import annotations

import csv
import functools
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from centre_rig import CODES, POLICY, ServedCentre, certno
from medsettle.centre.registry import Registry
from medsettle.engine import Population
from medsettle.timeutil import now_shanghai

pytestmark = pytest.mark.timeout(240)

REGION, OTHER = "130100", "330300"


def _month(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


THIS = now_shanghai().date().year * 12 + now_shanghai().date().month - 1  # the centre's month (Asia/Shanghai)
THIS_MONTH, LAST_MONTH = _month(THIS), _month(THIS - 1)
TODAY_SALE = f"{THIS_MONTH}-01 09:00:00"  # a sale of this month: inside any waiting period that starts now

# persons insured for years (contributions from 2015-01 to last month), as a persons file holds them
PERSONS = {
    "emigrant": ("390", "1501", "0.00"),  # emigrates and comes back
    "mover": ("310", "11", "300.00"),  # household moved away, re-enrols at a new place of work
    "resident": ("390", "1501", "0.00"),  # finds a job: 390 -> 310 and back
    "worker": ("310", "11", "500.00"),  # unemployed, then re-employed
    "dead": ("310", "11", "100.00"),
    "between": ("310", "11", "100.00"),  # transferred out, not yet accepted
}
PSN = {name: f"{REGION}{i + 1:014d}" for i, name in enumerate(PERSONS)}
LETTER = {"letter_no": "UL-2026-0001", "operator_certno": certno(REGION, "19700101", "013")}  # a bulk's papers
FLEXIBLE = {
    "action": "enrol",
    "insuplc_admdvs": REGION,
    "insutype": "310",
    "psn_type": "11",
    "certno": certno(REGION, "19880704", "231"),
    "psn_name": "赵灵",
    "gend": "1",
    "brdy": "1988-07-04",
    "flexible": True,
}


def write_persons(path: Path) -> Path:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["psn_no", "insutype", "psn_type", "insuplc_admdvs", "balance", "contrib_from", "paid_through"])
        for name, (insutype, psn_type, balance) in PERSONS.items():
            out.writerow([PSN[name], insutype, psn_type, REGION, balance, "2015-01", LAST_MONTH])
    return path


@functools.cache
def registry(path: str) -> Registry:
    """The identities and cards `serve --persons` gives the file's persons (deterministic)."""
    return Registry.generate(Population.from_csv(POLICY, path))


class World:
    """A served centre on one ledger, its signed-in pharmacy, and what the tests check of a person."""

    def __init__(self, server: ServedCentre, db_url: str | None, persons: str) -> None:
        self.server, self.db_url, self.persons = server, db_url, persons
        self.sign_no = server.sign_in()

    def restart(self) -> None:
        self.server.stop()
        self.server.start()
        self.sign_no = self.server.sign_in()

    def certno(self, name: str) -> str:
        return registry(self.persons).identities[PSN[name]].certno

    def card(self, name: str) -> str:
        return registry(self.persons).cards_of[PSN[name]][0]

    def ok(self, body: dict) -> dict:
        answer = self.server.admin(body)
        assert answer.get("ok"), answer
        return answer

    def journal_count(self) -> int:
        return self.server.journal_count()  # SQLite or the --db PostgreSQL database

    def refused(self, body: dict, field: str, *words: str, certno: str | None = None) -> str:
        """Refused naming ``field`` (saying ``words``); the journal gets nothing and the person (1101 by
        ``certno``) is as before."""
        before, journal = (self.info(certno) if certno else None), self.journal_count()
        answer = self.server.admin(body)
        assert not answer.get("ok"), answer
        assert f"field {field}" in answer["error"], answer
        for word in words:
            assert word in answer["error"], answer
        assert self.journal_count() == journal, "a refusal journaled something"
        if certno:
            assert self.info(certno) == before, "a refusal changed the person"
        return str(answer["error"])

    def info(self, certno: str) -> dict:
        """1101 by ID number: the person as a counter sees them."""
        answer, _ = self.server.call(
            "1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": certno}}, sign_no=self.sign_no
        )
        assert answer["infcode"] == 0, answer
        return answer["output"]

    def cum(self, psn_no: str, certno: str) -> dict[str, Decimal]:
        """5206 for this year: the year's accumulators by code."""
        data = {
            "psn_no": psn_no,
            "cum_ym": THIS_MONTH.replace("-", ""),
            "mdtrt_cert_type": "02",
            "mdtrt_cert_no": certno,
        }
        answer, _ = self.server.call("5206", {"data": data}, sign_no=self.sign_no)
        assert answer["infcode"] == 0, answer
        return {c["cum_type_code"]: Decimal(str(c["cum"])) for c in answer["output"]["cuminfo"]}

    def sale(self, psn_no: str, certno: str, account: bool = True) -> dict:
        """A pharmacy sale (2102) of 100.00 this month, identified by ID number."""
        line = {"feedetl_sn": "1", "med_list_codg": CODES[0], "pric": "100.00", "cnt": "1", "fee_ocur_time": TODAY_SALE}
        data = {
            "psn_no": psn_no,
            "mdtrt_cert_type": "02",
            "mdtrt_cert_no": certno,
            "med_type": "41",
            "acct_used_flag": "1" if account else "0",
        }
        answer, _ = self.server.call("2102", {"data": data, "feedetail": [line]}, sign_no=self.sign_no)
        return answer


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path):
    persons = str(write_persons(tmp_path / "persons.csv"))
    args = ["--persons", persons]
    db_url = None
    if request.param == "postgresql":
        db_url = request.getfixturevalue("postgres_server").new_database()
        args += ["--db", db_url]
    server = ServedCentre(tmp_path / "centre", args=args).start()
    try:
        yield World(server, db_url, persons)
    finally:
        server.stop()


def enrol_again(w: World, name: str, **fields: str | bool) -> dict:
    """The 'enrol' a window makes for someone coming back: their ID number, sex and birth date as recorded."""
    ident = registry(w.persons).identities[PSN[name]]
    return {
        "action": "enrol",
        "insuplc_admdvs": REGION,
        "insutype": "390",
        "psn_type": "1501",
        "certno": ident.certno,
        "psn_name": ident.psn_name,
        "gend": ident.gend,
        "brdy": ident.brdy.isoformat(),
        **fields,
    }


def contribute(psn_no: str, month: str = THIS_MONTH, base: str | None = None) -> dict:
    return {"action": "contribute", "psn_no": psn_no, "month": month, **({"base": base} if base else {})}


def refusal_code(answer: dict) -> str:
    assert answer["infcode"] == -1, answer
    return str(answer["err_msg"]).split(":")[0]


# -- coming back -----------------------------------------------------------------------------------


def test_an_emigrant_who_returns_is_reenrolled_with_a_new_relation_and_waiting_period(world):
    w, emigrant, certno_ = world, PSN["emigrant"], world.certno("emigrant")
    assert w.sale(emigrant, certno_, account=False)["infcode"] == 0  # insured for years: benefits
    cum_before = w.cum(emigrant, certno_)
    w.ok({"action": "cancel_person", "psn_no": emigrant, "reason": "emigration"})
    assert refusal_code(w.sale(emigrant, certno_, account=False)) == "PERSON_INACTIVE"
    # back: the same person number, a new relation
    back = w.ok(enrol_again(w, "emigrant"))
    assert back["psn_no"] == emigrant and back["reenrolled"] is True and back["relation_no"] == 2
    old = back["ended_relation"]
    assert (old["ended"], old["contrib_from"], old["paid_through"]) == ("emigration", "2015-01", LAST_MONTH)
    seen = w.info(certno_)
    assert seen["insuinfo"][0]["psn_insu_stas"] == "1"
    assert all(c["status"] == "cancelled" for c in seen["cardinfo"])  # the old card ended with the relation
    assert w.cum(emigrant, certno_) == cum_before  # the year's accumulators of the scheme stay
    # the new relation's run starts with its first contribution: the policy's waiting period again
    paid = w.ok(contribute(emigrant))
    assert (paid["contrib_from"], paid["paid_through"]) == (THIS_MONTH, THIS_MONTH)
    assert refusal_code(w.sale(emigrant, certno_, account=False)) == "WAITING_PERIOD"
    card = w.ok({"action": "issue_card", "psn_no": emigrant, "channel": "on_the_spot"})  # paid: a new card
    assert card["card_no"] != w.card("emigrant")
    # and away again, and back again: a third relation
    w.ok({"action": "cancel_person", "psn_no": emigrant, "reason": "emigration"})
    assert w.ok(enrol_again(w, "emigrant"))["relation_no"] == 3


def test_reenrolment_at_a_new_place_of_work_and_what_is_not_reenrolled(world):
    w, mover, certno_ = world, PSN["mover"], world.certno("mover")
    balance = w.info(certno_)["insuinfo"][0]["balc"]
    w.refused(enrol_again(w, "mover"), "certno", "already insured", certno=certno_)
    w.ok({"action": "cancel_person", "psn_no": mover, "reason": "household"})
    unit = {"insutype": "310", "psn_type": "11", "emp_no": "U330300077", "emp_name": "温州新厂"}
    w.refused(enrol_again(w, "mover", insutype="310", psn_type="11"), "emp_no", "unit", certno=certno_)
    wrong_birth = {**enrol_again(w, "mover", **unit), "brdy": "1950-01-01"}
    w.refused(wrong_birth, "brdy", "recorded", certno=certno_)
    again = w.ok(enrol_again(w, "mover", insuplc_admdvs=OTHER, **unit))
    assert again["psn_no"] == mover and again["emp_no"] == "U330300077"
    seen = w.info(certno_)["insuinfo"][0]
    assert (seen["insutype"], seen["emp_name"], seen["insuplc_admdvs"]) == ("310", "温州新厂", OTHER)
    assert seen["balc"] == balance  # the account is the person's: its balance stays
    paid = w.ok(contribute(mover, base="6000.00"))
    assert paid["contrib_from"] == THIS_MONTH and paid["credit"] != "0.00"
    # a dead person, and one between regions, are not re-enrolled
    w.ok({"action": "cancel_person", "psn_no": PSN["dead"], "reason": "death"})
    w.refused(enrol_again(w, "dead", **unit), "certno", "death", certno=w.certno("dead"))
    w.ok({"action": "transfer_out", "psn_no": PSN["between"], "to_admdvs": OTHER, "acceptance_letter": "AL-1"})
    w.refused(enrol_again(w, "between", **unit), "certno", "transfer_in")


# -- a resident who finds a job ------------------------------------------------------------------------


def test_a_resident_who_finds_a_job_changes_scheme_and_back(world):
    w, resident, certno_ = world, PSN["resident"], world.certno("resident")
    assert w.sale(resident, certno_, account=False)["infcode"] == 0
    as_resident = w.cum(resident, certno_)
    assert any(v != 0 for v in as_resident.values()), as_resident
    job = {
        "action": "change_scheme",
        "psn_no": resident,
        "insutype": "310",
        "psn_type": "11",
        "emp_no": "U130100555",
        "emp_name": "石家庄钢厂",
        "certificate": "91130100MA0001",
    }
    unit = {k: job[k] for k in ("psn_no", "emp_no", "emp_name", "certificate")}
    unit |= {"card_no": w.card("resident"), "certno": certno_}  # the card and ID card presented
    w.refused({"action": "change_unit", **unit}, "psn_no", "change_scheme", certno=certno_)
    w.refused({**job, "certificate": None}, "certificate", certno=certno_)
    w.refused({**job, "insutype": "390", "psn_type": "1501"}, "insutype", "already", certno=certno_)
    w.refused({**job, "psn_type": "1501"}, "psn_type", certno=certno_)
    w.refused({**job, "hired": "yes"}, "hired", certno=certno_)  # unknown fields are refused
    changed = w.ok(job)
    assert "account opens" in changed["note"]
    seen = w.info(certno_)["insuinfo"][0]
    assert (seen["insutype"], seen["psn_type"], seen["emp_name"]) == ("310", "11", "石家庄钢厂")
    assert all(v == 0 for v in w.cum(resident, certno_).values())  # the employee scheme's year: fresh
    paid = w.ok(contribute(resident, base="5000.00"))
    assert paid["contrib_from"] == "2015-01" and paid["credit"] != "0.00"  # months carry over; the account opens
    sale = w.sale(resident, certno_)
    assert sale["infcode"] == 0, sale  # benefits go on in the new scheme
    as_employee = w.cum(resident, certno_)
    # and back to the resident scheme: its accumulators come back; the account keeps its balance
    back = w.ok({"action": "change_scheme", "psn_no": resident, "insutype": "390", "psn_type": "1501"})
    assert back["emp_name"] == "城乡居民虚拟单位"
    assert w.cum(resident, certno_) == as_resident
    balance = w.info(certno_)["insuinfo"][0]["balc"]
    assert balance != "0.00"
    w.ok({**job, "certificate": "91130100MA0002"})
    assert w.cum(resident, certno_) == as_employee


def test_a_reversal_after_a_scheme_change_moves_the_accumulators_of_the_settlements_scheme(world):
    """A settlement made as a resident, cancelled (2208) or reversed (2601) after the person moved to the
    employee scheme, comes off the resident scheme's year (held while they are employees), not the employee
    scheme's; a restart replays the same; 5206 shows each scheme's own year."""
    w, resident, certno_ = world, PSN["resident"], world.certno("resident")
    first = w.sale(resident, certno_, account=False)
    second_msgid = w.server.next_msgid()
    line = {"feedetl_sn": "1", "med_list_codg": CODES[0], "pric": "100.00", "cnt": "1", "fee_ocur_time": TODAY_SALE}
    data = {"psn_no": resident, "mdtrt_cert_type": "02", "mdtrt_cert_no": certno_, "med_type": "41"}
    second, _ = w.server.call(
        "2102", {"data": {**data, "acct_used_flag": "0"}, "feedetail": [line]}, sign_no=w.sign_no, msgid=second_msgid
    )
    assert first["infcode"] == 0 and second["infcode"] == 0, (first, second)
    as_resident = w.cum(resident, certno_)
    assert any(v != 0 for v in as_resident.values()), as_resident
    job = {"insutype": "310", "psn_type": "11", "emp_no": "U130100556", "emp_name": "石家庄药厂", "certificate": "C1"}
    w.ok({"action": "change_scheme", "psn_no": resident, **job})
    w.ok(contribute(resident, base="5000.00"))
    assert w.sale(resident, certno_, account=False)["infcode"] == 0
    as_employee = w.cum(resident, certno_)
    assert any(v != 0 for v in as_employee.values()), as_employee
    # the resident-scheme settlements undone while an employee: the employee scheme's year does not move
    setl_id = first["output"]["setlinfo"]["setl_id"]
    cancel, _ = w.server.call("2208", {"data": {"psn_no": resident, "setl_id": setl_id}}, sign_no=w.sign_no)
    assert cancel["infcode"] == 0, cancel
    reversal, _ = w.server.call(
        "2601", {"data": {"psn_no": resident, "omsgid": second_msgid, "oinfno": "2102"}}, sign_no=w.sign_no
    )
    assert reversal["infcode"] == 0 and reversal["output"]["data"]["rvs_rslt"] == "reversed", reversal
    assert w.cum(resident, certno_) == as_employee
    w.restart()
    assert w.cum(resident, certno_) == as_employee  # replay agrees
    # back in the resident scheme: its year without the two settlements (nothing left of them)
    w.ok({"action": "change_scheme", "psn_no": resident, "insutype": "390", "psn_type": "1501"})
    assert all(v == 0 for v in w.cum(resident, certno_).values()), w.cum(resident, certno_)
    w.restart()
    assert all(v == 0 for v in w.cum(resident, certno_).values())
    w.ok({"action": "change_scheme", "psn_no": resident, **job, "certificate": "C2"})
    assert w.cum(resident, certno_) == as_employee


# -- flexible employees ----------------------------------------------------------------------------


def test_a_flexible_employee_enrols_without_a_unit_pays_and_collects_the_card(world):
    w = world
    w.refused({**FLEXIBLE, "emp_no": "U1", "emp_name": "厂"}, "emp_no", "no unit")
    w.refused({**FLEXIBLE, "psn_type": "12"}, "psn_type", "in service")
    w.refused({**FLEXIBLE, "insutype": "390", "psn_type": "1501"}, "flexible", "310")
    w.refused({**FLEXIBLE, "flexible": False}, "emp_no", "flexible")  # an employee without a unit
    enrolled = w.ok(FLEXIBLE)
    psn_no = enrolled["psn_no"]
    assert enrolled["emp_no"] == "" and "flexible" in enrolled["note"]
    assert w.info(FLEXIBLE["certno"])["insuinfo"][0]["emp_name"] == "灵活就业人员"
    w.refused({"action": "issue_card", "psn_no": psn_no, "channel": "on_the_spot"}, "psn_no", "paid no contribution")
    w.refused(contribute(psn_no), "base", "base")  # they pay on a base of their own
    paid = w.ok(contribute(psn_no, base="4000.00"))
    assert paid["credit"] != "0.00"
    w.refused({"action": "unemployed", "psn_no": psn_no}, "psn_no", "flexible")
    card = w.ok({"action": "issue_card", "psn_no": psn_no, "channel": "on_the_spot"})
    assert card["status"] == "issued"
    # a job later: a change of unit on the new unit's certificate
    unit = {"emp_no": "U130100900", "emp_name": "新公司", "certificate": "91130100MA0900"}
    papers = {"card_no": card["card_no"], "certno": FLEXIBLE["certno"]}
    w.ok({"action": "change_unit", "psn_no": psn_no, **unit, **papers})
    assert w.info(FLEXIBLE["certno"])["insuinfo"][0]["emp_name"] == "新公司"


# -- unemployment and re-employment ----------------------------------------------------------------------


def test_unemployment_then_the_new_unit_applies_for_the_new_card(world):
    w, worker, certno_ = world, PSN["worker"], world.certno("worker")
    w.refused({"action": "unemployed", "psn_no": PSN["resident"]}, "psn_no", "employee in service")
    unit = {"emp_no": "U130100321", "emp_name": "石家庄新厂", "certificate": "91130100MA0321"}
    w.refused({"action": "reemployed", "psn_no": worker, **unit}, "psn_no", "not unemployed", certno=certno_)
    left = w.ok({"action": "unemployed", "psn_no": worker})
    assert left["unemployed_since"] == THIS_MONTH
    w.refused({"action": "unemployed", "psn_no": worker}, "psn_no", "already", certno=certno_)
    seen = w.info(certno_)
    assert seen["insuinfo"][0]["emp_name"] == "失业人员" and seen["insuinfo"][0]["psn_insu_stas"] == "1"
    papers = {"card_no": w.card("worker"), "certno": certno_}
    w.refused({"action": "change_unit", "psn_no": worker, **unit, **papers}, "psn_no", "reemployed", certno=certno_)
    # meanwhile: insured while the months are paid (the unemployment insurance pays on its base)
    w.ok(contribute(worker, base="2000.00"))
    assert w.sale(worker, certno_)["infcode"] == 0
    back = w.ok({"action": "reemployed", "psn_no": worker, **unit})
    assert back["cancelled_cards"] == [w.card("worker")]
    cards = w.info(certno_)["cardinfo"]
    assert cards == [{"card_no": w.card("worker"), "status": "cancelled"}]
    w.refused({**{"action": "reemployed", "psn_no": worker}, **unit}, "psn_no", "not unemployed")
    bulk = w.ok({"action": "issue_cards_employer", "emp_no": unit["emp_no"], "psn_nos": [worker], **LETTER})
    assert bulk["cards"][0]["psn_no"] == worker and bulk["cards"][0]["channel"] == "employer"


# -- replay ------------------------------------------------------------------------------------------


def test_a_restart_replays_the_same_persons_accounts_and_cards(world):
    w = world
    names = ("emigrant", "resident", "worker")
    w.ok({"action": "cancel_person", "psn_no": PSN["emigrant"], "reason": "emigration"})
    w.ok(enrol_again(w, "emigrant"))
    w.ok(contribute(PSN["emigrant"]))
    assert w.sale(PSN["resident"], w.certno("resident"), account=False)["infcode"] == 0
    job = {"insutype": "310", "psn_type": "11", "emp_no": "U5", "emp_name": "厂", "certificate": "C5"}
    w.ok({"action": "change_scheme", "psn_no": PSN["resident"], **job})
    w.ok(contribute(PSN["resident"], base="5000.00"))
    flexible = w.ok(FLEXIBLE)["psn_no"]
    w.ok(contribute(flexible, base="4000.00"))
    w.ok({"action": "unemployed", "psn_no": PSN["worker"]})
    w.ok({"action": "reemployed", "psn_no": PSN["worker"], "emp_no": "U6", "emp_name": "新厂", "certificate": "C6"})
    w.ok({"action": "issue_cards_employer", "emp_no": "U6", "psn_nos": [PSN["worker"]], **LETTER})
    certnos = {**{name: w.certno(name) for name in names}, "flexible": FLEXIBLE["certno"]}
    psn_nos = {**{name: PSN[name] for name in names}, "flexible": flexible}
    seen = {name: (w.info(c), w.cum(psn_nos[name], c)) for name, c in certnos.items()}
    w.restart()
    assert {name: (w.info(c), w.cum(psn_nos[name], c)) for name, c in certnos.items()} == seen
    # the replayed state refuses what the live one did, and goes on the same way
    w.refused(
        {"action": "reemployed", "psn_no": PSN["worker"], "emp_no": "U7", "emp_name": "x", "certificate": "C"}, "psn_no"
    )
    w.refused({"action": "change_scheme", "psn_no": PSN["resident"], **job}, "insutype", "already")
    w.refused(contribute(PSN["emigrant"]), "month", "already recorded")
    back = w.ok({"action": "change_scheme", "psn_no": PSN["resident"], "insutype": "390", "psn_type": "1501"})
    assert back["insutype"] == "390"
    again = w.ok({"action": "change_scheme", "psn_no": PSN["resident"], **job, "certificate": "C8"})
    assert again["insutype"] == "310"  # a new key after replay: the counter of changes was replayed too


# -- the CLI -----------------------------------------------------------------------------------------


def medsettle(server: ServedCentre, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medsettle.cli", "persons", *args, "--centre", server.url],
        capture_output=True,
        text=True,
        timeout=60,
        env=server.client_env(),
    )


def test_the_persons_commands_follow_the_procedures(tmp_path):
    persons = str(write_persons(tmp_path / "persons.csv"))
    with ServedCentre(tmp_path / "centre", args=["--persons", persons]) as server:
        resident, worker = PSN["resident"], PSN["worker"]
        job = ["--insutype", "310", "--psn-type", "11", "--emp-no", "U9", "--emp-name", "厂", "--certificate", "C9"]
        done = medsettle(server, "change-scheme", resident, *job)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["insutype"] == "310"
        bad = medsettle(server, "change-scheme", resident, "--insutype", "310", "--psn-type", "11", "--flexible")
        assert bad.returncode != 0 and "field insutype" in bad.stdout + bad.stderr
        assert medsettle(server, "unemployed", worker).returncode == 0
        back = medsettle(server, "reemployed", worker, "--emp-no", "U10", "--emp-name", "新厂", "--certificate", "C10")
        assert back.returncode == 0 and json.loads(back.stdout)["cancelled_cards"], back.stderr
        assert medsettle(server, "cancel", PSN["emigrant"], "--reason", "emigration").returncode == 0
        ident = registry(persons).identities[PSN["emigrant"]]
        again = medsettle(
            server,
            "enrol",
            *("--region", OTHER, "--insutype", "390", "--psn-type", "1501", "--certno", ident.certno),
            *("--name", ident.psn_name, "--sex", ident.gend, "--born", ident.brdy.isoformat()),
        )
        assert again.returncode == 0 and json.loads(again.stdout)["psn_no"] == PSN["emigrant"], again.stderr
        flexible = medsettle(
            server,
            "enrol",
            *("--region", REGION, "--insutype", "310", "--psn-type", "11", "--certno", FLEXIBLE["certno"]),
            *("--name", "赵灵", "--sex", "1", "--born", "1988-07-04", "--flexible"),
        )
        assert flexible.returncode == 0 and json.loads(flexible.stdout)["emp_no"] == "", flexible.stderr


@pytest.mark.parametrize("command", ["change-scheme", "unemployed", "reemployed", "enrol"])
def test_each_procedure_has_its_help(command):
    shown = subprocess.run(
        [sys.executable, "-m", "medsettle.cli", "persons", command, "--help"], capture_output=True, text=True
    )
    assert shown.returncode == 0 and "--centre" in shown.stdout
    assert {"change-scheme": "scheme", "unemployed": "unit", "reemployed": "new card", "enrol": "--flexible"}[
        command
    ] in shown.stdout


def test_the_new_actions_are_in_the_schema(served_centre):
    import urllib.request

    with urllib.request.urlopen(served_centre.url + "schema", timeout=30) as resp:
        schema = json.loads(resp.read())
    for action in ("change_scheme", "unemployed", "reemployed"):
        assert schema["admin"][action]["additionalProperties"] is False
    assert "flexible" in schema["admin"]["enrol"]["properties"]
