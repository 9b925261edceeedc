"""A stored cursor on a split PostgreSQL read takes its `high` in the snapshot the partitions
share: rows committed after the source was inspected but before the snapshot are read, and
the mark is what that snapshot holds (a real PostgreSQL server; no Prefect API)."""

from __future__ import annotations

import psycopg
import pytest

from flows.core.config import FormatOptions, SourceConfig
from flows.sources.cursor import CursorMark, cursor_bounds
from flows.sources.plan import inspect_source, planned_partitions
from flows.sources.read import read_for_format
from tests.flows.conftest import url_for_psycopg

pytestmark = pytest.mark.postgres


def test_a_split_read_takes_high_in_its_snapshot(pg_url: str) -> None:
    with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, seq int)")
        conn.execute("INSERT INTO items SELECT g, g FROM generate_series(1, 100) g")
    source = SourceConfig(url=pg_url, table="items", partitions=3, incremental={"cursor": "seq"})
    plan = inspect_source(source, CursorMark("seq", "40", "int"))
    assert plan.cursor is not None and plan.cursor.high == 100
    with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
        conn.execute("INSERT INTO items SELECT g, g FROM generate_series(101, 120) g")
        conn.execute("INSERT INTO items VALUES (0, NULL)")
    with planned_partitions(plan, source) as planned:
        read = planned.plan
        with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
            conn.execute("INSERT INTO items SELECT g, g FROM generate_series(121, 130) g")
        ids = [
            key
            for partition in planned.partitions
            for batch in read_for_format(
                read.for_partition(partition, planned.snapshot), "parquet", FormatOptions()
            )
            for key in batch.column("id").to_pylist()
        ]
    assert sorted(ids) == list(range(41, 121))  # the snapshot's rows above the mark
    assert cursor_bounds(read.cursor) == {"column": "seq", "from": "40", "to": "120"}
    assert read.cursor is not None and read.cursor.nulls == 1
