"""The served centre as tests meet it: a real `medsettle serve` process on 127.0.0.1 with its own data
directory, the default world it serves (policy, population, registry, institutions), and the fixtures built
on them.

Client processes a test starts (``medsettle terminal``, ``persons --centre``) find the credentials of the
centre started last: ``start`` sets MEDSETTLE_CREDENTIALS to its file, which stays set when the centre
stops (a counter keeps its credentials while the centre is away) until the test ends (the autouse fixture
``_credentials_of_this_test``: the one global this module edits, and puts back).
This module imports no test module, so that it can move into
``medsettle.testing`` as a pytest plugin: tests/conftest.py loads it with ``pytest_plugins``. The default
population and registry are built on first use (about a second), not when a test module is imported.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import json
import os
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from medsettle import credentials
from medsettle.centre.registry import Registry, id_check_digit
from medsettle.engine import Population
from medsettle.policy import load_default_policy

POLICY = load_default_policy()
PHARMACY = "P13010000001"  # the default institutions' online pharmacy
HOSPITAL = "H13010000001"  # and hospital
CODES = [item.med_list_codg for item in POLICY.region("130100").catalogues[0].items if item.chrgitm_lv == "01"]


@functools.cache
def default_registry() -> Registry:
    """The identities and cards `serve` gives its default population (10,000 persons, seed 0)."""
    return Registry.generate(Population.generate(POLICY, 10_000, seed=0))


def default_population() -> Population:
    """What `serve` generates when it is given no persons file."""
    return default_registry().population


def card_of(psn_no: str) -> str:
    """The number of the person's first card in the default registry."""
    return default_registry().cards_of[psn_no][0]


def certificate_of(psn_no: str, cert_type: str = "03") -> dict[str, str]:
    """The certificate fields a counter sends for the person (docs/messages.md 'Certificates'): 03 the first
    card's number and card_sn (default), or 02 the ID number."""
    if cert_type == "02":
        return {"mdtrt_cert_type": "02", "mdtrt_cert_no": default_registry().identities[psn_no].certno}
    card = default_registry().cards[card_of(psn_no)]
    return {"mdtrt_cert_type": "03", "mdtrt_cert_no": card.card_no, "card_sn": card.card_sn}


@functools.cache
def generated_registry(size: int, seed: int = 0) -> Registry:
    """The registry an in-process Centre makes for ``Population.generate(POLICY, size, seed=seed)``."""
    return Registry.generate(Population.generate(POLICY, size, seed=seed))


def id_certificate(psn_no: str, size: int) -> dict[str, str]:
    """The 02 certificate (ID number) of a person of an in-process Centre of ``size`` generated persons."""
    return {"mdtrt_cert_type": "02", "mdtrt_cert_no": generated_registry(size).identities[psn_no].certno}


@functools.cache
def first_person(region: str = "130100", insutype: str = "310") -> str:
    """The psn_no of the default population's first person insured in ``region`` under ``insutype``."""
    population = default_population()
    for i in range(len(population)):
        d = population.describe(i)
        if d["insuplc_admdvs"] == region and d["insutype"] == insutype:
            return str(d["psn_no"])
    raise AssertionError(f"no person insured in {region} under {insutype}")


@functools.cache
def persons_insured(region: str = "130100", insutype: str = "310") -> tuple[str, ...]:
    """The psn_nos of the default population insured in ``region`` under ``insutype``, in its order (the
    first is ``first_person``'s): tests sharing one served centre take each their own of them."""
    population = default_population()
    described = (population.describe(i) for i in range(len(population)))
    return tuple(str(d["psn_no"]) for d in described if d["insuplc_admdvs"] == region and d["insutype"] == insutype)


def certno(region: str, born: str, seq: str) -> str:
    """A well-formed ID number (right check digit) for someone born in ``region`` on ``born`` (YYYYMMDD)."""
    first17 = f"{region}{born}{seq}"
    return first17 + id_check_digit(first17)


# An admin 'enrol' body for an employee the default registry does not hold.
EMPLOYEE = {
    "action": "enrol",
    "insuplc_admdvs": "130100",
    "insutype": "310",
    "psn_type": "11",
    "certno": certno("130100", "19900315", "123"),
    "psn_name": "周新",
    "gend": "1",
    "brdy": "1990-03-15",
    "emp_no": "U130100001",
    "emp_name": "石家庄第一机械厂",
}


def envelope(
    infno: str, input_: Any, *, sign_no: str, msgid: str, fixmedins_code: str = PHARMACY, insuplc: str = "130100"
) -> dict:
    """The usual envelope of a test's request: a clerk at a counter of ``fixmedins_code``."""
    return {
        "infno": infno,
        "msgid": msgid,
        "mdtrtarea_admvs": "130100",
        "insuplc_admdvs": insuplc,
        "recer_sys_code": "MEDSETTLE",
        "dev_no": "D1",
        "infver": "V1.0",
        "opter_type": "1",
        "opter": "001",
        "opter_name": "clerk",
        "inf_time": "2026-03-02 10:00:00",
        "fixmedins_code": fixmedins_code,
        "fixmedins_name": "x",
        "sign_no": sign_no,
        "input": input_,
    }


class ServedCentre:
    """`medsettle serve --port 0 --data-dir DATA_DIR` on 127.0.0.1, and the calls a test makes to it.

    ``start`` waits at most ``start_within`` seconds for the 'listening on' line; a thread then keeps
    reading the process's output (so a chatty centre never blocks on a full pipe) and keeps its last
    lines for the message of a failed start. The same data directory may be started again: the
    journal is replayed.
    """

    msgids = itertools.count(1)  # msgids stay unique across restarts of the centre within a test run

    def __init__(
        self,
        data_dir: Path,
        *,
        engine: str | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        module: str = "medsettle.cli",
        start_within: float = 120.0,
        preexec: Callable[[], None] | None = None,
    ) -> None:  # ok-float: seconds
        self.data_dir = Path(data_dir)
        self.args = [*args, *(["--engine", engine] if engine else [])]
        self.env = dict(os.environ if env is None else env)
        self.module = module  # "medsettle" runs it as the README does, through the package's __main__
        self.start_within = start_within
        self.preexec = preexec  # run in the child before `serve` (a resource limit, say)
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.output: collections.deque[str] = collections.deque(maxlen=200)

    def start(self) -> ServedCentre:
        self.url = ""  # a restart listens on another port
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "serve", "--port", "0", "--data-dir", str(self.data_dir), *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**self.env, "PYTHONUNBUFFERED": "1"},
            preexec_fn=self.preexec,
        )
        listening = threading.Event()
        threading.Thread(target=self._read, args=(self.proc, listening), daemon=True).start()
        if not listening.wait(self.start_within) or not self.url:
            self.stop()
            raise AssertionError(f"the centre did not start within {self.start_within} s:\n" + "".join(self.output))
        os.environ[credentials.ENV_VAR] = str(self.credentials_file)
        return self

    def _read(self, proc: subprocess.Popen[str], listening: threading.Event) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.output.append(line)
            if not listening.is_set() and "listening on" in line:
                self.url = line.split("listening on ")[1].split()[0]
                listening.set()
        listening.set()  # the process ended: start() stops waiting (without a url)

    def stop(self) -> None:
        """Terminate the centre (a clean shutdown); one that has not stopped 30 s later is killed, and said so."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    "the centre did not stop within 30 s of SIGTERM (killed):\n" + "".join(self.output)
                ) from None

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as a power cut would have it."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def __enter__(self) -> ServedCentre:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def credentials_file(self) -> Path:
        """The clients' copy of the centre's credentials, written by ``serve`` at its start."""
        return self.data_dir / credentials.FILE_NAME

    def credentials(self) -> credentials.Credentials:
        return credentials.load(self.credentials_file)

    def client_env(self) -> dict[str, str]:
        """The environment of a client process (terminal, persons --centre) that finds these credentials."""
        return {**os.environ, credentials.ENV_VAR: str(self.credentials_file)}

    def signed_headers(self, body: Any, raw: bytes | None = None, sign_as: str | None = None) -> dict[str, str]:
        """The x-tif-* headers a client of the institution the body names would send (``sign_as`` another)."""
        code = sign_as
        if code is None:
            try:
                named = json.loads(raw) if raw is not None else body
            except (ValueError, RecursionError):  # not JSON, or nested past what json reads
                named = None
            code = named.get("fixmedins_code") if isinstance(named, dict) else None
            code = code if isinstance(code, str) and code in self.credentials().institutions else PHARMACY
        return self.credentials().institution(code).headers()

    def post(
        self,
        body: Any,
        raw: bytes | None = None,
        path: str = "",
        *,
        headers: Mapping[str, str] | None = None,
        sign_as: str | None = None,
    ) -> Any:
        """POST ``body`` as JSON (or ``raw`` bytes as they are) and return the decoded answer, errors included.

        Signed as the institution the body names (``sign_as`` another), or, to /admin, with the agency's
        token; ``headers`` replace those (a test of the gateway sends its own)."""
        data = raw if raw is not None else json.dumps(body).encode()
        if headers is None:
            if path.strip("/") == "admin":
                headers = self.credentials().admin_headers()
            else:
                headers = {"Content-Type": "application/json", **self.signed_headers(body, raw, sign_as)}
        req = urllib.request.Request(self.url + path, data=data, headers=dict(headers))
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())

    @classmethod
    def next_msgid(cls, code: str = PHARMACY) -> str:
        return f"{code}20260302100000{next(cls.msgids):04d}"

    def call(
        self, infno: str, input_: Any, *, sign_no: str = "", fixmedins_code: str = PHARMACY, msgid: str | None = None
    ) -> tuple[Any, str]:
        """One wire call with the usual envelope; returns (answer, msgid) so a test can send it again."""
        msgid = msgid or self.next_msgid(fixmedins_code)
        return self.post(envelope(infno, input_, sign_no=sign_no, msgid=msgid, fixmedins_code=fixmedins_code)), msgid

    def admin(self, body: Any) -> Any:
        """One call to the centre's admin endpoint (enrolment, cards, persons)."""
        return self.post(body, path="admin")

    def sign_in(self, code: str = PHARMACY) -> str:
        """9001 for institution ``code``; returns its sign_no."""
        answer, _ = self.call(
            "9001", {"signIn": {"opter_no": "001", "mac": "00:11", "ip": "127.0.0.1"}}, fixmedins_code=code
        )
        assert answer["infcode"] == 0, answer
        return answer["output"]["signinoutb"]["sign_no"]

    def journal_count(self) -> int:
        """Entries in the centre's journal: its ``--db`` PostgreSQL database if it was given one, else the
        SQLite file in its data directory."""
        db = self.args[self.args.index("--db") + 1] if "--db" in self.args else ""
        if db.startswith(("postgresql://", "postgres://")):
            import psycopg  # only the PostgreSQL runs need it

            with psycopg.connect(db) as pg:
                return int(pg.execute("SELECT count(*) FROM journal").fetchone()[0])
        conn = sqlite3.connect(db or self.data_dir / "centre.db")
        try:
            return conn.execute("SELECT count(*) FROM journal").fetchone()[0]
        finally:
            conn.close()


def admin_ok(answer: dict) -> dict:
    """An admin answer that must have succeeded."""
    assert answer.get("ok"), answer
    return answer


def admin_refused(server: ServedCentre, body: dict, field: str, *words: str) -> dict:
    """The admin request is refused naming ``field`` (and saying ``words``), and the journal gets nothing."""
    before = server.journal_count()
    answer = server.admin(body)
    assert not answer.get("ok"), answer
    assert f"field {field}" in answer["error"], answer
    for word in words:
        assert word in answer["error"], answer
    assert server.journal_count() == before, "a refusal journaled something"
    return answer


@contextlib.contextmanager
def shared_centre(data_dir: Path, **kwargs: Any) -> Iterator[ServedCentre]:
    """A served centre the tests of a module share (a module-scoped fixture's body): started once, stopped
    at the end, MEDSETTLE_CREDENTIALS put back as it was before. Each test sharing it takes its own persons,
    institutions or msgids, and counts journal entries only as a difference across its own requests."""
    before = os.environ.get(credentials.ENV_VAR)
    try:
        with ServedCentre(data_dir, **kwargs) as centre:
            yield centre
    finally:
        if before is None:
            os.environ.pop(credentials.ENV_VAR, None)
        else:
            os.environ[credentials.ENV_VAR] = before


@pytest.fixture()
def served_centre(tmp_path: Path) -> Iterator[ServedCentre]:
    """A served centre on 127.0.0.1 with a fresh data directory (tmp_path / "centre"), stopped after the test."""
    with ServedCentre(tmp_path / "centre") as centre:
        yield centre


@pytest.fixture(autouse=True)
def _credentials_of_this_test() -> Iterator[None]:
    """MEDSETTLE_CREDENTIALS as it was before the test, whatever centre the test started."""
    before = os.environ.get(credentials.ENV_VAR)
    yield
    if before is None:
        os.environ.pop(credentials.ENV_VAR, None)
    else:
        os.environ[credentials.ENV_VAR] = before
