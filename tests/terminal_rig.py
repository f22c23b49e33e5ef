"""What the counter's scenario tests share: a proxy that can lose the centre's answers, counters with their
own journals, the terminal CLI run as a process, and the checks that no fen was lost or paid twice. The
centre itself is centre_rig's ServedCentre."""

from __future__ import annotations

import datetime as dt
import functools
import os
import socket
import socketserver
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

from centre_rig import CODES, PHARMACY, ServedCentre, default_registry, first_person
from medsettle import credentials
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
def patient_certno() -> str:
    """The patient's ID number, as a counter without a card reader identifies them."""
    return default_registry().identities[patient()].certno


def by_certno() -> Identity:
    return Identity("02", patient_certno())


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


def centre_records(server: ServedCentre, sign_no: str) -> list[dict]:
    """What the centre holds for the pharmacy today, as 3202 lists it (centre_only when we send nothing)."""
    from medsettle.timeutil import now_shanghai

    day = now_shanghai().date().isoformat()
    answer, _ = server.call(
        "3202", {"data": {"stmt_begndate": day, "stmt_enddate": day}, "detail": []}, sign_no=sign_no
    )
    assert answer["infcode"] == 0, answer
    return answer["output"]["detail"]


def balance_of(server: ServedCentre, sign_no: str) -> Decimal:
    answer, _ = server.call("1101", {"data": {"mdtrt_cert_type": "02", "certno": patient_certno()}}, sign_no=sign_no)
    return Decimal(str(answer["output"]["insuinfo"][0]["balc"]))
