"""Delivery: destination templates, gzip, size-based splitting and publishing at the final path.

Every test runs the real `export` flow against a generated SQLite table of 20,000 rows and
reads the delivered files back from disk, parsing each one as its format.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import random
import re
import sqlite3
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import fastavro
import openpyxl
import pyarrow.parquet as pq
import pytest

from flows.core import formats
from flows.core.formats import EXPORT_FORMATS
from flows.destinations.store import MIB
from flows.export import export
from flows.runs.result import ExportResult
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.usefixtures("prefect_api")

ROWS = 20_000
CHUNK_ROWS = 1_000
MAX_FILE_MB = 0.25
LIMIT_BYTES = int(MAX_FILE_MB * MIB)
TEXT_FORMATS = ("csv", "json", "jsonl", "xml")
NAMES = ("plain", "comma, inside", 'quote "here"', "ünïcödé ✓", "<xml & special>", "")


@pytest.fixture(scope="module")
def events_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`events`: 20,000 rows of ints, text needing escapes, floats, random hex and NULLs."""
    path = tmp_path_factory.mktemp("delivery-db") / "events.sqlite"
    rng = random.Random(20240501)
    rows = [
        (
            i,
            NAMES[i % len(NAMES)],
            round(rng.uniform(-1000, 1000), 2),
            f"{rng.getrandbits(128):032x}",  # incompressible, so Parquet also splits
            None if i % 7 == 0 else f"note {i}",
        )
        for i in range(1, ROWS + 1)
    ]
    with sqlite3.connect(path) as conn:
        conn.execute(
            "create table events (id integer primary key, name text not null, amount real, "
            "code text not null, note text)"
        )
        conn.executemany("insert into events values (?, ?, ?, ?, ?)", rows)
    conn.close()
    return path


def _source(db: Path) -> dict[str, Any]:
    return {"url": f"sqlite:///{db}", "table": "events", "chunk_rows": CHUNK_ROWS}


def _files(folder: Path) -> list[str]:
    """Every file under `folder` (hidden temporary files included), relative and sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --- parsing one delivered document ------------------------------------------------------------


def _parse_csv(data: bytes) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    header = next(reader)
    return header, [dict(zip(header, row, strict=True)) for row in reader]


def _parse_json(data: bytes) -> list[dict[str, Any]]:
    document = json.loads(data)
    assert isinstance(document, list), "a JSON file is one array"
    return document


def _parse_jsonl(data: bytes) -> list[dict[str, Any]]:
    text = data.decode("utf-8")
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def _parse_xml(data: bytes) -> list[dict[str, Any]]:
    root = ET.fromstring(data)
    assert root.tag == "root"
    assert all(item.tag == "item" for item in root)
    return [{child.tag: child.text for child in item} for item in root]


def _parse_parquet(data: bytes) -> list[dict[str, Any]]:
    return pq.read_table(io.BytesIO(data)).to_pylist()


def _parse_avro(data: bytes) -> list[dict[str, Any]]:
    return list(fastavro.reader(io.BytesIO(data)))


def _parse_xlsx(data: bytes) -> list[dict[str, Any]]:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    header, *rows = book["data"].iter_rows(values_only=True)
    book.close()
    return [dict(zip(header, row, strict=True)) for row in rows]


def _parse(fmt: str, data: bytes) -> list[dict[str, Any]]:
    if fmt == "csv":
        header, rows = _parse_csv(data)
        assert header == ["id", "name", "amount", "code", "note"], "each CSV part has a header"
        return rows
    parsers: dict[str, Callable[[bytes], list[dict[str, Any]]]] = {
        "json": _parse_json,
        "jsonl": _parse_jsonl,
        "xml": _parse_xml,
        "parquet": _parse_parquet,
        "avro": _parse_avro,
        "xlsx": _parse_xlsx,
    }
    return parsers[fmt](data)


def _ids(rows: list[dict[str, Any]]) -> list[int]:
    return [int(row["id"]) for row in rows]


# --- one plain (unsplit, uncompressed) export per format, shared by the comparisons -------------


@pytest.fixture(scope="module")
def plain_export(
    events_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], tuple[ExportResult, bytes]]:
    cache: dict[str, tuple[ExportResult, bytes]] = {}

    def run(fmt: str) -> tuple[ExportResult, bytes]:
        if fmt not in cache:
            out = tmp_path_factory.mktemp(f"plain-{fmt}")
            result = export(
                source=_source(events_db),
                destination={"url": f"{out}/{{export}}.{{ext}}"},
                format=fmt,
            )
            assert _files(out) == [f"events.{fmt}"]
            cache[fmt] = (result, (out / f"events.{fmt}").read_bytes())
        return cache[fmt]

    return run


class TestTemplateTokens:
    def test_every_token_renders(self, events_db: Path, tmp_path: Path) -> None:
        out = tmp_path / "out"
        before = datetime.now(UTC)
        state = export(
            source=_source(events_db),
            destination={
                "url": f"{out}/{{deployment}}/{{date:%Y/%m/%d}}/{{export}}-{{run_id}}.{{ext}}"
            },
            format="jsonl",
            name="daily-events",
            return_state=True,
        )
        after = datetime.now(UTC)
        result = state.result()
        assert isinstance(result, ExportResult)

        # {run_id} is the flow run's id, and it is what the result reports.
        assert result.export_request_id == str(state.state_details.flow_run_id)
        uuid.UUID(result.export_request_id)
        days = {(before - timedelta(seconds=1)).date(), after.date()}
        expected = {
            f"adhoc/{day:%Y/%m/%d}/daily-events-{result.export_request_id}.jsonl" for day in days
        }
        files = _files(out)
        assert len(files) == 1 and files[0] in expected, files
        assert (out / files[0]).parent.is_dir()  # the date folders were created
        assert result.files == [str(out / files[0])]
        assert result.rows == ROWS
        assert result.bytes == (out / files[0]).stat().st_size

    def test_name_defaults_to_the_table(self, events_db: Path, tmp_path: Path) -> None:
        result = export(
            source=_source(events_db),
            destination={"url": f"{tmp_path}/{{export}}-{{date}}.{{ext}}"},
        )
        (only,) = _files(tmp_path)
        assert re.fullmatch(r"events-\d{4}-\d{2}-\d{2}\.csv", only), only
        assert result.name == "events"

    @pytest.mark.parametrize("fmt", EXPORT_FORMATS)
    def test_ext_follows_the_format(
        self, plain_export: Callable[[str], tuple[ExportResult, bytes]], fmt: str
    ) -> None:
        result, data = plain_export(fmt)
        assert result.format == fmt
        assert [Path(f).name for f in result.files] == [f"events.{fmt}"]
        assert _ids(_parse(fmt, data)) == list(range(1, ROWS + 1))

    def test_rows_match_the_source(
        self, events_db: Path, plain_export: Callable[[str], tuple[ExportResult, bytes]]
    ) -> None:
        _, data = plain_export("jsonl")
        with sqlite3.connect(events_db) as conn:
            source = conn.execute("select id, name, amount, code, note from events").fetchall()
        conn.close()
        exported = [tuple(row.values()) for row in _parse_jsonl(data)]
        assert exported == source


class TestGzip:
    # Avro compresses its own blocks (format_options.avro_codec) and xlsx is a zip: gzip
    # around either is refused.
    @pytest.mark.parametrize("fmt", [fmt for fmt in EXPORT_FORMATS if fmt not in ("avro", "xlsx")])
    def test_gzip_adds_gz_and_holds_the_same_bytes(
        self,
        events_db: Path,
        tmp_path: Path,
        plain_export: Callable[[str], tuple[ExportResult, bytes]],
        fmt: str,
    ) -> None:
        result = export(
            source=_source(events_db),
            destination={"url": f"{tmp_path}/{{export}}.{{ext}}", "compression": "gzip"},
            format=fmt,
        )
        assert _files(tmp_path) == [f"events.{fmt}.gz"]
        packed = (tmp_path / f"events.{fmt}.gz").read_bytes()
        _, plain = plain_export(fmt)
        assert gzip.decompress(packed) == plain
        assert len(packed) < len(plain)
        assert result.files == [str(tmp_path / f"events.{fmt}.gz")]
        assert result.bytes == len(packed)  # bytes delivered, i.e. compressed
        assert result.rows == ROWS

    def test_template_ending_in_gz_is_not_doubled(self, events_db: Path, tmp_path: Path) -> None:
        export(
            source=_source(events_db),
            destination={"url": f"{tmp_path}/{{export}}.{{ext}}.gz", "compression": "gzip"},
        )
        assert _files(tmp_path) == ["events.csv.gz"]


# Each codec's own command-line tool, decompressing to stdout: what a partner runs.
CODEC_TOOLS = {
    "gzip": ["/usr/bin/gzip", "-d", "-c"],
    "zstd": ["/usr/bin/zstd", "-d", "-c", "-q"],
    "bz2": ["/usr/bin/bzip2", "-d", "-c"],
    "xz": ["/usr/bin/xz", "-d", "-c"],
}
SUFFIXES = {"gzip": ".gz", "zstd": ".zst", "bz2": ".bz2", "xz": ".xz"}


def _decompressed(codec: str, path: Path) -> bytes:
    return subprocess.run([*CODEC_TOOLS[codec], str(path)], check=True, capture_output=True).stdout


class TestCodecs:
    @pytest.mark.parametrize(
        ("fmt", "codec"),
        [("csv", "zstd"), ("csv", "bz2"), ("csv", "xz"), ("json", "xz"), ("jsonl", "bz2"),
         ("xml", "zstd"), ("parquet", "zstd")],
    )  # fmt: skip
    def test_each_codec_is_read_back_by_its_own_tool(
        self,
        events_db: Path,
        tmp_path: Path,
        plain_export: Callable[[str], tuple[ExportResult, bytes]],
        fmt: str,
        codec: str,
    ) -> None:
        """`zstd -d`, `bzip2 -d`, `xz -d` give the uncompressed export of the table, byte for
        byte; the file is named with the codec's extension after the format's."""
        result = export(
            source=_source(events_db),
            destination={"url": f"{tmp_path}/{{export}}.{{ext}}", "compression": codec},
            format=fmt,
        )
        name = f"events.{fmt}{SUFFIXES[codec]}"
        assert _files(tmp_path) == [name]
        packed = (tmp_path / name).read_bytes()
        assert _decompressed(codec, tmp_path / name) == plain_export(fmt)[1]
        assert result.files == [str(tmp_path / name)]
        assert result.bytes == len(packed) and result.rows == ROWS

    def test_duckdb_reads_zstd_and_gzip_csv_as_the_plain_one(
        self,
        tmp_path: Path,
        events_db: Path,
        plain_export: Callable[[str], tuple[ExportResult, bytes]],
    ) -> None:
        """DuckDB opens `.csv.zst` and `.csv.gz` itself, as a partner's loader would."""
        paths = {"none": plain_export("csv")[0].files[0]}
        for codec in ("zstd", "gzip"):
            destination = {"url": f"{tmp_path}/{codec}/{{export}}.{{ext}}", "compression": codec}
            [paths[codec]] = export(source=_source(events_db), destination=destination).files
        tables = {
            codec: duckdb.sql(
                f"select * from read_csv('{path}', header = true, all_varchar = true) order by id"
            ).fetchall()
            for codec, path in paths.items()
        }
        assert paths["zstd"].endswith(".csv.zst") and paths["gzip"].endswith(".csv.gz")
        assert tables["zstd"] == tables["gzip"] == tables["none"]
        assert len(tables["zstd"]) == ROWS

    def test_a_stylesheets_text_output_in_xz(self, events_db: Path, tmp_path: Path) -> None:
        """The codec wraps what the stylesheet wrote, its own extension kept before `.xz`."""
        options = {"xslt": str(REPO_ROOT / "definitions" / "fixed_width.xsl")}
        plain = export(
            source=_source(events_db),
            destination={"url": f"{tmp_path}/plain/{{export}}.{{ext}}"},
            format="xml",
            format_options=options,
        )
        packed = export(
            source=_source(events_db),
            destination={"url": f"{tmp_path}/xz/{{export}}.{{ext}}", "compression": "xz"},
            format="xml",
            format_options=options,
        )
        [text] = plain.files
        assert packed.files == [f"{tmp_path}/xz/{Path(text).name}.xz"]
        assert _decompressed("xz", Path(packed.files[0])) == Path(text).read_bytes()

    @pytest.mark.parametrize("codec", ["zstd", "bz2", "xz"])
    def test_parts_with_a_manifest_each_decompress_on_their_own(
        self,
        events_db: Path,
        tmp_path: Path,
        plain_export: Callable[[str], tuple[ExportResult, bytes]],
        codec: str,
    ) -> None:
        """Parts are cut on their compressed size and numbered before the codec's extension;
        the manifest beside them gives each file's compressed bytes and their sha256."""
        limit_mb = 0.2 if codec == "bz2" else MAX_FILE_MB  # bzip2 holds a 900 kB block
        result = export(
            source=_source(events_db),
            destination={
                "url": f"{tmp_path}/{{export}}.{{ext}}",
                "max_file_mb": limit_mb,
                "compression": codec,
                "manifest": True,
            },
        )
        parts = [f"events-{n:04d}.csv{SUFFIXES[codec]}" for n in range(1, len(result.files) + 1)]
        assert len(parts) >= 2
        assert _files(tmp_path) == sorted([*parts, "events.manifest.json"])
        manifest = json.loads((tmp_path / "events.manifest.json").read_text())
        assert (manifest["compression"], manifest["encrypted_to"]) == (codec, [])
        rows = []
        for item, name in zip(manifest["files"], parts, strict=True):
            data = (tmp_path / name).read_bytes()
            assert item["url"] == str(tmp_path / name)
            assert item["bytes"] == len(data)
            assert item["sha256"] == hashlib.sha256(data).hexdigest()
            if name != parts[-1]:
                assert int(limit_mb * MIB) - 4096 <= len(data) <= int(limit_mb * MIB) + 512 * 1024
            rows.extend(_parse("csv", _decompressed(codec, tmp_path / name)))
        assert rows == _parse("csv", plain_export("csv")[1])


class TestSplitting:
    # An xlsx workbook's size is known only once it is zipped: max_file_mb is refused for it
    # (it is cut by rows: tests/flows/formats/test_xlsx.py).
    @pytest.mark.parametrize("fmt", [fmt for fmt in EXPORT_FORMATS if fmt != "xlsx"])
    def test_parts_are_complete_documents(
        self,
        events_db: Path,
        tmp_path: Path,
        plain_export: Callable[[str], tuple[ExportResult, bytes]],
        fmt: str,
    ) -> None:
        result = export(
            source=_source(events_db),
            destination={"url": f"{tmp_path}/{{export}}.{{ext}}", "max_file_mb": MAX_FILE_MB},
            format=fmt,
        )
        names = _files(tmp_path)
        assert len(names) >= 2, f"expected several parts of at most {LIMIT_BYTES} B: {names}"
        assert names == [f"events-{n:04d}.{fmt}" for n in range(1, len(names) + 1)]
        assert result.files == [str(tmp_path / name) for name in names]

        parsed = []
        for name in names:
            data = (tmp_path / name).read_bytes()
            if fmt in (*TEXT_FORMATS, "avro"):  # Avro takes the blocks that fit
                assert len(data) <= LIMIT_BYTES, f"{name} is {len(data)} B"
            rows = _parse(fmt, data)
            assert rows, f"{name} holds no rows"
            parsed.extend(rows)

        _, plain = plain_export(fmt)
        assert len(parsed) == ROWS == result.rows
        assert _ids(parsed) == list(range(1, ROWS + 1))
        assert parsed == _parse(fmt, plain)
        assert result.bytes == sum((tmp_path / name).stat().st_size for name in names)

    @pytest.mark.parametrize("fmt", TEXT_FORMATS)
    def test_text_parts_use_the_room(self, events_db: Path, tmp_path: Path, fmt: str) -> None:
        """Parts are cut by size, not by chunk: every part but the last is nearly full."""
        export(
            source=_source(events_db),
            destination={"url": f"{tmp_path}/{{export}}.{{ext}}", "max_file_mb": MAX_FILE_MB},
            format=fmt,
        )
        sizes = [(tmp_path / name).stat().st_size for name in _files(tmp_path)]
        assert all(LIMIT_BYTES * 0.9 < size <= LIMIT_BYTES for size in sizes[:-1]), sizes

    def test_an_xlsx_export_past_a_sheets_rows_is_a_set_of_parts(
        self, events_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A sheet holds 1,048,575 rows (lowered here): a larger export is numbered parts
        with a manifest, as max_file_rows makes them, and a smaller set of the same template
        replaces a larger one whole."""
        monkeypatch.setattr(formats, "XLSX_MAX_ROWS", 5_000)
        destination = {"url": f"{tmp_path}/{{export}}.{{ext}}", "manifest": True}
        export(source=_source(events_db), destination=destination, format="xlsx")
        assert _files(tmp_path) == [
            *(f"events-{n:04d}.xlsx" for n in (1, 2, 3, 4)),
            "events.manifest.json",
        ]
        monkeypatch.setattr(formats, "XLSX_MAX_ROWS", 8_000)
        result = export(source=_source(events_db), destination=destination, format="xlsx")
        names = [f"events-{n:04d}.xlsx" for n in (1, 2, 3)]
        assert _files(tmp_path) == [*names, "events.manifest.json"]  # the fourth part went
        parts = [_parse_xlsx((tmp_path / name).read_bytes()) for name in names]
        assert [len(rows) for rows in parts] == [8_000, 8_000, 4_000]
        assert _ids([row for rows in parts for row in rows]) == list(range(1, ROWS + 1))
        manifest = json.loads((tmp_path / "events.manifest.json").read_text())
        assert [Path(item["url"]).name for item in manifest["files"]] == names
        assert [item["rows"] for item in manifest["files"]] == [8_000, 8_000, 4_000]
        assert result.files == [str(tmp_path / name) for name in names]

    def test_part_token_format_is_honoured(self, events_db: Path, tmp_path: Path) -> None:
        export(
            source=_source(events_db),
            destination={
                "url": f"{tmp_path}/{{export}}-{{part:03d}}.{{ext}}",
                "max_file_mb": MAX_FILE_MB,
            },
        )
        names = _files(tmp_path)
        assert len(names) >= 2
        assert names == [f"events-{n:03d}.csv" for n in range(1, len(names) + 1)]

    def test_part_number_goes_before_the_extension_not_into_folders(
        self, events_db: Path, tmp_path: Path
    ) -> None:
        folder = tmp_path / "v1.2"
        export(
            source=_source(events_db),
            destination={"url": f"{folder}/{{export}}.{{ext}}", "max_file_mb": MAX_FILE_MB},
        )
        names = _files(tmp_path)
        assert len(names) >= 2
        assert names == [f"v1.2/events-{n:04d}.csv" for n in range(1, len(names) + 1)]

    def test_gzip_parts_are_cut_on_their_compressed_size(
        self, events_db: Path, tmp_path: Path
    ) -> None:
        """A gzip part is cut between chunks once the compressed bytes in the file reach the
        limit: every part but the last holds at least the limit, and passes it by less than
        a chunk (and zlib's buffer)."""
        result = export(
            source=_source(events_db),
            destination={
                "url": f"{tmp_path}/{{export}}.{{ext}}",
                "max_file_mb": MAX_FILE_MB,
                "compression": "gzip",
            },
        )
        names = _files(tmp_path)
        assert len(names) >= 2
        assert names == [f"events-{n:04d}.csv.gz" for n in range(1, len(names) + 1)]
        rows = []
        sizes = [(tmp_path / name).stat().st_size for name in names]
        assert all(LIMIT_BYTES - 4096 <= size <= LIMIT_BYTES + 128 * 1024 for size in sizes[:-1])
        assert sizes[-1] <= LIMIT_BYTES + 128 * 1024
        for name in names:
            data = gzip.decompress((tmp_path / name).read_bytes())
            assert len(data) > LIMIT_BYTES or name == names[-1], "not cut before compression"
            rows.extend(_parse("csv", data))
        assert _ids(rows) == list(range(1, ROWS + 1)) and result.rows == ROWS

    def test_a_smaller_set_removes_the_earlier_runs_higher_parts(
        self, events_db: Path, tmp_path: Path
    ) -> None:
        """Issue 24: run A writes parts 1-N, run B with fewer rows parts 1-M: A's parts M+1..N
        stayed next to B's, and B's manifest listed M of the folder's N parts. Now publishing B
        removes them: the folder holds exactly B's parts and its manifest, which lists them
        all. Files that are not this template's rendering with a part number stay."""
        destination = {
            "url": f"{tmp_path}/{{export}}.{{ext}}",
            "max_file_mb": MAX_FILE_MB,
            "manifest": True,
        }
        first = export(source=_source(events_db), destination=destination)
        decoys = ["events-00099.csv", "events-0099.csv.bak", "events-0099.json", "other-0099.csv"]
        for name in decoys:
            (tmp_path / name).write_text("not a part of this export\n")
        fewer = {
            **_source(events_db),
            "table": None,
            "query": "select * from events where id <= 6000",
        }
        second = export(source=fewer, destination=destination, name="events")
        assert 1 < len(second.files) < len(first.files)
        parts = [f"events-{n:04d}.csv" for n in range(1, len(second.files) + 1)]
        assert _files(tmp_path) == sorted([*parts, "events.manifest.json", *decoys])
        manifest = json.loads((tmp_path / "events.manifest.json").read_text())
        assert [item["url"] for item in manifest["files"]] == [str(tmp_path / n) for n in parts]
        rows = [row for name in parts for row in _parse("csv", (tmp_path / name).read_bytes())]
        assert _ids(rows) == list(range(1, 6001)) and manifest["rows"] == 6000

    def test_an_earlier_part_that_cannot_be_removed_fails_the_run(
        self, events_db: Path, tmp_path: Path
    ) -> None:
        """Issue 24: when an earlier run's higher part cannot be removed (here an immutable
        file), the run fails naming it, and takes its own parts back rather than publish
        them among a stale part."""
        destination = {"url": f"{tmp_path}/{{export}}.{{ext}}", "max_file_mb": MAX_FILE_MB}
        first = export(source=_source(events_db), destination=destination)
        last = f"events-{len(first.files):04d}.csv"
        if subprocess.run(["chattr", "+i", tmp_path / last], check=False).returncode != 0:
            pytest.skip("needs chattr +i (root, on a filesystem that supports it)")
        try:
            fewer = {
                **_source(events_db),
                "table": None,
                "query": "select * from events where id <= 6000",
            }
            state = export(source=fewer, destination=destination, name="events", return_state=True)
            assert state.is_failed()
            message = str(state.result(raise_on_failure=False))
            assert _files(tmp_path) == [last]
        finally:
            subprocess.run(["chattr", "-i", tmp_path / last], check=False)
        assert (
            f"cannot remove `{tmp_path / last}` from Local folder, part {len(first.files)}"
            in message
        ), message
        assert "this run's parts were taken back" in message, message


class TestPublishing:
    def test_existing_file_is_replaced_atomically(
        self,
        events_db: Path,
        tmp_path: Path,
        plain_export: Callable[[str], tuple[ExportResult, bytes]],
    ) -> None:
        """The new file is renamed over the old one: never rewritten in place, never partial."""
        final = tmp_path / "events.csv"
        old = b"id,name\n0,an earlier export\n"
        final.write_bytes(old)
        old_inode = final.stat().st_ino
        with final.open("rb") as reader_of_old_file:
            export(source=_source(events_db), destination={"url": f"{tmp_path}/events.{{ext}}"})
            # A reader that had the old file open still sees all of it: it was not truncated.
            assert reader_of_old_file.read() == old
        _, plain = plain_export("csv")
        assert final.read_bytes() == plain
        assert final.stat().st_ino != old_inode
        assert _files(tmp_path) == ["events.csv"]

    @pytest.mark.parametrize("scheme", ["file://", "local://"])
    def test_url_with_a_local_scheme(
        self,
        events_db: Path,
        tmp_path: Path,
        plain_export: Callable[[str], tuple[ExportResult, bytes]],
        scheme: str,
    ) -> None:
        result = export(
            source=_source(events_db),
            destination={"url": f"{scheme}{tmp_path}/out/{{export}}.{{ext}}"},
        )
        assert _files(tmp_path) == ["out/events.csv"]
        assert (tmp_path / "out" / "events.csv").read_bytes() == plain_export("csv")[1]
        assert [os.path.realpath(f) for f in result.files] == [
            os.path.realpath(tmp_path / "out" / "events.csv")
        ]
