"""The Hive folder rules (flows/core/hive.py): what folder a partition value is written to,
and that DuckDB, reading those folders with `hive_partitioning`, gets every value back."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from flows.core.hive import (
    DEFAULT_PARTITION,
    FolderNameError,
    Granularity,
    bucket_text,
    escape,
    folder,
    segment,
    unescape,
)

pytestmark = pytest.mark.unit

# Spark's (= Hive's FileUtils) escape set: ASCII controls, `"#%'*/:=?\` DEL `{[]^`.
SPARK_SET = "\x01\x1f\"#%'*/:=?\\\x7f{[]^"


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain-Text_1.0", "plain-Text_1.0"),
        ("a/b", "a%2Fb"),
        ("k=v", "k%3Dv"),
        ("50%", "50%25"),
        ("a b", "a%20b"),
        ("1+1", "1%2B1"),
        ("12:30", "12%3A30"),
        ("~", "%7E"),
        ("é", "é"),
        ("日本", "日本"),
        ("", ""),
        (SPARK_SET, "%01%1F%22%23%25%27%2A%2F%3A%3D%3F%5C%7F%7B%5B%5D%5E"),
    ],
)
def test_escape_percent_encodes_ascii_outside_the_safe_set_and_keeps_utf8(
    text: str, escaped: str
) -> None:
    assert escape(text) == escaped
    assert unescape(escaped) == text


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("eu/west", "region=eu%2Fwest"),
        ("São Paulo", "region=São%20Paulo"),
        (None, f"region={DEFAULT_PARTITION}"),
        ("", f"region={DEFAULT_PARTITION}"),
        (DEFAULT_PARTITION, "region=%5F_HIVE_DEFAULT_PARTITION__"),
    ],
)
def test_a_segment_is_key_equals_the_escaped_value_and_null_is_the_default_partition(
    value: str | None, name: str
) -> None:
    assert segment("region", value) == name


def test_a_folder_joins_the_segments_in_the_keys_order_and_escapes_keys_too() -> None:
    assert folder([("year", "2026"), ("a b", "x=y"), ("city", None)]) == (
        f"year=2026/a%20b=x%3Dy/city={DEFAULT_PARTITION}"
    )


def test_a_segment_over_255_bytes_names_the_key_and_the_values_start() -> None:
    value = "é" * 130  # 260 bytes of UTF-8
    with pytest.raises(FolderNameError) as caught:
        segment("note", value)
    assert isinstance(caught.value, ValueError)
    assert caught.value.key == "note"
    assert str(caught.value) == (
        f"partition key `note`: the folder for the value `{'é' * 40}…` is 265 bytes of UTF-8; "
        "a file name holds at most 255; partition by a coarser granularity (year, month, day, "
        "hour) or by another column"
    )
    assert len(segment("note", "é" * 125).encode()) == 255


# Values a folder name could garble: separators, escapes, spaces, non-ASCII, NULL, NULL's own
# folder name as a value, and text DuckDB would otherwise read as a number or a date.
TRICKY = [
    *("a/b", "k=v", "50%", "a b", "1+1", "%2F", "é", "日本", "~x", "2026", "2026-03-01"),
    *(DEFAULT_PARTITION, None),
]


def _read_back(root: Path, pattern: str, reader: str) -> list[tuple[str, str | None]]:
    query = (
        f"SELECT tag, v FROM {reader}('{root}/{pattern}', hive_partitioning = true, "
        "hive_types = {'v': VARCHAR}) ORDER BY tag"
    )
    return duckdb.connect().sql(query).fetchall()


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_duckdb_reads_every_value_back_from_the_folders(tmp_path: Path, kind: str) -> None:
    for index, value in enumerate(TRICKY):
        where = tmp_path / folder([("v", value)])
        where.mkdir(parents=True)
        rows = pa.table({"tag": [f"{index:02d}"]})
        if kind == "parquet":
            pq.write_table(rows, where / "part-0001.parquet")
        else:
            pacsv.write_csv(rows, where / "part-0001.csv")
    reader = "read_parquet" if kind == "parquet" else "read_csv"
    read = _read_back(tmp_path, f"**/*.{kind}", reader)
    assert read == [(f"{index:02d}", value) for index, value in enumerate(TRICKY)]
    assert len(list(tmp_path.iterdir())) == len(TRICKY)  # a `/` in a value made no subfolder


def test_duckdb_reads_an_empty_string_as_null_as_spark_and_hive_write_it(tmp_path: Path) -> None:
    for tag, value in (("0", ""), ("1", None), ("2", "x")):
        where = tmp_path / folder([("v", value)])
        where.mkdir(exist_ok=True)
        pq.write_table(pa.table({"tag": [tag]}), where / f"part-{tag}.parquet")
    assert _read_back(tmp_path, "**/*.parquet", "read_parquet") == [
        ("0", None),
        ("1", None),
        ("2", "x"),
    ]


def test_duckdb_keeps_an_escaped_key_as_written(tmp_path: Path) -> None:
    """DuckDB unescapes values, not keys (Spark unescapes both): a key outside the safe set
    comes back to DuckDB users escaped."""
    where = tmp_path / folder([("a b", "x")])
    where.mkdir()
    pq.write_table(pa.table({"tag": ["0"]}), where / "part-0001.parquet")
    read = duckdb.connect().sql(
        f"SELECT * FROM read_parquet('{tmp_path}/**/*.parquet', hive_partitioning = true)"
    )
    assert read.columns == ["tag", "a%20b"]
    assert read.fetchall() == [("0", "x")]


BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("value", "granularity", "zone", "text"),
    [
        (date(2026, 3, 1), "year", None, "2026"),
        (date(2026, 3, 1), "month", None, "2026-03"),
        (date(2026, 3, 1), "day", None, "2026-03-01"),
        # naive: as written, whatever the zone
        (datetime(2026, 3, 1, 5, 59, 59), "hour", "Europe/Berlin", "2026-03-01 05:00:00"),
        (datetime(2026, 12, 31, 23, 30), "year", "Asia/Tokyo", "2026"),
        # aware, no zone: UTC
        (datetime(2026, 3, 1, 5, 30, tzinfo=BERLIN), "hour", None, "2026-03-01 04:00:00"),
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "year", "Asia/Tokyo", "2027"),
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "month", "Asia/Tokyo", "2027-01"),
        (datetime(2026, 3, 1, 4, 30, tzinfo=UTC), "day", "America/New_York", "2026-02-28"),
        # Europe/Berlin springs forward on 2026-03-29 (01:00 UTC: 02:00 CET -> 03:00 CEST)
        (datetime(2026, 3, 29, 0, 59, tzinfo=UTC), "hour", "Europe/Berlin", "2026-03-29 01:00:00"),
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "hour", "Europe/Berlin", "2026-03-29 03:00:00"),
        # ... and falls back on 2026-10-25 (01:00 UTC: 03:00 CEST -> 02:00 CET)
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "hour", "Europe/Berlin", "2026-10-25 02:00:00"),
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "hour", "Europe/Berlin", "2026-10-25 02:00:00"),
        (datetime(2026, 10, 25, 22, 59, tzinfo=UTC), "day", "Europe/Berlin", "2026-10-25"),
        (datetime(2026, 10, 25, 23, 0, tzinfo=UTC), "day", "Europe/Berlin", "2026-10-26"),
        # America/New_York springs forward on 2026-03-08 (07:00 UTC: 02:00 EST -> 03:00 EDT)
        (
            datetime(2026, 3, 8, 6, 59, tzinfo=UTC),
            "hour",
            "America/New_York",
            "2026-03-08 01:00:00",
        ),
        (datetime(2026, 3, 8, 7, 0, tzinfo=UTC), "hour", "America/New_York", "2026-03-08 03:00:00"),
        # ... and falls back on 2026-11-01 (06:00 UTC: 02:00 EDT -> 01:00 EST)
        (
            datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
            "hour",
            "America/New_York",
            "2026-11-01 01:00:00",
        ),
        (
            datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
            "hour",
            "America/New_York",
            "2026-11-01 01:00:00",
        ),
        (
            datetime(2026, 11, 1, 6, 30, tzinfo=NEW_YORK),
            "hour",
            "Europe/Berlin",
            "2026-11-01 12:00:00",
        ),
    ],
)
def test_bucket_text_of_each_granularity_in_the_zone(
    value: date, granularity: Granularity, zone: str | None, text: str
) -> None:
    assert bucket_text(value, granularity, zone) == text


def test_an_hour_in_a_fall_back_is_one_folder_for_both_of_its_hours() -> None:
    """A local hour that happens twice (02:00-02:59 on 2026-10-25 in Berlin) is one folder:
    the text names the wall-clock hour, as a reader filtering by local time expects."""
    first = datetime(2026, 10, 25, 0, 0, tzinfo=UTC)
    hours = [bucket_text(first + timedelta(minutes=m), "hour", "Europe/Berlin") for m in (0, 90)]
    assert hours == ["2026-10-25 02:00:00", "2026-10-25 02:00:00"]


def test_hour_of_a_date_and_an_unknown_zone_say_what_to_use() -> None:
    with pytest.raises(ValueError, match=r"`hour` cuts a timestamp, and 2026-03-01 is a date"):
        bucket_text(date(2026, 3, 1), "hour")
    with pytest.raises(ValueError, match=r"`Mars/Base` is not an IANA time zone"):
        bucket_text(datetime(2026, 3, 1, tzinfo=UTC), "day", "Mars/Base")


def test_duckdb_reads_year_as_bigint_day_as_date_and_hour_as_timestamp_when_told(
    tmp_path: Path,
) -> None:
    """DuckDB infers a folder's type from its escaped text: `day=2026-03-01` is a DATE, but
    `hour=2026-03-01%2006%3A00%3A00` (`:` escaped, as Spark writes it, since Hadoop paths cannot
    hold one) is text until `hive_types` says TIMESTAMP; then it is the local hour."""
    moments = [datetime(2026, 3, 1, 5, 30, tzinfo=UTC), datetime(2026, 3, 2, 23, 0, tzinfo=UTC)]
    for index, moment in enumerate(moments):
        keys = [(g, bucket_text(moment, g, "Europe/Berlin")) for g in ("year", "day", "hour")]
        where = tmp_path / folder(keys)
        where.mkdir(parents=True)
        pq.write_table(pa.table({"tag": [index]}), where / "part-0001.parquet")
    assert sorted(p.name for p in (tmp_path / "year=2026").iterdir()) == [
        "day=2026-03-01",
        "day=2026-03-03",
    ]
    files = f"'{tmp_path}/**/*.parquet', hive_partitioning = true"
    read = duckdb.connect().sql(f"SELECT year, day, hour FROM read_parquet({files}) ORDER BY tag")
    assert read.types == ["BIGINT", "DATE", "VARCHAR"]
    assert read.fetchall() == [
        (2026, date(2026, 3, 1), "2026-03-01 06:00:00"),
        (2026, date(2026, 3, 3), "2026-03-03 00:00:00"),
    ]
    told = duckdb.connect().sql(
        f"SELECT hour FROM read_parquet({files}, hive_types = {{'hour': TIMESTAMP}}) ORDER BY tag"
    )
    assert told.types == ["TIMESTAMP"]
    assert told.fetchall() == [(datetime(2026, 3, 1, 6, 0),), (datetime(2026, 3, 3, 0, 0),)]
