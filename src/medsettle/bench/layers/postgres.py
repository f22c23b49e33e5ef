"""A private PostgreSQL server for a benchmark's yardstick: initdb in a temporary directory, a Unix socket
only, fsync on (pgbench's TPC-B, as the centre's journal is durable). As root, initdb and postgres run as
the ``postgres`` user (runuser), in a directory that user owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile

from . import LayerSkipped


def find_bindir() -> str | None:
    """Where initdb and pg_ctl are, or None when PostgreSQL is not installed."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def missing() -> str | None:
    """Why pgbench cannot run here, or None."""
    if find_bindir() is None:
        return "PostgreSQL is not installed (apt-get install postgresql)"
    if shutil.which("pgbench") is None and not os.path.exists("/usr/bin/pgbench"):
        return "pgbench is not installed (apt-get install postgresql-contrib)"
    return None


class PrivatePostgres:
    """A server of its own, stopped and removed by :meth:`stop` (or leaving the ``with``)."""

    def __init__(self) -> None:
        bindir = find_bindir()
        if bindir is None:
            raise LayerSkipped("PostgreSQL is not installed (apt-get install postgresql)")
        self.bindir = bindir
        self.base = tempfile.mkdtemp(prefix="medsettle-bench-pg-")
        os.chmod(self.base, 0o755)
        self.data = os.path.join(self.base, "data")
        self.socket_dir = os.path.join(self.base, "sock")
        os.mkdir(self.socket_dir)
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for path in (self.base, self.socket_dir):
                os.chown(path, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        try:
            self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
            options = f"-k {self.socket_dir} -c listen_addresses='' -c max_connections=200"
            log = os.path.join(self.base, "log")
            self._run("pg_ctl", "-D", self.data, "-w", "-t", "60", "-l", log, "-o", options, "start")
        except BaseException:
            shutil.rmtree(self.base, ignore_errors=True)
            raise

    def url(self, dbname: str = "postgres") -> str:
        """A libpq URL of the server's database ``dbname`` (over its socket)."""
        return f"postgresql://postgres@/{dbname}?host={self.socket_dir}"

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        try:
            self._run("pg_ctl", "-D", self.data, "-w", "-m", "fast", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run(
            [*self.as_user, os.path.join(self.bindir, tool), *args], capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stderr.strip() or result.stdout.strip()}")


def pgbench_init(url: str, scale: int = 10) -> None:
    """pgbench's tables at ``scale`` (10: a million accounts)."""
    subprocess.run(["pgbench", "-i", "-s", str(scale), "-q", url], check=True, capture_output=True, timeout=600)


def pgbench_tps(url: str, clients: int, seconds: int) -> float:  # ok-float: a rate
    """Transactions a second of pgbench's TPC-B with ``clients`` clients on two threads."""
    proc = subprocess.run(
        ["pgbench", "-c", str(clients), "-j", "2", "-T", str(seconds), "-n", url],
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    found = re.search(r"tps = ([\d.]+)", proc.stdout)
    if found is None:
        raise RuntimeError(f"pgbench printed no tps: {proc.stdout[-300:]}")
    return float(found.group(1))  # ok-float: a rate (tps)
