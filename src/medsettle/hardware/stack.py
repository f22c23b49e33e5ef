"""A private PC/SC stack: pcscd with vpcd reader entries, one per counter, each with two slots (00 the
insured person's card, 01 the PSAM), as docs/card.md measured it.

    with PcscStack(workdir, counters=["Counter A", "Counter B"]) as stack:
        stack.counters["Counter A"].card.insert(VirtualCard.issue(profile))
        ...  # medsettle.readers talks to "Counter A 00 00" through pcscd as to a physical reader

Facts this follows: one pcscd per /run/pcscd (so one stack per machine at a time); each reader entry needs
its own copy of libifdvpcd.so, or two entries silently share one card; pcscd is our child and is reaped
(a killed, unreaped pcscd stays a zombie and blocks the next start); a pcscd left running by an earlier
run is found by the pid file this stack wrote and stopped; no reversed mode (pcscd aborts on an empty slot);
every path handed to pcscd (its configuration directory, the drivers' copies) is absolute, because pcscd
does not resolve a relative one against our working directory.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import MedsettleError
from .names import ReaderEntryNames
from .psam import VirtualPSAM
from .vpcd import Slot

VPCD_DRIVER_DIRS = (
    "/usr/lib/pcsc/drivers/serial",
    "/usr/lib64/pcsc/drivers/serial",
    "/usr/local/lib/pcsc/drivers/serial",
)
PCSCD_RUN_DIR = Path("/run/pcscd")
START_TIMEOUT_S = 5.0


class StackError(MedsettleError, RuntimeError):
    """The PC/SC stack cannot be brought up or does not answer; the message says what is missing and how to
    get it. One of medsettle's errors (code STACK_ERROR), and still a RuntimeError as it always was."""

    code = "STACK_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)


def pcscd_path() -> str | None:
    return shutil.which("pcscd") or next((p for p in ("/usr/sbin/pcscd", "/sbin/pcscd") if os.path.exists(p)), None)


def vpcd_driver() -> str | None:
    return next(
        (str(Path(d) / "libifdvpcd.so") for d in VPCD_DRIVER_DIRS if (Path(d) / "libifdvpcd.so").exists()), None
    )


PCSCD_MISSING = "pcscd is not installed (apt-get install pcscd vsmartcard-vpcd libpcsclite-dev)"
VPCD_MISSING = "the vpcd reader driver is not installed (apt-get install vsmartcard-vpcd)"
PYSCARD_MISSING = (
    "pyscard is not installed (pip install 'medsettle[readers]' after libpcsclite-dev; .ci/run installs it)"
)


def unavailable_reason() -> str | None:
    """Why a PC/SC stack cannot run on this machine (everything missing, so a skipped test names each
    part, pyscard included), or None when it can."""
    missing = []
    if pcscd_path() is None:
        missing.append(PCSCD_MISSING)
    if vpcd_driver() is None:
        missing.append(VPCD_MISSING)
    try:
        import smartcard.System  # noqa: F401, PLC0415
    except ImportError:
        missing.append(PYSCARD_MISSING)
    if missing:
        return "; ".join(missing)
    try:
        PCSCD_RUN_DIR.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"cannot create {PCSCD_RUN_DIR} for pcscd: {error}"
    if not os.access(PCSCD_RUN_DIR, os.W_OK):
        return f"{PCSCD_RUN_DIR} is not writable by this user"
    return None


def pcscd_failure(log_text: str) -> str:
    """pcscd's own reason for stopping, from the lines it logged this run ('invalid directory ...'), without
    its timestamp and source location; the first line that says what is wrong is the cause."""
    for line in log_text.splitlines():
        message = re.sub(r"^\s*\d+\s+\S+\.c:\d+:\S+\(\)\s*", "", line).strip()
        if message and not message.startswith("Cannot remove"):
            return message
    return "it logged nothing"


def free_port_pair() -> int:
    """A port p on 127.0.0.1 with p and p+1 both free now (vpcd listens on one per slot)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port > 65000:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise StackError("no two adjacent free TCP ports on 127.0.0.1")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class Counter(ReaderEntryNames):
    """One reader entry: the card slot (reader name ``<name> 00 00``) and the PSAM slot (``<name> 00 01``)."""

    name: str
    port: int
    card: Slot
    psam: Slot


class PcscStack:
    def __init__(
        self,
        workdir: str | os.PathLike[str],
        counters: Iterable[str] = ("Counter",),
        *,
        regions: Iterable[str] = ("130100", "330300"),
        debug: bool = False,
    ) -> None:
        self.workdir = Path(workdir).absolute()  # pcscd is handed paths in it
        self.counter_names = list(counters)
        self.regions = tuple(regions)
        self.debug = debug
        self.counters: dict[str, Counter] = {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid_file(self) -> Path:
        return self.workdir / "pcscd.pid"

    @property
    def conf_dir(self) -> Path:
        return self.workdir / "reader.conf.d"

    @property
    def log_path(self) -> Path:
        return self.workdir / "pcscd.log"

    # -- bring-up ---------------------------------------------------------------------------------

    def start(self) -> PcscStack:
        reason = unavailable_reason()
        if reason:
            raise StackError(reason)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.stop_leftovers()
        self._write_config()
        self.start_pcscd()
        for counter in self.counters.values():
            counter.psam.insert(VirtualPSAM.for_regions(self.regions))
        return self

    def _write_config(self) -> None:
        if self.conf_dir.exists():
            shutil.rmtree(self.conf_dir)
        self.conf_dir.mkdir()
        driver = vpcd_driver()
        if driver is None:
            raise StackError(VPCD_MISSING)
        for index, name in enumerate(self.counter_names):
            if '"' in name:
                raise StackError(f"a reader name may not contain a quote: {name!r}")
            port = free_port_pair()
            library = self.workdir / f"libifdvpcd-{index}.so"  # own copy per entry, or they share a card
            shutil.copyfile(driver, library)
            (self.conf_dir / f"{index:02d}-counter.conf").write_text(
                f'FRIENDLYNAME "{name}"\nDEVICENAME   /dev/null:{port}\nLIBPATH      {library}\nCHANNELID    {port}\n'
            )
            card, psam = Slot(port, name=f"{name}/card"), Slot(port + 1, name=f"{name}/psam")
            self.counters[name] = Counter(name, port, card, psam)

    def start_pcscd(self) -> None:
        """Start pcscd on the written configuration and wait until every reader is listed."""
        running = self._foreign_pcscd()
        if running:
            raise StackError(
                f"another pcscd (pid {running}) is running and owns {PCSCD_RUN_DIR}: stop it first "
                "('medsettle hardware down' if it is medsettle's)"
            )
        pcscd = pcscd_path()
        if pcscd is None:
            raise StackError(PCSCD_MISSING)
        command = [pcscd, "--foreground", "-c", str(self.conf_dir)]
        if self.debug:
            command += ["--debug", "--apdu"]
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed when pcscd is stopped
        self._log_start = log_file.tell()
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.process = process
        self._log_file = log_file
        self.pid_file.write_text(str(process.pid))
        self._wait_for_readers(process)

    def _wait_for_readers(self, process: subprocess.Popen[bytes]) -> None:
        """Until every reader is listed; StackError when ``process`` (our pcscd) exits or the time is up."""
        from smartcard.pcsc.PCSCExceptions import EstablishContextException  # noqa: PLC0415
        from smartcard.System import readers  # noqa: PLC0415

        wanted = {c.card_reader for c in self.counters.values()} | {c.psam_reader for c in self.counters.values()}
        deadline = time.monotonic() + START_TIMEOUT_S
        listed: set[str] = set()
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StackError(self._exit_reason(process))
            try:
                listed = {str(r) for r in readers()}
            except EstablishContextException:
                listed = set()
            if wanted <= listed:
                return
            time.sleep(0.01)
        self.stop_pcscd()
        raise StackError(f"pcscd did not list the readers {sorted(wanted - listed)} within {START_TIMEOUT_S} s")

    def _exit_reason(self, process: subprocess.Popen[bytes]) -> str:
        """One line: pcscd's exit status, its own reason, and where its log is."""
        returncode = process.returncode
        self.stop_pcscd()  # reaps it and closes the log
        with open(self.log_path, "rb") as log:
            log.seek(self._log_start)
            reason = pcscd_failure(log.read().decode(errors="replace"))
        return f"pcscd exited with status {returncode}: {reason} (log: {self.log_path})"

    def _foreign_pcscd(self) -> int | None:
        """The pid of a pcscd already running on this machine that is not ours, if any."""
        pid_file = PCSCD_RUN_DIR / "pcscd.pid"
        try:
            pid = int(pid_file.read_bytes().rstrip(b"\0\n ") or 0)  # pcscd's pid file ends with a NUL
        except (OSError, ValueError):
            return None
        if pid and _alive(pid) and "pcscd" in _cmdline(pid) and not (self.process and self.process.pid == pid):
            return pid
        return None

    def stop_leftovers(self) -> None:
        """Stop a pcscd an earlier run of this stack left behind (found by the pid file it wrote)."""
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return
        if _alive(pid) and str(self.conf_dir) in _cmdline(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 3
            while _alive(pid) and "pcscd" in _cmdline(pid) and time.monotonic() < deadline:
                time.sleep(0.01)
        self.pid_file.unlink(missing_ok=True)

    # -- shut-down --------------------------------------------------------------------------------

    def stop_pcscd(self) -> None:
        """SIGTERM pcscd and reap it (cards stay 'inserted' and reconnect when it is started again)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._log_file.close()
        self.pid_file.unlink(missing_ok=True)

    def stop(self) -> None:
        for counter in self.counters.values():
            counter.card.remove()
            counter.psam.remove()
        self.stop_pcscd()

    def __enter__(self) -> PcscStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
