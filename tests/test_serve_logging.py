"""`medsettle serve` logs for its operator: one line at the start, one per `--stats-every` interval, one at a clean
stop (SIGTERM), one when the centre fail-stops; stdout keeps what users and scripts read from it.

A real `serve` process on 127.0.0.1 with its own data directory. The journal is made to fail for real: the process
may write no file past 256 KiB (RLIMIT_FSIZE), so SQLite's next write past it fails as on a full disk.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from centre_rig import PHARMACY, envelope
from medsettle import credentials

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) medsettle(\.\w+)+: ")
# `python -m medsettle.cli` with every file it writes limited to N bytes (the first argument)
LIMITED = (
    "import resource, runpy, sys; n = int(sys.argv.pop(1)); resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); "
    "runpy.run_module('medsettle.cli', run_name='__main__', alter_sys=True)"
)


class Served:
    """`medsettle serve --port 0` with its stdout and stderr read apart, each line kept as it arrives."""

    def __init__(self, data_dir: Path, *args: str, file_limit: int | None = None) -> None:
        head = (
            [sys.executable, "-c", LIMITED, str(file_limit)] if file_limit else [sys.executable, "-m", "medsettle.cli"]
        )
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [*head, "serve", "--port", "0", "--data-dir", str(data_dir), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr))
        ]
        for reader in self.readers:
            reader.start()
        listening = self.wait_for(self.stdout, "listening on", within=60)
        self.url = listening.split("listening on ")[1].split()[0]

    @staticmethod
    def _read(stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_for(self, lines: list[str], text: str, within: float) -> str:  # ok-float: seconds
        """The first line holding ``text``, waiting at most ``within`` seconds for it."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = [line for line in list(lines) if text in line]
            if found:
                return found[0]
            if self.proc.poll() is not None and not any(reader.is_alive() for reader in self.readers):
                break
            time.sleep(0.05)
        self.kill()
        raise AssertionError(
            f"no line with {text!r}; stdout:\n" + "\n".join(self.stdout) + "\nstderr:\n" + "\n".join(self.stderr)
        )

    def terminate(self) -> int:
        """SIGTERM, then the exit code (at most 30 s), with both streams read to their end."""
        self.proc.terminate()
        code = self.proc.wait(timeout=30)
        for reader in self.readers:
            reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def call(self, infno: str, input_: dict, *, sign_no: str = "", msgid: str) -> dict:
        body = envelope(infno, input_, sign_no=sign_no, msgid=msgid)
        signed = credentials.load(self.data_dir / credentials.FILE_NAME).institution(PHARMACY).headers()
        headers = {"Content-Type": "application/json", **signed}
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())

    def sign_in(self, n: int) -> dict:
        return self.call(
            "9001",
            {"signIn": {"opter_no": "001", "mac": "00:11", "ip": "127.0.0.1"}},
            msgid=f"{PHARMACY}20260302100000{n:04d}",
        )

    def lines_with(self, text: str) -> list[str]:
        return [line for line in self.stderr if text in line]


def sale_of_nobody() -> dict:
    """A 2101 for a person the centre does not know: refused (infcode -1), nothing stored."""
    return {
        "data": {"psn_no": "NOBODY", "mdtrt_cert_type": "02", "mdtrt_cert_no": "", "med_type": "41"},
        "feedetail": [
            {
                "feedetl_sn": "1",
                "med_list_codg": "X",
                "pric": "1.00",
                "cnt": "1",
                "fee_ocur_time": "2026-03-02 09:58:00",
            }
        ],
    }


def test_start_throughput_and_stop_are_one_log_line_each_and_stdout_is_unchanged(tmp_path):
    served = Served(tmp_path / "data", "--stats-every", "1")
    try:
        signed = served.sign_in(1)
        assert signed["infcode"] == 0, signed
        sign_no = signed["output"]["signinoutb"]["sign_no"]
        for n in range(3):
            refused = served.call("2101", sale_of_nobody(), sign_no=sign_no, msgid=f"{PHARMACY}2026030210010{n}")
            assert refused["infcode"] == -1, refused
        busy = served.wait_for(served.stderr, "throughput: 4 requests", within=10)
    except BaseException:
        served.kill()
        raise
    assert served.terminate() == 0

    # stdout: what it printed before, and nothing else
    assert len(served.stdout) == 4, served.stdout
    assert re.fullmatch(r"journal .*centre\.db: 0 entries replayed in \d+\.\d\d s", served.stdout[0])
    assert served.stdout[1].startswith("institutions: H13010000001 (3), ")
    assert served.stdout[2].startswith(f"credentials: {tmp_path / 'data' / 'credentials.toml'} (mode 0600")
    assert re.fullmatch(r"medsettle centre listening on http://127\.0\.0\.1:\d+/ \(engine: \w+\)", served.stdout[3])

    # stderr: log lines only, each with its time, level and logger
    assert all(LOG_LINE.match(line) for line in served.stderr), served.stderr
    started = served.lines_with("started: ")
    assert len(started) == 1, served.stderr
    assert f"listening on {served.url}, journal " in started[0]
    assert "(SQLiteJournal, 0 entries), regions all, engine " in started[0]
    assert started[0].endswith(" 10 institutions")
    assert re.search(
        r"throughput: 4 requests in \d+\.\d s \(\d+\.\d/s\), 3 refused, latency p50 \d+\.\d\d ms "
        r"p99 \d+\.\d\d ms \(1 sampled\)$",
        busy,
    ), busy
    stopped = served.lines_with("stopped: ")
    assert len(stopped) == 1, served.stderr
    assert re.search(r"stopped: 4 requests answered \(3 refused\) in \d+ s$", stopped[0]), stopped[0]
    assert served.stderr.index(started[0]) < served.stderr.index(busy) < served.stderr.index(stopped[0])


def test_the_log_goes_to_log_file_and_stats_every_0_turns_the_throughput_line_off(tmp_path):
    log_file = tmp_path / "serve.log"
    served = Served(tmp_path / "data", "--stats-every", "0", "--log-file", str(log_file))
    try:
        assert served.sign_in(1)["infcode"] == 0
        time.sleep(1.5)  # a throughput line would be due by now if --stats-every 0 did not turn it off
    except BaseException:
        served.kill()
        raise
    assert served.terminate() == 0
    assert served.stderr == []
    logged = log_file.read_text(encoding="utf-8").splitlines()
    assert all(LOG_LINE.match(line) for line in logged), logged
    assert [line.split(": ", 1)[1].split(" ", 1)[0] for line in logged] == ["started:", "stopped:"], logged
    assert re.search(r"stopped: 1 requests answered \(0 refused\) in \d+ s$", logged[1]), logged[1]


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_failed_journal_is_one_fail_stop_line(tmp_path):
    # 256 KiB: the journal, the gateway's tables and the first sign-ins fit; the WAL fills after a few dozen
    served = Served(tmp_path / "data", "--stats-every", "0", file_limit=256 * 1024)
    try:
        answers = []
        for n in range(1, 200):  # every sign-in is journaled: the 64 KiB of the journal's WAL fill up soon
            answers.append(served.sign_in(n))
            if answers[-1]["infcode"] != 0:
                break
        assert answers[-1]["err_msg"].startswith("CENTRE_UNAVAILABLE: the journal failed: "), answers[-1]
        again = served.sign_in(500)  # refused as well, and not logged again
        assert again["err_msg"].startswith("CENTRE_UNAVAILABLE: "), again
        failed = served.wait_for(served.stderr, "fail-stop", within=10)
    except BaseException:
        served.kill()
        raise
    assert served.terminate() == 0
    assert " ERROR medsettle.centre.core: fail-stop: the journal failed: journal " in failed, failed
    assert failed.endswith("; every change is refused until a restart replays the journal"), failed
    assert len(served.lines_with("fail-stop")) == 1, served.stderr
    stopped = served.lines_with("stopped: ")
    assert len(stopped) == 1 and f"stopped: {len(answers) + 1} requests answered (2 refused)" in stopped[0], stopped
