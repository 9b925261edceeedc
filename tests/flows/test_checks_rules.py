"""`checks` without a server: the parameter's rules (refused before the run, naming the field),
the NULLs counted as parts are written (read back by pyarrow), the duplicate keys a SQLite
database counts, each check's verdict and message, and what the Failed alert says of it."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.alerts.errors import alert_error, state_error
from flows.checks import change_pct, check_checked_columns, failed_check, null_counts
from flows.core.columns import rendered_rows
from flows.core.config import ChecksConfig, FormatOptions, SourceConfig
from flows.core.errors import ERROR_CLASSES, CheckFailedError, ConfigurationError
from flows.core.targets import TargetContext
from flows.destinations.store import WrittenFile
from flows.request import DestinationConfig, ExportRequest
from flows.sink import PartSink
from flows.sources.check_counts import duplicate_keys, null_values
from flows.sources.plan import inspect_source

pytestmark = pytest.mark.unit

SOURCE = {"url": "sqlite:///demo/demo.sqlite", "table": "orders"}
DESTINATION = {"url": "out/{export}.{ext}"}


def refused(checks: dict[str, Any]) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        ExportRequest.of({"source": SOURCE, "destination": DESTINATION, "checks": checks})
    return caught.value


def test_every_check_is_optional() -> None:
    request = ExportRequest.of({"source": SOURCE, "destination": DESTINATION, "checks": {}})
    assert request.checks == ChecksConfig()
    assert ExportRequest.of({"source": SOURCE, "destination": DESTINATION}).checks is None


def test_min_rows_above_max_rows_is_refused_naming_the_field() -> None:
    error = refused({"min_rows": 10, "max_rows": 5})
    assert error.field == "checks.min_rows"
    assert str(error) == (
        "checks.min_rows: `10` is more than checks.max_rows `5`; no run could pass both"
    )


def test_a_negative_percentage_is_refused_naming_the_field() -> None:
    error = refused({"max_change_pct": -5})
    assert error.field == "checks.max_change_pct"
    assert str(error) == (
        "checks.max_change_pct: `-5` is not a percentage of zero or more; write e.g. 20 for 20%"
    )


def test_a_negative_row_count_is_refused_naming_the_field() -> None:
    assert refused({"max_rows": -1}).field == "checks.max_rows"


def test_an_unknown_check_is_refused_naming_it() -> None:
    assert refused({"uniq": ["id"]}).field == "checks.uniq"


def test_an_empty_column_name_is_refused_naming_its_place() -> None:
    error = refused({"unique": ["id", " "]})
    assert str(error).startswith("checks.unique[1]: an empty column name")
    assert error.field == "checks.unique[1]"


def test_a_check_on_a_column_not_exported_names_the_field_and_the_columns() -> None:
    checks = ChecksConfig(not_null=["id"], unique=["id", "emial"])
    with pytest.raises(ConfigurationError) as caught:
        check_checked_columns(checks, ["id", "email"])
    assert caught.value.field == "checks.unique[1]"
    assert str(caught.value) == (
        "checks.unique[1]: `emial` is not an exported column; name one of id, email"
    )
    check_checked_columns(ChecksConfig(not_null=["email"], unique=["id"]), ["id", "email"])
    check_checked_columns(None, [])


def test_nulls_are_counted_per_part_as_rows_are_written(tmp_path: Path) -> None:
    """Three parts of four rows, from batches that cross the parts' ends: each part's counts
    are the NULLs pyarrow reads back from that file."""
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("email", pa.string())])
    config = DestinationConfig(url=f"{tmp_path}/{{export}}.{{ext}}", max_file_rows=4)
    context = replace(
        TargetContext.sample(), export="o", ext="parquet", date=datetime(2026, 3, 7, tzinfo=UTC)
    )
    sink = PartSink.open(config, "parquet", schema, FormatOptions(), context)
    emails = [None, "a", None, "b", "c", None, None, "d", "e", "f", None]
    for start in range(0, len(emails), 3):
        chunk = emails[start : start + 3]
        ids = list(range(start, start + len(chunk)))
        sink.write(pa.record_batch([pa.array(ids, pa.int64()), pa.array(chunk)], schema=schema))
    written = sink.finish()
    assert [item.rows for item in written] == [4, 4, 3]
    for item in written:
        table = pq.read_table(item.temp_path)
        found = {name: table.column(name).null_count for name in table.column_names}
        assert dict(item.nulls) == {name: n for name, n in found.items() if n}
    assert null_counts(written) == {"email": 5}
    finished = WrittenFile("out/o.csv", "out/.o.csv.tmp", 2, 10, nulls=None)  # COPY's rows
    assert null_counts([*written, finished]) is None


@pytest.fixture
def shop(tmp_path: Path) -> str:
    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("create table orders (id integer, region text, sku text)")
        conn.executemany(
            "insert into orders values (?, ?, ?)",
            [
                (1, "eu", "a"),
                (1, "eu", "b"),
                (2, "us", "a"),
                (2, "us", "a"),
                (3, "us", "c"),
                (3, "us", "c"),
                (None, "eu", "d"),
                (None, "eu", "d"),
                (4, None, "e"),
            ],
        )
    conn.close()
    return f"sqlite:///{db}"


def test_the_database_counts_duplicate_keys_of_what_the_export_reads(shop: str) -> None:
    """Counted over the same columns and filter the readers run; NULL keys are not compared."""
    plan = inspect_source(SourceConfig(url=shop, table="orders"))
    assert duplicate_keys(plan, ["id"]) == 3  # 1, 2 and 3; the NULL ids are not compared
    assert duplicate_keys(plan, ["id", "sku"]) == 2  # (2, a) and (3, c)
    assert duplicate_keys(plan, ["region"]) == 2
    filtered = SourceConfig(
        url=shop,
        table="orders",
        columns=[{"name": "id", "as": "order_id"}, {"name": "sku"}],
        filter=[{"column": "region", "op": "=", "value": "us"}],
    )
    assert duplicate_keys(inspect_source(filtered), ["order_id"]) == 2
    assert null_values(inspect_source(filtered), ["order_id", "sku"]) == {"order_id": 0, "sku": 0}
    assert null_values(plan, ["id", "region", "sku"]) == {"id": 2, "region": 1, "sku": 0}
    query = SourceConfig(
        url=shop, query="select id from orders where sku <> :sku", params={"sku": "c"}
    )
    assert duplicate_keys(inspect_source(query), ["id"]) == 2


@pytest.mark.parametrize(
    ("checks", "rows", "nulls", "duplicates", "previous", "message"),
    [
        ({"min_rows": 10}, 9, (), None, None, "min_rows: 9 rows written, fewer than 10"),
        ({"max_rows": 10}, 11, (), None, None, "max_rows: 11 rows written, more than 10"),
        (
            {"max_change_pct": 20},
            79,
            (),
            None,
            100,
            "max_change_pct: 79 rows written against 100 by the last successful run, a change "
            "of 21.0%, more than 20%",
        ),
        ({"not_null": ["email"]}, 5, (("email", 3),), None, None, "not_null(email): 3 null values"),
        ({"not_null": ["email"]}, 5, (("email", 1),), None, None, "not_null(email): 1 null value"),
        ({"unique": ["order_id"]}, 5, (), 3, None, "unique(order_id): 3 duplicate keys"),
        ({"unique": ["a", "b"]}, 5, (), 1, None, "unique(a, b): 1 duplicate key"),
    ],
)
def test_each_failed_check_gives_its_numbers(
    checks: dict[str, Any],
    rows: int,
    nulls: tuple[tuple[str, int], ...],
    duplicates: int | None,
    previous: int | None,
    message: str,
) -> None:
    failed = failed_check(ChecksConfig(**checks), rows, dict(nulls), duplicates, previous)
    assert failed is not None
    assert str(failed) == f"{message}; nothing was published"
    assert failed.check == next(iter(checks))


@pytest.mark.parametrize(
    ("checks", "rows", "nulls", "duplicates", "previous"),
    [
        ({"min_rows": 10, "max_rows": 10}, 10, (), None, None),
        ({"max_change_pct": 20}, 80, (), None, 100),
        ({"max_change_pct": 20}, 120, (), None, 100),
        ({"max_change_pct": 0}, 7, (), None, None),  # no earlier run: not checked
        ({"max_change_pct": 0}, 7, (), None, 0),  # no percentage of 0 rows
        ({"not_null": ["email"]}, 5, (("other", 2),), None, None),
        ({"unique": ["order_id"]}, 5, (), 0, None),
    ],
)
def test_a_check_passes_when_it_should(
    checks: dict[str, Any],
    rows: int,
    nulls: tuple[tuple[str, int], ...],
    duplicates: int | None,
    previous: int | None,
) -> None:
    assert failed_check(ChecksConfig(**checks), rows, dict(nulls), duplicates, previous) is None


def test_the_change_is_a_percentage_of_the_last_run() -> None:
    assert (change_pct(150, 100), change_pct(50, 100), change_pct(5, 0)) == (50.0, 50.0, None)


def test_the_failed_alert_names_the_check_and_no_value() -> None:
    error = CheckFailedError(
        "unique(order_id): 3 duplicate keys; nothing was published", check="unique"
    )
    expected = (
        "CheckFailedError: checks.unique failed, nothing was published; "
        "the run's logs have the details"
    )
    assert alert_error(error) == expected
    assert state_error(f"Flow run encountered an exception: CheckFailedError: {error}") == (
        expected
    )
    assert ERROR_CLASSES["CheckFailedError"] is CheckFailedError


def test_finished_rows_leave_their_nulls_to_the_database(tmp_path: Path) -> None:
    """PostgreSQL's COPY hands the writer finished CSV rows: no column shows a NULL, so the
    part says its NULLs were not counted (and the flow asks the database)."""
    rows = rendered_rows(pa.array(["1,\n", "2,b\n"]), "csv", ["id", "email"])
    config = DestinationConfig(url=f"{tmp_path}/{{export}}.{{ext}}")
    context = replace(TargetContext.sample(), export="o", ext="csv")
    sink = PartSink.open(config, "csv", rows.schema, FormatOptions(), context)
    sink.write(rows)
    [written] = sink.finish()
    assert (written.rows, written.nulls) == (2, None)
    assert Path(written.temp_path).read_bytes() == b"id,email\n1,\n2,b\n"
