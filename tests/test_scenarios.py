"""`medsettle scenario run` as a scenario tester runs it (docs/scenarios.md): every example of
examples/scenarios/ passes in the deterministic world with a JUnit report CI can read; a malformed file is one
Error line naming the file, the step and the field (exit 2, nothing run); a scenario whose expectation is
wrong fails with exit 1 naming the step; --live runs examples against a served centre, on the real clock moved
by the steps that move the clock.

The examples run through the command in a subprocess, all in one (a world each, about half a second); the bad
files and the wrong expectation through the same command in this process (click's runner), which
keeps the file under a minute on a busy machine.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from medsettle.cli import main as medsettle_main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples" / "scenarios").glob("*.toml"))
TIMEOUT = 120  # seconds: a bound, not an expectation

pytestmark = pytest.mark.timeout(180)

HEAD = """
[scenario]
name = "a bad file"
description = "for the tests"
institutions = ["P13010000001"]
"""


def medsettle(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "medsettle", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def finished(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out, err


def test_every_example_passes_and_the_junit_report_is_parseable(tmp_path):
    assert len(EXAMPLES) >= 10, EXAMPLES
    report = tmp_path / "scenarios.xml"
    examples = str(ROOT / "examples" / "scenarios")  # a directory: every *.toml in it, in name order
    code, out, err = finished(medsettle("scenario", "run", examples, "--junit", str(report)))
    assert code == 0, out + err
    assert f"{len(EXAMPLES)} of {len(EXAMPLES)} scenarios passed" in out
    assert "FAIL" not in out
    suite = ET.parse(report).getroot()
    cases = suite.findall(".//testcase")
    assert [c.get("name") for c in cases] == [str(p) for p in EXAMPLES]
    assert suite.get("failures") == "0" and not suite.findall(".//failure")
    for case in cases:
        assert float(case.get("time", "-1")) >= 0


def cli(*args: str) -> tuple[int, str, str]:
    """The command in this process: (exit status, stdout, stderr)."""
    r = CliRunner().invoke(medsettle_main, list(args), prog_name="medsettle")
    return r.exit_code, r.stdout, r.stderr


def _file(tmp_path: Path, name: str, steps: str, head: str = HEAD) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(head) + textwrap.dedent(steps), encoding="utf-8")
    return path


BAD = {
    "unknown_do.toml": ('[[step]]\ndo = "sign_on"\n', "step 1: do: 'sign_on' is not a step"),
    "unknown_field.toml": (
        '[[step]]\ndo = "sign_in"\n\n[[step]]\ndo = "sell"\nitems = [{ code = "X", price = "1.00", count = 1 }]\n'
        'colour = "red"\n',
        "step 2 (sell): colour: unknown field",
    ),
    "bad_price.toml": (
        '[[step]]\ndo = "sell"\nitems = [{ code = "X", price = 12.5, count = 1 }]\n',
        "step 1 (sell): items[1].price: 12.5: yuan as text",
    ),
    "bad_point.toml": ('[[step]]\ndo = "power_off"\nat = "halfway"\n', "step 1 (power_off): at: 'halfway'"),
    "bad_duration.toml": ('[[step]]\ndo = "advance_clock"\nby = "8 days"\n', "step 1 (advance_clock): by:"),
    "bad_expect.toml": (
        '[[step]]\ndo = "sign_in"\nexpect = { colour = "red" }\n',
        "step 1 (sign_in): expect.colour: cannot be checked",
    ),
    "bad_money.toml": (
        '[[step]]\ndo = "sell"\nitems = [{ code = "X", price = "1.00", count = 1 }]\nexpect = { cash = 55 }\n',
        "step 1 (sell): expect.cash: 55: an amount in yuan",
    ),
    "unnamed_voucher.toml": (
        '[[step]]\ndo = "resettle"\nvoucher = "bill"\n',
        "step 1 (resettle): voucher: 'bill' is not named",
    ),
    "bad_patient.toml": ('[[step]]\ndo = "read_card"\npatient = "someone"\n', "step 1 (read_card): patient:"),
    "bad_counter.toml": (
        '[[step]]\ndo = "sign_in"\ncounter = "P99999999999"\n',
        "step 1 (sign_in): counter: 'P99999999999' is not one of",
    ),
}


def test_a_bad_file_is_one_error_line_naming_file_step_and_field(tmp_path):
    paths = {name: _file(tmp_path, name, steps) for name, (steps, _) in BAD.items()}
    not_toml = tmp_path / "not_toml.toml"
    not_toml.write_text("[scenario\n", encoding="utf-8")
    no_scenario = _file(tmp_path, "no_scenario.toml", '[[step]]\ndo = "sign_in"\n', head="")
    no_such = _file(tmp_path, "no_such_institution.toml", '[[step]]\ndo = "sign_in"\n', head=HEAD.replace(
        "P13010000001", "P13019999999"))  # fmt: skip
    paths["not_toml.toml"], paths["no_scenario.toml"] = not_toml, no_scenario
    paths["no_such_institution.toml"] = no_such
    wanted = {name: why for name, (_, why) in BAD.items()}
    wanted["not_toml.toml"] = "not TOML"
    wanted["no_scenario.toml"] = "[scenario]: scenario: missing"
    wanted["no_such_institution.toml"] = "[scenario]: institutions: no institution 'P13019999999'"
    for name, path in paths.items():
        code, out, err = cli("scenario", "run", str(path))
        assert code == 2, (name, out, err)
        assert out == "", (name, out)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), (name, err)
        assert str(tmp_path / name) in lines[0] and wanted[name] in lines[0], (name, lines[0])


def test_a_wrong_expectation_fails_with_exit_1_naming_the_step(tmp_path):
    wrong = _file(
        tmp_path,
        "wrong.toml",
        """
        [[step]]
        do = "sign_in"

        [[step]]
        do = "read_card"
        patient = "employee"

        [[step]]
        do = "sell"
        items = [{ code = "XJ48CB002A2760101", price = "12.50", count = 2 }]
        expect = { kind = "sale", cash = "25.00" }

        [[step]]
        do = "reconcile"
        expect = { clean = true }
        """,
    )
    report = tmp_path / "wrong.xml"
    code, out, err = cli("scenario", "run", str(wrong), str(EXAMPLES[0]), "--junit", str(report))
    assert code == 1, out + err
    assert "FAIL  3 sell: expect.cash: 25.00 expected, got 0.00" in out  # the account paid it all
    assert "  ok    4 reconcile" in out  # a failed expectation does not stop the scenario
    assert "1 of 2 scenarios passed; " in out and ", 1 failed" in out
    [failure] = ET.parse(report).getroot().findall(".//failure")
    assert failure.get("message", "").startswith("step 3 (sell): expect.cash")


def test_live_runs_examples_against_a_served_centre_on_its_moved_clock(tmp_path):
    """--live: a centre killed with SIGKILL and restarted, a counter powered off at a crash point, and the year
    end crossed by ``advance_clock`` on the served centre's clock (``serve --clock-file``): the December
    voucher is refused YEAR_CLOSED by the centre process once a sale of 2 January has settled."""
    names = ["centre_crash_after_answer.toml", "power_off_settle_sent.toml", "year_closed.toml"]
    report = tmp_path / "live.xml"
    proc = medsettle("scenario", "run", "--live", *(str(ROOT / "examples" / "scenarios" / n) for n in names),
                     "--junit", str(report))  # fmt: skip
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, out + err
    verdicts = {line.split()[1].rsplit("/", 1)[-1]: line.split()[0] for line in out.splitlines() if ".toml: " in line}
    assert verdicts == {f"{n}:": "PASS" for n in names}, out
    assert "  ok    7 restart_centre: centre up, its journal replayed" in out
    assert "  ok    4 sell: crashed True, note power lost at settle_sent" in out
    assert "  ok    1 sign_in: sign_no 20261231" in out  # the centre's sign-in day is the file's start
    assert "  ok    5 advance_clock: now 2027-01-02 09:00" in out
    assert "  ok    7 sign_in: sign_no 20270102" in out  # and then the day the step moved it to
    assert "YEAR_CLOSED" in out
    assert "3 of 3 scenarios passed; " in out and ", 0 failed" in out
    root = ET.parse(report).getroot()
    assert root.get("failures") == "0" and not root.findall(".//skipped") and not root.findall(".//failure")


def test_a_broken_invariant_stops_the_scenario_naming_it(monkeypatch, tmp_path):
    """The simulator's checkers run after every step: a settlement split one fen short (planted from outside,
    as tests/test_sim_cli.py plants it) stops the scenario at the step that made it."""
    from medsettle.engine.columns import COL
    from medsettle.sim import checkers

    original = checkers.Checkers._settled

    def planted(self, seq, body):
        row = list(body["row"])
        row[COL["fund_pay_sumamt"]] -= 1
        return original(self, seq, {**body, "row": row})

    monkeypatch.setattr(checkers.Checkers, "_settled", planted)
    code, out, err = cli("scenario", "run", str(ROOT / "examples" / "scenarios" / "card_pulled.toml"))
    assert code == 1, out + err
    assert "FAIL  6 sell: invariant conservation: entry " in out and "split into" in out
    assert "  stopped: invariant conservation" in out
    assert " 7 reconcile" not in out  # the rest is not run
