"""Database failures become the error the user should see, by the driver's own codes where it
gives them (PostgreSQL's SQLSTATE, SQLite's result codes), by the message's words where it gives
none. The PostgreSQL errors are psycopg's own classes; the SQLite ones come from sqlite3."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import psycopg.errors
import pytest
import sqlalchemy as sa

from flows.core.errors import SourceConfigurationError, SourceError, TransientSourceError
from flows.sources.failures import source_failure

pytestmark = pytest.mark.unit
SHOWN = "postgresql+psycopg://reader:***@db/shop"


def _postgres(sqlstate: str, message: str) -> psycopg.Error:
    error: psycopg.Error = psycopg.errors.lookup(sqlstate)(message)
    return error


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_postgres("28P01", 'password authentication failed for user "x"'), "login"),
        (_postgres("3D000", 'database "nope" does not exist'), "login"),
        (
            _postgres(
                "57P01",
                'terminating background worker "parallel worker" due to administrator command',
            ),
            "transient",
        ),
        (_postgres("57P03", "the database system is starting up"), "transient"),
        (_postgres("08006", "server closed the connection unexpectedly"), "transient"),
        (_postgres("42P01", 'relation "nope" does not exist'), "other"),
        # No SQLSTATE (psycopg's failures to connect, errors met during COPY): the words decide.
        (
            psycopg.DatabaseError(
                'terminating background worker "parallel worker" due to administrator command'
            ),
            "transient",
        ),
        (psycopg.DatabaseError("terminating connection due to administrator command"), "transient"),
        (psycopg.OperationalError("connection to server at port 9 failed: refused"), "transient"),
        (psycopg.OperationalError('FATAL:  role "ghost" does not exist'), "login"),
    ],
)
def test_postgres_failures(error: psycopg.Error, kind: str) -> None:
    failure = source_failure(error, SHOWN, "orders")
    expected = {
        "login": SourceConfigurationError,
        "transient": TransientSourceError,
        "other": SourceError,
    }[kind]
    assert type(failure) is expected
    assert SHOWN in str(failure)
    assert failure.table == "orders"  # the table read, whatever the kind
    assert source_failure(error, SHOWN).table is None  # a query's
    if kind == "login":
        assert isinstance(failure, SourceConfigurationError) and failure.field == "source.url"


def test_a_sqlalchemy_error_is_classified_by_the_driver_error_inside(tmp_path: Path) -> None:
    garbage = tmp_path / "not-a-database.sqlite"
    garbage.write_bytes(b"this is not SQLite " * 100)
    engine = sa.create_engine(f"sqlite:///{garbage}")
    with pytest.raises(sa.exc.DBAPIError) as caught, engine.connect() as conn:
        conn.execute(sa.text("SELECT name FROM sqlite_master"))
    assert isinstance(caught.value.orig, sqlite3.DatabaseError)
    failure = source_failure(caught.value, str(garbage))
    assert isinstance(failure, SourceConfigurationError)
    assert "is not a readable database" in str(failure)
