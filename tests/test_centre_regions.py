"""Several centre processes on one PostgreSQL database, each owning other insured regions (docs/architecture.md):
each settles its own regions' persons and refuses the others', a region cannot be owned twice, a sign-in
made at one process is honoured by the other, ids never collide, and each replays to the same state.
A SQLite journal has one centre process."""

from __future__ import annotations

import pytest

from centre_rig import id_certificate
from medsettle.centre.institutions import default_institutions
from medsettle.centre.service import Centre
from medsettle.engine import Population, Settler
from medsettle.ledger import PostgresJournal, SQLiteJournal
from medsettle.ledger.journal import JournalError
from medsettle.policy import load_default_policy

POLICY = load_default_policy()
PHARMACY = "P13010000001"
CODE = POLICY.region("130100").catalogues[0].items[0].med_list_codg


def centre_on(journal, regions):
    population = Population.generate(POLICY, 300, seed=0)
    return Centre(Settler(POLICY, population, engine="core"), journal, default_institutions(POLICY), regions=regions)


def persons(c, region):
    return [p for p in c.settler.population.psn_nos if p.startswith(region)][:3]


def sale(sign_no, psn, msgid, insuplc=""):
    return {
        "infno": "2102",
        "msgid": msgid,
        "fixmedins_code": PHARMACY,
        "sign_no": sign_no,
        "insuplc_admdvs": insuplc,
        "input": {
            "data": {"psn_no": psn, **id_certificate(psn, 300), "med_type": "41"},
            "feedetail": [{"feedetl_sn": "1", "med_list_codg": CODE, "pric": "9.90", "cnt": "3"}],
        },
    }


def test_two_processes_share_one_database_each_with_its_regions(postgres_server):
    url = postgres_server.new_database()
    a_journal, b_journal = PostgresJournal(url), PostgresJournal(url)
    a, b = centre_on(a_journal, ["130100"]), centre_on(b_journal, ["330300"])
    try:
        third = PostgresJournal(url)
        with pytest.raises(JournalError, match="region 130100 is owned by another centre process"):
            centre_on(third, ["130100"])
        third.close()
        sign_no = a.handle(
            {"infno": "9001", "msgid": "SIGN1", "fixmedins_code": PHARMACY, "input": {"signIn": {"opter_no": "1"}}}
        )["output"]["signinoutb"]["sign_no"]
        ids = set()
        for i, psn in enumerate(persons(a, "130100")):
            answer = a.handle(sale(sign_no, psn, f"A{i}"))
            assert answer["infcode"] == 0, answer
            ids.add(answer["output"]["setlinfo"]["setl_id"])
        for i, psn in enumerate(persons(b, "330300")):  # the sign-in made at A is honoured at B
            answer = b.handle(sale(sign_no, psn, f"B{i}"))
            assert answer["infcode"] == 0, answer
            ids.add(answer["output"]["setlinfo"]["setl_id"])
        assert len(ids) == 6  # no setl_id written twice in the shared journal
        refused = a.handle(sale(sign_no, persons(a, "330300")[0], "A-wrong"))
        assert refused["infcode"] == -1 and "input.data.psn_no" in refused["err_msg"]
        assert "does not own" in refused["err_msg"]
        routed = b.handle(sale(sign_no, persons(b, "330300")[0], "B-routed", insuplc="130100"))
        assert routed["infcode"] == -1 and "field insuplc_admdvs" in routed["err_msg"]
        a_states = {p: a.settler.person_state(p) for p in persons(a, "130100")}
        b_states = {p: b.settler.person_state(p) for p in persons(b, "330300")}
    finally:
        a_journal.close()
        b_journal.close()
    # restart both, the other way round: each replays the shared journal to the same state
    b2_journal, a2_journal = PostgresJournal(url), PostgresJournal(url)
    try:
        b2, a2 = centre_on(b2_journal, ["330300"]), centre_on(a2_journal, ["130100"])
        assert {p: a2.settler.person_state(p) for p in persons(a2, "130100")} == a_states
        assert {p: b2.settler.person_state(p) for p in persons(b2, "330300")} == b_states
        again = a2.handle(sale(sign_no, persons(a2, "130100")[0], "A3"))
        assert again["infcode"] == 0 and again["output"]["setlinfo"]["setl_id"] not in ids
    finally:
        a2_journal.close()
        b2_journal.close()


def test_a_sqlite_journal_has_one_centre_process(tmp_path):
    first = SQLiteJournal(tmp_path / "centre.db")
    try:
        centre_on(first, None)
        other = SQLiteJournal(tmp_path / "centre.db")
        with pytest.raises(JournalError, match="another centre process is using this journal"):
            centre_on(other, None)
        other.close()
    finally:
        first.close()
    second = SQLiteJournal(tmp_path / "centre.db")  # released when the first closed
    centre_on(second, None)
    second.close()


def test_unknown_regions_are_refused(tmp_path):
    from medsettle.errors import InvalidInput

    journal = SQLiteJournal(tmp_path / "c.db")
    try:
        with pytest.raises(InvalidInput, match="999999"):
            centre_on(journal, ["999999"])
    finally:
        journal.close()


def test_a_second_serve_on_the_same_sqlite_journal_is_refused(tmp_path):
    import subprocess
    import sys

    from centre_rig import ServedCentre

    first = ServedCentre(tmp_path).start()
    try:
        second = subprocess.run(
            [sys.executable, "-m", "medsettle.cli", "serve", "--port", "0", "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1 and "another centre process is using this journal" in second.stderr
        bad = subprocess.run(
            [
                sys.executable,
                "-m",
                "medsettle.cli",
                "serve",
                "--port",
                "0",
                "--data-dir",
                str(tmp_path / "other"),
                "--regions",
                "130100,999999",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad.returncode == 1 and "999999" in bad.stderr
    finally:
        first.stop()
