"""No answer leaves before its journal entry is durable (docs/messages.md): not the original's, not a
duplicate's; when the journal fails, no answer claims what the disk does not hold, and a restart
replays exactly what was answered."""

from __future__ import annotations

import sqlite3
import time

from centre_rig import id_certificate
from faults import small_sqlite_journal
from medsettle.centre.institutions import default_institutions
from medsettle.centre.service import Centre
from medsettle.engine import Population, Settler
from medsettle.jsontext import dumps
from medsettle.ledger import SQLiteJournal
from medsettle.policy import load_default_policy

POLICY = load_default_policy()
PHARMACY = "P13010000001"


def new_centre(journal):
    population = Population.generate(POLICY, 200, seed=0)
    return Centre(Settler(POLICY, population, engine="core"), journal, default_institutions(POLICY))


def sale_request(sign_no, msgid, psn):
    code = POLICY.region("130100").catalogues[0].items[0].med_list_codg
    return {
        "infno": "2102",
        "msgid": msgid,
        "fixmedins_code": PHARMACY,
        "sign_no": sign_no,
        "input": {
            "data": {"psn_no": psn, **id_certificate(psn, 200), "med_type": "41", "acct_used_flag": "1"},
            "feedetail": [{"feedetl_sn": "1", "med_list_codg": code, "pric": "3.00", "cnt": "1", "memo": "x" * 600}],
        },
    }


def sale(centre, sign_no, msgid, psn):
    return centre.handle(sale_request(sign_no, msgid, psn))


def sign_in(centre, msgid="SIGN"):
    return centre.handle(
        {"infno": "9001", "msgid": msgid, "fixmedins_code": PHARMACY, "input": {"signIn": {"opter_no": "1"}}}
    )["output"]["signinoutb"]["sign_no"]


def insured_in_130100(centre):
    population = centre.settler.population
    return next(p for i, p in enumerate(population.psn_nos) if population.region_of(i) == "130100")


def test_an_answer_and_its_duplicate_wait_until_the_entry_is_durable(tmp_path):
    path = tmp_path / "centre.db"
    with SQLiteJournal(path) as journal:
        centre = new_centre(journal)
        sign_no = sign_in(centre)
        psn = insured_in_130100(centre)
        entries = journal.count()
        # Another connection holds SQLite's write lock, as another program on the file could: the
        # journal's commit waits for it (within SQLite's 5 s busy timeout).
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            first = centre.submit(sale_request(sign_no, "M1", psn))
            again = centre.submit(sale_request(sign_no, "M1", psn))  # the counter resends: same request
            time.sleep(0.5)
            assert not first.done() and not again.done()  # applied in memory, not yet durable: no answer
            assert journal.count() == entries
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        answer, repeated = first.result(timeout=10), again.result(timeout=10)
        assert answer["infcode"] == 0 and repeated["infcode"] == 0, (answer, repeated)
        assert dumps(answer["output"]) == dumps(repeated["output"])
        assert journal.count() == entries + 1 and len(centre.settler.records) == 1  # settled once


def test_a_full_disk_stops_the_centre_and_a_restart_replays_what_was_answered(tmp_path):
    path = tmp_path / "centre.db"
    journal = small_sqlite_journal(path, pages=16)  # the disk fills up after a few dozen sales
    centre = new_centre(journal)
    sign_no = sign_in(centre)
    psn = insured_in_130100(centre)
    answered = []
    failed = None
    for i in range(500):  # bounded: 16 pages hold a few dozen sales at most
        answer = sale(centre, sign_no, f"M{i}", psn)
        if answer["infcode"] != 0:
            failed = (f"M{i}", answer)
            break
        answered.append(answer["output"]["setlinfo"])
    assert failed is not None and answered, "the small journal never filled up"
    msgid, answer = failed
    assert answer["err_msg"].startswith("CENTRE_UNAVAILABLE"), answer
    # The same request again, and any new one, are refused too: memory is ahead of the journal.
    assert sale(centre, sign_no, msgid, psn)["err_msg"].startswith("CENTRE_UNAVAILABLE")
    assert sale(centre, sign_no, "LATER", psn)["err_msg"].startswith("CENTRE_UNAVAILABLE")
    journal.close()

    with SQLiteJournal(path) as reopened:
        restarted = new_centre(reopened)
        assert sorted(restarted.settler.records) == sorted(info["setl_id"] for info in answered)
        assert restarted.settler.person_state(psn).balance == answered[-1]["balc"] * 100
        # The msgid whose answer said "unavailable" was never stored: it may be sent again and settles.
        again = sale(restarted, sign_in(restarted, "SIGN2"), msgid, psn)
        assert again["infcode"] == 0, again
