"""What the ``medsettle`` command modules share: options, the policy loader, the admin client.

The command modules import from here (and from ``_errors``), never from each other or from the package.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, TextIO, TypeVar, get_args

import click

from ..engine.settler import EngineName
from ..engine.state import MAX_YEAR, MIN_YEAR
from ..policy import load_default_policy, load_policy
from ..policy.models import Policy

ENGINE_CHOICE = click.Choice(list(get_args(EngineName)))  # auto, core, reference: a value is an EngineName

F = TypeVar("F", bound=Callable[..., Any])
CREDENTIALS_KEY = "medsettle.credentials"  # where --credentials is kept in the click context's meta


def _remember_credentials(ctx: click.Context, _: click.Parameter, value: str | None) -> str | None:
    ctx.meta[CREDENTIALS_KEY] = value
    return value


_CENTRE_URL_OPTION = click.option(
    "--centre",
    "centre_url",
    default="http://127.0.0.1:8901/",
    show_default=True,
    help="The running centre (medsettle serve).",
)
CREDENTIALS_OPTION = click.option(
    "--credentials",
    type=click.Path(dir_okay=False),
    expose_value=False,
    callback=_remember_credentials,
    help="The centre's credentials file (default: $MEDSETTLE_CREDENTIALS, else medsettle-data/credentials.toml).",
)


def CENTRE_OPTION(command: F) -> F:
    """--centre URL and --credentials FILE: where the running centre is, and the agency's token to call it with
    (kept in the context's meta, read by :func:`admin_request`)."""
    return _CENTRE_URL_OPTION(CREDENTIALS_OPTION(command))


def policy_from(path: str | None) -> Policy:
    """The policy in ``path``, or the shipped default when none is given."""
    return load_policy(path) if path else load_default_policy()


def parse_day(text: str, option: str = "--date") -> dt.date:
    """A yyyy-mm-dd option value, or one Error line naming the option."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise click.ClickException(f"{option} {text}: not a date; write it as yyyy-mm-dd (e.g. 2026-03-02)") from None


def check_days_in_force(policy: Policy, start: dt.date, days: int = 1, option: str = "--date") -> None:
    """Bills dated ``start`` .. ``start + days - 1`` must fall where every region has rules and a catalogue
    in force, and in the years a bill may carry; otherwise one Error line saying which days are allowed."""
    first = policy.first_day_in_force()
    if start < first:
        raise click.ClickException(f"{option} {start}: {policy.coverage()}; choose a date on or after {first}")
    latest = dt.date(MAX_YEAR, 12, 31)
    if start.year < MIN_YEAR or (latest - start).days < days - 1:
        span = f"{start}" if days == 1 else f"{start} and {days:,} days"
        raise click.ClickException(
            f"{option} {span}: bills are dated {MIN_YEAR}-{MAX_YEAR}, so from "
            f"{MIN_YEAR}-01-01 to {latest}; choose a date and days within them"
        )


def at_least(value: int, minimum: int, option: str) -> int:
    """A count option checked here rather than by click.IntRange, so a bad one is one Error line."""
    if value < minimum:
        raise click.ClickException(f"{option} {value}: must be at least {minimum}")
    return value


def open_output(path: str, option: str = "--out") -> TextIO:
    """``path`` opened for writing text (``-``: stdout), or one Error line naming it and why not."""
    import sys  # noqa: PLC0415

    if path == "-":
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8", newline="")  # the caller closes it
    except OSError as exc:
        raise click.ClickException(f"{option} {path}: cannot write there: {exc.strerror}{_hint_for(path)}") from None


def _hint_for(path: str) -> str:
    from pathlib import Path  # noqa: PLC0415

    parent = Path(path).parent
    return f" (the directory {parent} does not exist; create it or choose another path)" if not parent.exists() else ""


def month_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """click callback for --month: a real yyyy-mm month, or one Error line (not click's usage block)."""
    from ..centre.admin import check_month  # noqa: PLC0415

    if value is None:
        return None
    try:
        return check_month(value.strip())
    except ValueError as exc:
        raise click.ClickException(f"--month: {exc}") from None


def admin_request(centre_url: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST one admin request to a running centre; its answer, or a ClickException with its error."""
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    if not centre_url.startswith(("http://", "https://")):
        raise click.ClickException(
            f"--centre {centre_url}: not an http:// address (the default is "
            "http://127.0.0.1:8901/, where 'medsettle serve' listens)"
        )
    from .. import credentials  # noqa: PLC0415

    # Without the credentials the request is still sent: a wrong --centre is said as such, and a centre
    # that refuses it for want of the token is answered with why there is none.
    context = click.get_current_context(silent=True)
    missing: credentials.CredentialsError | None = None
    try:
        headers = credentials.load(context.meta.get(CREDENTIALS_KEY) if context else None).admin_headers()
    except credentials.CredentialsError as exc:
        missing, headers = exc, {"Content-Type": "application/json"}
    req = urllib.request.Request(centre_url.rstrip("/") + "/admin", data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read()
    except urllib.error.HTTPError as exc:
        text = exc.read() or b"{}"
    except urllib.error.URLError as exc:
        raise click.ClickException(
            f"cannot reach the centre at {centre_url}: {exc.reason} (is 'medsettle serve' running there?)"
        ) from None
    except (OSError, ValueError) as exc:  # a connection reset, a malformed address
        raise click.ClickException(f"cannot reach the centre at {centre_url}: {exc}") from None
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise click.ClickException(
            f"{centre_url} answered, but not as a medsettle centre does (no JSON object "
            "from POST /admin); check --centre"
        )
    if not answer.pop("ok", False):
        error = str(answer.get("error", "the centre refused"))
        if missing is not None and error.startswith("UNAUTHENTICATED:"):
            raise click.ClickException(str(missing))
        raise click.ClickException(error)
    return answer


def print_admin(centre_url: str, body: dict[str, Any]) -> None:
    """Send an admin request and print its answer as one line of JSON."""
    click.echo(json.dumps(admin_request(centre_url, body), ensure_ascii=False))
