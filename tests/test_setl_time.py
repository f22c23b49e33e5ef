"""A settlement's setl_time: the bill's own date and time of day, unless the caller gives the time of settling.

``Settler.settle`` without ``when`` and ``medsettle settle`` answer the time the bill was sent for (a bill of
09:30 is answered 09:30:00, not midnight), on every path that makes a settlement; the centre answers the time
at which it settled, and its journal replays that time.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest

from centre_rig import id_certificate
from medsettle.engine import Bill, parse_bill
from medsettle.engine.plainbill import validate_plain
from medsettle.ledger import JournaledSettler, SQLiteJournal
from medsettle.ledger.replay import replay
from worlds import bill, make_settler

AT_0930 = "2026-03-02 09:30:00"


def a_bill(when=AT_0930, **over):
    return bill("E1", [("A1", "12.50", "1")], when=when, **over)  # the plain shape: amounts as text


def test_the_validated_path_answers_the_bills_own_time(engine):
    s = make_settler(engine)
    plain = a_bill()
    assert s.fast_path().route(validate_plain(plain)) is not None  # the quick route (C on the core)
    r = s.settle(plain)
    assert r.setl_time == dt.datetime(2026, 3, 2, 9, 30)
    assert r.setlinfo()["setl_time"] == AT_0930
    assert r.to_json()["setlinfo"]["setl_time"] == AT_0930
    # Seconds are kept too, and a presettlement answers the same time.
    assert s.settle(a_bill("2026-03-02 23:59:58")).setlinfo()["setl_time"] == "2026-03-02 23:59:58"
    assert s.presettle(a_bill("2026-03-02 07:05:09")).setlinfo()["setl_time"] == "2026-03-02 07:05:09"


def test_the_model_way_answers_the_bills_own_time(engine):
    s = make_settler(engine)
    # The Bill model itself, a bill the quick route declines (an ISO "T" time), and an aware time.
    assert s.settle(parse_bill(a_bill())).setlinfo()["setl_time"] == AT_0930
    declined = a_bill("2026-03-02T09:31:00")
    assert s.fast_path().route(validate_plain(declined)) is None
    assert s.settle(declined).setlinfo()["setl_time"] == "2026-03-02 09:31:00"
    utc = s.settle(a_bill("2026-03-02T01:32:00+00:00"))  # 01:32 UTC is 09:32 in Shanghai
    assert utc.setl_time == dt.datetime(2026, 3, 2, 9, 32)
    model = Bill.model_validate({**a_bill(), "setl_time": dt.datetime(2026, 3, 2, 1, 33, tzinfo=dt.UTC)})
    assert s.settle(model).setlinfo()["setl_time"] == "2026-03-02 09:33:00"
    # A date alone is midnight of that date.
    assert s.settle(a_bill("2026-03-02")).setlinfo()["setl_time"] == "2026-03-02 00:00:00"


def test_settle_many_answers_each_bills_own_time(engine):
    s = make_settler(engine)
    times = ["2026-03-02 08:00:01", "2026-03-02 12:34:56", "2026-03-03"]
    results = s.settle_many([a_bill(t) for t in times])
    assert [r.setlinfo()["setl_time"] for r in results] == [
        "2026-03-02 08:00:01",
        "2026-03-02 12:34:56",
        "2026-03-03 00:00:00",
    ]


def test_when_is_the_time_answered_when_given(engine):
    s = make_settler(engine)
    r = s.settle(a_bill(), when=dt.datetime(2026, 3, 2, 14, 15, 16))
    assert r.setlinfo()["setl_time"] == "2026-03-02 14:15:16"


def test_a_journaled_settlement_keeps_its_time_through_replay(engine, tmp_path):
    with SQLiteJournal(tmp_path / "j.db") as journal:
        journaled = JournaledSettler(make_settler(engine), journal)
        r = journaled.settle(a_bill())
        assert r.setlinfo()["setl_time"] == AT_0930
        fresh = make_settler(engine)
        replay(journal, fresh)
        assert fresh.records[r.setl_id].setlinfo()["setl_time"] == AT_0930


def test_medsettle_settle_answers_each_bills_own_time(engine, tmp_path):
    def run(*args):
        r = subprocess.run([sys.executable, "-m", "medsettle.cli", *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout

    persons, bills = tmp_path / "persons.csv", tmp_path / "bills.jsonl"
    run("persons", "generate", "--count", "100", "--out", str(persons))
    run("bills", "generate", "--persons", str(persons), "--count", "30", "--out", str(bills))
    sent = [json.loads(line) for line in bills.read_text().splitlines()]
    assert any(not b["setl_time"].endswith("00:00:00") for b in sent)  # bills sent for a time of day
    answers = [
        json.loads(line)
        for line in run("settle", "--persons", str(persons), "--engine", engine, str(bills)).splitlines()
    ]
    settled = [
        (b["setl_time"], a["output"]["setlinfo"]["setl_time"])
        for b, a in zip(sent, answers, strict=True)
        if a["infcode"] == 0
    ]
    assert len(answers) == len(sent) and settled
    assert all(answered == own for own, answered in settled), settled


def test_the_centre_answers_the_time_at_which_it_settled(tmp_path, monkeypatch):
    """The centre settles with its own clock (``when``): the answer shows when it settled, not the time the
    counter wrote on the fee lines; a restart replays that time from the journal."""
    from medsettle.centre.institutions import default_institutions
    from medsettle.centre.service import Centre
    from medsettle.engine import Population, Settler
    from medsettle.policy import load_default_policy

    policy = load_default_policy()
    settled_at = dt.datetime(2026, 3, 2, 14, 15, 16, tzinfo=dt.timezone(dt.timedelta(hours=8)))

    class StoppedClock:  # the centre's clock, stopped at settled_at
        def now(self):
            return settled_at

        def time(self):
            return settled_at.timestamp()

        def monotonic(self):
            return 0.0

        def sleep(self, seconds):
            pass

    def new_centre(journal):
        population = Population.generate(policy, 200, seed=0)
        return Centre(
            Settler(policy, population, engine="core"), journal, default_institutions(policy), clock=StoppedClock()
        )

    code = policy.region("130100").catalogues[0].items[0].med_list_codg
    with SQLiteJournal(tmp_path / "centre.db") as journal:
        centre = new_centre(journal)
        sign_no = centre.handle(
            {"infno": "9001", "msgid": "SIGN", "fixmedins_code": "P13010000001", "input": {"signIn": {"opter_no": "1"}}}
        )["output"]["signinoutb"]["sign_no"]
        population = centre.settler.population
        psn = next(p for i, p in enumerate(population.psn_nos) if population.region_of(i) == "130100")
        answer = centre.handle(
            {
                "infno": "2102",
                "msgid": "M1",
                "fixmedins_code": "P13010000001",
                "sign_no": sign_no,
                "input": {
                    "data": {"psn_no": psn, **id_certificate(psn, 200), "med_type": "41", "acct_used_flag": "1"},
                    "feedetail": [
                        {
                            "feedetl_sn": "1",
                            "med_list_codg": code,
                            "pric": "3.00",
                            "cnt": "1",
                            "fee_ocur_time": "2026-03-02 09:58:00",
                        }
                    ],
                },
            }
        )
        assert answer["infcode"] == 0, answer
        info = answer["output"]["setlinfo"]
        assert info["setl_time"] == "2026-03-02 14:15:16"
    with SQLiteJournal(tmp_path / "centre.db") as journal:
        restarted = new_centre(journal)
        assert restarted.settler.records[info["setl_id"]].setlinfo()["setl_time"] == "2026-03-02 14:15:16"


@pytest.mark.parametrize("text", ["2026-03-02 09:30:00", "2026-03-02"])
def test_bill_model_keeps_what_the_text_says(text):
    model = parse_bill(a_bill(text))
    assert str(model.setl_time) == text
