"""The centre over HTTP (aiohttp): one endpoint takes the platform's envelope, answers with its response.

POST / (or the platform's own path) with a JSON body; GET /schema for the message schemas; POST /admin
for the registry's card and person events (the server listens on 127.0.0.1 only). The centre's
work runs on a thread pool so that many requests can wait for the journal together (group commit).
Bodies over 1 MiB, bodies that are not JSON, and anything else malformed get ``infcode -1`` naming
what is wrong; nothing about them is stored.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from aiohttp import web

from ..engine.results import dumps
from ..errors import MedsettleError
from .messages import json_schemas
from .service import Centre

log = logging.getLogger("medsettle.centre")
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
        try:
            response = await asyncio.get_running_loop().run_in_executor(executor, centre.handle, data)
        except Exception as exc:  # noqa: BLE001 (a bug: answer in the platform's shape, and log it)
            log.exception("request failed")
            return _json({"infcode": -1, "inf_refmsgid": data.get("msgid", "") if isinstance(data, dict) else "",
                          "err_msg": f"INTERNAL_ERROR: {exc}", "output": {}}, status=500)
        return _json(response)

    async def schema(_: web.Request) -> web.Response:
        return _json(json_schemas())

    async def admin(request: web.Request) -> web.Response:
        """The admin API of persons and cards (medsettle.centre.admin: one model per action: enrol,
        change_unit, contribute, issue_card, issue_cards_employer, transfer_out, transfer_in, issue_qr,
        card, credit, cancel_person); answers {"ok": true, ...} or {"ok": false, "error"}."""
        try:
            body = json.loads(await request.read())
            work = functools.partial(centre.admin, body)
            result = await asyncio.get_running_loop().run_in_executor(executor, work)
        except MedsettleError as exc:
            return _json({"ok": False, "error": f"{exc.code}: {exc}"}, status=400)
        except ValueError as exc:  # malformed JSON
            return _json({"ok": False, "error": f"INVALID_INPUT: {exc}"}, status=400)
        except Exception as exc:  # noqa: BLE001
            log.exception("admin request failed")
            return _json({"ok": False, "error": f"INTERNAL_ERROR: {exc}"}, status=500)
        return _json({"ok": True, **result})

    async def close_executor(_: web.Application) -> None:
        executor.shutdown(wait=True)

    app.router.add_post("/", call)
    app.router.add_post(PLATFORM_PATH, call)
    app.router.add_get("/schema", schema)
    app.router.add_post("/admin", admin)
    app.on_cleanup.append(close_executor)
    return app


def _json(body: dict, status: int = 200) -> web.Response:
    return web.Response(text=dumps(body), status=status, content_type="application/json")
