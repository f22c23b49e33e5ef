"""Several worker processes behind one address (``medsettle serve --workers N``, docs/architecture.md).

Each worker is a whole centre owning some of the insured regions, on one PostgreSQL journal: it is the one
writer of its regions' persons. All of them take connections on the same listening socket, so a request
arrives at any of them; one about another worker's persons (or insured region, or, naming neither, about
an institution of another worker's region) is refused there as a :class:`~.regions.ForeignRegion`, and
this module hands it to the worker that owns it, over a loopback connection of their own, and relays that
worker's answer as it is.

The receiving worker has already checked the request's signature and spent its nonce, so the hand-off
channel skips the gateway: it is a second listener of each worker, on 127.0.0.1, that takes a connection only
once its first frame holds the token the workers were started with (made at start, never written anywhere).
A handed-off request is answered where it lands: it is never handed on again.

The channel is not HTTP: a hand-off is one more request in a handed-off request's life, and an HTTP client
and server in Python cost about as much CPU as the settlement itself. Each worker keeps one connection to
each other worker and sends frames on it without waiting for the answers before: a header (the length of
what follows, the request's number on that connection, its kind) and the request's JSON; the answer comes
back with the same number, in whatever order the answers are made.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import itertools
import logging
import struct
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..errors import InvalidInput, MedsettleError
from ..jsontext import dumps_bytes, loads
from .app import DurableAnswers, parse_sized_body
from .service import Centre

log = logging.getLogger(__name__)
HANDOFF_TIMEOUT = 60.0  # ok-float: seconds; a worker that does not answer by then is reported, not waited on
HEADER = struct.Struct("!IIB")  # the length of what follows, the request's number, its kind (or an answer's)
HELLO, ENVELOPE, ADMIN = 0, 1, 2  # the kinds of frame a worker sends: its token first, then requests
ANSWERED, FAILED = 0, 1  # the kinds of frame that answer: the answer's JSON, or why there is none (text)
MAX_FRAME = 64 * 1024 * 1024  # as the centre's largest body (a 9101 upload)


class WorkerUnreachable(MedsettleError):
    """The worker owning the request's region did not answer the hand-off: the counter resends later, as
    when the centre is away."""

    code = "CENTRE_UNAVAILABLE"


def frame(kind: int, number: int, payload: bytes) -> bytes:
    return HEADER.pack(len(payload), number, kind) + payload


class _Frames:
    """Cuts the bytes a connection receives into (kind, number, payload) frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """The frames completed by ``data``; ValueError for a frame longer than any request."""
        self._buffer += data
        frames = []
        while len(self._buffer) >= HEADER.size:
            length, number, kind = HEADER.unpack_from(self._buffer)
            if length > MAX_FRAME:
                raise ValueError(f"a frame of {length} bytes")
            end = HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append((kind, number, bytes(self._buffer[HEADER.size : end])))
            del self._buffer[:end]
        return frames


# -- the worker that hands a request on --------------------------------------------------------------------


class _Link(asyncio.Protocol):
    """This worker's connection to one other worker: requests sent as they come, answers matched by number."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._frames = _Frames()
        self._waiting: dict[int, asyncio.Future[bytes]] = {}
        self._numbers = itertools.count(1)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, kind: int, payload: bytes) -> tuple[int, asyncio.Future[bytes]]:
        """The request's number, and its answer's JSON (bytes) once it comes; WorkerUnreachable if the
        connection is lost first."""
        assert self.transport is not None
        number = next(self._numbers) & 0xFFFFFFFF
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[number] = answer
        self.transport.write(frame(kind, number, payload))
        return number, answer

    def forget(self, number: int) -> None:
        """Stop waiting for an answer that took too long (if it comes after all, it is dropped)."""
        self._waiting.pop(number, None)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._frames.feed(data)
        except ValueError as exc:
            self._fail(f"the worker sent {exc}")
            return
        for kind, number, payload in frames:
            answer = self._waiting.pop(number, None)
            if answer is None or answer.done():
                continue
            if kind == ANSWERED:
                answer.set_result(payload)
            else:
                answer.set_exception(WorkerUnreachable(f"the worker at {self.owner} failed: {payload.decode()}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"the connection to the worker at {self.owner} was lost" + (f": {exc}" if exc else ""))

    def _fail(self, why: str) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        waiting, self._waiting = self._waiting, {}
        for answer in waiting.values():
            if not answer.done():
                answer.set_exception(WorkerUnreachable(why))


class Handoff:
    """The hand-off of requests from this worker to the worker owning their region.

    ``owners``: region -> the hand-off address (127.0.0.1:PORT) of the worker owning it. Made before the
    event loop runs; its connections are made on the loop at the first hand-off to each worker."""

    def __init__(self, owners: dict[str, str], token: str) -> None:
        self._owners = owners
        self._token = token.encode()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._links: dict[str, _Link] = {}
        self._connecting: dict[str, asyncio.Lock] = {}
        self._used: set[str] = set()  # the regions handed off to so far (their first hand-off is logged)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand off from ``loop`` (the server's): every hand-off runs there, whichever thread asks."""
        self._loop = loop

    async def close(self) -> None:
        for link in self._links.values():
            if link.transport is not None:
                link.transport.close()

    def envelope(self, region: str, request: Any) -> Future:
        """The owner's answer to a request of the envelope, as a Future (callable from any thread)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("Handoff.start() was not called")
        if _running_loop() is not loop:  # a journal's thread (a 2601 waiting for its original)
            return asyncio.run_coroutine_threadsafe(self._post(region, ENVELOPE, request), loop)
        # On the loop itself (a request as it arrives): a task, without waking the loop through its pipe.
        answer: Future = Future()
        task = loop.create_task(self._post(region, ENVELOPE, request))
        task.add_done_callback(functools.partial(_settle, answer))
        return answer

    async def admin(self, region: str, body: Any) -> dict:
        """The owner's answer (the admin API's {"ok": ...}) to an admin request about its persons."""
        return await self._post(region, ADMIN, body)

    async def _post(self, region: str, kind: int, body: Any) -> dict:
        owner = self._owners.get(region)
        if owner is None:  # `serve --regions` left it to another centre: refused as by one process
            raise InvalidInput(
                f"insured region {region} is not served by this centre's workers", field="insuplc_admdvs"
            )
        if region not in self._used:
            self._used.add(region)
            log.info("handing requests about region %s to its worker (%s)", region, owner)
        try:
            link = await self._link(owner)
            number, answer = link.send(kind, dumps_bytes(body))
            try:
                return loads(await asyncio.wait_for(asyncio.shield(answer), HANDOFF_TIMEOUT))
            except TimeoutError:
                link.forget(number)
                why = f"the worker of region {region} did not answer in {HANDOFF_TIMEOUT:g} s"
                raise WorkerUnreachable(why) from None
        except OSError as exc:
            log.warning("hand-off to the worker of region %s failed: %s", region, exc)
            raise WorkerUnreachable(f"the worker of region {region} did not answer: {exc}") from None
        except WorkerUnreachable as exc:
            log.warning("hand-off to the worker of region %s failed: %s", region, exc)
            raise

    async def _link(self, owner: str) -> _Link:
        """The connection to ``owner``, made (and its token sent) if there is none or it was lost."""
        link = self._links.get(owner)
        if link is not None and not link.closed:
            return link
        lock = self._connecting.setdefault(owner, asyncio.Lock())
        async with lock:  # the requests arriving while it connects wait for the one connection
            link = self._links.get(owner)
            if link is None or link.closed:
                host, port = owner.rsplit(":", 1)
                loop = asyncio.get_running_loop()
                _, link = await loop.create_connection(lambda: _Link(owner), host, int(port))
                assert link.transport is not None
                link.transport.write(frame(HELLO, 0, self._token))
                self._links[owner] = link
            return link


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _settle(answer: Future, task: asyncio.Task) -> None:
    """Give ``answer`` the outcome of the hand-off ``task``."""
    if task.cancelled():
        answer.set_exception(WorkerUnreachable("the hand-off was cancelled (the worker is stopping)"))
    elif (exc := task.exception()) is not None:
        answer.set_exception(exc)
    else:
        answer.set_result(task.result())


# -- the worker that owns the request ----------------------------------------------------------------------


class HandoffServer:
    """The hand-off listener: requests other workers received for this worker's regions, answered here."""

    def __init__(self, centre: Centre, token: str, executor: ThreadPoolExecutor, outgoing: Handoff) -> None:
        """``outgoing``: this worker's own hand-offs, whose connections close with the listener."""
        self.centre, self.token, self.executor, self.outgoing = centre, token.encode(), executor, outgoing
        self._server: asyncio.Server | None = None
        self.durable: DurableAnswers | None = None  # made on the loop, when the listener starts

    async def start(self, listener: Any) -> None:
        loop = asyncio.get_running_loop()
        self.durable = DurableAnswers(loop)
        self._server = await loop.create_server(lambda: _Taker(self), sock=listener)

    async def cleanup(self) -> None:
        await self.outgoing.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.executor.shutdown(wait=True)


class _Taker(asyncio.Protocol):
    """One other worker's connection: its token first, then requests, each answered as soon as it is made."""

    def __init__(self, server: HandoffServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.trusted = False
        self._frames = _Frames()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        try:
            frames = self._frames.feed(data)
        except ValueError as exc:
            log.warning("hand-off connection closed: it sent %s", exc)
            self.transport.close()
            return
        for kind, number, payload in frames:
            if not self.trusted:  # the first frame: the token, or the connection is closed
                self.trusted = kind == HELLO and hmac.compare_digest(payload, self.server.token)
                if not self.trusted:
                    log.warning("hand-off connection closed: not a worker of this centre")
                    self.transport.close()
                    return
                continue
            if kind == ENVELOPE:
                self._envelope(number, payload)
            elif kind == ADMIN:
                asyncio.get_running_loop().create_task(self._admin(number, payload))
            else:
                self._answer(number, FAILED, f"no such kind of frame: {kind}".encode())

    def _envelope(self, number: int, payload: bytes) -> None:
        try:
            answer = self.server.centre.submit(parse_sized_body(payload, None), may_hand_off=False)
        except Exception as exc:
            log.exception("a handed-off request failed")
            self._answer(number, FAILED, str(exc).encode())
            return
        if answer.done():
            self._answer(number, ANSWERED, dumps_bytes(answer.result()))
            return
        assert self.server.durable is not None
        waiter = self.server.durable.wait(answer)  # back on the loop once the journal made it durable
        waiter.add_done_callback(lambda _: self._answer(number, ANSWERED, dumps_bytes(answer.result())))

    async def _admin(self, number: int, payload: bytes) -> None:
        centre = self.server.centre
        try:
            body = parse_sized_body(payload, None, may_upload=False, decimals=False)
            work = functools.partial(centre.admin, body)
            result = {"ok": True, **await asyncio.get_running_loop().run_in_executor(self.server.executor, work)}
        except MedsettleError as exc:
            result = {"ok": False, "error": f"{exc.code}: {exc}"}
        self._answer(number, ANSWERED, dumps_bytes(result))

    def _answer(self, number: int, kind: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():  # the sender may have gone
            self.transport.write(frame(kind, number, payload))
