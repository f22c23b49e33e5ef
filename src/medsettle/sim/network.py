"""The network between the simulated counters and the centre: in memory, and as unreliable as a profile says.

Each counter has a :class:`SimTransport` (the counter's :class:`medsettle.terminal.client.Transport` seam).
A request takes its chances at each network fault of the run's profile, drawn from the run's one PRNG:

- lost on the way (the centre never sees it; the counter hears nothing),
- its answer lost (the centre applied it; the counter hears nothing),
- duplicated (the centre gets it twice; the counter hears one answer),
- delayed (the clock moves on before it arrives),
- reordered (the counter hears nothing now and resends; the held copy reaches the centre later, after the
  counter's next request: an old request arriving after newer ones),

and a counter may be partitioned from the centre until a time. The bytes the centre answers are encoded
exactly as the HTTP server encodes them, and the counter decodes them as its HTTP client does.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from ..jsontext import dumps_bytes, loads
from ..terminal.client import CentreUnreachable
from .clock import MovableClock
from .profiles import Profile
from .trace import Trace

REQUEST_TIMEOUT_S = 2.0  # what a counter waits for an answer that never comes, on the virtual clock


class SimNetwork:
    """Every counter's link to the centre; ``deliver`` is the centre's entry point (the world's current centre)."""

    def __init__(
        self,
        deliver: Callable[[Any], dict],
        clock: MovableClock,
        rng: random.Random,
        profile: Profile,
        trace: Trace,
        count: Callable[[str], None],
    ) -> None:
        self._deliver, self.clock, self.rng, self.profile, self.trace = deliver, clock, rng, profile, trace
        self._count = count  # counts a fault injected, by kind
        self.partitioned_until: dict[str, float] = {}  # counter -> monotonic second its partition ends
        self.held: list[tuple[str, bytes]] = []  # reordered requests still on their way
        self.faults_on = True  # the drain and the day's end turn faults off
        self.step = 0
        self.delivered: list[tuple[float, bytes]] | None = None  # set to a list: every request the centre got, when

    def transport(self, name: str) -> SimTransport:
        return SimTransport(self, name)

    def partition(self, name: str, seconds: float) -> None:
        self.partitioned_until[name] = self.clock.monotonic() + seconds

    def heal(self) -> None:
        """Network restored: partitions end, held requests arrive."""
        self.partitioned_until.clear()
        self.release_held()

    def release_held(self) -> None:
        held, self.held = self.held, []
        for name, body in held:
            answer = self._answer(body)
            self.trace.event(
                self.step, f"{name} late request arrived, answer {answer[:60].decode('utf-8', 'replace')}", body
            )

    def _answer(self, body: bytes) -> bytes:
        if self.delivered is not None:
            self.delivered.append((self.clock.monotonic(), body))
        return dumps_bytes(self._deliver(loads(body)))

    def _chance(self, kind: str) -> bool:
        if not self.faults_on:
            return False
        p = self.profile.chance(kind)
        if p and self.rng.random() < p:
            self._count(kind)
            return True
        return False

    def post(self, name: str, body: bytes) -> dict:
        trace, step = self.trace, self.step
        if self.faults_on and self.partitioned_until.get(name, -1.0) > self.clock.monotonic():
            self.clock.advance(REQUEST_TIMEOUT_S)
            trace.event(step, f"{name} partitioned: request not delivered", body)
            raise CentreUnreachable("partitioned from the centre (simulated)")
        if self._chance("request_lost"):
            self.clock.advance(REQUEST_TIMEOUT_S)
            trace.event(step, f"{name} fault request_lost", body)
            raise CentreUnreachable("the request was lost (simulated)")
        if self._chance("reordered"):
            self.held.append((name, body))
            self.clock.advance(REQUEST_TIMEOUT_S)
            trace.event(step, f"{name} fault reordered: request held back", body)
            raise CentreUnreachable("no answer yet (simulated: the request is held back)")
        if self._chance("delayed"):
            self.clock.advance(self.rng.uniform(0.2, 1.5))
            trace.event(step, f"{name} fault delayed")
        trace.event(step, f"{name} request", body)
        answer = self._answer(body)
        if self._chance("duplicated"):
            again = self._answer(body)
            trace.event(step, f"{name} fault duplicated: answer to the copy", again)
        trace.event(step, f"{name} answer", answer)
        if self.held:  # a held request arrives after this newer one
            self.release_held()
        if self._chance("answer_lost"):
            self.clock.advance(REQUEST_TIMEOUT_S)
            trace.event(step, f"{name} fault answer_lost")
            raise CentreUnreachable("the answer was lost (simulated)")
        return json.loads(answer)


class SimTransport:
    """One counter's end of the :class:`SimNetwork`."""

    def __init__(self, network: SimNetwork, name: str) -> None:
        self.network, self.name = network, name

    def post(self, body: bytes) -> dict:
        return self.network.post(self.name, body)
