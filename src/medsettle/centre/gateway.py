"""The centre's gateway: who may call it, checked before a request reaches the envelope (docs/security.md).

As at the national platform's gateway, every request of the envelope carries ``x-tif-paasid``,
``x-tif-timestamp``, ``x-tif-nonce`` and ``x-tif-signature`` (:mod:`medsettle.credentials`). A request is
refused (infcode -1, ``UNAUTHENTICATED``, naming the header) when a header is missing or malformed, the
signature is wrong, the timestamp is more than 300 s from the centre's clock, the paasid is unknown or not
the ``fixmedins_code``'s, or the nonce was seen before within the window by any centre process sharing the
journal's database (ledger/gate.py). The admin API is the agency's: it needs the agency's bearer token, a
JSON content type, and a Host (and Origin, when a browser sends one) of the loopback interface the centre
listens on, so that a page in a browser cannot post to it (a cross-site form sends text/plain, a DNS
rebinding attack a foreign Host).

``--insecure`` turns every check off, for a user who asks; the centre then says so at its start and in
every answer's ``warn_msg``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from ..credentials import NONCE, PAASID, SIGNATURE, TIMESTAMP, WINDOW_SECONDS, signature
from ..errors import MedsettleError
from ..ledger.gate import AGENCY_ROW, GateStore, Secret
from ..seams import SYSTEM_CLOCK, SYSTEM_RANDOM, Clock, Randomness
from .core import CentreFailStopped

INSECURE_WARNING = "this centre runs with --insecure: it checks no signature and no agency token"
NONCE_TEXT = re.compile(r"[\x21-\x7e]{1,64}")  # printable ASCII, as a header can carry
DIGITS = re.compile(r"\d{1,12}")
HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class Unauthenticated(MedsettleError):
    """A request without valid proof of who sends it; nothing about it is stored."""

    code = "UNAUTHENTICATED"


def make_credentials(codes: Iterable[str], randomness: Randomness = SYSTEM_RANDOM) -> dict[str, Secret]:
    """Fresh credentials for these institutions and the agency (``AGENCY_ROW``), for a centre's first start,
    from the centre's random source (the system's secrets by default; the simulator's seeded one)."""
    made = {code: Secret(f"{code.lower()}-{randomness.token_hex(4)}", randomness.token_hex(24)) for code in codes}
    made[AGENCY_ROW] = Secret("agency", randomness.token_hex(32))
    return made


class Gateway:
    """Checks the x-tif-* headers of the envelope's requests and the agency's token on /admin."""

    def __init__(
        self,
        store: GateStore,
        secrets_by_code: Mapping[str, Secret],
        *,
        clock: Clock = SYSTEM_CLOCK,
        on_failure: Callable[[BaseException], MedsettleError] | None = None,
    ):
        """``secrets_by_code``: what :meth:`GateStore.keep` answered (every institution's and the agency's).
        ``on_failure``: what a failed nonce claim (the journal's database failing) becomes, the answer of the
        requests waiting on it: the centre's fail-stop (``Centre.fail_stop``), by default CentreFailStopped."""
        self._store = store
        self._clock = clock
        self._by_paasid = {s.paasid: (code, s.passtoken) for code, s in secrets_by_code.items() if code != AGENCY_ROW}
        agency = secrets_by_code.get(AGENCY_ROW)
        self._agency_token = agency.passtoken if agency else None
        self._claims = _NonceClaims(store, clock, on_failure or _unavailable)

    async def admit(self, headers: Mapping[str, str], body: Any) -> None:
        """Return if the request is signed by the institution its body's ``fixmedins_code`` names with a
        nonce not seen before; Unauthenticated naming the header (or ``fixmedins_code``) otherwise."""
        paasid, timestamp, nonce = self.check_signature(headers, body)
        if not await self._claims.claim(paasid, nonce, int(timestamp) + WINDOW_SECONDS):
            raise Unauthenticated(f"nonce {nonce!r} was used before within {WINDOW_SECONDS} s", field=NONCE)

    def check_signature(self, headers: Mapping[str, str], body: Any) -> tuple[str, str, str]:
        """Everything but the nonce's freshness: (paasid, timestamp, nonce) of a well-signed request."""
        values = {}
        for name in (PAASID, TIMESTAMP, NONCE, SIGNATURE):
            value = headers.get(name)
            if not value:
                raise Unauthenticated(
                    "every request is signed as at the platform's gateway (x-tif-paasid, x-tif-timestamp, "
                    "x-tif-nonce, x-tif-signature); this one has no " + name,
                    field=name,
                )
            values[name] = value
        paasid, timestamp, nonce, signed = (values[n] for n in (PAASID, TIMESTAMP, NONCE, SIGNATURE))
        known = self._by_paasid.get(paasid)
        if known is None:
            raise Unauthenticated(f"paasid {paasid[:64]!r} is not an institution of this centre", field=PAASID)
        code, passtoken = known
        if not DIGITS.fullmatch(timestamp):
            raise Unauthenticated("expected Unix seconds", field=TIMESTAMP)
        off = int(timestamp) - int(self._clock.time())
        if abs(off) > WINDOW_SECONDS:
            raise Unauthenticated(
                f"{timestamp} is {abs(off)} s from the centre's clock (at most {WINDOW_SECONDS} s)", field=TIMESTAMP
            )
        if not NONCE_TEXT.fullmatch(nonce):
            raise Unauthenticated("expected 1 to 64 printable ASCII characters", field=NONCE)
        if not HEX_SHA256.fullmatch(signed) or not hmac.compare_digest(
            signed.lower().encode(), signature(timestamp, passtoken, nonce).encode()
        ):
            raise Unauthenticated(
                "the signature is not SHA-256 of timestamp + passtoken + nonce + timestamp", field=SIGNATURE
            )
        named = body.get("fixmedins_code") if isinstance(body, dict) else None
        # A body that names no institution (not an object, no fixmedins_code string) is the envelope's to
        # refuse, as malformed: it can change nothing. One that names another institution is refused here.
        if isinstance(named, str) and named != code:
            raise Unauthenticated(
                f"the request is signed by {code}'s paasid but names fixmedins_code {str(named)[:32]!r}",
                field="fixmedins_code",
            )
        return paasid, timestamp, nonce

    def check_admin(self, headers: Mapping[str, str], content_type: str) -> None:
        """Return if an admin request comes from the agency, from this machine; Unauthenticated otherwise."""
        host = _host_name(headers.get("Host", ""))
        if host not in LOOPBACK_HOSTS:
            raise Unauthenticated(f"Host {headers.get('Host', '')[:64]!r} is not this centre's", field="Host")
        origin = headers.get("Origin")
        if origin is not None and _origin_host(origin) not in LOOPBACK_HOSTS:
            raise Unauthenticated(f"requests from {origin[:64]!r} are not taken", field="Origin")
        if content_type != "application/json":
            raise Unauthenticated(
                f"the admin API takes application/json, not {content_type or 'no content type'!r}",
                field="Content-Type",
            )
        sent = headers.get("Authorization", "")
        scheme, _, token = sent.partition(" ")
        presented = token.strip().encode("utf-8", "surrogateescape")  # whatever bytes a client sent
        if self._agency_token is None or scheme.lower() != "bearer" or not token:
            raise Unauthenticated(
                "the admin API needs the agency's token: Authorization: Bearer <token>", field="Authorization"
            )
        if not hmac.compare_digest(presented, self._agency_token.encode()):
            raise Unauthenticated("that is not the agency's token", field="Authorization")

    def close(self) -> None:
        self._claims.close()


def _unavailable(failure: BaseException) -> MedsettleError:
    return CentreFailStopped(f"the centre cannot check nonces now ({failure})")


def _origin_host(origin: str) -> str:
    """The host an Origin header names ("" for one that is not a URL, such as "null")."""
    try:
        return _host_name(urlsplit(origin).netloc)
    except ValueError:
        return ""


def _host_name(netloc: str) -> str:
    """The host of a Host header or an Origin's netloc, without the port (and without an IPv6's brackets)."""
    if netloc.startswith("["):
        return netloc[1 : netloc.find("]")] if "]" in netloc else netloc
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


class _NonceClaims:
    """Whether a nonce is fresh: claimed in the journal's database, grouped per transaction.

    On a database several centre processes share (PostgreSQL), the database decides: the first claim of a
    batch starts one drain on the event loop, which hands every claim waiting to one thread (one INSERT ...
    ON CONFLICT DO NOTHING each, one commit for all) and wakes each waiter with its answer; a claim that
    arrives while a batch is in the database waits for the next one.

    On a database one process holds (SQLite: a second ``serve`` on it is refused), this process decides, in
    memory, at once: waiting for a write of its own would make every request wait for the journal's write
    lock too. The nonces taken are written behind, in batches, and read back at the next start, so a
    restart still refuses the nonces of the last 300 s (all but those of the moment before a crash)."""

    def __init__(self, store: GateStore, clock: Clock, on_failure: Callable[[BaseException], MedsettleError]) -> None:
        self._store = store
        self._clock = clock
        self._on_failure = on_failure
        self._waiting: list[tuple[str, str, int, asyncio.Future[bool] | None]] = []
        self._draining = False
        self._failure: MedsettleError | None = None  # a write behind failed: every later claim is refused
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medsettle-nonces")
        self._seen: dict[tuple[str, str], int] | None = None  # this process decides (not shared)
        self._order: collections.deque[tuple[int, tuple[str, str]]] = collections.deque()
        if not store.shared:
            self._seen = {}
            for paasid, nonce, expires in store.recent_nonces(int(clock.time())):
                self._remember((paasid, nonce), expires)

    async def claim(self, paasid: str, nonce: str, expires: int) -> bool:
        if self._failure is not None:
            raise self._failure
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] | None = None
        if self._seen is not None:
            key = (paasid, nonce)
            if key in self._seen:
                return False
            self._remember(key, expires)
            self._forget_expired(int(self._clock.time()))
        else:
            waiter = loop.create_future()
        self._waiting.append((paasid, nonce, expires, waiter))
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        return True if waiter is None else await waiter

    def _remember(self, key: tuple[str, str], expires: int) -> None:
        assert self._seen is not None
        self._seen[key] = expires
        self._order.append((expires, key))

    def _forget_expired(self, now: int) -> None:
        """Drop nonces whose window is over, oldest taken first (one taken later that expires sooner waits
        behind an older one: at most one more window)."""
        assert self._seen is not None
        while self._order and self._order[0][0] < now:
            _, key = self._order.popleft()
            self._seen.pop(key, None)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                claims = [(paasid, nonce, expires) for paasid, nonce, expires, _ in batch]
                try:
                    taken = await loop.run_in_executor(
                        self._thread, self._store.claim_nonces, claims, int(self._clock.time())
                    )
                except Exception as exc:  # noqa: BLE001 - the database is away: no replay can be told now
                    away = self._on_failure(exc)
                    self._failure = self._failure or away
                    for *_, waiter in batch:
                        if waiter is not None and not waiter.done():
                            waiter.set_exception(away)
                    continue
                for (*_, waiter), fresh in zip(batch, taken, strict=True):
                    if waiter is not None and not waiter.done():
                        waiter.set_result(fresh)
        finally:
            self._draining = False

    def close(self) -> None:
        """Finish the writes in flight and write what is still waiting (a clean stop loses no nonce)."""
        self._thread.shutdown(wait=True)
        waiting, self._waiting = self._waiting, []
        if waiting and self._seen is not None and self._failure is None:
            with contextlib.suppress(MedsettleError):  # the database failing at the stop: nothing more to do
                self._store.claim_nonces([(p, n, e) for p, n, e, _ in waiting], int(self._clock.time()))


def open_gateway(
    store: GateStore,
    codes: Iterable[str],
    given: Mapping[str, Secret] | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
    randomness: Randomness = SYSTEM_RANDOM,
    on_failure: Callable[[BaseException], MedsettleError] | None = None,
) -> tuple[Gateway, dict[str, Secret]]:
    """The gateway of a centre serving the institutions ``codes``, and the credentials it accepts.

    ``given`` (an ``--institutions`` file's credentials) replace the stored ones; every institution still
    without one, and the agency, get credentials made now, stored only where none is stored yet, so every
    process sharing the database and every restart agrees with the first (ledger/gate.py)."""
    codes = list(codes)
    if given:
        store.keep(given, replace=True)
    kept = store.keep(make_credentials(codes, randomness), replace=False)
    mine = {code: kept[code] for code in [*codes, AGENCY_ROW]}
    return Gateway(store, mine, clock=clock, on_failure=on_failure), mine
