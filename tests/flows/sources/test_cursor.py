"""The stored cursor's rules on a local SQLite file (no server): `source.incremental` checked
before the run (the column, its kind, `initial`, `lookback`, a window or :since beside it),
and the range a run reads: above the stored mark, from `initial`, up to the largest cursor the
source holds, NULL cursors left out, pushed into the SQL of a table, a query and a split read.
The same on PostgreSQL and MariaDB, and across runs on a Prefect server, is
tests/flows/test_cursor_runs.py's."""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from flows.core.config import FormatOptions, SourceConfig
from flows.core.errors import ConfigurationError
from flows.request import ExportRequest
from flows.runs.result import ExportResult, summary_sentence
from flows.sources.cursor import CursorMark, cursor_bounds, new_mark
from flows.sources.plan import inspect_source, planned_partitions
from flows.sources.read import read_for_format

pytestmark = pytest.mark.unit


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "cursor.sqlite"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "CREATE TABLE events (id INTEGER PRIMARY KEY, seq INTEGER, note TEXT, "
            "updated_at DATETIME, flag BOOLEAN, payload BLOB)"
        )
        conn.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, 1, x'00')",
            [
                (1, 10, "a", "2026-03-01 10:00:00.000000"),
                (2, 20, "b", "2026-03-01 11:00:00.000000"),
                (3, 30, "c", "2026-03-01 12:00:00.000000"),
                (4, None, "d", None),
            ],
        )
    return f"sqlite:///{path}"


def source(url: str, **incremental: Any) -> SourceConfig:
    return SourceConfig(url=url, table="events", incremental=incremental)


def ids(plan: Any) -> list[int]:
    batches = read_for_format(plan, "csv", FormatOptions())
    return [value for batch in batches for value in batch.column("id").to_pylist()]


def test_the_first_run_reads_every_row_with_a_cursor_and_counts_the_nulls(db: str) -> None:
    plan = inspect_source(source(db, cursor="seq"))
    assert ids(plan) == [1, 2, 3]
    assert plan.cursor is not None and plan.cursor.nulls == 1
    assert cursor_bounds(plan.cursor) == {"column": "seq", "from": None, "to": "30"}
    assert new_mark(plan.cursor) == CursorMark("seq", "30", "int")


def test_initial_is_included_and_a_stored_mark_is_not(db: str) -> None:
    first = inspect_source(source(db, cursor="seq", initial=20))
    assert ids(first) == [2, 3]
    assert cursor_bounds(first.cursor) == {"column": "seq", "from": "20", "to": "30"}
    later = inspect_source(source(db, cursor="seq", initial=5), CursorMark("seq", "20", "int"))
    assert ids(later) == [3]
    assert cursor_bounds(later.cursor) == {"column": "seq", "from": "20", "to": "30"}


def test_nothing_above_the_mark_reads_nothing_and_keeps_the_mark(db: str) -> None:
    plan = inspect_source(source(db, cursor="seq"), CursorMark("seq", "30", "int"))
    assert ids(plan) == []
    assert new_mark(plan.cursor) == CursorMark("seq", "30", "int")
    ahead = inspect_source(source(db, cursor="seq", initial=31))
    assert ids(ahead) == []
    assert new_mark(ahead.cursor) is None  # the next run starts at `initial` again


def test_a_timestamp_cursor_with_lookback_rereads_the_margin(db: str) -> None:
    mark = CursorMark("updated_at", "2026-03-01T11:30:00", "timestamp")
    plan = inspect_source(source(db, cursor="updated_at"), mark)
    assert ids(plan) == [3]
    assert new_mark(plan.cursor) == CursorMark("updated_at", "2026-03-01T12:00:00", "timestamp")
    back = inspect_source(source(db, cursor="updated_at", lookback="1h"), mark)
    assert ids(back) == [2, 3]
    assert back.cursor is not None and back.cursor.low == dt.datetime(2026, 3, 1, 10, 30)


def test_a_query_and_a_split_read_get_the_same_range(db: str) -> None:
    query = SourceConfig(url=db, query="select id, seq from events", incremental={"cursor": "seq"})
    plan = inspect_source(query, CursorMark("seq", "10", "int"))
    assert ids(plan) == [2, 3]
    split = SourceConfig(
        url=db, table="events", partitions=2, partition_by="id", incremental={"cursor": "seq"}
    )
    plan = inspect_source(split, CursorMark("seq", "10", "int"))
    with planned_partitions(plan, split) as planned:
        parts = [ids(plan.for_partition(p, planned.snapshot)) for p in planned.partitions]
    assert sorted(i for part in parts for i in part) == [2, 3]


@pytest.mark.parametrize(
    ("incremental", "field", "says"),
    [
        ({"cursor": "nope"}, "source.incremental.cursor", "no column `nope`"),
        ({"cursor": "payload"}, "source.incremental.cursor", "bytes column"),
        ({"cursor": "flag"}, "source.incremental.cursor", "boolean column"),
        ({"cursor": "seq", "initial": "soon"}, "source.incremental.initial", "'soon'"),
        ({"cursor": "updated_at", "initial": "yesterday"}, "source.incremental.initial", ""),
    ],
)
def test_a_bad_cursor_fails_before_any_row_naming_the_field(
    db: str, incremental: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        inspect_source(source(db, **incremental))
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")
    assert says in str(raised.value)


def test_lookback_on_a_number_is_refused(db: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^source\.incremental\.lookback: "):
        inspect_source(source(db, cursor="seq", lookback="15m"), CursorMark("seq", "1", "int"))


def test_a_mark_of_another_column_is_refused(db: str) -> None:
    with pytest.raises(ConfigurationError, match="exports cursor reset"):
        inspect_source(source(db, cursor="seq"), CursorMark("id", "1", "int"))


@pytest.mark.parametrize(
    ("lookback", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("PT15M", 900), (30, 30)],
)
def test_lookback_takes_iso_8601_and_short_durations(lookback: Any, seconds: int) -> None:
    config = source("sqlite:///x.sqlite", cursor="ts", lookback=lookback)
    assert config.incremental is not None and config.incremental.lookback is not None
    assert config.incremental.lookback.total_seconds() == seconds


@pytest.mark.parametrize(
    ("lock_timeout", "seconds"), [(None, 3600), ("1s", 1), (0, 0), ("PT2H", 7200), ("7d", 604800)]
)
def test_lock_timeout_is_an_hour_unless_given(lock_timeout: Any, seconds: int) -> None:
    given = {} if lock_timeout is None else {"lock_timeout": lock_timeout}
    config = source("sqlite:///x.sqlite", cursor="ts", **given)
    assert config.incremental is not None
    assert config.incremental.lock_timeout.total_seconds() == seconds


@pytest.mark.parametrize(
    ("incremental", "says"),
    [
        ({"cursor": "a b"}, "source.incremental.cursor: `a b` is not a column name"),
        ({"cursor": "ts", "initial": [1]}, "source.incremental.initial: `[1]`"),
        ({"cursor": "ts", "lookback": "-1h"}, "lookback"),
        ({"cursor": "ts", "lookback": "-PT1H"}, "source.incremental.lookback"),
        (
            {"cursor": "ts", "lock_timeout": "-PT1S"},
            "source.incremental.lock_timeout: `-1` seconds is not a wait; give 0 (do not wait) "
            "or a positive duration up to 7 days, e.g. PT1H or 1h",
        ),
        ({"cursor": "ts", "lock_timeout": "8d"}, "source.incremental.lock_timeout: `691200`"),
    ],
)
def test_the_config_refuses_what_is_no_cursor(incremental: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError) as raised:
        source("sqlite:///x.sqlite", **incremental)
    assert says in str(raised.value)


def test_a_window_or_since_beside_a_cursor_is_refused_before_the_run() -> None:
    destination = {"url": "out/{export}.{ext}"}
    incremental = {"cursor": "ts"}
    with pytest.raises(ConfigurationError, match=r"^window: source\.incremental"):
        ExportRequest.of(
            {
                "source": {
                    "url": "sqlite:///x.sqlite",
                    "query": "select * from t where ts >= :since",
                    "incremental": incremental,
                },
                "destination": destination,
                "window": {"period": "P1D"},
            }
        )
    with pytest.raises(ConfigurationError, match=r"^source\.query: .*`:since`"):
        ExportRequest.of(
            {
                "source": {
                    "url": "sqlite:///x.sqlite",
                    "query": "select * from t where ts >= :since",
                    "incremental": incremental,
                },
                "destination": destination,
            }
        )


def test_the_summary_sentence_says_the_range_delivered() -> None:
    moment = dt.datetime(2026, 3, 1, 6, 0, tzinfo=dt.UTC)
    result = ExportResult(
        export_request_id="r",
        name="orders",
        format="csv",
        rows=3,
        bytes=20,
        files=["/out/orders.csv"],
        started=moment,
        finished=moment + dt.timedelta(seconds=1),
        cursor={"column": "seq", "from": "10", "to": "30"},
    )
    assert summary_sentence(result, "sqlite:///shop.db", "Run Now", "ana") == (
        "Export `orders`: **3 rows**, 20 bytes of csv in 1 file(s), cursor `seq` above `10` "
        "up to `30`, from `sqlite:///shop.db`; Run Now by `ana`, 1.0 s."
    )
    first = result.model_copy(update={"cursor": {"column": "seq", "from": None, "to": "30"}})
    assert "in 1 file(s), cursor `seq` up to `30`, from" in summary_sentence(
        first, "sqlite:///shop.db", "Run Now", "ana"
    )
