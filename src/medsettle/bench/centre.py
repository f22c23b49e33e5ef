"""The embedded centre of a load run: ``medsettle serve --port 0`` as a subprocess on a private data
directory, so that gevent's patching (the driver's) never reaches the centre's process; and the open-file
limit, raised for the driver and, inherited, for that centre.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

COUNTERS_PER_INSTITUTION = 50  # past this many a place, the embedded centre gets more institutions
START_WITHIN = 120.0  # ok-float: seconds for the centre's 'listening on' line (generating persons takes a few)


class CentreStartError(RuntimeError):
    """The embedded centre did not start; the message quotes its last words."""


def raise_open_files() -> tuple[int, int] | None:
    """Raise this process's open-file soft limit to its hard one; (before, after), or None when it cannot."""
    try:
        import resource  # noqa: PLC0415
    except ImportError:  # not on this platform
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft


def institutions_toml(regions: Sequence[str], counters: int) -> str | None:
    """An ``serve --institutions`` file with enough institutions for ``counters`` (at most
    :data:`COUNTERS_PER_INSTITUTION` each, were they all at one place), or None when the default five a
    region are enough. The default institutions come first, under their usual codes (docs/security.md)."""
    per_place = math.ceil(counters / (len(regions) * COUNTERS_PER_INSTITUTION))
    if per_place <= 2:
        return None
    lines = []
    for a in regions:
        for n in range(1, per_place + 1):
            tier = ("3", "2", "1")[(n - 1) % 3]
            lines += ["[[institution]]", f'fixmedins_code = "H{a}{n:05d}"', f'fixmedins_name = "{a} 医院 {n}"']
            lines += [f'admdvs = "{a}"', f'tier = "{tier}"', ""]
            lines += ["[[institution]]", f'fixmedins_code = "P{a}{n:05d}"', f'fixmedins_name = "{a} 药房 {n}"']
            lines += [f'admdvs = "{a}"', 'tier = "pharmacy"', ""]
    return "\n".join(lines)


@dataclass
class EmbeddedCentre:
    """A ``medsettle serve`` subprocess on 127.0.0.1 and what the run needs of it."""

    data_dir: Path
    persons_file: str | None = None
    institutions: str | None = None  # an institutions file's text (institutions_toml), or the default ones
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    max_connections: int | None = None
    log: list[str] = field(default_factory=list)
    serve_args: tuple[str, ...] = ()  # more of serve's options (--db URL, --workers N)

    @property
    def credentials_file(self) -> Path:
        """Where the centre wrote its clients' credentials."""
        return self.data_dir / "credentials.toml"

    def launch(self) -> None:
        """Start the process (the driver does other work while it builds its world; then :meth:`wait`)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out, err = self.data_dir / "serve.out", self.data_dir / "serve.log"
        args = [sys.executable, "-m", "medsettle.cli", "serve", "--port", "0", "--data-dir", str(self.data_dir)]
        args += ["--stats-every", "0", *(["--persons", self.persons_file] if self.persons_file else [])]
        args += self.serve_args
        if self.institutions:
            (self.data_dir / "institutions.toml").write_text(self.institutions, encoding="utf-8")
            args += ["--institutions", str(self.data_dir / "institutions.toml")]
        with out.open("wb") as stdout, err.open("wb") as stderr:
            self.proc = subprocess.Popen(args, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)

    def wait(self) -> None:
        """Wait for its 'listening on' line; CentreStartError with its last lines if it does not come."""
        assert self.proc is not None, "launch() first"
        out, err = self.data_dir / "serve.out", self.data_dir / "serve.log"
        deadline = time.monotonic() + START_WITHIN
        while time.monotonic() < deadline:
            text = out.read_text(encoding="utf-8", errors="replace")
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+/)", text)
            if found:
                self.url = found.group(1)
                self._read_cap(err)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        last = (out.read_text(errors="replace") + err.read_text(errors="replace")).strip().splitlines()[-3:]
        self.stop()
        raise CentreStartError(f"the embedded centre did not start: {' / '.join(last) or 'no output'}")

    def _read_cap(self, log: Path) -> None:
        for _ in range(40):  # the log line follows the listening line closely
            found = re.search(r"at most (\d+) connections", log.read_text(encoding="utf-8", errors="replace"))
            if found:
                self.max_connections = int(found.group(1))
                return
            time.sleep(0.05)

    @property
    def pid(self) -> int | None:
        """The centre's process id (None before it starts)."""
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
