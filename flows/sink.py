"""Writing an export's files: batches stream through the format's writer into a temporary file
next to each target, cut into numbered parts of at most `max_file_mb` and `max_file_rows` (and
the rows its format holds: an Excel sheet's 1,048,575).

Nothing is published here (flows/destinations/publish.py does that, all or nothing); a failed
write removes every temporary file it made. For an HTTP receiver the temporary file is a local
spool file, which flows/destinations/http_post.py POSTs.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

import pyarrow as pa
from fsspec import AbstractFileSystem

from flows.core.codecs import compressor
from flows.core.columns import rendered_format
from flows.core.config import FormatOptions
from flows.core.errors import ExportError
from flows.core.formats import ExportFormat, format_max_rows
from flows.core.records import FileRecords
from flows.core.targets import TargetContext
from flows.destinations.pgp import PgpEncryptor, PgpKeys, load_keys
from flows.destinations.store import MIB, Store, WrittenFile, discard_upload
from flows.formats.writers import BatchWriter, open_writer
from flows.request import DestinationConfig

# A partition's parts are written under provisional numbers (partition × stride + part), so
# the temporary files of concurrent partitions never share a name; `number_parts` gives the
# final numbers in range order.
PARTITION_PART_STRIDE = 100_000
# Room kept for a document's closing bytes (XML root, JSON bracket) inside the size limit.
_FOOTER_ALLOWANCE = 64


@dataclass
class _OpenPart:
    raw: BinaryIO
    counter: _CountingFile
    stream: BinaryIO
    writer: BatchWriter
    final_path: str
    temp_path: str
    encryptor: PgpEncryptor | None = None  # under the codec, over the counter
    nulls: dict[str, int] = field(default_factory=dict)  # per column, as rows are written


class _CountingFile(io.RawIOBase):
    """Counts the bytes that reach the destination file (after compression and encryption),
    and hashes them for a manifest when asked to (hashing costs about 1 s per 2 GB)."""

    def __init__(self, inner: BinaryIO, *, hashed: bool = False) -> None:
        self.inner = inner
        self.count = 0
        self.digest = hashlib.sha256() if hashed else None
        self.discarding = False

    def writable(self) -> bool:
        return True

    def discard(self) -> None:
        """Drop every later write: the part is thrown away, and a writer still open (a
        Parquet writer writes its footer when it is collected) must not reach a closed file."""
        self.discarding = True

    def write(self, data: Any) -> int:
        if self.discarding:
            return len(data)
        written = self.inner.write(data)
        size = len(data) if written is None else written
        self.count += size
        if self.digest is not None:
            self.digest.update(data)
        return size

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest() if self.digest is not None else ""

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        if not self.discarding:
            self.inner.flush()


@dataclass
class PartSink:
    """Streams batches into one file, or numbered parts of at most `max_file_mb` and
    `max_file_rows` each (the first limit reached cuts)."""

    destination: DestinationConfig
    fmt: ExportFormat
    schema: pa.Schema
    options: FormatOptions
    context: TargetContext
    store: Store
    fs: AbstractFileSystem
    partition: int | None = None  # the partition this sink writes, if the read is split
    written: list[WrittenFile] = field(default_factory=list)
    _part: _OpenPart | None = None
    keys: PgpKeys | None = None  # destination.pgp's keyring, while the sink is open
    _numbered: bool = False  # an unsplit export that passed its format's row limit

    @classmethod
    def open(
        cls,
        destination: DestinationConfig,
        fmt: ExportFormat,
        schema: pa.Schema,
        options: FormatOptions,
        context: TargetContext,
        partition: int | None = None,
        *,
        keys_checked: bool = False,
    ) -> PartSink:
        """`keys_checked`: the run checked destination.pgp's keys before any row was read
        (the flow's `check_keys`), so they are imported without being checked again."""
        store, fs = destination.store, destination.filesystem()
        pgp = destination.pgp
        keys = load_keys(pgp, checked=keys_checked) if pgp is not None else None
        return cls(destination, fmt, schema, options, context, store, fs, partition, keys=keys)

    @property
    def _limit(self) -> int | None:
        mb = self.destination.max_file_mb
        return None if mb is None else int(mb * MIB)

    def write(self, batch: pa.RecordBatch) -> None:
        """Write a batch, starting new parts whenever the current one is full: the writer is
        given at most the rows the part still holds, and stops at its byte budget."""
        offset = 0
        max_rows = self._max_rows
        while offset < batch.num_rows:
            part = self._part or self._open_part()
            remaining = batch.slice(offset)
            if max_rows is not None:
                remaining = remaining.slice(0, max_rows - part.writer.rows)
            budget = self._budget(part)
            with self._store_errors(part.final_path):
                count = part.writer.write(remaining, budget)
            if not self._rendered:
                _count_nulls(part.nulls, remaining.slice(0, count))
            offset += count
            rows_full = max_rows is not None and part.writer.rows >= max_rows
            cut = budget is not None and count < remaining.num_rows
            if cut or rows_full or self._full(part):
                self._close_part()

    @property
    def _rendered(self) -> bool:
        """Whether the batches are finished rows (PostgreSQL's COPY), whose NULLs no column
        shows: the flow then asks the database for them."""
        return rendered_format(self.schema) is not None

    @property
    def _max_rows(self) -> int | None:
        """max_file_rows, or the format's own limit (an Excel sheet's rows) if lower."""
        limits = [self.destination.max_file_rows, format_max_rows(self.fmt)]
        found = [limit for limit in limits if limit is not None]
        return min(found) if found else None

    def finish(self) -> list[WrittenFile]:
        """Close the last part (creating an empty document if there were no rows, unless this
        is one partition of a split read: an empty range writes no file)."""
        if self._part is None and not self.written and self.partition is None:
            self._open_part()
        if self._part is not None:
            self._close_part()
        self._close_keys()
        return list(self.written)

    def _close_keys(self) -> None:
        if self.keys is not None:
            self.keys.close()
            self.keys = None

    @contextmanager
    def _store_errors(self, path: str) -> Iterator[None]:
        """The store's own exceptions (s3fs, botocore, OSError) become typed errors."""
        try:
            yield
        except ExportError:
            raise
        except Exception as exc:
            shown = self.store.shown(self.fs, path, self.destination.scheme)
            raise self.store.failure(exc, shown) from exc

    def abort(self) -> None:
        """Remove every temporary file this sink created."""
        if self._part is not None:
            self._part.counter.discard()  # the writer's and streams' closing bytes go nowhere
            if self._part.encryptor is not None:
                self._part.encryptor.kill()
            self._release(self._part.raw)
            for close in (
                self._part.writer.abandon,
                self._part.stream.close,
                self._part.counter.close,
            ):
                try:
                    close()
                except Exception:  # noqa: BLE001 - the file is being thrown away
                    pass
            self.written.append(WrittenFile("", self._part.temp_path, 0, 0))
            self._part = None
        for item in self.written:
            self.store.remove_temporary(self.fs, item.temp_path)
        self.written.clear()
        self._close_keys()

    def _release(self, raw: BinaryIO) -> None:
        """Let go of a failed part's file: an unlinked file still open keeps its disk space
        until the process ends (issue 24: the next export in a served runner or a Dask worker
        found the disk still full). An upload is discarded, never completed."""
        if self.store.discards_uploads:
            discard_upload(raw)
            return
        try:
            raw.close()  # its unwritten bytes fail again on a full disk; the file closes anyway
        except Exception:  # noqa: BLE001 - the file is being thrown away
            pass

    def _budget(self, part: _OpenPart) -> int | None:
        """Bytes the writer may still write: a text part stops at the row that would pass
        the limit. A compressed part is cut between chunks instead, once its compressed bytes
        reach the limit (what the uncompressed rows will compress to is not known beforehand;
        a codec that holds a block, bzip2's 900 kB of text, passes it by up to that block).
        An encrypted part is cut the same way, by its encrypted bytes."""
        if self._limit is None or self._compressed:
            return None
        return max(self._limit - part.writer.bytes - self._closing(part), 0)

    @property
    def _compressed(self) -> bool:
        """Whether the bytes that reach the file are not the writer's (compressed or
        encrypted): a part is then measured by what reached the file."""
        return self.destination.compression != "none" or self.keys is not None

    def _full(self, part: _OpenPart) -> bool:
        if self._limit is None:
            return False
        if self._compressed:  # the bytes that reached the file
            written = part.counter.tell()
            if part.encryptor is not None:  # and those still on their way through gpg
                written = max(written, part.encryptor.expected_size())
            return written + self._closing(part) >= self._limit
        return part.writer.bytes + self._closing(part) >= self._limit

    @staticmethod
    def _closing(part: _OpenPart) -> int:
        """Room kept for what closing a part writes: the document's end, and a trailer line
        (at its longest)."""
        return _FOOTER_ALLOWANCE + part.writer.reserved

    def _open_part(self) -> _OpenPart:
        number = len(self.written) + 1
        if self.partition is not None:  # numbered again in range order once all are done
            number += self.partition * PARTITION_PART_STRIDE
        split = self.destination.splits or self.partition is not None
        if not split and self.written and not self._numbered:
            self._number_first_part()
        final_path, temp_path = self.store.part_paths(
            self.fs,
            self.destination.url,
            self.context,
            number,
            split=split or self._numbered,
            compression=self.destination.file_codecs,
        )
        with self._store_errors(final_path):
            self.store.prepare(self.fs, final_path, self.context.run_id, first=number == 1)
            raw = self.fs.open(temp_path, "wb")
        return self._start_part(raw, final_path, temp_path, number)

    def _number_first_part(self) -> None:
        """An unsplit export whose format holds fewer rows than it has (an xlsx sheet's
        1,048,575) becomes numbered parts, as max_file_rows would make it: its first file,
        not yet published, takes part 1's name."""
        self._numbered = True
        first = self.written[0]
        final_path, _ = self.store.part_paths(
            self.fs,
            self.destination.url,
            self.context,
            1,
            split=True,
            compression=self.destination.file_codecs,
        )
        self.written[0] = replace(first, final_path=final_path)

    def _start_part(self, raw: BinaryIO, final_path: str, temp_path: str, number: int) -> _OpenPart:
        counter = _CountingFile(raw, hashed=self.destination.manifest)
        plain: BinaryIO = counter  # type: ignore[assignment]
        encryptor = None
        if self.keys is not None:  # format → compression → encryption → the file
            shown = self.store.shown(self.fs, final_path, self.destination.scheme)
            encryptor = self.keys.encryptor(plain, shown)
            plain = encryptor  # type: ignore[assignment]
        stream = compressor(self.destination.compression, plain) or plain
        try:
            writer = open_writer(self.fmt, stream, self.schema, self.options, self._records(number))
        except BaseException:
            if encryptor is not None:
                encryptor.kill()
            raise
        self._part = _OpenPart(raw, counter, stream, writer, final_path, temp_path, encryptor)
        return self._part

    def _records(self, number: int) -> FileRecords | None:
        """The preamble and trailer of part `number` (format_options), if any: its lines end
        as the file's rows do (JSON Lines always with \n)."""
        if self.options.preamble is None and self.options.trailer is None:
            return None
        newline = "\n" if self.fmt == "jsonl" else self.options.newline
        return FileRecords(
            self.options.preamble, self.options.trailer, self.context, number, newline
        )

    def _close_part(self) -> None:
        part = self._part
        assert part is not None
        self._part = None
        try:
            with self._store_errors(part.final_path):
                part.writer.close()
                if self._compressed:
                    part.stream.close()  # writes the codec's trailer; the raw file stays open
                if part.encryptor is not None:
                    part.encryptor.close()  # gpg's last packets; the raw file stays open
                part.raw.close()
        except Exception:
            if part.encryptor is not None:
                part.encryptor.kill()
            self._release(part.raw)
            self.written.append(WrittenFile(part.final_path, part.temp_path, 0, 0))
            raise
        self.written.append(
            WrittenFile(
                part.final_path,
                part.temp_path,
                part.writer.rows,
                part.counter.count,
                part.counter.sha256,
                nulls=None if self._rendered else tuple(part.nulls.items()),
            )
        )


def _count_nulls(nulls: dict[str, int], batch: pa.RecordBatch) -> None:
    """Add the NULLs of the rows a part was given to its counts (`checks.not_null`): Arrow
    keeps each array's count, so this reads no value."""
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        count = column.null_count
        if count:
            nulls[name] = nulls.get(name, 0) + count
