"""The virtual reader stack as a background process, for ``medsettle hardware up/down`` and ``medsettle
card issue``, and for tests and benchmarks that want the cards in another process, as real cards are.

The daemon owns a :class:`PcscStack` and answers JSON-line requests on a Unix socket in its directory:

    {"op": "insert", "counter": "Counter", "profile": {...}, "cloned": false, "altered": {"09": "<hex>"}}
    {"op": "remove", "counter": "Counter"}
    {"op": "faults", "counter": "Counter", "faults": {"mute": true}}      (exactly these; {} clears them)
    {"op": "status"}      {"op": "stop_pcscd"}      {"op": "start_pcscd"}      {"op": "stop"}

Every answer is {"ok": true, ...} or {"ok": false, "error": "..."}.

Every path handed to the daemon process and written to its state file is absolute, so the stack works
whatever the working directory of the command that started it and of the ones that talk to it. A daemon
that cannot start logs its traceback for the engineer and then one line, ``FAILED_MARK`` and the
reason, which :func:`start` reports with the log's path.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .card import CardProfile, VirtualCard
from .stack import PcscStack, StackError
from .vpcd import Faults

STATE_FILE, SOCKET_FILE, LOG_FILE = "daemon.json", "control.sock", "daemon.log"
START_TIMEOUT_S = 15.0
FAILED_MARK = "medsettle hardware daemon failed: "
SOCKET_PATH_MAX = 100  # a Unix socket's path has room for 107 bytes on Linux


def socket_path(directory: Path) -> Path:
    """The control socket: in the stack's directory, or (when that path is too long for a Unix socket)
    in the temporary directory under a name made from the stack directory's absolute path."""
    path = directory / SOCKET_FILE
    if len(os.fsencode(path)) <= SOCKET_PATH_MAX:
        return path
    digest = hashlib.sha256(os.fsencode(directory)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"medsettle-hardware-{digest}.sock"


def profile_to_json(profile: CardProfile) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in dataclasses.asdict(profile).items()}


def profile_from_json(data: dict[str, Any]) -> CardProfile:
    fields = {f.name for f in dataclasses.fields(CardProfile)}
    unknown = set(data) - fields
    if unknown:
        raise ValueError(f"unknown card profile fields: {sorted(unknown)}")
    values = dict(data)
    for name in ("birth_date", "issue_date", "expiry"):
        values[name] = dt.date.fromisoformat(values[name])
    return CardProfile(**values)


class _ControlServer(socketserver.ThreadingUnixStreamServer):
    """The control socket's server: it holds the daemon its handlers answer for."""

    daemon_threads = True

    def __init__(self, path: str, daemon: HardwareDaemon) -> None:
        super().__init__(path, _Handler)
        self.daemon = daemon


class _Handler(socketserver.StreamRequestHandler):
    server: _ControlServer  # the only server it is handed to

    def handle(self) -> None:
        for line in self.rfile:
            try:
                answer = {"ok": True, **(self.server.daemon.do(json.loads(line)) or {})}
            except Exception as error:  # noqa: BLE001 - every failure goes back to the caller as text
                answer = {"ok": False, "error": f"{type(error).__name__}: {error}"}
            self.wfile.write(json.dumps(answer).encode() + b"\n")
            self.wfile.flush()


class HardwareDaemon:
    def __init__(self, directory: Path, counters: list[str]) -> None:
        self.directory = Path(directory).absolute()
        self.stack = PcscStack(self.directory, counters)
        self.stopped = threading.Event()
        self.cards: dict[str, dict[str, str]] = {}

    def status(self) -> dict[str, Any]:
        """The answer to ``status``: each counter's readers and card, and pcscd's pid."""
        return {
            "counters": {
                name: {
                    "card_reader": c.card_reader,
                    "psam_reader": c.psam_reader,
                    "card": self.cards.get(name) if c.card.inserted else None,
                }
                for name, c in self.stack.counters.items()
            },
            "pcscd": self.stack.process.pid if self.stack.process else None,
        }

    def do(self, request: dict[str, Any]) -> dict[str, Any] | None:
        op = request.get("op")
        if op == "status":
            return self.status()
        if op == "stop":
            self.stopped.set()
            return None
        if op == "stop_pcscd":
            self.stack.stop_pcscd()
            return None
        if op == "start_pcscd":
            self.stack.start_pcscd()
            return None
        counter = self.stack.counters.get(request.get("counter") or next(iter(self.stack.counters)))
        if counter is None:
            raise ValueError(f"no counter {request.get('counter')!r}; counters: {list(self.stack.counters)}")
        if op == "insert":
            profile = profile_from_json(request["profile"])
            altered = {int(k, 16): bytes.fromhex(v) for k, v in (request.get("altered") or {}).items()}
            counter.card.insert(VirtualCard.issue(profile, cloned=bool(request.get("cloned")), altered=altered))
            self.cards[counter.name] = {"card_no": profile.card_no, "name": profile.name}
            return {"reader": counter.card_reader}
        if op == "remove":
            counter.card.remove()
            return None
        if op == "faults":  # the card's faults become exactly these, as `card fault` prints them
            counter.card.set_faults(**{**vars(Faults()), **(request.get("faults") or {})})
            return None
        raise ValueError(f"unknown op {op!r}")

    def serve(self) -> None:
        sock_path = socket_path(self.directory)
        sock_path.unlink(missing_ok=True)
        self.stack.start()
        server = _ControlServer(str(sock_path), self)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        signal.signal(signal.SIGTERM, lambda *_: self.stopped.set())
        status = self.status()
        _write_atomically(
            self.directory / STATE_FILE, json.dumps({"pid": os.getpid(), "socket": str(sock_path), **status})
        )
        try:
            self.stopped.wait()
        finally:
            server.shutdown()
            self.stack.stop()
            sock_path.unlink(missing_ok=True)
            (self.directory / STATE_FILE).unlink(missing_ok=True)


def _write_atomically(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: :func:`start` polls for the state file and reads it the moment it
    appears, so a file created empty and filled afterwards is read half-written (seen in CI as
    "Expecting value: line 1 column 1")."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


class HardwareClient:
    """Talks to a running daemon (started by :func:`start`)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).absolute()
        state_file = self.directory / STATE_FILE
        if not state_file.exists():
            raise StackError(
                f"no virtual reader stack is running in {self.directory}: start it with 'medsettle hardware up'"
            )
        try:
            self.state = json.loads(state_file.read_text())
        except (OSError, ValueError) as error:
            raise StackError(
                f"the virtual reader stack's state file {state_file} cannot be read ({error}); "
                "'medsettle hardware down' then 'up'"
            ) from None

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(30)
            try:
                sock.connect(self.state["socket"])
            except OSError as error:
                raise StackError(
                    f"the virtual reader stack in {self.directory} does not answer ({error}); "
                    "'medsettle hardware down' then 'up'"
                ) from None
            sock.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
            line = sock.makefile().readline()
        try:
            answer = json.loads(line)
        except ValueError:
            raise StackError(
                f"the virtual reader stack in {self.directory} closed the connection without an "
                f"answer to {op!r} (log: {self.directory / LOG_FILE})"
            ) from None
        if not answer.pop("ok"):
            raise StackError(answer["error"])
        return answer

    def insert(
        self,
        profile: CardProfile,
        counter: str | None = None,
        *,
        cloned: bool = False,
        altered: dict[int, bytes] | None = None,
    ) -> dict[str, Any]:
        return self.request(
            "insert",
            counter=counter,
            profile=profile_to_json(profile),
            cloned=cloned,
            altered={f"{k:02X}": v.hex() for k, v in (altered or {}).items()},
        )

    def remove(self, counter: str | None = None) -> None:
        self.request("remove", counter=counter)

    def set_faults(self, counter: str | None = None, **faults: bool | float) -> None:
        self.request("faults", counter=counter, faults=faults)

    def status(self) -> dict[str, Any]:
        return self.request("status")

    def readers(self, counter: str | None = None) -> tuple[str, str]:
        """The card reader and the PSAM reader of ``counter`` (default: the first), as pcscd names them."""
        counters = self.status()["counters"]
        name = counter if counter is not None else next(iter(counters))
        if name not in counters:
            raise StackError(
                f"no counter {name!r} in the virtual reader stack in {self.directory}; "
                f"its counters: {', '.join(counters)}"
            )
        return counters[name]["card_reader"], counters[name]["psam_reader"]


def start(directory: str | os.PathLike[str], counters: Iterable[str] = ("Counter",)) -> HardwareClient:
    """Start the daemon in the background and wait until its readers are up; StackError (one line: the
    reason and the log's path) when it does not come up."""
    directory = Path(directory).absolute()
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / STATE_FILE).exists():
        try:
            client = HardwareClient(directory)
            client.status()
            return client  # already running
        except StackError:
            (directory / STATE_FILE).unlink(missing_ok=True)
    log_path = directory / LOG_FILE
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    log_start = log.tell()
    process = subprocess.Popen(
        [sys.executable, "-m", "medsettle.hardware.daemon", str(directory), *counters],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if (directory / STATE_FILE).exists():
            return HardwareClient(directory)
        if process.poll() is not None:
            raise StackError(
                f"the virtual reader stack did not start: {_failure(log_path, log_start)} (log: {log_path})"
            )
        time.sleep(0.02)
    process.terminate()
    process.wait(5)
    raise StackError(f"the virtual reader stack did not start within {START_TIMEOUT_S:g} s (log: {log_path})")


def _failure(log_path: Path, start: int) -> str:
    """The reason the daemon gave for not starting (its FAILED_MARK line, written after the traceback)."""
    with open(log_path, "rb") as log:
        log.seek(start)
        lines = log.read().decode(errors="replace").splitlines()
    reasons = [line[len(FAILED_MARK) :] for line in lines if line.startswith(FAILED_MARK)]
    if reasons:
        return reasons[-1]
    last = next((line.strip() for line in reversed(lines) if line.strip()), "")
    return f"it exited without saying why ({last})" if last else "it exited without saying why"


def stop(directory: str | os.PathLike[str], timeout: float = 10.0) -> bool:
    """Stop a running daemon; False when none was running."""
    try:
        client = HardwareClient(directory)
    except StackError:
        return False
    pid = client.state["pid"]
    try:
        client.request("stop")
    except StackError:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            (client.directory / STATE_FILE).unlink(missing_ok=True)
            return False
    deadline = time.monotonic() + timeout
    while (client.directory / STATE_FILE).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return True


def main(argv: list[str]) -> int:
    """Run the daemon; a failure to start is logged as a traceback, then as one FAILED_MARK line."""
    directory, counters = Path(argv[0]), argv[1:] or ["Counter"]
    try:
        HardwareDaemon(directory, counters).serve()
    except Exception as error:  # noqa: BLE001 - the starting command reports it; the log keeps the traceback
        traceback.print_exc()
        reason = " ".join(str(error).split()) or type(error).__name__
        if not isinstance(error, StackError):
            reason = f"{type(error).__name__}: {reason}"
        print(FAILED_MARK + reason, file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
