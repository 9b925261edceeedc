"""PostgreSQL → CSV rendered by the server (flows/sources/pg_render.py), against a real PostgreSQL.

Each SQL expression must write exactly what Python writes for the same value; the export
through it must equal the Arrow path's file byte for byte, split or not.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import random
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from flows.core.columns import rendered_format
from flows.core.config import FormatOptions, SourceConfig
from flows.core.formats import ExportFormat
from flows.export import export
from flows.sources import pg_render, postgres
from flows.sources.plan import inspect_source
from flows.sources.read import read_for_format
from tests.flows.conftest import (
    AWKWARD_TEXT,
    PG_COLUMNS,
    PgSource,
    RunExport,
    first_difference,
    pg_select,
    url_for_psycopg,
)
from tests.flows.formats.test_roundtrip import assert_round_trip

pytestmark = pytest.mark.postgres

# The awkward table without its `json` column, which the JSON path leaves to Arrow.
NO_JSON_TYPE_QUERY = (
    "SELECT "
    + ", ".join(f'"{name}"' for name, _, _ in PG_COLUMNS if name != "raw_doc")
    + " FROM awkward ORDER BY id NULLS FIRST"
)


def server_text(url: str, sql_type: str, values: list[Any], expression: str) -> list[str | None]:
    """`expression` (over column `c`) evaluated by PostgreSQL for each value, in order."""
    with psycopg.connect(url_for_psycopg(url), autocommit=True) as conn:
        for setting in postgres.SESSION_SETTINGS:
            conn.execute(setting)
        conn.execute(f"CREATE TEMP TABLE v (i int, c {sql_type})")
        with conn.cursor().copy("COPY v FROM STDIN") as copy:
            for index, value in enumerate(values):
                copy.write_row((index, value))
        rows = conn.execute(f"SELECT {expression} FROM v ORDER BY i").fetchall()
    return [row[0] for row in rows]


def tricky_doubles() -> list[float]:
    """Every decade edge where repr() and PostgreSQL's text part ways, plus random bits."""
    values = [0.0, -0.0, 1.0, -1.0, 0.1, 0.1 + 0.2, 1e-4, 1e-5, 9.999e-5, 12345.678, 3.0]
    values += [1e14, 99999999999999.99, 1e15, 1.5e15, 1234567890123456.8, 9999999999999998.0]
    values += [1e16, 6.30895803869081e16, 1e22, 1e300, 5e-324, 2.2250738585072014e-308]
    values += [1.7976931348623157e308, -1.0847353e20, math.inf, -math.inf, math.nan]
    rnd = random.Random(20261123)
    for _ in range(5000):
        values.append(struct.unpack("d", struct.pack("Q", rnd.getrandbits(64)))[0])
        values.append(rnd.choice((1, -1)) * rnd.random() * 10 ** rnd.randint(-8, 18))
        values.append(float(round(rnd.random() * 10 ** rnd.randint(0, 17))))
    return values


class TestExpressions:
    """The server's text equals Python's for every value."""

    def test_double_precision_is_repr(self, pg_url: str) -> None:
        values = tricky_doubles()
        got = server_text(pg_url, "double precision", values, pg_render._float("c"))
        wrong = [(repr(v), g) for v, g in zip(values, got, strict=True) if g != repr(v)]
        assert not wrong, f"{len(wrong)} of {len(values)} differ, e.g. {wrong[:5]}"

    def test_real_is_repr_of_its_shortest_text(self, pg_url: str) -> None:
        # COPY's Arrow path reads a real from its shortest text (0.1, not 0.100000001...).
        values = [v for v in tricky_doubles() if math.isfinite(v) and 1e-30 < abs(v) < 1e30]
        expression = f"c::text || '|' || ({pg_render._float('c::text::float8')})"
        got = [str(pair).split("|") for pair in server_text(pg_url, "real", values, expression)]
        wrong = [(text, rendered) for text, rendered in got if rendered != repr(float(text))]
        assert len(got) == len(values) and not wrong, f"{len(wrong)} differ: {wrong[:5]}"

    def test_numeric_is_plain_digits_with_its_scale(self, pg_url: str) -> None:
        values = [
            Decimal(text)
            for text in (
                "0", "0.00", "0.000000", "0.0000000", "0.0000001", "-0.00000012300",
                "0.000001", "0.0000010", "123.45", "-5.50", "1E+3", "NaN", "Infinity",
                "-Infinity", "12345678901234567890.0123456789", "0.00000000000000000001",
            )
        ]  # fmt: skip
        expression = f"c::text || '|' || ({pg_render._decimal('c')})"
        got = [str(pair).split("|") for pair in server_text(pg_url, "numeric", values, expression)]
        assert [rendered for _, rendered in got] == [format(Decimal(t), "f") for t, _ in got]
        assert "-0.00000012300" in {rendered for _, rendered in got}  # never 1.2300E-7

    def test_timestamps_and_times_are_isoformat(self, pg_url: str) -> None:
        utc = dt.UTC
        stamps = [
            dt.datetime(2024, 3, 31, 1, 59, 59, 999999, utc),
            dt.datetime(2024, 3, 31, 2, 0, tzinfo=utc),
            dt.datetime(1, 1, 1, tzinfo=utc),
            dt.datetime(999, 12, 31, 23, 59, 59, 500000, utc),
            dt.datetime(9999, 12, 31, 23, 59, 59, 10, utc),
        ]
        got = server_text(pg_url, "timestamptz", stamps, pg_render._timestamp("c", utc=True))
        assert got == [s.isoformat() for s in stamps]
        naive = [s.replace(tzinfo=None) for s in stamps]
        got = server_text(pg_url, "timestamp", naive, pg_render._timestamp("c", utc=False))
        assert got == [s.isoformat() for s in naive]
        times = [dt.time(0, 0), dt.time(23, 59, 59, 999999), dt.time(12, 0, 0, 500000)]
        assert server_text(pg_url, "time", times, pg_render._time("c")) == [
            t.isoformat() for t in times
        ]

    def test_text_is_json_dumps(self, pg_url: str) -> None:
        texts = [chr(code) for code in range(1, 0x80)] + ["\u2028 \u00e9 😀 \ufeff", 'a"b\\c']
        texts += [t for t in AWKWARD_TEXT if t is not None and "\x00" not in t]
        got = server_text(pg_url, "text", texts, "to_json(c)::text")
        wrong = [
            (t, g)
            for t, g in zip(texts, got, strict=True)
            if g != json.dumps(t, ensure_ascii=False)
        ]
        assert not wrong, wrong[:5]

    def test_bytes_and_booleans(self, pg_url: str) -> None:
        blobs = [b"", b"\x00\xff", bytes(range(256)) * 3]
        got = server_text(pg_url, "bytea", blobs, pg_render._bytes("c"))
        assert got == [base64.b64encode(b).decode() for b in blobs]
        flags = [True, False, None]
        assert server_text(pg_url, "boolean", flags, pg_render._bool("c")) == [
            "true",
            "false",
            None,
        ]


@pytest.mark.usefixtures("prefect_api")
class TestRenderedCsvExport:
    """CSV, JSON Lines and JSON from PostgreSQL through the server-rendered path."""

    @pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
    def test_awkward_table_takes_the_rendered_path(
        self, pg_awkward: PgSource, fmt: ExportFormat
    ) -> None:
        # Guards the byte-for-byte comparisons with the Arrow path (TestPostgresReadersAgree
        # for CSV, test_json_equals_the_arrow_path): they cover this path only if it is taken.
        query = pg_select() if fmt == "csv" else NO_JSON_TYPE_QUERY
        plan = inspect_source(SourceConfig(url=pg_awkward.url, query=query))
        batches = list(read_for_format(plan, fmt, FormatOptions()))
        assert all(rendered_format(batch.schema) in ("csv", "jsonl") for batch in batches)
        assert sum(batch.num_rows for batch in batches) == len(pg_awkward.dataset.rows)

    @pytest.mark.parametrize("fmt", ["jsonl", "json"])
    def test_json_equals_the_arrow_path(
        self, pg_awkward: PgSource, run_export: RunExport, fmt: ExportFormat
    ) -> None:
        rows = len(pg_awkward.dataset.rows)
        outputs = {
            reader: run_export(
                {"url": pg_awkward.url, "query": NO_JSON_TYPE_QUERY, "reader": reader},
                fmt,
                rows=rows,
                name="awkward",
            ).path.read_bytes()
            for reader in ("postgres_copy", "sqlalchemy")
        }
        copy, rows_read = outputs["postgres_copy"], outputs["sqlalchemy"]
        assert copy == rows_read, first_difference(rows_read, copy)
        expected = pg_awkward.dataset.select([n for n, _, _ in PG_COLUMNS if n != "raw_doc"])
        done = run_export({"url": pg_awkward.url, "query": NO_JSON_TYPE_QUERY}, fmt, rows=rows)
        assert_round_trip(fmt, done.path, expected)

    def test_json_type_columns_take_the_arrow_path(self, pg_awkward: PgSource) -> None:
        # `json` keeps its text as written, where a line break would split a JSON line.
        plan = inspect_source(SourceConfig(url=pg_awkward.url, query=pg_select()))
        query = pg_render.server_rendered(
            plan.sql, plan.declared, plan.type_oids, "jsonl", FormatOptions()
        )
        assert query is None

    @pytest.mark.parametrize(
        "options",
        [{"line_terminator": "crlf"}, {"delimiter": "§"}],
        ids=["crlf", "non-ascii-delimiter"],
    )
    def test_options_copy_cannot_write_take_the_arrow_path(
        self, pg_awkward: PgSource, options: dict[str, Any]
    ) -> None:
        plan = inspect_source(SourceConfig(url=pg_awkward.url, query=pg_select()))
        query = pg_render.server_rendered(
            plan.sql, plan.declared, plan.type_oids, "csv", FormatOptions(**options)
        )
        assert query is None

    @pytest.mark.parametrize("delimiter", [";", "\t", "|"])
    def test_other_delimiters_equal_the_arrow_path(
        self, pg_awkward: PgSource, run_export: RunExport, delimiter: str
    ) -> None:
        rows = len(pg_awkward.dataset.rows)
        options = {"delimiter": delimiter}
        outputs = {
            reader: run_export(
                {"url": pg_awkward.url, "query": pg_select(), "reader": reader},
                "csv",
                rows=rows,
                name="awkward",
                format_options=options,
            ).path.read_bytes()
            for reader in ("postgres_copy", "sqlalchemy")
        }
        copy, rows_read = outputs["postgres_copy"], outputs["sqlalchemy"]
        assert copy == rows_read, first_difference(rows_read, copy)

    def test_single_column_takes_the_arrow_path(self, pg_url: str, run_export: RunExport) -> None:
        # COPY quotes a lone `\.` in a one-column file; our CSV does not need to.
        with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
            conn.execute("CREATE TABLE one (v text)")
            conn.execute("INSERT INTO one VALUES ('\\.'), (''), (NULL), ('a,b')")
        source = {"url": pg_url, "query": "SELECT v FROM one"}
        done = run_export(source, "csv", rows=4)
        assert done.path.read_bytes() == b'v\n\\.\n""\n\n"a,b"\n'
        # A NULL in a one-column COPY is an empty line, which the parser must not skip.
        lines = run_export(source, "jsonl", rows=4).path.read_text().splitlines()
        assert [json.loads(line)["v"] for line in lines] == ["\\.", "", None, "a,b"]

    def test_split_parts_hold_whole_rows(self, pg_awkward: PgSource, tmp_path: Path) -> None:
        source = {"url": pg_awkward.url, "query": pg_select(), "chunk_rows": 7}
        whole = export(source=source, destination={"url": f"{tmp_path}/whole.csv"})
        limit_mb = 0.002
        parts = export(
            source=source,
            destination={"url": f"{tmp_path}/parts/{{part}}.csv", "max_file_mb": limit_mb},
        )
        assert len(parts.files) > 3
        texts = [Path(path).read_bytes() for path in parts.files]
        header, _, _ = Path(whole.files[0]).read_bytes().partition(b"\n")
        body = b"".join(text.partition(b"\n")[2] for text in texts)
        assert all(text.startswith(header + b"\n") for text in texts)
        assert header + b"\n" + body == Path(whole.files[0]).read_bytes()
        assert parts.rows == whole.rows == len(pg_awkward.dataset.rows)
        limit = int(limit_mb * 1024 * 1024)
        assert sum(len(text) > limit for text in texts) <= 1  # only a row larger than a part

    def test_values_arrow_cannot_hold_are_written_as_postgres_text(
        self, pg_url: str, run_export: RunExport
    ) -> None:
        # Documented in README "PostgreSQL specifics": the other formats stop on these.
        with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
            conn.execute("CREATE TABLE odd (id int, at timestamptz, day date, amount numeric(5,2))")
            conn.execute("INSERT INTO odd VALUES (1, 'infinity', '0044-03-15 BC', 'NaN')")
        done = run_export({"url": pg_url, "table": "odd"}, "csv", rows=1)
        assert done.path.read_text() == "id,at,day,amount\n1,infinity,0044-03-15 BC,NaN\n"
        line = run_export({"url": pg_url, "table": "odd"}, "jsonl", rows=1).path.read_text()
        assert json.loads(line) == {
            "id": 1,
            "at": "infinity",
            "day": "0044-03-15 BC",
            "amount": "NaN",
        }

    @pytest.mark.parametrize(
        ("fmt", "expected"),
        [("csv", b"id,label\n"), ("jsonl", b""), ("json", b"[]\n")],
    )
    def test_no_rows(
        self, pg_awkward: PgSource, run_export: RunExport, fmt: ExportFormat, expected: bytes
    ) -> None:
        source = {"url": pg_awkward.url, "query": "SELECT id, label FROM awkward WHERE false"}
        assert run_export(source, fmt, rows=0).path.read_bytes() == expected
