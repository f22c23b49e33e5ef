"""How clients prove who they are to the centre, and the file that holds what they need (docs/security.md).

An institution signs every request as at the national platform's gateway: the headers ``x-tif-paasid``
(its id at the gateway), ``x-tif-timestamp`` (Unix seconds), ``x-tif-nonce`` (random, never reused within
the window) and ``x-tif-signature``, the lowercase hex SHA-256 of timestamp + passtoken + nonce + timestamp.
The agency (the admin API) presents a bearer token. ``medsettle serve`` writes every credential its clients
need to ``<data-dir>/credentials.toml`` (mode 0600); a client finds that file by ``--credentials FILE``, then
the environment variable ``MEDSETTLE_CREDENTIALS``, then the default path (``$MEDSETTLE_DATA_DIR`` or
``medsettle-data``, then ``credentials.toml``), the same default directory ``serve`` writes to.

The file::

    agency_token = "..."

    [institutions.H13010000001]
    paasid = "h13010000001-5f0c"
    passtoken = "..."
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import MedsettleError
from .seams import SYSTEM_CLOCK, Clock

PAASID = "x-tif-paasid"
TIMESTAMP = "x-tif-timestamp"
NONCE = "x-tif-nonce"
SIGNATURE = "x-tif-signature"
WINDOW_SECONDS = 300  # a timestamp further than this from the centre's clock is refused; a nonce lives this long
ENV_VAR = "MEDSETTLE_CREDENTIALS"
FILE_NAME = "credentials.toml"


class CredentialsError(MedsettleError):
    """The credentials file is missing, unreadable, or lacks what a command needs; the message says which."""

    code = "CREDENTIALS"


def signature(timestamp: str, passtoken: str, nonce: str) -> str:
    """The gateway's signature of one request: SHA-256 of timestamp + passtoken + nonce + timestamp, hex."""
    return hashlib.sha256(f"{timestamp}{passtoken}{nonce}{timestamp}".encode()).hexdigest()


@dataclass(frozen=True)
class InstitutionCredential:
    """What an institution signs with: its paasid (public) and passtoken (secret)."""

    fixmedins_code: str
    paasid: str
    passtoken: str

    def headers(self, *, clock: Clock = SYSTEM_CLOCK, nonce: str | None = None) -> dict[str, str]:
        """The four x-tif-* headers of one request, with a fresh nonce unless one is given."""
        timestamp = str(int(clock.time()))
        nonce = nonce or secrets.token_hex(16)
        return {
            PAASID: self.paasid,
            TIMESTAMP: timestamp,
            NONCE: nonce,
            SIGNATURE: signature(timestamp, self.passtoken, nonce),
        }


@dataclass(frozen=True)
class Credentials:
    """The clients' copy of the centre's credentials: every institution's and the agency's token."""

    institutions: Mapping[str, InstitutionCredential]
    agency_token: str
    path: Path | None = field(default=None, compare=False)

    def institution(self, fixmedins_code: str) -> InstitutionCredential:
        """The credential of one institution; CredentialsError naming the file if it holds none."""
        try:
            return self.institutions[fixmedins_code]
        except KeyError:
            where = f" in {self.path}" if self.path else ""
            raise CredentialsError(
                f"no credential for institution {fixmedins_code}{where} (the centre's institutions: "
                f"{', '.join(sorted(self.institutions)) or 'none'})"
            ) from None

    def admin_headers(self) -> dict[str, str]:
        """The headers of an admin API request: the agency's bearer token and JSON."""
        return {"Authorization": f"Bearer {self.agency_token}", "Content-Type": "application/json"}

    def to_toml(self) -> str:
        """The file's text (every value a plain TOML string: json.dumps's escapes are TOML's)."""
        import json  # noqa: PLC0415

        lines = [
            "# The centre's credentials, written by `medsettle serve`. Keep this file secret: whoever holds",
            "# it can settle as any of these institutions and change any person's account.",
            f"agency_token = {json.dumps(self.agency_token)}",
        ]
        for code in sorted(self.institutions):
            cred = self.institutions[code]
            lines += ["", f"[institutions.{code}]", f"paasid = {json.dumps(cred.paasid)}"]
            lines.append(f"passtoken = {json.dumps(cred.passtoken)}")
        return "\n".join(lines) + "\n"


def default_path() -> Path:
    """Where ``medsettle serve`` writes the file by default: ``$MEDSETTLE_DATA_DIR/credentials.toml``
    (``medsettle-data/credentials.toml`` without the variable)."""
    return Path(os.environ.get("MEDSETTLE_DATA_DIR") or "medsettle-data") / FILE_NAME


def find(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The file a client reads: ``explicit`` (``--credentials``), else ``$MEDSETTLE_CREDENTIALS``, else
    :func:`default_path`."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(ENV_VAR)
    return Path(from_env) if from_env else default_path()


def load(explicit: str | os.PathLike[str] | None = None) -> Credentials:
    """Read the credentials file :func:`find` names; CredentialsError saying what to do if it cannot."""
    path = find(explicit)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CredentialsError(
            f"no credentials file at {path}: `medsettle serve` writes it to <data-dir>/{FILE_NAME} at its start; "
            f"name it with --credentials FILE or {ENV_VAR}"
        ) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CredentialsError(f"cannot read the credentials file {path}: {exc}") from None
    return parse(data, path)


def parse(data: Mapping[str, object], path: Path | None = None) -> Credentials:
    """Credentials from the file's TOML data; CredentialsError naming the key that is wrong."""
    where = str(path) if path else "credentials"
    token = data.get("agency_token")
    if not isinstance(token, str):
        raise CredentialsError(f"{where}: agency_token must be a string")
    table = data.get("institutions", {})
    if not isinstance(table, dict):
        raise CredentialsError(f"{where}: institutions must be a table")
    institutions = {}
    for code, entry in table.items():
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("paasid", "passtoken")):
            raise CredentialsError(f"{where}: institutions.{code} needs paasid and passtoken strings")
        institutions[code] = InstitutionCredential(code, entry["paasid"], entry["passtoken"])
    return Credentials(institutions, token, path)


def write(path: Path, credentials: Credentials) -> None:
    """Write the clients' copy, readable by its owner only (mode 0600 from its creation, then renamed in
    place whole, so no reader ever sees half a file or a moment of a wider mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)  # an older .partial may have had another mode
        out.write(credentials.to_toml())
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
