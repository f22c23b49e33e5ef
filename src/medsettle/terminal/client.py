"""The centre as the counter reaches it: one POST per message, a deadline on each, and one error for
every way the centre can be unreachable (docs/failures.md: connection refused, timeout, 5xx)."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Protocol

from ..credentials import InstitutionCredential
from ..errors import MedsettleError
from ..seams import SYSTEM_CLOCK, Clock


class CentreUnreachable(MedsettleError):
    """No answer from the centre. Whether the request arrived is unknown (except for a refused connection)."""

    code = "CENTRE_UNREACHABLE"

    def __init__(self, message: str, *, surely_not_received: bool = False):
        self.surely_not_received = surely_not_received
        super().__init__(message)


class Transport(Protocol):
    """How the counter reaches the centre: one request's exact bytes in, the decoded answer out.

    :class:`CentreClient` is the real one (HTTP); a test or the simulator passes one that calls a centre in
    the same process. Every way of getting no answer is :class:`CentreUnreachable`."""

    def post(self, body: bytes) -> dict:
        """Send ``body`` (the journaled bytes, unchanged) and return the centre's answer as JSON data."""


class CentreClient:
    """The centre over HTTP: one POST per message, ``timeout`` seconds each, each signed with the
    institution's ``credential`` as at the platform's gateway (a fresh nonce per send, so a resend of the
    same journaled bytes is a new request to the gateway and the same one to the centre's idempotency);
    ``clock`` gives the signatures' timestamps (the counter's clock: the gateway refuses one too far from
    the centre's)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        credential: InstitutionCredential | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ):
        self.url = url if url.endswith("/") else url + "/"
        self.timeout = timeout
        self.credential = credential
        self.clock = clock

    def post(self, body: bytes) -> dict:
        """Send one request (the exact bytes journaled) and return the decoded answer."""
        answer = self.post_raw(body)
        try:
            decoded = json.loads(answer)
        except ValueError:
            raise CentreUnreachable(f"the centre answered something that is not JSON: {answer[:80]!r}") from None
        if isinstance(decoded, dict) and str(decoded.get("err_msg") or "").startswith("INTERNAL_ERROR:"):
            # A bug at the centre (answered with HTTP 200 since issue 14, as adapters expect): not a refusal
            # of the message, which may or may not have been applied; resent like an HTTP 500 was.
            raise CentreUnreachable(f"the centre failed: {decoded['err_msg']}")
        return decoded

    def post_raw(self, body: bytes) -> bytes:
        """Send one request and return the answer's bytes as they came: a 9102 answers a file, not JSON
        (docs/files.md). Every way of getting no answer is CentreUnreachable, as for :meth:`post`."""
        headers = {"Content-Type": "application/json"}
        if self.credential is not None:
            headers.update(self.credential.headers(clock=self.clock))
        request = urllib.request.Request(self.url, data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = response.read()
        except urllib.error.HTTPError as error:
            if error.code >= 500:
                raise CentreUnreachable(f"the centre answered HTTP {error.code}") from None
            answer = error.read()
        except urllib.error.URLError as error:
            refused = isinstance(error.reason, ConnectionRefusedError)
            raise CentreUnreachable(
                f"cannot reach the centre at {self.url}: {error.reason}", surely_not_received=refused
            ) from None
        except (TimeoutError, ConnectionError, http.client.HTTPException) as error:
            raise CentreUnreachable(f"no answer from the centre at {self.url}: {error!r}") from None
        return answer
