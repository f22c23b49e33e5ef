"""The agency's cards as the seeds describe them (issue 16), followed end to end against a served centre over
HTTP (the admin API, and a counter's sale where it proves the point):

- bank activation activates only a card that is issued, ready and not yet active: never a lost or cancelled
  card, a dead person's card, or a card still being made; a person has one usable card;
- a card only after paying (seed 000, 'Procedures'): no card for a person with no contribution;
- ``card read --reader 'Pharm 00 00'`` without ``--psam`` takes slot 01 of the same reader (the pcscd part
  is skipped without pcscd and is not run alongside other helpers' stacks);
- every refusal names its field and changes nothing (the journal, the card's status).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import pytest

from centre_rig import CODES, EMPLOYEE, ServedCentre, card_of, certno, default_population, default_registry
from centre_rig import admin_ok as ok
from centre_rig import admin_refused as refused
from medsettle.cli.hardware import psam_of

from hw import DAEMON_DIR, skip_without_pcsc

pytestmark = pytest.mark.timeout(180)


@functools.cache
def persons(region: str = "130100", insutype: str = "310", n: int = 6) -> list[str]:
    """The first ``n`` employees (in service) of the default population insured in ``region``."""
    population, found = default_population(), []
    for i in range(len(population)):
        d = population.describe(i)
        if d["insuplc_admdvs"] == region and d["insutype"] == insutype and d["psn_type"] == "11":
            found.append(str(d["psn_no"]))
            if len(found) == n:
                break
    return found


def activate(card_no: str) -> dict:
    return {"action": "card", "card_no": card_no, "card_action": "activate"}


def statuses(server: ServedCentre, sign_no: str, psn_no: str) -> dict:
    """The person's cards and their status as a counter's 1101 shows them."""
    certno = default_registry().identities[psn_no].certno
    answer, _ = server.call("1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": certno}}, sign_no=sign_no)
    assert answer["infcode"] == 0, answer
    return {c["card_no"]: c["status"] for c in answer["output"]["cardinfo"]}


def card_sale(server: ServedCentre, sign_no: str, psn_no: str, card_no: str, card_sn: str = "") -> dict:
    """A 2102 by the card (its card_sn: the default registry's, or ``card_sn`` for a replacement)."""
    answer, _ = server.call(
        "2102",
        {
            "data": {
                "psn_no": psn_no,
                "mdtrt_cert_type": "03",
                "mdtrt_cert_no": card_no,
                "card_sn": card_sn or default_registry().cards[card_no].card_sn,
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
    return answer


def test_a_lost_card_stays_lost_and_its_replacement_is_the_one_usable_card(served_centre):
    sign_no = served_centre.sign_in()
    psn = persons()[0]
    old = card_of(psn)
    lost = ok(served_centre.admin({"action": "card", "card_no": old, "card_action": "lost", "replace": True}))
    new = lost["replacement"]["card_no"]
    before = statuses(served_centre, sign_no, psn)
    assert before == {old: "lost", new: "issued"}
    refused(served_centre, activate(old), "card_no", "lost")
    refused(served_centre, {"action": "card", "card_no": old, "card_action": "lost", "replace": True}, "card_no")
    assert statuses(served_centre, sign_no, psn) == before  # no second replacement, the old card still lost
    ok(served_centre.admin(activate(new)))
    refused(served_centre, activate(new), "card_no", "already active")
    assert "CARD_LOST" in card_sale(served_centre, sign_no, psn, old)["err_msg"]
    assert card_sale(served_centre, sign_no, psn, new, lost["replacement"]["card_sn"])["infcode"] == 0
    assert statuses(served_centre, sign_no, psn) == {old: "lost", new: "active"}


def test_a_cancelled_card_and_a_dead_persons_card_are_not_activated(served_centre):
    sign_no = served_centre.sign_in()
    cancelled_holder, dead = persons()[1], persons()[2]
    card = card_of(cancelled_holder)
    ok(served_centre.admin({"action": "card", "card_no": card, "card_action": "cancel"}))
    refused(served_centre, activate(card), "card_no", "cancelled")
    assert statuses(served_centre, sign_no, cancelled_holder) == {card: "cancelled"}
    lost = ok(served_centre.admin({"action": "card", "card_no": card_of(dead), "card_action": "lost", "replace": True}))
    replacement = lost["replacement"]["card_no"]  # issued, not yet activated, when its holder dies
    ok(served_centre.admin({"action": "cancel_person", "psn_no": dead, "reason": "death"}))
    refused(served_centre, activate(replacement), "card_no", "cancelled")
    assert statuses(served_centre, sign_no, dead)[replacement] == "cancelled"
    sale = card_sale(served_centre, sign_no, dead, replacement, lost["replacement"]["card_sn"])
    assert "CARD_CANCELLED" in sale["err_msg"]


def test_a_card_still_being_made_is_not_activated(served_centre):
    sign_no = served_centre.sign_in()
    psn = persons()[3]
    ok(served_centre.admin({"action": "card", "card_no": card_of(psn), "card_action": "lost"}))
    made = ok(served_centre.admin({"action": "issue_card", "psn_no": psn, "channel": "service_point"}))
    assert made["ready_on"]  # three working days
    refused(served_centre, activate(made["card_no"]), "card_no", "being made", made["ready_on"])
    assert statuses(served_centre, sign_no, psn)[made["card_no"]] == "issued"
    again = refused(served_centre, {"action": "issue_card", "psn_no": psn, "channel": "on_the_spot"}, "psn_no")
    assert "already holds card" in again["error"]  # one usable card


def test_a_card_only_after_paying(served_centre):
    psn = ok(served_centre.admin(EMPLOYEE))["psn_no"]
    refused(
        served_centre, {"action": "issue_card", "psn_no": psn, "channel": "on_the_spot"}, "psn_no", "no contribution"
    )
    refused(
        served_centre,
        {
            "action": "issue_cards_employer",
            "emp_no": EMPLOYEE["emp_no"],
            "psn_nos": [psn],
            "letter_no": "UL-1",
            "operator_certno": certno("130100", "19700101", "013"),
        },
        "psn_nos[0]",
        "no contribution",
    )
    ok(served_centre.admin({"action": "contribute", "psn_no": psn, "month": "2026-01", "base": "6000.00"}))
    card = ok(served_centre.admin({"action": "issue_card", "psn_no": psn, "channel": "on_the_spot"}))
    assert card["status"] == "issued" and card["ready_on"] == ""


def test_card_read_takes_the_psam_in_slot_01_of_the_named_reader():
    assert psam_of("Pharm 00 00") == "Pharm 00 01"
    assert psam_of("ACS ACR38U 00 00") == "ACS ACR38U 00 01"
    assert psam_of("Odd reader") is None  # no slot to derive: authenticating says there is no PSAM


def test_card_read_with_reader_and_no_psam_authenticates():
    """Needs pcscd (the virtual stack): run it alone, as the other card/reader tests are."""
    skip_without_pcsc()

    def medsettle(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "MEDSETTLE_HARDWARE_DIR": str(DAEMON_DIR)}
        return subprocess.run(
            [sys.executable, "-m", "medsettle.cli", *args], capture_output=True, text=True, timeout=60, env=env
        )

    medsettle("hardware", "down")
    assert medsettle("hardware", "up", "--counter", "Pharm").returncode == 0
    try:
        assert medsettle("card", "issue").returncode == 0
        read = medsettle("card", "read", "--reader", "Pharm 00 00")
        assert read.returncode == 0, read.stderr
        card = json.loads(read.stdout)
        assert card["reader"] == "Pharm 00 00" and card["authenticated"]
    finally:
        medsettle("hardware", "down")


def test_a_restart_replays_the_same_cards(tmp_path):
    server = ServedCentre(tmp_path / "centre").start()
    psn, dead = persons()[4], persons()[5]
    try:
        sign_no = server.sign_in()
        old = card_of(psn)
        lost = ok(server.admin({"action": "card", "card_no": old, "card_action": "lost", "replace": True}))
        new = lost["replacement"]["card_no"]
        ok(server.admin(activate(new)))
        ok(server.admin({"action": "cancel_person", "psn_no": dead, "reason": "death"}))
        seen = {p: statuses(server, sign_no, p) for p in (psn, dead)}
    finally:
        server.stop()
    server.start()
    try:
        sign_no = server.sign_in()
        assert {p: statuses(server, sign_no, p) for p in (psn, dead)} == seen
        refused(server, activate(old), "card_no", "lost")  # the replayed state refuses what the live one did
        refused(server, activate(new), "card_no", "already active")
        refused(server, activate(card_of(dead)), "card_no", "cancelled")
        assert card_sale(server, sign_no, psn, new, lost["replacement"]["card_sn"])["infcode"] == 0
    finally:
        server.stop()
