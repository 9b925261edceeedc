"""A private PostgreSQL cluster for the tests and the benchmarks, started and stopped by us.

PostgreSQL 15 is installed on the machines (not running): we initdb a private cluster in a
temporary folder, on a free port, and remove it afterwards. As root, PostgreSQL's tools run
as the `postgres` user, since initdb refuses to run as root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.processes import wait_until
from tests.servers.ports import free_port

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")


def _pg_bin() -> Path:
    for candidate in PG_BIN_CANDIDATES:
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError("PostgreSQL's initdb was not found; install postgresql-15 (see .ci/run)")


@dataclass
class PostgresServer:
    """A private PostgreSQL cluster: `url(db)` gives a SQLAlchemy URL, `dsn(db)` a libpq one."""

    root: Path
    port: int
    bin: Path

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def restart(self) -> None:
        """`pg_ctl restart -m fast`, as an operator does: sessions are terminated ("due to
        administrator command"), then the server accepts connections again."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        data, log = str(self.root / "data"), str(self.root / "log")
        _as_postgres(
            [str(self.bin / "pg_ctl"), "-D", data, "-m", "fast", "-w", "-o", options, "-l", log,
             "restart"]
        )  # fmt: skip

    def stop(self) -> None:
        _as_postgres(
            [str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"],
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def _as_postgres(command: list[str], check: bool = True) -> subprocess.CompletedProcess[bytes]:
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, check=check, capture_output=True, timeout=120)


def start_postgres() -> PostgresServer:
    """initdb + pg_ctl start on a free port; ready to accept connections when it returns."""
    pg_bin = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="exports-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    port = free_port()
    _as_postgres(
        [
            str(pg_bin / "initdb"),
            "-D",
            str(root / "data"),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    _as_postgres(
        [
            str(pg_bin / "pg_ctl"),
            "-D",
            str(root / "data"),
            "-o",
            options,
            "-l",
            str(root / "log"),
            "-w",
            "start",
        ]
    )
    server = PostgresServer(root, port, pg_bin)

    def accepts() -> bool:
        with psycopg.connect(server.dsn(), connect_timeout=2):
            return True

    try:
        wait_until(
            accepts, 30, "PostgreSQL accepting connections", ignoring=(psycopg.OperationalError,)
        )
    except AssertionError:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()
