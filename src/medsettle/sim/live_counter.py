"""One counter of a live run (docs/simulation.md 'Live mode'): ``medsettle terminal`` run as a process per
command, against the centre through a fault proxy of its own, so a fault the run injects at this counter
touches no other.

Every command has a bounded timeout (a process still running after it is killed, as a power cut would). A
command may be run with ``MEDSETTLE_CRASH_AT`` set: the terminal exits 86 at that point, and the run resumes
it as a clerk would, by running ``resume``. Between commands the counter's journal is read directly (no
terminal process holds it then).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..terminal import CounterStore
from ..terminal.crash import EXIT_CODE
from ..testing.proxy import FaultProxy

COMMAND_TIMEOUT_S = 60.0  # any one terminal command; past it the process is killed
ANSWER_TIMEOUT_S = 2.0  # the terminal's --timeout: seconds to wait for each answer
RESEND_FOR_S = 2.0  # the terminal's --resend-for: seconds a settle is resent before giving up


@dataclasses.dataclass
class Outcome:
    """What one terminal command did: its exit status, its JSON answer (None if it printed none), the
    ``Error:`` line of a refusal, and whether it crashed at its armed point or was killed for its time."""

    args: tuple[str, ...]
    status: int
    answer: Any = None
    error: str = ""
    crashed_at: str | None = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 0


class LiveCounter:
    """A counter of institution ``code``: its journal file, its fault proxy, and its terminal commands."""

    def __init__(self, name: str, code: str, journal: Path, upstream_url: str, credentials_file: Path) -> None:
        self.name, self.code, self.journal_path = name, code, journal
        self.credentials_file = credentials_file
        self.proxy = FaultProxy(upstream_url)
        self.commands = 0

    def close(self) -> None:
        self.proxy.close()

    def run(self, *args: str, crash_at: str | None = None, timeout: float = COMMAND_TIMEOUT_S) -> Outcome:  # ok-float
        """``medsettle terminal ... ARGS`` in a process of its own (armed to lose power at ``crash_at``)."""
        self.commands += 1
        command = [
            sys.executable, "-m", "medsettle.cli", "terminal", "-i", self.code, "--centre", self.proxy.url,
            "--credentials", str(self.credentials_file), "--journal", str(self.journal_path),
            "--timeout", str(ANSWER_TIMEOUT_S), "--resend-for", str(RESEND_FOR_S), *args,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "MEDSETTLE_CRASH_AT"}
        if crash_at is not None:
            env["MEDSETTLE_CRASH_AT"] = crash_at
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:  # run() has killed it: a power cut at no named point
            return Outcome(tuple(args), -9, timed_out=True)
        outcome = Outcome(tuple(args), done.returncode, _json_of(done.stdout), _error_of(done.stderr))
        if done.returncode == EXIT_CODE and crash_at is not None:
            outcome.crashed_at = crash_at
        return outcome

    @contextlib.contextmanager
    def journal(self) -> Iterator[CounterStore]:
        """The counter's journal, opened while no terminal process of this counter runs."""
        store = CounterStore(self.journal_path)
        try:
            yield store
        finally:
            store.close()

    def unsettled_vouchers(self) -> list[str]:
        """The vouchers neither settled nor a manual claim yet."""
        with self.journal() as store:
            return [v["voucher"] for v in store.vouchers() if v["state"] not in ("settled", "manual_claim")]

    def cancellable(self) -> list[str]:
        """The sales settled whole at the centre that a patient may come back to cancel: not a voucher's
        re-visit nor a forward (their receipts name the voucher's sale; the deterministic world never cancels
        them either)."""
        from ..terminal.states import SaleState  # noqa: PLC0415

        with self.journal() as store:
            return [
                sale
                for sale, _, data in store.sales(SaleState.DONE)
                if data.get("receipt", {}).get("kind") == "sale"
                and data.get("setlinfo")
                and not data.get("voucher")
                and not data.get("forward_of")
            ]

    def queued(self) -> int:
        """Provisional settlements (store-and-forward) not yet forwarded."""
        with self.journal() as store:
            return len(store.saf_entries("queued"))


def _json_of(stdout: str) -> Any:
    """The command's JSON answer (the terminal prints one JSON document on stdout when it is not a tty)."""
    text = stdout.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _error_of(stderr: str) -> str:
    lines: Sequence[str] = [line for line in stderr.splitlines() if line.startswith("Error")]
    return lines[-1] if lines else ""


def each_counter(counters: list[LiveCounter], job: Callable[[LiveCounter], None]) -> None:
    """``job`` for every counter, each in a thread of its own; the first exception is raised here."""
    failures: list[BaseException] = []

    def one(c: LiveCounter) -> None:
        try:
            job(c)
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread below
            failures.append(exc)

    threads = [threading.Thread(target=one, args=(c,), daemon=True) for c in counters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
