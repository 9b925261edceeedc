"""Errors carry facts (flows/core/errors.py): the parameter at fault, the store and target, the
table, as keyword attributes beside an unchanged message. A Failed alert's `Error` reads them
from the exception, or, for a run of another process, from the state message Prefect writes
(`Type: text`), whose text begins with the field: each error class, with its facts, says the
same either way."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest

from flows.alerts.errors import alert_error, state_error
from flows.core.errors import (
    ERROR_CLASSES,
    CheckFailedError,
    ConfigurationError,
    CursorLockedError,
    DeliveryError,
    EmptyResultError,
    ExportError,
    FormatError,
    OutOfMemoryError,
    SchemaChangedError,
    SourceConfigurationError,
    SourceError,
    TransientDeliveryError,
    TransientSourceError,
)
from flows.request import ExportRequest

pytestmark = pytest.mark.unit
SEE = "the run's logs have the details"
ROOT = Path(__file__).resolve().parents[3]

CASES = [
    (
        ConfigurationError(
            "source.table: table `payroll` not found in `sqlite:///x.db`",
            field="source.table",
            hint="check the name",
        ),
        f"ConfigurationError: source.table is not valid; {SEE}",
    ),
    (
        ConfigurationError("the parameters disagree", field=None),
        f"ConfigurationError: a parameter is not valid; {SEE}",  # no field: none named
    ),
    (
        ConfigurationError(
            "source.columns.0.as: `` is empty", field="source.columns.0.as"
        ),  # a position in a list (pydantic's loc) is not a parameter's name
        f"ConfigurationError: a parameter is not valid; {SEE}",
    ),
    (
        SourceConfigurationError(
            "source.url: cannot use `postgresql://u:***@db/x` (password authentication failed)",
            field="source.url",
            hint="check the database name, user and password",
            table="payroll",
        ),
        f"SourceConfigurationError: source.url is not valid; {SEE}",
    ),
    (
        SourceError("source `sqlite:///x.db`: no such column: ssn", table="payroll"),
        f"SourceError: reading the database failed; {SEE}",
    ),
    (
        TransientSourceError("source `db`: could not connect (refused)", table="payroll"),
        "TransientSourceError: the database could not be reached or dropped the connection; " + SEE,
    ),
    (
        DeliveryError(
            "cannot deliver `s3://bucket/secret/x.csv` to Amazon S3: AccessDenied",
            store="Amazon S3",
            target="s3://bucket/secret/x.csv",
        ),
        f"DeliveryError: the file could not be delivered to its destination; {SEE}",
    ),
    (
        TransientDeliveryError(
            "cannot deliver `x.csv` to HTTP: the receiver answered 503",
            store="HTTP",
            target="https://hooks.example.com/x.csv",
        ),
        f"TransientDeliveryError: the destination did not answer or answered with an error; {SEE}",
    ),
    (
        FormatError("row 7, column `name`: 'ß' has no latin-1 byte"),
        f"FormatError: the rows could not be written in the export's format; {SEE}",
    ),
    (
        OutOfMemoryError("source.chunk_rows: the export ran out of memory"),
        f"OutOfMemoryError: the run's process ran out of memory (source.chunk_rows); {SEE}",
    ),
    (  # its text begins with `on_empty:`, yet it is no parameter's fault: no field is named
        EmptyResultError("on_empty: the source returned no rows and on_empty is `fail`"),
        f"EmptyResultError: the source returned no rows and on_empty is fail; {SEE}",
    ),
    (  # the alert names the kind of failure, never the columns (they stay in the logs)
        SchemaChangedError(
            "on_schema_change: the columns differ from those of the last successful run "
            "(r1, finished 2026-12-07T21:00:00+00:00): added: note (text)",
            changes=("added: note (text)",),
        ),
        f"SchemaChangedError: the columns changed since the last successful run; {SEE}",
    ),
    (  # the check is named, never its columns or numbers
        CheckFailedError(
            "unique(order_id): 3 duplicate keys; nothing was published", check="unique"
        ),
        f"CheckFailedError: checks.unique failed, nothing was published; {SEE}",
    ),
    (
        CheckFailedError("max_change_pct: 79 rows written against 100", check="max_change_pct"),
        f"CheckFailedError: checks.max_change_pct failed, nothing was published; {SEE}",
    ),
    (  # the alert names neither the export's runs nor how long this one waited
        CursorLockedError(
            "source.incremental.lock_timeout: the cursor of export `orders` is held by run "
            "0b6e… (`export-orders-csv`)",
            export="orders",
            holder="0b6e…",
            holder_name="export-orders-csv",
        ),
        f"CursorLockedError: another run of the export holds its cursor, nothing was read; {SEE}",
    ),
]


@pytest.mark.parametrize(("error", "said"), CASES, ids=lambda value: type(value).__name__)
def test_each_error_and_its_facts_is_the_same_alert_from_the_exception_and_the_state(
    error: ExportError, said: str
) -> None:
    assert alert_error(error) == said
    # what Prefect writes into the failed state of a run in another process
    message = f"Flow run encountered an exception: {type(error).__name__}: {error}"
    assert state_error(message) == said


def test_the_facts_are_attributes_and_the_message_is_the_text_users_read() -> None:
    error = SourceConfigurationError(
        "source.url: cannot use `sqlite:///x.db` (not a database)",
        field="source.url",
        hint="check the path",
        table="orders",
    )
    assert str(error) == "source.url: cannot use `sqlite:///x.db` (not a database); check the path"
    assert (error.field, error.hint, error.table) == ("source.url", "check the path", "orders")
    assert isinstance(error, ValueError | SourceError | ConfigurationError)
    plain = DeliveryError("cannot deliver `x.csv` to Local folder: disk full")
    assert (plain.store, plain.target, str(plain)) == (
        None,
        None,
        "cannot deliver `x.csv` to Local folder: disk full",
    )


@pytest.mark.parametrize(("error", "said"), CASES, ids=lambda value: type(value).__name__)
def test_the_facts_survive_pickling_as_a_dask_worker_sends_them(
    error: ExportError, said: str
) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert (type(back), str(back), back.__dict__) == (type(error), str(error), error.__dict__)
    assert alert_error(back) == said


def test_a_state_names_only_the_classes_of_the_registry() -> None:
    assert set(ERROR_CLASSES) == {
        "ExportError", "ConfigurationError", "SourceError", "FormatError", "DeliveryError",
        "OutOfMemoryError", "TransientExportError", "TransientSourceError",
        "TransientDeliveryError", "SourceConfigurationError", "EmptyResultError",
        "SchemaChangedError",
        "CheckFailedError", "CursorLockedError",
    }  # fmt: skip
    # names of the module that are not error classes are any other exception's
    for kind in ("first_line", "is_transient", "ValueError"):
        said = state_error(f"Flow run encountered an exception: {kind}: source.table: x")
        assert said == f"{kind}: the export failed unexpectedly; {SEE}"


@pytest.mark.parametrize(
    ("source", "field", "message"),
    [
        (
            {"url": "sqlite:///x.db", "table": "orders", "chunk_rows": "many"},
            "source.chunk_rows",
            "source.chunk_rows: `many` Input should be a valid integer, unable to parse string "
            "as an integer",
        ),
        (  # a validator of ours names its field in its message (pydantic's loc is the model)
            {"url": "sqlite:///x.db", "table": "orders; drop"},
            "source.table",
            "source.table: `orders; drop` is not a table name",
        ),
        (
            {"url": "sqlite:///x.db"},
            "source",
            "source: give exactly one of `table` or `query`",
        ),
    ],
)
def test_a_validation_error_carries_the_field_of_its_loc(
    source: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        ExportRequest.of({"source": source, "destination": {"url": "out/{export}.{ext}"}})
    error = raised.value
    assert error.field == field
    assert str(error).startswith(message)


def _raise_sites() -> list[tuple[str, ast.Call]]:
    sites = []
    for folder in ("flows", "deployments", "blocks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id in ("ConfigurationError", "SourceConfigurationError")
                    and node.args
                ):
                    sites.append((f"{path.relative_to(ROOT)}:{node.lineno}", node))
    return sites


def _leading_text(node: ast.expr) -> str | None:
    while isinstance(node, ast.BinOp):
        node = node.left
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value)
    return None


def test_every_raise_site_names_its_field_as_its_message_begins() -> None:
    """The form a failed state's message carries the field in (flows/alerts/errors.py): a
    message that begins `name:` passes field=name, and a literal field= begins the message."""
    sites = _raise_sites()
    assert len(sites) > 60
    wrong = []
    for where, call in sites:
        field = next((k.value for k in call.keywords if k.arg == "field"), None)
        text = _leading_text(call.args[0])
        head = text.split(":", 1)[0] if text and ":" in text else None
        named = head if head and head.replace(".", "").replace("_", "").isalpha() else None
        if named and named.islower() and field is None:
            wrong.append(f"{where}: no field= for `{named}:`")
        if isinstance(field, ast.Constant) and text is not None:
            if not text.startswith(f"{field.value}: ") and "`" not in text.split(":", 1)[0]:
                wrong.append(f"{where}: field={field.value!r} but the message begins {text[:30]!r}")
    assert wrong == []
