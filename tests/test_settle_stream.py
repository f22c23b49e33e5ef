"""``medsettle settle`` as a stream (engine/stream.py): the same answers as settling each bill, two passes,
nothing settled or written when a bill is invalid, clean one-line errors, progress only on a terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from medsettle import jsontext
from medsettle.cli import main
from medsettle.engine import Population, Settler
from medsettle.engine.billsfile import BillsFile, BillsFileError
from medsettle.engine.persons import FLAG_ACTIVE
from medsettle.engine.progress import Progress, progress_wanted
from medsettle.engine.stream import BillStream, settle_file
from medsettle.engine.streamkeys import StreamAdmissionKeys
from medsettle.errors import SettlementRefused
from medsettle.policy import load_default_policy
from medsettle.sim import generate_bills


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A persons file for the shipped policy (a few persons inactive: refusals) and a bills file of every
    kind of line: generated plain bills; bills the model way reads (numbers for amounts); a bill without a
    bill_id; ids that JSON must escape; an admission whose settlements are spread between other bills;
    blank lines."""
    tmp = tmp_path_factory.mktemp("stream")
    policy = load_default_policy()
    population = Population.generate(policy, 300, seed=3)
    population.attrs["flags"][[5, 17, 40]] &= ~np.uint8(FLAG_ACTIVE)
    persons = tmp / "persons.csv"
    population.to_csv(persons)
    compiled = Settler(policy, population, engine="reference").compiled
    stream = generate_bills(compiled, population, 400, seed=11, days=60, persons="zipf")
    bills = [stream.bill_dict(i) for i in range(400)]
    for i in (3, 9, 50, 51, 52):  # refused: their persons are inactive
        bills[i]["psn_no"] = population.psn_nos[[5, 17, 40][i % 3]]
    bills[13]["x_note"] = float("nan")  # in a key the shape ignores: orjson refuses it, the exact reader not
    bills[14]["x_big"] = 10**30
    del bills[7]["bill_id"]
    bills[9]["bill_id"] = ""  # a refusal names it by its position
    bills[11]["mdtrt_id"] = 'MD "quoted" \\ back, 住院 \u0001'
    bills[12]["bill_id"] = "B/12 \t tab"
    for i in range(100, 200, 10):  # one admission's settlements, spread out, for one person
        bills[i].update(
            psn_no=bills[100]["psn_no"],
            mdtrt_id="ADMISSION-1",
            med_type="21",
            mdtrtarea_admvs=bills[100]["mdtrtarea_admvs"],
        )
    texts = [json.dumps(b, ensure_ascii=False) for b in bills]
    for i in (20, 21):  # the model way: amounts as JSON numbers, a count as an int
        texts[i] = (
            texts[i]
            .replace('"pric": "', '"pric": ')
            .replace('", "cnt": "', ', "cnt": ')
            .replace('", "hosp_appr_flag"', ', "hosp_appr_flag"')
        )
    assert '"pric": ' in texts[20] and '"pric": "' not in texts[20]
    path = tmp / "bills.jsonl"
    path.write_text("\n".join(texts[:30]) + "\n\n   \n" + "\n".join(texts[30:]) + "\n", encoding="utf-8")
    return policy, persons, path


def per_bill_answers(policy, persons: Path, path: Path, engine: str, *, presettle: bool = False) -> bytes:
    """What settling the file's bills one by one with Settler.settle (or presettle) answers, in the
    command's documented format; the bills read as the command always read them (json, Decimal)."""
    settler = Settler(policy, Population.from_csv(policy, persons), engine=engine)
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    answers = []
    for i, line in enumerate(lines):
        bill = json.loads(line, parse_float=Decimal)
        bill_id = bill.get("bill_id", "")
        try:
            settlement = settler.presettle(bill) if presettle else settler.settle(bill)
        except SettlementRefused as exc:  # named as the command names a refused bill: bill_id, else position
            message = str(SettlementRefused(exc.code, exc.reason, bill=bill_id or i))
            answers.append({"bill_id": bill_id, "infcode": -1, "err_code": exc.code, "err_msg": message})
        else:
            answers.append({"bill_id": bill_id, "infcode": 0, "output": settlement.to_json()})
    return b"".join(jsontext.dumps_bytes(answer) + b"\n" for answer in answers)


def run_settle(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, ["settle", *args], input=input, catch_exceptions=False)


def one_error_line(result) -> str:
    assert result.exit_code != 0 and result.stdout_bytes == b""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_answers_are_those_of_settling_each_bill(world, engine):
    policy, persons, path = world
    expected = per_bill_answers(policy, persons, path, engine)
    result = run_settle("--persons", str(persons), "--engine", engine, str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == expected
    answers = [json.loads(line) for line in result.stdout_bytes.splitlines()]
    assert len(answers) == 400 and result.stderr == ""  # no progress when stderr is not a terminal
    kinds = {(a["infcode"], a.get("err_code")) for a in answers}
    assert (0, None) in kinds and (-1, "PERSON_INACTIVE") in kinds
    assert answers[7]["bill_id"] == "" and answers[9]["err_msg"].startswith("bill 9: ")


def test_answers_are_those_of_settling_the_list_as_before(world, engine):
    """The command used to read the whole file and call Settler.settle_many: the same bytes."""
    policy, persons, path = world
    settler = Settler(policy, Population.from_csv(policy, persons), engine=engine)
    bills = [
        json.loads(line, parse_float=Decimal) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    before = b""
    for bill, result in zip(bills, settler.settle_many(bills), strict=True):
        if isinstance(result, SettlementRefused):
            answer = {
                "bill_id": bill.get("bill_id", ""),
                "infcode": -1,
                "err_code": result.code,
                "err_msg": str(result),
            }
        else:
            answer = {"bill_id": bill.get("bill_id", ""), "infcode": 0, "output": result.to_json()}
        before += jsontext.dumps_bytes(answer) + b"\n"
    assert run_settle("--persons", str(persons), "--engine", engine, str(path)).stdout_bytes == before


def test_presettle_computes_each_bill_alone(world, engine):
    policy, persons, path = world
    expected = per_bill_answers(policy, persons, path, engine, presettle=True)
    result = run_settle("--persons", str(persons), "--engine", engine, "--presettle", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == expected
    assert expected != per_bill_answers(policy, persons, path, engine)  # the admission's bills differ
    assert all(
        json.loads(x).get("output", {"setlinfo": {"setl_id": ""}})["setlinfo"]["setl_id"] == ""
        for x in result.stdout_bytes.splitlines()
    )


def test_standard_input_is_read_like_a_file(world, engine):
    policy, persons, path = world
    result = run_settle("--persons", str(persons), "--engine", engine, "-", input=path.read_bytes())
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == per_bill_answers(policy, persons, path, engine)


def test_an_empty_file_or_one_of_blank_lines_answers_nothing(world, tmp_path):
    _, persons, _ = world
    for text in ("", "\n  \n\t\n"):
        (tmp_path / "empty.jsonl").write_text(text)
        result = run_settle("--persons", str(persons), str(tmp_path / "empty.jsonl"))
        assert result.exit_code == 0 and result.stdout_bytes == b"" and result.stderr == ""


def test_an_invalid_bill_in_the_middle_fails_the_run_before_anything_is_settled(world, engine, tmp_path, monkeypatch):
    policy, persons, path = world
    monkeypatch.setattr(BillStream, "CHUNK", 16)  # the bad bill is in a later chunk than the first
    lines = path.read_text(encoding="utf-8").splitlines()
    bad = json.loads(lines[200])
    bad["feedetail"][1]["pric"] = "12.345678"
    lines[200] = json.dumps(bad)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    error = one_error_line(run_settle("--persons", str(persons), "--engine", engine, str(broken)))
    assert f"{broken}: line 201:" in error and f"bill {bad['bill_id']}" in error
    assert "feedetail[1].pric" in error and "nothing was settled" in error
    # Nothing settled: the first pass leaves the Settler as it was.
    settler = Settler(policy, Population.from_csv(policy, persons), engine=engine)
    fresh = Settler(policy, Population.from_csv(policy, persons), engine=engine)
    stream = BillStream(settler)
    with BillsFile(str(broken)) as bills, pytest.raises(BillsFileError):
        stream.check(bills)
    assert len(stream.keys) == 0 and settler.records == {}
    for p in range(len(settler.population)):
        assert settler.person_state(settler.population.psn_nos[p]) == fresh.person_state(fresh.population.psn_nos[p])


def test_an_unknown_person_is_named_with_its_line(world, tmp_path):
    _, persons, path = world
    lines = path.read_text(encoding="utf-8").splitlines()
    bad = json.loads(lines[3])
    bad["psn_no"] = "NOBODY"
    (tmp_path / "b.jsonl").write_text("\n".join([lines[0], json.dumps(bad), lines[1]]) + "\n")
    error = one_error_line(run_settle("--persons", str(persons), str(tmp_path / "b.jsonl")))
    assert "b.jsonl: line 2: UNKNOWN_PERSON" in error and "NOBODY" in error


def test_a_missing_bills_file_is_one_error_line(world, tmp_path):
    _, persons, _ = world
    error = one_error_line(run_settle("--persons", str(persons), str(tmp_path / "nope.jsonl")))
    assert "nope.jsonl: no such bills file" in error


def test_a_bills_file_that_is_not_utf8_names_its_line(world, tmp_path):
    _, persons, path = world
    lines = path.read_bytes().splitlines()
    (tmp_path / "latin1.jsonl").write_bytes(b"\n".join([lines[0], lines[1].replace(b"G", b"\xe9", 1), lines[2]]))
    error = one_error_line(run_settle("--persons", str(persons), str(tmp_path / "latin1.jsonl")))
    assert "latin1.jsonl: line 2: not UTF-8" in error and "0xe9" in error


def test_a_line_that_is_not_json_names_its_line(world, tmp_path):
    _, persons, path = world
    lines = path.read_text(encoding="utf-8").splitlines()
    (tmp_path / "b.jsonl").write_text("\n".join([lines[0], lines[1], '{"bill_id": "X",']) + "\n")
    error = one_error_line(run_settle("--persons", str(persons), str(tmp_path / "b.jsonl")))
    assert "b.jsonl: line 3: not valid JSON" in error


def test_a_missing_or_unreadable_persons_file_is_one_error_line(world, tmp_path):
    _, _, path = world
    error = one_error_line(run_settle("--persons", str(tmp_path / "nobody.csv"), str(path)))
    assert "nobody.csv" in error
    (tmp_path / "latin1.csv").write_bytes("psn_no,insutype\nJos\xe9,310\n".encode("latin-1"))
    error = one_error_line(run_settle("--persons", str(tmp_path / "latin1.csv"), str(path)))
    assert "latin1.csv" in error and "UTF-8" in error


def test_no_settlement_records_are_kept_and_forgotten_admission_keys_change_nothing(world, engine, monkeypatch):
    """A stream keeps nothing per bill: no records, and admission keys only while an admission is in
    progress. Forgetting after every 2 new keys settles every bill as remembering all of them does."""
    policy, persons, path = world
    monkeypatch.setattr(BillStream, "FORGET_EVERY", 2)
    monkeypatch.setattr(BillStream, "CHUNK", 7)
    settler = Settler(policy, Population.from_csv(policy, persons), engine=engine)
    out = _Bytes()
    with BillsFile(str(path)) as bills:
        summary = settle_file(settler, bills, out)
    assert out.data == per_bill_answers(policy, persons, path, engine)
    assert summary.bills == 400 and summary.refused > 0
    assert settler.records == {}
    assert isinstance(settler.admissions, StreamAdmissionKeys)
    assert len(settler.admissions) < 2 + len(settler.population)  # not one per bill


def test_forgotten_keys_are_not_used_again():
    keys = StreamAdmissionKeys()
    a, b = keys.key("A"), keys.key("B")
    keys.keep_only({b})
    assert keys.key("B") == b and len(keys) == 1
    assert keys.key("A") not in (a, b)


def test_progress_only_on_a_terminal(tmp_path):
    master, slave = pty.openpty()
    try:
        with os.fdopen(os.dup(slave), "w") as terminal:
            assert progress_wanted(terminal)
        assert not progress_wanted(open(os.devnull, "w"))  # noqa: SIM115
        with open(tmp_path / "log", "w") as log:
            assert not progress_wanted(log)
        read, write = os.pipe()
        with os.fdopen(write, "w") as pipe:
            assert not progress_wanted(pipe)
        os.close(read)
    finally:
        os.close(master)
        os.close(slave)


def test_progress_says_how_far_and_how_fast():
    shown = _Text()
    progress = Progress(shown, "settled", 5000)
    progress.finish(5000)
    assert shown.text.startswith("\rsettled 5,000 of 5,000 bills (") and shown.text.endswith(" bills/s)\n")
    nothing = Progress(None, "settled", 5000)
    nothing.update(2048)
    nothing.finish(5000)  # and nothing to write to


def test_the_command_shows_progress_on_a_terminal_and_not_on_a_pipe(world):
    _, persons, path = world
    args = [sys.executable, "-m", "medsettle", "settle", "--persons", str(persons), str(path)]
    piped = subprocess.run(args, capture_output=True, timeout=120, check=False)
    assert piped.returncode == 0 and piped.stderr == b""
    master, slave = pty.openpty()
    try:
        on_terminal = subprocess.run(args, stdout=subprocess.PIPE, stderr=slave, timeout=120, check=False)
        os.close(slave)
        shown = _read_all(master)
    finally:
        os.close(master)
    assert on_terminal.returncode == 0 and on_terminal.stdout == piped.stdout
    assert "checked 400 bills" in shown and "settled 400 of 400 bills" in shown


def _read_all(fd: int) -> str:
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the terminal's other end is closed
            break
        if not chunk:
            break
        data += chunk
    return data.decode()


class _Bytes:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def flush(self) -> None:
        pass


class _Text:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass
