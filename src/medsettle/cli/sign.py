"""``medsettle sign``: the headers that let one request in, for curl or a script (docs/security.md).

Every request of the envelope is signed as at the platform's gateway, with a fresh nonce each; the admin
API takes the agency's bearer token. This command prints those headers, from the centre's credentials
file, in curl's config syntax (``curl -K -`` reads them from stdin) or as JSON, so an example or a quick
test needs no code of its own::

    medsettle sign -i P13010000001 | curl -sK - --data @request.json http://127.0.0.1:8901/
    medsettle sign --agency | curl -sK - --data '{"action": "card_record", ...}' http://127.0.0.1:8901/admin
"""

from __future__ import annotations

import json

import click

from .. import credentials
from ._errors import fail_cleanly


@click.command()
@click.option("--institution", "-i", "code", help="Sign as this institution (its fixmedins_code).")
@click.option("--agency", is_flag=True, help="The agency's token, for POST /admin.")
@click.option(
    "--credentials",
    "credentials_file",
    type=click.Path(dir_okay=False),
    help="The centre's credentials file (default: $MEDSETTLE_CREDENTIALS, else medsettle-data/credentials.toml).",
)
@click.option(
    "--format",
    "out_format",
    type=click.Choice(["curl", "json"]),
    default="curl",
    show_default=True,
    help="curl: `header = ...` lines for `curl -K -`; json: one object of the headers.",
)
@fail_cleanly(credentials.CredentialsError)
def sign(code: str | None, agency: bool, credentials_file: str | None, out_format: str) -> None:
    """Print the headers of one signed request (a new nonce each time: one run, one request)."""
    if agency == bool(code):
        raise click.UsageError("give one of --institution CODE (the envelope) or --agency (the admin API)")
    found = credentials.load(credentials_file)
    headers = found.admin_headers() if agency else {"Content-Type": "application/json"}
    if code:
        headers.update(found.institution(code).headers())
    if out_format == "json":
        click.echo(json.dumps(headers))
    else:
        for name, value in headers.items():
            click.echo(f"header = {json.dumps(f'{name}: {value}')}")
