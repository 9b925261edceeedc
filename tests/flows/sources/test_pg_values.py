"""PostgreSQL values that took one of the two read paths off the rails (issue 24): BC
timestamps, numeric NaN beside an array column, values larger than the CSV parser's block.

Each export goes through the real flow; each file is read back with an independent reader
(csv, json, lxml, pyarrow.parquet) and compared with what PostgreSQL itself says.
"""

from __future__ import annotations

import base64
import csv
import json
import random
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lxml import etree

from flows.core.formats import ExportFormat
from tests.flows.conftest import RunExport, url_for_psycopg

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("prefect_api")]

# (timestamp, timestamptz, date) as PostgreSQL input, and how every format writes each.
BC_ROWS: tuple[tuple[str, str, str], ...] = (
    ("0044-03-15 12:00:00.5 BC", "0044-03-15 12:00:00.5+00 BC", "0044-03-15 BC"),
    ("0001-12-31 23:59:59.999999 BC", "0001-12-31 23:59:59.999999+00 BC", "0001-12-31 BC"),
    ("4713-11-24 00:00:00 BC", "4713-11-24 00:00:00+00 BC", "4713-11-24 BC"),
    ("0001-01-01 00:00:00", "0001-01-01 00:00:00+00", "0001-01-01"),
    ("2024-02-29 08:30:00", "2024-02-29 08:30:00+00", "2024-02-29"),
)
BC_TEXT: tuple[tuple[str, str, str], ...] = (
    ("0044-03-15T12:00:00.500000 BC", "0044-03-15T12:00:00.500000+00:00 BC", "0044-03-15 BC"),
    (
        "0001-12-31T23:59:59.999999 BC",
        "0001-12-31T23:59:59.999999+00:00 BC",
        "0001-12-31 BC",
    ),
    ("4713-11-24T00:00:00 BC", "4713-11-24T00:00:00+00:00 BC", "4713-11-24 BC"),
    ("0001-01-01T00:00:00", "0001-01-01T00:00:00+00:00", "0001-01-01"),
    ("2024-02-29T08:30:00", "2024-02-29T08:30:00+00:00", "2024-02-29"),
)
BC_COLUMNS = ("ts", "tz", "d")


def execute(url: str, *statements: str) -> None:
    with psycopg.connect(url_for_psycopg(url), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def read_rows(fmt: ExportFormat, path: Path, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """The file's rows as text (Parquet: as stored), read by an independent reader."""
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8") as file:
            header, *rows = csv.reader(file)  # a one-column NULL is an empty line: []
            records = [
                dict(zip(header, row, strict=True)) if row else dict.fromkeys(header)
                for row in rows
            ]
            return [tuple(record[c] for c in columns) for record in records]
    if fmt in ("json", "jsonl"):
        text = path.read_text(encoding="utf-8")
        records = json.loads(text) if fmt == "json" else [json.loads(x) for x in text.splitlines()]
        return [tuple(record[c] for c in columns) for record in records]
    if fmt == "xml":
        root = etree.parse(str(path), etree.XMLParser(huge_tree=True)).getroot()
        return [tuple(item.findtext(c) for c in columns) for item in root]
    table = pq.read_table(path)
    return list(zip(*(table.column(c).to_pylist() for c in columns), strict=True))


# Every format on both paths: the server-rendered COPY path (CSV, JSON Lines, JSON), and the
# Arrow path (XML, Parquet; CSV with CRLF; JSON beside an array column).
BOTH_PATHS: list[tuple[ExportFormat, dict[str, str], str]] = [
    ("csv", {}, ""),
    ("csv", {"line_terminator": "crlf"}, ""),
    ("jsonl", {}, ""),
    ("jsonl", {}, ", '{1}'::int[] AS a"),
    ("json", {}, ""),
    ("json", {}, ", '{1}'::int[] AS a"),
    ("xml", {}, ""),
]


def test_bc_timestamps_keep_their_era_in_every_format(pg_url: str, run_export: RunExport) -> None:
    """Issue 24: a BC timestamp or timestamptz is written as the same ISO text with ` BC`
    (as BC dates are) in CSV, JSON, JSON Lines and XML, on the server-rendered and the Arrow
    path alike, never as the AD year; Parquet holds the true instant (and day)."""
    values = ", ".join(f"({i}, '{ts}', '{tz}', '{d}')" for i, (ts, tz, d) in enumerate(BC_ROWS))
    execute(
        pg_url,
        "CREATE TABLE bc (id int, ts timestamp, tz timestamptz, d date)",
        f"INSERT INTO bc VALUES {values}",
    )
    for fmt, options, extra in BOTH_PATHS:
        source = {"url": pg_url, "query": f"SELECT id, ts, tz, d{extra} FROM bc ORDER BY id"}
        done = run_export(source, fmt, rows=len(BC_ROWS), name="bc", format_options=options)
        got = read_rows(fmt, done.path, BC_COLUMNS)
        assert got == list(BC_TEXT), (fmt, options, extra)

    with psycopg.connect(url_for_psycopg(pg_url)) as conn:
        expected = conn.execute(
            "SELECT (extract(epoch FROM ts) * 1000000)::int8,"
            " (extract(epoch FROM tz) * 1000000)::int8, d - date '1970-01-01' FROM bc ORDER BY id"
        ).fetchall()
    done = run_export({"url": pg_url, "table": "bc"}, "parquet", rows=len(BC_ROWS))
    table = pq.read_table(done.path)
    assert table.schema.field("tz").type == pa.timestamp("us", tz="UTC")
    stored = [
        table.column(name).cast(pa.int64() if name != "d" else pa.int32()).to_pylist()
        for name in BC_COLUMNS
    ]
    assert list(zip(*stored, strict=True)) == expected


def test_numeric_nan_beside_an_array_is_written_as_the_server_writes_it(
    pg_url: str, run_export: RunExport
) -> None:
    """Issue 24: NaN in a numeric(p,s) column exports to JSON and JSON Lines beside an array
    column (the Arrow path) exactly as without it (the server-rendered path): the string
    "NaN"; the numbers keep their digits."""
    execute(
        pg_url,
        "CREATE TABLE n (id int, amount numeric(7,2), tags int[])",
        "INSERT INTO n VALUES (1, 'NaN', '{1,2}'), (2, 12.5, NULL), (3, NULL, '{}')",
    )
    for fmt in ("json", "jsonl"):
        files = {
            query: run_export(
                {"url": pg_url, "query": f"SELECT {query} FROM n ORDER BY id"}, fmt, rows=3
            ).path
            for query in ("id, amount, tags", "id, amount")
        }
        with_array, alone = (read_rows(fmt, path, ("id", "amount")) for path in files.values())
        assert with_array == alone == [(1, "NaN"), (2, 12.5), (3, None)]
        text = files["id, amount, tags"].read_text()
        assert '"amount":12.50,' in text  # the scale kept, as the server writes it


LARGE_TEXT = ('a value, "quoted", é 😀\n' * 400_000)[: 10 * 1024 * 1024]  # ~10 MB of text
LARGE_BYTES = random.Random(24).randbytes(10 * 1024 * 1024)
# Every format, on the Arrow path (a one-column CSV, JSON beside an array column, XML,
# Parquet) and on the server-rendered one (CSV, JSON Lines).
LARGE_EXPORTS: tuple[tuple[ExportFormat, str], ...] = (
    ("csv", "label"),
    ("csv", "id, label, blob"),
    ("jsonl", "id, label, blob"),
    ("json", "id, label, blob, tags"),
    ("xml", "id, label, blob, tags"),
    ("parquet", "id, label, blob, tags"),
)


def test_values_larger_than_a_parse_block_export_in_every_format(
    pg_url: str, run_export: RunExport
) -> None:
    """Issue 24: a 10 MB text value and a 10 MB bytea value (ten times the COPY reader's
    CSV parse block) export in every format, on both read paths, and read back whole."""
    with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE big (id int, label text, blob bytea, tags int[])")
        conn.execute(
            "INSERT INTO big VALUES (1, 'small', '\\x00', '{1}'), (2, %s, %s, '{2,3}'),"
            " (3, NULL, NULL, NULL)",
            (LARGE_TEXT, LARGE_BYTES),
        )
    csv.field_size_limit(64 * 1024 * 1024)
    for fmt, columns in LARGE_EXPORTS:
        source = {"url": pg_url, "query": f"SELECT {columns} FROM big ORDER BY id"}
        done = run_export(source, fmt, rows=3, name="big")
        names = tuple(name for name in ("label", "blob") if name in columns)
        rows = read_rows(fmt, done.path, names)
        labels = [row[0] for row in rows]
        assert labels[0] == "small" and labels[2] in (None, ""), (fmt, columns)
        assert len(labels[1]) == len(LARGE_TEXT) and labels[1] == LARGE_TEXT, (fmt, columns)
        if "blob" in names:
            blob = rows[1][1] if fmt == "parquet" else base64.b64decode(rows[1][1])
            assert blob == LARGE_BYTES, (fmt, columns)
