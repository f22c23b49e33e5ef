"""The centre's door: which connections it takes, how many at once, and how long it waits on each.

aiohttp closes a connection only after its keep-alive timeout, and counts none: a client that connects and
sends nothing (or a request head one byte at a time) holds a descriptor for an hour, and some thousands of
them exhaust the process's open files, after which real requests time out. So every connection goes through
:class:`Door`, the protocol factory of the listening socket, which

- answers a connection past ``max_connections`` with HTTP 503 and the platform's envelope (infcode -1,
  ``CENTRE_BUSY: ...``, the centre's usual keys) and closes it, and logs a warning (at most one a minute);
- closes a connection that has not sent a complete request head within :data:`HEAD_TIMEOUT` (from its
  opening, or from the first byte of a later request on it), or a request's body within
  :data:`BODY_TIMEOUT` of its head;
- lets aiohttp close a keep-alive connection idle for :data:`IDLE_TIMEOUT` between requests.

The answer itself takes as long as it takes (a 2601 may wait for its original's journal entry): no timer
runs from a request's body complete to its answer. The default cap is :data:`DESCRIPTOR_SHARE` of the
process's open-file limit, whose soft value is raised to the hard one first; the rest is left for the
journal, the 503 answers and a burst of accepts. docs/messages.md "Connections" says all this for users.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from ..errors import MedsettleError
from ..jsontext import dumps_bytes

if TYPE_CHECKING:  # aiohttp is imported by the server only, not by every command that imports this module
    from aiohttp import web

log = logging.getLogger(__name__)

HEAD_TIMEOUT = 10.0  # ok-float: seconds for a request's line and headers, as Go's ReadHeaderTimeout guards
BODY_TIMEOUT = 30.0  # ok-float: seconds from a head to its body complete (a 14 MB 9101 upload at 0.5 MB/s)
IDLE_TIMEOUT = 75.0  # ok-float: seconds a keep-alive connection may wait for its next request (nginx's default)
DESCRIPTOR_SHARE = 0.8  # ok-float: the default cap, as a share of the open-file limit
FALLBACK_MAX_CONNECTIONS = 1000  # where the open-file limit cannot be read (no ``resource`` module)
LINGER = 2.0  # ok-float: seconds a 503'd connection is read (and discarded) so the client gets the answer
WARN_EVERY = 60.0  # ok-float: seconds between two warnings that the cap is reached
ACCEPTS = 128  # the most connections accepted in one go, before the door sees any (aiohttp's backlog)
QUEUE = 1024  # connections the kernel queues until they are accepted (a SYN past it waits a second)
# Environment variables overriding the timeouts, in seconds: for tests, and for slow links (docs/messages.md).
TIMEOUT_VARIABLES = {
    "head_timeout": "MEDSETTLE_HEAD_TIMEOUT",
    "body_timeout": "MEDSETTLE_BODY_TIMEOUT",
    "idle_timeout": "MEDSETTLE_IDLE_TIMEOUT",
}


class CentreBusy(MedsettleError):
    """The centre has as many connections open as it takes: answered with HTTP 503, the connection closed."""

    code = "CENTRE_BUSY"


@dataclass(frozen=True)
class Limits:
    """How many connections the centre takes at once and how long it waits on each (seconds)."""

    max_connections: int
    descriptors: int | None  # the open-file (soft) limit the cap was made from; None when it cannot be read
    chosen: bool = False  # the cap was given (serve --max-connections), not made from the limit
    head_timeout: float = HEAD_TIMEOUT  # ok-float: seconds
    body_timeout: float = BODY_TIMEOUT  # ok-float: seconds
    idle_timeout: float = IDLE_TIMEOUT  # ok-float: seconds

    def describe(self) -> str:
        """The cap as the start's log line says it."""
        if self.chosen or self.descriptors is None:
            why = "--max-connections" if self.chosen else "the open-file limit is unknown"
        else:
            why = f"{DESCRIPTOR_SHARE:.0%} of the open-file limit {self.descriptors}"
        return f"at most {self.max_connections} connections ({why})"

    @property
    def lingering(self) -> int:
        """How many 503'd connections may linger at once (:data:`LINGER`): a quarter of the descriptors the cap
        leaves; past that a 503 is written and its connection closed at once."""
        if self.descriptors is None:
            return max(1, self.max_connections // 10)
        return max(0, (self.descriptors - self.max_connections) // 4)


def plan(max_connections: int | None, environ: Mapping[str, str] = os.environ) -> Limits:
    """The limits ``serve`` runs with: the cap given, or :data:`DESCRIPTOR_SHARE` of the open-file limit (its
    soft value raised to the hard one first, here), and the timeouts, overridden by :data:`TIMEOUT_VARIABLES`.

    ValueError, saying what to change, for a cap over the open-file limit or a timeout that is not a
    positive number of seconds."""
    descriptors = raise_descriptor_limit()
    if max_connections is not None and max_connections < 1:
        raise ValueError(f"--max-connections {max_connections}: at least 1")
    if max_connections is not None and descriptors is not None and max_connections > descriptors:
        raise ValueError(
            f"--max-connections {max_connections}: over the open-file limit of this process ({descriptors}); "
            f"raise that (ulimit -n) or give at most {descriptors} (default: {_share(descriptors)})"
        )
    if max_connections is not None:
        cap = max_connections
    else:
        cap = FALLBACK_MAX_CONNECTIONS if descriptors is None else _share(descriptors)
    timeouts = {name: _seconds(variable, environ) for name, variable in TIMEOUT_VARIABLES.items()}
    given = {name: value for name, value in timeouts.items() if value is not None}
    return Limits(cap, descriptors, chosen=max_connections is not None, **given)


def _share(descriptors: int) -> int:
    return max(1, int(descriptors * DESCRIPTOR_SHARE))


def _seconds(variable: str, environ: Mapping[str, str]) -> float | None:  # ok-float: seconds
    text = environ.get(variable, "").strip()
    if not text:
        return None
    try:
        seconds = float(text)  # ok-float: seconds
    except ValueError:
        seconds = -1.0  # ok-float: refused below
    if not 0 < seconds < 86_400:
        raise ValueError(f"{variable}={text!r}: a timeout is a number of seconds over 0 and under 86400")
    return seconds


def raise_descriptor_limit() -> int | None:
    """Raise this process's soft open-file limit to its hard limit, and return the soft limit now in force
    (None where it cannot be read). A limit that cannot be raised (a hard limit of 'unlimited' the kernel
    will not take as soft) stays as it was."""
    try:
        import resource  # noqa: PLC0415 (not on Windows)
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return None if soft == resource.RLIM_INFINITY else soft


class Door:
    """The protocol factory of the centre's listening socket: a :class:`_Guarded` aiohttp handler for each
    connection within the cap, a :class:`_Busy` answer past it.

    The handlers are ``runner.server``'s own (every option of the runner applies); the door learns a request's
    head is complete when aiohttp makes its request (``Server.request_factory``) and that it is answered
    when the application's handler returns (``Server.request_handler``): both wrapped in :meth:`attach`.
    Everything runs on the event loop, so the counts need no lock."""

    def __init__(self, limits: Limits, runner: web.AppRunner, refuse: Callable[[MedsettleError], dict]) -> None:
        """``refuse``: the centre's envelope of a refusal (``Centre.refusal``), for the 503's body."""
        server = runner.server
        if server is None:
            raise RuntimeError("set the runner up before opening the door")
        self.limits = limits
        self.open = 0  # connections taken (a handler each), from accept to their close
        self.refused = 0  # connections answered 503 since start
        self._server = server
        self._refuse = refuse
        self.loop = asyncio.get_running_loop()
        self._guarded: dict[object, _Guarded] = {}  # aiohttp's handler -> its guard
        self._busy: set[_Busy] = set()
        self._refused_since_warning = 0
        self._next_warning = 0.0  # ok-float: loop time
        self._listening: asyncio.AbstractServer | None = None
        self.attach()

    def attach(self) -> None:
        """Wrap the server's request factory and request handler, which every handler made later reads.

        A request whose connection is lost before its body is read (closed by the body's timer, or by the
        client) is no error of the centre's: aiohttp would log its ConnectionResetError with a traceback, at
        every such request; it is logged here at debug level instead, and answered to no one."""
        from aiohttp import web  # noqa: PLC0415 (the server's import, not every command's)

        make_request = self._server.request_factory
        handle = self._server.request_handler
        guarded = self._guarded

        def request_factory(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> Any:
            guard = guarded.get(protocol)
            if guard is not None:
                guard.head_complete(payload)
            return make_request(message, payload, protocol, writer, task)

        async def request_handler(request: web.BaseRequest) -> web.StreamResponse:
            try:
                return await handle(request)
            except ConnectionResetError:
                if request.transport is not None and not request.transport.is_closing():
                    raise
                log.debug("connections: one lost before its request was read")
                return web.Response(status=408)  # written nowhere: aiohttp sees the connection gone
            finally:
                guard = guarded.get(request.protocol)
                if guard is not None:
                    guard.answered()

        self._server.request_factory = request_factory
        self._server.request_handler = request_handler

    async def listen(self, listener: socket.socket) -> asyncio.AbstractServer:
        """Start taking connections on the bound ``listener``."""
        self._listening = await self.loop.create_server(self, sock=listener, backlog=ACCEPTS)
        # create_server listened again with ``backlog``, which is also how many sockets it accepts per wake-up:
        # the kernel's queue is made long again, the accepts per wake-up stay few (each holds a descriptor
        # before the door can answer it).
        listener.listen(QUEUE)
        return self._listening

    def close(self) -> None:
        """Stop taking connections and close the 503'd ones; the runner's cleanup then ends the handlers'."""
        if self._listening is not None:
            self._listening.close()
        for busy in list(self._busy):
            busy.close()

    def __call__(self) -> asyncio.Protocol:
        """The protocol of a connection just accepted: counted and guarded within the cap, turned away past it."""
        if self.open >= self.limits.max_connections:
            return self._turn_away()
        self.open += 1
        return _Guarded(self, self._server())

    def _turn_away(self) -> asyncio.Protocol:
        self.refused += 1
        self._refused_since_warning += 1
        now = self.loop.time()
        if now >= self._next_warning:
            log.warning(
                "connections: %d open, the most this centre takes; %d new connection(s) answered 503 "
                "CENTRE_BUSY (see serve --max-connections; this line at most once a minute)",
                self.open,
                self._refused_since_warning,
            )
            self._refused_since_warning = 0
            self._next_warning = now + WARN_EVERY
        busy = CentreBusy(
            f"the centre has {self.limits.max_connections} connections open, the most it takes; try again in a moment"
        )
        try:
            envelope = self._refuse(busy)
        except Exception:  # the centre cannot even write a refusal: the envelope's keys, written here
            log.exception("refusal failed")
            envelope = {"infcode": -1, "inf_refmsgid": "", "err_msg": f"{busy.code}: {busy}", "output": {}}
        body = dumps_bytes(envelope)
        answer = (
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
            b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        return _Busy(self, answer, linger=len(self._busy) < self.limits.lingering)

    def made(self, handler: object, guard: _Guarded) -> None:
        """A taken connection is open: its handler's requests are reported to ``guard``."""
        self._guarded[handler] = guard

    def lost(self, handler: object) -> None:
        """A taken connection closed: one more may be taken."""
        self.open -= 1
        self._guarded.pop(handler, None)

    def lingers(self, busy: _Busy, lingering: bool) -> None:
        """A 503'd connection lingers (``lingering``) or no longer does: :meth:`close` ends those left."""
        if lingering:
            self._busy.add(busy)
        else:
            self._busy.discard(busy)


class _Guarded(asyncio.Protocol):
    """aiohttp's handler of one connection, with the door's timers around it.

    One timer at a time: the head's (armed at the opening, and at the first byte of a later request), then
    the body's (armed when the head is complete and its body is not). Between a body complete and its answer
    none runs; between an answer and the next request's first byte aiohttp's keep-alive timer does. (A client
    pipelining a part of its next head behind a request is bounded by that keep-alive timer, not the head's.)"""

    def __init__(self, door: Door, handler: Any) -> None:
        self._door = door
        self._handler = handler
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._waiting_for_head = True  # the first request's head is awaited from the opening
        self._answering = False  # from a request's head complete to its answer made
        self._requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._door.made(self._handler, self)
        self._arm(self._door.limits.head_timeout, "no complete request head")
        self._handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._waiting_for_head and not self._answering and self._timer is None and data:
            self._waiting_for_head = True  # the first byte of the next request on a kept-alive connection
            self._arm(self._door.limits.head_timeout, "no complete request head")
        self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received()

    def pause_writing(self) -> None:
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._door.lost(self._handler)
        self._handler.connection_lost(exc)

    def head_complete(self, payload: Any) -> None:
        """aiohttp made the request of a complete head: the body's timer runs until its end arrives."""
        self._disarm()
        self._waiting_for_head = False
        self._answering = True
        self._requests += 1
        if not payload.is_eof():
            number = self._requests
            self._arm(self._door.limits.body_timeout, "no complete request body")
            payload.on_eof(lambda: self._body_complete(number))

    def _body_complete(self, number: int) -> None:
        if number == self._requests and self._timer is not None and not self._waiting_for_head:
            self._disarm()

    def answered(self) -> None:
        self._answering = False

    def _arm(self, seconds: float, what: str) -> None:  # ok-float: seconds
        self._disarm()
        self._timer = self._door.loop.call_later(seconds, self._expire, seconds, what)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, seconds: float, what: str) -> None:  # ok-float: seconds
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            log.debug("connections: closed one with %s within %.0f s", what, seconds)
            self._transport.abort()  # nothing to flush: no answer is under way


class _Busy(asyncio.Protocol):
    """A connection past the cap: the 503 answer written at once (the request is not needed for it), then the
    connection read and discarded for :data:`LINGER` seconds or until the client closes, so that its request
    arriving meanwhile does not make the kernel reset the connection before the client read the answer."""

    def __init__(self, door: Door, answer: bytes, *, linger: bool) -> None:
        self._door = door
        self._answer = answer
        self._linger = linger
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = stream = cast(asyncio.Transport, transport)
        stream.write(self._answer)
        if not self._linger:
            stream.close()
            return
        self._door.lingers(self, True)
        if stream.can_write_eof():
            stream.write_eof()
        self._timer = self._door.loop.call_later(LINGER, self.close)

    def data_received(self, data: bytes) -> None:
        pass  # the request is not read: the answer is the same whatever it is

    def eof_received(self) -> bool | None:
        return None  # the client is done: the transport closes

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._door.lingers(self, False)


async def open_door(
    runner: web.AppRunner, listener: socket.socket, limits: Limits, refuse: Callable[[MedsettleError], dict]
) -> Door:
    """The :class:`Door` of ``runner`` (set up), taking connections on ``listener``."""
    door = Door(limits, runner, refuse)
    await door.listen(listener)
    return door
