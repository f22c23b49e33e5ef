"""Several worker processes behind one address (``medsettle serve --workers N``, docs/architecture.md).

Each worker is a whole centre owning some of the insured regions, on one PostgreSQL journal: it is the one
writer of its regions' persons. All of them take connections on the same listening socket, so a request
arrives at any of them; one about another worker's persons (or insured region, or, naming neither, about
an institution of another worker's region) is refused there as a :class:`~.regions.ForeignRegion`, and
this module hands it to the worker that owns it, over a loopback connection of their own, and relays that
worker's answer as it is.

The receiving worker has already checked the request's signature and spent its nonce, so the hand-off
channel skips the gateway: it is a second listener of each worker, on 127.0.0.1, that takes requests only
with the token the workers were started with (made at start, never written anywhere). A handed-off
request is answered where it lands: it is never handed on again.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import aiohttp
from aiohttp import web

from ..errors import InvalidInput, MedsettleError
from ..jsontext import dumps_bytes, loads
from .app import parse_sized_body
from .service import Centre

log = logging.getLogger(__name__)
TOKEN_HEADER = "x-medsettle-worker"
ENVELOPE_PATH, ADMIN_PATH = "/handoff/envelope", "/handoff/admin"
HANDOFF_TIMEOUT = 60.0  # ok-float: seconds; a worker that does not answer by then is reported, not waited on


class WorkerUnreachable(MedsettleError):
    """The worker owning the request's region did not answer the hand-off: the counter resends later, as
    when the centre is away."""

    code = "CENTRE_UNAVAILABLE"


class Handoff:
    """The hand-off of requests from this worker to the worker owning their region.

    ``owners``: region -> the hand-off URL (http://127.0.0.1:PORT) of the worker owning it. Made before the
    event loop runs; its HTTP session is made on the loop at the first hand-off."""

    def __init__(self, owners: dict[str, str], token: str) -> None:
        self._owners = owners
        self._token = token
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._used: set[str] = set()  # the regions handed off to so far (their first hand-off is logged)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand off from ``loop`` (the server's): every hand-off runs there, whichever thread asks."""
        self._loop = loop

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def envelope(self, region: str, request: Any) -> Future:
        """The owner's answer to a request of the envelope, as a Future (callable from any thread)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("Handoff.start() was not called")
        if _running_loop() is not loop:  # a journal's thread (a 2601 waiting for its original)
            return asyncio.run_coroutine_threadsafe(self._envelope(region, request), loop)
        # On the loop itself (a request as it arrives): a task, without waking the loop through its pipe.
        answer: Future = Future()
        task = loop.create_task(self._envelope(region, request))
        task.add_done_callback(functools.partial(_settle, answer))
        return answer

    async def _envelope(self, region: str, request: Any) -> dict:
        return await self._post(region, ENVELOPE_PATH, request)

    async def admin(self, region: str, body: Any) -> dict:
        """The owner's answer (the admin API's {"ok": ...}) to an admin request about its persons."""
        return await self._post(region, ADMIN_PATH, body)

    async def _post(self, region: str, path: str, body: Any) -> dict:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=256, force_close=False)
            timeout = aiohttp.ClientTimeout(total=HANDOFF_TIMEOUT)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        owner = self._owners.get(region)
        if owner is None:  # `serve --regions` left it to another centre: refused as by one process
            raise InvalidInput(
                f"insured region {region} is not served by this centre's workers", field="insuplc_admdvs"
            )
        url = owner + path
        if region not in self._used:
            self._used.add(region)
            log.info("handing requests about region %s to its worker (%s)", region, owner)
        headers = {TOKEN_HEADER: self._token, "Content-Type": "application/json"}
        try:
            async with self._session.post(url, data=dumps_bytes(body), headers=headers) as response:
                if response.status != 200:
                    raise WorkerUnreachable(f"the worker of region {region} answered HTTP {response.status}")
                return loads(await response.read())
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("hand-off to the worker of region %s failed: %s", region, exc)
            raise WorkerUnreachable(f"the worker of region {region} did not answer: {exc}") from None


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


def make_handoff_app(centre: Centre, token: str, executor: ThreadPoolExecutor) -> web.Application:
    """The hand-off listener's application: requests other workers received for this worker's regions."""

    def trusted(request: web.Request) -> bool:
        return hmac.compare_digest(request.headers.get(TOKEN_HEADER, ""), token)

    async def envelope(request: web.Request) -> web.Response:
        if not trusted(request):
            return web.Response(status=403, text="not a worker of this centre")
        data = parse_sized_body(await request.read(), None)
        future = centre.submit(data, may_hand_off=False)
        answer = await asyncio.wrap_future(future)
        return web.Response(body=dumps_bytes(answer), content_type="application/json")

    async def admin(request: web.Request) -> web.Response:
        if not trusted(request):
            return web.Response(status=403, text="not a worker of this centre")
        try:
            body = parse_sized_body(await request.read(), None, may_upload=False, decimals=False)
            work = functools.partial(centre.admin, body)
            result = {"ok": True, **await asyncio.get_running_loop().run_in_executor(executor, work)}
        except MedsettleError as exc:
            result = {"ok": False, "error": f"{exc.code}: {exc}"}
        return web.Response(body=dumps_bytes(result), content_type="application/json")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post(ENVELOPE_PATH, envelope)
    app.router.add_post(ADMIN_PATH, admin)
    return app
