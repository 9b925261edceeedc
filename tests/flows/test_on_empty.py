"""`on_empty`: what a run that reads no rows delivers, as a user sees it: the folder's files,
the run's state and result, the status alerts a webhook got and the audit record. `write` (the
default) delivers a valid empty file, `skip` publishes nothing (no file, manifest or marker)
and completes, `fail` fails with EmptyResultError before anything is published. A split read
whose every range is empty is empty too."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blocks.alerts import ALERTS_BLOCK_NAME, StatusAlerts
from deployments.audit import AuditQuery, AuditRecord, read_audit
from flows.alerts.hooks import deliver_pending_alerts
from flows.core.errors import EmptyResultError
from flows.export import export
from tests.servers.receiver import WebhookReceiver

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def alerts(receiver: WebhookReceiver) -> Iterator[WebhookReceiver]:
    """Alerts on, to the receiver; off again afterwards (the switch is global)."""
    StatusAlerts(enabled=True, url=f"{receiver.url}/alerts").save(ALERTS_BLOCK_NAME, overwrite=True)
    yield receiver
    StatusAlerts().save(ALERTS_BLOCK_NAME, overwrite=True)


def sent(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    deliver_pending_alerts(timeout_s=120)
    return [json.loads(request.body) for request in receiver.requests]


def audit_of(run_id: str) -> AuditRecord:
    [record] = [r for r in read_audit(AuditQuery(limit=200)) if r.export_request_id == run_id]
    return record


@pytest.fixture
def empty_db(tmp_path: Path) -> str:
    db = tmp_path / "empty.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("create table payments (id integer primary key, amount numeric, note text)")
    conn.close()
    return f"sqlite:///{db}"


def destination(out: Path) -> dict[str, Any]:
    return {"url": f"{out}/{{export}}.{{ext}}", "manifest": True, "done_marker": "_SUCCESS"}


def test_write_is_the_default_and_delivers_a_valid_empty_file(
    alerts: WebhookReceiver, empty_db: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = export(source={"url": empty_db, "table": "payments"}, destination=destination(out))
    assert (result.rows, result.skipped) == (0, False)
    assert (out / "payments.csv").read_bytes() == b"id,amount,note\n"
    assert sorted(p.name for p in out.iterdir()) == [
        "_SUCCESS",
        "payments.csv",
        "payments.manifest.json",
    ]
    completed = sent(alerts)[-1]
    assert completed["Status"] == "Completed"
    assert (completed["Rows"], completed["Files"], completed["Empty"]) == (0, result.files, "write")
    record = audit_of(result.export_request_id)
    assert (record.rows, record.files, record.empty) == (0, result.files, "write")


def test_a_run_with_rows_says_nothing_of_empty(
    alerts: WebhookReceiver, demo_db: Path, tmp_path: Path
) -> None:
    result = export(
        source={"url": f"sqlite:///{demo_db}", "table": "customers"},
        destination={"url": f"{tmp_path}/{{export}}.{{ext}}"},
        on_empty="fail",
    )
    assert result.rows > 0
    completed = sent(alerts)[-1]
    assert list(completed)[-2:] == ["Rows", "Files"]  # no Empty
    assert audit_of(result.export_request_id).empty is None


def test_skip_publishes_nothing_and_completes_saying_so(
    alerts: WebhookReceiver, empty_db: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = export(
        source={
            "url": empty_db,
            "query": "select * from payments where amount > :least",
            "params": {"least": 0},
        },
        destination=destination(out),
        format="parquet",
        on_empty="skip",
        name="payments",
    )
    assert (result.rows, result.bytes, result.files, result.skipped) == (0, 0, [], True)
    assert (result.manifest, result.done_marker) == (None, None)
    assert sorted(p.name for p in out.rglob("*")) == []  # no file, no temporary one
    initiated, completed = sent(alerts)
    assert initiated["Status"] == "Initiated"
    assert (completed["Status"], completed["Rows"], completed["Files"], completed["Empty"]) == (
        "Completed",
        0,
        [],
        "skip",
    )
    record = audit_of(result.export_request_id)
    assert (record.status, record.rows, record.files, record.empty) == ("Completed", 0, [], "skip")


def test_fail_fails_before_anything_is_published(
    alerts: WebhookReceiver, empty_db: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    state = export(
        source={"url": empty_db, "table": "payments"},
        destination=destination(out),
        format="xml",
        on_empty="fail",
        return_state=True,
    )
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, EmptyResultError)
    assert str(error) == (
        "on_empty: the source returned no rows and on_empty is `fail`, so nothing was "
        "published; set on_empty to `write` to deliver an empty file, or `skip` to complete "
        "without one"
    )
    assert sorted(p.name for p in out.rglob("*")) == []
    failed = sent(alerts)[-1]
    assert failed["Status"] == "Failed"
    assert failed["Error"] == (
        "EmptyResultError: the source returned no rows and on_empty is fail; the run's logs "
        "have the details"
    )
    record = audit_of(str(state.state_details.flow_run_id))
    assert (record.status, record.empty) == ("Failed", "fail")
    assert record.error is not None and "EmptyResultError: on_empty:" in record.error


@pytest.mark.parametrize("on_empty", ["skip", "fail"])
def test_a_split_read_whose_every_range_is_empty_is_empty(
    empty_db: str, tmp_path: Path, on_empty: str
) -> None:
    out = tmp_path / "out"
    state = export(
        source={
            "url": empty_db,
            "table": "payments",
            "partitions": 3,
            "partition_by": "id",
            "bounds": [1, 300],
        },
        destination=destination(out),
        format="jsonl",
        on_empty=on_empty,
        return_state=True,
    )
    assert sorted(p.name for p in out.rglob("*")) == []
    if on_empty == "fail":
        assert isinstance(state.result(raise_on_failure=False), EmptyResultError)
    else:
        result = state.result()
        assert (result.rows, result.files, result.skipped) == (0, [], True)


def test_skip_posts_nothing_to_an_http_receiver(receiver: WebhookReceiver, empty_db: str) -> None:
    result = export(
        source={"url": empty_db, "table": "payments"},
        destination={"url": f"{receiver.url}/hook"},
        on_empty="skip",
    )
    assert (result.rows, result.files, result.skipped) == (0, [], True)
    assert [request.path for request in receiver.requests] == []
