"""The centre on either journal backend: the same flow, then a restart that replays it (in process)."""

from __future__ import annotations

import pytest

from centre_rig import id_certificate
from medsettle.centre.institutions import default_institutions
from medsettle.centre.service import Centre
from medsettle.engine import Population, Settler
from medsettle.ledger import PostgresJournal, SQLiteJournal
from medsettle.policy import load_default_policy

POLICY = load_default_policy()
PHARMACY = "P13010000001"


@pytest.fixture(params=["sqlite", "postgresql"])
def open_journal(request, tmp_path):
    if request.param == "sqlite":
        return lambda: SQLiteJournal(tmp_path / "centre.db")
    url = request.getfixturevalue("postgres_server").new_database()
    return lambda: PostgresJournal(url)


def new_centre(journal):
    population = Population.generate(POLICY, 300, seed=0)
    return Centre(Settler(POLICY, population, engine="core"), journal, default_institutions(POLICY))


def test_a_day_at_the_pharmacy_survives_a_restart_on_both_backends(open_journal):
    journal = open_journal()
    centre = new_centre(journal)
    sign = centre.handle(
        {"infno": "9001", "msgid": "SIGN1", "fixmedins_code": PHARMACY, "input": {"signIn": {"opter_no": "1"}}}
    )["output"]["signinoutb"]["sign_no"]
    code = POLICY.region("130100").catalogues[0].items[0].med_list_codg
    persons = [p for p in centre.settler.population.psn_nos if p.startswith("130100")][:5]
    answers = {}
    for i, psn in enumerate(persons):
        req = {
            "infno": "2102",
            "msgid": f"SALE{i}",
            "fixmedins_code": PHARMACY,
            "sign_no": sign,
            "input": {
                "data": {"psn_no": psn, **id_certificate(psn, 300), "med_type": "41"},
                "feedetail": [{"feedetl_sn": "1", "med_list_codg": code, "pric": "9.90", "cnt": "3"}],
            },
        }
        answers[f"SALE{i}"] = (req, centre.handle(req))
        assert answers[f"SALE{i}"][1]["infcode"] == 0
    states = [centre.settler.engine.get_state(p) for p in range(len(centre.settler.population))]
    journal.close()

    journal = open_journal()
    again = new_centre(journal)
    try:
        assert [again.settler.engine.get_state(p) for p in range(len(again.settler.population))] == states
        for req, first in answers.values():
            assert again.handle(req)["output"] == first["output"]
    finally:
        journal.close()
