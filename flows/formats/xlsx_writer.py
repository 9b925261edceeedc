"""Excel workbooks (.xlsx) through XlsxWriter: one sheet, `data`, a header row of the column
names, then one row per source row.

XlsxWriter runs in `constant_memory` mode: each row is written out as soon as the next begins
(to XlsxWriter's own temporary file of the sheet's XML, in a folder of this writer's under the
system's temporary folder, removed when the workbook is finished or thrown away), and strings
are inline, so memory stays flat however many rows the file holds. Closing the writer zips the
workbook straight into the part's stream: Python's zipfile writes a stream it cannot seek (a
data descriptor after each member), so nothing else is spooled.

It is fed as a text format is (flows/sources/read.py): a decimal arrives as its exact text,
PostgreSQL's NaN included, and becomes a number only where Excel holds it.

Values Excel keeps are written natively: numbers, booleans, dates and times (as serial numbers
with a number format). Values Excel would mangle are written as the text CSV writes (see
README, "How values are written"): a number with more than 15 significant digits, NaN and
infinities, a date or timestamp outside 1900-01-01 .. 9999-12-31 or with a fraction of a
millisecond; UUIDs, JSON, bytes (base64) and arrays are always text.
"""

from __future__ import annotations

import io
import math
import shutil
import tempfile
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import xlsxwriter
from xlsxwriter.format import Format as CellFormat
from xlsxwriter.worksheet import Worksheet

from flows.core.columns import Kind, is_undetermined, kind_of
from flows.core.config import FormatOptions
from flows.core.errors import FormatError
from flows.formats import render
from flows.formats.writers import RENDER_ROWS, BatchWriter

SHEET_NAME = "data"
# Excel's cell limit, in characters: a longer value is refused, never cut.
MAX_CELL_CHARS = 32_767
# Excel keeps 15 significant digits of a number; a value with more is written as its text.
EXCEL_DIGITS = 15
# Excel's dates: serial 1 is 1900-01-01, 2958465 is 9999-12-31. Serial 60 is the 1900-02-29
# Excel believes in (Lotus's leap-year bug), so days from 1900-03-01 on are one further.
UNIX_EPOCH_SERIAL = 25_569  # 1970-01-01
_FIRST_DAY = -25_567  # 1900-01-01, in days since 1970-01-01
_MARCH_1900 = -25_508  # 1900-03-01
_LAST_DAY = 2_932_896  # 9999-12-31
_DAY_MICROS = 86_400_000_000
_LARGEST = 9.99999999999999e307  # Excel's largest number; past it a cell shows #NUM!
_SMALLEST = 2.2250738585072014e-308  # and its smallest above zero

Cell = tuple[Callable[..., Any], Any, CellFormat | None] | None


class XlsxWriter(BatchWriter):
    """An .xlsx workbook with one sheet: the header row now, the rows as they come, the zip
    at close. At most 1,048,575 data rows (flows/core/formats.py XLSX_MAX_ROWS): PartSink cuts
    a larger export into parts."""

    def __init__(self, file: BinaryIO, schema: pa.Schema, options: FormatOptions) -> None:
        super().__init__(file, schema, options)
        self._tmpdir = tempfile.mkdtemp(prefix="exports-xlsx-")
        self._out = _Output(file)
        self._book = xlsxwriter.Workbook(
            self._out,
            {
                "constant_memory": True,
                "tmpdir": self._tmpdir,
                # Text stays text: never a formula (`=1+1`), a link or a number (`0012`).
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
            },
        )
        self._sheet: Worksheet = self._book.add_worksheet(SHEET_NAME)
        self._formats: dict[str, CellFormat] = {}
        for column, name in enumerate(schema.names):
            self._sheet.write_string(0, column, _checked(name, name, "the header"))
        self._sheet.freeze_panes(1, 0)  # the header stays in view

    def write(self, batch: pa.RecordBatch, budget: int | None = None) -> int:  # noqa: ARG002 - max_file_mb is refused for xlsx
        """Every row of `batch` (PartSink gives at most the rows the sheet still holds)."""
        for start in range(0, batch.num_rows, RENDER_ROWS):
            piece = batch.slice(start, RENDER_ROWS)
            columns = [
                self._cells(piece.column(i), field, self.rows + start)
                for i, field in enumerate(piece.schema)
            ]
            first = self.rows + start + 1  # row 0 is the header
            for offset, row in enumerate(zip(*columns, strict=True)):
                for column, cell in enumerate(row):
                    if cell is not None:  # NULL: an empty cell
                        method, value, cell_format = cell
                        method(first + offset, column, value, cell_format)
        count: int = batch.num_rows
        self.rows += count
        return count

    def close(self) -> None:
        """Zip the workbook into the file; its temporary folder goes, whatever happens."""
        try:
            self._book.close()
        except BaseException:
            self._out.sealed = True  # the half-written zip must not finish when collected
            raise
        finally:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def abandon(self) -> None:
        """A workbook thrown away is not zipped: its temporary folder is removed."""
        self._book.fileclosed = True  # nothing to zip, now or when it is collected
        sheet: Any = self._sheet
        if not sheet.row_data_fh_closed:
            sheet.row_data_fh.close()
            sheet.row_data_fh_closed = True
        shutil.rmtree(self._tmpdir, ignore_errors=True)

    # -- one column's cells --------------------------------------------------------------

    def _cells(self, column: pa.Array, field: pa.Field, row: int) -> list[Cell]:
        if is_undetermined(field):
            return [None] * len(column)
        kind = kind_of(field)
        if kind == "bool":
            return [
                None if v is None else (self._sheet.write_boolean, v, None)
                for v in column.to_pylist()
            ]
        if kind == "int":
            return [None if v is None else self._int(v) for v in column.to_pylist()]
        if kind == "float":
            return self._floats(column)
        if kind == "decimal":
            return self._decimals(column, field)
        if kind in ("date", "timestamp", "timestamptz", "time") and not pa.types.is_string(
            column.type
        ):
            return self._temporal(column, kind)
        return self._texts(render.text(column, kind), field.name, row)

    def _int(self, value: int) -> Cell:
        if abs(value) < 10**EXCEL_DIGITS:
            return (self._sheet.write_number, value, None)
        return (self._sheet.write_string, str(value), None)  # a long id keeps every digit

    def _floats(self, column: pa.Array) -> list[Cell]:
        texts = render.text(column, "float").to_pylist()
        cells: list[Cell] = []
        for value, text in zip(column.to_pylist(), texts, strict=True):
            if value is None:
                cells.append(None)
            elif _fits_excel(value) and _digits(text) <= EXCEL_DIGITS:
                cells.append((self._sheet.write_number, value, None))
            else:
                cells.append((self._sheet.write_string, text, None))
        return cells

    def _decimals(self, column: pa.Array, field: pa.Field) -> list[Cell]:
        scale = field.type.scale if pa.types.is_decimal(field.type) else None
        shown = self._format(f"0.{'0' * scale}") if scale and scale <= 30 else None
        cells: list[Cell] = []
        for text in render.text(column, "decimal").to_pylist():
            if text is None:
                cells.append(None)
                continue
            try:
                value = Decimal(text)
            except InvalidOperation:
                value = Decimal("NaN")
            number = float(value) if value.is_finite() else math.nan
            digits = _digits(format(value, "f")) if value.is_finite() else 0
            if _fits_excel(number) and digits <= EXCEL_DIGITS:
                cells.append((self._sheet.write_number, number, shown))
            else:
                cells.append((self._sheet.write_string, text, None))  # every digit, or NaN
        return cells

    def _temporal(self, column: pa.Array, kind: Kind) -> list[Cell]:
        """Dates, times and timestamps as Excel serial numbers (days since 1900-01-00) with
        a number format, from their integer days or microseconds (no Python datetime limits,
        no local zone); a value Excel cannot show exactly is its text."""
        texts = render.text(column, kind).to_pylist()
        if kind == "date":
            days = column.cast(pa.date32()).cast(pa.int32()).to_pylist()
            micros = [None if d is None else d * _DAY_MICROS for d in days]
            whole, with_ms = self._format("yyyy-mm-dd"), self._format("yyyy-mm-dd")
        elif kind == "time":
            micros = column.cast(pa.time64("us")).cast(pa.int64()).to_pylist()
            whole, with_ms = self._format("hh:mm:ss"), self._format("hh:mm:ss.000")
        else:  # a timestamp with a zone is an instant: its UTC wall-clock time
            unit = pa.timestamp("us", getattr(column.type, "tz", None))
            micros = pc.cast(column, unit).cast(pa.int64()).to_pylist()
            whole = self._format("yyyy-mm-dd hh:mm:ss")
            with_ms = self._format("yyyy-mm-dd hh:mm:ss.000")
        cells: list[Cell] = []
        for count, text in zip(micros, texts, strict=True):
            if count is None:
                cells.append(None)
                continue
            serial = _serial(count, of_day=kind == "time")
            if serial is None:
                cells.append((self._sheet.write_string, text, None))
            else:
                cell_format = whole if count % 1_000_000 == 0 else with_ms
                cells.append((self._sheet.write_number, serial, cell_format))
        return cells

    def _texts(self, texts: pa.Array, column: str, row: int) -> list[Cell]:
        cells: list[Cell] = []
        for offset, text in enumerate(texts.to_pylist()):
            if text is None:
                cells.append(None)
            else:
                where = f"row {row + offset + 1}"
                cells.append((self._sheet.write_string, _checked(text, column, where), None))
        return cells

    def _format(self, number_format: str) -> CellFormat:
        found = self._formats.get(number_format)
        if found is None:
            found = self._formats[number_format] = self._book.add_format(
                {"num_format": number_format}
            )
        return found


class _Output(io.RawIOBase):
    """The part's stream as the workbook's zip sees it: written in order, never sought, and
    sealed after a failure (zipfile writes its end record when it is collected)."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.sealed = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if not self.sealed:
            self.inner.write(data)
        return len(data)


def _serial(micros: int, *, of_day: bool) -> float | None:
    """The Excel serial number of a date or timestamp (microseconds since 1970-01-01) or a
    time of day (microseconds since midnight); None where Excel would not hold it exactly:
    before 1900-01-01, after 9999-12-31, or with a fraction of a millisecond."""
    if micros % 1_000:
        return None
    if of_day:
        return micros / _DAY_MICROS
    day = micros // _DAY_MICROS
    if not _FIRST_DAY <= day <= _LAST_DAY:
        return None
    epoch = UNIX_EPOCH_SERIAL if day >= _MARCH_1900 else UNIX_EPOCH_SERIAL - 1
    return epoch + micros / _DAY_MICROS


def _fits_excel(number: float) -> bool:
    return number == 0 or _SMALLEST <= abs(number) <= _LARGEST


def _digits(text: str) -> int:
    """Significant digits of a number's text (`0.30000000000000004` has 17, `1e-05` one)."""
    mantissa = text.lower().split("e")[0].lstrip("+-").replace(".", "")
    return len(mantissa.strip("0")) or 1


def _checked(text: str, column: str, where: str) -> str:
    if len(text) > MAX_CELL_CHARS:
        raise FormatError(
            f"column `{column}`: {where} holds {len(text):,} characters, more than the "
            f"{MAX_CELL_CHARS:,} of an Excel cell; shorten it in the query (e.g. "
            "left(column, 32767)) or export csv, jsonl or parquet"
        )
    return text
