"""PostgreSQL fast path: COPY (query) TO STDOUT, as Arrow batches or as finished rows.

COPY is the fastest way out of PostgreSQL (see docs/benchmarks.md). `copy_batches`: the
server formats the rows as CSV, pyarrow's C++ CSV reader types them by the column types
PostgreSQL reports, and the writers render from those batches, so no Python runs per row.
`copy_rows`: the rows are already the output (flows/sources/pg_render.py) and only move to the file.
"""

from __future__ import annotations

import queue
import re
import select
import threading
from array import array as int_array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa
from psycopg import pq
from psycopg.types.string import TextLoader
from sqlalchemy.dialects import postgresql

from flows.core.columns import array_field, decimal_field, kind_of, make_field
from flows.core.errors import ConfigurationError, SourceError, TransientSourceError, first_line
from flows.sources.failures import source_failure

# Session settings that make COPY's text unambiguous for the CSV parser.
SESSION_SETTINGS = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET client_encoding = 'UTF8'",
    # JIT compiles our wide render expressions anew for every export and costs more than it
    # saves: 4.4 s instead of 5.3-7.1 s on the benchmark's 2M rows (docs/benchmarks.md).
    "SET jit = off",
)
# A partition is already one of N readers running at once: a parallel plan would make each
# of them scan the whole table (Parallel Seq Scan + filter) instead of its own block range.
PARTITION_SETTINGS = ("SET max_parallel_workers_per_gather = 0",)
# Parse blocks: larger ones parse no faster and hold more memory; a block grows to the row
# that needs it (a value of up to 1 GB).
CSV_BLOCK_BYTES = 1024 * 1024
# A chunk of large values is cut short of `chunk_rows`: Arrow's string and binary arrays hold
# at most 2 GiB, and a chunk's memory should follow its values, not a count of rows.
CHUNK_BYTES = 256 * 1024 * 1024
BLOCK_BYTES = 4 * 1024 * 1024  # COPY data joined per queued block
HANDOFF_BYTES = 1024 * 1024  # a smaller block is handed on only when the server is slow
QUEUED_BLOCKS = 4  # at most this many blocks wait for the parser
WAIT_S = 0.5  # socket wait between checks for a stop request
_SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+")

# PostgreSQL type OIDs → (kind, Arrow type used to parse COPY's CSV text).
_OID_FIELDS: dict[int, tuple[str, pa.DataType]] = {
    16: ("bool", pa.bool_()),
    20: ("int", pa.int64()),
    21: ("int", pa.int16()),
    23: ("int", pa.int32()),
    26: ("int", pa.int64()),  # oid
    700: ("float", pa.float64()),  # float4: parsed from its shortest text, e.g. 0.1
    701: ("float", pa.float64()),
    17: ("bytes", pa.string()),  # hex text \x..., decoded after parsing
    2950: ("uuid", pa.string()),
    114: ("json", pa.string()),
    3802: ("json", pa.string()),
    1082: ("date", pa.date32()),
    1083: ("time", pa.time64("us")),
    1114: ("timestamp", pa.timestamp("us")),
    1184: ("timestamptz", pa.timestamp("us", tz="UTC")),
}
_NUMERIC_OID = 1700
# Array types (array_in/array_out, so not int2vector's space-separated text) among `oids`, with
# their element type and the delimiter between elements (`;` for box, `,` for the rest).
_ARRAY_TYPES_SQL = (
    "SELECT t.oid, e.oid, e.typdelim FROM pg_type t JOIN pg_type e ON e.oid = t.typelem "
    "WHERE t.oid = ANY(%s) AND t.typinput = 'array_in'::regproc"
)
# float4 is read from its shortest text (0.1, not 0.10000000149011612), as COPY reads it.
_TEXT_LOADED_OIDS = frozenset({700})


class Described(NamedTuple):
    """A query's columns as PostgreSQL reports them."""

    fields: list[pa.Field]
    text_oids: tuple[int, ...]  # types a row reader must take as the server's text
    type_oids: tuple[int, ...]  # each column's type
    type_names: tuple[str, ...]  # each column's type as PostgreSQL writes it, e.g. numeric(12,2)


def describe(conn: sa.Connection, sql: str, params: dict[str, Any]) -> Described:
    """Fields for the query's columns, from the types PostgreSQL reports for it, and the type
    OIDs whose values a row reader must take as the server's text (as COPY does)."""
    statement, values = _psycopg_statement(sql, params)
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    with raw.cursor() as cursor:
        cursor.execute(f"SELECT * FROM ({statement}) AS _export_probe LIMIT 0", values)
        columns = cursor.description or []
        unknown = sorted({c.type_code for c in columns} - _OID_FIELDS.keys() - {_NUMERIC_OID})
        array_types = {}
        if unknown:
            cursor.execute(_ARRAY_TYPES_SQL, (unknown,))
            array_types = {oid: (element, delimiter) for oid, element, delimiter in cursor}
    fields = [_field(column, array_types.get(column.type_code)) for column in columns]
    text_oids = {  # numeric needs none: psycopg's Decimal is exact and str() matches
        column.type_code
        for column, field in zip(columns, fields, strict=True)
        if column.type_code in _TEXT_LOADED_OIDS
        or kind_of(field) in ("str", "uuid", "json", "array")
    }
    type_oids = tuple(column.type_code for column in columns)
    type_names = tuple(str(column.type_display) for column in columns)
    return Described(fields, tuple(sorted(text_oids)), type_oids, type_names)


def prepare_connection(
    conn: sa.Connection,
    text_oids: Sequence[int],
    snapshot: str | None = None,
    *,
    partitioned: bool = False,
) -> None:
    """Give a row-reading connection COPY's session settings and text forms (and snapshot;
    `partitioned`: it reads one range of a split read)."""
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    _start_session(raw, snapshot, partitioned=partitioned)
    for oid in text_oids:
        raw.adapters.register_loader(oid, TextLoader)


def _start_session(raw: psycopg.Connection, snapshot: str | None, *, partitioned: bool) -> None:
    """Our session settings; with `snapshot` (an id from pg_export_snapshot) a REPEATABLE READ
    transaction that sees exactly that snapshot, so every partition of an export reads the
    database at the same instant."""
    if snapshot is not None:
        if not _SNAPSHOT_ID.fullmatch(snapshot):
            raise ValueError(f"`{snapshot}` is not a PostgreSQL snapshot id")
        if raw.info.transaction_status != pq.TransactionStatus.IDLE:
            raw.rollback()
        raw.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        raw.read_only = True
    for setting in SESSION_SETTINGS + (PARTITION_SETTINGS if partitioned else ()):
        raw.execute(setting)
    if snapshot is not None:  # before the transaction's first query; SET does not count
        raw.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")


def _field(column: psycopg.Column, array_type: tuple[int, str] | None = None) -> pa.Field:
    """The field of a column of the type PostgreSQL reports; an array's elements are typed as
    a column of the element type would be (decimals as exact text: arrays carry no scale)."""
    if array_type is not None:
        element, delimiter = array_type
        kind, arrow_type = _OID_FIELDS.get(element, ("str", pa.string()))
        if element == _NUMERIC_OID:
            kind = "decimal"
        return array_field(column.name, kind, delimiter, arrow_type)  # type: ignore[arg-type]
    if column.type_code == _NUMERIC_OID:
        return decimal_field(column.name, column.precision, column.scale)
    kind, arrow_type = _OID_FIELDS.get(column.type_code, ("str", pa.string()))
    if kind == "bytes":
        return make_field(column.name, "bytes")
    return make_field(column.name, kind, arrow_type)  # type: ignore[arg-type]


def copy_batches(
    url: str,
    sql: str,
    params: dict[str, Any],
    fields: Sequence[pa.Field | None],
    chunk_rows: int,
    shown: str,
    snapshot: str | None = None,
    *,
    partitioned: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Stream the query through COPY as record batches of at most `chunk_rows` rows."""
    schema = pa.schema([f for f in fields if f is not None])
    with _copy_session(
        url, sql, params, "FORMAT csv", shown, snapshot=snapshot, partitioned=partitioned
    ) as stream:
        empty = True
        for batch in _rebatch(_parse(stream, schema, shown), chunk_rows):
            empty = False
            yield batch
        if empty:  # no rows: the writers still need the columns
            yield pa.RecordBatch.from_pylist([], schema=schema)


def copy_rows(
    url: str,
    sql: str,
    params: dict[str, Any],
    copy_options: str,
    shown: str,
    snapshot: str | None = None,
    *,
    partitioned: bool = False,
) -> Iterator[pa.Array]:
    """COPY's output as it comes, one string array of whole rows (each with its line
    break) per block of about BLOCK_BYTES, so a writer can still split files between rows."""
    with _copy_session(
        url, sql, params, copy_options, shown, snapshot=snapshot, partitioned=partitioned
    ) as stream:
        for data, lengths in stream.row_blocks():
            offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
            np.cumsum(np.frombuffer(lengths, dtype=np.int32), out=offsets[1:])
            yield pa.StringArray.from_buffers(
                len(lengths), pa.py_buffer(offsets), pa.py_buffer(data)
            )


@contextmanager
def _copy_session(
    url: str,
    sql: str,
    params: dict[str, Any],
    copy_options: str,
    shown: str,
    *,
    snapshot: str | None = None,
    partitioned: bool = False,
) -> Iterator[_CopyStream]:
    """A COPY (query) TO STDOUT running on its own connection, with our session settings;
    driver errors become the export's typed errors."""
    statement, values = _psycopg_statement(sql, params)
    engine = sa.create_engine(url)
    try:
        conn = engine.raw_connection()
    except (sa.exc.DBAPIError, psycopg.Error) as exc:
        engine.dispose()
        raise source_failure(exc, shown) from exc
    try:
        raw = conn.driver_connection
        assert isinstance(raw, psycopg.Connection)
        _start_session(raw, snapshot, partitioned=partitioned)
        copy_sql = f"COPY ({statement}) TO STDOUT ({copy_options})"
        query = psycopg.ClientCursor(raw).mogrify(copy_sql, values)  # COPY takes no $n params
        stream = _CopyStream(raw, query)
        try:
            yield stream
        finally:
            stream.close()
    except psycopg.Error as exc:
        error = source_failure(exc, shown)
        lost = isinstance(exc, psycopg.OperationalError) and not isinstance(
            error, ConfigurationError
        )
        if lost or isinstance(error, TransientSourceError):
            raise TransientSourceError(
                f"source `{shown}`: the connection was lost while reading ({first_line(exc)}); "
                "check the database is running, then run the export again"
            ) from exc
        raise error from exc
    finally:
        try:
            conn.invalidate()  # never hand a half-read COPY connection back to a pool
        finally:
            engine.dispose()


class _CopyStream:
    """COPY's data in blocks of whole rows, filled by a background thread.

    libpq hands COPY data over one row per call. A thread drives libpq directly (psycopg's
    per-row Copy iterator costs more than the parsing), joins rows into blocks and queues at
    most QUEUED_BLOCKS of them, so the server keeps streaming while the caller parses and
    renders, and memory stays bounded (by the blocks, or by a row larger than a block).
    libpq's blocking calls release the GIL.
    """

    def __init__(self, raw: psycopg.Connection, query: str) -> None:
        self._pg = raw.pgconn
        self._queue: queue.Queue[Any] = queue.Queue(QUEUED_BLOCKS)
        self._done = False
        self._stop = threading.Event()
        self._pg.send_query(query.encode())
        result = self._pg.get_result()
        if result is None or result.status != pq.ExecStatus.COPY_OUT:
            message = result.get_error_message() if result is not None else b""
            self._drain()
            raise psycopg.DatabaseError(_decode(message) or "COPY did not start")
        self._thread = threading.Thread(target=self._pump, name="copy-reader", daemon=True)
        self._thread.start()

    def row_blocks(self) -> Iterator[tuple[bytes, int_array[int]]]:
        """Blocks of whole rows with each row's length (waits for each)."""
        while not self._done:
            item = self._next()
            if item is not None:
                yield item

    def _next(self) -> Any:
        """The next queued block; None at the end (then `_done`); raises the reader's error."""
        item = self._queue.get()
        if item is None or isinstance(item, BaseException):
            self._done = True
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop the reader thread (the caller closes the connection if COPY is unfinished)."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(0.05)

    def _pump(self) -> None:
        parts: list[bytes] = []
        lengths = int_array("i")
        held = 0
        try:
            while not self._stop.is_set():
                count, data = self._pg.get_copy_data(1)  # non-blocking
                if count > 0:
                    parts.append(bytes(data))
                    lengths.append(count)
                    held += count
                    if held < BLOCK_BYTES:
                        continue
                elif count == 0:  # nothing more arrived yet
                    if held < HANDOFF_BYTES:
                        ready, _, _ = select.select([self._pg.socket], [], [], WAIT_S)
                        self._pg.consume_input()
                        if ready or not parts:
                            continue
                        # A slow query: hand on the rows we have rather than sit on them.
                elif count == -1:
                    break
                else:
                    raise psycopg.OperationalError(_decode(self._pg.get_error_message()))
                self._hand_on(parts, lengths)
                parts, lengths, held = [], int_array("i"), 0
            else:
                return
            if parts:
                self._hand_on(parts, lengths)
            self._finish()
            self._put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self._put(exc)

    def _hand_on(self, parts: list[bytes], lengths: int_array[int]) -> None:
        self._put((b"".join(parts), lengths))

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _finish(self) -> None:
        result = self._pg.get_result()
        self._drain()
        if result is not None and result.status != pq.ExecStatus.COMMAND_OK:
            raise psycopg.DatabaseError(_decode(result.get_error_message()))

    def _drain(self) -> None:
        while self._pg.get_result() is not None:
            pass


def _decode(message: str | bytes) -> str:
    if isinstance(message, bytes):
        message = message.decode("utf-8", errors="replace")
    return message.strip()


def _parse(stream: _CopyStream, schema: pa.Schema, shown: str) -> Iterator[pa.RecordBatch]:
    """Each block of whole rows parsed on its own, in parse blocks at least as large as its
    longest row: pyarrow's CSV reader refuses a row that straddles two parse blocks, so a
    fixed block size would refuse any larger value (PostgreSQL allows 1 GB)."""
    names = [f"c{index}" for index in range(len(schema))]
    column_types = {  # bytea (\x + hex) and dates and timestamps are converted in _finish_batch
        name: pa.string() if _read_as_text(field.type) else field.type
        for name, field in zip(names, schema, strict=True)
    }
    # A one-column row holding NULL is an empty line: keep it.
    parse_options = pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False)
    convert_options = pacsv.ConvertOptions(
        column_types=column_types,
        true_values=["t"],
        false_values=["f"],
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    for data, lengths in stream.row_blocks():
        longest = int(np.frombuffer(lengths, dtype=np.int32).max())
        # One parsing thread: the COPY thread already overlaps I/O with parsing.
        read_options = pacsv.ReadOptions(
            column_names=names, block_size=max(CSV_BLOCK_BYTES, longest + 1), use_threads=False
        )
        try:
            reader = pacsv.open_csv(
                pa.BufferReader(data),
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
        except pa.ArrowInvalid as exc:
            raise _parse_error(exc, schema, shown) from exc
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as exc:
                raise _parse_error(exc, schema, shown) from exc
            yield _finish_batch(batch, schema, shown)


def _read_as_text(arrow_type: pa.DataType) -> bool:
    """Types the CSV parser is given as text: bytea's hex, and dates and timestamps, whose BC
    values (`0044-03-15 12:00:00 BC`) it cannot read. Arrow's cast from text costs no more
    than the parser's own conversion."""
    return bool(
        pa.types.is_binary(arrow_type)
        or pa.types.is_timestamp(arrow_type)
        or pa.types.is_date(arrow_type)
    )


def _finish_batch(batch: pa.RecordBatch, schema: pa.Schema, shown: str) -> pa.RecordBatch:
    arrays = []
    for array, field in zip(batch.columns, schema, strict=True):
        if pa.types.is_binary(field.type):  # bytea arrives as \x followed by hex
            array = pa.array(
                [None if v is None else bytes.fromhex(v[2:]) for v in array.to_pylist()],
                pa.binary(),
            )
        elif array.type != field.type:
            try:
                array = _dated(array, field.type)
            except pa.ArrowInvalid as exc:
                raise _parse_error(exc, schema, shown, field.name) from exc
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# The Gregorian calendar repeats every 400 years: 146,097 days.
_CYCLE_DAYS = 146_097
_CYCLE_MICROS = _CYCLE_DAYS * 86_400 * 1_000_000


def _dated(text: pa.Array, arrow_type: pa.DataType) -> pa.Array:
    """Dates and timestamps from PostgreSQL's text, BC ones included (Arrow reads years 1 to
    9999): a BC value is read 400-year cycles later, and those cycles taken off again."""
    try:
        return pc.cast(text, arrow_type)
    except pa.ArrowInvalid:
        era = pc.fill_null(pc.ends_with(text, " BC"), False)
        if not pc.any(era).as_py():
            raise
    common_era = pc.cast(pc.if_else(era, pa.scalar(None, pa.string()), text), arrow_type)
    shifted, cycles = [], []
    for value in pc.filter(text, era).to_pylist():
        year, rest = value.removesuffix(" BC").split("-", 1)
        astronomical = 1 - int(year)  # 1 BC is the year 0
        count = -astronomical // 400 + 1
        shifted.append(f"{astronomical + 400 * count:04d}-{rest}")
        cycles.append(count)
    dates = pa.types.is_date32(arrow_type)  # else timestamp(us), as _OID_FIELDS reads them
    integer, per_cycle = (pa.int32(), _CYCLE_DAYS) if dates else (pa.int64(), _CYCLE_MICROS)
    later = pc.cast(pc.cast(pa.array(shifted), arrow_type), integer)
    values = pc.subtract(later, pa.array([c * per_cycle for c in cycles], integer))
    return pc.replace_with_mask(common_era, era, pc.cast(values, arrow_type))


def _rebatch(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Regroup the parser's byte-sized blocks into chunks of `rows` rows, or fewer where the
    rows are large: a chunk holds about CHUNK_BYTES at most (and at least one block)."""
    pending: list[pa.RecordBatch] = []
    held = size = 0
    for batch in batches:
        if pending and size + batch.nbytes > CHUNK_BYTES:
            yield pa.concat_batches(pending) if len(pending) > 1 else pending[0]
            pending, held, size = [], 0, 0
        pending.append(batch)
        held += batch.num_rows
        size += batch.nbytes
        while held >= rows:
            combined = pa.concat_batches(pending) if len(pending) > 1 else pending[0]
            yield combined.slice(0, rows)
            rest = combined.slice(rows)
            pending = [rest] if rest.num_rows else []
            held, size = rest.num_rows, rest.nbytes
    if held:
        yield pa.concat_batches(pending) if len(pending) > 1 else pending[0]


def quote_identifier(name: str) -> str:
    """A column name as PostgreSQL reads it (quoted where it needs to be)."""
    return str(postgresql.psycopg.dialect().identifier_preparer.quote(name))  # type: ignore[no-untyped-call]


def _psycopg_statement(sql: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Turn `:name` bind parameters into psycopg's %(name)s form (and escape bare %)."""
    dialect = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
    compiled = sa.text(sql).compile(dialect=dialect)
    values = {key: params[key] for key in compiled.params if key in params}
    return compiled.string, values


def _parse_error(
    exc: pa.ArrowInvalid, schema: pa.Schema, shown: str, column: str | None = None
) -> SourceError:
    where = f"columns: {', '.join(schema.names)}" if column is None else f"column `{column}`"
    return SourceError(
        f"source `{shown}`: a value could not be read as its column type ({first_line(exc)}); "
        f"CAST that column to text in a `query` ({where})"
    )
