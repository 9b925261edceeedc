"""Delivery through fsspec: bytes go to a temporary file next to the target, then are published.

A run that fails leaves nothing at a final path: temporary files are removed, and parts that
were already published by this run are removed again if a later part fails to publish.
For an http(s) URL the temporary file is a local spool file, which flows/http_post.py POSTs.
"""

from __future__ import annotations

import gzip
import io
import posixpath
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import fsspec
import pyarrow as pa
from fsspec import AbstractFileSystem

from flows.azure_blob import copy_blob, discard_staged_blocks
from flows.config import DestinationConfig, FormatOptions
from flows.errors import DeliveryError, ExportError
from flows.formats import BatchWriter, open_writer
from flows.http_post import spool_path
from flows.stores import (
    OBJECT_STORE_SCHEMES,
    container_word,
    delivery_failure,
    filesystem_for,
    store_name,
    store_of,
)
from flows.targets import (
    HTTP_SCHEMES,
    TargetContext,
    display_url,
    render_target,
    url_scheme,
    with_part_token,
)
from flows.types import ExportFormat

MIB = 1024 * 1024
GZIP_LEVEL = 6


@dataclass(frozen=True)
class WrittenFile:
    """One finished file at its temporary path, waiting to be published."""

    final_path: str
    temp_path: str
    rows: int
    bytes: int


@dataclass
class _OpenPart:
    raw: BinaryIO
    counter: _CountingFile
    stream: BinaryIO
    writer: BatchWriter
    final_path: str
    temp_path: str


class _CountingFile(io.RawIOBase):
    """Counts the bytes that reach the destination file (after compression)."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        written = self.inner.write(data)
        size = len(data) if written is None else written
        self.count += size
        return size

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        self.inner.flush()


@dataclass
class PartSink:
    """Streams batches into one file, or numbered parts of at most `max_file_mb` each."""

    destination: DestinationConfig
    fmt: ExportFormat
    schema: pa.Schema
    options: FormatOptions
    context: TargetContext
    fs: AbstractFileSystem
    written: list[WrittenFile] = field(default_factory=list)
    _part: _OpenPart | None = None

    @classmethod
    def open(
        cls,
        destination: DestinationConfig,
        fmt: ExportFormat,
        schema: pa.Schema,
        options: FormatOptions,
        context: TargetContext,
    ) -> PartSink:
        if url_scheme(destination.url) in HTTP_SCHEMES:
            fs = fsspec.filesystem("file")  # the spool; publishing is a POST (http_post.py)
        else:
            fs = filesystem_for(destination)
        return cls(destination, fmt, schema, options, context, fs)

    @property
    def _http(self) -> bool:
        return url_scheme(self.destination.url) in HTTP_SCHEMES

    @property
    def _limit(self) -> int | None:
        mb = self.destination.max_file_mb
        return None if mb is None else int(mb * MIB)

    def write(self, batch: pa.RecordBatch) -> None:
        """Write a batch, starting new parts whenever the current one is full."""
        offset = 0
        while offset < batch.num_rows:
            part = self._part or self._open_part()
            remaining = batch.slice(offset)
            budget = self._budget(part)
            with self._store_errors(part.final_path):
                count = part.writer.write(remaining, budget)
            offset += count
            if budget is not None and (count < remaining.num_rows or self._full(part)):
                self._close_part()

    def finish(self) -> list[WrittenFile]:
        """Close the last part (creating an empty document if there were no rows)."""
        if self._part is None and not self.written:
            self._open_part()
        if self._part is not None:
            self._close_part()
        return list(self.written)

    @contextmanager
    def _store_errors(self, path: str) -> Iterator[None]:
        """The store's own exceptions (s3fs, botocore, OSError) become typed errors."""
        try:
            yield
        except ExportError:
            raise
        except Exception as exc:
            if self._http:  # the local spool file failed (disk full ...)
                store = f"{store_name(url_scheme(self.destination.url))} (local spool file)"
                raise delivery_failure(exc, store, display_url(path)) from exc
            target = display_path(self.fs, path, url_scheme(self.destination.url))
            raise delivery_failure(exc, store_of(self.fs), target) from exc

    def abort(self) -> None:
        """Remove every temporary file this sink created."""
        if self._part is not None:
            if url_scheme(self.destination.url) in DISCARDING_SCHEMES:
                _discard(self._part.raw)
            for stream in (self._part.stream, self._part.counter):
                try:
                    stream.close()
                except Exception:  # noqa: BLE001 - the file is being thrown away
                    pass
            self.written.append(WrittenFile("", self._part.temp_path, 0, 0))
            self._part = None
        for item in self.written:
            if "az" in _protocols(self.fs):  # also drops blocks that were never committed
                _quietly(discard_staged_blocks, self.fs, item.temp_path)
            else:
                _remove_quietly(self.fs, item.temp_path)
        self.written.clear()

    def _budget(self, part: _OpenPart) -> int | None:
        if self._limit is None:
            return None
        return max(self._limit - part.writer.bytes - _FOOTER_ALLOWANCE, 0)

    def _full(self, part: _OpenPart) -> bool:
        return self._limit is not None and part.writer.bytes + _FOOTER_ALLOWANCE >= self._limit

    def _open_part(self) -> _OpenPart:
        number = len(self.written) + 1
        if self._http:
            return self._open_spool(number)
        template = self.destination.url
        if self.destination.max_file_mb is not None:
            template = with_part_token(template)
        final_url = render_target(template, self.context, part=number)
        if self.destination.compression == "gzip" and not final_url.endswith(".gz"):
            final_url += ".gz"
        final_path = _strip(self.fs, final_url)
        temp_path = temporary_path(final_path, self.context.run_id)
        scheme = url_scheme(self.destination.url)
        with self._store_errors(final_path):
            if scheme in OBJECT_STORE_SCHEMES:
                if number == 1:
                    _check_bucket(self.fs, scheme, final_path)
            else:  # object stores have no folders, and makedirs would create a bucket
                self.fs.makedirs(posixpath.dirname(final_path) or ".", exist_ok=True)
                _remove_leftovers(self.fs, final_path, self.context.run_id)
            raw = self.fs.open(temp_path, "wb")
        return self._start_part(raw, final_path, temp_path)

    def _open_spool(self, number: int) -> _OpenPart:
        """An http(s) part: the URL is an endpoint, so it gets no part number or `.gz` (the
        file name travels in a header), and the bytes go to a local spool file."""
        final_url = render_target(self.destination.url, self.context, part=number)
        temp_path = spool_path(self.context.run_id)
        with self._store_errors(final_url):
            raw = self.fs.open(temp_path, "wb")
        return self._start_part(raw, final_url, temp_path)

    def _start_part(self, raw: BinaryIO, final_path: str, temp_path: str) -> _OpenPart:
        counter = _CountingFile(raw)
        stream: BinaryIO = counter  # type: ignore[assignment]
        if self.destination.compression == "gzip":
            stream = gzip.GzipFile(  # type: ignore[assignment]
                filename="", mode="wb", fileobj=counter, compresslevel=GZIP_LEVEL, mtime=0
            )
        writer = open_writer(self.fmt, stream, self.schema, self.options)
        self._part = _OpenPart(raw, counter, stream, writer, final_path, temp_path)
        return self._part

    def _close_part(self) -> None:
        part = self._part
        assert part is not None
        self._part = None
        try:
            with self._store_errors(part.final_path):
                part.writer.close()
                if self.destination.compression == "gzip":
                    part.stream.close()  # writes the gzip trailer; the raw file stays open
                part.raw.close()
        except Exception:
            self.written.append(WrittenFile(part.final_path, part.temp_path, 0, 0))
            raise
        self.written.append(
            WrittenFile(part.final_path, part.temp_path, part.writer.rows, part.counter.count)
        )


# Uploads that are thrown away with `discard()` rather than closed: closing an object store
# upload would publish it, closing an SFTP upload checks that every byte arrived.
DISCARDING_SCHEMES = OBJECT_STORE_SCHEMES | {"sftp"}
# Filesystems where publishing is a rename; object stores copy on the server, then delete.
RENAMING_PROTOCOLS = ("file", "sftp")

# Room kept for a document's closing bytes (XML root, JSON bracket) inside the size limit.
_FOOTER_ALLOWANCE = 64


def _discard(raw: BinaryIO) -> None:
    """Abort an object store upload (its multipart parts are dropped) instead of completing
    it; closing would publish the unfinished temporary object first."""
    try:
        raw.discard()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - the upload is being thrown away
        pass
    raw.closed = True  # type: ignore[misc]  # fsspec files flush on close and on __del__


def _check_bucket(fs: AbstractFileSystem, scheme: str, path: str) -> None:
    """Fail before any byte is written when the bucket is missing (not create it)."""
    bucket = path.split("/", 1)[0]
    if not fs.exists(bucket):
        word = container_word(scheme)
        raise DeliveryError(
            f"destination: {word} `{bucket}` does not exist in {store_name(scheme)} (or these "
            "credentials may not see it); create it or fix destination.url"
        )


def temporary_path(final_path: str, run_id: str) -> str:
    """A hidden sibling of the final path, unique to this run."""
    folder, name = posixpath.split(final_path)
    token = f"{run_id[:8]}-{uuid.uuid4().hex[:8]}"
    return posixpath.join(folder, f".{name}.{token}.tmp")


def _remove_leftovers(fs: AbstractFileSystem, final_path: str, run_id: str) -> None:
    """Remove this run's temporary files for `final_path` left by an earlier attempt: one
    whose connection to a server was lost could not remove its own."""
    folder, name = posixpath.split(final_path)
    prefix = f".{name}.{run_id[:8]}-"
    for path in fs.ls(folder or ".", detail=False):
        base = posixpath.basename(str(path))
        if base.startswith(prefix) and base.endswith(".tmp"):
            _remove_quietly(fs, str(path))


def publish(
    fs: AbstractFileSystem, files: Iterable[WrittenFile], scheme: str | None = None
) -> list[str]:
    """Move every temporary file to its final path; all or nothing. Delivered files are
    reported with the destination URL's `scheme` (az:// or abfs://, gs:// or gcs://)."""
    pending = list(files)
    published: list[str] = []
    try:
        for item in pending:
            if any(protocol in RENAMING_PROTOCOLS for protocol in _protocols(fs)):
                fs.mv(item.temp_path, item.final_path)  # a rename, replacing a re-run's file
                published.append(item.final_path)
            else:  # server-side copy, then delete (gcsfs's mv first tries a slow moveTo)
                _server_side_copy(fs, item.temp_path, item.final_path)
                published.append(item.final_path)
                fs.rm(item.temp_path)
    except Exception as exc:
        for path in published:
            _remove_quietly(fs, path)
        for item in pending:
            _remove_quietly(fs, item.temp_path)
        if isinstance(exc, DeliveryError):
            raise
        target = display_path(fs, item.final_path, scheme)
        raise delivery_failure(exc, store_of(fs), target) from exc
    return [display_path(fs, path, scheme) for path in published]


def _server_side_copy(fs: AbstractFileSystem, source: str, target: str) -> None:
    if "az" in _protocols(fs):
        copy_blob(fs, source, target)  # adlfs's copy returns before the service has finished
    else:
        fs.copy(source, target)


def display_path(fs: AbstractFileSystem, path: str, scheme: str | None = None) -> str:
    """How a delivered file is reported: a local path, or the store's URL."""
    if "file" in _protocols(fs):
        return path
    if scheme in OBJECT_STORE_SCHEMES:  # as the user wrote it: az:// or abfs://, gs:// or gcs://
        return f"{scheme}://{path}"
    return str(fs.unstrip_protocol(path))


def _protocols(fs: AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _strip(fs: AbstractFileSystem, url: str) -> str:
    if url_scheme(url) == "local":
        url = "file://" + url.partition("://")[2]
    return str(fs._strip_protocol(url))


def _quietly(action: Callable[..., object], *args: Any) -> None:
    try:
        action(*args)
    except Exception:  # noqa: BLE001 - cleanup must not hide the original error
        pass


def _remove_quietly(fs: AbstractFileSystem, path: str) -> None:
    try:
        if path and fs.exists(path):
            fs.rm(path)
    except Exception:  # noqa: BLE001 - cleanup must not hide the original error
        pass
