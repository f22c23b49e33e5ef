"""A newcomer at the counter (`medsettle terminal`), against a real centre process on 127.0.0.1: the shell
survives every bad line with one Error line; a refusal by the centre ends the sale refused (no voucher,
nothing owed, and a restart leaves it so); malformed items and unknown ids are one Error line naming the
value and change nothing; --help never needs an option and never writes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from decimal import Decimal

import pytest

from centre_rig import PHARMACY
from medsettle.centre.registry import id_check_digit
from medsettle.errors import InvalidInput, UnknownItem
from medsettle.terminal import Identity, Refused
from terminal_rig import (
    ITEM_ARGS,
    ITEMS,
    SAF_PHARMACY,
    balance_of,
    by_certno,
    centre_records,
    dead_url,
    make_counter,
    own_institution,
    patient_certno,
    terminal_command,
)

pytestmark = pytest.mark.timeout(180)


def _unknown_certno() -> str:
    """A well-formed ID number (right check digit) that nobody in the centre's registry has."""
    first17 = "13010019000101999"
    return first17 + id_check_digit(first17)


UNKNOWN_CERTNO = _unknown_certno()
PATIENT = "<the patient's certno>"  # in a parametrize list: patient_certno() is looked up by the test, not at import


@pytest.fixture()
def code():
    """This test's own copy of the online pharmacy."""
    return own_institution(PHARMACY)


def run_terminal(url, journal, *args, stdin=None, cwd=None, code=PHARMACY):
    return subprocess.run(
        [*terminal_command(url, journal, code), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error: ")]


def assert_one_clean_error(result, *names):
    """Exit non-zero, exactly one 'Error: ' line naming every one of ``names``, no traceback."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    for name in names:
        assert name in errors[0], (name, errors[0])


def journal_rows(journal, table: str, where: str = "") -> list[tuple]:
    conn = sqlite3.connect(journal)
    try:
        return conn.execute(f"SELECT * FROM {table} {where}").fetchall()
    finally:
        conn.close()


# -- the shell survives every bad line ---------------------------------------------------------------


def bad_lines() -> list[tuple[str, str]]:
    """(line, what its Error line must name) for every mistake the shell must survive."""
    certno = patient_certno()
    return [
        (f"sell --certno {certno} {ITEMS[0]['med_list_codg']}:abc:2", "'abc'"),  # was decimal.InvalidOperation
        ('sell "unterminated', "quotation"),  # was shlex's ValueError
        ("bogus", "'bogus'"),
        ("sell --bogus X:1:1", "--bogus"),
        ("sell", "ITEMS"),
        (f"sell --certno {certno} {ITEMS[0]['med_list_codg']}:12.50", "CODE:PRICE:COUNT"),
        (f"sell --certno {certno} {ITEMS[0]['med_list_codg']}:12.50:0", "'0'"),
        (f"sell --certno {certno} {ITEMS[0]['med_list_codg']}:1.00001:1", "1.00001"),
        ("sell --certno 12345 X:1:1", "'12345'"),
        (f"sell --certno {certno[:17]}{'0' if certno[17] != '0' else '1'} X:1:1", "check digit"),
        (f"sell --certno {UNKNOWN_CERTNO} {ITEM_ARGS[0]}", "UNKNOWN_PERSON"),
        (f"sell --certno {certno} NOPE:12.50:2", "'NOPE'"),
        ("cancel SALE99999999", "'SALE99999999'"),
        ("resettle V-NOPE", "'V-NOPE'"),
        ("stay-fees STAY-NOPE X:1:1", "'STAY-NOPE'"),
        ("settle-stay STAY-NOPE", "'STAY-NOPE'"),
        ("discharge STAY-NOPE", "'STAY-NOPE'"),
        ("reconcile --day 2026-13-01", "'2026-13-01'"),
        ("admit", "--certno"),
        ("sell --pin 123456 --certno 12345 X:1:1", "--card"),
    ]


def test_the_shell_survives_every_bad_line_and_says_what_was_wrong(centre, code, tmp_path):
    good_sale = f"sell --certno {patient_certno()} {ITEM_ARGS[0]}"
    bad = bad_lines()
    lines = ["signin"] + [line for line, _ in bad] + [good_sale, "vouchers", "quit"]
    result = run_terminal(centre.url, tmp_path / "t.db", stdin="\n".join(lines) + "\n", code=code)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == len(bad), "\n".join(errors)  # one line each, nothing else an error
    for error, (line, name) in zip(errors, bad, strict=True):
        assert name in error, (line, error)
    assert '"sign_no"' in result.stdout  # before the bad lines
    assert '"kind": "sale"' in result.stdout  # after them: the shell went on
    assert result.stdout.replace("counter> ", "").rstrip().endswith("[]")  # no voucher from any bad line


# -- a refusal is a refusal ------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["core", "reference"])
@pytest.mark.parametrize(
    "identify, item, refusal",
    [
        (["--certno", UNKNOWN_CERTNO], ITEM_ARGS[0], "UNKNOWN_PERSON"),  # refused at 1101
        (["--qr", "NO-SUCH-TOKEN"], ITEM_ARGS[0], "QR_UNKNOWN"),  # refused at 1101
        (["--certno", PATIENT], "NOPE:12.50:2", "UNKNOWN_ITEM"),  # refused at the pre-settle (2101)
    ],
)
def test_a_sale_the_centre_refuses_ends_refused_without_a_voucher(
    centres, code, tmp_path, engine, identify, item, refusal
):
    identify = [patient_certno() if arg == PATIENT else arg for arg in identify]
    server = centres(engine)
    journal = tmp_path / "t.db"
    signed_in = make_counter(server.url, journal, code)  # the CLI's signin is the shell test's
    signed_in.sign_in()
    signed_in.journal.close()  # the CLI is another process: a journal is held by one at a time
    sign_no = server.sign_in(code)
    before = balance_of(server, sign_no, code)
    refused = run_terminal(server.url, journal, "sell", *identify, item, code=code)
    assert_one_clean_error(refused, refusal, "no voucher")
    printed = json.loads(refused.stdout)
    assert printed["state"] == "refused" and printed["err_msg"].startswith(refusal)
    # The next command resumes first: the refused sale must not become a voucher then either
    assert json.loads(run_terminal(server.url, journal, "vouchers", code=code).stdout) == []
    resumed = json.loads(run_terminal(server.url, journal, "resume", code=code).stdout)
    assert resumed["vouchers_made"] == 0
    counter = make_counter(server.url, journal, code)
    assert [(sale, state) for sale, state, _ in counter.journal.sales()] == [(printed["sale"], "refused")]
    assert counter.pending_vouchers() == []
    assert centre_records(server, sign_no, code) == []  # nothing settled, nothing owed
    assert balance_of(server, sign_no, code) == before
    counter.journal.close()  # the CLI is another process: a journal is held by one at a time
    cancel = run_terminal(server.url, journal, "cancel", printed["sale"], code=code)
    assert_one_clean_error(cancel, printed["sale"], "refused")


def test_a_sale_before_signing_in_is_refused_and_says_how_to_sign_in(centre, code, tmp_path):
    journal = tmp_path / "t.db"
    refused = run_terminal(centre.url, journal, "sell", "--certno", patient_certno(), ITEM_ARGS[0], code=code)
    assert_one_clean_error(refused, "sign_no", f"medsettle terminal -i {code} signin", "no voucher")
    assert json.loads(run_terminal(centre.url, journal, "vouchers", code=code).stdout) == []
    assert run_terminal(centre.url, journal, "signin", code=code).returncode == 0
    sold = run_terminal(centre.url, journal, "sell", "--certno", patient_certno(), ITEM_ARGS[0], code=code)
    assert sold.returncode == 0 and json.loads(sold.stdout)["kind"] == "sale"


def test_a_refusal_answered_after_a_restart_stays_a_refusal(centre, code, tmp_path):
    """The terminal died while its 1101 was unanswered: the restart resends it, hears the refusal, and
    ends the sale refused instead of taking it for an interrupted sale (a voucher)."""
    counter = make_counter(centre.url, tmp_path / "t.db", code)
    counter.sign_in()

    def die(body):
        raise KeyboardInterrupt  # the terminal stops with the 1101 written and not yet sent

    counter.client.post = die
    with pytest.raises(KeyboardInterrupt):
        counter.sell(Identity("02", UNKNOWN_CERTNO), ITEMS)
    counter.journal.close()
    restarted = make_counter(centre.url, tmp_path / "t.db", code)
    done = restarted.resume()
    assert done["answered"] == 1 and done["vouchers_made"] == 0
    [(_sale, state, data)] = restarted.journal.sales()
    assert state == "refused" and data["err_msg"].startswith("UNKNOWN_PERSON")
    assert restarted.pending_vouchers() == []
    assert restarted.resume()["vouchers_made"] == 0  # and on every restart after


def test_the_api_raises_refused_naming_the_sale(centre, code, tmp_path):
    counter = make_counter(centre.url, tmp_path / "t.db", code)
    counter.sign_in()
    with pytest.raises(Refused) as caught:
        counter.sell(by_certno(), [{"med_list_codg": "NOPE", "pric": "1.00", "cnt": "1"}])
    assert caught.value.refusal == "UNKNOWN_ITEM" and caught.value.sale
    assert counter.journal.sale(caught.value.sale)[0] == "refused"
    with pytest.raises(Refused) as caught:
        counter.sell(Identity("02", UNKNOWN_CERTNO), ITEMS)
    assert caught.value.refusal == "UNKNOWN_PERSON"
    assert counter.resume()["vouchers_made"] == 0 and counter.pending_vouchers() == []


def test_a_stay_whose_patient_is_refused_is_not_admitted(centre, tmp_path):
    from centre_rig import HOSPITAL

    hospital = own_institution(HOSPITAL)
    journal = tmp_path / "h.db"
    assert run_terminal(centre.url, journal, "signin", code=hospital).returncode == 0
    refused = run_terminal(centre.url, journal, "admit", "--certno", UNKNOWN_CERTNO, code=hospital)
    assert_one_clean_error(refused, "UNKNOWN_PERSON")
    stay = make_counter(centre.url, journal, code=hospital).journal.sales()[0][0]
    fees = run_terminal(centre.url, journal, "stay-fees", stay, ITEM_ARGS[0], code=hospital)
    assert_one_clean_error(fees, stay, "refused")


def test_an_unknown_item_at_a_store_and_forward_counter_is_refused_before_anything_is_sent(centre, tmp_path):
    """The counter holds the catalogue it cached at sign-in: with the centre away, an unknown code is
    refused there and then (it used to become a voucher 'does not settle with the cached rules')."""
    counter = make_counter(centre.url, tmp_path / "t.db", code=own_institution(SAF_PHARMACY))
    counter.sign_in()
    assert counter.sell(by_certno(), ITEMS).kind == "sale"  # the counter knows the person now
    counter.client.url = dead_url()  # the centre is away
    outbox_before = journal_rows(tmp_path / "t.db", "outbox")
    sales_before = counter.journal.sales()
    with pytest.raises(UnknownItem, match="'NOPE'"):
        counter.sell(by_certno(), [ITEMS[0], {"med_list_codg": "NOPE", "pric": "1.00", "cnt": "1"}])
    assert journal_rows(tmp_path / "t.db", "outbox") == outbox_before  # nothing written, nothing sent
    assert counter.journal.sales() == sales_before
    assert counter.pending_vouchers() == [] and counter.journal.saf_entries() == []
    assert counter.sell(by_certno(), ITEMS).kind == "provisional"  # a good sale still takes its failure path


@pytest.mark.parametrize(
    "item, name",
    [
        ({"med_list_codg": "X", "pric": "abc", "cnt": "1"}, "'abc'"),
        ({"med_list_codg": "X", "pric": "1.00", "cnt": "0"}, "'0'"),
        ({"med_list_codg": "X", "pric": "-1", "cnt": "1"}, "'-1'"),
        ({"med_list_codg": "X", "pric": "1.00001", "cnt": "1"}, "1.00001"),
        ({"med_list_codg": "X", "pric": "1", "cnt": "10001"}, "'10001'"),
        ({"med_list_codg": "", "pric": "1", "cnt": "1"}, "code"),
    ],
)
def test_malformed_items_are_refused_before_the_journal_is_touched(tmp_path, item, name):
    counter = make_counter("http://127.0.0.1:9/", tmp_path / "t.db")
    with pytest.raises(InvalidInput, match=name.replace(".", r"\.")):
        counter.sell(by_certno(), [item])
    with pytest.raises(InvalidInput, match=name.replace(".", r"\.")):
        counter.visit(by_certno(), [item])
    assert counter.journal.sales() == [] and journal_rows(tmp_path / "t.db", "outbox") == []


def test_a_one_shot_mistake_writes_nothing(tmp_path):
    """A malformed item or ID number is refused before the journal is even created."""
    journal = tmp_path / "never.db"
    for args, name in [
        (["sell", "X:abc:1"], "'abc'"),
        (["sell", "X:1"], "'X:1'"),
        (["sell", "--certno", "123", "X:1:1"], "'123'"),
        (["admit"], "--certno"),
        (["visit", "X:1:0"], "'0'"),
        (["stay-fees", "STAY1", "X:-1:1"], "'-1'"),
        (["reconcile", "--day", "March"], "'March'"),
    ]:
        result = run_terminal("http://127.0.0.1:9/", journal, *args)
        assert_one_clean_error(result, name)
        assert not journal.exists(), args


@pytest.mark.parametrize("url", ["localhost:8901", "ftp://127.0.0.1/", "http://127.0.0.1:99999/"])
def test_a_mistyped_centre_url_is_one_error_line_before_anything_is_written(tmp_path, url):
    journal = tmp_path / "never.db"
    assert_one_clean_error(run_terminal(url, journal, "signin"), repr(url))
    assert not journal.exists()


def test_a_missing_institution_is_one_error_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "medsettle.cli", "terminal", "signin"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert_one_clean_error(result, "--institution")
    assert os.listdir(tmp_path) == []


# -- help needs no option and writes nothing -------------------------------------------------------------


def _subcommands() -> list[str]:
    from medsettle.cli.terminal import terminal

    return sorted(terminal.commands)


def test_help_never_needs_options_and_never_writes(tmp_path):
    """`terminal --help` and every subcommand's --help, with and without -i: exit 0, the help shown,
    nothing created in the working directory (no medsettle-data, no journal)."""
    from click.testing import CliRunner

    from medsettle.cli import main

    commands = _subcommands()
    assert {"sell", "visit", "admit", "cancel", "resettle", "shell"} <= set(commands)
    runner = CliRunner()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        for prefix in ([], ["-i", PHARMACY]):
            for command in [[]] + [[c] for c in commands]:
                result = runner.invoke(main, ["terminal", *prefix, *command, "--help"], catch_exceptions=False)
                assert result.exit_code == 0, (prefix, command, result.output)
                assert "Usage:" in result.output and (not command or command[0] in result.output)
                assert os.listdir(cwd) == [], (prefix, command, os.listdir(cwd))
    finally:
        os.chdir(old)


def test_sell_help_without_institution_in_a_fresh_directory(tmp_path):
    """The two cases seen, as a newcomer runs them (a real process in a fresh directory)."""
    for args in (["terminal", "sell", "--help"], ["terminal", "-i", "X", "sell", "--help"]):
        result = subprocess.run(
            [sys.executable, "-m", "medsettle.cli", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        assert "CODE:PRICE:COUNT" in result.stdout and result.stderr == ""
        assert os.listdir(tmp_path) == []


def test_the_money_stays_right_after_the_mistakes(centre, code, tmp_path):
    """After refusals and typos, a good sale still settles once, and the day reconciles clean."""
    journal = tmp_path / "t.db"
    run_terminal(centre.url, journal, "signin", code=code)
    for args in (
        ["sell", "--certno", UNKNOWN_CERTNO, ITEM_ARGS[0]],
        ["sell", "--certno", patient_certno(), "NOPE:1:1"],
        ["sell", "X:abc:1"],
    ):
        assert run_terminal(centre.url, journal, *args, code=code).returncode != 0
    sale = json.loads(
        run_terminal(centre.url, journal, "sell", "--certno", patient_certno(), *ITEM_ARGS, code=code).stdout
    )
    assert sale["kind"] == "sale" and Decimal(sale["medfee"]) == Decimal("55.00")
    report = json.loads(run_terminal(centre.url, journal, "reconcile", "--detail", code=code).stdout)
    assert report["clean"], report
    assert [r["setl_id"] for r in centre_records(centre, centre.sign_in(code), code)] == [sale["setl_id"]]


def test_a_known_qr_still_works(centre, code, tmp_path):
    """The refusal handling leaves the good path alone: a QR e-voucher issued by the centre settles."""
    counter = make_counter(centre.url, tmp_path / "t.db", code)
    counter.sign_in()
    psn_no = counter.person_info(by_certno())["baseinfo"]["psn_no"]
    token = centre.admin({"action": "issue_qr", "psn_no": psn_no})
    counter.journal.close()  # the CLI is another process: a journal is held by one at a time
    result = run_terminal(
        centre.url, tmp_path / "t.db", "sell", "--qr", token["mdtrt_cert_no"], ITEM_ARGS[0], code=code
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["kind"] == "sale"
