"""Split reads (`source.partitions`): the ranges, and exports whose parts together are exactly
the source, at one instant on PostgreSQL even while another connection inserts, updates and
deletes rows during the export.

Every file is read back with an independent reader (csv, json, lxml, pyarrow) and compared by
key with the database: the rows a writer thread committed, transaction by transaction, are
replayed until one state equals the union of the parts.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import random
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError

from deployments.audit import AuditQuery, read_audit
from flows.core.config import RunnerConfig, SourceConfig
from flows.core.errors import ConfigurationError, TransientSourceError
from flows.core.formats import EXPORT_FORMATS, ExportFormat
from flows.export import export
from flows.request import DestinationConfig, check_runner
from flows.runs.result import ExportResult
from flows.sources.partitions import (
    Partition,
    block_ranges,
    column_ranges,
    partition_sql,
)
from tests.flows.conftest import url_for_psycopg
from tests.flows.destinations.stores import s3_store
from tests.flows.sources.split_reads import by_id, check_manifest, read_nullable, read_rows

ROWS = 60_000


# -- the ranges (unit) ----------------------------------------------------------------------


@pytest.mark.unit
class TestRanges:
    def test_block_ranges_cover_the_table_and_the_last_is_open(self) -> None:
        ranges = block_ranges(1000, 4)
        assert [(p.number, p.low, p.high) for p in ranges] == [
            (1, None, 250),
            (2, 250, 500),
            (3, 500, 750),
            (4, 750, None),
        ]
        assert [p.describe() for p in ranges][1] == "blocks [250, 500)"
        assert block_ranges(2, 8) == block_ranges(2, 2)  # no more ranges than pages
        assert len(block_ranges(0, 4)) == 1  # an empty table is one range

    def test_integer_ranges_are_equal_spans_open_at_both_ends(self) -> None:
        ranges = column_ranges("id", "int", 1, 100, 4, with_nulls=True)
        assert [(p.low, p.high, p.nulls) for p in ranges] == [
            (None, 26, False),
            (26, 51, False),
            (51, 76, False),
            (76, None, False),
            (None, None, True),
        ]
        assert ranges[-1].describe() == "id IS NULL"
        narrow = column_ranges("id", "int", 5, 6, 4, with_nulls=False)
        assert [(p.low, p.high) for p in narrow] == [(None, 6), (6, None)]

    def test_dates_timestamps_and_decimals(self) -> None:
        days = column_ranges(
            "d", "date", dt.date(2026, 1, 1), dt.date(2026, 1, 8), 2, with_nulls=False
        )
        assert [(p.low, p.high) for p in days] == [
            (None, dt.date(2026, 1, 5)),
            (dt.date(2026, 1, 5), None),
        ]
        start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        stamps = column_ranges(
            "t", "timestamptz", start, start + dt.timedelta(hours=4), 4, with_nulls=False
        )
        assert [p.high for p in stamps][:3] == [start + dt.timedelta(hours=h) for h in (1, 2, 3)]
        amounts = column_ranges(
            "a", "decimal", decimal.Decimal("0"), decimal.Decimal("10"), 4, with_nulls=False
        )
        assert [p.high for p in amounts][:3] == [
            decimal.Decimal("2.5"),
            decimal.Decimal("5"),
            decimal.Decimal("7.5"),
        ]

    def test_a_text_column_cannot_be_split(self) -> None:
        with pytest.raises(ConfigurationError, match=r"column `v` is str, which cannot be cut"):
            column_ranges("v", "str", "a", "z", 4, with_nulls=False)

    def test_a_query_is_wrapped_never_edited(self) -> None:
        query = "SELECT * FROM orders WHERE status = :status"
        sql = partition_sql(query, Partition(2, "id", 10, 20), lambda name: f'"{name}"')
        assert sql == (
            f"SELECT * FROM ({query}) AS _export_part "
            'WHERE "id" >= :_export_part_low AND "id" < :_export_part_high'
        )
        assert Partition(2, "id", 10, 20).bind_values() == {
            "_export_part_low": 10,
            "_export_part_high": 20,
        }
        assert partition_sql(query, Partition(5, "id", nulls=True), str).endswith(
            "WHERE id IS NULL"
        )


@pytest.mark.unit
class TestBadInput:
    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"table": "t", "partitions": 65}, "less than or equal to 64"),
            ({"table": "t", "partitions": 0}, "greater than or equal to 1"),
            (
                {"query": "SELECT 1 AS id", "partitions": 2},
                "source.partitions: 2 partitions of a query need source.partition_by",
            ),
            ({"table": "t", "bounds": [1, 9]}, "source.bounds: bounds are values of"),
            ({"table": "t", "partition_by": "id; drop", "partitions": 2}, "is not a column name"),
        ],
    )
    def test_refused_with_the_field(self, fields: dict[str, Any], message: str) -> None:
        with pytest.raises(ValidationError, match=message):
            SourceConfig(url="postgresql://reader@db/shop", **fields)

    def test_a_table_outside_postgresql_needs_a_key(self) -> None:
        with pytest.raises(ValidationError, match="only a PostgreSQL table is split without a key"):
            SourceConfig(url="sqlite:///shop.sqlite", table="orders", partitions=4)

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("out/{export}.{ext}", "is a relative local path"),
            ("https://hooks.example.com/in", "an HTTP destination is POSTed from the flow"),
        ],
    )
    def test_what_a_dask_runner_cannot_deliver_to(self, url: str, message: str) -> None:
        with pytest.raises(ConfigurationError, match=message):
            check_runner(RunnerConfig(dask="local"), DestinationConfig(url=url))
        check_runner(
            RunnerConfig(dask="tcp://scheduler:8786"),
            DestinationConfig(url="s3://b/{export}.{ext}"),
        )

    def test_a_scheduler_address_is_checked(self) -> None:
        with pytest.raises(ValidationError, match="is not a scheduler address"):
            RunnerConfig(dask="scheduler:8786")


# -- reading the parts back, independently ----------------------------------------------------


# -- PostgreSQL: one snapshot while another connection writes ---------------------------------


@dataclass
class Writer:
    """Inserts, updates and deletes rows in its own transactions while an export reads, and
    keeps what each committed transaction changed (from the database's RETURNING)."""

    dsn: str
    table: str
    state: dict[int, str | None]
    changes: list[dict[int, str | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def run(self) -> None:
        live = dict(self.state)
        try:
            with psycopg.connect(self.dsn) as conn:
                next_id = max(self.state) + 1
                number = 0
                while not self.stop.is_set():
                    number += 1
                    ids = random.sample(sorted(live), 20)
                    with conn.transaction():
                        changed: dict[int, str | None] = {}
                        for row_id, v in conn.execute(
                            f"UPDATE {self.table} SET v = %s WHERE id = ANY(%s) RETURNING id, v",
                            (f"updated-{number}", ids[:10]),
                        ):
                            changed[row_id] = v
                        for (row_id,) in conn.execute(
                            f"DELETE FROM {self.table} WHERE id = ANY(%s) RETURNING id", (ids[10:],)
                        ):
                            changed[row_id] = DELETED
                        new = list(range(next_id, next_id + 10))
                        next_id += 10
                        for row_id, v in conn.execute(
                            f"INSERT INTO {self.table} SELECT g, 'new-' || g "
                            "FROM unnest(%s::bigint[]) g RETURNING id, v",
                            (new,),
                        ):
                            changed[row_id] = v
                    apply(live, changed)
                    self.changes.append(changed)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def matching_state(self, exported: dict[int, str | None]) -> int | None:
        """The number of committed transactions after which the table was exactly `exported`."""
        current = dict(self.state)
        if current == exported:
            return 0
        for number, changed in enumerate(self.changes, start=1):
            apply(current, changed)
            if current == exported:
                return number
        return None


DELETED = "\0deleted"


def apply(state: dict[int, str | None], changed: dict[int, str | None]) -> None:
    for row_id, v in changed.items():
        if v == DELETED:
            state.pop(row_id, None)
        else:
            state[row_id] = v


@pytest.fixture
def events(pg_url: str) -> Iterator[tuple[str, str, dict[int, str | None]]]:
    """A table of ROWS rows (id, v), some v NULL, in a fresh database."""
    dsn = url_for_psycopg(pg_url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id bigint PRIMARY KEY, v text)")
        conn.execute(
            "INSERT INTO events SELECT g, CASE WHEN g %% 97 = 0 THEN NULL "
            "ELSE 'value, \"quoted\" ' || g END FROM generate_series(1, %s) g",
            (ROWS,),
        )
        state = dict(conn.execute("SELECT id, v FROM events").fetchall())
    yield pg_url, dsn, state


def export_while_writing(
    source: dict[str, Any], fmt: ExportFormat, folder: Path, dsn: str, state: dict[int, str | None]
) -> tuple[ExportResult, Writer]:
    writer = Writer(dsn, "events", state)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    try:
        while len(writer.changes) < 5 and thread.is_alive():
            time.sleep(0.01)  # the export starts while rows change
        result = export(
            source=source,
            destination={"url": str(folder / "{export}.{ext}"), "manifest": True},
            format=fmt,
            name="events",
        )
        before = len(writer.changes)
        while len(writer.changes) < before + 5 and thread.is_alive():
            time.sleep(0.01)  # and rows still change after it ended
    finally:
        writer.stop.set()
        thread.join(timeout=30)
    assert writer.error is None, writer.error
    return result, writer


def assert_one_instant(result: ExportResult, fmt: ExportFormat, writer: Writer, parts: int) -> None:
    files = [Path(path) for path in result.files]
    assert len(files) == parts
    assert sorted(p.name for p in files[0].parent.iterdir()) == sorted(
        [p.name for p in files] + ["events.manifest.json"]
    ), "temporary files left, or files not named in order"
    rows = [read_rows(path, fmt) for path in files]
    exported = {row_id: v for part in rows for row_id, v in part}
    assert sum(map(len, rows)) == len(exported), "a row in two parts"
    manifest = check_manifest(result, fmt, rows)
    assert manifest["snapshot"]
    number = writer.matching_state(exported)
    assert number is not None, "the parts are not the table at any one instant"
    assert 0 < number < len(writer.changes), "the export did not overlap the writes"


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.postgres
class TestPostgresSnapshot:
    @pytest.mark.parametrize("fmt", EXPORT_FORMATS)
    def test_a_table_in_four_block_ranges(
        self, events: tuple[str, str, dict[int, str | None]], tmp_path: Path, fmt: ExportFormat
    ) -> None:
        url, dsn, state = events
        source = {"url": url, "table": "events", "partitions": 4, "chunk_rows": 5000}
        result, writer = export_while_writing(source, fmt, tmp_path, dsn, state)
        assert_one_instant(result, fmt, writer, 4)
        ids = [read_rows(Path(path), fmt) for path in result.files]
        assert all(part for part in ids), "every block range holds rows"

    @pytest.mark.parametrize("fmt", EXPORT_FORMATS)
    def test_a_query_split_by_a_column(
        self, events: tuple[str, str, dict[int, str | None]], tmp_path: Path, fmt: ExportFormat
    ) -> None:
        url, dsn, state = events
        source = {
            "url": url,
            "query": "SELECT id, v FROM events WHERE id > :floor",
            "params": {"floor": 0},
            "partition_by": "id",
            "partitions": 3,
        }
        result, writer = export_while_writing(source, fmt, tmp_path, dsn, state)
        assert_one_instant(result, fmt, writer, 3)
        first, second, third = (
            [row_id for row_id, _ in read_rows(Path(path), fmt)] for path in result.files
        )
        assert max(first) < min(second) and max(second) < min(third), "parts in range order"


# -- a Dask cluster of worker processes -----------------------------------------------------------


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.postgres
def test_a_dask_cluster_writes_the_parts_the_thread_pool_writes(
    events: tuple[str, str, dict[int, str | None]], tmp_path: Path, dask_cluster: str
) -> None:
    """The partitions run in the cluster's worker processes (their host:pid in the manifest),
    and the parts are the ones the thread pool of the flow's process writes, byte for byte."""
    url, _, _ = events
    source = {"url": url, "table": "events", "partitions": 4}
    results = {
        engine: export(
            source=source,
            destination={"url": str(tmp_path / engine / "{export}.{ext}"), "manifest": True},
            format="csv",
            name="events",
            runner=runner,
        )
        for engine, runner in (("threads", None), ("dask", {"dask": dask_cluster}))
    }
    parts = {
        engine: [Path(path).read_bytes() for path in result.files]
        for engine, result in results.items()
    }
    assert len(parts["dask"]) == 4 and parts["dask"] == parts["threads"]
    writers = {
        engine: {
            item["writer"] for item in json.loads(Path(str(result.manifest)).read_text())["files"]
        }
        for engine, result in results.items()
    }
    assert writers["threads"] == {f"{socket.gethostname()}:{os.getpid()}"}
    assert len(writers["dask"]) >= 2 and not writers["dask"] & writers["threads"], writers


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.postgres
def test_a_dask_worker_killed_mid_partition(
    events: tuple[str, str, dict[int, str | None]], tmp_path: Path
) -> None:
    """SIGKILL of the worker process writing a partition: Dask runs the partition again on a
    worker that lives (its nanny restarts the dead one), which removes the killed attempt's
    temporary file, and the set is complete; had it failed, nothing would be published."""
    from distributed import Client, LocalCluster

    url, _, _ = events
    out = tmp_path / "out"
    killed: list[int] = []
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        pids = client.run(os.getpid)

        def kill_a_busy_worker() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                busy = [worker for worker, keys in client.processing().items() if keys]
                if busy:
                    time.sleep(1.0)  # mid-partition: rows have reached its temporary file
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.append(pids[busy[0]])
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
        killer.start()
        result = export(
            source={
                "url": url,
                "query": "SELECT id, v, pg_sleep(0.0003) AS nap FROM events WHERE id <= 20000",
                "partition_by": "id",
                "bounds": [1, 20000],
                "partitions": 2,
                "chunk_rows": 500,
            },
            destination={"url": str(out / "{export}.{ext}"), "manifest": True},
            format="csv",
            name="events",
            runner={"dask": cluster.scheduler_address},
        )
        killer.join(timeout=10)
    assert killed, "no worker was busy with a partition"
    parts = [read_rows(Path(path), "csv") for path in result.files]
    assert sorted(row_id for part in parts for row_id, _ in part) == list(range(1, 20001))
    manifest = check_manifest(result, "csv", parts)
    assert str(killed[0]) not in {item["writer"].rpartition(":")[2] for item in manifest["files"]}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [Path(path).name for path in result.files] + ["events.manifest.json"]
    ), "a temporary file of the killed attempt is left"


# -- SQLite: split by a column, NULLs on their own ----------------------------------------------


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_sqlite_query_split_by_a_column_with_nulls(tmp_path: Path, fmt: ExportFormat) -> None:
    database = tmp_path / "shop.sqlite"
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute("CREATE TABLE orders (id INTEGER, v TEXT)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?)",
            [(None if i % 50 == 0 else i, f"order {i}") for i in range(1, 2001)],
        )
    expected = sorted(
        [(None if i % 50 == 0 else i, f"order {i}") for i in range(1, 2001)], key=by_id
    )
    result = export(
        source={
            "url": f"sqlite:///{database}",
            "query": "SELECT id, v FROM orders",
            "partition_by": "id",
            "partitions": 4,
        },
        destination={"url": str(tmp_path / "out" / "{export}.{ext}"), "manifest": True},
        format=fmt,
        name="orders",
    )
    parts = [read_nullable(Path(path), fmt) for path in result.files]
    assert len(parts) == 5 and all(row_id is None for row_id, _ in parts[-1])
    got = sorted([row for part in parts for row in part], key=by_id)
    assert got == expected
    check_manifest(result, fmt, parts)
    [record] = [
        r
        for r in read_audit(AuditQuery(limit=20))
        if r.export_request_id == result.export_request_id
    ]
    assert record.manifest == result.manifest and record.rows == 2000


# -- a partition that keeps failing: nothing is published ----------------------------------------


@pytest.mark.usefixtures("prefect_api", "no_retry_waits")
@pytest.mark.postgres
@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_partition_that_keeps_losing_its_connection_publishes_nothing(
    events: tuple[str, str, dict[int, str | None]],
    tmp_path: Path,
    where: str,
    request: pytest.FixtureRequest,
) -> None:
    """The second range reads slowly (pg_sleep per row) and its backend is terminated mid-read,
    on every attempt; the first range completes. The run fails naming the partition, after its
    retries, and neither its parts nor the first range's are left anywhere: no object, no
    temporary object, no open multipart upload."""
    url, dsn, _ = events
    if where == "s3":
        bucket = s3_store(request.getfixturevalue("s3"))
        destination = {
            "url": bucket.url("exports/{export}.{ext}"),
            "block": bucket.save_block("partitions-s3"),
            "manifest": True,
        }
        left_over = bucket.names
    else:
        out = tmp_path / "out"
        destination = {"url": str(out / "{export}.{ext}"), "manifest": True}

        def left_over() -> list[str]:
            return sorted(p.name for p in out.iterdir()) if out.exists() else []

    stop = threading.Event()
    killed: list[int] = []

    def kill_the_second_range() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                for (pid,) in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE query LIKE 'COPY%pg_sleep%' "
                    "AND query LIKE '%_export_part WHERE id >= %'"
                ):
                    time.sleep(0.3)  # mid-read: some rows have reached the part
                    conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    killed.append(pid)
                time.sleep(0.05)

    killer = threading.Thread(target=kill_the_second_range, daemon=True)
    killer.start()
    try:
        with pytest.raises(TransientSourceError) as caught:
            export(
                source={
                    "url": url,
                    "query": "SELECT id, v, pg_sleep(CASE WHEN id > :slow_from THEN 0.002 "
                    "ELSE 0 END) AS nap FROM events",
                    "params": {"slow_from": ROWS // 2},
                    "partition_by": "id",
                    "bounds": [1, ROWS],  # no min/max scan of the slow query
                    "partitions": 2,
                    "chunk_rows": 100,
                },
                destination=destination,
                format="csv",
                name="events",
            )
    finally:
        stop.set()
        killer.join(timeout=10)
    assert str(caught.value).startswith("partition 2 of 3 (id [30001, ∞)): source"), caught.value
    assert len(killed) == 3, "every attempt of the partition was cut (two retries)"
    assert left_over() == []
