"""The centre over HTTP (aiohttp): one endpoint takes the platform's envelope, answers with its response.

POST / (or the platform's own path) with a JSON body; GET /schema for the message schemas. The centre's
work runs on a thread pool so that many requests can wait for the journal together (group commit).
Bodies over 1 MiB, bodies that are not JSON, and anything else malformed get ``infcode -1`` naming
what is wrong; nothing about them is stored.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from aiohttp import web

from ..engine.results import dumps
from .messages import json_schemas
from .service import Centre

MAX_BODY = 1024 * 1024
PLATFORM_PATH = "/fsi/api/rsfComIfsService/callService"


def make_app(centre: Centre, *, workers: int = 64) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medsettle-centre")

    async def call(request: web.Request) -> web.Response:
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _json({"infcode": -1, "inf_refmsgid": "", "err_msg": f"INVALID_INPUT: the body is over "
                          f"{MAX_BODY} bytes", "output": {}}, status=413)
        try:
            data = json.loads(raw, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError) as exc:
            return _json({"infcode": -1, "inf_refmsgid": "", "err_msg": f"INVALID_INPUT: the body is not JSON "
                          f"({exc})", "output": {}}, status=400)
        response = await asyncio.get_running_loop().run_in_executor(executor, centre.handle, data)
        return _json(response)

    async def schema(_: web.Request) -> web.Response:
        return _json(json_schemas())

    async def close_executor(_: web.Application) -> None:
        executor.shutdown(wait=True)

    app.router.add_post("/", call)
    app.router.add_post(PLATFORM_PATH, call)
    app.router.add_get("/schema", schema)
    app.on_cleanup.append(close_executor)
    return app


def _json(body: dict, status: int = 200) -> web.Response:
    return web.Response(text=dumps(body), status=status, content_type="application/json")
