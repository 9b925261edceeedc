"""`format_options.encoding` and `on_unencodable`: files in UTF-8 with or without a BOM,
ASCII, Latin-1 and UTF-16, read back by Python's codecs, csv, json and lxml; a character the
encoding cannot hold fails the export before anything is published, naming its row and
column, or is replaced or escaped."""

from __future__ import annotations

import codecs
import csv
import io
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from lxml import etree
from pydantic import ValidationError

from flows.core.config import FormatOptions
from flows.core.errors import ConfigurationError, FormatError
from flows.core.formats import ExportFormat, media_type
from flows.export import export
from flows.parameters import validate_export_parameters
from tests.flows.conftest import url_for_psycopg

ROWS = [(1, "plain"), (2, "café"), (3, "naïve 日本")]
LATIN = [(1, "plain"), (2, "café"), (3, "naïve")]


def _sqlite(folder: Path, rows: list[tuple[int, str]]) -> str:
    database = folder / "notes.sqlite"
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute("CREATE TABLE notes (id INTEGER, note TEXT)")
        conn.executemany("INSERT INTO notes VALUES (?, ?)", rows)
    return f"sqlite:///{database}"


def run(url: str, fmt: ExportFormat, folder: Path, **options: Any) -> Path:
    result = export(
        source={"url": url, "table": "notes"},
        destination={"url": str(folder / "out" / "{export}.{ext}")},
        format=fmt,
        format_options=options,
    )
    return Path(result.files[0])


def rows_of(data: str, fmt: ExportFormat) -> list[tuple[int, str]]:
    if fmt == "csv":
        return [(int(i), note) for i, note in list(csv.reader(io.StringIO(data, newline="")))[1:]]
    if fmt == "jsonl":
        return [(item["id"], item["note"]) for item in map(json.loads, data.splitlines())]
    if fmt == "json":
        return [(item["id"], item["note"]) for item in json.loads(data)]
    root = etree.fromstring(data.split("?>", 1)[1])  # lxml takes no declaration in a str
    return [(int(item.findtext("id")), item.findtext("note")) for item in root]


@pytest.mark.usefixtures("prefect_api")
class TestEncodings:
    @pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "xml"])
    @pytest.mark.parametrize(
        ("encoding", "codec", "bom", "rows"),
        [
            ("utf-8-sig", "utf-8", codecs.BOM_UTF8, ROWS),
            ("latin-1", "latin-1", b"", LATIN),
            ("utf-16", "utf-16-le", codecs.BOM_UTF16_LE, ROWS),
        ],
    )
    def test_read_back_in_the_encoding(
        self,
        tmp_path: Path,
        fmt: ExportFormat,
        encoding: str,
        codec: str,
        bom: bytes,
        rows: list[tuple[int, str]],
    ) -> None:
        data = run(_sqlite(tmp_path, rows), fmt, tmp_path, encoding=encoding).read_bytes()
        assert data.startswith(bom)
        assert not bom or not data[len(bom) :].startswith(bom), "one BOM, at the start"
        text = data[len(bom) :].decode(codec)
        assert rows_of(text, fmt) == rows
        if fmt == "xml":
            declared = {"utf-8-sig": "UTF-8", "latin-1": "ISO-8859-1", "utf-16": "UTF-16"}
            assert text.startswith(f'<?xml version="1.0" encoding="{declared[encoding]}" ?>')
            assert etree.fromstring(data).findtext("item/note") == "plain"  # lxml reads it

    @pytest.mark.parametrize("fmt", ["csv", "jsonl", "xml"])
    def test_a_character_ascii_cannot_hold_fails_naming_row_and_column(
        self, tmp_path: Path, fmt: ExportFormat
    ) -> None:
        url = _sqlite(tmp_path, ROWS)
        with pytest.raises(FormatError) as raised:
            run(url, fmt, tmp_path, encoding="ascii")
        assert "row 2, column `note` holds 'é' (U+00E9), which ascii cannot write" in str(
            raised.value
        )
        assert not list((tmp_path / "out").iterdir()), "nothing published, nothing left"

    @pytest.mark.parametrize("fmt", ["jsonl", "json", "xml"])
    def test_escaped_characters_read_back_equal_the_source(
        self, tmp_path: Path, fmt: ExportFormat
    ) -> None:
        data = run(
            _sqlite(tmp_path, ROWS), fmt, tmp_path, encoding="ascii", on_unencodable="escape"
        ).read_bytes()
        assert max(data) < 128, "only ASCII bytes"
        assert rows_of(data.decode("ascii"), fmt) == ROWS

    def test_replace_writes_a_question_mark(self, tmp_path: Path) -> None:
        path = run(
            _sqlite(tmp_path, ROWS), "csv", tmp_path, encoding="ascii", on_unencodable="replace"
        )
        assert path.read_bytes() == b"id,note\n1,plain\n2,caf?\n3,na?ve ??\n"


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_rows_postgresql_rendered_name_the_column_too(
    pg_url: str, tmp_path: Path, fmt: ExportFormat
) -> None:
    with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id int, label text, note text)")
        conn.execute("INSERT INTO notes VALUES (1, 'a', 'x'), (2, 'b', 'ümlaut')")
    with pytest.raises(FormatError) as raised:
        run(pg_url, fmt, tmp_path, encoding="ascii")
    assert "row 2, column `note` holds 'ü'" in str(raised.value)
    latin = run(pg_url, fmt, tmp_path, encoding="latin-1").read_bytes()
    assert "ümlaut".encode("latin-1") in latin


@pytest.mark.unit
class TestRefused:
    def test_unknown_encoding(self) -> None:
        with pytest.raises(ValidationError) as raised:
            FormatOptions.model_validate({"encoding": "cp1252"})
        assert "encoding" in str(raised.value) and "'utf-8'" in str(raised.value)

    @pytest.mark.parametrize(
        ("fmt", "options", "message"),
        [
            ("parquet", {"encoding": "latin-1"}, "Parquet stores text as UTF-8"),
            ("csv", {"on_unencodable": "escape"}, "CSV has no escape for a character"),
        ],
    )
    def test_options_the_format_cannot_honour(
        self, fmt: str, options: dict[str, str], message: str
    ) -> None:
        with pytest.raises(ConfigurationError) as raised:
            validate_export_parameters(
                {
                    "source": {"url": "sqlite:///x.db", "table": "t"},
                    "destination": {"url": "out/{export}.{ext}"},
                    "format": fmt,
                    "format_options": options,
                }
            )
        assert message in str(raised.value)

    def test_the_content_type_names_the_charset(self) -> None:
        assert media_type("csv") == "text/csv; charset=utf-8"
        assert media_type("csv", encoding="latin-1") == "text/csv; charset=iso-8859-1"
        assert media_type("xml", encoding="utf-16") == "application/xml; charset=utf-16"
        assert media_type("json") == "application/json"
        assert media_type("csv", "gzip", "ascii") == "application/gzip"
