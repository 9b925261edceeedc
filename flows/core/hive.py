"""Hive-style folder names (`key=value/…`): how one partition value becomes one folder, the
rule every partitioned file is written by and every reader (DuckDB, pyarrow, Spark, Hive,
Trino/Athena) reads back.

Every ASCII character outside `A-Za-z0-9_-.` is percent-encoded (`%2F`, uppercase), which
covers Spark's and Hive's escape set, `+`, space and `%`. Non-ASCII characters stay raw UTF-8:
Spark, Hive and Trino/Athena decode each `%XX` as one character, so percent-encoded UTF-8 would
come back to them as mojibake, while every reader, DuckDB too, reads raw UTF-8 right.

NULL and the empty string are both written as `__HIVE_DEFAULT_PARTITION__`, which readers
read as NULL. An empty folder value (`key=`) would read back as `''` in DuckDB and pyarrow, but
Spark's partition discovery refuses the whole table over it ("Empty partition column value"),
and Spark and Hive write an empty string as NULL's folder themselves.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Literal
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from flows.core.targets import name_problem
from flows.core.zones import iana_zone

DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"

Granularity = Literal["year", "month", "day", "hour"]

_SAFE = frozenset(string.ascii_letters + string.digits + "_-.")
_ESCAPES = {code: f"%{code:02X}" for code in range(128) if chr(code) not in _SAFE}
_SHOWN_CHARS = 40


class FolderNameError(ValueError):
    """A partition value makes a folder name no store or reader takes (more than 255 bytes of
    UTF-8, a control character, a leading `.`). `key` is the partition key; the flow turns it
    into the run's typed error, naming the export."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


def escape(text: str) -> str:
    """`text` as one folder name's part: ASCII outside `A-Za-z0-9_-.` as `%XX`, the rest raw."""
    return text.translate(_ESCAPES)


def unescape(text: str) -> str:
    """The text `escape` was given: each `%XX` decoded (as UTF-8, as DuckDB decodes it)."""
    return unquote(text, errors="strict")


def segment(key: str, value: str | None) -> str:
    """One folder, `key=value`: both escaped, NULL and `''` as `__HIVE_DEFAULT_PARTITION__`.
    A value that is that very text keeps its own meaning (its first `_` escaped)."""
    if not key:
        raise ValueError("a partition key is a column name, never empty")
    if value is None or value == "":
        text = DEFAULT_PARTITION
    elif value == DEFAULT_PARTITION:
        text = "%5F" + escape(value[1:])
    else:
        text = escape(value)
    folder_name = f"{escape(key)}={text}"
    problem = name_problem(folder_name)
    if problem is not None:
        shown = "NULL" if value is None else value[:_SHOWN_CHARS]
        more = "…" if value is not None and len(value) > _SHOWN_CHARS else ""
        raise FolderNameError(
            f"partition key `{key}`: the folder for the value `{shown}{more}` {problem}; "
            "partition by a coarser granularity (year, month, day, hour) or by another column",
            key=key,
        )
    return folder_name


def folder(pairs: Sequence[tuple[str, str | None]]) -> str:
    """The folders of one partition, `k1=v1/k2=v2`, in the keys' order."""
    return "/".join(segment(key, value) for key, value in pairs)


def bucket_text(value: date | datetime, granularity: Granularity, zone: str | None = None) -> str:
    """The text of the period `value` falls in: `2026`, `2026-03`, `2026-03-01` or
    `2026-03-01 05:00:00`. DuckDB reads a year folder as BIGINT and a day folder as DATE; an
    hour folder, whose `:` is escaped (Hadoop paths cannot hold one), is text to DuckDB until
    `hive_types` says TIMESTAMP. An aware datetime is first converted to `zone` (UTC if None);
    a naive one is taken as written."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(ZoneInfo(iana_zone(zone)) if zone else UTC)
        if granularity == "hour":
            return f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:00:00"
    elif granularity == "hour":
        raise ValueError(
            f"`hour` cuts a timestamp, and {value.isoformat()} is a date; use day, month or year"
        )
    if granularity == "year":
        return f"{value.year:04d}"
    if granularity == "month":
        return f"{value.year:04d}-{value.month:02d}"
    if granularity == "day":
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    raise ValueError(f"unknown granularity `{granularity}`; use year, month, day or hour")
