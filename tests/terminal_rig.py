"""What the counter's scenario tests share: a proxy that can lose the centre's answers, counters with their
own journals, the terminal CLI run as a process, and the checks that no fen was lost or paid twice. The
centre itself is centre_rig's ServedCentre."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import os
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from decimal import Decimal
from pathlib import Path

from centre_rig import CODES, PHARMACY, POLICY, ServedCentre, default_registry, first_person
from medsettle import credentials
from medsettle.centre.institutions import default_institutions
from medsettle.seams import SystemClock
from medsettle.terminal import CentreClient, Counter, CounterStore, Identity

ITEMS = [
    {"med_list_codg": CODES[0], "pric": "12.50", "cnt": "2"},
    {"med_list_codg": CODES[1], "pric": "30.00", "cnt": "1"},
]
ITEM_ARGS = [f"{i['med_list_codg']}:{i['pric']}:{i['cnt']}" for i in ITEMS]  # the same items on a command line


def patient() -> str:
    """The psn_no of the patient the counter scenarios serve: the first 130100 employee."""
    return first_person("130100", "310")


@functools.cache
def employees(region: str = "130100") -> list[str]:
    """The psn_no of every employee (310) insured in ``region`` in the default population, in its order."""
    population = default_registry().population
    described = (population.describe(i) for i in range(len(population)))
    return [str(d["psn_no"]) for d in described if d["insuplc_admdvs"] == region and d["insutype"] == "310"]


def patient_certno(psn_no: str | None = None) -> str:
    """The patient's ID number (or person ``psn_no``'s), as a counter without a card reader identifies them."""
    return default_registry().identities[psn_no or patient()].certno


def by_certno(psn_no: str | None = None) -> Identity:
    return Identity("02", patient_certno(psn_no))


def terminal_command(url: str, journal: Path, code: str = PHARMACY) -> list[str]:
    """`medsettle terminal` of institution ``code`` on ``journal`` against ``url``, with short resend limits."""
    return [sys.executable, "-m", "medsettle.cli", "terminal", "-i", code, "--centre", url, "--journal", str(journal),
            "--resend-for", "0.5", "--timeout", "2"]  # fmt: skip


def terminal(
    url: str, journal: Path, *args: str, crash_at: str | None = None, check: bool = True, code: str = PHARMACY
) -> subprocess.CompletedProcess[str]:
    """`medsettle terminal` as a process, optionally told to crash at ``crash_at`` (MEDSETTLE_CRASH_AT)."""
    env = {**os.environ}
    env.pop("MEDSETTLE_CRASH_AT", None)
    if crash_at:
        env["MEDSETTLE_CRASH_AT"] = crash_at
    result = subprocess.run(
        [*terminal_command(url, journal, code), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"terminal {args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


class LossyProxy:
    """A TCP proxy in front of the centre. ``drop`` names infnos whose answers are lost: the request
    reaches the centre (and is applied), the answer is read and thrown away, the connection closed."""

    def __init__(self, upstream_url: str):
        host_port = upstream_url.split("//")[1].strip("/")
        self.upstream = (host_port.split(":")[0], int(host_port.split(":")[1]))
        self.drop: set[str] = set()
        self.dropped = 0
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(10)
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = self.request.recv(65536)
                    if not chunk:
                        return
                    request += chunk
                head, _, body = request.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(body) < length:
                    body += self.request.recv(65536)
                with socket.create_connection(proxy.upstream, timeout=10) as up:
                    up.sendall(head + b"\r\n\r\n" + body)
                    answer = b""
                    while chunk := up.recv(65536):
                        answer += chunk
                if any(f'"infno": "{infno}"'.encode() in body for infno in proxy.drop):
                    proxy.dropped += 1
                    return  # the centre applied it; the counter never hears
                self.request.sendall(answer)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


SAF_PHARMACY = "P13010000002"  # the default institutions' store-and-forward pharmacy


class ShiftedClock(SystemClock):
    """The real clock with its wall time set back (or on) by ``shift``: a counter that lives days ago."""

    def __init__(self, shift: dt.timedelta) -> None:
        self.shift = shift

    def now(self) -> dt.datetime:
        return super().now() + self.shift


def days_ago(days: int) -> ShiftedClock:
    return ShiftedClock(-dt.timedelta(days=days))


class FakeClock:
    """A virtual clock: time moves only when the code under test sleeps (or the test advances it), so a
    resend loop's back-off costs no real time. ``sleeps`` lists every wait asked for."""

    def __init__(self, start: dt.datetime) -> None:
        self.start, self.elapsed = start, 0.0
        self.sleeps: list[float] = []

    def now(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=self.elapsed)

    def time(self) -> float:
        return self.now().timestamp()

    def monotonic(self) -> float:
        return self.elapsed

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.elapsed += max(0.0, seconds)


def _credential(code: str) -> credentials.InstitutionCredential | None:
    """The institution's credential of the centre a test started last; None before any (a counter that
    never reaches a centre, or a test of what an unsigned request gets)."""
    try:
        return credentials.load().institution(code)
    except credentials.CredentialsError:
        return None


def make_counter(url: str, journal_path, code: str = PHARMACY, **kwargs) -> Counter:
    return Counter(
        code,
        CounterStore(journal_path),
        CentreClient(url, timeout=2.0, credential=_credential(code)),
        resend_for=kwargs.pop("resend_for", 0.6),
        **kwargs,
    )


def centre_records(server: ServedCentre, sign_no: str, code: str = PHARMACY) -> list[dict]:
    """What the centre holds for institution ``code`` today, as 3202 lists it (centre_only when we send nothing);
    ``sign_no`` is one of that institution's."""
    from medsettle.timeutil import now_shanghai

    day = now_shanghai().date().isoformat()
    answer, _ = server.call(
        "3202",
        {"data": {"stmt_begndate": day, "stmt_enddate": day}, "detail": []},
        sign_no=sign_no,
        fixmedins_code=code,
    )
    assert answer["infcode"] == 0, answer
    return answer["output"]["detail"]


def balance_of(server: ServedCentre, sign_no: str, code: str = PHARMACY, psn_no: str | None = None) -> Decimal:
    """The patient's (or person ``psn_no``'s) account balance, asked by institution ``code`` (whose sign_no
    ``sign_no`` is)."""
    data = {"mdtrt_cert_type": "02", "certno": patient_certno(psn_no)}
    answer, _ = server.call("1101", {"data": data}, sign_no=sign_no, fixmedins_code=code)
    return Decimal(str(answer["output"]["insuinfo"][0]["balc"]))


# -- one centre for a module: every test its own institution ---------------------------------------------

COPIES = 60  # of each default 130100 institution, in a shared centre
_next_copy: dict[str, Iterator[int]] = {}


def copy_of(like: str, n: int) -> str:
    """The code of the ``n``-th copy (1..COPIES) of the default institution ``like`` (its tier and failure
    policy): P13010000001's copies are P13010000101, P13010000201, ...; the last five digits stay unique."""
    return f"{like[:7]}{n:03d}{like[10:]}"


def own_institution(like: str = PHARMACY) -> str:
    """A copy of ``like`` no other test of this run has used: its centre records, reconciliation and sign-ins
    are the test's own in a centre that other tests share."""
    n = next(_next_copy.setdefault(like, itertools.count(1)))
    assert n <= COPIES, f"more than {COPIES} tests asked for a copy of {like}"
    return copy_of(like, n)


def institutions_toml() -> str:
    """A ``serve --institutions`` file: the default institutions and COPIES copies of each 130100 one."""
    lines = []
    for institution in default_institutions(POLICY):
        copies = range(1, COPIES + 1) if institution.admdvs == "130100" else ()
        for code in [institution.fixmedins_code, *(copy_of(institution.fixmedins_code, n) for n in copies)]:
            lines.append("[[institution]]")
            for key, value in institution.model_dump(mode="json").items():
                value = code if key == "fixmedins_code" else value
                lines.append(f"{key} = {value}" if isinstance(value, int) else f'{key} = "{value}"')
            lines.append("")
    return "\n".join(lines)


def institutions_args(where: Path) -> list[str]:
    """``serve`` arguments for the default institutions and every ``own_institution`` code (the file in
    ``where``): another centre a test starts that must know the test's own institution."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "institutions.toml").write_text(institutions_toml(), encoding="utf-8")
    return ["--institutions", str(where / "institutions.toml")]


def dead_url() -> str:
    """The URL of a port nobody listens on: the centre away, as its counters find it (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/"


@contextmanager
def shared_centre(where: Path, engine: str | None = None) -> Iterator[ServedCentre]:
    """A served centre for a module's tests (started once), which knows every ``own_institution`` code.
    MEDSETTLE_CREDENTIALS is put back as it was when it stops."""
    before = os.environ.get(credentials.ENV_VAR)
    server = ServedCentre(where / "centre", engine=engine, args=institutions_args(where))
    try:
        with server:
            yield server
    finally:
        if before is None:
            os.environ.pop(credentials.ENV_VAR, None)
        else:
            os.environ[credentials.ENV_VAR] = before


class SharedCentres:
    """A module's shared centres, one per engine, each started when a test first asks for it and all stopped
    by ``close`` (a module-scoped fixture's teardown)."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.stack = ExitStack()
        self.centres: dict[str, ServedCentre] = {}

    def __call__(self, engine: str = "core") -> ServedCentre:
        if engine not in self.centres:
            self.centres[engine] = self.stack.enter_context(shared_centre(self.where / engine, engine))
        else:  # another test's centre may have been started since: clients find this one's credentials again
            os.environ[credentials.ENV_VAR] = str(self.centres[engine].credentials_file)
        return self.centres[engine]

    def close(self) -> None:
        self.stack.close()
