"""`medsettle hardware up/down`, `medsettle card issue/read/fault/remove`: the stack as a background
process and the cards in it, driven as a user would from a shell."""

import json
import subprocess
import sys
import time

import pytest

from hw import DAEMON_DIR, registry, skip_without_pcsc

pytestmark = pytest.mark.timeout(120)


def medsettle(*args, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "medsettle.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, "MEDSETTLE_HARDWARE_DIR": str(DAEMON_DIR)},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"medsettle {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def stack_up():
    skip_without_pcsc()
    medsettle("hardware", "down")  # a stack left by an interrupted run
    up = medsettle("hardware", "up", "--counter", "Desk 1", "--counter", "Desk 2")
    assert "'Desk 1 00 00'" in up.stdout and "'Desk 1 00 01'" in up.stdout and "'Desk 2 00 01'" in up.stdout
    yield
    down = medsettle("hardware", "down")
    assert down.stdout.strip() == "stopped"
    assert not (DAEMON_DIR / "daemon.json").exists()


def test_issue_then_read_prints_the_persons_card(stack_up):
    issued = medsettle("card", "issue")
    first = registry().population.psn_nos[0]
    ident = registry().identities[first]
    assert ident.psn_name in issued.stdout and ident.certno in issued.stdout
    read = medsettle("card", "read", "--pin", "123456")
    card = json.loads(read.stdout)
    assert (card["certno"], card["name"], card["reader"]) == (ident.certno, ident.psn_name, "Desk 1 00 00")
    assert card["authenticated"] and card["pin_verified"]


def test_issue_a_named_person_and_trace(stack_up):
    psn_no = registry().population.psn_nos[5]
    medsettle("card", "issue", psn_no)
    read = medsettle("card", "read", "--trace")
    assert json.loads(read.stdout)["certno"] == registry().identities[psn_no].certno
    assert "[INTERNAL AUTHENTICATE]" in read.stderr


def test_clone_and_altered_cards_fail_with_a_clear_message(stack_up):
    medsettle("card", "issue", "--cloned")
    read = medsettle("card", "read", check=False)
    assert read.returncode == 1 and "not genuine" in read.stderr
    medsettle("card", "issue", "--alter-name", "李四")
    assert "not genuine" in medsettle("card", "read", check=False).stderr
    assert json.loads(medsettle("card", "read", "--no-auth").stdout)["name"] == "李四"


def test_fault_then_clear(stack_up):
    medsettle("card", "issue")
    medsettle("card", "fault", "garbage")
    read = medsettle("card", "read", check=False)
    assert read.returncode == 1 and "not an ISO 7816 response" in read.stderr
    medsettle("card", "fault")
    assert json.loads(medsettle("card", "read").stdout)["authenticated"]


def test_fault_none_clears_and_a_bad_fault_changes_nothing(stack_up):
    medsettle("card", "issue")
    medsettle("card", "fault", "garbage")
    assert medsettle("card", "fault", "none").stdout.strip() == "faults: none"
    assert json.loads(medsettle("card", "read").stdout)["authenticated"]
    medsettle("card", "fault", "truncated")
    assert medsettle("card", "fault", "mute", "slow_s=abc", check=False).returncode == 1
    assert "not an ISO 7816 response" in medsettle("card", "read", check=False).stderr  # still only truncated
    assert medsettle("card", "fault", "mute").stdout.strip() == "faults: mute"  # exactly these: truncated is off
    medsettle("card", "fault", "none")


def test_read_names_the_counter_whose_card_and_psam_to_use(stack_up):
    first, second = registry().population.psn_nos[1:3]
    medsettle("card", "issue", first)
    medsettle("card", "issue", second, "--counter", "Desk 2")
    read = json.loads(medsettle("card", "read", "--counter", "Desk 2", "--pin", "123456").stdout)
    assert (read["reader"], read["certno"]) == ("Desk 2 00 00", registry().identities[second].certno)
    assert read["authenticated"]  # through Desk 2's own PSAM slot
    assert json.loads(medsettle("card", "read").stdout)["certno"] == registry().identities[first].certno
    unknown = medsettle("card", "read", "--counter", "Desk 3", check=False)
    assert unknown.returncode == 1 and "'Desk 3'" in unknown.stderr and "Desk 1, Desk 2" in unknown.stderr


def test_unknown_person_and_no_card(stack_up):
    bad = medsettle("card", "issue", "P-NOBODY", check=False)
    assert bad.returncode == 1 and "psn_no" in bad.stderr
    medsettle("card", "remove")
    time.sleep(0.45)  # pcscd sees the removal at its next poll
    empty = medsettle("card", "read", "--wait", "0.6", check=False)
    assert empty.returncode == 1 and "no card" in empty.stderr


def test_commands_without_a_running_stack_say_how_to_start_it(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "medsettle.cli", "card", "issue", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "medsettle hardware up" in result.stderr


def test_a_card_issued_at_a_running_centre_is_personalised_from_its_records(stack_up, tmp_path):
    from centre_rig import EMPLOYEE, ServedCentre

    server = ServedCentre(tmp_path).start()
    try:
        psn = server.admin(EMPLOYEE)["psn_no"]
        no_card = medsettle("card", "issue", psn, "--centre", server.url, check=False)
        assert no_card.returncode == 1 and "issue one first" in no_card.stderr
        # A card only after paying in full (docs/agency.md): the first month's contribution, then the card.
        assert server.admin({"action": "contribute", "psn_no": psn, "month": "2026-01", "base": "6000.00"})["ok"]
        card = server.admin({"action": "issue_card", "psn_no": psn, "channel": "on_the_spot"})
        assert card["ok"], card
        medsettle("card", "issue", psn, "--centre", server.url)
        read = json.loads(medsettle("card", "read", "--pin", "123456").stdout)
        assert (read["certno"], read["name"], read["card_no"], read["card_sn"]) == (
            EMPLOYEE["certno"],
            EMPLOYEE["psn_name"],
            card["card_no"],
            card["card_sn"],
        )
        assert read["authenticated"]
    finally:
        server.stop()
