"""An audit record reads its rows and alerts from the run's artifacts found by their keys
(`export-<name>-result`, `export-<name>-alert-<status>`), not by their descriptions: a table
that only says the same words is not taken. Runs recorded before the artifacts had keys are
still read. Pure: a run and its tables as the API returns them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.states import Completed, Failed

from deployments.audit import audit_record
from flows.runs.artifacts import TableArtifact
from flows.runs.result import RESULT_ARTIFACT_DESCRIPTION

pytestmark = pytest.mark.unit

STARTED = dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC)


def completed_run(parameters: dict[str, Any]) -> FlowRun:
    return FlowRun(
        flow_id=uuid.uuid4(),
        parameters=parameters,
        state=Completed(),
        start_time=STARTED,
        end_time=STARTED + dt.timedelta(seconds=2),
    )


ORDERS = {"source": {"url": "sqlite:///x.db", "table": "orders"}}


def result_table(
    key: str | None, rows: int, description: str = RESULT_ARTIFACT_DESCRIPTION
) -> TableArtifact:
    row = {"rows": rows, "bytes": rows * 10, "files": [f"file:///out/{rows}.csv"], "manifest": None}
    return TableArtifact(key, description, [row])


def alert_table(key: str | None, status: str) -> TableArtifact:
    row = {"status": status, "http_status": 200, "attempts": 1, "error": ""}
    return TableArtifact(key, f"Status alert `{status}`", [row])


def test_the_result_is_the_table_with_the_exports_result_key() -> None:
    # newest first, as the API lists them: the decoys say the same words under other keys
    artifacts = [
        result_table("export-orders-summary", 5),
        result_table("export-customers-result", 7),
        result_table("export-orders-result", 1000),
        result_table("export-orders-results", 9),
    ]
    record = audit_record(completed_run(ORDERS), "", artifacts)
    assert (record.rows, record.bytes, record.files) == (1000, 10_000, ["file:///out/1000.csv"])


def test_a_table_described_as_the_result_under_another_key_is_not_taken() -> None:
    record = audit_record(completed_run(ORDERS), "", [result_table("export-other-result", 5)])
    assert (record.rows, record.bytes, record.files) == (None, None, [])


def test_the_key_follows_the_exports_name_parameter() -> None:
    named = {**ORDERS, "name": "Daily Orders"}
    artifacts = [
        result_table("export-orders-result", 5),
        result_table("export-daily-orders-result", 3),
    ]
    assert audit_record(completed_run(named), "", artifacts).rows == 3


def test_alerts_are_the_tables_with_the_exports_alert_keys() -> None:
    artifacts = [
        alert_table("export-orders-alert-completed", "Completed"),
        alert_table("export-orders-summary", "Failed"),  # the words, not the key
        alert_table("export-other-alert-failed", "Failed"),  # another export's key
        alert_table("export-orders-alert-initiated", "Initiated"),
    ]
    record = audit_record(completed_run(ORDERS), "", artifacts)
    assert [alert.status for alert in record.alerts] == ["Initiated", "Completed"]


def test_a_run_recorded_before_the_keys_is_read_by_its_descriptions() -> None:
    artifacts = [
        alert_table(None, "Completed"),
        result_table(None, 1000),
        TableArtifact(None, "Export `orders`: **1,000 rows**", [{"rows": 1}]),
        alert_table(None, "Initiated"),
    ]
    record = audit_record(completed_run(ORDERS), "", artifacts)
    assert record.rows == 1000
    assert [alert.status for alert in record.alerts] == ["Initiated", "Completed"]


def test_what_a_run_without_rows_did_is_its_empty_field() -> None:
    """on_empty: `write` delivered an empty file, `skip` nothing (the result says so), `fail`
    failed the run (its state names the error); a run that read rows says nothing."""
    skipped = TableArtifact(
        "export-orders-result",
        RESULT_ARTIFACT_DESCRIPTION,
        [{"rows": 0, "bytes": 0, "files": [], "manifest": None, "skipped": True}],
    )
    runs = {
        "write": [result_table("export-orders-result", 0)],
        "skip": [skipped],
        None: [result_table("export-orders-result", 1000)],
    }
    for empty, artifacts in runs.items():
        assert audit_record(completed_run(ORDERS), "", artifacts).empty == empty
    failed = completed_run(ORDERS)
    failed.state = Failed(
        message="Flow run encountered an exception: EmptyResultError: on_empty: the source "
        "returned no rows and on_empty is `fail`, so nothing was published; ..."
    )
    record = audit_record(failed, "", [])
    assert (record.status, record.empty, record.rows) == ("Failed", "fail", None)
    other = completed_run(ORDERS)
    other.state = Failed(message="Flow run encountered an exception: SourceError: no table")
    assert audit_record(other, "", []).empty is None


def test_the_keys_a_run_encrypted_to_are_its_encrypted_to_field() -> None:
    """destination.pgp: the result's `encrypted_to` fingerprints; none for a run recorded
    before the field, or not encrypted."""
    fingerprints = ["A" * 40, "B" * 40]
    encrypted = TableArtifact(
        "export-orders-result",
        RESULT_ARTIFACT_DESCRIPTION,
        [{"rows": 5, "bytes": 9, "files": ["x.csv.pgp"], "encrypted_to": fingerprints}],
    )
    assert audit_record(completed_run(ORDERS), "", [encrypted]).encrypted_to == fingerprints
    older = [result_table("export-orders-result", 1000)]
    assert audit_record(completed_run(ORDERS), "", older).encrypted_to == []


def test_the_range_a_stored_cursor_delivered_is_its_cursor_field() -> None:
    """source.incremental: the result's `cursor` ({column, from, to}); none without one."""
    ranged = {"column": "updated_at", "from": "2026-03-01T10:00:00", "to": "2026-03-02T09:00:00"}
    table = TableArtifact(
        "export-orders-result",
        RESULT_ARTIFACT_DESCRIPTION,
        [{"rows": 5, "bytes": 9, "files": ["x.csv"], "cursor": ranged}],
    )
    assert audit_record(completed_run(ORDERS), "", [table]).cursor == ranged
    older = [result_table("export-orders-result", 1000)]
    assert audit_record(completed_run(ORDERS), "", older).cursor is None
