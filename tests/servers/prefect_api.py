"""`prefect server start` of its own, for the tests that need a Prefect API apart from the
session's (a database of their choice, a burst of requests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.processes import stop_process, wait_for_http
from tests.servers.ports import free_port


@dataclass
class PrefectServer:
    """`prefect server start` of its own (API, services, no UI) on a free loopback port, with
    its own PREFECT_HOME: SQLite there by default, or the database it was started with."""

    url: str  # the API's URL, …/api
    home: Path
    log: Path
    process: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        """An environment for a client process of this server (and of no other)."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
        env.update(PREFECT_API_URL=self.url, PREFECT_HOME=str(self.home), DO_NOT_TRACK="1")
        return env

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process, grace_s=20, group=True)
        shutil.rmtree(self.home, ignore_errors=True)


def start_prefect_server(database_url: str | None = None, timeout_s: float = 120) -> PrefectServer:
    """Start `prefect server start` and wait for its /api/health. `database_url` is
    PREFECT_API_DATABASE_CONNECTION_URL (postgresql+asyncpg://…); None: SQLite in its home.
    Its whole output goes to `home/server.log`."""
    import sys

    home = Path(tempfile.mkdtemp(prefix="exports-prefect-"))
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        DO_NOT_TRACK="1",
    )
    if database_url is not None:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    log = home / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "prefect"), "server", "start",
             "--host", "127.0.0.1", "--port", str(port), "--no-ui", "--analytics-off"],
            env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = PrefectServer(f"http://127.0.0.1:{port}/api", home, log, process)
    try:
        wait_for_http(f"{server.url}/health", timeout_s, process=process)
    except AssertionError:
        text = server.log_text()
        server.stop()
        raise RuntimeError(f"prefect server start did not come up:\n{text[-3000:]}") from None
    return server
