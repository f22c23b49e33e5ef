"""Several centre processes on one PostgreSQL database, each owning other insured regions (docs/architecture.md):
each settles its own regions' persons and refuses the others', a region cannot be owned twice, a sign-in
made at one process is honoured by the other, ids never collide, and each replays to the same state.
A SQLite journal has one centre process."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from centre_rig import id_certificate
from medsettle.centre.institutions import default_institutions
from medsettle.centre.messages import INPUTS, Envelope
from medsettle.centre.regions import ForeignRegion, OwnedRegions
from medsettle.centre.service import Centre, _parse
from medsettle.engine import Population, Settler
from medsettle.errors import InvalidInput
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


# -- a worker's first look at a request: another worker's, plainly? ---------------------------------------------

WORKER_POPULATION = Population.generate(POLICY, 300, seed=0)
OWN, OTHER = "130100", "330300"


def _someone(region: str) -> str:
    return next(p for i, p in enumerate(WORKER_POPULATION.psn_nos) if WORKER_POPULATION.region_of(i) == region)


_NAMES = st.sampled_from([None, "", OWN, OTHER, " 330300", 330300, "999999"])
_PEOPLE = st.sampled_from([None, "", _someone(OWN), _someone(OTHER), "nobody", 12])


@st.composite
def _requests(draw):
    """Requests of every transaction with regions and persons drawn anywhere the whole check may read them,
    each otherwise as the models want it or not (a missing field, a bad value)."""
    infno = draw(st.sampled_from(sorted(INPUTS)))
    request = {"infno": infno, "msgid": "M1", "fixmedins_code": PHARMACY, "sign_no": "S"}
    if (region := draw(_NAMES)) is not None:
        request["insuplc_admdvs"] = region
    if draw(st.booleans()):  # a valid sale, its person and parts the 2102 has not drawn
        data = {"psn_no": draw(_PEOPLE), "mdtrt_cert_type": "02", "mdtrt_cert_no": "X", "med_type": "41"}
        request["input"] = {
            "data": {k: v for k, v in data.items() if v is not None},
            "feedetail": [{"feedetl_sn": "1", "med_list_codg": CODE, "pric": "9.90", "cnt": "3"}],
        }
        request["infno"] = "2102"
        if draw(st.booleans()):
            request["input"]["mdtrtinfo"] = {"psn_no": draw(_PEOPLE)}
        return request
    parts = {}
    for part in ("data", "mdtrtinfo", "dscginfo"):
        if draw(st.booleans()):
            fields = {"psn_no": draw(_PEOPLE), "setl_optins": draw(_NAMES)} if part == "data" else {}
            fields.setdefault("psn_no", draw(_PEOPLE))
            parts[part] = {k: v for k, v in fields.items() if v is not None}
    if draw(st.booleans()):
        parts["feedetail"] = [{"feedetl_sn": str(n), "psn_no": draw(_PEOPLE)} for n in range(draw(st.integers(0, 3)))]
    request["input"] = parts
    return request


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requests())
def test_a_request_plainly_of_another_worker_is_one_the_whole_check_refuses_for_that_region(request):
    """OwnedRegions.foreign_named (a worker hands such a request on before parsing it) names a region only when
    the models' check (check_message) refuses the request for that same region, or refuses it earlier as
    invalid (the owner then does the same)."""
    regions = OwnedRegions(WORKER_POPULATION, [r.admdvs for r in POLICY.regions], [OWN])
    foreign = regions.foreign_named(request, INPUTS[request["infno"]])
    try:
        env = _parse(Envelope, request, "")
        payload = _parse(INPUTS[env.infno], env.input, "input.")
    except InvalidInput:
        return  # refused before any region is looked at, here and at the owner alike
    try:
        regions.check_message(env, payload)
    except ForeignRegion as exc:
        assert foreign in (None, exc.region)
        return
    except InvalidInput:  # an unknown person: refused before being handed anywhere
        assert foreign is None
        return
    assert foreign is None


def test_a_worker_sees_a_sale_of_another_workers_person_at_once():
    regions = OwnedRegions(WORKER_POPULATION, [r.admdvs for r in POLICY.regions], [OWN])
    theirs, mine = sale("S", _someone(OTHER), "M1"), sale("S", _someone(OWN), "M2")
    assert regions.foreign_named(theirs, INPUTS["2102"]) == OTHER
    assert regions.foreign_named(mine, INPUTS["2102"]) is None
    assert regions.foreign_named(sale("S", _someone(OWN), "M3", insuplc=OTHER), INPUTS["2102"]) is None  # mixed
    bogus = {**mine, "input": {**mine["input"], "mdtrtinfo": {"psn_no": _someone(OTHER)}}}  # no such part in 2102
    assert regions.foreign_named(bogus, INPUTS["2102"]) is None
    only_bogus = {**theirs, "input": {"data": {}, "mdtrtinfo": {"psn_no": _someone(OTHER)}}}
    assert regions.foreign_named(only_bogus, INPUTS["2102"]) is None  # a part the check never reads
