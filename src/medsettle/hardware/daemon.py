"""The virtual reader stack as a background process, for ``medsettle hardware up/down`` and ``medsettle
card issue``, and for tests and benchmarks that want the cards in another process, as real cards are.

The daemon owns a :class:`PcscStack` and answers JSON-line requests on a Unix socket in its directory:

    {"op": "insert", "counter": "Counter", "profile": {...}, "cloned": false, "altered": {"09": "<hex>"}}
    {"op": "remove", "counter": "Counter"}
    {"op": "faults", "counter": "Counter", "faults": {"mute": true}}      (an empty dict clears them)
    {"op": "status"}      {"op": "stop_pcscd"}      {"op": "start_pcscd"}      {"op": "stop"}

Every answer is {"ok": true, ...} or {"ok": false, "error": "..."}.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

from .card import CardProfile, VirtualCard
from .stack import PcscStack, StackError

STATE_FILE, SOCKET_FILE = "daemon.json", "control.sock"
START_TIMEOUT_S = 15.0


def profile_to_json(profile: CardProfile) -> dict:
    return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in dataclasses.asdict(profile).items()}


def profile_from_json(data: dict) -> CardProfile:
    fields = {f.name for f in dataclasses.fields(CardProfile)}
    unknown = set(data) - fields
    if unknown:
        raise ValueError(f"unknown card profile fields: {sorted(unknown)}")
    values = dict(data)
    for name in ("birth_date", "issue_date", "expiry"):
        values[name] = dt.date.fromisoformat(values[name])
    return CardProfile(**values)


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            try:
                answer = {"ok": True, **(self.server.daemon.do(json.loads(line)) or {})}
            except Exception as error:  # noqa: BLE001 - every failure goes back to the caller as text
                answer = {"ok": False, "error": f"{type(error).__name__}: {error}"}
            self.wfile.write(json.dumps(answer).encode() + b"\n")
            self.wfile.flush()


class HardwareDaemon:
    def __init__(self, directory: Path, counters: list[str]):
        self.directory = directory
        self.stack = PcscStack(directory, counters)
        self.stopped = threading.Event()
        self.cards: dict[str, dict] = {}

    def do(self, request: dict) -> dict | None:
        op = request.get("op")
        if op == "status":
            return {"counters": {name: {"card_reader": c.card_reader, "psam_reader": c.psam_reader,
                                        "card": self.cards.get(name) if c.card.inserted else None}
                                 for name, c in self.stack.counters.items()},
                    "pcscd": self.stack.process.pid if self.stack.process else None}
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
        if op == "faults":
            if request.get("faults"):
                counter.card.set_faults(**request["faults"])
            else:
                counter.card.clear_faults()
            return None
        raise ValueError(f"unknown op {op!r}")

    def serve(self) -> None:
        sock_path = self.directory / SOCKET_FILE
        sock_path.unlink(missing_ok=True)
        self.stack.start()
        server = socketserver.ThreadingUnixStreamServer(str(sock_path), _Handler)
        server.daemon_threads = True
        server.daemon = self
        threading.Thread(target=server.serve_forever, daemon=True).start()
        signal.signal(signal.SIGTERM, lambda *_: self.stopped.set())
        status = self.do({"op": "status"})
        (self.directory / STATE_FILE).write_text(json.dumps({"pid": os.getpid(), "socket": str(sock_path), **status}))
        try:
            self.stopped.wait()
        finally:
            server.shutdown()
            self.stack.stop()
            sock_path.unlink(missing_ok=True)
            (self.directory / STATE_FILE).unlink(missing_ok=True)


class HardwareClient:
    """Talks to a running daemon (started by :func:`start`)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        state_file = self.directory / STATE_FILE
        if not state_file.exists():
            raise StackError(f"no virtual reader stack is running in {self.directory}: start it with "
                             "'medsettle hardware up'")
        self.state = json.loads(state_file.read_text())

    def request(self, op: str, **fields) -> dict:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(30)
            try:
                sock.connect(self.state["socket"])
            except OSError as error:
                raise StackError(f"the virtual reader stack in {self.directory} does not answer ({error}); "
                                 "'medsettle hardware down' then 'up'") from None
            sock.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
            answer = json.loads(sock.makefile().readline())
        if not answer.pop("ok"):
            raise StackError(answer["error"])
        return answer

    def insert(self, profile: CardProfile, counter: str | None = None, *, cloned: bool = False,
               altered: dict[int, bytes] | None = None) -> dict:
        return self.request("insert", counter=counter, profile=profile_to_json(profile), cloned=cloned,
                            altered={f"{k:02X}": v.hex() for k, v in (altered or {}).items()})

    def remove(self, counter: str | None = None) -> None:
        self.request("remove", counter=counter)

    def set_faults(self, counter: str | None = None, **faults) -> None:
        self.request("faults", counter=counter, faults=faults)

    def status(self) -> dict:
        return self.request("status")


def start(directory: str | os.PathLike, counters=("Counter",)) -> HardwareClient:
    """Start the daemon in the background and wait until its readers are up."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / STATE_FILE).exists():
        try:
            client = HardwareClient(directory)
            client.status()
            return client  # already running
        except StackError:
            (directory / STATE_FILE).unlink(missing_ok=True)
    log = open(directory / "daemon.log", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen([sys.executable, "-m", "medsettle.hardware.daemon", str(directory), *counters],
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if (directory / STATE_FILE).exists():
            return HardwareClient(directory)
        if process.poll() is not None:
            tail = (directory / "daemon.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise StackError("the virtual reader stack did not start: " + " / ".join(tail))
        time.sleep(0.02)
    process.terminate()
    raise StackError(f"the virtual reader stack did not start within {START_TIMEOUT_S:g} s")


def stop(directory: str | os.PathLike, timeout: float = 10.0) -> bool:
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
            (Path(directory) / STATE_FILE).unlink(missing_ok=True)
            return False
    deadline = time.monotonic() + timeout
    while (Path(directory) / STATE_FILE).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return True


def main(argv: list[str]) -> None:
    directory, counters = Path(argv[0]), argv[1:] or ["Counter"]
    HardwareDaemon(directory, counters).serve()


if __name__ == "__main__":
    main(sys.argv[1:])
