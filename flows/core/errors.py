"""Typed export errors: each says what failed, the offending value and what to change."""

from __future__ import annotations


class ExportError(Exception):
    """Base class for every error an export raises on purpose. Its text is what users and
    tests read; the facts a program needs (which field, store, target or table) are keyword
    attributes of the subclasses, None where not known, as httpx's and dlt's errors carry
    theirs. They survive pickling (a dask worker's error): BaseException keeps `__dict__`."""


class ConfigurationError(ExportError, ValueError):
    """The export is configured wrongly; nothing was written. Never retried.

    `field` is the parameter at fault (e.g. `source.table`), which the message begins with;
    `hint` says what to change, and ends the message after `; `.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        hint: str | None = None,
        **facts: str | None,
    ) -> None:
        super().__init__(f"{message}; {hint}" if hint else message, **facts)
        self.field = field
        self.hint = hint


class SourceError(ExportError):
    """Reading from the source database failed. `table` is the table read, when a table
    (not a query) was."""

    def __init__(self, message: str, *, table: str | None = None, **facts: str | None) -> None:
        super().__init__(message, **facts)
        self.table = table


class FormatError(ExportError):
    """Rows could not be written in the requested format."""


class DeliveryError(ExportError):
    """The file could not be written to, or published at, its destination. `store` is the
    store's name (`s3`, `sftp`, `http` …), `target` the file or URL as it may be shown (the
    password hidden)."""

    def __init__(
        self,
        message: str,
        *,
        store: str | None = None,
        target: str | None = None,
        **facts: str | None,
    ) -> None:
        super().__init__(message, **facts)
        self.store = store
        self.target = target


class OutOfMemoryError(ExportError):
    """The run's process ran out of memory (its own limit, or the machine's) while a chunk of
    rows was read or written. Never retried: the same chunk would not fit again."""


class EmptyResultError(ExportError):
    """The source returned no rows and `on_empty: fail` asked the run to fail: nothing was
    published. Neither a source failure (the read succeeded) nor a wrong parameter: the data
    was not there. Never retried."""


class SchemaChangedError(ExportError):
    """The run's columns or their types differ from those the export's last successful run
    wrote, and `on_schema_change: fail` asked the run to stop before any row was read: nothing
    was written or published. `changes` lists what differs, each as the message says it
    (`added: note (text)`, …). Never retried: the source would answer the same."""

    def __init__(self, message: str, *, changes: tuple[str, ...] = (), **facts: str | None) -> None:
        super().__init__(message, **facts)
        self.changes = changes


class CheckFailedError(ExportError):
    """A check of `checks` failed on the written rows: nothing was published and every
    temporary file was removed. `check` is the check's name (`unique`, `not_null`,
    `min_rows`, `max_rows`, `max_change_pct`); the message gives it and its numbers
    (`unique(order_id): 3 duplicate keys`). Never retried: the same rows would fail again."""

    def __init__(self, message: str, *, check: str | None = None, **facts: str | None) -> None:
        super().__init__(message, **facts)
        self.check = check


class CursorLockedError(ExportError):
    """Another run of the same incremental export held its cursor (the lock of
    `source.incremental`) for longer than `lock_timeout`: this run read no row and published
    nothing, and the mark is that run's to move. `export` is the export's name, `holder` the
    holding run's id and `holder_name` its name (None where not known). Never retried: it
    would wait again."""

    def __init__(
        self,
        message: str,
        *,
        export: str | None = None,
        holder: str | None = None,
        holder_name: str | None = None,
        **facts: str | None,
    ) -> None:
        super().__init__(message, **facts)
        self.export = export
        self.holder = holder
        self.holder_name = holder_name


class TransientExportError(ExportError):
    """Mixin for failures worth retrying: timeouts, refused connections, 5xx."""


class TransientSourceError(SourceError, TransientExportError):
    """The source database could not be reached or dropped the connection."""


class TransientDeliveryError(DeliveryError, TransientExportError):
    """The destination timed out or answered with a retryable error."""


class SourceConfigurationError(ConfigurationError, SourceError):
    """The source's URL names a database, user or file that cannot be used."""


# Every error class above by its name: how a failed state's message, which names the
# exception's class (`Type: text`, from another process), is read back (flows/alerts/errors.py).
ERROR_CLASSES: dict[str, type[ExportError]] = {
    error.__name__: error
    for error in (
        ExportError,
        ConfigurationError,
        SourceError,
        FormatError,
        DeliveryError,
        OutOfMemoryError,
        EmptyResultError,
        SchemaChangedError,
        CheckFailedError,
        CursorLockedError,
        TransientExportError,
        TransientSourceError,
        TransientDeliveryError,
        SourceConfigurationError,
    )
}


def first_line(exc: BaseException) -> str:
    """The first line of an error's text: drivers add hints and SQL on later lines."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def memory_error(exc: BaseException) -> MemoryError | None:
    """The MemoryError behind `exc`: itself, or one a driver or a value conversion wrapped in
    an error of its own; None when it is not about memory."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, MemoryError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def is_transient(exc: BaseException) -> bool:
    """True when a task that raised `exc` may succeed if run again."""
    return isinstance(exc, TransientExportError)


def is_transient_status(code: int | None) -> bool:
    """The one rule for HTTP answers worth sending again (stores, webhooks, alerts): 408
    Request Timeout, 429 Too Many Requests and every 5xx."""
    return code is not None and (code >= 500 or code in (408, 429))
