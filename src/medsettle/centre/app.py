"""The centre over HTTP (aiohttp): one endpoint takes the platform's envelope, answers with its response.

POST / (or the platform's own path), either optionally followed by /<infno>, with a JSON body (whatever
its Content-Type says); GET /schema for the message schemas; POST /admin for the registry's card and person
events (the server listens on 127.0.0.1 only). A request is applied
on the event loop (``Centre.submit``) and its answer awaits the journal's group commit there, so many
requests share one fsync without a thread each. No transaction blocks: a 2601 waiting for its original's
answer is a chained Future like any other. Only the admin API, whose calls wait for the journal, runs
on a small thread pool.
Bodies over 1 MiB, bodies that are not JSON, a path or method the centre does not take, a bug, and
anything else malformed get ``infcode -1`` naming what is wrong, in the platform's envelope with HTTP
status 200 (adapters read the body only on 200); nothing about them is stored.
Every answer to the envelope is counted in a :class:`Throughput` (one counter increment; a refusal's a second;
one request in 16 timed), which ``medsettle serve`` logs every ``--stats-every`` seconds and at its stop.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import gc
import json
import logging
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..errors import InvalidInput, MedsettleError
from ..jsontext import dumps_bytes, loads_request
from ..ledger.files import MAX_FILE_BYTES
from ..seams import SYSTEM_CLOCK, Clock
from .files import FileAnswer
from .gateway import INSECURE_WARNING, Gateway
from .messages import json_schemas
from .regions import ForeignRegion
from .service import Centre

if TYPE_CHECKING:
    from .workers import Handoff

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024  # every request but a 9101 upload
# A 9101 carries a file of up to MAX_FILE_BYTES in base64 (4 bytes per 3), and its envelope.
MAX_UPLOAD_BODY = (MAX_FILE_BYTES + 2) // 3 * 4 + 64 * 1024
PLATFORM_PATH = "/fsi/api/rsfComIfsService/callService"
PLATFORM_SEGMENTS = tuple(PLATFORM_PATH.strip("/").split("/"))
INFNO = re.compile(r"\d{4}")


def make_app(
    centre: Centre,
    *,
    gateway: Gateway | None,
    workers: int = 8,
    throughput: Throughput | None = None,
    handoff: Handoff | None = None,
) -> web.Application:
    """The centre's aiohttp application; its answers to the envelope are counted in ``throughput`` if given.

    ``gateway`` checks who calls (signatures on the envelope, the agency's token on /admin); None runs the
    centre without any check (``serve --insecure``), which every answer then says in its ``warn_msg``.

    One route takes every method and path, so that nothing the centre is sent is answered by aiohttp's
    plain-text errors or a status other than 200: GET /schema and /admin are theirs, every other path is
    the envelope's, and a path or method the envelope does not take is refused in its shape
    (:func:`envelope_path`).

    ``handoff``: this process is one of ``serve --workers``; an admin request about another worker's persons
    is handed to that worker (the envelope's are handed off by the centre itself, :attr:`Centre.handoff`)."""
    app = web.Application(client_max_size=MAX_UPLOAD_BODY)
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medsettle-centre")
    durable: list[DurableAnswers] = []  # made on the first request, on the server's event loop
    counts = throughput if throughput is not None else Throughput()

    async def route(request: web.Request) -> web.Response:
        segments = tuple(part for part in request.path.split("/") if part)
        if segments == ("schema",) and request.method in ("GET", "HEAD"):
            return _json(json_schemas())
        if segments == ("admin",):
            return await admin(request)
        return await call(request, segments)

    async def call(request: web.Request, segments: tuple[str, ...]) -> web.Response:
        n = counts.requests
        counts.requests = n + 1
        if n & SAMPLE_MASK:
            body = await reply(request, segments)
        else:  # one request in 16 is timed
            started = time.perf_counter()  # ok-float: a time
            body = await reply(request, segments)
            counts.sample(time.perf_counter() - started)
        if body.get("infcode"):
            counts.refused += 1
        if isinstance(body.get("output"), FileAnswer):  # 9102: the file's bytes, as the platform answers
            return web.Response(body=body["output"].content, content_type="application/octet-stream")
        if gateway is None:
            body = {**body, "warn_msg": INSECURE_WARNING}
        return _json(body)

    async def reply(request: web.Request, segments: tuple[str, ...]) -> dict:
        """The answer to one request of the envelope: always the platform's envelope (HTTP 200)."""
        try:
            url_infno = envelope_path(request.method, request.path, segments)
            raw = await read_body(request)
            data = parse_sized_body(raw, url_infno)
            if gateway is not None:
                await gateway.admit(request.headers, data)
        except MedsettleError as exc:
            return refusal(exc)
        try:
            answer = centre.submit(data, url_infno=url_infno, may_hold_nulls=b"null" in raw)
            if not answer.done():
                if not durable:
                    durable.append(DurableAnswers(asyncio.get_running_loop()))
                await durable[0].wait(answer)
            return answer.result()
        except Exception as exc:  # a bug: answer in the platform's shape, and log it
            log.exception("request failed")
            return refusal(InternalError(str(exc)))

    def refusal(exc: MedsettleError) -> dict:
        try:
            return centre.refusal(exc)
        except Exception:  # the centre cannot even write a refusal: the envelope's keys, written here
            log.exception("refusal failed")
            return {"infcode": -1, "inf_refmsgid": "", "err_msg": f"{exc.code}: {exc}", "output": {}}

    async def admin(request: web.Request) -> web.Response:
        """The admin API of persons and cards (medsettle.centre.admin: one model per action: enrol,
        change_unit, contribute, issue_card, issue_cards_employer, transfer_out, transfer_in, issue_qr,
        card, credit, cancel_person); answers {"ok": true, ...} or {"ok": false, "error"}, HTTP 200 both."""
        try:
            if request.method != "POST":
                raise InvalidInput(f"{request.method} {request.path}: send the request with POST", field="method")
            if gateway is not None:
                gateway.check_admin(request.headers, request.content_type)
            body = parse_sized_body(await read_body(request), None, may_upload=False, decimals=False)
            work = functools.partial(centre.admin, body)
            try:
                result = await asyncio.get_running_loop().run_in_executor(executor, work)
            except ForeignRegion as exc:
                if handoff is None:
                    raise
                return _json(insecure_note(await handoff.admin(exc.region, body)))  # the owner's answer
        except MedsettleError as exc:
            return _json(insecure_note({"ok": False, "error": f"{exc.code}: {exc}"}))
        except Exception as exc:  # a bug: answer in the admin API's shape, and log it
            log.exception("admin request failed")
            return _json(insecure_note({"ok": False, "error": f"{InternalError.code}: {exc}"}))
        return _json(insecure_note({"ok": True, **result}))

    def insecure_note(answer: dict) -> dict:
        return answer if gateway is not None else {**answer, "warn_msg": INSECURE_WARNING}

    async def close_executor(_: web.Application) -> None:
        executor.shutdown(wait=True)
        if gateway is not None:
            gateway.close()

    app.router.add_route("*", "/{path:.*}", route)
    app.on_cleanup.append(close_executor)
    return app


class InternalError(MedsettleError):
    """A bug, answered in the platform's shape (and logged) instead of an HTTP 500."""

    code = "INTERNAL_ERROR"


def envelope_path(method: str, path: str, segments: tuple[str, ...]) -> str | None:
    """The transaction code a request's URL names (``POST /1101``, ``POST <platform path>/1101``), None for
    ``POST /`` and ``POST <platform path>``; InvalidInput naming ``url`` or ``method`` for anything else.

    Empty segments are ignored, so ``//1101`` and a trailing slash (an adapter joining its base URL and
    the code) are the same path."""
    base, last = segments[:-1], segments[-1:]
    if segments in ((), PLATFORM_SEGMENTS):
        infno = None
    elif base in ((), PLATFORM_SEGMENTS) and INFNO.fullmatch(last[0]):
        infno = last[0]
    else:
        raise InvalidInput(
            f"{method} {path}: this centre takes the envelope at / and at {PLATFORM_PATH}, "
            "either optionally followed by /<infno>",
            field="url",
        )
    if method != "POST":
        raise InvalidInput(f"{method} {path}: send the request with POST", field="method")
    return infno


async def read_body(request: web.Request) -> bytes:
    """The request's body, whatever its Content-Type (text/plain or none is JSON too); InvalidInput if too large."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise InvalidInput(f"the body is over {MAX_UPLOAD_BODY} bytes, the most even a 9101 upload may be") from None


def parse_sized_body(raw: bytes, url_infno: str | None, *, may_upload: bool = True, decimals: bool = True) -> Any:
    """The body's JSON value (:func:`parse_body`). Only a 9101 upload may be over MAX_BODY (a 10 MB file is
    about 14 MB of base64): any other body that long, JSON or not, is refused for its length, as before
    files came. A 9101 is known by its URL's infno or its body's; the admin API (``may_upload`` False) takes none."""
    if len(raw) <= MAX_BODY:
        return parse_body(raw, decimals=decimals)
    too_long = InvalidInput(f"the body is over {MAX_BODY} bytes (only a 9101 file upload may be longer)")
    if not may_upload:
        raise too_long
    try:
        data = parse_body(raw, decimals=decimals)
    except InvalidInput:
        raise too_long from None
    body_infno = data.get("infno") if isinstance(data, dict) else None
    if "9101" not in (url_infno, body_infno):
        raise too_long
    return data


def parse_body(raw: bytes, *, decimals: bool = True) -> Any:
    """The JSON value of a body (numbers with a fraction as Decimal unless ``decimals`` is False);
    InvalidInput saying why when it is not JSON text, or JSON no request may be (:func:`loads_request`:
    text that is not UTF-8, nesting past 64 levels, absurd numbers, NaN), before anything walks it."""
    try:
        data = loads_request(raw, decimals=decimals)
        if b"\\u" in raw:  # an escape may spell half a UTF-16 pair, which no UTF-8 text can hold
            json.dumps(data, ensure_ascii=False, default=str).encode()
    except InvalidInput:
        raise
    except UnicodeEncodeError:
        raise InvalidInput("the body holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff)") from None
    except ValueError as exc:
        raise InvalidInput(f"the body is not JSON ({exc})") from None
    return data


SAMPLE_MASK = 15  # request n is timed when n & SAMPLE_MASK == 0: one in 16
MAX_SAMPLES = 65_536  # latency samples kept per interval (one in 16 of ~1M requests)


@dataclass(frozen=True)
class Interval:
    """What the centre answered between two looks at its :class:`Throughput`."""

    seconds: float  # ok-float: a duration
    requests: int
    refused: int
    latencies: tuple[float, ...]  # ok-float: sampled seconds per answer, sorted

    @property
    def per_second(self) -> float:  # ok-float: a rate
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, percent: int) -> float | None:  # ok-float: a latency in seconds
        """The sampled latency that ``percent`` of the samples do not exceed (nearest rank), or None."""
        if not self.latencies:
            return None
        rank = -(-len(self.latencies) * percent // 100)  # ceil(n * percent / 100)
        return self.latencies[min(max(rank, 1), len(self.latencies)) - 1]


class Throughput:
    """Counts of the requests of the envelope since start: each costs a counter increment (a refusal, an answer
    with infcode other than 0, a second), and one request in 16 a latency sample (from the handler taking
    it to its answer made). Counted and read on the event loop only, so no lock is needed. A request is
    counted as it arrives: one whose client went away before its answer counts as well."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        """``clock``: the intervals' lengths come from its monotonic time (the centre's clock seam)."""
        self.requests = 0
        self.refused = 0
        self._clock = clock
        self._samples: list[float] = []  # ok-float: seconds
        self._mark = (clock.monotonic(), 0, 0)

    def sample(self, seconds: float) -> None:  # ok-float: a latency
        if len(self._samples) < MAX_SAMPLES:
            self._samples.append(seconds)

    def take(self) -> Interval:
        """What was answered since the last take (or the start), and start the next interval."""
        now = self._clock.monotonic()
        since, requests, refused = self._mark
        samples, self._samples = self._samples, []
        self._mark = (now, self.requests, self.refused)
        return Interval(now - since, self.requests - requests, self.refused - refused, tuple(sorted(samples)))


class DurableAnswers:
    """Hands answers made durable on the journal's thread over to the event loop, one wake-up per batch.

    ``asyncio.wrap_future`` would wake the loop once per answer (a write to its self-pipe each); after a
    group commit of 64 answers that is 64 wake-ups, each a GIL hand-off between the journal's thread
    and the loop. Here the first answer of a batch schedules one drain, and the others ride along."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._ready: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._drain_scheduled = False

    def wait(self, answer: Future) -> asyncio.Future:
        """An asyncio future that completes (with None) once ``answer`` is done. Not with ``answer``
        itself: ``answer`` holds this callback, which holds the waiter, so that would be a reference
        cycle per request, left for the cyclic garbage collector."""
        waiter = self._loop.create_future()
        answer.add_done_callback(lambda done: self._arrived(done, waiter))
        return waiter

    def _arrived(self, answer: Future, waiter: asyncio.Future) -> None:  # on the journal's thread
        self._ready.append((answer, waiter))
        with self._lock:
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:  # on the loop
        with self._lock:
            self._drain_scheduled = False  # an answer arriving from now on schedules the next drain
        while self._ready:
            _, waiter = self._ready.popleft()
            if not waiter.done():  # the client may have gone away meanwhile
                waiter.set_result(None)


def tune_gc_for_serving() -> None:
    """Keep Python's cyclic garbage collector out of the answer path of a long-running centre.

    Called once the centre is built (policy, population, registry and the replayed journal): those
    objects live as long as the process, so ``gc.freeze`` takes them out of every later collection. A
    youngest-generation threshold of 20,000 instead of 700 lets the objects of the requests in flight
    (64 clients each waiting for a group commit) die young instead of being promoted and walked again
    by the full collections. Measured with 64 clients: collections took 0.6 of every 5 seconds before,
    under 0.02 after. The request path itself makes no reference cycles, so nothing piles up.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def _json(body: dict) -> web.Response:
    """Every answer of the centre but a 9102 file: JSON, HTTP 200 (adapters read the body only on 200)."""
    return web.Response(body=dumps_bytes(body), content_type="application/json", charset="utf-8")
