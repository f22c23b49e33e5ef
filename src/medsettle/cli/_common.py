"""What the ``medsettle`` command modules share: options, the policy loader, the admin client.

The command modules import from here (and from ``_errors``), never from each other or from the package.
"""

from __future__ import annotations

import json

import click

from ..policy import load_default_policy, load_policy

ENGINE_CHOICE = click.Choice(["auto", "core", "reference"])

CENTRE_OPTION = click.option("--centre", "centre_url", default="http://127.0.0.1:8901/", show_default=True,
                             help="The running centre (medsettle serve).")


def policy_from(path: str | None):
    """The policy in ``path``, or the shipped default when none is given."""
    return load_policy(path) if path else load_default_policy()


def admin_request(centre_url: str, body: dict) -> dict:
    """POST one admin request to a running centre; its answer, or a ClickException with its error."""
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    req = urllib.request.Request(centre_url.rstrip("/") + "/admin", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        answer = json.loads(exc.read() or b"{}")
    except urllib.error.URLError as exc:
        raise click.ClickException(f"cannot reach the centre at {centre_url}: {exc.reason}") from None
    if not answer.pop("ok", False):
        raise click.ClickException(answer.get("error", "the centre refused"))
    return answer


def print_admin(centre_url: str, body: dict) -> None:
    """Send an admin request and print its answer as one line of JSON."""
    click.echo(json.dumps(admin_request(centre_url, body), ensure_ascii=False))
