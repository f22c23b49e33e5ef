"""What serving the centre takes, shared by ``medsettle serve`` and its workers (``serve --workers``): the
listening socket, the journal, the gateway and the clients' credentials, and the server's loop.

What it prints on stdout (the journal replayed, the institutions, the URL it listens on) is for the user and
for the scripts that read the URL; its log (to stderr, or ``--log-file``) is for the operator: one line at the
start, one every ``--stats-every`` seconds (requests, refusals and sampled latency), one at a clean stop
(SIGINT or SIGTERM), and one from the centre's core if it fail-stops.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..seams import SYSTEM_CLOCK

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Iterable

    from ..centre.app import Interval
    from ..centre.connections import Limits
    from ..centre.gateway import Gateway
    from ..centre.service import Centre
    from ..centre.workers import Handoff, HandoffServer
    from ..errors import MedsettleError
    from ..ledger.gate import Secret
    from ..ledger.journal import GroupCommitJournal
    from ..policy.models import Policy
    from ..seams import Clock

log = logging.getLogger("medsettle.cli.serve")  # one logger name for the operator's log, whichever module writes
CONNECTIONS = "medsettle.connections"  # the command context's meta key of the connection limits (serve's option)


@dataclass
class WorkerRole:
    """What makes one centre process a worker of several: its hand-offs and how it says it is ready."""

    number: int
    handoff: Handoff
    handoff_listener: socket.socket
    token: str
    ready_pipe: Any  # a multiprocessing Connection: "ready" once listening

    async def open(self, centre: Centre, loop: asyncio.AbstractEventLoop) -> HandoffServer:
        """Start taking other workers' hand-offs, and hand off from ``loop``."""
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

        from ..centre.workers import HandoffServer  # noqa: PLC0415

        self.handoff.start(loop)
        centre.handoff = self.handoff.envelope
        executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="medsettle-handoff")
        server = HandoffServer(centre, self.token, executor, self.handoff)
        await server.start(self.handoff_listener)
        return server

    def ready(self) -> None:
        self.ready_pipe.send(("ready", self.number))


def gateway_of(
    codes: Iterable[str],
    journal: GroupCommitJournal,
    given: dict[str, Secret],
    fail_stop: Callable[[BaseException], MedsettleError],
    clock: Clock = SYSTEM_CLOCK,
) -> tuple[Gateway, dict[str, Secret]]:
    """The gateway of institutions ``codes`` and the credentials it accepts (made now where none is stored
    yet); ``fail_stop``: what a failure to store a nonce does (the journal's database failed)."""
    from ..centre.gateway import open_gateway  # noqa: PLC0415
    from ..ledger.journal import JournalError  # noqa: PLC0415

    def failed(exc: BaseException) -> MedsettleError:  # the nonces are in the journal's database: it failed
        return fail_stop(JournalError(f"{journal.name}: storing a nonce: {exc}"))

    return open_gateway(journal.gate, codes, given, clock=clock, on_failure=failed)


def write_credentials(kept: dict[str, Secret], data_dir: str) -> None:
    """The clients' copy of the credentials, DATA_DIR/credentials.toml (mode 0600); its path is printed."""
    from .. import credentials  # noqa: PLC0415
    from ..ledger.gate import AGENCY_ROW  # noqa: PLC0415

    path = Path(data_dir).absolute() / credentials.FILE_NAME
    copy = credentials.Credentials(
        {c: credentials.InstitutionCredential(c, s.paasid, s.passtoken) for c, s in kept.items() if c != AGENCY_ROW},
        kept[AGENCY_ROW].passtoken,
    )
    credentials.write(path, copy)
    click.echo(f"credentials: {path} (mode 0600; clients find it with --credentials or {credentials.ENV_VAR})")


def serve_forever(
    centre: Centre,
    listener: socket.socket,
    *,
    where: str,
    regions: list[str] | None,
    stats_every: int,
    gateway: Gateway | None,
    limits: Limits | None = None,
    worker: WorkerRole | None = None,
) -> None:
    """Answer on the bound socket until SIGINT or SIGTERM, then finish the requests in flight and return.

    ``worker``: this process is one of ``serve --workers``: it also takes the requests other workers hand it,
    hands them the ones it receives for their regions, and says it is ready through ``worker.ready`` (the
    parent prints the address) instead of printing it."""
    import asyncio  # noqa: PLC0415

    from aiohttp import web  # noqa: PLC0415

    from ..centre.app import Throughput, make_app, tune_gc_for_serving  # noqa: PLC0415
    from ..centre.connections import open_door  # noqa: PLC0415
    from ..centre.gateway import INSECURE_WARNING  # noqa: PLC0415

    tune_gc_for_serving()
    throughput = Throughput()
    if limits is None:
        limits = connection_limits()

    async def report_every(seconds: int) -> None:
        while True:
            await asyncio.sleep(seconds)
            log.info("throughput: %s", interval_text(throughput.take()))

    async def run() -> None:
        # No access log: it would cost a log record per request; the throughput line counts them instead.
        app = make_app(centre, gateway=gateway, throughput=throughput, handoff=worker.handoff if worker else None)
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=limits.idle_timeout)
        await runner.setup()
        door = await open_door(runner, listener, limits, centre.refusal)  # the cap and the timeouts
        bound = listener.getsockname()[1]  # the real port when 0 was asked for
        handoffs = await worker.open(centre, asyncio.get_running_loop()) if worker is not None else None
        if worker is not None:
            worker.ready()
        else:
            if gateway is None:  # before the line scripts wait for, so that none of them misses it
                click.echo(f"WARNING: {INSECURE_WARNING}")
                log.warning("%s", INSECURE_WARNING)
            engine = centre.settler.engine_name
            click.echo(f"medsettle centre listening on http://127.0.0.1:{bound}/ (engine: {engine})")
        log.info(  # a worker's says "answering": scripts wait for the parent's "listening on", once all are up
            "started: %s http://127.0.0.1:%d/, %s, regions %s, engine %s, %s, %d institutions",
            "answering on" if worker is not None else "listening on",
            bound,
            where,
            ",".join(regions) if regions else "all",
            centre.settler.engine_name,
            limits.describe(),
            len(centre.institutions),
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows' event loop
                loop.add_signal_handler(signum, stop.set)
        since = time.monotonic()
        reporter = asyncio.create_task(report_every(stats_every)) if stats_every else None
        try:
            await stop.wait()
        finally:
            if reporter is not None:
                reporter.cancel()
            door.close()
            await runner.cleanup()
            if handoffs is not None:
                await handoffs.cleanup()
        log.info(
            "stopped: %d requests answered (%d refused) in %.0f s",
            throughput.requests,
            throughput.refused,
            time.monotonic() - since,
        )

    asyncio.run(run())


def connection_limits() -> Limits:
    """The limits --max-connections read as the command line was (or the defaults)."""
    from ..centre.connections import plan  # noqa: PLC0415

    context = click.get_current_context(silent=True)
    return context.meta[CONNECTIONS] if context is not None and CONNECTIONS in context.meta else plan(None)


def interval_text(interval: Interval) -> str:
    """One interval of the throughput line: requests, their rate, refusals, and the sampled latency."""
    text = (
        f"{interval.requests} requests in {interval.seconds:.1f} s ({interval.per_second:.1f}/s), "
        f"{interval.refused} refused"
    )
    p50, p99 = interval.percentile(50), interval.percentile(99)
    if p50 is not None and p99 is not None:
        text += f", latency p50 {p50 * 1000:.2f} ms p99 {p99 * 1000:.2f} ms ({len(interval.latencies)} sampled)"
    return text


def without_password(url: str) -> str:
    """The journal's URL for the log: a PostgreSQL URL's password (in its user part or its query) left out."""
    url = re.sub(r"^(postgres(?:ql)?://[^:/@]*):[^@/]*@", r"\1:***@", url)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", url)


def check_regions(policy: Policy, owned: list[str] | None) -> None:
    every = [r.admdvs for r in policy.regions]
    unknown = [r for r in owned or [] if r not in every]
    if unknown:
        raise click.ClickException(
            f"--regions {','.join(unknown)}: not a region of the policy (its regions: {', '.join(every)})"
        )


def listen(port: int) -> socket.socket:
    """A socket listening on 127.0.0.1:``port``, or one Error line saying the port is taken."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp does: restarts reuse the port
    try:
        listener.bind(("127.0.0.1", port))
        listener.listen(1024)
    except OSError as exc:
        listener.close()
        hint = (
            (
                "another program (perhaps another medsettle serve) is using it; stop it or choose another --port "
                "(0: any free port)"
            )
            if exc.errno == errno.EADDRINUSE
            else "choose another --port"
        )
        raise click.ClickException(
            f"--port {port}: cannot listen on 127.0.0.1:{port}: {exc.strerror}; {hint}"
        ) from None
    listener.setblocking(False)
    return listener


def journal_at(url: str, clock: Clock = SYSTEM_CLOCK) -> GroupCommitJournal:
    """The journal at ``url``, or one Error line naming it and why it cannot be opened."""
    import sqlite3  # noqa: PLC0415

    from ..ledger import open_journal  # noqa: PLC0415

    try:
        return open_journal(url, clock=clock)
    except (OSError, sqlite3.Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise click.ClickException(f"journal {url}: cannot open it: {reason}; check --data-dir or --db") from None
    except Exception as exc:
        if type(exc).__module__.startswith("psycopg"):
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise click.ClickException(f"--db {url}: cannot connect: {first_line}") from None
        raise
