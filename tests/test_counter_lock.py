"""One process at a time on a counter's journal (issue 15): two counter processes re-settling one voucher
debited 50.00 for a 25.00 bill. Now the second process on a journal another holds exits with one line,
`Error: the counter journal FILE is in use by process PID`, before it reads or writes anything; once the
holder is gone (it quit, or was SIGKILLed), the journal opens again. Real processes: the `medsettle
terminal` CLI, as a clerk runs it."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from medsettle.terminal import CounterStore
from terminal_rig import ITEM_ARGS, balance_of, patient_certno, terminal, terminal_command

pytestmark = pytest.mark.timeout(180)
BANNER_WITHIN_S = 60.0  # seconds for a counter shell to open its journal (start-up of Python and medsettle)


class Shell:
    """`medsettle terminal ... shell` as a process holding ``journal``: started, it has opened the journal
    once its banner is on stderr; ``run`` types one command and returns what it printed on stdout."""

    def __init__(self, url: str, journal: Path) -> None:
        self.proc = subprocess.Popen(
            [*terminal_command(url, journal), "shell"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self.wait_for("medsettle counter")

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.put(line)

    def wait_for(self, words: str) -> str:
        """The first stderr line holding ``words``, within BANNER_WITHIN_S."""
        seen = []
        while True:
            try:
                line = self.stderr.get(timeout=BANNER_WITHIN_S)
            except queue.Empty:
                self.proc.kill()
                raise AssertionError(f"the shell never said {words!r}; it said: {seen}") from None
            seen.append(line)
            if words in line:
                return line

    def quit(self) -> str:
        """Type quit; the shell ends; its stdout."""
        out, _ = self.proc.communicate("quit\n", timeout=120)
        assert self.proc.returncode == 0, out
        return out


def files_of(journal: Path) -> dict[str, bytes]:
    """The journal's files (database, write-ahead log, lock file) byte for byte."""
    return {p.name: p.read_bytes() for p in sorted(journal.parent.glob(journal.name + "*"))}


def refused_line(journal: Path, pid: int) -> str:
    return f"Error: the counter journal {journal} is in use by process {pid}\n"


def test_a_second_process_on_a_held_journal_exits_with_one_line_and_changes_nothing(served_centre, tmp_path):
    journal = tmp_path / "t.db"
    terminal(served_centre.url, journal, "signin")
    voucher = json.loads(terminal(served_centre.url, journal, "sell", *ITEM_ARGS).stdout)  # nobody identified
    assert voucher["kind"] == "deferred" and voucher["voucher"]
    sign_no = served_centre.sign_in()  # the test's own eyes on the centre
    before = balance_of(served_centre, sign_no)

    holder = Shell(served_centre.url, journal)
    files = files_of(journal)
    assert (tmp_path / "t.db.lock").read_text() == f"{holder.proc.pid}\n"
    for args in (["resettle", voucher["voucher"], "--certno", patient_certno()], ["vouchers"], ["resume"]):
        second = terminal(served_centre.url, journal, *args, check=False)
        assert second.returncode == 1
        assert second.stderr == refused_line(journal, holder.proc.pid)  # one line, no traceback
        assert second.stdout == ""
    assert files_of(journal) == files  # nothing of the journal read into a change, nothing written
    assert balance_of(served_centre, sign_no) == before  # and nothing settled

    holder.quit()
    settled = json.loads(terminal(served_centre.url, journal, "resettle", voucher["voucher"], "--certno",
                                  patient_certno()).stdout)  # fmt: skip
    assert settled["kind"] == "refund"
    assert json.loads(terminal(served_centre.url, journal, "vouchers").stdout) == []
    assert balance_of(served_centre, sign_no) == before - Decimal(settled["account"])  # debited once


def test_a_journal_whose_holder_was_killed_opens_again(served_centre, tmp_path):
    journal = tmp_path / "t.db"
    terminal(served_centre.url, journal, "signin")
    holder = Shell(served_centre.url, journal)
    refused = terminal(served_centre.url, journal, "vouchers", check=False)
    assert refused.stderr == refused_line(journal, holder.proc.pid)
    holder.proc.kill()  # SIGKILL: no close, no clean-up; the kernel drops the lock with the process
    holder.proc.wait(timeout=30)
    assert (tmp_path / "t.db.lock").read_text() == f"{holder.proc.pid}\n"  # the stale pid does not matter
    assert json.loads(terminal(served_centre.url, journal, "vouchers").stdout) == []
    again = Shell(served_centre.url, journal)  # and a new holder takes it
    assert (tmp_path / "t.db.lock").read_text() == f"{again.proc.pid}\n"
    again.quit()


def test_this_process_holding_a_journal_keeps_other_processes_out_but_may_open_it_twice(served_centre, tmp_path):
    journal = tmp_path / "t.db"
    store = CounterStore(journal)
    again = CounterStore(journal)  # the same process: a second store on the journal shares the lock
    refused = terminal(served_centre.url, journal, "signin", check=False)
    assert refused.returncode == 1 and refused.stderr == refused_line(journal, os.getpid())
    alias = tmp_path / "alias.db"
    alias.symlink_to(journal)  # another name of the same journal locks the same file
    assert terminal(served_centre.url, alias, "signin", check=False).stderr == refused_line(alias, os.getpid())
    again.close()
    assert terminal(served_centre.url, journal, "signin", check=False).stderr == refused_line(journal, os.getpid())
    store.close()  # the last store of this process: the lock is given up
    assert terminal(served_centre.url, journal, "signin").returncode == 0
