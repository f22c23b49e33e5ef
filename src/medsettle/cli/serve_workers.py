"""``medsettle serve --workers N``: N centre processes behind one address, on one PostgreSQL journal.

The parent process reads the policy and the persons once, binds the address and one hand-off socket per
worker, writes the clients' credentials (so the workers only read them), then forks the workers and waits:
each worker replays the journal, owns its share of the insured regions (sorted, dealt out in turn: with the
default policy's five regions and two workers, 3 and 2), takes connections on the shared address and hands
to its owner what another worker owns (medsettle.centre.workers). The parent prints the address once every
worker is ready, stops them all on SIGINT or SIGTERM, and stops them all, with one ``Error:`` line, if one
of them dies: a centre missing a region's writer must not look healthy.

Fork, not spawn: the workers inherit the bound sockets and the parsed policy and population (shared
copy-on-write), and the parent holds no thread or database connection when it forks.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import secrets
import signal
import socket
import time
from typing import TYPE_CHECKING, Any

import click

from ..engine import Population, Settler
from ..seams import SYSTEM_CLOCK
from ._common import policy_from
from ._serving import (
    WorkerRole,
    check_regions,
    connection_limits,
    gateway_of,
    journal_at,
    listen,
    serve_forever,
    without_password,
    write_credentials,
)

if TYPE_CHECKING:
    from ..seams import Clock

log = logging.getLogger(__name__)
START_WITHIN = 600.0  # ok-float: seconds a worker may take to replay the journal and listen
STOP_WITHIN = 30.0  # ok-float: seconds a worker may take to finish its requests in flight


def deal_regions(regions: list[str], workers: int) -> list[list[str]]:
    """The insured regions of each worker: sorted, dealt out in turn."""
    ordered = sorted(regions)
    return [ordered[i::workers] for i in range(workers)]


def serve_workers(
    workers: int,
    *,
    policy_file: str | None,
    persons_file: str | None,
    db_url: str,
    data_dir: str,
    port: int,
    engine: Any,
    regions: str | None,
    stats_every: int,
    institutions_file: str | None,
    insecure: bool,
    idempotency_window: int,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """Run the centre as ``workers`` processes (see the module's docstring); return once they are stopped."""
    from ..centre.gateway import INSECURE_WARNING  # noqa: PLC0415
    from ..centre.institutions import default_institutions, load_institutions  # noqa: PLC0415
    from ..errors import MedsettleError  # noqa: PLC0415

    pol = policy_from(policy_file)
    institutions, given = load_institutions(institutions_file, pol) if institutions_file else (None, {})
    institutions = institutions or default_institutions(pol)
    owned = [r.strip() for r in regions.split(",") if r.strip()] if regions else [r.admdvs for r in pol.regions]
    check_regions(pol, owned)
    if workers > len(owned):
        raise click.ClickException(
            f"--workers {workers}: only {len(owned)} insured regions to share out ({', '.join(sorted(owned))}); "
            "each worker owns at least one"
        )
    shares = deal_regions(owned, workers)
    population = Population.from_csv(pol, persons_file) if persons_file else Population.generate(pol, 10_000, seed=0)
    limits = connection_limits()
    listener = listen(port)
    handoff_listeners = [listen(0) for _ in range(workers)]
    owners = {
        region: f"127.0.0.1:{handoff_listeners[n].getsockname()[1]}"
        for n, share in enumerate(shares)
        for region in share
    }
    token = secrets.token_hex(16)
    try:
        journal = journal_at(db_url, clock)
        try:  # the credentials, made once here, so that the workers only read them
            codes = [i.fixmedins_code for i in institutions]
            gateway, kept = gateway_of(codes, journal, given, lambda exc: MedsettleError(str(exc)))
            gateway.close()
            replayed = journal.count()
        finally:
            journal.close()
        click.echo(f"journal {without_password(db_url)}: {replayed:,} entries")
        click.echo("institutions: " + ", ".join(f"{i.fixmedins_code} ({i.tier})" for i in institutions))
        write_credentials(kept, data_dir)
        context = multiprocessing.get_context("fork")
        processes, pipes = [], []
        for n, share in enumerate(shares):
            parent_end, child_end = context.Pipe(duplex=False)
            role_args = (n, share, handoff_listeners[n], child_end)
            process = context.Process(
                target=_worker_main,
                name=f"medsettle-worker-{n + 1}",
                args=role_args,
                kwargs={
                    "pol": pol,
                    "population": population,
                    "institutions": institutions,
                    "db_url": db_url,
                    "engine": engine,
                    "owners": owners,
                    "token": token,
                    "listener": listener,
                    "limits": limits,
                    "stats_every": stats_every,
                    "insecure": insecure,
                    "idempotency_window": idempotency_window,
                    "clock": clock,
                },
            )
            process.start()
            child_end.close()
            processes.append(process)
            pipes.append(parent_end)
        _wait_until_ready(processes, pipes, shares)
        if insecure:
            click.echo(f"WARNING: {INSECURE_WARNING}")
        bound = listener.getsockname()[1]
        who = "; ".join(f"worker {n + 1}: {','.join(share)}" for n, share in enumerate(shares))
        click.echo(f"medsettle centre listening on http://127.0.0.1:{bound}/ ({workers} workers: {who})")
        log.info("started %d workers on http://127.0.0.1:%d/ (%s)", workers, bound, who)
        _watch(processes, shares)
    finally:
        listener.close()
        for sock in handoff_listeners:
            sock.close()


def _wait_until_ready(processes: list, pipes: list, shares: list[list[str]]) -> None:
    """Until every worker says it listens; one ``Error:`` (every worker stopped) if one dies first."""
    waiting = dict(enumerate(pipes))
    deadline = time.monotonic() + START_WITHIN
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            _stop(processes)
            raise click.ClickException(f"the workers did not start within {START_WITHIN:.0f} s")
        sentinels = [p.sentinel for p in processes]
        ready = multiprocessing.connection.wait([*waiting.values(), *sentinels], timeout=left)
        for n, process in enumerate(processes):
            if process.sentinel in ready and not process.is_alive():
                _stop(processes)
                raise click.ClickException(
                    f"worker {n + 1} (regions {','.join(shares[n])}) stopped while starting "
                    f"(exit code {process.exitcode}); see the log above"
                )
        for n, pipe in list(waiting.items()):
            if pipe in ready:
                pipe.recv()
                del waiting[n]


def _watch(processes: list, shares: list[list[str]]) -> None:
    """Wait for SIGINT or SIGTERM (then stop every worker), or for a worker to die (then stop the others)."""
    stopping = []

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping:
            multiprocessing.connection.wait([p.sentinel for p in processes], timeout=0.5)
            for n, process in enumerate(processes):
                if not process.is_alive() and not stopping:
                    log.error("worker %d (regions %s) exited with code %s", n + 1, shares[n], process.exitcode)
                    _stop(processes)
                    raise click.ClickException(
                        f"worker {n + 1} (regions {','.join(shares[n])}) exited with code {process.exitcode}; "
                        "every worker was stopped (a centre without its regions' writer must not answer)"
                    )
        _stop(processes)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stop(processes: list) -> None:
    """SIGTERM to every worker still running (each finishes its requests in flight), SIGKILL past STOP_WITHIN."""
    for process in processes:
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WITHIN
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def _stop_with_parent() -> None:
    """Ask Linux to send this worker SIGTERM when its parent dies (a parent killed with SIGKILL cannot stop
    its workers itself; without this they would go on answering, unwatched). Elsewhere: nothing."""
    import ctypes  # noqa: PLC0415
    import ctypes.util  # noqa: PLC0415

    name = ctypes.util.find_library("c")
    if name is None or not hasattr(ctypes, "CDLL"):
        return
    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(name, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return


def _worker_main(
    number: int,
    share: list[str],
    handoff_listener: socket.socket,
    ready_pipe: Any,
    *,
    pol: Any,
    population: Population,
    institutions: list,
    db_url: str,
    engine: Any,
    owners: dict[str, str],
    token: str,
    listener: socket.socket,
    limits: Any,
    stats_every: int,
    insecure: bool,
    idempotency_window: int,
    clock: Clock,
) -> None:
    """One worker: the centre of its regions on the shared journal, served on the shared address."""
    from ..centre.service import Centre  # noqa: PLC0415
    from ..centre.workers import Handoff  # noqa: PLC0415

    for signum in (signal.SIGINT, signal.SIGTERM):  # the parent's handlers are not the worker's
        signal.signal(signum, signal.SIG_DFL)
    _stop_with_parent()
    journal = journal_at(db_url, clock)
    try:
        settler = Settler(pol, population, engine=engine)
        centre = Centre(
            settler, journal, institutions, regions=share, idempotency_window=idempotency_window, clock=clock
        )
        gateway = None if insecure else gateway_of(centre.institutions, journal, {}, centre.fail_stop, clock)[0]
        others = {region: url for region, url in owners.items() if region not in share}
        role = WorkerRole(number, Handoff(others, token), handoff_listener, token, ready_pipe)
        where = f"journal {without_password(db_url)} ({type(journal).__name__}), worker {number + 1}"
        serve_forever(
            centre,
            listener,
            where=where,
            regions=share,
            stats_every=stats_every,
            gateway=gateway,
            limits=limits,
            worker=role,
        )
    finally:
        journal.close()
        ready_pipe.close()


__all__ = ["deal_regions", "serve_workers"]
