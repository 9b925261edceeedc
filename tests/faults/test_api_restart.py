"""The Prefect API restarted while an export runs (issue 17's fault suite).

An operator restarts the Prefect server (an upgrade, a crash, a new host behind the same
address) while `exports run` is writing. The run's process keeps writing meanwhile; each call
it makes to the API while the server is down is retried by Prefect's client (once it has
connected: `PREFECT_CLIENT_MAX_RETRIES`, 5 by default, 2 s, 4 s, 8 s, 16 s, 32 s apart, about
a minute in all). So a restart inside that minute costs the run only time: the file arrives
whole, the run ends Completed in the API, no temporary file stays and the process exits 0.
An outage longer than the client's retries fails the run's process instead: nothing is
published, an existing file stays, and the run's temporary file goes once the run is marked
over (as a killed run's: the heartbeat automation marks it Crashed).

The server here is a `prefect server start` of the test's own (its own PREFECT_HOME and SQLite
database), stopped and started again on the same port and database: the session's
`prefect_api` cannot be restarted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Crashed

from tests.conftest import REPO_ROOT
from tests.processes import stop_process, wait_for_http, wait_until
from tests.servers.ports import free_port

ROWS = 1_000_000  # about 12 MB of CSV: several seconds of writing


def query(rows: int) -> str:
    """`rows` rows of SQLite's own making: no database to set up."""
    return (
        f"WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {rows}) "
        "SELECT x, 'row' AS v FROM n"
    )


def expected_csv(rows: int) -> bytes:
    """The export of `query(rows)` as CSV, made here without the product."""
    return b"x,v\n" + "".join(f"{x},row\n" for x in range(1, rows + 1)).encode()


@dataclass
class RestartableApi:
    """`prefect server start` on a fixed loopback port and PREFECT_HOME (its SQLite database
    lives there), so it can be stopped and started again as the same server."""

    home: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self, timeout_s: float = 120) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_UI_ENABLED="false",
            DO_NOT_TRACK="1",
        )
        self.starts += 1
        with (self.home / f"server-{self.starts}.log").open("wb") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "prefect"), "server", "start",
                 "--host", "127.0.0.1", "--port", str(self.port), "--no-ui", "--analytics-off"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_for_http(
            f"{self.url}/health", timeout_s, every_s=0.2, process=self.process, log=self.log_text
        )

    def stop(self) -> None:
        """SIGTERM, as `systemctl restart` does; the whole process group (its services)."""
        if self.process is None:
            return
        stop_process(self.process, grace_s=30, group=True)
        self.process = None

    def log_text(self) -> str:
        logs = sorted(self.home.glob("server-*.log"))
        return "\n".join(path.read_text(errors="replace")[-3000:] for path in logs)

    def flow_run(self, run_id: str) -> FlowRun:
        with temporary_settings({PREFECT_API_URL: self.url}), get_client(sync_client=True) as c:
            return c.read_flow_run(UUID(run_id))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartableApi]:
    """One server for the module (a first start migrates a new database: 15-30 s); each test
    restarts it and leaves it running."""
    server = RestartableApi(home=tmp_path_factory.mktemp("prefect-home"), port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class CliRun:
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return f"stdout:\n{self.stdout.read_text()}\nstderr:\n{self.stderr.read_text()[-4000:]}"


def start_export(
    api: RestartableApi, folder: Path, tmp_path: Path, rows: int = ROWS, **env: str
) -> CliRun:
    """`exports run demo-orders` in its own process against `api`, exporting `query(rows)` as
    CSV into `folder/orders.csv` (a user's terminal: PREFECT_API_URL names the server)."""
    client_env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    client_env.update(
        PREFECT_API_URL=api.url, PREFECT_HOME=str(tmp_path / "client-home"), DO_NOT_TRACK="1"
    )
    client_env.update(env)
    stdout, stderr = tmp_path / "run.out", tmp_path / "run.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "deployments.cli", "run", "demo-orders",
             "--set", "source.url=sqlite://", "--set", "source.table=null",
             "--set", f"source.query={query(rows)}", "--set", "source.chunk_rows=10000",
             "--set", f"destination.url={folder}/{{export}}.{{ext}}", "--json"],
            cwd=REPO_ROOT, env=client_env, stdout=out, stderr=err,
        )  # fmt: skip
    return CliRun(process, stdout, stderr)


def temporary_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


def wait_for_bytes(run: CliRun, folder: Path, size: int, timeout_s: float = 90) -> Path:
    """The run's temporary file, once it holds `size` bytes (the run is mid-write)."""
    grown = wait_until(
        lambda: [path for path in temporary_files(folder) if path.stat().st_size >= size],
        timeout_s, f"a temporary file of {size} bytes (the fault comes then)",
        every_s=0.05, process=run.process, log=run.output,
    )  # fmt: skip
    return grown[0]


def run_id_of(temporary: Path) -> str:
    """The flow run id in a temporary file's name, `.orders.csv.<run id>-xxxx.tmp`."""
    return temporary.name.removeprefix(".orders.csv.").rpartition("-")[0]


def test_an_api_restart_mid_run_costs_the_run_only_time(
    api: RestartableApi, tmp_path: Path
) -> None:
    """Issue 17: the Prefect API is stopped while `exports run` writes, and started again on
    the same port and database a few seconds later: the run finishes on its own (Prefect's
    client retries its calls), delivers the whole file, ends Completed in the API, leaves no
    temporary file and exits 0."""
    folder = tmp_path / "out"
    expected = expected_csv(ROWS)
    run = start_export(api, folder, tmp_path)
    try:
        wait_for_bytes(run, folder, len(expected) * 2 // 5)
        api.stop()
        time.sleep(3)  # down: the write goes on, then its calls to the API wait
        api.start()
        assert run.process.poll() is None, f"the run did not outlive the outage\n{run.output()}"
        assert run.process.wait(timeout=120) == 0, run.output()
    finally:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()
    result = json.loads(run.stdout.read_text())
    target = folder / "orders.csv"
    assert result["rows"] == ROWS and result["files"] == [str(target)]
    assert target.read_bytes() == expected
    assert temporary_files(folder) == []
    assert sorted(path.name for path in folder.iterdir()) == ["orders.csv"]
    state = api.flow_run(result["export_request_id"]).state
    assert state is not None and state.is_completed(), state


def test_an_outage_past_the_clients_retries_publishes_nothing(
    api: RestartableApi, tmp_path: Path
) -> None:
    """Issue 17: the API stays down longer than the run's client retries (none here,
    instead of about a minute of them): the run's process fails (exit 1), nothing is
    published and the file of an earlier run stays. The API, once back, still shows the run
    Running (it never heard the end) until the heartbeat automation marks it Crashed; then the
    next run to the same target removes any temporary file the failed run left."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "orders.csv").write_bytes(b"an earlier run's file\n")
    expected = expected_csv(ROWS)
    run = start_export(api, folder, tmp_path, PREFECT_CLIENT_MAX_RETRIES="0")
    try:
        temporary = wait_for_bytes(run, folder, len(expected) * 2 // 5)
        api.stop()
        code = run.process.wait(timeout=90)
    finally:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()
        api.start()
    assert code == 1, run.output()
    said = run.stderr.read_text().splitlines()
    assert said and said[-1].startswith(f"error: the Prefect API at {api.url} did not answer"), (
        run.output()
    )
    assert "Traceback" not in run.stderr.read_text(), run.output()
    assert (folder / "orders.csv").read_bytes() == b"an earlier run's file\n"
    run_id = run_id_of(temporary)
    state = api.flow_run(run_id).state
    assert state is not None and state.is_running(), state
    # Left when the write had finished before the failure (only its publishing failed).
    assert all(run_id in path.name for path in temporary_files(folder))

    # What the heartbeat automation does after three missed heartbeats (tested with the
    # automation in tests/flows/alerts/test_alerts_deployed.py), then the next run.
    with temporary_settings({PREFECT_API_URL: api.url}), get_client(sync_client=True) as c:
        c.set_flow_run_state(UUID(run_id), Crashed(message="no heartbeat"), force=True)
    again = start_export(api, folder, tmp_path, rows=10)
    assert again.process.wait(timeout=120) == 0, again.output()
    assert (folder / "orders.csv").read_bytes() == expected_csv(10)
    assert temporary_files(folder) == []
