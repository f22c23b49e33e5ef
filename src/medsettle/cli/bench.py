"""``medsettle bench``: load tools for load testers (docs/load.md).

``bench load`` drives a centre with simulated counters on Locust; ``bench compare`` puts two runs' figures
side by side; ``bench all`` measures every layer of the project against its yardstick. Locust (and gevent's
monkeypatching) is imported only when ``bench load`` runs, never by ``medsettle`` itself nor by ``bench compare``.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from ..credentials import CredentialsError
from ._errors import OneLineCommand, fail_cleanly


def _say(line: str) -> None:
    click.echo(line, err=True)


@click.group()
def bench() -> None:
    """Load a centre with simulated counters, compare runs, measure every layer (docs/load.md)."""


@bench.command(cls=OneLineCommand)
@click.option(
    "--counters", default=100, show_default=True, type=click.IntRange(min=1), help="Simulated counters (Locust users)."
)
@click.option(
    "--duration",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="How long bills arrive.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    metavar="PER_SECOND",
    help="Open loop: bills a second, all counters together [default: 200].",
)
@click.option(
    "--closed",
    is_flag=True,
    help="Closed loop: every counter sends its next bill as soon as the last is answered (saturation).",
)
@click.option(
    "--arrivals",
    type=click.Choice(["poisson", "day"]),
    default="poisson",
    show_default=True,
    help="Open-loop arrivals: Poisson at --rate, or a day's curve (morning peak) averaging --rate.",
)
@click.option(
    "--centre",
    "centre",
    metavar="URL",
    help="The centre to load (default: an embedded `medsettle serve --port 0` on a private data directory).",
)
@click.option(
    "--credentials",
    "credentials_file",
    type=click.Path(dir_okay=False),
    help="That centre's credentials file (with --centre; default: $MEDSETTLE_CREDENTIALS, else "
    "medsettle-data/credentials.toml).",
)
@click.option(
    "--persons",
    "persons_file",
    type=click.Path(dir_okay=False),
    help="The persons CSV the centre serves (default: its 10,000 generated persons, seed 0).",
)
@click.option(
    "--mix",
    "mix_file",
    type=click.Path(dir_okay=False),
    help="TOML [mix] of flow = share (default: a weekday's shares; docs/load.md).",
)
@click.option(
    "--flows",
    "flows_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A Python file registering your own flows (repeatable).",
)
@click.option(
    "--workers",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Local Locust worker processes (0: the counters run in this process).",
)
@click.option(
    "--remote-workers",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Workers on other machines to wait for (docs/load.md).",
)
@click.option(
    "--master-bind",
    default="127.0.0.1",
    show_default=True,
    metavar="HOST",
    help="Where the master listens for workers (0.0.0.0 for other machines).",
)
@click.option(
    "--master-port",
    default=0,
    type=click.IntRange(min=0, max=65535),
    help="The master's port for workers [default: any free port; give one for remote workers].",
)
@click.option(
    "--drain",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="After the run, how long counters may take to finish bills already due.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Where the results go [default: ./medsettle-load/<timestamp>/].",
)
@fail_cleanly(CredentialsError)
def load(
    counters: int,
    duration: float,  # ok-float: seconds
    rate: float | None,  # ok-float: per second
    closed: bool,
    arrivals: str,
    centre: str | None,
    credentials_file: str | None,
    persons_file: str | None,
    mix_file: str | None,
    flows_files: tuple[str, ...],
    workers: int,
    remote_workers: int,
    master_bind: str,
    master_port: int,
    drain: float,  # ok-float: seconds
    out_dir: str | None,
) -> None:
    """Drive a centre with N counters speaking the platform's flows; write JSON, CSV and a PNG report."""
    if closed and rate is not None:
        raise click.ClickException("--rate and --closed: give one (open loop at a rate, or closed loop)")
    if credentials_file and not centre:
        raise click.ClickException("--credentials: only with --centre (the embedded centre's are its own)")
    if remote_workers and master_port == 0:
        raise click.ClickException("--remote-workers: give --master-port too, for the workers to connect to")
    for path, option in [(persons_file, "--persons"), (mix_file, "--mix"), *((f, "--flows") for f in flows_files)]:
        if path and not Path(path).is_file():
            raise click.ClickException(f"{option} {path}: no such file")
    out = Path(out_dir) if out_dir else Path("medsettle-load") / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    if out.exists() and not out.is_dir():
        raise click.ClickException(f"--out {out}: a file, not a directory")
    from ..bench.mix import MixError, load_mix  # noqa: PLC0415
    from ..bench.plugins import load_flows  # noqa: PLC0415

    try:
        load_flows(flows_files)
        load_mix(mix_file)
        if centre:
            _check_url(centre)
    except MixError as exc:
        raise click.ClickException(str(exc)) from None
    from ..bench import report  # noqa: PLC0415

    try:
        from ..bench.run import LoadError, LoadOptions, run_load  # noqa: PLC0415  (imports Locust: gevent patches)
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("locust", "gevent", "geventhttpclient", "zmq"):
            raise
        raise click.ClickException(
            f"bench load needs Locust ({exc.name} is not installed): pip install 'medsettle[load]'"
        ) from None

    options = LoadOptions(
        counters=counters,
        duration=duration,
        rate=None if closed else (rate if rate is not None else 200.0),
        arrivals=arrivals,
        centre=centre,
        credentials_file=credentials_file,
        persons_file=persons_file,
        mix_file=mix_file,
        flows_files=flows_files,
        workers=workers,
        remote_workers=remote_workers,
        master_bind=master_bind,
        master_port=master_port,
        drain=drain,
    )
    try:
        result = run_load(options, _say)
    except (LoadError, MixError) as exc:
        raise click.ClickException(str(exc)) from None
    except RuntimeError as exc:  # the embedded centre did not start
        raise click.ClickException(str(exc)) from None
    paths = report.write_all(result, out)
    for line in report.summary(result):
        click.echo(line)
    click.echo(f"results: {paths['json']}, {paths['transactions']}, {paths['seconds']}, {paths['png']}")
    sys.stdout.flush()


def _check_url(url: str) -> None:
    import urllib.parse  # noqa: PLC0415

    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise click.ClickException(f"--centre {url}: give the centre's URL, such as http://127.0.0.1:8901/")


@bench.command(cls=OneLineCommand)
@click.argument("a", metavar="A.json", type=click.Path(dir_okay=False))
@click.argument("b", metavar="B.json", type=click.Path(dir_okay=False))
@fail_cleanly()
def compare(a: str, b: str) -> None:
    """Print two load runs' figures side by side, with the ratio B / A."""
    from ..bench import report  # noqa: PLC0415

    try:
        first, second = report.read_result(a), report.read_result(b)
    except report.ReportError as exc:
        raise click.ClickException(str(exc)) from None
    for line in report.compare(first, second):
        click.echo(line)


@bench.command("all", cls=OneLineCommand)
@click.option("--quick", is_flag=True, help="Smaller sizes: the whole run in about a minute.")
@click.option(
    "--only",
    metavar="LAYER,...",
    help="Only these layers: kernel, single, settle, sim, centre, card [default: all of them].",
)
@click.option(
    "--json",
    "json_file",
    type=click.Path(dir_okay=False),
    help="Also write the figures to FILE as JSON [default: no file].",
)
@click.option(
    "--scale",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0, max=100, min_open=True),
    metavar="F",
    help="Multiply every layer's sizes (below 1 for a slow machine or a test).",
)
@fail_cleanly()
def all_layers(quick: bool, only: str | None, json_file: str | None, scale: float) -> None:  # ok-float: a factor
    """Each layer's throughput and p99 or median, with its yardstick measured in the same run and the ratio."""
    from ..bench.all import parse_only, run_all, table  # noqa: PLC0415
    from ..bench.layers import Size  # noqa: PLC0415

    try:
        names = parse_only(only)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    out = Path(json_file) if json_file else None
    if out is not None and not out.parent.is_dir():
        raise click.ClickException(f"--json {json_file}: no directory {out.parent}")
    document = run_all(names, Size(quick=quick, scale=scale), _say)
    for line in table(document):
        click.echo(line)
    if out is not None:
        import orjson  # noqa: PLC0415

        out.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
        click.echo(f"figures: {out}")
    if any(entry["status"] == "failed" for entry in document["layers"].values()):
        sys.exit(1)
