"""`checks` as a user sees them: a run whose written rows fail a check publishes nothing (no
file, temporary file, manifest or marker), fails with CheckFailedError giving the check and
its numbers, its Failed alert naming the check, and leaves the export's saved state as it was;
a run that passes delivers as before. On SQLite and MariaDB, and on PostgreSQL with a split
read, whose `unique` is counted in the very snapshot the partitions read."""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from blocks.alerts import ALERTS_BLOCK_NAME, StatusAlerts
from blocks.export_state import load_export_state
from flows.alerts.hooks import deliver_pending_alerts
from flows.core.config import SourceConfig
from flows.core.errors import CheckFailedError, ConfigurationError
from flows.export import export
from flows.sources.check_counts import duplicate_keys
from flows.sources.plan import inspect_source
from tests.flows.conftest import url_for_psycopg
from tests.servers.receiver import WebhookReceiver

pytestmark = pytest.mark.usefixtures("prefect_api")

# (id, email, order_id, group): two NULL emails, order_id 7 twice, (7, 1) twice; `group` is a
# reserved word in every database, so the checks' SQL must quote it
ROWS = [(1, "a@x", 5, 1), (2, None, 6, 1), (3, "c@x", 7, 1), (4, None, 7, 1), (5, "e@x", 8, 2)]


@pytest.fixture
def alerts(receiver: WebhookReceiver) -> Iterator[WebhookReceiver]:
    """Alerts on, to the receiver; off again afterwards (the switch is global)."""
    StatusAlerts(enabled=True, url=f"{receiver.url}/alerts").save(ALERTS_BLOCK_NAME, overwrite=True)
    yield receiver
    StatusAlerts().save(ALERTS_BLOCK_NAME, overwrite=True)


def last_alert(receiver: WebhookReceiver) -> dict[str, Any]:
    deliver_pending_alerts(timeout_s=120)
    found: dict[str, Any] = json.loads(receiver.requests[-1].body)
    return found


def make_orders(url: str) -> str:
    """The `orders` table of ROWS, written by SQLAlchemy in the database's own dialect."""
    table = sa.Table(
        "orders",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.Text),
        sa.Column("order_id", sa.Integer),
        sa.Column("group", sa.Integer),
    )
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            table.create(conn)
            keys = table.columns.keys()
            conn.execute(table.insert(), [dict(zip(keys, row, strict=True)) for row in ROWS])
    finally:
        engine.dispose()
    return url


@pytest.fixture
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """`orders` on SQLite, or on MariaDB where a test asks for it (indirect parametrize)."""
    if getattr(request, "param", "sqlite") == "mariadb":
        return make_orders(request.getfixturevalue("mariadb_url"))
    return make_orders(f"sqlite:///{tmp_path / 'shop.sqlite'}")


def destination(out: Path) -> dict[str, Any]:
    return {"url": f"{out}/{{export}}.{{ext}}", "manifest": True, "done_marker": "_SUCCESS"}


FAILING = [
    ({"min_rows": 6}, "min_rows: 5 rows written, fewer than 6"),
    ({"max_rows": 4}, "max_rows: 5 rows written, more than 4"),
    ({"not_null": ["id", "email"]}, "not_null(email): 2 null values"),
    ({"unique": ["order_id"]}, "unique(order_id): 1 duplicate key"),
    ({"unique": ["order_id", "group"]}, "unique(order_id, group): 1 duplicate key"),
]


@pytest.mark.parametrize(
    ("shop", "checks", "message"),
    [("sqlite", *case) for case in FAILING]
    + [("mariadb", *case) for case in FAILING[1:]],  # min_rows/max_rows once
    indirect=["shop"],
)
def test_a_failed_check_publishes_nothing_and_names_the_check(
    alerts: WebhookReceiver, shop: str, tmp_path: Path, checks: dict[str, Any], message: str
) -> None:
    out = tmp_path / "out"
    state = export(
        source={"url": shop, "table": "orders"},
        destination=destination(out),
        name=f"checked-{tmp_path.name}",
        checks=checks,
        return_state=True,
    )
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, CheckFailedError)
    assert str(error) == f"{message}; nothing was published"
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == []  # temporary files too
    failed = last_alert(alerts)
    assert failed["Status"] == "Failed"
    check = next(iter(checks))
    assert failed["Error"] == (
        f"CheckFailedError: checks.{check} failed, nothing was published; "
        "the run's logs have the details"
    )
    assert load_export_state(f"checked-{tmp_path.name}") is None


@pytest.mark.parametrize("shop", ["sqlite", "mariadb"], indirect=True)
def test_checks_that_pass_deliver_the_rows(shop: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    name = f"passing-{tmp_path.name}"  # no saved state: max_change_pct has nothing to compare with
    result = export(
        source={"url": shop, "table": "orders"},
        destination=destination(out),
        name=name,
        format="csv",
        checks={
            "min_rows": 5,
            "max_rows": 5,
            "not_null": ["id", "order_id", "group"],
            "unique": ["id", "group"],
            "max_change_pct": 0,
        },
    )
    assert result.rows == 5
    with (out / f"{name}.csv").open(newline="") as handle:
        assert [row["id"] for row in csv.DictReader(handle)] == ["1", "2", "3", "4", "5"]
    assert sorted(p.name for p in out.iterdir()) == [
        "_SUCCESS",
        f"{name}.csv",
        f"{name}.manifest.json",
    ]


def test_max_change_pct_compares_with_the_last_successful_run(shop: str, tmp_path: Path) -> None:
    """The first run has nothing to compare with and passes; after two of five rows go, the
    next fails at 40% and leaves the saved state (the first run's) as it was."""
    name = f"change-{tmp_path.name}"
    source = {"url": shop, "table": "orders"}
    first = export(
        source=source,
        destination=destination(tmp_path / "first"),
        name=name,
        checks={"max_change_pct": 30},
    )
    saved = load_export_state(name)
    assert saved is not None and (saved.run_id, saved.rows) == (first.export_request_id, 5)
    with sqlite3.connect(shop.removeprefix("sqlite:///")) as conn:
        conn.execute("delete from orders where id > 3")
    conn.close()
    out = tmp_path / "second"
    with pytest.raises(CheckFailedError) as caught:
        export(
            source=source, destination=destination(out), name=name, checks={"max_change_pct": 30}
        )
    assert str(caught.value) == (
        "max_change_pct: 3 rows written against 5 by the last successful run, a change of "
        "40.0%, more than 30%; nothing was published"
    )
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == []
    after = load_export_state(name)
    assert after is not None and (after.run_id, after.rows) == (first.export_request_id, 5)


def test_a_check_on_a_column_not_exported_is_refused_before_any_row_is_read(
    shop: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(ConfigurationError) as caught:
        export(
            source={"url": shop, "table": "orders", "columns": [{"name": "id", "as": "key"}]},
            destination=destination(out),
            checks={"unique": ["id"]},
        )
    assert caught.value.field == "checks.unique[0]"
    assert str(caught.value) == "checks.unique[0]: `id` is not an exported column; name one of key"
    assert not out.exists() or sorted(p.name for p in out.rglob("*")) == []


# -- PostgreSQL: a split read, `unique` in the partitions' snapshot ---------------------------


@pytest.fixture
def pg_orders(pg_url: str) -> str:
    return make_orders(pg_url)


@pytest.mark.postgres
def test_the_duplicates_are_counted_in_the_snapshot_the_partitions_read(pg_orders: str) -> None:
    """A duplicate committed after the snapshot was exported is not counted in it."""
    plan = inspect_source(SourceConfig(url=pg_orders, table="orders"))
    engine = sa.create_engine(pg_orders)
    try:
        with engine.connect() as holder:
            holder = holder.execution_options(isolation_level="REPEATABLE READ")
            snapshot = str(holder.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one())
            with psycopg.connect(url_for_psycopg(pg_orders), autocommit=True) as conn:
                conn.execute("insert into orders values (6, 'f@x', 8, 3)")
            assert duplicate_keys(plan, ["order_id"], snapshot) == 1  # 7 only
            assert duplicate_keys(plan, ["order_id"]) == 2  # 7 and 8, committed since
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_split_read_fails_its_unique_check_and_publishes_no_part(
    pg_orders: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    source = {"url": pg_orders, "table": "orders", "partitions": 2, "partition_by": "id"}
    state = export(
        source=source,
        destination={"url": f"{out}/{{export}}-{{part}}.{{ext}}", "manifest": True},
        checks={"unique": ["order_id"], "not_null": ["order_id"]},
        return_state=True,
    )
    error = state.result(raise_on_failure=False)
    assert isinstance(error, CheckFailedError)
    assert str(error) == "unique(order_id): 1 duplicate key; nothing was published"
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == []
    result = export(
        source=source,
        destination={"url": f"{out}/{{export}}-{{part}}.{{ext}}", "manifest": True},
        format="jsonl",
        checks={"unique": ["id"], "not_null": ["id"], "min_rows": 5},
    )
    assert result.rows == 5
    delivered = [
        json.loads(line)["id"]
        for path in sorted(out.glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    assert sorted(delivered) == [1, 2, 3, 4, 5]


@pytest.mark.postgres
def test_nulls_in_rows_copy_finished_are_counted_by_the_database(
    pg_orders: str, tmp_path: Path
) -> None:
    """PostgreSQL's COPY writes the CSV rows itself: the database counts their NULLs."""
    out = tmp_path / "out"
    with pytest.raises(CheckFailedError) as caught:
        export(
            source={"url": pg_orders, "table": "orders"},
            destination={"url": f"{out}/{{export}}.{{ext}}"},
            checks={"not_null": ["id", "email"]},
        )
    assert str(caught.value) == "not_null(email): 2 null values; nothing was published"
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == []
