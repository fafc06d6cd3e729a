"""A real PostgreSQL server for the tests: Debian's ``postgresql`` package, never a mock.

``initdb`` in a temporary directory, ``pg_ctl`` to start it on a free loopback port (and on a
Unix socket inside that directory), as an unprivileged user: the current one, or, when the
tests run as root (which ``initdb`` refuses), the ``postgres`` user the Debian package
creates. Nothing of the system's own cluster is used or touched.

Fixtures (registered in tests/conftest.py)::

    postgres_server    session-scoped ``PostgresServer``: url(), new_database(), stop(),
                       start(), restart(), sql(); skipped when PostgreSQL is not installed
    postgres_url       a fresh, empty database on it for one test, as a URL (no password)

A role with a password (``PASSWORD_ROLE``, ``PASSWORD``) exists for the password tests;
every other connection from loopback is trusted.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN = Path(os.environ.get("VLLM_MCP_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "vllm_mcp"
PASSWORD_ROLE = "vllm_mcp_pw"
PASSWORD = "s3cret-Pa55word-never-logged"
_HBA = f"""\
local all all trust
host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, listening on 127.0.0.1:``port``."""

    def __init__(self, root: Path, fsync: bool = False) -> None:
        self.root = root
        self.fsync = fsync
        """Off for the tests (speed); on for a benchmark, as a production server has it."""
        self.data = root / "data"
        self.port = free_port()
        self.host = "127.0.0.1"
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run the server as Debian's postgres user
            pw = pwd.getpwnam("postgres")
            os.chown(root, pw.pw_uid, pw.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    # --- lifecycle ---------------------------------------------------------------------------

    def _run(self, *argv: str, timeout: float = 120) -> str:
        proc = subprocess.run(
            [*self._as_user, *argv], capture_output=True, text=True, timeout=timeout, cwd=self.root
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv[:2])} failed ({proc.returncode}): {proc.stderr or proc.stdout}"
            )
        return proc.stdout

    def init(self) -> None:
        self._run(str(BIN / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as f:
            f.write(
                f"listen_addresses = '{self.host}'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\nfsync = {'on' if self.fsync else 'off'}\n"
                "max_connections = 100\n"
            )
        hba = self.data / "pg_hba.conf"
        uid, gid = hba.stat().st_uid, hba.stat().st_gid
        hba.write_text(_HBA)
        os.chown(hba, uid, gid)

    def start(self) -> None:
        """Start (or start again after ``stop``), on the same port; returns once it accepts."""
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-w", "-t", "60", "start")  # fmt: skip

    def first_start(self) -> None:
        """Start on a free port: another test may take the port picked between free_port() and now."""
        for attempt in range(3):
            try:
                return self.start()
            except RuntimeError:
                log = (self.root / "server.log").read_text(errors="replace")
                if "could not bind" not in log or attempt == 2:
                    raise
                self.port = free_port()
                with (self.data / "postgresql.conf").open("a") as f:
                    f.write(f"port = {self.port}\n")  # the last setting wins

    def stop(self, mode: str = "fast") -> None:
        """Stop it: ``fast`` ends open connections (a database restart as clients see it)."""
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        status = subprocess.run(
            [*self._as_user, str(BIN / "pg_ctl"), "-D", str(self.data), "status"], capture_output=True
        )
        return status.returncode == 0

    # --- use ---------------------------------------------------------------------------------

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@{self.host}:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> list[tuple[object, ...]]:
        """Run one statement as the superuser (autocommit); its rows, if any."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            cur = conn.execute(statement)  # type: ignore[call-overload]
            return cur.fetchall() if cur.description else []

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.sql(f"CREATE DATABASE {name}")
        self.sql(f"GRANT ALL ON DATABASE {name} TO {PASSWORD_ROLE}")
        self.sql(f"ALTER DATABASE {name} OWNER TO {PASSWORD_ROLE}")
        return self.url(name)


@contextlib.contextmanager
def running_postgres(fsync: bool = False) -> Iterator[PostgresServer]:
    """A started server for the ``with`` block, then stopped and removed."""
    if not (BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL not installed ({BIN}/initdb; Debian: apt-get install postgresql)")
    # /tmp, not $TMPDIR: the postgres user must be able to reach the directory.
    root = Path(tempfile.mkdtemp(prefix="vllm-mcp-pg-", dir="/tmp" if os.geteuid() == 0 else None))
    server = PostgresServer(root, fsync)
    try:
        server.init()
        server.first_start()
        server.sql(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")
        yield server
    finally:
        with contextlib.suppress(Exception):
            if server.running:
                server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the whole test session (tests that stop it must start it again)."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh empty database for one test; the server is running when the test starts."""
    if not postgres_server.running:
        postgres_server.start()
    return postgres_server.new_database()
