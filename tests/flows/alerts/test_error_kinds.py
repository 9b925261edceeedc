"""Error mapping as a caller sees it: the kind and field a Failed alert and the gateway say for
each error class (flows/alerts/errors.py), which failures a task retries (flows/core/errors.py
`is_transient`, `is_transient_status`; flows/destinations/failures.py for the stores' SDK
errors) and the typed error a store makes of a failure (flows/destinations/store.py
`Store.failure`). The cases already in test_alert_errors.py (one per class, with secrets in
the text) are not repeated; these cover every class and field shape."""

from __future__ import annotations

import errno

import pytest

from flows.alerts.errors import alert_error, state_error
from flows.core import errors
from flows.core.errors import (
    ConfigurationError,
    DeliveryError,
    ExportError,
    FormatError,
    OutOfMemoryError,
    SourceConfigurationError,
    SourceError,
    TransientDeliveryError,
    TransientSourceError,
    first_line,
    is_transient,
    is_transient_status,
    memory_error,
)
from flows.destinations.failures import full_disk, http_status, is_transient_failure
from flows.destinations.store import Store

pytestmark = pytest.mark.unit

SEE = "the run's logs have the details"
GATEWAY = "see the gateway's log"

# Every class the export raises on purpose, and what an alert says of it without a field.
SUMMARIES: list[tuple[type[Exception], str]] = [
    (ConfigurationError, "a parameter is not valid"),
    (SourceConfigurationError, "a parameter is not valid"),
    (OutOfMemoryError, "the run's process ran out of memory (source.chunk_rows)"),
    (TransientSourceError, "the database could not be reached or dropped the connection"),
    (SourceError, "reading the database failed"),
    (FormatError, "the rows could not be written in the export's format"),
    (TransientDeliveryError, "the destination did not answer or answered with an error"),
    (DeliveryError, "the file could not be delivered to its destination"),
    (ExportError, "the export failed unexpectedly"),
]


@pytest.mark.parametrize(
    ("error_type", "summary"), SUMMARIES, ids=[kind.__name__ for kind, _ in SUMMARIES]
)
def test_each_error_class_is_its_summary(error_type: type[Exception], summary: str) -> None:
    """Only a wrong parameter is named by its field; other kinds say which stage failed, even
    when their text starts like a field (`source.table: ...`)."""
    name = error_type.__name__
    assert alert_error(error_type("no field here: `secret` value")) == f"{name}: {summary}; {SEE}"
    assert alert_error(error_type("x"), GATEWAY) == f"{name}: {summary}; {GATEWAY}"
    if not issubclass(error_type, ConfigurationError):
        assert alert_error(error_type("source.table: `payroll` x")) == f"{name}: {summary}; {SEE}"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("source: give exactly one of `url` or `block`", "source"),
        ("source.table: `x` is not a table name", "source.table"),
        ("format_options.on_unencodable: CSV has no escape", "format_options.on_unencodable"),
        ("destination.url: unknown token `{x}`", "destination.url"),
        ("window.since: `2026-01-01` is not before", "window.since"),
        ("runner.dask: `x` is not a scheduler address", "runner.dask"),
        ("name: `a/b` has a `/`", "name"),
        ("  format: `xls` is not supported", "format"),
        ("source.filter.0.op: `~` Input should be", None),  # digits: not a field's name
        ("Source.Table: upper case", None),
        ("source.table `x` without a colon", None),
        ("", None),
    ],
)
def test_a_configuration_errors_field_is_named(text: str, field: str | None) -> None:
    """From the error itself, its `field` attribute names the parameter (never its text); from
    a failed state's message (another process's run), the field its text begins with."""
    expected = (
        f"ConfigurationError: {field} is not valid; {SEE}"
        if field is not None
        else f"ConfigurationError: a parameter is not valid; {SEE}"
    )
    assert alert_error(ConfigurationError(text, field=field)) == expected
    assert alert_error(ConfigurationError(text)) == (
        f"ConfigurationError: a parameter is not valid; {SEE}"
    )
    message = f"Flow run encountered an exception: ConfigurationError: {text}"
    assert state_error(message) == expected


@pytest.mark.parametrize(
    ("message", "said"),
    [
        ("Flow run encountered an exception: DeliveryError: cannot deliver `s3://b/k`",
         f"DeliveryError: the file could not be delivered to its destination; {SEE}"),
        ("Flow run encountered an exception: TransientDeliveryError: 503",
         f"TransientDeliveryError: the destination did not answer or answered with an error; "
         f"{SEE}"),
        ("Flow run encountered an exception: FormatError: row 7 column `x`",
         f"FormatError: the rows could not be written in the export's format; {SEE}"),
        ("Flow run encountered an exception: OutOfMemoryError: source.chunk_rows: 50000",
         f"OutOfMemoryError: the run's process ran out of memory (source.chunk_rows); {SEE}"),
        ("Flow run encountered an exception: SourceConfigurationError: source.url: cannot use",
         f"SourceConfigurationError: source.url is not valid; {SEE}"),
        ("Flow run encountered an exception: TransientSourceError: source `db`: lost",
         f"TransientSourceError: the database could not be reached or dropped the connection; "
         f"{SEE}"),
        ("Request to http://127.0.0.1:4200/api failed: HTTPStatusError: 500 Internal",
         f"HTTPStatusError: the export failed unexpectedly; {SEE}"),
        ("Flow run encountered an exception: ExportError: base",
         f"ExportError: the export failed unexpectedly; {SEE}"),
        ("Flow run encountered an exception: first_line: not a class",
         f"first_line: the export failed unexpectedly; {SEE}"),
        ("Flow run encountered an exception: ConfigurationError: format: `x`\nmore lines",
         f"ConfigurationError: format is not valid; {SEE}"),
        ("\n  Crashed: process killed\nsecond line", "Crashed: process killed"),
    ],
)  # fmt: skip
def test_a_failed_states_message_is_mapped_by_the_class_it_names(message: str, said: str) -> None:
    assert state_error(message) == said


@pytest.mark.parametrize(
    ("code", "transient"),
    [
        (None, False), (200, False), (301, False), (400, False), (401, False), (403, False),
        (404, False), (409, False), (413, False), (407, False), (408, True), (429, True),
        (499, False), (500, True), (502, True), (503, True), (504, True), (599, True),
    ],
)  # fmt: skip
def test_which_http_answers_are_sent_again(code: int | None, transient: bool) -> None:
    assert is_transient_status(code) is transient


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (TransientSourceError("x"), True),
        (TransientDeliveryError("x"), True),
        (SourceError("x"), False),
        (DeliveryError("x"), False),
        (ConfigurationError("x"), False),
        (SourceConfigurationError("x"), False),
        (OutOfMemoryError("x"), False),
        (TimeoutError("x"), False),  # only our typed errors: the stages classify the rest
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_a_task_retries_only_transient_errors(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_every_configuration_error_is_a_value_error_and_never_transient() -> None:
    """Prefect and pydantic treat ValueError as bad input; none is ever retried."""
    classes = [getattr(errors, name) for name in dir(errors)]
    configuration = [
        c for c in classes if isinstance(c, type) and issubclass(c, ConfigurationError)
    ]
    assert set(configuration) == {ConfigurationError, SourceConfigurationError}
    for error_type in configuration:
        assert issubclass(error_type, ValueError)
        assert not is_transient(error_type("x"))


class _BotoLike(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"An error occurred ({status})")
        self.response = {"ResponseMetadata": {"HTTPStatusCode": status}}


class _AzureLike(Exception):
    def __init__(self, status: int) -> None:
        super().__init__("azure says no")
        self.status_code = status


class _GcsLike(Exception):
    def __init__(self, code: int) -> None:
        super().__init__("gcs says no")
        self.code = code


def _wrapped(inner: BaseException, outer: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (TimeoutError("read timed out"), True),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (ConnectionResetError(104, "reset"), True),
        (EOFError(), True),
        (ConnectionAbortedError("aborted"), True),
        (_BotoLike(503), True),
        (_BotoLike(429), True),
        (_BotoLike(403), False),
        (_BotoLike(404), False),
        (_AzureLike(500), True),
        (_AzureLike(409), False),
        (_GcsLike(502), True),
        (_GcsLike(401), False),
        (_wrapped(_BotoLike(503), OSError("s3fs: upload failed")), True),
        (_wrapped(TimeoutError(), RuntimeError("adlfs failed")), True),
        (_wrapped(PermissionError("denied"), OSError("Forbidden")), False),
        (OSError("Please reduce your request rate. SlowDown"), True),
        (RuntimeError("Request was throttled"), True),
        (RuntimeError("Cannot connect to host s3:443"), True),
        (RuntimeError("Server disconnected"), True),
        (FileNotFoundError("no such bucket"), False),
        (ValueError("bad credentials"), False),
    ],
    ids=lambda value: first_line(value)[:30] if isinstance(value, BaseException) else str(value),
)
def test_which_store_failures_are_retried(error: BaseException, transient: bool) -> None:
    assert is_transient_failure(error) is transient


def test_a_stores_own_sdk_errors_decide_first() -> None:
    class Dropped(Exception):
        pass

    assert is_transient_failure(Dropped("gone"), lambda exc: isinstance(exc, Dropped))
    assert not is_transient_failure(Dropped("gone"), lambda _exc: False)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (_BotoLike(503), 503),
        (_AzureLike(404), 404),
        (_GcsLike(429), 429),
        (_GcsLike(7), None),  # a gRPC-style code is no HTTP status
        (OSError(errno.ENOENT, "missing"), None),
        (ValueError("x"), None),
    ],
    ids=["botocore", "azure-core", "gcsfs", "not http", "errno", "plain"],
)
def test_the_http_status_an_sdk_error_carries(error: BaseException, status: int | None) -> None:
    assert http_status(error) == status


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "Disk quota exceeded"),
        (OSError("Failure: no space left on the server"), "Failure: no space left on the server"),
        (RuntimeError("SFTP: Quota exceeded for user"), "SFTP: Quota exceeded for user"),
        (_wrapped(OSError(errno.ENOSPC, "No space left"), RuntimeError("write failed")),
         "No space left"),
        (OSError(errno.EACCES, "Permission denied"), None),
        (TimeoutError("timed out"), None),
    ],
    ids=["ENOSPC", "EDQUOT", "sftp words", "quota words", "in the chain", "EACCES", "timeout"],
)  # fmt: skip
def test_a_full_disk_is_recognised(error: BaseException, words: str | None) -> None:
    assert full_disk(error) == words


class _Folder(Store):
    name = "the local folder"
    schemes = ("file",)
    protocol = "file"


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (TimeoutError("read timed out"), TransientDeliveryError,
         "cannot deliver `out/orders.csv` to the local folder: read timed out; the store did not "
         "answer or answered with a server error (retried; check the store is reachable)"),
        (PermissionError(13, "Permission denied"), DeliveryError,
         "cannot deliver `out/orders.csv` to the local folder: [Errno 13] Permission denied; "
         "check the bucket or folder exists and that the credentials may write there"),
        (OSError(errno.ENOSPC, "No space left on device"), DeliveryError,
         "cannot deliver `out/orders.csv` to the local folder: the disk is full (No space left "
         "on device); free space on the disk that holds the folder, then run the export again "
         "(not retried: a full disk does not empty itself)"),
        (_BotoLike(500), TransientDeliveryError,
         "cannot deliver `out/orders.csv` to the local folder: An error occurred (500); the "
         "store did not answer"),
        (RuntimeError("first line\nsecond line with a secret"), DeliveryError,
         "cannot deliver `out/orders.csv` to the local folder: first line; check the bucket"),
    ],
    ids=["timeout", "permission", "full disk", "5xx", "first line only"],
)  # fmt: skip
def test_a_store_failure_is_a_typed_error_naming_store_and_target(
    error: BaseException, kind: type[DeliveryError], message: str
) -> None:
    failure = _Folder().failure(error, "out/orders.csv")
    assert type(failure) is kind
    assert str(failure).startswith(message), failure
    assert "secret" not in str(failure)


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (ValueError("one\ntwo"), "one"),
        (ValueError("  \n padded \n"), "padded"),
        (ValueError(""), "ValueError"),
        (KeyError("k"), "'k'"),
    ],
)
def test_an_errors_first_line(error: BaseException, line: str) -> None:
    assert first_line(error) == line


def test_a_memory_error_is_found_behind_a_drivers_error() -> None:
    inner = MemoryError()
    outer = _wrapped(inner, RuntimeError("conversion failed"))
    assert memory_error(outer) is inner
    assert memory_error(inner) is inner
    assert memory_error(RuntimeError("x")) is None
    looped = RuntimeError("a")
    looped.__context__ = RuntimeError("b")
    looped.__context__.__context__ = looped
    assert memory_error(looped) is None
