"""The agency's accounts as the seeds describe them (issue 16, 'Wrong results'), followed end to end against a
served centre over HTTP: the admin API, and a counter's sale (2102) where a sale proves the point.

- a routine contribution extends the continuous run the person's record already holds (a persons file of
  people insured for years), also after a transfer; a gap breaks it; a month in the future is refused;
- one account credit per person and month, whichever command makes it (contribute or credit); real months;
  no credit to a cancelled person or one between regions, so a transfer can always be completed;
- the transfer certificate in one unit, fen;
- every refusal names its field and changes nothing (journal, balance, record), and a restart replays the
  same persons and accounts.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import pytest

from centre_rig import CODES, POLICY, ServedCentre
from centre_rig import admin_ok as ok
from centre_rig import admin_refused as refused
from medsettle.centre.registry import Registry
from medsettle.engine import Population
from medsettle.timeutil import now_shanghai

pytestmark = pytest.mark.timeout(180)

REGION = "130100"


def _month(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


THIS = now_shanghai().date().year * 12 + now_shanghai().date().month - 1  # the centre's month (Asia/Shanghai)
THIS_MONTH, LAST_MONTH, NEXT_MONTH = _month(THIS), _month(THIS - 1), _month(THIS + 1)

# persons insured for years (contributions from 2015-01), as a persons file holds them
PERSONS = {
    "steady": ("310", "11", LAST_MONTH),  # paid through last month: this month extends the run
    "gap": ("310", "11", _month(THIS - 3)),  # two months missed: this month starts a new run
    "mover": ("310", "11", LAST_MONTH),  # transfers to 330300
    "retiree": ("310", "12", LAST_MONTH),  # credited a fixed sum a month by a contribution
    "dead": ("310", "11", LAST_MONTH),  # cancelled (death)
    "between": ("310", "11", LAST_MONTH),  # transferred out, not yet accepted
}
PSN = {name: f"{REGION}{i + 1:014d}" for i, name in enumerate(PERSONS)}


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


def sale(server: ServedCentre, sign_no: str, psn_no: str, certno: str) -> dict:
    """A pharmacy sale (2102) of 2 March 2026 identified by ID number."""
    return sale_and_msgid(server, sign_no, psn_no, certno)[0]


def sale_and_msgid(server: ServedCentre, sign_no: str, psn_no: str, certno: str) -> tuple[dict, str]:
    return server.call(
        "2102",
        {
            "data": {
                "psn_no": psn_no,
                "mdtrt_cert_type": "02",
                "mdtrt_cert_no": certno,
                "med_type": "41",
                "acct_used_flag": "1",
            },
            "feedetail": [
                {
                    "feedetl_sn": "1",
                    "med_list_codg": CODES[0],
                    "pric": "10.00",
                    "cnt": "1",
                    "fee_ocur_time": "2026-03-02 09:58:00",
                }
            ],
        },
        sign_no=sign_no,
    )


def info(server: ServedCentre, sign_no: str, certno: str) -> dict:
    """1101 by ID number: the person's record as a counter sees it."""
    answer, _ = server.call("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": certno}}, sign_no=sign_no)
    assert answer["infcode"] == 0, answer
    return answer["output"]


@pytest.fixture()
def centre(tmp_path: Path):
    persons = write_persons(tmp_path / "persons.csv")
    server = ServedCentre(tmp_path / "centre", args=["--persons", str(persons)]).start()
    server.persons_file = str(persons)
    try:
        yield server
    finally:
        server.stop()


def certno_of(server: ServedCentre, name: str) -> str:
    return registry(server.persons_file).identities[PSN[name]].certno


def contribute(psn_no: str, month: str, base: str | None = "6000.00") -> dict:
    return {"action": "contribute", "psn_no": psn_no, "month": month, **({"base": base} if base else {})}


def test_a_routine_contribution_extends_the_run_the_record_holds(centre):
    sign_no = centre.sign_in()
    steady = PSN["steady"]
    assert sale(centre, sign_no, steady, certno_of(centre, "steady"))["infcode"] == 0
    paid = ok(centre.admin(contribute(steady, THIS_MONTH)))
    assert (paid["contrib_from"], paid["paid_through"]) == ("2015-01", THIS_MONTH)
    after = sale(centre, sign_no, steady, certno_of(centre, "steady"))
    assert after["infcode"] == 0, after  # was WAITING_PERIOD: the run had restarted at this month
    refused(centre, contribute(steady, "2020-06"), "month", "already recorded")  # the record holds it


def test_a_gap_breaks_the_run_as_the_policy_says(centre):
    sign_no = centre.sign_in()
    gap = PSN["gap"]
    paid = ok(centre.admin(contribute(gap, THIS_MONTH)))
    assert (paid["contrib_from"], paid["paid_through"]) == (THIS_MONTH, THIS_MONTH)
    later = sale(centre, sign_no, gap, certno_of(centre, "gap"))
    assert later["infcode"] == -1 and "WAITING_PERIOD" in later["err_msg"], later


def test_a_month_in_the_future_is_refused_naming_it_and_changes_nothing(centre):
    sign_no = centre.sign_in()
    steady, certno = PSN["steady"], certno_of(centre, "steady")
    before = info(centre, sign_no, certno)
    for month in (NEXT_MONTH, "2031-06"):
        refused(centre, contribute(steady, month), "month", month, "future")
    assert info(centre, sign_no, certno) == before
    assert sale(centre, sign_no, steady, certno)["infcode"] == 0  # benefits go on


def test_a_transfer_keeps_the_run_and_the_next_contribution_extends_it(centre):
    sign_no = centre.sign_in()
    mover = PSN["mover"]
    cert = ok(
        centre.admin({"action": "transfer_out", "psn_no": mover, "to_admdvs": "330300", "acceptance_letter": "AL-1"})
    )
    ok(
        centre.admin(
            {"action": "transfer_in", "certificate_no": cert["certificate_no"], "emp_no": "U3303", "emp_name": "厂"}
        )
    )
    paid = ok(centre.admin(contribute(mover, THIS_MONTH)))
    assert (paid["contrib_from"], paid["paid_through"]) == ("2015-01", THIS_MONTH)
    answer, _ = centre.call(
        "1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": certno_of(centre, "mover")}}, sign_no=sign_no
    )
    assert answer["output"]["insuinfo"][0]["insuplc_admdvs"] == "330300"


def test_the_transfer_certificate_is_in_fen_throughout(centre):
    cert = ok(
        centre.admin(
            {"action": "transfer_out", "psn_no": PSN["mover"], "to_admdvs": "330300", "acceptance_letter": "AL-1"}
        )
    )
    assert cert["balance"] == 50_000  # 500.00 yuan, in fen like the accumulators
    acc = cert["accumulators"]
    assert all(isinstance(v, int) for v in (acc["second_tier_base"], acc["second_tier_paid"], acc["assistance_paid"]))
    assert all(isinstance(v, int) for v in [*acc["deductible_met"], *acc["pooled_paid"]])


def test_one_credit_per_person_and_month_whichever_command_makes_it(centre):
    sign_no = centre.sign_in()
    steady, certno = PSN["steady"], certno_of(centre, "steady")
    paid = ok(centre.admin(contribute(steady, THIS_MONTH)))
    assert paid["credit"] != "0.00"
    balance = info(centre, sign_no, certno)["insuinfo"][0]["balc"]
    credit = {"action": "credit", "psn_no": steady, "amount": "120.50", "key": THIS_MONTH}
    refused(centre, credit, "key", "already made")
    assert info(centre, sign_no, certno)["insuinfo"][0]["balc"] == balance
    # the other order: credited first, the contribution then records the month without a second credit
    retiree, certno = PSN["retiree"], certno_of(centre, "retiree")
    ok(centre.admin({**credit, "psn_no": retiree}))
    balance = info(centre, sign_no, certno)["insuinfo"][0]["balc"]
    paid = ok(centre.admin(contribute(retiree, THIS_MONTH, base=None)))
    assert paid["credit"] == "0.00" and paid["paid_through"] == THIS_MONTH and "already credited" in paid["note"]
    assert info(centre, sign_no, certno)["insuinfo"][0]["balc"] == balance


@pytest.mark.parametrize("month", ["2026-13", "whenever"])
def test_a_credit_for_a_month_that_is_not_one_is_refused_naming_the_field(centre, month):
    refused(centre, {"action": "credit", "psn_no": PSN["steady"], "amount": "10.00", "key": month}, "key", "yyyy-mm")


def test_no_credit_to_a_cancelled_person_or_one_between_regions(centre):
    sign_no = centre.sign_in()
    dead, between = PSN["dead"], PSN["between"]
    ok(centre.admin({"action": "cancel_person", "psn_no": dead, "reason": "death"}))
    before = info(centre, sign_no, certno_of(centre, "dead"))
    refused(centre, {"action": "credit", "psn_no": dead, "amount": "10.00", "key": THIS_MONTH}, "psn_no", "not insured")
    assert info(centre, sign_no, certno_of(centre, "dead")) == before
    cert = ok(
        centre.admin({"action": "transfer_out", "psn_no": between, "to_admdvs": "330300", "acceptance_letter": "AL-1"})
    )
    credit = {"action": "credit", "psn_no": between, "amount": "10.00", "key": THIS_MONTH}
    refused(centre, credit, "psn_no", "not insured")
    refused(centre, contribute(between, THIS_MONTH), "psn_no", "not insured")
    accepted = ok(
        centre.admin(
            {"action": "transfer_in", "certificate_no": cert["certificate_no"], "emp_no": "U3", "emp_name": "厂"}
        )
    )  # the transfer can still be completed: nothing moved while the person was between regions
    assert accepted["balc"] == "500.00"
    ok(centre.admin(credit))  # insured again: credited in the new region


def test_a_restart_replays_the_same_persons_and_accounts(tmp_path):
    persons = write_persons(tmp_path / "persons.csv")
    server = ServedCentre(tmp_path / "centre", args=["--persons", str(persons)]).start()
    names = ("steady", "retiree", "mover", "dead")
    certnos = {name: registry(str(persons)).identities[PSN[name]].certno for name in names}
    try:
        sign_no = server.sign_in()
        ok(server.admin(contribute(PSN["steady"], THIS_MONTH)))
        ok(server.admin({"action": "credit", "psn_no": PSN["retiree"], "amount": "30.00", "key": THIS_MONTH}))
        ok(server.admin(contribute(PSN["retiree"], THIS_MONTH, base=None)))
        cert = ok(
            server.admin(
                {"action": "transfer_out", "psn_no": PSN["mover"], "to_admdvs": "330300", "acceptance_letter": "AL-1"}
            )
        )
        ok(
            server.admin(
                {"action": "transfer_in", "certificate_no": cert["certificate_no"], "emp_no": "U3", "emp_name": "厂"}
            )
        )
        ok(server.admin({"action": "cancel_person", "psn_no": PSN["dead"], "reason": "death"}))
        seen = {name: info(server, sign_no, certnos[name]) for name in names}
    finally:
        server.stop()
    server.start()
    try:
        sign_no = server.sign_in()
        assert {name: info(server, sign_no, certnos[name]) for name in names} == seen
        # the replayed state refuses what the live one did: the months held, the months credited
        refused(server, contribute(PSN["steady"], THIS_MONTH), "month", "already recorded")
        credit = {"action": "credit", "psn_no": PSN["steady"], "amount": "1.00", "key": THIS_MONTH}
        refused(server, credit, "key", "already made")
        assert sale(server, sign_no, PSN["steady"], certnos["steady"])["infcode"] == 0
    finally:
        server.stop()


def test_a_transfer_can_be_completed_after_a_reversal_refunds_the_account(centre):
    sign_no = centre.sign_in()
    mover, certno = PSN["mover"], certno_of(centre, "mover")
    paid, msgid = sale_and_msgid(centre, sign_no, mover, certno)
    assert paid["infcode"] == 0, paid
    cert = ok(
        centre.admin({"action": "transfer_out", "psn_no": mover, "to_admdvs": "330300", "acceptance_letter": "AL-1"})
    )
    reversed_, _ = centre.call("2601", {"data": {"psn_no": mover, "omsgid": msgid, "oinfno": "2102"}}, sign_no=sign_no)
    accepted = ok(
        centre.admin(
            {"action": "transfer_in", "certificate_no": cert["certificate_no"], "emp_no": "U3", "emp_name": "厂"}
        )
    )
    assert reversed_["infcode"] == 0, reversed_  # the refund moved the balance: accepted all the same, said so
    assert accepted["balc"] == "500.00" and "moved since the certificate" in accepted["note"]
    assert info(centre, sign_no, certno)["insuinfo"][0]["insuplc_admdvs"] == "330300"
