"""``medsettle sim``: the deterministic fault simulator, for scenario testers (docs/simulation.md).

``sim run`` plays one seed of a simulated world (a centre, counters, patients, faults, on a virtual clock) and
prints what happened and the trace's hash; ``sim replay`` plays the same seed printing every event; ``sim soak``
plays many seeds on every core. A world (population, registry, institutions) costs a second to build, so each
process builds one and reuses it for all its seeds; the simulator itself is imported only when a command runs.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
import time
import traceback
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..sim.profiles import FAULT_KINDS, PROFILES, UnknownProfile, profile_named
from ._errors import OneLineCommand, fail_cleanly

if TYPE_CHECKING:
    from ..sim.world import RunOptions, RunResult, World

F = TypeVar("F", bound=Callable[..., Any])
DETAIL_CHARS = 200  # of a failing seed's detail in the soak's list
VOUCHER_STATES = ("settled", "manual_claim")  # where every voucher ends after the drain; shown even at zero


class _AtLeast(click.IntRange):
    """An integer of at least ``minimum``; a word given for it is 'not a valid integer' (click says 'range')."""

    name = "integer"

    def __init__(self, minimum: int) -> None:
        super().__init__(min=minimum)


def _world_options(command: F) -> F:
    """--profile, --days, --institutions and --engine: what a run is, besides its seed."""
    for option in reversed(
        [
            click.option(
                "--profile",
                default="default",
                show_default=True,
                metavar="NAME",
                help=f"Fault profile: {', '.join(PROFILES)} (docs/simulation.md 'Profiles').",
            ),
            click.option(
                "--days",
                default=1,
                show_default=True,
                type=_AtLeast(1),
                metavar="D",
                help="Simulated days of patients.",
            ),
            click.option(
                "--institutions",
                default=10,
                show_default=True,
                type=_AtLeast(1),
                metavar="N",
                help="Counters in the world (hospitals of tiers 3, 2, 1 and pharmacies, in turn).",
            ),
            click.option(
                "--engine",
                type=click.Choice(["core", "reference"]),
                help="Settlement engine: the Cython core or the pure-Python reference [default: core when built].",
            ),
        ]
    ):
        command = option(command)
    return command


def _quiet_on_a_closed_pipe(fn: F) -> F:
    """Decorator: output piped into head or less, which stopped reading, ends the command quietly (no
    traceback, no replay line), with the status a shell gives it (128 + SIGPIPE)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit is quiet too
            raise SystemExit(141) from None

    return wrapper  # type: ignore[return-value]


def _options(seed: int, profile: str, days: int, institutions: int, engine: str | None) -> RunOptions:
    """The run asked for, its profile and engine checked here so a bad one is one Error line."""
    from ..engine import core_problem  # noqa: PLC0415  (the engine loads only when a command runs)
    from ..sim.world import RunOptions  # noqa: PLC0415

    try:
        profile_named(profile)
    except UnknownProfile as exc:
        raise click.ClickException(str(exc)) from None
    problem = core_problem()
    if engine == "core" and problem:
        raise click.ClickException(f"--engine core: {problem}")
    chosen = engine or ("reference" if problem else "core")
    return RunOptions(seed=seed, profile=profile, days=days, institutions=institutions, engine=chosen)


@click.group()
def sim() -> None:
    """Play seeded fault scenarios on a simulated world and check that no fen is lost or paid twice
    (docs/simulation.md)."""
    # The simulated counters' warnings (a resume that could not finish a step) are events of the run, in its
    # trace (`sim replay` prints them); printed to stderr they would only break the progress bar and the table.
    counters = logging.getLogger("medsettle.terminal")
    counters.addHandler(logging.NullHandler())
    counters.propagate = False


_SEED = click.option(
    "--seed", required=True, type=_AtLeast(0), metavar="S", help="The seed: the same seed plays the same run."
)


@sim.command(cls=OneLineCommand)
@_SEED
@_world_options
@fail_cleanly()
@_quiet_on_a_closed_pipe
def run(seed: int, profile: str, days: int, institutions: int, engine: str | None) -> None:
    """Play one seed and print a summary (bills, faults, outcomes, vouchers, checks) and the trace's hash;
    exit 1 if an invariant is broken, saying where and how to replay it."""
    _play(_options(seed, profile, days, institutions, engine), echo=None)


@sim.command(cls=OneLineCommand)
@_SEED
@_world_options
@fail_cleanly()
@_quiet_on_a_closed_pipe
def replay(seed: int, profile: str, days: int, institutions: int, engine: str | None) -> None:
    """Play one seed as `sim run` does, printing every event of its trace as it happens, then the same
    summary and hash."""
    _play(_options(seed, profile, days, institutions, engine), echo=click.echo)


def _play(options: RunOptions, echo: Callable[[str], None] | None) -> None:
    from ..sim.world import World  # noqa: PLC0415  (the simulator loads only when a command runs)

    try:
        result = World().run(options, echo=echo)
    except BrokenPipeError:
        raise
    except Exception:  # a bug of the simulator or of what it drives: its traceback follows, and how to replay it
        click.echo(
            f"seed {options.seed}: the run stopped on an exception; replay: {options.command('replay')}", err=True
        )
        raise
    for line in _summary(result):
        click.echo(line)
    click.echo(f"trace sha256: {result.trace_sha256}")
    if result.violation is not None:
        for line in _violation(result):
            click.echo(line)
        sys.stdout.flush()
        raise SystemExit(1)


def _row(name: str, value: int, indent: int = 0) -> str:
    return f"{' ' * indent}{name:<{30 - indent}}{value:>10,}"


def _header(options: RunOptions) -> str:
    profile = profile_named(options.profile)
    days = "1 day" if options.days == 1 else f"{options.days:,} days"
    institutions = "1 institution" if options.institutions == 1 else f"{options.institutions:,} institutions"
    return f"profile {profile.name} ({profile.description}), {days}, {institutions}, engine {options.engine}"


def _summary(result: RunResult) -> Iterator[str]:
    """The table of one run: what it played, what was injected, how it ended, what was checked."""
    yield f"seed {result.options.seed}: {_header(result.options)}"
    yield _row("bills", result.bills)
    yield _row("steps", result.steps)
    yield from _faults(result.faults)
    yield "outcomes"
    for name, n in result.outcomes.items():
        yield _row(name, n, 2)
    yield from _vouchers(result.vouchers)
    yield _row("invariants checked", result.checks) + f"  ({_invariants()})"
    yield "result" + f"{'ok' if result.ok else 'VIOLATION':>34}"


def _faults(faults: dict[str, int]) -> Iterator[str]:
    yield _row("faults injected", sum(faults.values()))
    for kind in FAULT_KINDS:
        yield _row(kind, faults.get(kind, 0), 2)


def _vouchers(vouchers: dict[str, int]) -> Iterator[str]:
    yield _row("vouchers", sum(vouchers.values()))
    for state in [*VOUCHER_STATES, *sorted(set(vouchers) - set(VOUCHER_STATES))]:
        yield _row(state, vouchers.get(state, 0), 2)


def _invariants() -> str:
    from ..sim.checkers import INVARIANTS  # noqa: PLC0415  (the simulator loads only when a command runs)

    return ", ".join(INVARIANTS)


def _violation(result: RunResult) -> Iterator[str]:
    """Where the run broke: seed, step, invariant, what was seen, the events before it, and how to replay."""
    v = result.violation
    assert v is not None
    yield ""
    yield f"VIOLATION at seed {result.options.seed}, step {v.step}: {v.invariant}"
    yield f"  seed:      {result.options.seed}"
    yield f"  step:      {v.step}"
    yield f"  invariant: {v.invariant}"
    yield f"  detail:    {v.detail}"
    yield f"  the last {len(result.recent)} events of the trace:"
    for line in result.recent:
        yield f"    {line}"
    yield f"  replay: {result.replay_line}"


# -- soak -------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SeedOutcome:
    """What a soak worker sends back for one seed: plain values only (a Violation does not pickle)."""

    seed: int
    bills: int
    faults: dict[str, int]
    vouchers: dict[str, int]
    replay_line: str
    invariant: str | None = None  # None: every invariant held; "error": the run stopped on an exception
    step: int | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.invariant is None


_world: World | None = None  # a soak worker's world, built once by _start_worker
_base: RunOptions | None = None


def _start_worker(base: RunOptions) -> None:
    """Pool initializer: build the world once; every seed this process plays reuses it."""
    global _world, _base
    from ..sim.world import World  # noqa: PLC0415  (the simulator loads only when a command runs)

    _world, _base = World(), base


EXIT_WITHIN_S = 5.0  # ok-float: seconds a stopped pool worker has for its cleanup before it is ended


def _start_pool_worker(base: RunOptions) -> None:
    """A pool worker leaves Ctrl-C to the soak, which stops the pool and prints what was played; stopped (the
    pool's SIGTERM), it exits through its run's cleanup, so no journal directory is left in /dev/shm."""
    import signal  # noqa: PLC0415  (only a pool worker needs it)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _start_worker(base)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """Raised where the worker is, so that its run's cleanup runs. But code that C calls back into (orjson's
    ``default=``) turns an exception raised there into a TypeError of its own, which the worker records as
    the seed's error and goes on: it would never exit, and the pool's terminate would wait for it for ever.
    So a timer ends the process a few seconds later, whatever happens to the exception."""
    import threading  # noqa: PLC0415  (only a stopping pool worker needs it)

    timer = threading.Timer(EXIT_WITHIN_S, os._exit, (128 + signum,))
    timer.daemon = True
    timer.start()
    raise SystemExit(128 + signum)


def _play_seed(seed: int) -> SeedOutcome:
    assert _world is not None and _base is not None, "the worker was not started"
    options = dataclasses.replace(_base, seed=seed)
    try:
        result = _world.run(options)
    except Exception as exc:  # noqa: BLE001  (a soak reports a seed that crashed the simulator and goes on)
        where = traceback.extract_tb(exc.__traceback__)[-1]
        detail = f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno} in {where.name})"
        return SeedOutcome(seed, 0, {}, {}, options.command("replay"), "error", None, detail)
    v = result.violation
    return SeedOutcome(
        seed,
        result.bills,
        result.faults,
        result.vouchers,
        result.replay_line,
        v.invariant if v else None,
        v.step if v else None,
        v.detail if v else "",
    )


@sim.command(cls=OneLineCommand)
@click.option("--seeds", required=True, type=_AtLeast(1), metavar="N", help="How many seeds to play: K..K+N-1.")
@click.option("--first-seed", default=0, show_default=True, type=_AtLeast(0), metavar="K", help="The first seed (K).")
@click.option(
    "--jobs",
    type=_AtLeast(1),
    metavar="J",
    help="Worker processes, each with its own world [default: one per CPU].",
)
@_world_options
@fail_cleanly()
@_quiet_on_a_closed_pipe
def soak(
    seeds: int, first_seed: int, jobs: int | None, profile: str, days: int, institutions: int, engine: str | None
) -> None:
    """Play seeds K..K+N-1 in parallel with a progress bar, print the totals and every failing seed with the
    line that replays it; exit 1 if any seed broke an invariant."""
    base = _options(first_seed, profile, days, institutions, engine)
    jobs = min(jobs or os.cpu_count() or 1, seeds)
    click.echo(
        f"soak: {seeds:,} seeds from {first_seed} in {jobs} process{'es' if jobs > 1 else ''}: {_header(base)}",
        err=True,
    )
    outcomes: list[SeedOutcome] = []
    started = time.perf_counter()
    interrupted = False
    failures = 0

    def said(_: SeedOutcome | None) -> str | None:
        return f"{failures:,} failing" if failures else None

    lines = _ProgressLines(seeds, started)  # where the bar is not drawn (a CI log, a file)
    with click.progressbar(length=seeds, label="seeds", file=sys.stderr, show_pos=True, item_show_func=said) as bar:
        try:
            for outcome in _outcomes(base, range(first_seed, first_seed + seeds), jobs):
                outcomes.append(outcome)
                failures += not outcome.ok
                bar.update(1, outcome)
                lines.update(len(outcomes), failures)
        except KeyboardInterrupt:
            interrupted = True
    elapsed = time.perf_counter() - started  # ok-float: seconds
    failing = sorted((o for o in outcomes if not o.ok), key=lambda o: o.seed)
    for line in _soak_summary(outcomes, failing, elapsed):
        click.echo(line)
    if interrupted:
        click.echo(f"interrupted: {len(outcomes):,} of {seeds:,} seeds played")
        raise SystemExit(130)
    if failing:
        raise SystemExit(1)


class _ProgressLines:
    """A soak's progress as a plain line every ``every`` seconds when stderr is no terminal (a CI log, a
    file), where click draws no bar: a run of an hour says how far it is and how long it has left."""

    def __init__(self, seeds: int, started: float, every: float = 60.0) -> None:  # ok-float: seconds
        self.seeds, self.started, self.every = seeds, started, every
        self.shown = started
        self.on = not sys.stderr.isatty()

    def update(self, done: int, failures: int) -> None:
        now = time.perf_counter()
        if not self.on or now - self.shown < self.every or done >= self.seeds:
            return
        self.shown = now
        elapsed = now - self.started
        left = elapsed / done * (self.seeds - done)
        click.echo(
            f"seeds: {done:,} of {self.seeds:,} ({done / self.seeds:.0%}), {failures:,} failing, "
            f"{_minutes(elapsed)} so far, about {_minutes(left)} left",
            err=True,
        )


def _minutes(seconds: float) -> str:  # ok-float: seconds
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def _outcomes(base: RunOptions, seeds: range, jobs: int) -> Iterator[SeedOutcome]:
    """Each seed's outcome as it finishes: in this process with one job, else from a pool of workers (one
    seed a task, so the bar moves with every seed; a seed takes seconds, a task's overhead microseconds)."""
    if jobs == 1:
        _start_worker(base)
        yield from map(_play_seed, seeds)
        return
    import multiprocessing  # noqa: PLC0415  (only a soak of several jobs needs it)

    pool = multiprocessing.Pool(jobs, initializer=_start_pool_worker, initargs=(base,))
    try:
        yield from pool.imap_unordered(_play_seed, seeds, chunksize=1)
    except BaseException:  # Ctrl-C or an error here: the workers stop with this process
        pool.terminate()
        raise
    else:
        pool.close()
    finally:
        pool.join()


def _soak_summary(outcomes: list[SeedOutcome], failing: list[SeedOutcome], elapsed: float) -> Iterator[str]:  # ok-float
    faults: Tally[str] = Tally({kind: 0 for kind in FAULT_KINDS})
    vouchers: Tally[str] = Tally()
    for o in outcomes:
        faults.update(o.faults)
        vouchers.update(o.vouchers)
    violations = sum(1 for o in failing if o.invariant != "error")
    yield _row("seeds run", len(outcomes))
    yield f"{'seeds a second':<30}{len(outcomes) / max(elapsed, 1e-9):>10.2f}"
    yield _row("bills", sum(o.bills for o in outcomes))
    yield from _faults(dict(faults))
    yield from _vouchers(dict(vouchers))
    yield _row("violations", violations)
    yield _row("errors", len(failing) - violations)
    if failing:
        yield ""
        yield "failing seeds:"
    for o in failing:
        where = f"step {o.step}" if o.step is not None else "an exception"
        yield f"  seed {o.seed}: {o.invariant} at {where}: {_shortened(o.detail)}"
        yield f"    replay: {o.replay_line}"


def _shortened(detail: str, most: int = DETAIL_CHARS) -> str:
    """A failing seed's detail on one short line (``sim run`` of that seed prints it whole)."""
    detail = " ".join(detail.split())
    return detail if len(detail) <= most else detail[: most - 3] + "..."


# -- live -------------------------------------------------------------------------------------------


@sim.command(cls=OneLineCommand)
@click.option(
    "--seed",
    required=True,
    type=_AtLeast(0),
    metavar="S",
    help="The seed: the same seed plays the same plan (patients, bills, faults), not the same bytes.",
)
@click.option(
    "--profile",
    default="default",
    show_default=True,
    metavar="NAME",
    help=f"Fault profile: {', '.join(PROFILES)} (its chances scaled to a live run's few steps).",
)
@click.option(
    "--counters", default=3, show_default=True, type=click.IntRange(1, 5), metavar="N", help="Counters (1 to 5)."
)
@click.option("--patients", default=6, show_default=True, type=_AtLeast(1), metavar="N", help="Bills at each counter.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON document.")
@click.option("--verbose", is_flag=True, help="Print every event as it happens (on stderr).")
@fail_cleanly()
@_quiet_on_a_closed_pipe
def live(seed: int, profile: str, counters: int, patients: int, as_json: bool, verbose: bool) -> None:
    """Play one seed against real processes: a served centre, counters as `medsettle terminal` processes,
    a fault proxy on loopback, the centre killed (SIGKILL) and restarted, counters killed at their crash
    points and resumed; then heal, drain and check. Seeded but not byte-identical (real processes, threads
    and clocks); exit 1 on a violation, printing the seed and the line that plays it again."""
    import json  # noqa: PLC0415

    from ..sim.live import LiveOptions, LiveRun  # noqa: PLC0415  (the simulator loads only when a command runs)

    try:
        profile_named(profile)
    except UnknownProfile as exc:
        raise click.ClickException(str(exc)) from None
    options = LiveOptions(seed=seed, profile=profile, counters=counters, patients=patients)
    echo = (lambda line: click.echo(line, err=True)) if verbose else None
    try:
        result = LiveRun(options, echo=echo).play()
    except BrokenPipeError:
        raise
    except Exception:  # a bug of the live run or of what it drives: its traceback follows, and how to replay it
        click.echo(f"seed {seed}: the live run stopped on an exception; replay: {options.command()}", err=True)
        raise
    if as_json:
        click.echo(json.dumps(result.as_json(), ensure_ascii=False, indent=2))
    else:
        for line in _live_summary(result):
            click.echo(line)
    if result.violation is not None:
        if not as_json:
            for line in _live_violation(result):
                click.echo(line)
        sys.stdout.flush()
        raise SystemExit(1)


def _live_summary(result: Any) -> Iterator[str]:
    from ..sim.live import LIVE_FAULTS  # noqa: PLC0415

    o = result.options
    profile = profile_named(o.profile)
    yield f"seed {o.seed} (live): profile {profile.name} ({profile.description}), {o.counters} counters, " + (
        f"{o.patients} patients each; seeded, not byte-identical"
    )
    yield _row("bills", result.bills)
    yield _row("terminal commands", result.commands)
    yield _row("faults injected", sum(result.faults.values()))
    for kind in LIVE_FAULTS:
        yield _row(kind, result.faults.get(kind, 0), 2)
    yield "outcomes"
    for name, n in result.outcomes.items():
        yield _row(name, n, 2)
    yield from _vouchers(result.vouchers)
    yield _row("checks made", result.checks) + "  (reconciliation, replay, conservation, exactly-once, drain)"
    yield f"{'seconds':<30}{result.seconds:>10.1f}"
    yield "result" + f"{'ok' if result.ok else 'VIOLATION':>34}"


def _live_violation(result: Any) -> Iterator[str]:
    v = result.violation
    yield ""
    yield f"VIOLATION at seed {result.options.seed} (live): {v.invariant}"
    yield f"  seed:      {result.options.seed}"
    yield f"  invariant: {v.invariant}"
    yield f"  detail:    {v.detail}"
    yield f"  the last {len(result.recent)} events:"
    for line in result.recent:
        yield f"    {line}"
    yield f"  replay (seeded, not byte-identical): {result.options.command()}"
