"""`destination.compression`: gzip, zstd, bz2 and xz files, written by the sink a part at a time
(flows/sink.py over flows/core/codecs.py) and read back by each codec's own command-line tool,
the way a partner opens them: each part on its own, cut on its compressed size."""

from __future__ import annotations

import csv
import io
import random
import subprocess
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from flows.core.codecs import CODECS, codec_suffix, compressor, with_codec_suffix
from flows.core.config import FormatOptions
from flows.core.targets import TargetContext
from flows.destinations.store import MIB
from flows.request import DestinationConfig
from flows.sink import PartSink

pytestmark = pytest.mark.unit

# The command that decompresses each codec to stdout: the partner's tool, not our library.
TOOLS = {
    "gzip": ["/usr/bin/gzip", "-d", "-c"],
    "zstd": ["/usr/bin/zstd", "-d", "-c", "-q"],
    "bz2": ["/usr/bin/bzip2", "-d", "-c"],
    "xz": ["/usr/bin/xz", "-d", "-c"],
}
SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("code", pa.string())])
CHUNK_ROWS = 1_000


def decompressed(codec: str, path: Path) -> bytes:
    return subprocess.run([*TOOLS[codec], str(path)], check=True, capture_output=True).stdout


def batches(rows: int) -> list[pa.RecordBatch]:
    """Ids and random hex (incompressible halves, so parts fill up)."""
    rng = random.Random(26)
    codes = [f"{rng.getrandbits(64):016x}-{i % 13}" for i in range(rows)]
    return [
        pa.record_batch(
            [
                pa.array(range(start, start + CHUNK_ROWS)),
                pa.array(codes[start : start + CHUNK_ROWS]),
            ],
            schema=SCHEMA,
        )
        for start in range(0, rows, CHUNK_ROWS)
    ]


@pytest.mark.parametrize(
    ("compression", "suffix", "media_type"),
    [
        ("gzip", ".gz", "application/gzip"),
        ("zstd", ".zst", "application/zstd"),
        ("bz2", ".bz2", "application/x-bzip2"),
        ("xz", ".xz", "application/x-xz"),
    ],
)
def test_each_codec_names_its_files_and_their_media_type(
    compression: str, suffix: str, media_type: str
) -> None:
    assert codec_suffix(compression) == suffix
    assert CODECS[compression].media_type == media_type
    assert with_codec_suffix("out/orders-0001.csv", compression) == f"out/orders-0001.csv{suffix}"
    assert with_codec_suffix(f"out/orders.csv{suffix}", compression) == f"out/orders.csv{suffix}"
    assert with_codec_suffix("out/orders.csv", "none") == "out/orders.csv"


@pytest.mark.parametrize("compression", sorted(CODECS))
def test_a_stream_written_in_pieces_is_read_back_by_the_codecs_tool_and_is_deterministic(
    tmp_path: Path, compression: str
) -> None:
    text = b"".join(
        f"{i},r\xc3\xa9sum\xc3\xa9 {i * 7919 % 10007}\n".encode() for i in range(20_000)
    )
    outputs = []
    for _ in range(2):
        file = io.BytesIO()
        stream = compressor(compression, file)
        assert stream is not None
        for start in range(0, len(text), 10_000):
            stream.write(text[start : start + 10_000])
        stream.close()
        assert not file.closed, "closing the codec must leave the file to the sink"
        outputs.append(file.getvalue())
    assert outputs[0] == outputs[1], "the same rows give the same bytes"
    path = tmp_path / f"rows.csv{codec_suffix(compression)}"
    path.write_bytes(outputs[0])
    assert decompressed(compression, path) == text
    assert len(outputs[0]) < len(text) / 2
    assert compressor("none", io.BytesIO()) is None


# The most a part may pass the limit: the last chunk's compressed bytes plus what the codec
# still held when the part was cut (bzip2 holds a 900 kB block of text, about 400 kB of it
# compressed here: its parts are given a larger limit and more rows).
OVERSHOOT = {"gzip": 128 * 1024, "zstd": 192 * 1024, "xz": 192 * 1024, "bz2": 512 * 1024}
PART_MB = {"gzip": 0.1, "zstd": 0.1, "xz": 0.1, "bz2": 0.4}
ROWS = {"gzip": 40_000, "zstd": 40_000, "xz": 40_000, "bz2": 100_000}


@pytest.mark.parametrize("compression", sorted(CODECS))
def test_parts_are_cut_on_their_compressed_size_and_each_decompresses_on_its_own(
    tmp_path: Path, compression: str
) -> None:
    limit = int(PART_MB[compression] * MIB)
    plain = _written(tmp_path / "plain", "none", None, ROWS[compression])
    [whole] = plain
    expected = list(csv.reader(io.StringIO(whole.read_text())))

    parts = _written(tmp_path / "parts", compression, PART_MB[compression], ROWS[compression])
    suffix = codec_suffix(compression)
    assert [path.name for path in parts] == [
        f"orders-{n:04d}.csv{suffix}" for n in range(1, len(parts) + 1)
    ]
    assert len(parts) >= 3, [path.stat().st_size for path in parts]
    rows: list[list[str]] = []
    for path in parts:
        size = path.stat().st_size
        if path != parts[-1]:
            assert limit - 4096 <= size <= limit + OVERSHOOT[compression], (path.name, size)
        [header, *body] = csv.reader(io.StringIO(decompressed(compression, path).decode()))
        assert header == expected[0] and body, path.name
        rows.extend(body)
    assert rows == expected[1:]


# DuckDB opens gzip and zstd files itself; bzip2 and xz it does not (DuckDB 2.0: "compression
# type not supported"), so those are read after the codec's own tool has decompressed them.
DUCKDB_READS = {"gzip": True, "zstd": True, "bz2": False, "xz": False}
DUCKDB_READER = {"csv": "read_csv", "jsonl": "read_json"}


@pytest.mark.parametrize("fmt", sorted(DUCKDB_READER))
@pytest.mark.parametrize("compression", sorted(CODECS))
def test_duckdb_reads_every_codecs_file_back_to_the_rows(
    tmp_path: Path, compression: str, fmt: str
) -> None:
    [path] = _written(tmp_path / "out", compression, None, 3_000, fmt=fmt)
    if not DUCKDB_READS[compression]:
        plain = tmp_path / path.name.removesuffix(codec_suffix(compression))
        plain.write_bytes(decompressed(compression, path))
        path = plain
    read = DUCKDB_READER[fmt]
    rows = duckdb.sql(f"SELECT id, code FROM {read}('{path}') ORDER BY id").fetchall()
    expected = [(row["id"], row["code"]) for batch in batches(3_000) for row in batch.to_pylist()]
    assert rows == expected


def _written(
    folder: Path, compression: str, max_file_mb: float | None, rows: int, fmt: str = "csv"
) -> list[Path]:
    folder.mkdir()
    destination = DestinationConfig(
        url=f"{folder}/{{export}}.{{ext}}", compression=compression, max_file_mb=max_file_mb
    )
    context = TargetContext.sample()
    context = type(context)(**{**context.__dict__, "export": "orders", "ext": fmt})
    sink = PartSink.open(destination, fmt, SCHEMA, FormatOptions(), context)
    for batch in batches(rows):
        sink.write(batch)
    written = sink.finish()
    paths = []
    for item in written:  # publishing is the store's; here each file is moved as publish would
        Path(item.temp_path).rename(item.final_path)
        assert Path(item.final_path).stat().st_size == item.bytes
        paths.append(Path(item.final_path))
    return paths
