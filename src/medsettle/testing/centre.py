"""A real ``medsettle serve`` process for a test: started on 127.0.0.1 at a free port with its own data
directory, its URL read from its 'listening on' line, its credentials file read back, and the calls a test
makes to it (signed requests, the admin API). Stopping it is bounded: SIGTERM, then SIGKILL if it lingers.

Only the standard library and :mod:`medsettle.credentials` are imported here; the default population (for
:meth:`RunningCentre.person`) is built on first use.
"""

from __future__ import annotations

import collections
import functools
import itertools
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import credentials
from ..seams import SYSTEM_CLOCK, Clock, OffsetClock

START_WITHIN_S = 60.0  # the default population is generated at start: a few seconds on a slow machine
STOP_WITHIN_S = 15.0
REQUEST_TIMEOUT_S = 30.0


class CentreStartError(RuntimeError):
    """The centre process did not say it was listening in time, or exited; the message holds its last lines."""


@dataclass(frozen=True)
class Person:
    """A person of the centre's default population: their psn_no and ID number (the 02 certificate)."""

    psn_no: str
    certno: str
    insuplc_admdvs: str
    insutype: str


@functools.cache
def default_registry() -> Any:
    """The registry ``serve`` gives its default population (10,000 persons, seed 0): built on first use."""
    from ..centre.registry import Registry  # noqa: PLC0415 - heavy: only when a test asks for a person
    from ..engine import Population  # noqa: PLC0415
    from ..policy import load_default_policy  # noqa: PLC0415

    return Registry.generate(Population.generate(load_default_policy(), 10_000, seed=0))


@functools.cache
def _default_persons() -> tuple[Person, ...]:
    """Every person of the default population, in its order."""
    registry = default_registry()
    population = registry.population
    persons = []
    for i in range(len(population)):
        d = population.describe(i)
        psn_no = str(d["psn_no"])
        persons.append(Person(psn_no, registry.identities[psn_no].certno, d["insuplc_admdvs"], d["insutype"]))
    return tuple(persons)


@functools.cache
def catalogue_codes(region: str = "130100") -> tuple[str, ...]:
    """The class-A (chrgitm_lv 01) item codes of the default policy's first catalogue of ``region``."""
    from ..policy import load_default_policy  # noqa: PLC0415

    items = load_default_policy().region(region).catalogues[0].items
    return tuple(item.med_list_codg for item in items if item.chrgitm_lv == "01")


class RunningCentre:
    """``medsettle serve --port 0 --data-dir DATA_DIR`` and what a test does with it.

    ``start`` waits at most ``start_within`` seconds for the 'listening on' line; a thread keeps reading
    the process's output (a chatty centre never blocks on a full pipe) and keeps its last lines for the
    message of a failed start. The same data directory may be started again (its journal is replayed)."""

    _msgids = itertools.count(1)

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        start_within: float = START_WITHIN_S,  # ok-float: seconds
        clock_file: str | os.PathLike[str] | None = None,
    ) -> None:
        """``clock_file``: the centre runs on the test clock of ``serve --clock-file`` (:class:`OffsetClock`,
        whose ``set_now`` and ``advance`` move it, also while it runs), and :meth:`post` signs on it."""
        self.data_dir = Path(data_dir)
        self.clock: Clock = SYSTEM_CLOCK
        self.args = list(args)
        if clock_file is not None:
            self.clock = OffsetClock(clock_file)
            self.args += ["--clock-file", os.fspath(clock_file)]
        self.env = dict(os.environ if env is None else env)
        self.start_within = start_within
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.output: collections.deque[str] = collections.deque(maxlen=200)
        self._credentials: credentials.Credentials | None = None

    # -- the process ---------------------------------------------------------------------------------

    def start(self) -> RunningCentre:
        """Start the process and return when it listens; CentreStartError (process killed) otherwise."""
        self.url, self._credentials = "", None  # a restart listens on another port
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "medsettle.cli", "serve", "--port", "0", "--data-dir", str(self.data_dir)]
        self.proc = subprocess.Popen(
            [*command, *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**self.env, "PYTHONUNBUFFERED": "1"},
        )
        listening = threading.Event()
        threading.Thread(target=self._read, args=(self.proc, listening), daemon=True).start()
        if not listening.wait(self.start_within) or not self.url:
            self.kill()
            raise CentreStartError(f"the centre did not start within {self.start_within} s:\n" + "".join(self.output))
        return self

    def _read(self, proc: subprocess.Popen[str], listening: threading.Event) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.output.append(line)
            if not listening.is_set() and "listening on " in line:
                self.url = line.split("listening on ")[1].split()[0]
                listening.set()
        listening.set()  # the process ended: start() stops waiting (without a url)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM (a clean shutdown); a centre still running ``STOP_WITHIN_S`` later is killed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_WITHIN_S)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as a power cut would have it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_WITHIN_S)

    def restart(self) -> RunningCentre:
        """Stop and start again on the same data directory (the journal is replayed; the port changes)."""
        self.stop()
        return self.start()

    def __enter__(self) -> RunningCentre:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- credentials ---------------------------------------------------------------------------------

    @property
    def credentials_file(self) -> Path:
        """The clients' copy of the centre's credentials, written by ``serve`` at its start."""
        return self.data_dir / credentials.FILE_NAME

    @property
    def credentials(self) -> credentials.Credentials:
        """Every institution's credential and the agency's token (read once per start)."""
        if self._credentials is None:
            self._credentials = credentials.load(self.credentials_file)
        return self._credentials

    def client_env(self) -> dict[str, str]:
        """The environment of a client process (``medsettle terminal``) that finds these credentials."""
        return {**os.environ, credentials.ENV_VAR: str(self.credentials_file)}

    # -- requests ------------------------------------------------------------------------------------

    def post(self, body: Any, *, institution: str | None = None, path: str = "") -> Any:
        """POST ``body`` as JSON signed as ``institution`` (default: the ``fixmedins_code`` the body names)
        and return the decoded answer, refusals included."""
        code = institution or (body.get("fixmedins_code") if isinstance(body, dict) else None)
        if not isinstance(code, str):
            raise ValueError("name the institution that signs the request (institution=...)")
        headers = {"Content-Type": "application/json", **self.credentials.institution(code).headers(clock=self.clock)}
        return self._send(path, json.dumps(body).encode(), headers)

    def admin(self, action: str, **fields: Any) -> Any:
        """One request to the agency's admin API (``card_record``, ``credit``, ``cancel_person``, ...)."""
        return self._send("admin", json.dumps({"action": action, **fields}).encode(), self.credentials.admin_headers())

    def _send(self, path: str, data: bytes, headers: Mapping[str, str]) -> Any:
        request = urllib.request.Request(self.url + path, data=data, headers=dict(headers))
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            return json.loads(error.read() or b"{}")

    def call(self, infno: str, input_: Any, *, institution: str, sign_no: str = "") -> Any:
        """One message with a usual envelope (a clerk of ``institution``, a fresh msgid); its answer."""
        msgid = f"{institution}{'20260302100000'}{next(self._msgids):04d}"
        return self.post(envelope(infno, input_, institution=institution, sign_no=sign_no, msgid=msgid))

    def sign_in(self, institution: str) -> str:
        """9001 for ``institution``; its sign_no."""
        answer = self.call(
            "9001", {"signIn": {"opter_no": "001", "mac": "00:11", "ip": "127.0.0.1"}}, institution=institution
        )
        if answer.get("infcode") != 0:
            raise AssertionError(f"9001 refused: {answer}")
        return str(answer["output"]["signinoutb"]["sign_no"])

    def settlements(self, institution: str, day: str) -> list[dict]:
        """What the centre holds for ``institution`` on ``day`` (YYYY-MM-DD), as 3202 lists it."""
        sign_no = self.sign_in(institution)
        data = {"stmt_begndate": day, "stmt_enddate": day}
        answer = self.call("3202", {"data": data, "detail": []}, institution=institution, sign_no=sign_no)
        if answer.get("infcode") != 0:
            raise AssertionError(f"3202 refused: {answer}")
        return list(answer["output"]["detail"])

    # -- the default world ---------------------------------------------------------------------------

    def person(self, insuplc_admdvs: str = "130100", insutype: str = "310", index: int = 0) -> Person:
        """The ``index``-th person of the default population insured in that region under that scheme
        (only for a centre started without ``--persons``). The population is built on first use (a second)."""
        found = [p for p in _default_persons() if p.insuplc_admdvs == insuplc_admdvs and p.insutype == insutype]
        return found[index]

    def bill(self, lines: int = 2, region: str = "130100") -> list[dict]:
        """``lines`` bill lines (class-A items of the default catalogue), as ``Counter.sell`` takes them."""
        codes = catalogue_codes(region)
        return [{"med_list_codg": codes[i], "pric": f"{10 + 5 * i}.00", "cnt": "1"} for i in range(lines)]


def envelope(infno: str, input_: Any, *, institution: str, sign_no: str, msgid: str) -> dict:
    """The envelope of one message from a clerk at a counter of ``institution`` (docs/messages.md)."""
    return {
        "infno": infno,
        "msgid": msgid,
        "mdtrtarea_admvs": institution[1:7],
        "insuplc_admdvs": institution[1:7],
        "recer_sys_code": "MEDSETTLE",
        "dev_no": "D1",
        "infver": "V1.0",
        "opter_type": "1",
        "opter": "001",
        "opter_name": "clerk",
        "inf_time": "2026-03-02 10:00:00",
        "fixmedins_code": institution,
        "fixmedins_name": "x",
        "sign_no": sign_no,
        "input": input_,
    }
