"""The medsettle command, run as a user runs it (a real process for each call)."""

import json
import os
import subprocess
import sys

import pytest

from worlds import DEFAULT_PERSONS, bill, policy_dict


def run(*args, env=None, input=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "medsettle.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=input,
        timeout=120,
    )


@pytest.fixture()
def files(tmp_path):
    """A persons CSV and a bills file for the small test world, plus its policy as TOML-free JSON."""
    import csv

    persons = tmp_path / "persons.csv"
    with persons.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(DEFAULT_PERSONS[0]))
        w.writeheader()
        w.writerows(DEFAULT_PERSONS)
    return tmp_path, persons


def test_demo_prints_a_balanced_summary():
    r = run("demo", "--bills", "3000", "--persons", "500")
    assert r.returncode == 0, r.stderr
    assert "check: medfee = fund + account + cash + institution on every bill: yes" in r.stdout
    assert "engine: core" in r.stdout and "all" in r.stdout


def test_demo_falls_back_to_the_reference_engine_and_says_so_once():
    r = run("demo", "--bills", "300", "--persons", "100", env={"MEDSETTLE_NO_EXTENSIONS": "1"})
    assert r.returncode == 0, r.stderr
    assert "engine: reference, because the Cython core is off (MEDSETTLE_NO_EXTENSIONS=1)" in r.stdout
    said = "medsettle: the Cython core is off (MEDSETTLE_NO_EXTENSIONS=1); using the reference engine"
    assert r.stderr.count(said) == 1
    assert "Warning" not in r.stderr and "settler = " not in r.stderr  # no warnings-module source line
    forced = run("demo", "--bills", "10", "--engine", "core", env={"MEDSETTLE_NO_EXTENSIONS": "1"})
    assert forced.returncode == 1 and "CORE_UNAVAILABLE" in forced.stderr


def test_settle_a_file_on_both_engines_gives_the_same_json(tmp_path):
    persons = tmp_path / "persons.csv"
    assert run("persons", "generate", "--count", "200", "--out", str(persons)).returncode == 0
    bills = tmp_path / "bills.jsonl"
    r = run("bills", "generate", "--persons", str(persons), "--count", "50", "--out", str(bills))
    assert r.returncode == 0, r.stderr
    outs = {}
    for engine in ("core", "reference"):
        r = run("settle", "--persons", str(persons), "--engine", engine, str(bills))
        assert r.returncode == 0, r.stderr
        outs[engine] = r.stdout
    assert outs["core"] == outs["reference"]
    results = [json.loads(line) for line in outs["core"].splitlines()]
    assert len(results) == 50
    ok = [x for x in results if x["infcode"] == 0]
    assert ok, results[:2]
    info = ok[0]["output"]["setlinfo"]
    assert '"medfee_sumamt":' in outs["core"] and isinstance(info["medfee_sumamt"], (int, float))
    # Amounts are written with two decimals, as the platform does.
    first_line = outs["core"].splitlines()[[x["infcode"] for x in results].index(0)]
    assert f'"medfee_sumamt":{info["medfee_sumamt"]:.2f}' in first_line


def test_settle_refuses_a_bad_file_naming_bill_and_field(files, tmp_path):
    _, persons = files
    good = bill("E1", [("A1", "10.00", 1)], bill_id="OK1")
    bad = bill("E2", [("A1", "-3.00", 1)], bill_id="BAD7")
    path = tmp_path / "bills.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    policy = tmp_path / "policy.toml"
    policy.write_text(_as_toml(policy_dict()))
    r = run("settle", "--policy", str(policy), "--persons", str(persons), str(path))
    assert r.returncode == 1 and r.stdout == ""
    assert "bill BAD7" in r.stderr and "feedetail[0].pric" in r.stderr
    path.write_text("{not json\n")
    r = run("settle", "--policy", str(policy), "--persons", str(persons), str(path))
    assert r.returncode == 1 and "line 1: not valid JSON" in r.stderr


def test_settle_reports_refusals_per_bill(files, tmp_path):
    _, persons = files
    policy = tmp_path / "policy.toml"
    policy.write_text(_as_toml(policy_dict()))
    lines = [bill("X1", [("A1", "10.00", 1)], bill_id="R1"), bill("E1", [("A1", "10.00", 1)], bill_id="S1")]
    r = run(
        "settle",
        "--policy",
        str(policy),
        "--persons",
        str(persons),
        "-",
        input="".join(json.dumps(b) + "\n" for b in lines),
    )
    assert r.returncode == 0, r.stderr
    first, second = (json.loads(x) for x in r.stdout.splitlines())
    assert first["infcode"] == -1 and first["err_code"] == "PERSON_INACTIVE"
    assert second["infcode"] == 0 and second["output"]["setlinfo"]["medfee_sumamt"] == 10.0


def test_policy_check(tmp_path):
    r = run("policy", "path")
    assert r.returncode == 0
    ok = run("policy", "check", r.stdout.strip())
    assert ok.returncode == 0 and "130100" in ok.stdout and "330300" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[[regions]]\nadmdvs = "12"\n')
    r = run("policy", "check", str(bad))
    assert r.returncode == 1 and "bad.toml" in r.stderr and "regions[0].admdvs" in r.stderr


def test_every_command_has_help():
    for args in (
        ["--help"],
        ["demo", "--help"],
        ["settle", "--help"],
        ["policy", "check", "--help"],
        ["persons", "generate", "--help"],
        ["bills", "generate", "--help"],
        ["serve", "--help"],
        ["persons", "card", "--help"],
        ["persons", "credit", "--help"],
        ["persons", "cancel", "--help"],
    ):
        r = run(*args)
        assert r.returncode == 0 and "Usage:" in r.stdout, args


def _as_toml(d: dict) -> str:
    """The small test policy as TOML, through a tiny writer (tomllib only reads)."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, (int, float)):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(v)

    return "regions = " + value(d["regions"]) + "\n"
