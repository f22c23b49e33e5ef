"""The agency's month end and transfers (issue 16), followed end to end against a served centre over HTTP (the
admin API, a counter's 1101 and 2102) and through ``medsettle persons``, on both ledgers (SQLite and PostgreSQL),
each checked again after a restart:

- the month-end credit run (seed 002): every account due the month's credit credited once, as the bank does;
  a second run credits nothing; not for cancelled persons or persons between regions; real months only;
- undoing a transfer out not yet accepted: the person back as before it, the certificate void; a completed
  transfer is not undone;
- a flexible employee (310 without a unit) accepted in the new region without a unit;
- every refusal names its field and changes nothing (the journal, the person as 1101 shows them).
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
THIS_MONTH, LAST_MONTH, NEXT_MONTH = _month(THIS), _month(THIS - 1), _month(THIS + 1)
TODAY_SALE = f"{THIS_MONTH}-01 09:00:00"

# persons insured for years (contributions from 2015-01), as a persons file holds them
PERSONS = {
    "retiree": ("310", "12", LAST_MONTH),  # credited by the run
    "credited": ("310", "12", LAST_MONTH),  # credited for last month by 'credit' before the run
    "employee": ("310", "11", LAST_MONTH),  # an employee's share comes with the contribution of its base
    "resident": ("390", "1501", LAST_MONTH),  # no account credit
    "dead": ("310", "12", LAST_MONTH),  # cancelled (death)
    "between": ("310", "12", LAST_MONTH),  # transferred out; the transfer is undone
    "late": ("310", "12", _month(THIS - 3)),  # did not pay last month
}
PSN = {name: f"{REGION}{i + 1:014d}" for i, name in enumerate(PERSONS)}
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
        for name, (insutype, psn_type, paid_through) in PERSONS.items():
            out.writerow([PSN[name], insutype, psn_type, REGION, "500.00", "2015-01", paid_through])
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
        """Refused naming ``field`` (saying ``words``); the journal gets nothing and the person is as before."""
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

    def balance(self, name: str) -> Decimal:
        return Decimal(str(self.info(self.certno(name))["insuinfo"][0]["balc"]))

    def everyone(self) -> dict[str, dict]:
        return {name: self.info(self.certno(name)) for name in PERSONS}

    def sale(self, psn_no: str, certno: str) -> dict:
        """A pharmacy sale (2102) of 100.00 this month, identified by ID number."""
        line = {"feedetl_sn": "1", "med_list_codg": CODES[0], "pric": "100.00", "cnt": "1", "fee_ocur_time": TODAY_SALE}
        data = {"psn_no": psn_no, "mdtrt_cert_type": "02", "mdtrt_cert_no": certno, "med_type": "41"}
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


def medsettle(server: ServedCentre, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medsettle.cli", "persons", *args, "--centre", server.url],
        capture_output=True,
        text=True,
        timeout=60,
        env=server.client_env(),
    )


def credit_run(month: str) -> dict:
    return {"action": "credit_run", "month": month}


def test_the_month_end_credit_run_credits_every_eligible_account_once(world):
    w = world
    w.ok({"action": "credit", "psn_no": PSN["credited"], "amount": "30.00", "key": LAST_MONTH})
    w.ok({"action": "cancel_person", "psn_no": PSN["dead"], "reason": "death"})
    cert = w.ok({"action": "transfer_out", "psn_no": PSN["between"], "to_admdvs": OTHER, "acceptance_letter": "AL-1"})
    before = {name: w.balance(name) for name in PERSONS}
    run = w.ok(credit_run(LAST_MONTH))
    assert (run["month"], run["credited"], run["already_credited"], run["not_eligible"]) == (LAST_MONTH, 1, 1, 5)
    after = {name: w.balance(name) for name in PERSONS}
    monthly = after["retiree"] - before["retiree"]
    assert monthly > 0
    assert {name for name in PERSONS if after[name] != before[name]} == {"retiree"}
    # a second run credits nothing; 'credit' and a contribution of the month see it credited
    again = w.ok(credit_run(LAST_MONTH))
    assert (again["credited"], again["already_credited"]) == (0, 2)
    assert {name: w.balance(name) for name in PERSONS} == after
    w.refused({"action": "credit", "psn_no": PSN["retiree"], "amount": "1.00", "key": LAST_MONTH}, "key", "already")
    # the transfer undone, the person is insured again: the next run credits them
    w.ok({"action": "transfer_undo", "certificate_no": cert["certificate_no"]})
    third = w.ok(credit_run(LAST_MONTH))
    assert (third["credited"], third["already_credited"]) == (1, 2)
    assert w.balance("between") == before["between"] + monthly
    seen = w.everyone()
    w.restart()  # the replayed centre has the same accounts and refuses what the live one did
    assert w.everyone() == seen
    assert w.ok(credit_run(LAST_MONTH))["credited"] == 0
    w.refused({"action": "credit", "psn_no": PSN["between"], "amount": "1.00", "key": LAST_MONTH}, "key", "already")


def test_a_credit_run_for_a_month_that_is_not_a_past_or_current_one_is_refused(world):
    for month in (NEXT_MONTH, "2031-06", "2026-13", "whenever", ""):  # one centre for all: each is refused alike
        world.refused(credit_run(month), "month", certno=world.certno("retiree"))


def test_the_credit_run_from_the_command_line(world):
    shown = medsettle(world.server, "credit-run", "--month", LAST_MONTH)
    assert shown.returncode == 0, shown.stderr
    answer = json.loads(shown.stdout)
    assert answer["credited"] == 4 and answer["already_credited"] == 0, answer
    again = json.loads(medsettle(world.server, "credit-run", "--month", LAST_MONTH).stdout)
    assert (again["credited"], again["already_credited"]) == (0, 4)
    bad = medsettle(world.server, "credit-run", "--month", "2026-13")
    assert bad.returncode != 0 and bad.stderr.count("Error") == 1 and "--month" in bad.stderr, bad.stderr


def test_a_transfer_out_is_undone_and_the_person_is_back_as_before(world):
    w = world
    psn_no, certno_ = PSN["between"], w.certno("between")
    before = w.info(certno_)
    cert = w.ok({"action": "transfer_out", "psn_no": psn_no, "to_admdvs": OTHER, "acceptance_letter": "AL-1"})
    assert w.info(certno_)["insuinfo"][0]["psn_insu_stas"] == "4"
    card_lost = {"action": "card", "card_no": w.card("between"), "card_action": "lost"}
    w.refused(card_lost, "card_no")  # cancelled with the relation
    undone = w.ok({"action": "transfer_undo", "certificate_no": cert["certificate_no"]})
    assert undone["void"] and undone["insuplc_admdvs"] == REGION and undone["balc"] == "500.00", undone
    assert w.info(certno_) == before
    assert w.sale(psn_no, certno_)["infcode"] == 0  # insured again
    # the certificate is void: neither undone again nor accepted
    undo = {"action": "transfer_undo", "certificate_no": cert["certificate_no"]}
    w.refused(undo, "certificate_no", "already undone", certno=certno_)
    accept = {"action": "transfer_in", "certificate_no": cert["certificate_no"], "emp_no": "U3", "emp_name": "厂"}
    w.refused(accept, "certificate_no", "void", certno=certno_)
    w.refused({"action": "transfer_undo", "certificate_no": "TC-none"}, "certificate_no", "no transfer certificate")
    w.refused({"action": "transfer_undo"}, "certificate_no")
    seen = w.everyone()
    w.restart()
    assert w.everyone() == seen
    w.refused(undo, "certificate_no", "already undone", certno=certno_)
    w.ok(card_lost)  # the card is as the transfer out found it
    again = w.ok(
        {"action": "transfer_out", "psn_no": psn_no, "to_admdvs": OTHER, "acceptance_letter": "AL-1"}
    )  # and may transfer later
    assert again["certificate_no"] != cert["certificate_no"]


def test_a_completed_transfer_is_not_undone(world):
    w = world
    psn_no, certno_ = PSN["employee"], w.certno("employee")
    cert = w.ok({"action": "transfer_out", "psn_no": psn_no, "to_admdvs": OTHER, "acceptance_letter": "AL-1"})
    w.ok({"action": "transfer_in", "certificate_no": cert["certificate_no"], "emp_no": "U3", "emp_name": "厂"})
    undo = {"action": "transfer_undo", "certificate_no": cert["certificate_no"]}
    w.refused(undo, "certificate_no", "accepted", certno=certno_)
    w.restart()
    w.refused(undo, "certificate_no", "accepted", certno=certno_)
    assert w.info(certno_)["insuinfo"][0]["insuplc_admdvs"] == OTHER


def test_a_transfer_is_undone_from_the_command_line(world):
    cert = world.ok(
        {"action": "transfer_out", "psn_no": PSN["between"], "to_admdvs": OTHER, "acceptance_letter": "AL-1"}
    )
    shown = medsettle(world.server, "transfer-undo", cert["certificate_no"])
    assert shown.returncode == 0 and json.loads(shown.stdout)["void"] is True, shown.stderr
    again = medsettle(world.server, "transfer-undo", cert["certificate_no"])
    assert again.returncode != 0 and "certificate_no" in again.stderr and "already undone" in again.stderr


def test_a_flexible_employee_is_accepted_without_a_unit(world):
    w = world
    psn_no = w.ok(FLEXIBLE)["psn_no"]
    w.ok({"action": "contribute", "psn_no": psn_no, "month": THIS_MONTH, "base": "4000.00"})
    cert = w.ok({"action": "transfer_out", "psn_no": psn_no, "to_admdvs": OTHER, "acceptance_letter": "AL-1"})
    accepted = w.ok({"action": "transfer_in", "certificate_no": cert["certificate_no"]})
    assert accepted["insuplc_admdvs"] == OTHER
    insu = w.info(FLEXIBLE["certno"])["insuinfo"][0]
    assert (insu["insuplc_admdvs"], insu["emp_name"], insu["psn_insu_stas"]) == (OTHER, "灵活就业人员", "1")
    seen = w.info(FLEXIBLE["certno"])
    # an employee with a unit is still accepted only with the new one
    employee = w.ok(
        {"action": "transfer_out", "psn_no": PSN["employee"], "to_admdvs": OTHER, "acceptance_letter": "AL-1"}
    )
    accept = {"action": "transfer_in", "certificate_no": employee["certificate_no"]}
    w.refused(accept, "emp_no", "new unit")
    w.refused({**accept, "emp_no": "U3"}, "emp_name", "new unit")
    w.restart()
    assert w.info(FLEXIBLE["certno"]) == seen
    shown = medsettle(w.server, "transfer-in", employee["certificate_no"], "--emp-no", "U3", "--emp-name", "厂")
    assert shown.returncode == 0, shown.stderr
