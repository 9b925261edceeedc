"""A part the run throws away (flows/sink.py `PartSink.abort`): its temporary file is gone, and
nothing of the writer writes after the file is let go. A Parquet writer left open wrote its
footer into the closed file when it was collected, an exception Python can only print."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from flows.core.codecs import COMPRESSIONS
from flows.core.config import FormatOptions
from flows.core.formats import EXPORT_FORMATS, ExportFormat
from flows.core.targets import TargetContext
from flows.request import DestinationConfig
from flows.sink import PartSink

pytestmark = pytest.mark.unit

SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])
BATCH = pa.record_batch([pa.array(range(1000)), pa.array(["x"] * 1000)], schema=SCHEMA)


@pytest.fixture
def unraisable() -> Iterator[list[Any]]:
    """What Python reports as "Exception ignored in ..." while the test runs."""
    seen: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        yield seen
    finally:
        sys.unraisablehook = previous


# Every format plain, every codec around one format and around Parquet's footer: what an
# abort lets go of is the writer and the compressor (each case collects garbage, ~0.4 s).
CASES = [
    *((fmt, "none") for fmt in EXPORT_FORMATS),
    *(("csv", codec) for codec in COMPRESSIONS if codec != "none"),
    *(("parquet", codec) for codec in COMPRESSIONS if codec != "none"),
]


@pytest.mark.parametrize(("fmt", "compression"), CASES)
def test_an_aborted_part_leaves_no_file_and_writes_nothing_after(
    tmp_path: Path, fmt: ExportFormat, compression: str, unraisable: list[Any]
) -> None:
    destination = DestinationConfig(url=f"{tmp_path}/{{export}}.{{ext}}", compression=compression)
    context = TargetContext.sample()
    context = type(context)(**{**context.__dict__, "export": "orders", "ext": fmt})
    sink = PartSink.open(destination, fmt, SCHEMA, FormatOptions(), context)
    sink.write(BATCH)
    assert [path.name for path in tmp_path.iterdir()]  # the temporary file exists
    sink.abort()
    del sink
    gc.collect()
    assert list(tmp_path.iterdir()) == []
    assert [str(report.exc_value) for report in unraisable] == []
