"""``medsettle scenario run FILE...``: scenario files (docs/scenarios.md) run in the deterministic world,
pass or fail per step, a total, and JUnit XML with ``--junit PATH``.

Every file is read and checked before any runs: a mistake in one is one ``Error:`` line naming the file, the
step and the field, exit status 2. A scenario that fails exits 1. The scenario package is imported only when
the command runs (``--help`` stays fast).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


class _FileError(click.ClickException):
    """A scenario file that cannot be run, or an option that cannot be used: exit status 2."""

    exit_code = 2


@click.group()
def scenario() -> None:
    """Scenario files: scripted outages and equipment failures at counters, with expectations."""


@scenario.command("run")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--junit", "junit", type=click.Path(path_type=Path), help="Write a JUnit XML report here.")
@click.option(
    "--live",
    is_flag=True,
    help="Against real processes: a served centre killed and restarted for real, counters over HTTP through a "
    "fault proxy, on the real clock moved to the scenario's start (advance_clock moves it on).",
)
def run_command(files: tuple[Path, ...], junit: Path | None, live: bool) -> None:
    """Run scenario FILES (a directory: its *.toml) in the deterministic world (--live: against real
    processes); exit 1 if a step fails, 2 if a file is malformed."""
    from ..scenario import ScenarioFileError, junit_xml, load, run  # noqa: PLC0415

    paths = [p for path in files for p in (sorted(path.glob("*.toml")) if path.is_dir() else [path])]
    if not paths:
        raise _FileError(f"{', '.join(map(str, files))}: no scenario files (*.toml) there")
    try:
        scenarios = [load(path) for path in paths]
    except ScenarioFileError as exc:
        raise _FileError(str(exc)) from None
    results: list[Any] = []
    with contextlib.ExitStack() as stack:
        play = run if not live else _live_runner(stack)
        for s in scenarios:
            try:
                result = play(s)
            except ScenarioFileError as exc:
                raise _FileError(str(exc)) from None
            results.append(result)
            click.echo(f"{'PASS' if result.ok else 'FAIL'} {s.path}: {s.name}")
            for step in result.steps:
                click.echo(step.line())
            if result.stopped:
                click.echo(f"  stopped: {result.stopped}")
    if junit is not None:
        try:
            junit.write_bytes(junit_xml(results))
        except OSError as exc:
            raise click.ClickException(f"--junit: cannot write {junit}: {exc.strerror or exc}") from None
    steps = sum(len(r.steps) for r in results)
    failed_steps = sum(len(r.failures()) for r in results)
    passed = sum(r.ok for r in results)
    click.echo(f"{passed} of {len(results)} scenarios passed; {steps} steps, {failed_steps} failed")
    if passed != len(results):
        raise SystemExit(1)


def _live_runner(stack: contextlib.ExitStack) -> Callable[[Any], Any]:
    """Live mode's runner: one deterministic world (its population the served centres' persons file) for
    every scenario, the file in a temporary directory removed at the end."""
    import tempfile  # noqa: PLC0415

    from ..scenario.live import run_live, write_persons  # noqa: PLC0415
    from ..sim.world import World  # noqa: PLC0415

    world = World()
    persons = write_persons(world, Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="medsettle-live-"))))
    return lambda s: run_live(s, world, persons)
