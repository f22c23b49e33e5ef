"""A fault proxy: a real TCP proxy on loopback between counters and the centre, that loses, delays, resets
or swallows the HTTP exchanges passing through it as a test tells it to (docs/testing.md 'medsettle_faults').

Each request is sent upstream on a connection of its own (``Connection: close``), its answer relayed back; a
client that keeps its connection alive gets its next exchange on it. The request is read whole (its headers
and Content-Length body), so a fault can be chosen by the message's ``infno``. Every wait is bounded and
every thread is a daemon; ``close`` stops accepting and ends the held connections.

- ``drop(*infnos, what="answer")``: the request reaches the centre (and is applied), its answer is thrown
  away and the connection closed: the counter does not know whether it was received.
- ``drop(*infnos, what="request")``: the request never reaches the centre; the connection is closed.
- ``delay(seconds)``: every exchange waits that long before it is forwarded.
- ``reset()``: connections are reset (TCP RST) before anything is forwarded.
- ``blackhole()``: connections are accepted and read and never answered, until the client gives up.
- ``heal()``: all of it off again.
- ``retarget(url)``: forward to a centre restarted on another port.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

IO_TIMEOUT_S = 30.0  # any one read or write on either side
MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024


@dataclass
class _Rule:
    """One drop: which infnos (empty: every message), which side, and how many more times (None: always)."""

    infnos: frozenset[str]
    what: str
    times: int | None

    def takes(self, infno: str | None, what: str) -> bool:
        if self.what != what or (self.infnos and infno not in self.infnos):
            return False
        if self.times is None:
            return True
        if self.times <= 0:
            return False
        self.times -= 1
        return True


@dataclass
class Event:
    """What the proxy did to one exchange: ``forwarded``, ``dropped request``, ``dropped answer``,
    ``reset``, ``blackholed`` or ``upstream failed``."""

    infno: str | None
    outcome: str


@dataclass
class _State:
    rules: list[_Rule] = field(default_factory=list)
    delay_s: float = 0.0  # ok-float: seconds
    resetting: bool = False
    blackholing: bool = False


class FaultProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to ``upstream_url`` (``http://host:port/``)."""

    def __init__(self, upstream_url: str) -> None:
        self.upstream = _host_port(upstream_url)
        self._state = _State()
        self._lock = threading.RLock()
        self._healed = threading.Event()  # set by heal() and close(): held and delayed exchanges stop waiting
        self._closed = threading.Event()
        self.events: list[Event] = []
        self.connections = 0  # client connections accepted
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/"
        self._thread = threading.Thread(target=self._accept, name="medsettle-fault-proxy", daemon=True)
        self._thread.start()

    # -- the controls --------------------------------------------------------------------------------

    def drop(self, *infnos: str, what: str = "answer", times: int | None = None) -> None:
        """Lose the ``what`` ("answer" or "request") of messages with these infnos (none named: every
        message), the next ``times`` times (None: until healed)."""
        if what not in ("answer", "request"):
            raise ValueError(f"what={what!r}: drop an 'answer' or a 'request'")
        with self._lock:
            self._state.rules.append(_Rule(frozenset(infnos), what, times))

    def delay(self, seconds: float) -> None:  # ok-float: seconds
        """Hold every exchange ``seconds`` before forwarding it (0: no delay)."""
        with self._lock:
            self._state.delay_s = max(0.0, seconds)
            self._healed.clear()

    def reset(self) -> None:
        """Reset every connection (TCP RST) before forwarding anything, until healed."""
        with self._lock:
            self._state.resetting = True

    def blackhole(self) -> None:
        """Accept and read every connection and never answer it, until healed."""
        with self._lock:
            self._state.blackholing = True
            self._healed.clear()

    def heal(self) -> None:
        """No more faults: every rule, delay, reset and blackhole off; held connections are closed."""
        with self._lock:
            self._state = _State()
        self._healed.set()

    def retarget(self, upstream_url: str) -> None:
        """Forward to ``upstream_url`` from now on: the centre restarted on another port; counters keep
        the proxy's address."""
        with self._lock:
            self.upstream = _host_port(upstream_url)

    def count(self, outcome: str, infno: str | None = None) -> int:
        """How many exchanges ended in ``outcome`` (of messages with ``infno``, if given)."""
        return sum(1 for e in list(self.events) if e.outcome == outcome and (infno is None or e.infno == infno))

    @property
    def dropped(self) -> int:
        """Requests and answers dropped so far."""
        return self.count("dropped request") + self.count("dropped answer")

    def close(self) -> None:
        """Stop accepting, end held connections, and wait (bounded) for the accepting thread."""
        self._closed.set()
        self._healed.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the exchanges -------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        """The exchanges of one client connection, one after another while it keeps it open (a keep-alive
        client); a fault ends the connection."""
        with conn:
            conn.settimeout(IO_TIMEOUT_S)
            while not self._closed.is_set():
                try:
                    request = _read_http(conn)
                except (OSError, ValueError):
                    return
                if request is None or not self._exchange(conn, request) or _closes(request):
                    return

    def _exchange(self, conn: socket.socket, request: bytes) -> bool:
        """Forward one request and its answer as the faults say; False when the connection is to end."""
        infno = _infno_of(request)
        with self._lock:
            state = self._state
            delay, resetting, blackholing = state.delay_s, state.resetting, state.blackholing
        if resetting:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._log(infno, "reset")
            return False
        if blackholing:
            self._log(infno, "blackholed")
            self._hold(conn)
            return False
        if delay and self._healed.wait(delay) and self._closed.is_set():
            return False
        with self._lock:
            if any(rule.takes(infno, "request") for rule in self._state.rules):
                self._log(infno, "dropped request")
                return False
        try:
            answer = self._forward(request)
        except (OSError, ValueError):
            self._log(infno, "upstream failed")
            return False
        with self._lock:
            if any(rule.takes(infno, "answer") for rule in self._state.rules):
                self._log(infno, "dropped answer")  # the centre applied it; the counter never hears
                return False
        self._log(infno, "forwarded")  # before the answer goes: a client that reads it sees the event logged
        try:
            conn.sendall(answer)
        except OSError:
            return False
        return not _closes(answer)

    def _hold(self, conn: socket.socket) -> None:
        """Keep the connection open, unanswered, until the client closes it, heal() or close()."""
        conn.settimeout(0.1)
        while not self._healed.is_set():
            try:
                if conn.recv(4096) == b"":
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def _forward(self, request: bytes) -> bytes:
        with self._lock:
            upstream = self.upstream
        with socket.create_connection(upstream, timeout=IO_TIMEOUT_S) as up:
            up.sendall(_closing(request))
            answer = _read_http(up, until_close=True)
        if not answer:
            raise ValueError("the centre closed the connection without an answer")
        return answer

    def _log(self, infno: str | None, outcome: str) -> None:
        with self._lock:
            self.events.append(Event(infno, outcome))


def _host_port(url: str) -> tuple[str, int]:
    hostport = url.split("//", 1)[-1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    return host, int(port)


def _read_http(sock: socket.socket, *, until_close: bool = False) -> bytes | None:
    """One HTTP message: its head and its Content-Length body (or, for an answer without one, everything
    until the peer closes). None when the peer closed before sending anything."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data or None
        data += chunk
        if len(data) > MAX_HEAD and b"\r\n\r\n" not in data:
            raise ValueError("HTTP head too long")
    head, _, body = data.partition(b"\r\n\r\n")
    length = _content_length(head.split(b"\r\n")[1:])
    if length is None:
        if until_close:
            while chunk := sock.recv(65536):
                body += chunk
        return head + b"\r\n\r\n" + body
    if length > MAX_BODY:
        raise ValueError("HTTP body too long")
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _content_length(lines: Iterable[bytes]) -> int | None:
    for line in lines:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return None


def _closing(request: bytes) -> bytes:
    """The request as sent upstream: ``Connection: close``, so the answer ends where the centre closes (a
    chunked answer is relayed as it came)."""
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    kept = [line for line in lines[1:] if line.partition(b":")[0].strip().lower() not in (b"connection", b"keep-alive")]
    return b"\r\n".join([lines[0], *kept, b"Connection: close"]) + b"\r\n\r\n" + body


def _closes(message: bytes) -> bool:
    """The message's head asks for the connection to be closed after it (``Connection: close``)."""
    for line in message.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"connection" and value.strip().lower() == b"close":
            return True
    return False


def _infno_of(request: bytes) -> str | None:
    """The ``infno`` of the JSON message in the request's body (None: not a message, or not JSON)."""
    body = request.partition(b"\r\n\r\n")[2]
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return None
    infno = message.get("infno") if isinstance(message, dict) else None
    return infno if isinstance(infno, str) else None
