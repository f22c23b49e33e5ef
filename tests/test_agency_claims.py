"""Emergency care at a non-agreed institution (seed 003), claimed manually at the insured region's agency, followed
end to end against a served centre over HTTP (the admin API's ``emergency_claim``, a counter's 1101 and 5206) and
through ``medsettle persons emergency-claim``, on both ledgers (SQLite and PostgreSQL), with a restart:

- the insured person is treated in an emergency at an institution without an agreement and pays there;
- they claim at their region's agency with the receipt: the claim is settled with the drug scope the region's
  rule set relaxes for emergencies (130100: a class C drug settled as a class B one, a restricted item as
  approved), and 330300, which relaxes nothing, settles the same receipt with the class C drug as own pay;
- what is invalid is refused naming its field, and changes nothing; a receipt is claimed once, also after a
  restart, which replays the same claims and accumulators.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from centre_rig import CODES, HOSPITAL, POLICY, ServedCentre
from medsettle.policy.models import Policy
from test_agency_enrolment import THIS_MONTH, World, registry

pytestmark = pytest.mark.timeout(240)

REGION, OTHER = "130100", "330300"
CLASS_C = next(i.med_list_codg for i in POLICY.region(REGION).catalogues[0].items if i.chrgitm_lv == "03")
RESTRICTED = next(
    i.med_list_codg
    for i in POLICY.region(REGION).catalogues[0].items
    if i.lmt_used_flag and i.chrgitm_lv != "03" and i.pric_uplmt_amt is None
)
PSN = {"here": f"{REGION}{1:014d}", "there": f"{OTHER}{2:014d}", "dead": f"{REGION}{3:014d}"}
CARE_DAY = f"{THIS_MONTH}-01"
LINES = [
    {"med_list_codg": CODES[0], "pric": 12000, "cnt": 1},  # class A: in scope as always
    {"med_list_codg": CLASS_C, "pric": 5000, "cnt": 2},  # class C: own pay, unless the scope is relaxed
    {"med_list_codg": RESTRICTED, "pric": 3000, "cnt": 1},  # restricted: own pay without approval
]


def claim(psn_no: str, invoice_no: str = "R0001", **fields: object) -> dict:
    body: dict = {
        "action": "emergency_claim",
        "psn_no": psn_no,
        "date": CARE_DAY,
        "institution_name": "县第二人民医院 (no agreement)",
        "institution_code": "H13019999999",
        "institution_admdvs": REGION,
        "hosp_lv": "2",
        "invoice_no": invoice_no,
        "items": LINES,
        "medfee_sumamt": sum(line["pric"] * line["cnt"] for line in LINES),
    }
    return {**body, **fields}


def write_persons(path: Path) -> Path:
    last = (
        f"{int(THIS_MONTH[:4]) - 1}-12"
        if THIS_MONTH.endswith("-01")
        else f"{THIS_MONTH[:5]}{int(THIS_MONTH[5:]) - 1:02d}"
    )
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["psn_no", "insutype", "psn_type", "insuplc_admdvs", "balance", "contrib_from", "paid_through"])
        out.writerow([PSN["here"], "390", "1501", REGION, "0.00", "2015-01", last])
        out.writerow([PSN["there"], "390", "1501", OTHER, "0.00", "2015-01", last])
        out.writerow([PSN["dead"], "310", "11", REGION, "100.00", "2015-01", last])
    return path


class ClaimWorld(World):
    def certno_of(self, psn_no: str) -> str:
        return registry(self.persons).identities[psn_no].certno


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
        yield ClaimWorld(server, db_url, persons)
    finally:
        server.stop()


def test_an_emergency_at_a_non_agreed_institution_is_claimed_with_the_relaxed_scope(world):
    w, here, there = world, PSN["here"], PSN["there"]
    before = w.cum(here, w.certno_of(here))
    done = w.ok(claim(here))
    assert done["agreed"] is False and done["claim_no"] == done["setl_id"]
    a, c, r = done["items"]
    assert (a["relaxed"], a["settled_as"]) == ("", CODES[0])
    assert c["relaxed"] == "class_c_as" and c["settled_as"] == "XJ01AA000A3930101"  # 130100's emergency_scope
    assert c["fulamt_ownpay_amt"] == 0 and c["inscp_scp_amt"] == 10000 - 1500  # class B, 15% self-pay first
    assert r["relaxed"] == "restricted_approved" and r["fulamt_ownpay_amt"] == 0
    amounts = done["amounts_fen"]
    assert amounts["medfee_sumamt"] == 25000 and amounts["fund_pay_sumamt"] > 0
    assert all(isinstance(v, int) for v in amounts.values())  # fen, integers, as everywhere at the boundary
    assert w.cum(here, w.certno_of(here)) != before  # the year's accumulators moved, as a settlement's do
    # 330300 relaxes nothing: the same receipt, the class C drug and the unapproved restricted item own pay
    plain = w.ok(claim(there, institution_admdvs=OTHER, institution_code="H33039999999"))
    assert [i["relaxed"] for i in plain["items"]] == ["", "", ""]
    assert plain["items"][1]["fulamt_ownpay_amt"] == 10000
    # a restart replays the claims: the same accumulators, and a receipt is still claimed once
    seen = (w.info(w.certno_of(here)), w.cum(here, w.certno_of(here)))
    w.restart()
    assert (w.info(w.certno_of(here)), w.cum(here, w.certno_of(here))) == seen
    w.refused(claim(here), "invoice_no", "claimed already", done["claim_no"])
    assert w.ok(claim(here, invoice_no="R0002"))["claim_no"] != done["claim_no"]


def test_what_is_invalid_is_refused_naming_the_field(world):
    w, here = world, PSN["here"]
    certno_ = w.certno_of(here)
    w.refused(claim(here, institution_code=HOSPITAL), "institution_code", "agreed", certno=certno_)
    w.refused(claim(here, date="2099-01-01"), "date", "after today", certno=certno_)
    w.refused(claim(here, date="2025-01-02"), "date", "manual_claim_days", certno=certno_)
    w.refused(claim(here, medfee_sumamt=1), "medfee_sumamt", "25000", certno=certno_)
    unknown = [{"med_list_codg": "NOT-A-DRUG", "pric": 100, "cnt": 1}]
    w.refused(claim(here, items=unknown, medfee_sumamt=100), "items[0].med_list_codg", certno=certno_)
    w.refused(claim(here, items=[{**LINES[0], "pric": -1}], medfee_sumamt=-1), "items[0].pric", certno=certno_)
    w.refused(claim(here, items=[{**LINES[0], "pric": "120.00"}]), "items[0].pric", certno=certno_)
    w.refused(claim(here, items=[]), "items", certno=certno_)
    w.refused(claim(here, institution_admdvs="110100"), "institution_admdvs", certno=certno_)
    w.refused(claim(here, hosp_lv="pharmacy"), "hosp_lv", certno=certno_)
    w.refused(claim(here, med_type="41"), "med_type", certno=certno_)
    w.refused(claim(here, paid="yes"), "paid", certno=certno_)  # unknown fields are refused
    w.refused(claim("130100999999999999"), "psn_no")
    w.ok({"action": "cancel_person", "psn_no": PSN["dead"], "reason": "death"})
    w.refused(claim(PSN["dead"]), "psn_no", "not insured")


def test_the_persons_command_claims(tmp_path):
    persons = str(write_persons(tmp_path / "persons.csv"))
    with ServedCentre(tmp_path / "centre", args=["--persons", persons]) as server:
        items = [f"--item={line['med_list_codg']}:{line['pric']}:{line['cnt']}" for line in LINES]
        args = [
            *("persons", "emergency-claim", PSN["here"], "--date", CARE_DAY, "--institution", "县医院"),
            *("--region", REGION, "--level", "2", "--invoice", "R9", "--total", "25000", *items),
        ]
        run = subprocess.run(
            [sys.executable, "-m", "medsettle.cli", *args, "--centre", server.url],
            capture_output=True,
            text=True,
            timeout=60,
            env=server.client_env(),
        )
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["items"][1]["relaxed"] == "class_c_as"
        bad = subprocess.run(
            [sys.executable, "-m", "medsettle.cli", *args[:-1], "--item=X:1", "--centre", server.url],
            capture_output=True,
            text=True,
            timeout=60,
            env=server.client_env(),
        )
        assert bad.returncode != 0 and "--item" in bad.stderr


@pytest.mark.parametrize(
    ("code", "words"),
    [(CLASS_C, "class A or B"), (RESTRICTED, "not restricted"), ("NOT-A-DRUG", "is not in catalogue")],
)
def test_the_relaxed_scope_is_policy_data_and_validated(code, words):
    raw = POLICY.model_dump(mode="json")
    raw["regions"][0]["rulesets"][0]["emergency_scope"] = {"class_c_as": code, "restricted_approved": True}
    with pytest.raises(ValidationError) as refused:
        Policy.model_validate(raw)
    assert "rulesets[0] (130100-2025.1).emergency_scope.class_c_as" in str(refused.value)
    assert words in str(refused.value)
    raw["regions"][0]["rulesets"][0]["emergency_scope"] = {"class_c_as": None, "restricted_approved": "maybe"}
    with pytest.raises(ValidationError, match="restricted_approved"):
        Policy.model_validate(raw)
