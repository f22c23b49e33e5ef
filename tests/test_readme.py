"""README.md's code blocks run as a reader would run them, and the documents name only what exists.

The blocks (```sh, ```python, ```json) run in README order in one temporary directory, so a block may use
what an earlier one wrote (the bill uses the persons.csv of the example before it):

- a block right after ``<!-- readme-test: skip (reason) -->`` is not run; the reason is required, and it is
  not a pytest skip (README blocks that cannot run here are a fact about README, not a missing part);
- a block right after ``<!-- readme-test: centre (...) -->`` runs against a centre this test starts
  (``python -m medsettle serve --port 0`` in a temporary data directory): in a python block the default
  URL http://127.0.0.1:8901/ becomes that centre's (in a sh block too), each ``medsettle terminal`` command
  of a sh block gets ``--centre`` with it, and MEDSETTLE_CREDENTIALS names the centre's credentials file;
- sh blocks run in bash (``set -e -o pipefail``) with ``medsettle`` as ``python -m medsettle`` of this
  interpreter (a shim first on PATH); sizes are kept small: a ``--count``, ``--bills`` or ``--persons`` of
  more than SMALL becomes SMALL;
- python blocks run in a fresh interpreter; a json block is a bill, settled on both engines against the
  persons.csv an earlier block wrote: it must settle (infcode 0) with the same answer on both.

An unmarked block that fails fails the test, naming its line in README.md.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import click
import pytest

from centre_rig import ServedCentre
from medsettle import credentials
from medsettle.cli import main as medsettle_main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
DEFAULT_CENTRE = "http://127.0.0.1:8901/"
SMALL = 1000
BLOCK_TIMEOUT = 120  # seconds: a bound, not an expectation (the whole file runs in about half a minute)
MARKER = re.compile(r"<!--\s*readme-test:\s*(?P<kind>[\w-]+)\s*(?:\((?P<reason>[^)]*)\))?\s*-->")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence in README.md
    lang: str
    text: str
    mark: str  # "" (run), "skip" or "centre"
    reason: str


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of ``text`` with the readme-test marker on the line before its fence, if any."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise ValueError(f"line {i + 1}: a code block that is never closed")
        before = lines[i - 1] if i > 0 else ""
        marker = MARKER.search(before)
        blocks.append(
            Block(
                i + 1,
                fence.group(1),
                "\n".join(lines[i + 1 : end]) + "\n",
                marker.group("kind") if marker else "",
                (marker.group("reason") or "") if marker else "",
            )
        )
        i = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def test_every_marker_is_known_and_every_skip_says_why():
    text = README.read_text(encoding="utf-8")
    markers = list(MARKER.finditer(text))
    assert markers, "README.md has no readme-test markers: the set-up block at its top needs one"
    for m in markers:
        assert m.group("kind") in ("skip", "centre"), f"unknown readme-test marker {m.group(0)!r}"
    marked = [b for b in BLOCKS if b.mark]
    assert len(marked) == len(markers), "a readme-test marker must be on the line right before a code fence"
    for b in marked:
        if b.mark == "skip":
            assert b.reason.strip(), f"README.md line {b.line}: a skipped block must say why"
    assert BLOCKS[0].mark == "skip" and "pip install" in BLOCKS[0].text, "the set-up block is not run here"
    assert [b for b in BLOCKS if not b.mark], "no README block is run"


def test_readme_blocks_run(tmp_path):
    """Every block not marked skip runs, in README order, in one directory."""
    work = tmp_path / "work"
    work.mkdir()
    env = _environment(tmp_path)
    centre: ServedCentre | None = None
    try:
        for block in BLOCKS:
            if block.mark == "skip":
                continue
            url = None
            if block.mark == "centre":
                if centre is None:
                    centre = ServedCentre(tmp_path / "centre-data", env=env, module="medsettle").start()
                    env = {**env, credentials.ENV_VAR: str(centre.credentials_file)}  # as a reader's would find it
                url = centre.url
            _run_block(block, work, env, url)
    finally:
        if centre is not None:
            centre.stop()


def test_settlement_worked_example(tmp_path):
    """docs/settlement.md's worked example: its commands print what it says, on both engines."""
    blocks = readme_blocks((ROOT / "docs" / "settlement.md").read_text(encoding="utf-8"))
    commands = next(b for b in blocks if b.lang == "sh" and "stay.jsonl" in b.text)
    printed = next(b for b in blocks if b.lang == "json" and '"W1"' in b.text)
    expected = [json.loads(line, parse_float=Decimal) for line in printed.text.splitlines() if line.strip()]
    work = tmp_path / "work"
    work.mkdir()
    env = _environment(tmp_path)
    _check(["bash", "-c", "set -e -o pipefail\n" + commands.text], work, env, "docs/settlement.md example")
    for engine in ("core", "reference"):
        out = _check(
            ["medsettle", "settle", "--engine", engine, "--persons", "persons.csv", "stay.jsonl"],
            work,
            env,
            f"docs/settlement.md example ({engine})",
        )
        got = [json.loads(line, parse_float=Decimal) for line in out.splitlines() if line.startswith("{")]
        for answer in got:
            answer["output"].pop("feedetail")
            answer["output"]["setlinfo"].pop("setl_time")
        assert got == expected, f"docs/settlement.md's worked example is not what the {engine} engine answers"


def test_messages_example(tmp_path):
    """docs/messages.md's 2102 request, sent to a fresh centre, gets the answer the page shows."""
    blocks = [b for b in readme_blocks((ROOT / "docs" / "messages.md").read_text(encoding="utf-8")) if b.lang == "json"]
    request = next(json.loads(b.text, parse_float=Decimal) for b in blocks if '"infno": "2102"' in b.text)
    documented = next(json.loads(b.text, parse_float=Decimal) for b in blocks if '"infcode": 0' in b.text)
    centre = ServedCentre(tmp_path / "centre-data", env=_environment(tmp_path), module="medsettle").start()
    try:
        signin = _post(
            centre,
            {
                "infno": "9001",
                "msgid": "P33030000001202603020900000001",
                "fixmedins_code": request["fixmedins_code"],
                "input": {"signIn": {"opter_no": "001"}},
            },
        )
        assert signin["infcode"] == 0, signin["err_msg"]
        answer = _post(centre, {**request, "sign_no": signin["output"]["signinoutb"]["sign_no"]})
    finally:
        centre.stop()
    for body in (answer, documented):
        for key in ("inf_refmsgid", "refmsg_time", "respond_time"):
            body.pop(key)
        body["output"]["setlinfo"].pop("setl_time")
        body["output"]["setlinfo"].pop("age")  # on the day it was answered
    assert answer == documented, "docs/messages.md's example answer is not what the centre answers"


def _post(centre: ServedCentre, body: dict) -> dict:
    headers = {"Content-Type": "application/json", **centre.signed_headers(body)}
    request = urllib.request.Request(centre.url, json.dumps(body, default=str, ensure_ascii=False).encode(), headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read(), parse_float=Decimal)


def test_documents_name_no_internal_notes():
    """Users never see the design notes: README and docs/ name only what is in the repository."""
    assert DOCS, "docs/ has no documents"
    for path in [README, *DOCS]:
        text = path.read_text(encoding="utf-8")
        for name in ("DOMAIN.md", "DESIGN.md", "PCSC.md", "../shared", "seeds/"):
            assert name not in text, f"{path.relative_to(ROOT)} names {name}, which users do not have"
        cited = re.search(r"\bseeds? \d{3}", text)
        assert cited is None, f"{path.relative_to(ROOT)} cites {cited.group(0)!r} of the design notes' sources"


def test_relative_links_resolve():
    for path in [README, *DOCS]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            assert (path.parent / target).exists(), f"{path.relative_to(ROOT)} links to missing {target}"


def test_sections_cited_in_code_exist():
    """A comment or docstring citing docs/<name>.md 'Section' names a document and a heading it has."""
    headings = {
        path.name: {
            line.lstrip("#").strip() for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")
        }
        for path in DOCS
    }
    cited = set()
    for path in sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "ext").glob("*")]):
        if path.suffix not in (".py", ".pyx", ".pxd", ".pyi"):
            continue
        for name, section in re.findall(r"docs/(\w+\.md) '([^']+)'", path.read_text(encoding="utf-8")):
            cited.add((path.relative_to(ROOT), name, section))
    assert cited
    for path, name, section in sorted(cited):
        assert name in headings, f"{path} cites docs/{name}, which does not exist"
        assert section in headings[name], f"{path} cites docs/{name} '{section}': it has no such heading"


def test_commands_named_in_docs_and_docstrings_exist():
    """Every `medsettle COMMAND [SUBCOMMAND]` quoted in README, docs/ or the source is a real command."""
    sources = [README, *DOCS, *sorted((ROOT / "src" / "medsettle").rglob("*.py"))]
    named = set()
    for path in sources:
        for words in re.findall(r"`+medsettle((?: [a-z][a-z-]*)+)", path.read_text(encoding="utf-8")):
            named.add((path.relative_to(ROOT), tuple(words.split())))
    assert named
    for path, words in sorted(named):
        command: click.Command = medsettle_main
        for depth, word in enumerate(words[:2]):
            if not isinstance(command, click.Group):
                break
            sub = command.commands.get(word)
            if sub is None and depth > 0:  # an argument of a group that takes one (terminal's shell)
                break
            assert sub is not None, f"{path} names `medsettle {' '.join(words)}`: there is no command {word!r}"
            command = sub


# -- running blocks ------------------------------------------------------------------------------


def _environment(tmp_path: Path) -> dict[str, str]:
    """PATH with a `medsettle` that is `python -m medsettle` of this interpreter; data in tmp_path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "medsettle"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m medsettle "$@"\n')
    shim.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        "MEDSETTLE_DATA_DIR": str(tmp_path / "medsettle-data"),
    }
    env.pop("MEDSETTLE_CRASH_AT", None)
    return env


def _run_block(block: Block, work: Path, env: dict[str, str], centre_url: str | None) -> None:
    where = f"README.md line {block.line} ({block.lang} block)"
    if block.lang == "sh":
        script = "\n".join(_small(_with_centre(line, centre_url)) for line in block.text.splitlines())
        _check(["bash", "-c", "set -e -o pipefail\n" + script], work, env, where)
    elif block.lang == "python":
        code = block.text.replace(DEFAULT_CENTRE, centre_url) if centre_url else block.text
        path = work / f"readme_block_{block.line}.py"
        path.write_text(code, encoding="utf-8")
        _check([sys.executable, str(path)], work, env, where)
    elif block.lang == "json":
        _settle_bill(block, work, env, where)
    else:
        pytest.fail(f"{where}: a block of language {block.lang!r} is neither run nor marked skip")


def _settle_bill(block: Block, work: Path, env: dict[str, str], where: str) -> None:
    """The bill settles for a person of the population an earlier block wrote, the same on both engines."""
    bill = json.loads(block.text)
    persons = work / "persons.csv"
    assert persons.exists(), f"{where}: no persons.csv written by an earlier block to settle the bill against"
    (work / "readme_bill.jsonl").write_text(json.dumps(bill, ensure_ascii=False) + "\n", encoding="utf-8")
    answers = []
    for engine in ("core", "reference"):
        out = _check(
            ["medsettle", "settle", "--engine", engine, "--persons", "persons.csv", "readme_bill.jsonl"],
            work,
            env,
            where,
        )
        answer = json.loads(out.splitlines()[0])
        assert answer["infcode"] == 0, f"{where}: the bill does not settle ({engine}): {answer.get('err_msg')}"
        answer["output"]["setlinfo"].pop("setl_time", None)  # the same on both, but not what is compared here
        answers.append(answer)
    assert answers[0] == answers[1], f"{where}: the engines disagree on the bill"


def _check(argv: list[str], cwd: Path, env: dict[str, str], where: str) -> str:
    try:
        done = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT, check=False
        )  # a failure is reported below, with the block's output
    except subprocess.TimeoutExpired:
        pytest.fail(f"{where}: still running after {BLOCK_TIMEOUT} s")
    if done.returncode != 0:
        pytest.fail(f"{where} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def _small(line: str) -> str:
    """Keep sizes small: a --count, --bills or --persons above SMALL becomes SMALL."""

    def shrink(m: re.Match) -> str:
        n = int(m.group(2).replace("_", "").replace(",", ""))
        return f"--{m.group(1)} {min(n, SMALL)}"

    return re.sub(r"--(count|bills|persons) (\d[\d_,]*)\b", shrink, line)


def _with_centre(line: str, url: str | None) -> str:
    if not url:
        return line
    return line.replace("medsettle terminal ", f"medsettle terminal --centre {url} ").replace(DEFAULT_CENTRE, url)
