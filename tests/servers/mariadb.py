"""A private MariaDB server on loopback, started and stopped by the tests."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.processes import stop_process, wait_until
from tests.servers.ports import free_port


@dataclass
class MariaDbServer:
    """A private MariaDB server (Debian's mariadb-server) on loopback, without grant tables:
    any user connects without a password (a throwaway server for the tests only)."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}?charset=utf8mb4"

    def connect(self, database: str | None = None) -> Any:
        import pymysql

        return pymysql.connect(
            host="127.0.0.1", port=self.port, user="root", database=database, charset="utf8mb4"
        )

    def create_database(self, name: str) -> str:
        with closing(self.connect()) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        return name

    def drop_database(self, name: str) -> None:
        with closing(self.connect()) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")

    def stop(self) -> None:
        stop_process(self.process, grace_s=30)
        shutil.rmtree(self.root, ignore_errors=True)


def start_mariadb() -> MariaDbServer:
    """mariadb-install-db into a temporary folder, then mariadbd on a free loopback port; ready
    to accept connections when it returns."""
    installer, server = shutil.which("mariadb-install-db"), shutil.which("mariadbd")
    if server is None and Path("/usr/sbin/mariadbd").exists():
        server = "/usr/sbin/mariadbd"
    if installer is None or server is None:
        raise RuntimeError("MariaDB was not found; install mariadb-server (see .ci/run)")
    root = Path(tempfile.mkdtemp(prefix="exports-mariadb-"))
    subprocess.run(
        [installer, f"--datadir={root / 'data'}", "--user=root", "--skip-test-db"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    port = free_port()
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [
            server, f"--datadir={root / 'data'}", f"--port={port}",
            f"--socket={root / 'mysqld.sock'}", f"--pid-file={root / 'mysqld.pid'}",
            "--user=root", "--bind-address=127.0.0.1", "--skip-grant-tables",
            "--innodb-buffer-pool-size=64M", "--skip-log-bin",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    mariadb = MariaDbServer(root, port, process)

    def accepts() -> bool:
        mariadb.connect().close()
        return True

    try:
        wait_until(
            accepts, 60, "MariaDB accepting connections", process=process, ignoring=(Exception,)
        )
    except AssertionError:
        mariadb.stop()
        raise RuntimeError((root / "server.log").read_text()) from None
    return mariadb
