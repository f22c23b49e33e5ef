"""Watch readers for cards coming and going, and keep watching when pcscd goes away and comes back.

pyscard's CardMonitor thread dies silently when pcscd stops (docs/card.md). This watcher's monitoring loop
also ends on any PC/SC failure, but its supervisor notices, reports ``service_down``, and restarts the loop
on a fresh context with back-off until pcscd answers again (``service_up``, ``restarts`` counts them).

    watcher = CardWatcher(["Counter 00 00"])
    watcher.start()
    event = watcher.events.get(timeout=5)   # Event("inserted", "Counter 00 00"), ...
    watcher.stop()
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass

from ._pyscard import scard

log = logging.getLogger(__name__)

POLL_MS = 200  # how long one SCardGetStatusChange waits, so stop() is seen within this
BACKOFF_S = (0.05, 0.1, 0.2, 0.5, 1.0)


@dataclass(frozen=True)
class Event:
    kind: str  # "inserted", "removed", "service_down", "service_up"
    reader: str | None = None


class _MonitorDied(Exception):
    pass


class CardWatcher:
    def __init__(self, readers: list[str]):
        self.readers = list(readers)
        self.events: queue.Queue[Event] = queue.Queue()
        self.restarts = 0
        self.service_up = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> CardWatcher:
        self._thread = threading.Thread(target=self._supervise, name="card-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def ensure_running(self) -> None:
        """Restart the supervisor itself if it ever died (it should not: this is the last line)."""
        if not self._stop.is_set() and (self._thread is None or not self._thread.is_alive()):
            log.warning("card watcher thread had died: restarting it")
            self.restarts += 1
            self.start()

    # -- the supervisor and the monitor ------------------------------------------------------------

    def _supervise(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                self._monitor()  # returns only when stopped
                return
            except _MonitorDied as why:
                if self.service_up:
                    self.service_up = False
                    self.events.put(Event("service_down"))
                    log.warning("card monitor died (%s): restarting it", why)
                self.restarts += 1
                self._stop.wait(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
                attempt += 1

    def _monitor(self) -> None:
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != scard.SCARD_S_SUCCESS:
            raise _MonitorDied(scard.SCardGetErrorMessage(hresult).strip())
        try:
            states = [(name, scard.SCARD_STATE_UNAWARE) for name in self.readers]
            present: dict[str, bool | None] = {name: None for name in self.readers}  # None: not yet seen
            while not self._stop.is_set():
                hresult, new_states = scard.SCardGetStatusChange(context, POLL_MS, states)
                if hresult == scard.SCARD_E_TIMEOUT:
                    continue
                if hresult != scard.SCARD_S_SUCCESS:
                    raise _MonitorDied(scard.SCardGetErrorMessage(hresult).strip())
                if not self.service_up:
                    self.service_up = True
                    self.events.put(Event("service_up"))
                states = []
                for name, state, _atr in new_states:
                    now = bool(state & scard.SCARD_STATE_PRESENT)
                    if present[name] is not None and now != present[name] or present[name] is None and now:
                        self.events.put(Event("inserted" if now else "removed", name))
                    present[name] = now
                    states.append((name, state & ~scard.SCARD_STATE_CHANGED))
        finally:
            scard.SCardReleaseContext(context)
