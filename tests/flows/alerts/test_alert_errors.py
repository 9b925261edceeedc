"""What a Failed alert says of an error (Contract 5's `Error`): its kind, the parameter at
fault, never the error's own words (issue 17: the source's list of tables reached the
webhook). End to end: test_alerts.py's failing export."""

from __future__ import annotations

import pytest

from flows.alerts.errors import alert_error, state_error
from flows.core.errors import (
    ConfigurationError,
    DeliveryError,
    OutOfMemoryError,
    SourceConfigurationError,
    SourceError,
    TransientSourceError,
)

pytestmark = pytest.mark.unit
SEE = "the run's logs have the details"
TABLES = "source.table: table `nope` not found in `sqlite:///x.db`; tables there: payroll, secrets"


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            ConfigurationError(TABLES, field="source.table"),
            f"ConfigurationError: source.table is not valid; {SEE}",
        ),
        (
            SourceConfigurationError(
                "source.url: cannot use `postgresql://u:***@db/x` (...)", field="source.url"
            ),
            f"SourceConfigurationError: source.url is not valid; {SEE}",
        ),
        (
            ConfigurationError("no field here"),
            f"ConfigurationError: a parameter is not valid; {SEE}",
        ),
        (
            TransientSourceError("source `db`: lost the connection (row 77: 'ana@x.com')"),
            "TransientSourceError: the database could not be reached or dropped the "
            f"connection; {SEE}",
        ),
        (
            SourceError("column `ssn`: value `123-45-6789`"),
            f"SourceError: reading the database failed; {SEE}",
        ),
        (
            DeliveryError("s3://bucket/secret-path/x.csv: denied"),
            f"DeliveryError: the file could not be delivered to its destination; {SEE}",
        ),
        (
            OutOfMemoryError(
                "source.chunk_rows: the export ran out of memory after 20000 rows, reading "
                "10000 rows at a time ('ana@x.com'); lower source.chunk_rows"
            ),
            f"OutOfMemoryError: the run's process ran out of memory (source.chunk_rows); {SEE}",
        ),
        (KeyError("ana@x.com"), f"KeyError: the export failed unexpectedly; {SEE}"),
    ],
)
def test_an_error_is_its_kind_and_field(error: Exception, said: str) -> None:
    assert alert_error(error) == said


@pytest.mark.parametrize(
    ("message", "said"),
    [
        (
            f"Flow run encountered an exception: ConfigurationError: {TABLES}",
            f"ConfigurationError: source.table is not valid; {SEE}",
        ),
        (
            "Flow run encountered an exception: SourceError: column `ssn`: value `1`\\nmore",
            f"SourceError: reading the database failed; {SEE}",
        ),
        (
            "Execution was interrupted by an unexpected exception: ValueError: ana@x.com",
            f"ValueError: the export failed unexpectedly; {SEE}",
        ),
        (
            "Flow run process exited with non-zero status code -9.",
            "Flow run process exited with non-zero status code -9.",
        ),
        (
            "no heartbeat for 90 s: the process was lost",  # the zombie automation's words
            "no heartbeat for 90 s: the process was lost",
        ),
        ("", "failed"),
    ],
)
def test_a_state_message_is_its_exceptions_kind_and_field(message: str, said: str) -> None:
    assert state_error(message) == said
