"""The connections `medsettle serve` takes (issue 15, docs/messages.md "Connections"): at most --max-connections
open at once (default 80% of the open-file limit, its soft value raised to the hard one), the next one answered
HTTP 503 with the envelope (infcode -1, CENTRE_BUSY) and closed; a connection closed without a complete request
head within the head timeout, a body within the body timeout, or idle between requests past the idle timeout.

Each centre runs under an open-file limit of at most 1,024 (not with the 20,000 sockets of the report), with its
timeouts shortened through MEDSETTLE_HEAD_TIMEOUT / _BODY_ / _IDLE_ so that the file takes seconds. Every socket
is on 127.0.0.1, every wait is bounded.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from centre_rig import ServedCentre, envelope
from medsettle.centre.connections import TIMEOUT_VARIABLES, plan
from medsettle.cli.serve import serve
from platform_keys import ENVELOPE_KEYS

SLACK = 2.0  # seconds a close may come after its timeout on a loaded machine


def limit_files(soft: int, hard: int) -> Callable[[], None]:
    """A Popen preexec_fn: the centre starts with this open-file limit."""
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture()
def own_files() -> Iterator[None]:
    """This test process may hold the ~1,000 client sockets of a test (and its usual files)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2048
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"the open-file hard limit {hard} leaves too few sockets for the client side")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1" and parts.port, url
    return parts.hostname, parts.port


def line_with(centre: ServedCentre, text: str) -> str:
    """The one line of the centre's output holding ``text`` (its log follows its stdout: waited for, 10 s)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not [line for line in list(centre.output) if text in line]:
        time.sleep(0.02)
    found = [line for line in list(centre.output) if text in line]
    assert len(found) == 1, "".join(centre.output)
    return found[0]


def read_to_end(sock: socket.socket, within: float) -> bytes:  # ok-float: seconds
    """All the server sends until it closes (at most ``within`` seconds)."""
    data = b""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def busy_answer(data: bytes) -> dict:
    """The 503 a connection past the cap gets: the envelope with CENTRE_BUSY, the connection closed."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("ascii").split("\r\n")
    assert lines[0] == "HTTP/1.1 503 Service Unavailable", data
    assert "Connection: close" in lines and "Content-Type: application/json; charset=utf-8" in lines, lines
    length = next(int(line.split(": ")[1]) for line in lines if line.startswith("Content-Length: "))
    assert len(body) == length, data
    answer = json.loads(body)
    assert list(answer) == ENVELOPE_KEYS, answer
    assert answer["infcode"] == -1 and answer["output"] == {}, answer
    assert answer["err_msg"].startswith("CENTRE_BUSY: "), answer
    return answer


def closed_within(sock: socket.socket, within: float) -> float | None:  # ok-float: seconds
    """Seconds until the server closes ``sock`` (what it sends first is read and dropped), None if it did not
    within ``within`` seconds."""
    began = time.monotonic()
    deadline = began + within
    while True:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([sock], [], [], max(0.0, remaining))
        if not ready:
            if remaining <= 0:
                return None
            continue
        try:
            if not sock.recv(65536):
                return time.monotonic() - began
        except ConnectionResetError:
            return time.monotonic() - began


def sign_in_body(centre: ServedCentre) -> dict:
    return envelope(
        "9001",
        {"signIn": {"opter_no": "001", "mac": "00:11", "ip": "127.0.0.1"}},
        sign_no="",
        msgid=centre.next_msgid(),
    )


def test_past_the_cap_a_connection_is_answered_503_centre_busy_and_real_requests_succeed_once_idle_ones_close(
    tmp_path, own_files
):
    head = 2.5  # ok-float: seconds; long enough to open the cap's sockets (0.1 s), short enough for a quick test
    env = {**os.environ, "MEDSETTLE_HEAD_TIMEOUT": str(head)}
    # a soft limit of 512 under a hard one of 1024: serve raises it, and takes 80% of 1024
    with ServedCentre(tmp_path / "centre", env=env, preexec=limit_files(512, 1024)) as centre:
        assert "at most 819 connections (80% of the open-file limit 1024)" in line_with(centre, "started: ")
        centre.sign_in()  # a real request, answered
        where = address(centre.url)
        opened = time.monotonic()
        idle = [socket.create_connection(where, timeout=10) for _ in range(819)]  # up to the cap, silent
        past = []
        try:
            # past it: a 503 each, unasked (40: fewer than the 51 the centre lets linger at once, 1/4 of its spare
            # descriptors, so each client surely reads its answer before the connection closes)
            past = [socket.create_connection(where, timeout=10) for _ in range(40)]
            for sock in past:
                busy_answer(read_to_end(sock, within=5))
                sock.close()  # the client is done: the centre closes its side at once
            # what a client sends past the cap is answered the same, HTTP 503 and the envelope
            sock = socket.create_connection(where, timeout=10)
            sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}")
            answer = busy_answer(read_to_end(sock, within=5))
            assert "819 connections open" in answer["err_msg"], answer
            sock.close()
            refused = centre.post(sign_in_body(centre))  # the rig's client: the envelope of the 503
            assert refused["err_msg"].startswith("CENTRE_BUSY: "), refused
            assert time.monotonic() - opened < head, "too slow to test within the head timeout"
            # the silent ones close within the head timeout of their opening, none much before it
            first = closed_within(idle[0], within=head + SLACK)
            assert first is not None and time.monotonic() - opened >= head - 0.5, first
            deadline = opened + head + 2 * SLACK
            late = [s for s in idle if closed_within(s, within=max(0.0, deadline - time.monotonic())) is None]
            assert not late, f"{len(late)} silent connections still open {head} s after they opened"
        finally:
            for sock in idle + past:
                sock.close()
        answer = centre.call("9001", {"signIn": {"opter_no": "001", "mac": "00:11", "ip": "127.0.0.1"}})[0]
        assert answer["infcode"] == 0, answer  # a real request is answered again
        warnings = [line for line in list(centre.output) if "CENTRE_BUSY" in line and " WARNING " in line]
        assert len(warnings) == 1, warnings  # the cap reached: one warning a minute, not one per connection
        assert "connections: 819 open" in warnings[0], warnings
        assert not [line for line in centre.output if "out of system resource" in line], "descriptors ran out"
        assert not [line for line in centre.output if " ERROR " in line or "Traceback" in line], "".join(centre.output)


def test_a_connection_without_a_head_a_body_or_a_next_request_in_time_is_closed_and_max_connections_caps(tmp_path):
    head, body, idle = 1.0, 1.5, 3.0  # ok-float: seconds
    env = {
        **os.environ,
        "MEDSETTLE_HEAD_TIMEOUT": str(head),
        "MEDSETTLE_BODY_TIMEOUT": str(body),
        "MEDSETTLE_IDLE_TIMEOUT": str(idle),
    }
    args = ["--max-connections", "5"]  # the five cases below at once
    with ServedCentre(tmp_path / "centre", args=args, env=env, preexec=limit_files(1024, 1024)) as centre:
        assert "at most 5 connections (--max-connections)" in line_with(centre, "started: ")
        where = address(centre.url)
        took: dict[str, float | None] = {}  # ok-float: seconds from the event each case counts from to the close

        def silent() -> None:
            with socket.create_connection(where, timeout=10) as sock:
                took["silent"] = closed_within(sock, within=head + SLACK)

        def trickled_head() -> None:  # one byte every 0.2 s: the head is never complete within the timeout
            with socket.create_connection(where, timeout=10) as sock:
                began = time.monotonic()
                for byte in b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 40:
                    try:
                        sock.sendall(bytes([byte]))
                    except OSError:
                        break
                    if closed_within(sock, within=0.2) is not None:
                        break
                took["trickled head"] = time.monotonic() - began

        def short_body() -> None:  # a complete head, 10 bytes of the 100 it announces
            with socket.create_connection(where, timeout=10) as sock:
                sock.sendall(b'POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{"infno":')
                took["short body"] = closed_within(sock, within=body + SLACK)

        def kept_alive(then: bytes, key: str) -> None:  # one request answered, then ``then`` after 0.5 s
            conn = http.client.HTTPConnection(*where, timeout=10)
            try:
                conn.request("GET", "/schema")
                response = conn.getresponse()
                response.read()
                assert response.status == 200 and not response.will_close, response.getheaders()
                assert conn.sock is not None
                time.sleep(0.5)
                conn.sock.sendall(then)
                took[key] = closed_within(conn.sock, within=idle + SLACK)
            finally:
                conn.close()

        cases = [
            threading.Thread(target=silent),
            threading.Thread(target=trickled_head),
            threading.Thread(target=short_body),
            threading.Thread(target=kept_alive, args=(b"", "idle")),
            threading.Thread(target=kept_alive, args=(b"POST / HTTP/1.1\r\nHo", "next head")),
        ]
        for case in cases:
            case.start()
        for case in cases:
            case.join(timeout=idle + 3 * SLACK)
        assert not any(case.is_alive() for case in cases)
        assert len(took) == 5, took
        assert all(seconds is not None for seconds in took.values()), took  # every one was closed
        for key, least, most in (
            ("silent", head - 0.5, head + SLACK),
            ("trickled head", head - 0.5, head + SLACK),
            ("short body", body - 0.5, body + SLACK),
            ("idle", idle - 1.0, idle + SLACK),  # counted from the byte sent 0.5 s after the answer
            ("next head", head - 0.5, idle - 1.0),  # the head timer, from the next request's first byte, not the idle
        ):
            seconds = took[key]
            assert seconds is not None and least <= seconds <= most, (key, took)
        centre.sign_in()  # and the centre answers on
        assert not [line for line in centre.output if " ERROR " in line or "Traceback" in line], "".join(centre.output)

        # --max-connections 5: a sixth is answered 503, and a connection closed frees its place
        held = [socket.create_connection(where, timeout=10) for _ in range(5)]
        try:
            with socket.create_connection(where, timeout=10) as sock:
                assert "5 connections open" in busy_answer(read_to_end(sock, within=5))["err_msg"]
            held.pop().close()
            deadline = time.monotonic() + 5
            answer = centre.post(sign_in_body(centre))
            while answer["err_msg"] and answer["err_msg"].startswith("CENTRE_BUSY") and time.monotonic() < deadline:
                time.sleep(0.05)  # the centre has yet to see the close
                answer = centre.post(sign_in_body(centre))
            assert answer["infcode"] == 0, answer
        finally:
            for sock in held:
                sock.close()


def test_a_cap_over_the_open_file_limit_stops_serve_before_any_journal(tmp_path: Path):
    data_dir = tmp_path / "centre"
    done = subprocess.run(
        [sys.executable, "-m", "medsettle.cli", "serve", "--port", "0", "--data-dir", str(data_dir)]
        + ["--max-connections", "5000"],
        capture_output=True,
        text=True,
        preexec_fn=limit_files(1024, 1024),
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr == (
        "Error: --max-connections 5000: over the open-file limit of this process (1024); raise that (ulimit -n) "
        "or give at most 1024 (default: 819)\n"
    )
    assert not data_dir.exists()


def test_a_cap_below_1_is_refused_as_the_command_line_is_read(tmp_path: Path):
    done = CliRunner().invoke(serve, ["--max-connections", "0", "--data-dir", str(tmp_path / "centre")])
    assert done.exit_code == 2 and "Invalid value for '--max-connections'" in done.output, done.output
    assert not (tmp_path / "centre").exists()


@pytest.mark.parametrize("variable", sorted(TIMEOUT_VARIABLES.values()))
@pytest.mark.parametrize("text", ["soon", "0", "-1", "nan", "1e9"])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_refused_naming_its_variable(variable, text):
    with pytest.raises(ValueError, match=f"^{variable}='{text}': a timeout is a number of seconds over 0"):
        plan(None, environ={variable: text})


def test_the_timeouts_are_the_documented_ones_unless_the_environment_overrides_them():
    limits = plan(7, environ={})
    assert (limits.head_timeout, limits.body_timeout, limits.idle_timeout) == (10, 30, 75)
    assert limits.describe() == "at most 7 connections (--max-connections)"
    limits = plan(None, environ={"MEDSETTLE_HEAD_TIMEOUT": "2.5", "MEDSETTLE_IDLE_TIMEOUT": "600"})
    assert (limits.head_timeout, limits.body_timeout, limits.idle_timeout) == (2.5, 30, 600)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)  # plan raised it to the hard limit
    assert limits.max_connections == int(soft * 0.8) and limits.descriptors == soft
