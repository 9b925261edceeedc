"""Reading back the parts of a split read with readers that are not ours (csv, json, lxml,
pyarrow, fastavro, openpyxl), and checking its manifest against the files."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import fastavro
import openpyxl
import pyarrow.parquet as pq
from lxml import etree

from flows.core.formats import ExportFormat
from flows.runs.result import ExportResult


def read_rows(path: Path, fmt: ExportFormat) -> list[tuple[int, str | None]]:
    """(id, v) of every row of one file, by a reader that is not ours."""
    data = path.read_bytes()
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(data.decode(), newline="")))[1:]
        return [(int(row[0]), row[1] if row[1] != "" else None) for row in rows]
    if fmt == "json":
        return [(item["id"], item["v"]) for item in json.loads(data)]
    if fmt == "jsonl":
        return [(item["id"], item["v"]) for item in map(json.loads, data.decode().splitlines())]
    if fmt == "xml":
        root = etree.fromstring(data)
        return [(int(item.findtext("id")), xml_text(item.find("v"))) for item in root]
    if fmt == "avro":
        return [(item["id"], item["v"]) for item in fastavro.reader(io.BytesIO(data))]
    if fmt == "xlsx":
        return xlsx_rows(data)
    table = pq.read_table(io.BytesIO(data))
    return [(row["id"], row["v"]) for row in table.to_pylist()]


def xlsx_rows(data: bytes) -> list[Any]:
    """(id, v) of every data row of the workbook's sheet (an empty cell is None)."""
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    rows = list(book["data"].iter_rows(min_row=2, values_only=True))
    book.close()
    return [(row_id, v) for row_id, v in rows]


def xml_text(element: Any) -> str | None:
    return None if element.get("type") == "null" else element.text or ""


def check_manifest(
    result: ExportResult, fmt: ExportFormat, parts: list[list[tuple[int, Any]]]
) -> dict[str, Any]:
    """The manifest names every file, in order, with the rows, bytes and sha256 read back."""
    assert result.manifest is not None
    manifest = json.loads(Path(result.manifest).read_text())
    assert manifest["export_request_id"] == result.export_request_id
    assert manifest["format"] == fmt
    assert [item["url"] for item in manifest["files"]] == result.files
    for item, rows in zip(manifest["files"], parts, strict=True):
        body = Path(item["url"]).read_bytes()
        assert item["rows"] == len(rows)
        assert item["bytes"] == len(body)
        assert item["sha256"] == hashlib.sha256(body).hexdigest()
    assert manifest["rows"] == result.rows == sum(map(len, parts))
    assert [column["name"] for column in manifest["columns"]][:2] == ["id", "v"]
    return manifest


def by_id(row: tuple[int | None, str]) -> tuple[bool, int, str]:
    return (row[0] is None, row[0] or 0, row[1])


def read_nullable(path: Path, fmt: ExportFormat) -> list[tuple[int | None, str]]:
    """(id, v) of every row of one file, where id may be NULL and v never is."""
    data = path.read_bytes()
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(data.decode(), newline="")))[1:]
        return [(int(row[0]) if row[0] != "" else None, row[1]) for row in rows]
    if fmt == "json":
        return [(item["id"], item["v"]) for item in json.loads(data)]
    if fmt == "jsonl":
        return [(item["id"], item["v"]) for item in map(json.loads, data.decode().splitlines())]
    if fmt == "xml":
        rows = []
        for item in etree.fromstring(data):
            id_element = item.find("id")
            row_id = None if id_element.get("type") == "null" else int(id_element.text)
            rows.append((row_id, item.findtext("v")))
        return rows
    if fmt == "avro":
        return [(item["id"], item["v"]) for item in fastavro.reader(io.BytesIO(data))]
    if fmt == "xlsx":
        return xlsx_rows(data)
    table = pq.read_table(io.BytesIO(data))
    return [(row["id"], row["v"]) for row in table.to_pylist()]
