"""The paperwork the seeds name, presented with each procedure, followed end to end against a served centre over
HTTP (the admin API) and through ``medsettle persons``, on both ledgers (SQLite and PostgreSQL), with a restart:

- seed 004: a unit applying for its employees' cards in bulk brings its letter of introduction and the ID of
  the person who applies; a delegate brings their own ID and the holder's (both with a right check digit);
- seed 000: a change of unit is made on the new unit's certificate, the person's card and ID card;
- seed 001: a transfer out is made on the new region's letter of acceptance (which the certificate carries);
- what is missing or invalid is refused naming the field and changes nothing; what was presented is kept with
  the event, shown by ``paperwork``, and replayed after a restart.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from centre_rig import ServedCentre, certno
from test_agency_enrolment import OTHER, PSN, REGION, World, registry, write_persons

pytestmark = pytest.mark.timeout(240)

OPERATOR = certno(REGION, "19750505", "021")  # the unit's clerk who applies
DELEGATE = certno(REGION, "19600101", "051")
WRONG_DIGIT = DELEGATE[:17] + ("0" if DELEGATE[17] != "0" else "1")


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


def lost(w: World, name: str) -> None:
    """The person's card reported lost, so a new one may be applied for."""
    w.ok({"action": "card", "card_no": w.card(name), "card_action": "lost"})


def test_each_procedure_asks_for_its_papers_and_keeps_them(world):
    w = world
    mover, emigrant = PSN["mover"], PSN["emigrant"]
    # seed 000: a change of unit, on the new unit's certificate, the card and the ID card
    change = {"action": "change_unit", "psn_no": mover, "emp_no": "U130100808", "emp_name": "新厂", "certificate": "C1"}
    mine = {"card_no": w.card("mover"), "certno": w.certno("mover")}
    w.refused({**change, "certno": mine["certno"]}, "card_no", certno=mine["certno"])
    w.refused({**change, "card_no": mine["card_no"]}, "certno", certno=mine["certno"])
    w.refused({**change, **mine, "card_no": w.card("worker")}, "card_no", "not the usable card")
    w.refused({**change, **mine, "certno": w.certno("worker")}, "certno", "not that of")
    w.refused({**change, **mine, "certno": mine["certno"][:17] + "Y"}, "certno")
    moved = w.ok({**change, **mine})
    assert moved["presented"] == {"certificate": "C1", **mine}
    # seed 004: in bulk, on the unit's letter of introduction and the applying clerk's ID
    lost(w, "mover")  # the card of the old unit: the new unit applies for the new one
    unit = "U130100808"
    bulk = {"action": "issue_cards_employer", "emp_no": unit, "psn_nos": [mover]}
    w.refused({**bulk, "operator_certno": OPERATOR}, "letter_no", certno=w.certno("mover"))
    w.refused({**bulk, "letter_no": "UL-7"}, "operator_certno", certno=w.certno("mover"))
    w.refused({**bulk, "letter_no": "UL-7", "operator_certno": WRONG_DIGIT}, "operator_certno", "check digit")
    w.refused({**bulk, "letter_no": "", "operator_certno": OPERATOR}, "letter_no")
    cards = w.ok({**bulk, "letter_no": "UL-7", "operator_certno": OPERATOR})
    assert cards["presented"] == {"emp_no": unit, "letter_no": "UL-7", "operator_certno": OPERATOR}
    # seed 004: a delegate, with their own ID and the holder's
    lost(w, "emigrant")
    by_delegate = {"action": "issue_card", "psn_no": emigrant, "channel": "delegate"}
    holder = w.certno("emigrant")
    w.refused({**by_delegate, "delegate_certno": DELEGATE}, "certno", "holder's ID")
    w.refused({**by_delegate, "certno": holder}, "delegate_certno")
    w.refused({**by_delegate, "delegate_certno": WRONG_DIGIT, "certno": holder}, "delegate_certno", "check digit")
    w.refused({**by_delegate, "delegate_certno": DELEGATE, "certno": w.certno("mover")}, "certno", "not that of")
    w.refused({**by_delegate, "delegate_certno": holder, "certno": holder}, "delegate_certno", "other than")
    card = w.ok({**by_delegate, "delegate_certno": DELEGATE, "certno": holder})
    assert card["presented"] == {"certno": holder, "delegate_certno": DELEGATE}
    # seed 001: a transfer out, on the new region's letter of acceptance
    out = {"action": "transfer_out", "psn_no": PSN["between"], "to_admdvs": OTHER}
    w.refused(out, "acceptance_letter", certno=w.certno("between"))
    w.refused({**out, "acceptance_letter": "x" * 61}, "acceptance_letter")
    cert = w.ok({**out, "acceptance_letter": "JS-330300-0042"})
    assert cert["acceptance_letter"] == "JS-330300-0042"
    # what was presented, kept with the events and replayed
    papers = {name: w.ok({"action": "paperwork", "psn_no": PSN[name]}) for name in ("emigrant", "mover", "between")}
    assert [p["procedure"] for p in papers["mover"]["presented"]] == ["change_unit", "issue_card:employer"]
    assert papers["emigrant"]["presented"] == [
        {"procedure": "issue_card:delegate", "certno": holder, "delegate_certno": DELEGATE}
    ]
    assert papers["mover"]["presented"][0] == {"procedure": "change_unit", "certificate": "C1", **mine}
    assert papers["between"]["presented"] == [
        {"procedure": "transfer_out", "acceptance_letter": "JS-330300-0042", "to_admdvs": OTHER}
    ]
    w.refused({"action": "paperwork", "psn_no": "999"}, "psn_no")
    w.restart()
    for name, seen in papers.items():
        assert w.ok({"action": "paperwork", "psn_no": PSN[name]}) == seen
    accepted = w.ok(
        {"action": "transfer_in", "certificate_no": cert["certificate_no"], "emp_no": "U3", "emp_name": "厂"}
    )
    assert accepted["psn_no"] == PSN["between"]


def medsettle(server: ServedCentre, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medsettle.cli", "persons", *args, "--centre", server.url],
        capture_output=True,
        text=True,
        timeout=60,
        env=server.client_env(),
    )


def test_the_persons_commands_take_the_papers(tmp_path):
    persons = str(write_persons(tmp_path / "persons.csv"))
    ids = registry(persons).identities
    with ServedCentre(tmp_path / "centre", args=["--persons", persons]) as server:
        mover = PSN["mover"]
        card = registry(persons).cards_of[mover][0]
        unit = ["--emp-no", "U9", "--emp-name", "厂", "--certificate", "C9", "--card-no", card]
        missing = medsettle(server, "change-unit", mover, *unit)
        assert missing.returncode != 0 and "--certno" in missing.stderr
        done = medsettle(server, "change-unit", mover, *unit, "--certno", ids[mover].certno)
        assert done.returncode == 0, done.stderr
        out = medsettle(server, "transfer-out", PSN["between"], "--to", OTHER, "--acceptance-letter", "JS-1")
        assert out.returncode == 0 and json.loads(out.stdout)["acceptance_letter"] == "JS-1", out.stderr
        shown = medsettle(server, "paperwork", mover)
        assert shown.returncode == 0 and json.loads(shown.stdout)["presented"][0]["card_no"] == card, shown.stderr
        for command in ("employer-cards", "issue-card"):
            helped = subprocess.run(
                [sys.executable, "-m", "medsettle.cli", "persons", command, "--help"], capture_output=True, text=True
            )
            assert ("--letter" if command == "employer-cards" else "--certno") in helped.stdout
