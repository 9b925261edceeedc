"""A run that fails half-way (the database goes away mid-read) leaves no file at the final path.

PostgreSQL (COPY reader): a query streams tens of thousands of rows and then blocks in
pg_sleep; once those rows have reached the temporary file, the test kills the export's
connection (on every attempt, since lost connections are retried) or stops the server.
SQLite (SQLAlchemy reader): a query that raises an error at row 5,000 of 10,000.
Either way the run fails and the output folder holds neither a final nor a temporary file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun
from prefect.client.schemas.sorting import TaskRunSort
from prefect.states import State

from flows.core.errors import SourceError, TransientSourceError
from flows.core.formats import EXPORT_FORMATS
from flows.export import export
from tests.processes import wait_until
from tests.servers.postgres import start_postgres

pytestmark = pytest.mark.usefixtures("prefect_api")

# Rows that stream at once (about 10 MB of COPY text: more than the parser's 4 MiB block,
# so whole chunks reach the temporary file), then one row that blocks for a minute.
STREAMED_ROWS = 50_000
BLOCKING_QUERY = (
    f"select g, repeat('x', 200) as pad from generate_series(1, {STREAMED_ROWS}) g "
    "union all select 0, pg_sleep(60)::text"
)
# Counting rows first would run the whole query (and its pg_sleep) before the export starts.
NO_COUNT = {"count_rows": False}
MIN_WRITTEN = 1_000_000  # bytes in the temporary file before the database goes away
ATTEMPTS = 3  # write_batches retries transient errors twice (after 2 s and 10 s)
DEADLINE_S = 150.0

SQLITE_ROWS = 10_000
FAILING_ROW = 5_000
FAILING_QUERY = (
    f"select id, case when id = {FAILING_ROW} then json_extract('not json', '$') "
    "else 'x' end as v from t"
)


class _BackgroundExport:
    """The export flow running in a thread, so the test can break things under it."""

    def __init__(self, **parameters: Any) -> None:
        self.state: State[Any] | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(parameters,), daemon=True)

    def _run(self, parameters: dict[str, Any]) -> None:
        try:
            self.state = export(**parameters, return_state=True)
        except BaseException as exc:  # noqa: BLE001 - reported by finished_state()
            self.error = exc

    def start(self) -> _BackgroundExport:
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread.is_alive()

    def finished_state(self, timeout: float = DEADLINE_S) -> State[Any]:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the export did not finish"
        assert self.error is None, f"export() raised instead of returning a state: {self.error!r}"
        assert self.state is not None
        return self.state


def _temporary_files(folder: Path) -> list[Path]:
    return [path for path in folder.glob(".*.tmp") if path.is_file()] if folder.exists() else []


def _largest_temporary_file(folder: Path) -> int:
    sizes = []
    for path in _temporary_files(folder):
        try:
            sizes.append(path.stat().st_size)
        except FileNotFoundError:  # removed between glob and stat
            pass
    return max(sizes, default=0)


def _everything_in(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def _wait_until(condition: Callable[[], bool], runner: _BackgroundExport, what: str) -> None:

    def met() -> bool:
        if condition():
            return True
        assert runner.alive(), f"the export finished before {what}"
        return False

    wait_until(met, DEADLINE_S, what, every_s=0.05)


def _task_runs(flow_run_id: UUID | None) -> dict[str, TaskRun]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC,
            limit=50,
        )
    return {run.name.split("-", 1)[0]: run for run in runs}


def _failure(state: State[Any]) -> BaseException:
    assert state.is_failed(), f"expected a failed run, got {state.type}: {state.message}"
    with pytest.raises(Exception) as caught:
        state.result()
    return caught.value


def _sleeping_copies(conn: psycopg.Connection[Any]) -> list[int]:
    """Backends of this database running the export's COPY, parked in pg_sleep."""
    rows = conn.execute(
        "select pid from pg_stat_activity where datname = current_database() "
        "and pid <> pg_backend_pid() and query ilike 'COPY%' and wait_event = 'PgSleep'"
    ).fetchall()
    return [int(row[0]) for row in rows]


@pytest.mark.postgres
@pytest.mark.usefixtures("no_retry_waits")  # every attempt fails: 12 s of waits otherwise
class TestPostgresConnectionLost:
    def test_terminated_backend_leaves_no_file(self, pg_url: str, tmp_path: Path) -> None:
        out = tmp_path / "out"
        runner = _BackgroundExport(
            source={"url": pg_url, "query": BLOCKING_QUERY, "chunk_rows": 1000, **NO_COUNT},
            destination={"url": f"{out}/rows.{{ext}}"},
            name="rows",
        ).start()
        sizes_at_kill: list[int] = []
        with psycopg.connect(pg_url, autocommit=True) as admin:
            try:
                while runner.alive() and len(sizes_at_kill) < ATTEMPTS:
                    # Each attempt: rows reached a temporary file, and the server is blocked.
                    _wait_until(
                        lambda: (
                            _largest_temporary_file(out) > MIN_WRITTEN
                            and bool(_sleeping_copies(admin))
                        ),
                        runner,
                        f"attempt {len(sizes_at_kill) + 1} wrote rows and blocked",
                    )
                    sizes_at_kill.append(_largest_temporary_file(out))
                    for pid in _sleeping_copies(admin):
                        admin.execute("select pg_terminate_backend(%s)", (pid,))
                    _wait_until(lambda: not _sleeping_copies(admin), runner, "the backend ended")
                state = runner.finished_state()
            finally:
                for pid in _sleeping_copies(admin):  # never leave a blocked COPY behind
                    admin.execute("select pg_terminate_backend(%s)", (pid,))

        assert len(sizes_at_kill) == ATTEMPTS
        assert min(sizes_at_kill) > MIN_WRITTEN, f"rows never reached the file: {sizes_at_kill}"
        error = _failure(state)
        assert isinstance(error, TransientSourceError), repr(error)
        assert "connection was lost" in str(error)
        assert "\n" not in str(error)
        assert _everything_in(out) == [], "a failed run left files behind"

        write = _task_runs(state.state_details.flow_run_id)["write"]
        assert write.run_count == ATTEMPTS
        assert write.state is not None and write.state.is_failed()

    def test_stopped_server_leaves_no_file(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Stop the whole (private) server mid-read; the retries then cannot reconnect."""
        server = start_postgres()
        out = tmp_path / "out"
        try:
            runner = _BackgroundExport(
                source={
                    "url": server.url(),
                    "query": BLOCKING_QUERY,
                    "chunk_rows": 1000,
                    **NO_COUNT,
                },
                destination={"url": f"{out}/rows.{{ext}}"},
                format="jsonl",
                name="rows",
            ).start()
            with psycopg.connect(server.dsn(), autocommit=True) as admin:
                _wait_until(
                    lambda: (
                        _largest_temporary_file(out) > MIN_WRITTEN and bool(_sleeping_copies(admin))
                    ),
                    runner,
                    "rows reached the temporary file and the server blocked",
                )
            server.stop()
            state = runner.finished_state()
        finally:
            server.stop()

        error = _failure(state)
        assert isinstance(error, TransientSourceError), repr(error)
        assert "could not connect" in str(error) and "database is running" in str(error)
        assert "\n" not in str(error)
        assert _everything_in(out) == [], "a failed run left files behind"

        write = _task_runs(state.state_details.flow_run_id)["write"]
        assert write.run_count == ATTEMPTS
        # The first attempt lost its connection mid-read; the retries could not reconnect.
        retried = [r.getMessage() for r in caplog.records if "Retry 1/2" in r.getMessage()]
        assert len(retried) == 1 and "connection was lost" in retried[0], retried


@pytest.fixture(scope="module")
def failing_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite table of 10,000 rows; FAILING_QUERY errors when it reaches row 5,000."""
    path = tmp_path_factory.mktemp("midway") / "rows.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("create table t (id integer primary key, v text)")
        conn.executemany("insert into t values (?, 'x')", ((i,) for i in range(1, SQLITE_ROWS + 1)))
    conn.close()
    return path


class TestSqliteErrorMidStream:
    @pytest.mark.parametrize("fmt", EXPORT_FORMATS)
    def test_error_at_row_5000_leaves_no_file(
        self, failing_db: Path, tmp_path: Path, fmt: str
    ) -> None:
        out = tmp_path / "out"
        state = export(
            source={"url": f"sqlite:///{failing_db}", "query": FAILING_QUERY, "chunk_rows": 500},
            destination={"url": f"{out}/rows.{{ext}}"},
            format=fmt,
            name="rows",
            return_state=True,
        )
        self._assert_failed_while_writing(state)
        assert _everything_in(out) == [], "a failed run left files behind"

    def test_split_parts_already_closed_are_removed(self, failing_db: Path, tmp_path: Path) -> None:
        """Parts finished before the error (about 20 KB each) are thrown away too."""
        out = tmp_path / "out"
        state = export(
            source={"url": f"sqlite:///{failing_db}", "query": FAILING_QUERY, "chunk_rows": 500},
            destination={"url": f"{out}/rows.{{ext}}", "max_file_mb": 0.02},
            format="csv",
            name="rows",
            return_state=True,
        )
        self._assert_failed_while_writing(state)
        assert out.is_dir(), "the run never opened a part"
        assert _everything_in(out) == [], "a failed run left parts behind"

    def test_existing_file_is_untouched(self, failing_db: Path, tmp_path: Path) -> None:
        """A failed run neither replaces nor truncates what an earlier run delivered."""
        out = tmp_path / "out"
        out.mkdir()
        earlier = out / "rows.csv"
        earlier.write_bytes(b"id,v\n1,earlier\n")
        state = export(
            source={"url": f"sqlite:///{failing_db}", "query": FAILING_QUERY, "chunk_rows": 500},
            destination={"url": f"{out}/rows.{{ext}}"},
            name="rows",
            return_state=True,
        )
        self._assert_failed_while_writing(state)
        assert _everything_in(out) == ["rows.csv"]
        assert earlier.read_bytes() == b"id,v\n1,earlier\n"

    def test_same_query_without_the_bad_row_succeeds(
        self, failing_db: Path, tmp_path: Path
    ) -> None:
        """The control: the failure above comes from row 5,000, not from the setup."""
        out = tmp_path / "out"
        query = FAILING_QUERY.replace(f"id = {FAILING_ROW}", "id < 0")
        result = export(
            source={"url": f"sqlite:///{failing_db}", "query": query, "chunk_rows": 500},
            destination={"url": f"{out}/rows.{{ext}}"},
            name="rows",
        )
        assert result.rows == SQLITE_ROWS
        assert _everything_in(out) == ["rows.csv"]
        assert len((out / "rows.csv").read_text().splitlines()) == SQLITE_ROWS + 1

    @staticmethod
    def _assert_failed_while_writing(state: State[Any]) -> None:
        error = _failure(state)
        assert isinstance(error, SourceError), repr(error)
        assert not isinstance(error, TransientSourceError), "a bad value is not worth a retry"
        assert "malformed JSON" in str(error)
        assert "sqlite:///" in str(error), "the message names the source"
        assert "\n" not in str(error)
        tasks = _task_runs(state.state_details.flow_run_id)
        assert tasks["inspect"].state is not None and tasks["inspect"].state.is_completed()
        assert tasks["write"].state is not None and tasks["write"].state.is_failed()
        assert tasks["write"].run_count == 1, "configuration and data errors are not retried"
        assert "deliver" not in tasks
