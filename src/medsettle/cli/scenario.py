"""``medsettle scenario run FILE...``: scenario files (docs/scenarios.md) run in the deterministic world,
pass or fail per step, a total, and JUnit XML with ``--junit PATH``.

Every file is read and checked before any runs: a mistake in one is one ``Error:`` line naming the file, the
step and the field, exit status 2. A scenario that fails exits 1. The scenario package is imported only when
the command runs (``--help`` stays fast).
"""

from __future__ import annotations

from pathlib import Path

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
    "--live", is_flag=True, help="Against real processes (a served centre, counter processes): not available yet."
)
def run_command(files: tuple[Path, ...], junit: Path | None, live: bool) -> None:
    """Run scenario FILES (a directory: its *.toml) in the deterministic world; exit 1 if a step fails, 2 if a
    file is malformed."""
    if live:
        raise _FileError("--live: live mode (real processes) is not available yet; run without --live")
    from ..scenario import ScenarioFileError, load, run, write_junit  # noqa: PLC0415

    paths = [p for path in files for p in (sorted(path.glob("*.toml")) if path.is_dir() else [path])]
    if not paths:
        raise _FileError(f"{', '.join(map(str, files))}: no scenario files (*.toml) there")
    try:
        scenarios = [load(path) for path in paths]
    except ScenarioFileError as exc:
        raise _FileError(str(exc)) from None
    results = []
    for s in scenarios:
        try:
            result = run(s)
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
            write_junit(junit, results)
        except OSError as exc:
            raise click.ClickException(f"--junit: cannot write {junit}: {exc.strerror or exc}") from None
    steps = sum(len(r.steps) for r in results)
    failed_steps = sum(len(r.failures()) for r in results)
    passed = sum(r.ok for r in results)
    click.echo(f"{passed} of {len(results)} scenarios passed; {steps} steps, {failed_steps} failed")
    if passed != len(results):
        raise SystemExit(1)
