"""Acceptance: the XML writer produces exactly what dicttoxml produces for the same rows.

The oracle is dicttoxml itself, fed the logical rows an independent client read from the
source: Python values as they are, except bytes → base64 text, JSON columns → their JSON
text, UUIDs → text and timestamptz → the same instant in UTC. The streamed file must equal
`dicttoxml.dicttoxml(rows)` byte for byte (and `attr_type=False` when type attributes are
switched off).
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC
from decimal import Decimal
from pathlib import Path
from typing import Any

import dicttoxml
import pytest

from tests.flows.conftest import (
    FORBIDDEN_ID,
    PG_READERS,
    Dataset,
    PgSource,
    RunExport,
    SqliteSource,
    demo_dataset,
    first_difference,
)

pytestmark = pytest.mark.usefixtures("prefect_api")

XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
TYPE_ATTRIBUTES = [True, False]


class PlainDecimal(Decimal):
    """A decimal that dicttoxml writes with plain digits (`0.0000000001`, as we do), where
    str(Decimal) writes `1E-10`; still a number to it (type="number")."""

    def __str__(self) -> str:
        return format(self, "f")


def logical_value(value: Any, kind: str) -> Any:
    """A source value as the row dict handed to dicttoxml holds it."""
    if value is None:
        return None
    if kind == "decimal" and isinstance(value, Decimal):
        return PlainDecimal(value)
    if kind == "bytes":
        return base64.b64encode(value).decode("ascii")
    if kind == "json":
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if kind == "uuid":
        return str(value)
    if kind == "timestamptz":
        return value.astimezone(UTC)
    return value


def logical_rows(data: Dataset) -> list[dict[str, Any]]:
    return [
        {
            column: logical_value(value, kind)
            for column, value, kind in zip(data.columns, row, data.kinds, strict=True)
        }
        for row in data.rows
    ]


def assert_matches_oracle(path: Path, rows: list[dict[str, Any]], type_attributes: bool) -> None:
    expected = dicttoxml.dicttoxml(rows, attr_type=type_attributes)
    assert isinstance(expected, bytes)
    # Our one deliberate difference: a carriage return is written as `&#13;`, so a parser
    # reads it back (a raw CR in element text is read as LF).
    expected = expected.replace(b"\r", b"&#13;")
    actual = path.read_bytes()
    assert actual == expected, first_difference(expected, actual)


def xml_options(type_attributes: bool) -> dict[str, Any] | None:
    return None if type_attributes else {"xml_type_attributes": False}


class TestXmlMatchesDicttoxml:
    """For sample data without forbidden characters the file is dicttoxml's document."""

    @pytest.mark.parametrize("type_attributes", TYPE_ATTRIBUTES)
    @pytest.mark.parametrize(("table", "chunk_rows"), [("customers", 50_000), ("orders", 64)])
    def test_demo_table(
        self,
        demo_db: Path,
        run_export: RunExport,
        table: str,
        chunk_rows: int,
        type_attributes: bool,
    ) -> None:
        data = demo_dataset(table)
        source = {"url": f"sqlite:///{demo_db}", "table": table, "chunk_rows": chunk_rows}
        done = run_export(
            source, "xml", rows=len(data.rows), format_options=xml_options(type_attributes)
        )
        assert_matches_oracle(done.path, logical_rows(data), type_attributes)

    @pytest.mark.parametrize("type_attributes", TYPE_ATTRIBUTES)
    def test_sqlite_query(
        self, sqlite_measurements: SqliteSource, run_export: RunExport, type_attributes: bool
    ) -> None:
        data = sqlite_measurements.fetch()
        source = {
            "url": sqlite_measurements.url,
            "query": sqlite_measurements.query,
            "params": sqlite_measurements.params,
            "chunk_rows": 5,
        }
        done = run_export(
            source, "xml", rows=len(data.rows), format_options=xml_options(type_attributes)
        )
        assert_matches_oracle(done.path, logical_rows(data), type_attributes)

    @pytest.mark.parametrize("type_attributes", TYPE_ATTRIBUTES)
    @pytest.mark.parametrize("reader", PG_READERS)
    def test_postgres(
        self, pg_awkward: PgSource, run_export: RunExport, reader: str, type_attributes: bool
    ) -> None:
        data = pg_awkward.where(lambda row: row["id"] != FORBIDDEN_ID)
        assert len(data.rows) == len(pg_awkward.dataset.rows) - 1
        source = {
            "url": pg_awkward.url,
            "query": f"SELECT * FROM awkward WHERE id IS DISTINCT FROM {FORBIDDEN_ID} "
            "ORDER BY id NULLS FIRST",
            "reader": reader,
        }
        done = run_export(
            source,
            "xml",
            rows=len(data.rows),
            name="awkward",
            format_options=xml_options(type_attributes),
        )
        assert_matches_oracle(done.path, logical_rows(data), type_attributes)

    @pytest.mark.parametrize("type_attributes", TYPE_ATTRIBUTES)
    def test_empty_result(
        self, sqlite_measurements: SqliteSource, run_export: RunExport, type_attributes: bool
    ) -> None:
        source = {
            "url": sqlite_measurements.url,
            "query": sqlite_measurements.query,
            "params": {"lo": 10_000},
        }
        done = run_export(source, "xml", rows=0, format_options=xml_options(type_attributes))
        assert_matches_oracle(done.path, [], type_attributes)


class TestXmlForbiddenCharacters:
    """Where dicttoxml would write characters XML 1.0 forbids, each becomes U+FFFD."""

    @pytest.mark.parametrize("reader", PG_READERS)
    def test_replaced_and_otherwise_identical(
        self, pg_awkward: PgSource, run_export: RunExport, reader: str
    ) -> None:
        data = pg_awkward.dataset.select(["id", "label", "code", "1st"])
        source = {
            "url": pg_awkward.url,
            "query": 'SELECT id, label, code, "1st" FROM awkward ORDER BY id NULLS FIRST',
            "reader": reader,
        }
        done = run_export(source, "xml", rows=len(data.rows), name="text")
        rows = [
            {
                column: XML_FORBIDDEN.sub("\ufffd", value) if isinstance(value, str) else value
                for column, value in row.items()
            }
            for row in logical_rows(data)
        ]
        assert sum("\ufffd" in str(value) for row in rows for value in row.values()) == 2
        assert_matches_oracle(done.path, rows, type_attributes=True)
