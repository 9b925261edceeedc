"""`on_schema_change`: a run whose columns or types differ from those its export's last
successful run wrote. `fail` stops it before any row is read, so nothing is published (no file,
no temporary one, no manifest), lists what changed and leaves the recorded schema; `allow` (the
default) delivers the new columns and records them. `exports schema show` prints the record.
On real SQLite, PostgreSQL and MariaDB databases and a real Prefect server."""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from blocks.alerts import ALERTS_BLOCK_NAME, StatusAlerts
from blocks.export_state import load_export_state
from deployments.cli.app import app
from flows.alerts.hooks import deliver_pending_alerts
from flows.core.errors import SchemaChangedError
from flows.export import export
from tests.servers.receiver import WebhookReceiver

pytestmark = pytest.mark.usefixtures("prefect_api")

runner = CliRunner()


@pytest.fixture
def alerts(receiver: WebhookReceiver) -> Iterator[WebhookReceiver]:
    """Alerts on, to the receiver; off again afterwards (the switch is global)."""
    StatusAlerts(enabled=True, url=f"{receiver.url}/alerts").save(ALERTS_BLOCK_NAME, overwrite=True)
    yield receiver
    StatusAlerts().save(ALERTS_BLOCK_NAME, overwrite=True)


def destination(out: Path) -> dict[str, Any]:
    return {"url": f"{out}/{{export}}.{{ext}}", "manifest": True}


def recorded(name: str) -> list[tuple[str, str]]:
    state = load_export_state(name)
    assert state is not None
    return [(column.name, column.type) for column in state.columns]


def header(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        return next(csv.reader(handle))


def run_sql(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


# The table's types, then the added column's, as each database names them.
ADDED = {
    "sqlite": ([("id", "INTEGER"), ("amount", "NUMERIC(12, 2)")], "TEXT"),
    "mariadb": ([("id", "int"), ("amount", "decimal(12,2)")], "text"),
}


@pytest.mark.parametrize("database", ["sqlite", "mariadb"])
def test_an_added_column_fails_then_allow_delivers_and_records_it(
    alerts: WebhookReceiver, tmp_path: Path, request: pytest.FixtureRequest, database: str
) -> None:
    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'shop.sqlite'}"
    else:
        url = request.getfixturevalue("mariadb_url")
    run_sql(
        url,
        "create table orders (id integer primary key, amount numeric(12, 2))",
        "insert into orders values (1, 9.5), (2, 12.25)",
    )
    columns, added = ADDED[database]
    source = {"url": url, "table": "orders"}
    name = f"schema-test {database}"
    first = export(
        source=source, destination=destination(tmp_path / "1"), name=name, on_schema_change="fail"
    )  # nothing recorded yet: nothing to compare, and the run records its columns
    assert first.rows == 2
    assert recorded(name) == columns

    run_sql(url, "alter table orders add column note text")
    out = tmp_path / "2"
    state = export(
        source=source,
        destination=destination(out),
        name=name,
        on_schema_change="fail",
        return_state=True,
    )
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, SchemaChangedError)
    assert str(error) == (
        f"on_schema_change: the columns differ from those of the last successful run "
        f"({first.export_request_id}, finished {first.finished.isoformat(timespec='seconds')}): "
        f"added: note ({added}); nothing was written or published; if the change is expected, "
        "run once with on_schema_change `allow` to deliver and record the new columns"
    )
    assert error.changes == (f"added: note ({added})",)
    assert not out.exists() or sorted(out.rglob("*")) == []  # no file, no temporary one
    deliver_pending_alerts(timeout_s=120)
    failed = json.loads(alerts.requests[-1].body)
    assert (failed["Status"], failed["Error"]) == (
        "Failed",
        "SchemaChangedError: the columns changed since the last successful run; the run's "
        "logs have the details",
    )
    state_now = load_export_state(name)
    assert state_now is not None and state_now.run_id == first.export_request_id

    allowed = export(source=source, destination=destination(tmp_path / "3"), name=name)
    assert header(tmp_path / "3" / f"{name}.csv") == ["id", "amount", "note"]
    assert recorded(name)[-1] == ("note", added)
    assert load_export_state(name).run_id == allowed.export_request_id  # type: ignore[union-attr]
    again = export(
        source=source, destination=destination(tmp_path / "4"), name=name, on_schema_change="fail"
    )  # the new schema is the recorded one now
    assert again.rows == 2


# Per database: the table, its recorded types, the changes made, and what the run lists.
# MariaDB's BOOL is TINYINT(1) and a DATETIME's fractional digits change what is written: both
# are in the recorded type, so a column turned from BOOL to INT or given microseconds shows.
CHANGED = {
    "postgresql": (
        "create table orders (id int primary key, amount numeric(12,2), qty int)",
        "insert into orders values (1, 9.50, 3), (2, 12.25, 1)",
        [("id", "int4"), ("amount", "numeric(12,2)"), ("qty", "int4")],
        (
            "alter table orders add column note text",
            "alter table orders alter column amount type numeric(14,2)",
            "alter table orders drop column qty",
        ),
        (
            "added: note (text)",
            "removed: qty",
            "retyped: amount numeric(12,2) -> numeric(14,2)",
        ),
    ),
    "mariadb": (
        "create table orders (id int primary key, paid bool, at datetime, qty int, big bigint)",
        "insert into orders values (1, true, '2026-01-02 03:04:05', 3, 7)",
        [
            ("id", "int"),
            ("paid", "tinyint(1)"),
            ("at", "datetime"),
            ("qty", "int"),
            ("big", "bigint"),
        ],
        (
            "alter table orders add column note text",
            "alter table orders modify paid int",
            "alter table orders modify at datetime(6)",
            "alter table orders drop column qty",
            "alter table orders modify big bigint unsigned",
        ),
        (
            "added: note (text)",
            "removed: qty",
            "retyped: paid tinyint(1) -> int, at datetime -> datetime(6), "
            "big bigint -> bigint unsigned",
        ),
    ),
}


@pytest.mark.parametrize("database", ["postgresql", "mariadb"])
def test_added_removed_and_retyped_columns_are_each_listed(
    tmp_path: Path, request: pytest.FixtureRequest, database: str
) -> None:
    url = request.getfixturevalue("pg_url" if database == "postgresql" else "mariadb_url")
    create, insert, columns, changes, listed = CHANGED[database]
    run_sql(url, create, insert)
    source = {"url": url, "table": "orders"}
    name = f"schema-test {database}"
    export(source=source, destination=destination(tmp_path / "1"), name=name)
    assert recorded(name) == columns

    run_sql(url, *changes)
    out = tmp_path / "2"
    state = export(
        source=source,
        destination=destination(out),
        name=name,
        on_schema_change="fail",
        return_state=True,
    )
    error = state.result(raise_on_failure=False)
    assert isinstance(error, SchemaChangedError)
    assert error.changes == listed
    assert f"): {'; '.join(listed)}; nothing was written" in str(error)
    assert not out.exists() or sorted(out.rglob("*")) == []
    assert recorded(name) == columns


def test_schema_show_prints_the_recorded_columns_or_says_none(
    demo_db: Path, tmp_path: Path
) -> None:
    name = "schema-test cli"
    none = runner.invoke(app, ["schema", "show", name])
    assert (none.exit_code, none.stdout) == (
        0,
        f"no schema recorded for export `{name}`: its next successful run records one\n",
    )
    assert runner.invoke(app, ["schema", "show", name, "--json"]).stdout == "null\n"

    result = export(
        source={"url": f"sqlite:///{demo_db}", "table": "orders"},
        destination=destination(tmp_path),
        name=name,
    )
    with sqlite3.connect(demo_db) as conn:
        names = [row[1] for row in conn.execute("PRAGMA table_info(orders)")]
    conn.close()
    columns = recorded(name)
    assert [column for column, _ in columns] == names and all(kind for _, kind in columns)
    shown = runner.invoke(app, ["schema", "show", name])
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    finished = result.finished.isoformat(timespec="seconds")
    assert lines[0] == f"export {name}: run {result.export_request_id}, finished {finished}"
    assert [line.split(None, 1) for line in lines[1:]] == [["column", "type"]] + [
        [column, kind] for column, kind in columns
    ]
    as_json = json.loads(runner.invoke(app, ["schema", "show", name, "--json"]).stdout)
    assert as_json == {
        "export": name,
        "run_id": result.export_request_id,
        "finished": result.finished.isoformat(),
        "columns": [{"name": column, "type": kind} for column, kind in columns],
    }
