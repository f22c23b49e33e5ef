"""Everyday mistakes at the command line: one ``Error: ...`` line naming what was wrong and what to do,
a non-zero exit, no traceback and nothing written. Each case here once ended in a traceback, a raw
exception name, or was accepted."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from medsettle.policy import default_policy_path


def run(*args, env=None, cwd=None):
    """``python -m medsettle ARGS`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "medsettle", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
    )


def one_error_line(r, *fragments: str) -> str:
    """The run failed with exactly one line on stderr, 'Error: ...', holding every fragment."""
    lines = r.stderr.splitlines()
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def persons_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("persons") / "persons.csv"
    r = run("persons", "generate", "--count", "50", "--out", str(path))
    assert r.returncode == 0, r.stderr
    return path


# -- dates outside the policy's rule sets (IndexError before) ----------------------------------------


def test_demo_with_a_date_before_every_rule_set_says_which_years_the_policy_covers():
    r = run("demo", "--date", "1999-01-01", "--bills", "10", "--persons", "10")
    one_error_line(r, "--date 1999-01-01", "the policy's rule sets cover 2025-2026", "on or after 2025-01-01")
    assert r.stdout == ""


def test_bills_generate_with_a_date_before_every_rule_set_or_not_a_date(persons_csv, tmp_path):
    out = tmp_path / "bills.jsonl"
    r = run("bills", "generate", "--persons", str(persons_csv), "--date", "1999-01-01", "--out", str(out))
    one_error_line(r, "--date 1999-01-01", "cover 2025-2026", "on or after 2025-01-01")
    for not_a_date in ("2026-02-30", "March", "02/03/2026"):
        r = run("bills", "generate", "--persons", str(persons_csv), "--date", not_a_date, "--out", str(out))
        one_error_line(r, f"--date {not_a_date}", "yyyy-mm-dd")
    r = run(
        "bills", "generate", "--persons", str(persons_csv), "--date", "2099-12-30", "--days", "5", "--out", str(out)
    )
    one_error_line(r, "--date 2099-12-30", "2000-2099")
    assert not out.exists()


def test_a_date_after_the_last_rule_set_is_in_its_force(persons_csv, tmp_path):
    out = tmp_path / "bills.jsonl"
    r = run(
        "bills", "generate", "--persons", str(persons_csv), "--date", "2031-06-01", "--count", "3", "--out", str(out)
    )
    assert r.returncode == 0, r.stderr
    assert [json.loads(x)["setl_time"][:10] for x in out.read_text().splitlines()] == ["2031-06-01"] * 3


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["demo", "--bills", "0"], "--bills 0: must be at least 1"),
        (["demo", "--persons", "-5"], "--persons -5: must be at least 1"),
        (["demo", "--seed", "-1"], "--seed -1: must be at least 0"),
        (["persons", "generate", "--count", "-1", "--out", "{tmp}/p.csv"], "--count -1: must be at least 1"),
        (["persons", "generate", "--count", "0", "--out", "{tmp}/p.csv"], "--count 0: must be at least 1"),
        (["persons", "generate", "--seed", "-1", "--out", "{tmp}/p.csv"], "--seed -1: must be at least 0"),
        (["bills", "generate", "--persons", "{persons}", "--count", "-1", "--out", "{tmp}/b"], "--count -1"),
        (["bills", "generate", "--persons", "{persons}", "--days", "0", "--out", "{tmp}/b"], "--days 0"),
    ],
)
def test_counts_out_of_range_are_one_error_line(args, fragment, persons_csv, tmp_path):
    r = run(*(a.format(tmp=tmp_path, persons=persons_csv) for a in args))
    one_error_line(r, fragment)
    assert list(tmp_path.iterdir()) == []


# -- output paths ------------------------------------------------------------------------------------


def test_persons_generate_into_a_missing_directory_names_the_path(tmp_path):
    target = tmp_path / "nonexistent" / "x.csv"
    r = run("persons", "generate", "--out", str(target))
    one_error_line(r, f"--out {target}", "cannot write there", f"the directory {target.parent} does not exist")
    assert not target.parent.exists()


def test_bills_generate_into_a_missing_directory_names_the_path(persons_csv, tmp_path):
    target = tmp_path / "nonexistent" / "b.jsonl"
    r = run("bills", "generate", "--persons", str(persons_csv), "--out", str(target))
    one_error_line(r, f"--out {target}", "does not exist")


# -- persons files that are not persons files (accepted before; every bill then UNKNOWN_PERSON) --------


def _jsonl_of(persons_csv: Path) -> str:
    import csv

    with persons_csv.open(newline="") as f:
        return "".join(json.dumps(row) + "\n" for row in list(csv.DictReader(f))[:3])


@pytest.mark.parametrize(
    "content, fragments",
    [
        ("json", ["line 1, column 1", "looks like JSON, not CSV", "psn_no,insutype,psn_type,insuplc_admdvs"]),
        ("", ["empty, no header line"]),
        ("header", ["no persons after the header line"]),
        ("typo", ["line 3, column 2 (insutype)", "unknown insutype '31O'"]),
        ("column", ["line 1, column 5", "unknown column 'balence'"]),
        ("wide", ["line 4, column 14", "14 fields where line 1 names 13 columns"]),
        ("binary", ["line 3", "not UTF-8"]),
        ("repeat", ["line 4, column 1 (psn_no)", "repeats line 2"]),
    ],
)
def test_a_persons_file_that_is_not_one_is_refused_naming_file_line_and_column(
    content, fragments, persons_csv, tmp_path
):
    lines = persons_csv.read_bytes().split(b"\r\n")
    made = {
        "json": _jsonl_of(persons_csv).encode(),
        "": b"",
        "header": lines[0] + b"\r\n",
        "typo": b"\r\n".join(
            lines[:2] + [lines[2].replace(b",310,", b",31O,", 1).replace(b",390,", b",31O,", 1)] + lines[3:]
        ),
        "column": b"\r\n".join([lines[0].replace(b"balance", b"balence")] + lines[1:]),
        "wide": b"\r\n".join(lines[:3] + [lines[3] + b",extra"] + lines[4:]),
        "binary": b"\r\n".join(lines[:2] + [b"\xff\xfe" + lines[2]] + lines[3:]),
        "repeat": b"\r\n".join(lines[:3] + [lines[1]] + lines[3:]),
    }[content]
    bad = tmp_path / "persons.txt"
    bad.write_bytes(made)
    out = tmp_path / "bills.jsonl"
    r = run("bills", "generate", "--persons", str(bad), "--out", str(out))
    one_error_line(r, str(bad), *fragments)
    assert not out.exists()


def test_a_spreadsheets_byte_order_mark_is_not_part_of_the_first_column(persons_csv, tmp_path):
    with_bom = tmp_path / "excel.csv"
    with_bom.write_bytes(b"\xef\xbb\xbf" + persons_csv.read_bytes())
    r = run("bills", "generate", "--persons", str(with_bom), "--count", "2")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2, r.stderr


def test_a_missing_persons_file_is_one_line_saying_how_to_make_one(tmp_path):
    missing = tmp_path / "nope.csv"
    r = run("bills", "generate", "--persons", str(missing))
    one_error_line(r, f"{missing}: no such persons file", "medsettle persons generate --out")


# -- policy files speak their own units (basis points and fen before) -----------------------------------


@pytest.fixture()
def policy_copy(tmp_path) -> Path:
    """The shipped default policy copied with its catalogue CSVs, as a user starts their own."""
    source = default_policy_path().parent
    for f in source.iterdir():
        if f.suffix in (".toml", ".csv"):
            shutil.copy(f, tmp_path / f.name)
    return tmp_path / default_policy_path().name


def _replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_policy_check_of_the_copied_default_passes(policy_copy):
    r = run("policy", "check", str(policy_copy))
    assert r.returncode == 0 and r.stdout.endswith(f"{policy_copy}: ok\n"), r.stderr


def test_a_ratio_above_one_is_refused_as_a_fraction(policy_copy):
    _replace_once(policy_copy, "ratio = 0.80", "ratio = 1.80")
    r = run("policy", "check", str(policy_copy))
    line = one_error_line(
        r,
        str(policy_copy),
        "regions[0].rulesets[0].second_tier[0].ratio",
        "region 130100, rule set 130100-2025.1",
        "must be at most 1 (100%), not 1.80",
    )
    assert "10000" not in line and "less than" not in line


def test_a_money_limit_out_of_bounds_is_refused_in_yuan(policy_copy):
    _replace_once(policy_copy, "annual_cap = 300000.00", "annual_cap = 99999999.00")
    r = run("policy", "check", str(policy_copy))
    line = one_error_line(
        r, "regions[0].rulesets[0].second_tier[0].annual_cap", "must be at most 21474836.47 yuan, not 99999999.00"
    )
    assert "2147483647" not in line
    _replace_once(policy_copy, "annual_cap = 99999999.00", "annual_cap = -5.00")
    one_error_line(run("policy", "check", str(policy_copy)), "annual_cap", "must not be negative")


def test_a_bad_catalogue_row_is_named_by_its_csv_line(policy_copy):
    catalogue = policy_copy.parent / "catalogue-130100.csv"
    lines = catalogue.read_text(encoding="utf-8").splitlines(keepends=True)
    fields = lines[4].split(",")
    fields[2] = "07"  # chrgitm_lv
    lines[4] = ",".join(fields)
    catalogue.write_text("".join(lines), encoding="utf-8")
    r = run("policy", "check", str(policy_copy))
    one_error_line(r, "regions[0].catalogues[0].items[3].chrgitm_lv", f"{catalogue} line 5", "'01', '02' or '03'")


def test_a_policy_copied_without_its_catalogues_says_to_copy_them(tmp_path):
    lone = tmp_path / "mine.toml"
    shutil.copy(default_policy_path(), lone)
    r = run("policy", "check", str(lone))
    one_error_line(r, f"{lone}: regions[0].catalogues[0].file", "no catalogue file", "copy them along with it")


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"\xff\xfe[[regions]]", "not UTF-8 text"),
        (b"regions = [", "not valid TOML"),
        (b"regions = 5", "regions: Input should be a valid list"),
    ],
)
def test_unreadable_policy_files_are_one_line(content, fragment, tmp_path, persons_csv):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(content)
    one_error_line(run("policy", "check", str(bad)), str(bad), fragment)
    one_error_line(run("bills", "generate", "--persons", str(persons_csv), "--policy", str(bad)), fragment)


def test_a_missing_policy_file_is_one_line(tmp_path):
    missing = tmp_path / "none.toml"
    one_error_line(run("policy", "check", str(missing)), f"{missing}: no such file", "medsettle policy path")


# -- which engine, said once and plainly ------------------------------------------------------------


def test_demo_on_the_reference_engine_by_choice_says_just_that():
    r = run("demo", "--engine", "reference", "--bills", "20", "--persons", "20")
    assert r.returncode == 0, r.stderr
    assert "engine: reference\n" in r.stdout and "None" not in r.stdout
    assert "Cython core" not in r.stderr


def test_a_core_that_does_not_import_is_said_once_with_how_to_rebuild(tmp_path):
    # sitecustomize runs before medsettle: it makes 'import medsettle._core' fail as a missing build does.
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['medsettle._core'] = None\n")
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = run("demo", "--bills", "20", "--persons", "20", env=env)
    assert r.returncode == 0, r.stderr
    said = [line for line in r.stderr.splitlines() if line.startswith("medsettle: ")]
    assert len(said) == 1, r.stderr
    assert "the Cython core is not built or cannot be imported" in said[0] and "pip install -e ." in said[0]
    assert "Warning" not in r.stderr and "Traceback" not in r.stderr
    assert "engine: reference, because the Cython core is not built" in r.stdout
    forced = run("demo", "--bills", "20", "--persons", "20", "--engine", "core", env=env)
    one_error_line(forced, "CORE_UNAVAILABLE", "the core engine was asked for", "pip install -e .")


def test_a_core_built_from_other_sources_is_not_used(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(
        "import sys, types\n"
        "stale = types.ModuleType('medsettle._core')\n"
        "stale.COLUMN_NAMES = ('status',)\n"
        "stale.layout_sizes = lambda: {}\n"
        "sys.modules['medsettle._core'] = stale\n"
    )
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = run("demo", "--bills", "20", "--persons", "20", env=env)
    assert r.returncode == 0, r.stderr
    assert "the Cython core was built from other sources" in r.stderr and "engine: reference" in r.stdout


def test_generate_bills_refuses_a_start_before_the_catalogues_instead_of_indexing_garbage():
    import datetime as dt

    from medsettle.engine import Population
    from medsettle.policy import load_default_policy
    from medsettle.policy.compile import compile_policy
    from medsettle.sim import generate_bills

    policy = load_default_policy()
    compiled, population = compile_policy(policy), Population.generate(policy, 10)
    first = policy.first_day_in_force()
    assert len(generate_bills(compiled, population, 5, start=first).batch) == 5
    with pytest.raises(ValueError, match=f"no rule set and catalogue in force before {first}"):
        generate_bills(compiled, population, 5, start=first - dt.timedelta(days=1))


# -- serve: the port is checked and bound before the journal is made ------------------------------------


def test_serve_on_a_port_in_use_is_one_line_and_leaves_no_journal(tmp_path):
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        data_dir = tmp_path / "data"
        r = run("serve", "--port", str(port), "--data-dir", str(data_dir))
        one_error_line(r, f"--port {port}", f"cannot listen on 127.0.0.1:{port}", "choose another --port")
        assert not (data_dir / "centre.db").exists() and not data_dir.exists()
    finally:
        holder.close()


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--port", "99999"], ["--port 99999", "1-65535"]),
        (["--port", "-1"], ["--port -1", "1-65535"]),
        (["--regions", "999999"], ["--regions 999999", "not a region of the policy"]),
        (["--persons", "{tmp}/nope.csv"], ["nope.csv: no such persons file"]),
        (["--policy", "{tmp}/nope.toml"], ["nope.toml: no such file"]),
    ],
)
def test_serve_with_a_bad_option_is_one_line_and_leaves_no_journal(args, fragments, tmp_path):
    data_dir = tmp_path / "data"
    r = run("serve", "--data-dir", str(data_dir), *(a.format(tmp=tmp_path) for a in args))
    one_error_line(r, *fragments)
    assert not data_dir.exists()


def test_serve_with_a_file_as_its_data_dir_says_so(tmp_path):
    not_a_dir = tmp_path / "data"
    not_a_dir.write_text("")
    one_error_line(
        run("serve", "--port", "0", "--data-dir", str(not_a_dir)), f"--data-dir {not_a_dir}", "not a directory"
    )


# -- the persons commands and the address of the centre -------------------------------------------------


@pytest.fixture()
def not_a_centre():
    """An HTTP server on 127.0.0.1 that is not a medsettle centre (it answers POST with an HTML error)."""
    import http.server
    import threading

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_persons_commands_with_a_centre_that_is_not_one(not_a_centre):
    r = run("persons", "qr", "P1", "--centre", not_a_centre)
    one_error_line(r, not_a_centre, "not as a medsettle centre does", "check --centre")


def test_persons_commands_with_an_address_that_is_not_http_or_not_listening():
    one_error_line(
        run("persons", "qr", "P1", "--centre", "127.0.0.1:8901"), "--centre 127.0.0.1:8901", "not an http:// address"
    )
    with socket.socket() as probe:  # a port nothing listens on: bound here, never listened on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/"
        one_error_line(
            run("persons", "qr", "P1", "--centre", url), f"cannot reach the centre at {url}", "medsettle serve"
        )


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["policy", "check", "{dir}"], "{dir}: cannot read the policy file: Is a directory"),
        (["bills", "generate", "--persons", "{dir}"], "{dir}: cannot read the persons file: Is a directory"),
        (["bills", "generate", "--persons", "{persons}", "--policy", "{dir}"], "cannot read the policy file"),
        (["bills", "generate", "--persons", "{persons}", "--out", "{dir}"], "--out {dir}: cannot write there"),
        (["persons", "generate", "--out", "{dir}"], "--out {dir}: cannot write there: Is a directory"),
        (["serve", "--persons", "{dir}", "--data-dir", "{dir}/data"], "cannot read the persons file"),
    ],
)
def test_a_directory_where_a_file_belongs_is_one_line(args, fragment, tmp_path, persons_csv):
    values = {"dir": tmp_path, "persons": persons_csv}
    r = run(*(a.format(**values) for a in args))
    one_error_line(r, fragment.format(**values))
    assert list(tmp_path.iterdir()) == []


def test_serve_with_an_unreachable_database_is_one_line(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"postgresql://nobody@127.0.0.1:{probe.getsockname()[1]}/medsettle"
        r = run("serve", "--port", "0", "--db", url, "--data-dir", str(tmp_path / "data"))
    one_error_line(r, "JOURNAL_ERROR", "PostgreSQL journal")  # psycopg's reason spans two lines: joined here
    assert not (tmp_path / "data").exists()
