"""Parts by rows (`destination.max_file_rows`) and trailer records (`format_options.trailer`)
through the real `export` flow into a local folder: the published files read back by csv,
json and pyarrow, the trailers' counts checked against the rows read, with and without
parts, and with partitions (their parts numbered in range order)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows.export import export

pytestmark = pytest.mark.usefixtures("prefect_api")

ROWS = 10_000


@pytest.fixture(scope="module")
def orders_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`orders`: ids 1..10,000 with a name that needs CSV quoting now and then."""
    path = tmp_path_factory.mktemp("rows-db") / "orders.sqlite"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?)",
            [(i, f"order {i}" if i % 10 else f"order, {i}") for i in range(1, ROWS + 1)],
        )
    return path


def _source(db: Path, **fields: object) -> dict[str, object]:
    return {"url": f"sqlite:///{db}", "table": "orders", "chunk_rows": 1000, **fields}


def _csv_parts(files: list[str]) -> list[tuple[list[list[str]], str]]:
    """Each file's rows (after its header) and its last line, read by the csv module."""
    parts = []
    for path in files:
        text = Path(path).read_text()
        *rows, last = list(csv.reader(io.StringIO(text, newline="")))
        parts.append((rows[1:], "|".join(last)))
    return parts


def test_csv_parts_of_3000_rows_each_with_its_trailer(orders_db: Path, tmp_path: Path) -> None:
    result = export(
        source=_source(orders_db),
        destination={"url": str(tmp_path / "{export}.{ext}"), "max_file_rows": 3000},
        format="csv",
        format_options={"trailer": "TRL|{part}|{rows}|{export}"},
    )
    assert [Path(path).name for path in result.files] == [
        f"orders-000{n}.csv" for n in (1, 2, 3, 4)
    ]
    parts = _csv_parts(result.files)
    assert [len(rows) for rows, _ in parts] == [3000, 3000, 3000, 1000]
    assert [last for _, last in parts] == [
        "TRL|1|3000|orders",
        "TRL|2|3000|orders",
        "TRL|3|3000|orders",
        "TRL|4|1000|orders",
    ]
    assert [int(row[0]) for rows, _ in parts for row in rows] == list(range(1, ROWS + 1))
    assert parts[0][0][9] == ["10", "order, 10"]
    assert result.rows == ROWS


def test_one_jsonl_file_with_preamble_and_total_rows(orders_db: Path, tmp_path: Path) -> None:
    result = export(
        source=_source(orders_db),
        destination={"url": str(tmp_path / "{export}.{ext}")},
        format="jsonl",
        format_options={"preamble": "HDR|{export}|{part}", "trailer": "TRL|{rows}|{total_rows}"},
    )
    [path] = result.files
    expected = "".join(
        json.dumps(
            {"id": i, "name": f"order {i}" if i % 10 else f"order, {i}"}, separators=(",", ":")
        )
        + "\n"
        for i in range(1, ROWS + 1)
    )
    data = Path(path).read_bytes()
    assert data == f"HDR|orders|1\n{expected}TRL|10000|10000\n".encode()


def test_parquet_parts_of_3000_rows(orders_db: Path, tmp_path: Path) -> None:
    result = export(
        source=_source(orders_db),
        destination={
            "url": str(tmp_path / "{export}-{part:02d}.{ext}"),
            "max_file_rows": 3000,
            "manifest": True,
        },
        format="parquet",
    )
    assert [Path(path).name for path in result.files] == [
        f"orders-0{n}.parquet" for n in (1, 2, 3, 4)
    ]
    tables = [pq.read_table(path) for path in result.files]
    assert [table.num_rows for table in tables] == [3000, 3000, 3000, 1000]
    ids = [i for table in tables for i in table.column("id").to_pylist()]
    assert ids == list(range(1, ROWS + 1))
    assert result.manifest is not None
    manifest = json.loads(Path(result.manifest).read_text())
    assert [item["rows"] for item in manifest["files"]] == [3000, 3000, 3000, 1000]


def test_partitions_cut_by_rows_and_numbered_in_range_order(
    orders_db: Path, tmp_path: Path
) -> None:
    result = export(
        source=_source(orders_db, partitions=2, partition_by="id"),
        destination={"url": str(tmp_path / "{export}.{ext}"), "max_file_rows": 3000},
        format="csv",
        format_options={"trailer": "TRL|{rows}"},
    )
    assert [Path(path).name for path in result.files] == [
        f"orders-000{n}.csv" for n in (1, 2, 3, 4)
    ]
    parts = _csv_parts(result.files)
    counts = [len(rows) for rows, _ in parts]
    assert all(count <= 3000 for count in counts) and sum(counts) == ROWS
    assert counts[0] == counts[2] == 3000  # each range's first part is full
    assert [last for _, last in parts] == [f"TRL|{count}" for count in counts]
    assert [int(row[0]) for rows, _ in parts for row in rows] == list(range(1, ROWS + 1))
