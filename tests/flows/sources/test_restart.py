"""A PostgreSQL restart while an export reads (issue 17): the sessions are terminated "due to
administrator command", the read is retried once the server is back, and the run delivers
every row. Forced parallel plans, as a big table gets them, put the restart's error in a
parallel worker's words; the unit tier checks that wording too (test_failures.py)."""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.export import export
from tests.servers.postgres import PostgresServer, start_postgres

pytestmark = pytest.mark.usefixtures("prefect_api")

ROWS = 400_000
# A row filter that sleeps 1 s every 100,000 rows, in the parallel workers too.
SLOW = """create function slow(i int) returns bool language plpgsql parallel safe as $$
    begin if i % 100000 = 0 then perform pg_sleep(1); end if; return true; end $$"""
DEADLINE_S = 120.0
# Every row through slow(): in the parallel workers, before the sort (the sleeps come before
# the first row is sent) ...
FILTERED = "select id, a from t where slow(id) order by id"
# ... or after it, as the rows stream out (OFFSET 0 keeps slow() above the sort): COPY's
# workers outrun the client, so a sleep inside the stream is the only sure way to restart
# while COPY is sending.
STREAMED = "select id, a from (select id, a from t order by id offset 0) s where slow(id)"


@pytest.fixture(scope="module")
def restartable() -> Iterator[tuple[PostgresServer, str]]:
    """A PostgreSQL of this module's own (the tests restart it), planning in parallel."""
    server = start_postgres()
    try:
        database = server.create_database("restarts")
        with psycopg.connect(server.dsn(database), autocommit=True) as conn:
            conn.execute(
                "create table t as select g as id, md5(g::text) as a "
                f"from generate_series(1, {ROWS}) g"
            )
            conn.execute("analyze t")
            conn.execute(SLOW)
            for setting in (
                "parallel_setup_cost",
                "parallel_tuple_cost",
                "min_parallel_table_scan_size",
            ):
                conn.execute(f'alter database "{database}" set {setting} = 0')
        yield server, database
    finally:
        server.stop()


def _restart_when_running(server: PostgresServer, database: str, marker: str) -> threading.Thread:
    """Restart the server while a query containing `marker` sleeps in slow(), so the restart
    always lands mid-read (restarting once the query was merely seen could come too late)."""

    def watch() -> None:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            with psycopg.connect(server.dsn(database), autocommit=True) as conn:
                sleeping = conn.execute(
                    "select count(*) from pg_stat_activity where wait_event = 'PgSleep' "
                    "and query like %s and pid <> pg_backend_pid()",
                    (f"%{marker}%",),
                ).fetchone()
            if sleeping and sleeping[0]:  # inside one of slow()'s 1 s sleeps: mid-read
                server.restart()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _attempts(flow_run_id: Any) -> dict[str, int]:
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {task.name.split("-")[0]: task.run_count for task in tasks}


@pytest.mark.parametrize(
    ("reader", "phase", "marker", "query"),
    [
        ("sqlalchemy", "write", "FETCH", FILTERED),  # a server-side cursor's fetch
        ("postgres_copy", "write", "COPY", STREAMED),  # while COPY streams the rows
        ("postgres_copy", "inspect", "count(", FILTERED),  # while the rows are counted
    ],
)
def test_a_restart_mid_read_is_retried_and_every_row_arrives(
    restartable: tuple[PostgresServer, str],
    tmp_path: Path,
    reader: str,
    phase: str,
    marker: str,
    query: str,
) -> None:
    server, database = restartable
    watcher = _restart_when_running(server, database, marker)
    state = export(
        source={
            "url": server.url(database),
            "query": query,
            "reader": reader,
            "count_rows": phase == "inspect",
        },
        destination={"url": f"{tmp_path}/{{export}}.{{ext}}"},
        name="restarted",
        return_state=True,
    )
    watcher.join(DEADLINE_S)
    assert not watcher.is_alive()
    assert state.is_completed(), state.message
    with (tmp_path / "restarted.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["id", "a"] and len(rows) == ROWS + 1
    assert [int(row[0]) for row in rows[1:]] == list(range(1, ROWS + 1))
    tried = _attempts(state.state_details.flow_run_id)
    assert tried[phase] >= 2, tried  # the restart failed an attempt, which was retried
