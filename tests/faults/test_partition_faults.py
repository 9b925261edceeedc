"""A partition's PostgreSQL backend terminated mid-read (issue 17): the partition is retried
alone, every row arrives once, and nothing is published before the whole set is written."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import psycopg
import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.export import export
from flows.runs.result import ExportResult
from tests.flows.conftest import url_for_psycopg
from tests.flows.sources.test_partitions import Writer

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.postgres]

ROWS = 30_000
PARTITIONS = 3
# A row filter that sleeps 0.8 s every 2,000 rows: each range of 10,000 rows takes about 4 s,
# and the reader hands the rows it holds on to the writer once the server is silent for
# 0.5 s (flows/sources/postgres.py), so from the range's second sleep on its temporary file
# has rows while its backend, sleeping, still has rows to send.
SLOW = """create function slow(i bigint) returns bool language plpgsql as $$
    begin if i % 2000 = 0 then perform pg_sleep(0.8); end if; return true; end $$"""
QUERY = "SELECT id, v FROM events WHERE slow(id)"
# The middle range's COPY: the only one bounded on both sides.
MIDDLE = "COPY %_export_part WHERE id >= % AND id < %"
DEADLINE_S = 60.0


@pytest.fixture
def events(pg_url: str) -> Iterator[tuple[str, str]]:
    """Table `events` (id, v) of ROWS rows with awkward text, and slow(), in a fresh database."""
    dsn = url_for_psycopg(pg_url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id bigint PRIMARY KEY, v text)")
        conn.execute(
            "INSERT INTO events SELECT g, CASE WHEN g %% 97 = 0 THEN NULL "
            "ELSE 'value, \"quoted\"\n' || md5(g::text) END FROM generate_series(1, %s) g",
            (ROWS,),
        )
        conn.execute(SLOW)
    yield pg_url, dsn


@dataclass
class Killer:
    """Terminates the middle range's backend once, while it sleeps in slow() after some of
    its rows reached the partition's temporary file; and watches the output folder, noting
    any published name seen while a partition's COPY still runs."""

    dsn: str
    out: Path
    killed: list[int] = field(default_factory=list)
    bytes_at_kill: int = 0
    early: list[list[str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                deadline = time.monotonic() + DEADLINE_S
                while not self.stop.is_set() and time.monotonic() < deadline:
                    self._watch(conn)
                    time.sleep(0.02)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def _watch(self, conn: psycopg.Connection[Any]) -> None:
        names = sorted(p.name for p in self.out.iterdir()) if self.out.exists() else []
        copies = conn.execute(
            "SELECT pid, wait_event, query LIKE %s FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND query LIKE 'COPY%%_export_part%%' AND state = 'active'",
            (MIDDLE,),
        ).fetchall()
        published = [name for name in names if not name.startswith(".")]
        if copies and published:
            self.early.append(published)
        if self.killed:
            return
        written = sum(p.stat().st_size for p in self.out.glob(".events-200001.csv.*.tmp"))
        for pid, wait_event, middle in copies:
            if middle and wait_event == "PgSleep" and written > 0:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                self.killed.append(pid)
                self.bytes_at_kill = written


def attempts(flow_run_id: UUID | None) -> dict[str, int]:
    """Each write task's run count (retries included), from the Prefect API."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {run.name: run.run_count for run in runs if run.name.startswith("write-")}


def export_killing_the_middle_range(url: str, dsn: str, out: Path) -> tuple[Any, Killer]:
    """The split export, with the middle range's backend terminated once mid-read; its state
    and what the killer saw. The kill must have landed, and been retried alone."""
    killer = Killer(dsn, out)
    thread = threading.Thread(target=killer.run, daemon=True)
    thread.start()
    try:
        state = export(
            source={
                "url": url,
                "query": QUERY,
                "partition_by": "id",
                "bounds": [1, ROWS],
                "partitions": PARTITIONS,
                "chunk_rows": 200,
            },
            destination={"url": str(out / "{export}.{ext}"), "manifest": True},
            format="csv",
            name="events",
            return_state=True,
        )
    finally:
        killer.stop.set()
        thread.join(timeout=10)
    assert killer.error is None, killer.error
    assert state.is_completed(), state.message
    assert len(killer.killed) == 1 and killer.bytes_at_kill > 0, "the kill missed the read"
    tried = attempts(state.state_details.flow_run_id)
    assert tried == {
        "write-query-csv-part-1": 1,
        "write-query-csv-part-2": 2,
        "write-query-csv-part-3": 1,
        "write-query-csv-part-4": 1,  # id IS NULL: a query's column may hold NULLs (none here)
    }, tried
    assert killer.early == [], "a file was published while a range was still being read"
    return state, killer


def read_parts(result: ExportResult, out: Path) -> list[tuple[str, str | None]]:
    """(id, v) of every row of the parts, by DuckDB; the folder holds only the set."""
    files = [Path(path) for path in result.files]
    assert [p.name for p in files] == [f"events-000{n}.csv" for n in range(1, 4)]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [p.name for p in files] + ["events.manifest.json"]
    ), "a temporary file was left"
    rows: list[tuple[str, str | None]] = duckdb.sql(
        "SELECT id, v FROM read_csv($files, header = true, all_varchar = true) ORDER BY id",
        params={"files": [str(p) for p in files]},
    ).fetchall()
    return rows


def test_a_partition_whose_backend_is_killed_mid_read_is_retried_and_every_row_arrives_once(
    events: tuple[str, str], tmp_path: Path
) -> None:
    """Issue 17: the middle of three ranges loses its backend (pg_terminate_backend) while
    it streams; that partition alone runs again, from its own start. The parts hold every row
    of the table exactly once (read back with DuckDB, compared with a fresh psycopg read), and
    no file appears at a final path while any range still reads."""
    url, dsn = events
    out = tmp_path / "out"
    state, _ = export_killing_the_middle_range(url, dsn, out)
    result = state.result()
    exported = read_parts(result, out)
    with psycopg.connect(dsn) as conn:
        table = conn.execute("SELECT id::text, v FROM events ORDER BY id").fetchall()
    assert len(exported) == ROWS == result.rows
    assert exported == table


def test_the_retried_partition_reads_the_runs_snapshot(
    events: tuple[str, str], tmp_path: Path
) -> None:
    """Issue 17: the same kill while another connection updates, deletes and inserts rows in
    every range throughout: the retried range imports the run's snapshot again, so the parts
    together are still the table at one instant (no row from after the kill, none twice)."""
    url, dsn = events
    with psycopg.connect(dsn) as conn:
        state_before = dict(conn.execute("SELECT id, v FROM events").fetchall())
    writer = Writer(dsn, "events", state_before)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    try:
        while len(writer.changes) < 5 and thread.is_alive():
            time.sleep(0.01)  # the export starts while rows change
        state, _ = export_killing_the_middle_range(url, dsn, tmp_path / "out")
        killed_at = len(writer.changes)
        while len(writer.changes) < killed_at + 5 and thread.is_alive():
            time.sleep(0.01)
    finally:
        writer.stop.set()
        thread.join(timeout=30)
    assert writer.error is None, writer.error
    exported = read_parts(state.result(), tmp_path / "out")
    assert len({row_id for row_id, _ in exported}) == len(exported), "a row in two parts"
    number = writer.matching_state({int(row_id): v for row_id, v in exported})
    assert number is not None, "the parts are not the table at any one instant"
    assert 0 < number < len(writer.changes), "the export did not overlap the writes"
