"""A throw-away PostgreSQL server on a loopback port, for the destination tests."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started on this machine."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_postgres(command: list[str]) -> None:
    """Run a server command as the `postgres` user when we are root (initdb refuses root)."""
    if os.geteuid() == 0:
        command = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(command)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise PostgresUnavailable(f"{command[0]} failed: {done.stderr.strip()[-500:]}")


class PostgresServer:
    """initdb + pg_ctl start in a temporary directory; `url` is a dlt/psycopg2 connection string."""

    def __init__(self) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        pg_ctl = binaries[-1] if binaries else shutil.which("pg_ctl")
        if not pg_ctl:
            raise PostgresUnavailable("pg_ctl not found (install Debian's postgresql package)")
        self._bin = Path(pg_ctl).parent
        self._data = Path(tempfile.mkdtemp(prefix="gong-pg-")) / "data"
        self.port = _free_port()
        # trust authentication ignores the password, but dlt requires one in the credentials
        self.url = f"postgresql://postgres:local-test@127.0.0.1:{self.port}/gong"

    def start(self) -> PostgresServer:
        """Create the cluster and the `gong` database, and start the server."""
        if os.geteuid() == 0:
            shutil.chown(self._data.parent, "postgres")
        _as_postgres([str(self._bin / "initdb"), "-D", str(self._data), "-A", "trust", "-U", "postgres", "--no-sync"])
        options = f"-p {self.port} -k {self._data} -c listen_addresses=127.0.0.1 -c fsync=off"
        _as_postgres([str(self._bin / "pg_ctl"), "-D", str(self._data), "-o", f"'{options}'", "-w", "-l",
                      str(self._data / "server.log"), "start"])  # fmt: skip
        _as_postgres([str(self._bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "gong"])
        return self

    def stop(self) -> None:
        """Stop the server and remove its files."""
        try:
            _as_postgres([str(self._bin / "pg_ctl"), "-D", str(self._data), "-m", "fast", "-w", "stop"])
        finally:
            shutil.rmtree(self._data.parent, ignore_errors=True)
