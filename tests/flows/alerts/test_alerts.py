"""Status alerts (Contract 5) against a real HTTP receiver on loopback and the test Prefect API:
what reached the webhook, in which order, with which keys, formats and signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from typer.testing import CliRunner

from blocks.alerts import ALERTS_BLOCK_NAME, StatusAlerts
from deployments.cli.app import app
from flows.alert_reconciler import reconcile_alerts
from flows.alerts.hooks import deliver_pending_alerts
from flows.alerts.payload import alert_time
from flows.core.signing import legacy_signature
from flows.export import export
from flows.runs.artifacts import table_artifacts
from tests.leaks import REGISTRY
from tests.servers.ports import free_port
from tests.servers.receiver import WebhookReceiver

pytestmark = pytest.mark.usefixtures("prefect_api")

WEBHOOK_SECRET = "s3cret-for-alerts"
CLI_WEBHOOK_SECRET = "abc123-from-the-cli"
STANDARD_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
REGISTRY.remember("a webhook secret", WEBHOOK_SECRET)
REGISTRY.remember("a webhook secret", CLI_WEBHOOK_SECRET)
REGISTRY.remember("a webhook secret", STANDARD_SECRET)
CONTRACT_KEYS = ["Export Request Id", "Partner", "Type", "Status", "Frequency", "Date and Time"]
DATE_AND_TIME = re.compile(r"^\d{2}/\d{2}/\d{4} (?:[1-9]|1[0-2]):[0-5]\d:[0-5]\d (?:AM|PM)$")


@pytest.fixture
def alerts(receiver: WebhookReceiver) -> Iterator[WebhookReceiver]:
    """Alerts on, to the receiver; off again afterwards (the switch is global)."""
    StatusAlerts(enabled=True, url=f"{receiver.url}/alerts", timezone="America/New_York").save(
        ALERTS_BLOCK_NAME, overwrite=True
    )
    yield receiver
    StatusAlerts().save(ALERTS_BLOCK_NAME, overwrite=True)


def bodies(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    """What the receiver got once this process's queued alerts went out."""
    deliver_pending_alerts(timeout_s=120)
    return [json.loads(request.body) for request in receiver.requests]


def orders(demo_db: Path, folder: Path, **extra: Any) -> dict[str, Any]:
    return {
        "source": {"url": f"sqlite:///{demo_db}", "table": "orders"},
        "destination": {"url": f"{folder}/{{export}}.{{ext}}"},
        "type": "Orders",
        **extra,
    }


def parse_alert_time(text: str, zone: str) -> datetime:
    return datetime.strptime(text, "%d/%m/%Y %I:%M:%S %p").replace(tzinfo=ZoneInfo(zone))


def alert_artifacts(flow_run_id: str) -> list[dict[str, Any]]:
    """The alert outcomes recorded on a run (table artifacts), oldest first."""
    tables = reversed(table_artifacts(flow_run_id, limit=50))
    return [t.rows[0] for t in tables if t.description.startswith("Status alert") and t.rows]


def test_alert_time_format_and_zone() -> None:
    moment = datetime(2023, 7, 25, 14, 50, 52, tzinfo=UTC)
    assert alert_time(moment, "Europe/Berlin") == "25/07/2023 4:50:52 PM"
    assert alert_time(moment, "UTC") == "25/07/2023 2:50:52 PM"
    assert alert_time(datetime(2023, 1, 5, 0, 5, 9, tzinfo=UTC), "UTC") == "05/01/2023 12:05:09 AM"
    assert alert_time(datetime(2023, 1, 5, 12, 0, 0, tzinfo=UTC), "UTC") == "05/01/2023 12:00:00 PM"


def test_a_successful_export_sends_initiated_then_completed(
    alerts: WebhookReceiver, demo_db: Path, tmp_path: Path
) -> None:
    before = datetime.now(UTC)
    result = export(**orders(demo_db, tmp_path))
    sent = bodies(alerts)
    assert [body["Status"] for body in sent] == ["Initiated", "Completed"]
    for body in sent:
        assert list(body)[:6] == CONTRACT_KEYS
        assert body["Export Request Id"] == result.export_request_id
        assert body["Partner"] == "Local folder" and body["Type"] == "Orders"
        assert body["Frequency"] == "One Time" and body["Trigger"] == "Run Now"
        assert DATE_AND_TIME.match(body["Date and Time"]), body["Date and Time"]
        # New York wall-clock time: the same instant as now, give or take the run.
        moment = parse_alert_time(body["Date and Time"], "America/New_York")
        assert before - timedelta(seconds=2) <= moment <= datetime.now(UTC) + timedelta(seconds=2)
    assert sent[1]["Rows"] == 1000 and sent[1]["Files"] == result.files
    for request in alerts.requests:
        assert request.path == "/alerts" and request.header("Content-Type") == "application/json"
        assert request.header("X-Exports-Signature") is None
    assert [row["status"] for row in alert_artifacts(result.export_request_id)] == [
        "Initiated",
        "Completed",
    ]


def test_a_failing_export_sends_initiated_then_failed_with_the_error(
    alerts: WebhookReceiver, demo_db: Path, tmp_path: Path
) -> None:
    parameters = orders(demo_db, tmp_path)
    parameters["source"]["table"] = "no_such_table"
    state = export(**parameters, return_state=True)
    assert state.is_failed()
    sent = bodies(alerts)
    assert [body["Status"] for body in sent] == ["Initiated", "Failed"]
    assert list(sent[1])[:6] == CONTRACT_KEYS
    # The kind and the field; the error's words (the database's list of tables) stay in
    # the run's logs (issue 17).
    assert sent[1]["Error"] == (
        "ConfigurationError: source.table is not valid; the run's logs have the details"
    )
    assert "customers" in str(state.message) and "customers" not in json.dumps(sent)


def test_a_retried_flow_sends_one_initiated(
    alerts: WebhookReceiver, demo_db: Path, tmp_path: Path
) -> None:
    parameters = orders(demo_db, tmp_path)
    parameters["source"]["table"] = "no_such_table"
    retried = export.with_options(retries=2, retry_delay_seconds=0)
    state = retried(**parameters, return_state=True)
    assert state.is_failed()
    assert [body["Status"] for body in bodies(alerts)] == ["Initiated", "Failed"]


def test_500_500_200_is_delivered_on_the_third_attempt(
    alerts: WebhookReceiver, demo_db: Path, tmp_path: Path
) -> None:
    alerts.answer(500, 500)
    result = export(**orders(demo_db, tmp_path))
    deliver_pending_alerts(timeout_s=120)
    assert [(json.loads(r.body)["Status"], r.status) for r in alerts.requests] == [
        ("Initiated", 500),
        ("Initiated", 500),
        ("Initiated", 200),
        ("Completed", 200),
    ]
    outcomes = alert_artifacts(result.export_request_id)
    assert outcomes[0] == {"status": "Initiated", "http_status": 200, "attempts": 3, "error": ""}


def test_a_4xx_is_not_retried(alerts: WebhookReceiver, demo_db: Path, tmp_path: Path) -> None:
    alerts.answer(404)
    result = export(**orders(demo_db, tmp_path))
    deliver_pending_alerts(timeout_s=120)
    assert [r.status for r in alerts.requests] == [404, 200]
    outcome = alert_artifacts(result.export_request_id)[0]
    assert outcome["http_status"] == 404 and outcome["attempts"] == 1
    assert "404" in outcome["error"]


@pytest.mark.usefixtures("no_retry_waits")
def test_a_dead_receiver_does_not_fail_the_export(
    demo_db: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    StatusAlerts(
        enabled=True, url=f"http://127.0.0.1:{free_port()}/gone", max_attempts=3, max_total_s=5
    ).save(ALERTS_BLOCK_NAME, overwrite=True)
    try:
        state = export(**orders(demo_db, tmp_path), return_state=True)
        deliver_pending_alerts(timeout_s=120)  # with the block as it is now
    finally:
        StatusAlerts().save(ALERTS_BLOCK_NAME, overwrite=True)
    assert state.is_completed()
    outcomes = alert_artifacts(str(state.state_details.flow_run_id))
    assert [row["status"] for row in outcomes] == ["Initiated", "Completed"]
    for row in outcomes:
        assert row["http_status"] is None and row["attempts"] == 3
        assert "ConnectError" in row["error"]
    warnings = [r.getMessage() for r in caplog.records if "NOT delivered" in r.getMessage()]
    assert len(warnings) == 2 and "ConnectError" in warnings[0]


def test_a_hanging_webhook_holds_neither_the_run_nor_its_end(
    alerts: WebhookReceiver, demo_db: Path, tmp_path: Path
) -> None:
    """Issue 17: each alert waited for the webhook inside the run (4 x 5 s timeouts turned a
    1 s export into 32 s). Here the receiver answers nothing until the run is over."""
    StatusAlerts(enabled=True, url=f"{alerts.url}/alerts", timeout_s=60, max_total_s=120).save(
        ALERTS_BLOCK_NAME, overwrite=True
    )
    alerts.hold()
    try:
        state = export(**orders(demo_db, tmp_path), return_state=True)
        assert state.is_completed()
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(state.state_details.flow_run_id)
        assert run.state is not None and run.state.is_completed()
        # The run ended while its Initiated alert still waited for an answer; Completed is
        # queued behind it.
        held = alerts.wait_for(1, timeout_s=30)
        assert [json.loads(request.body)["Status"] for request in held] == ["Initiated"]
    finally:
        alerts.release()
    assert [body["Status"] for body in bodies(alerts)] == ["Initiated", "Completed"]
    assert [row["status"] for row in alert_artifacts(str(run.id))] == ["Initiated", "Completed"]


def test_the_signature_verifies_with_the_secret_only(
    receiver: WebhookReceiver, demo_db: Path, tmp_path: Path
) -> None:
    """A secret saved before the standard signature (plain text): the old header as it was,
    and the standard one keyed with the text's bytes."""
    StatusAlerts(enabled=True, url=receiver.url, secret=WEBHOOK_SECRET).save(
        ALERTS_BLOCK_NAME, overwrite=True
    )
    try:
        export(**orders(demo_db, tmp_path))
    finally:
        StatusAlerts().save(ALERTS_BLOCK_NAME, overwrite=True)
    assert len(receiver.requests) == 2
    for request in receiver.requests:
        header = request.header("X-Exports-Signature") or ""
        # What a receiver does: HMAC-SHA256 of the raw body with the shared secret.
        expected = hmac.new(WEBHOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(header, f"sha256={expected}")
        assert header != legacy_signature(request.body, "another-secret")
        assert WEBHOOK_SECRET.encode() not in request.body
        assert Webhook(WEBHOOK_SECRET.encode()).verify(request.body, request.headers)


def test_standard_webhooks_verifies_a_real_alert_and_refuses_a_replay(
    receiver: WebhookReceiver, demo_db: Path, tmp_path: Path
) -> None:
    """Issue 24: a captured Completed alert verified forever (no id, no time in its signature)
    and no standard library could check it. Now `standardwebhooks` verifies each alert of a
    real run; a retry carries the same webhook-id (a receiver keeps one), each attempt its own
    send time; a replay given a fresh or an old time, and a tampered body, are refused."""
    StatusAlerts(enabled=True, url=f"{receiver.url}/alerts", secret=STANDARD_SECRET).save(
        ALERTS_BLOCK_NAME, overwrite=True
    )
    receiver.answer(503)  # the Initiated alert is sent twice
    before = int(time.time())
    try:
        export(**orders(demo_db, tmp_path))
        deliver_pending_alerts(timeout_s=120)
    finally:
        StatusAlerts().save(ALERTS_BLOCK_NAME, overwrite=True)
    after = int(time.time())
    webhook = Webhook(STANDARD_SECRET)
    sent = [webhook.verify(request.body, request.headers) for request in receiver.requests]
    assert [body["Status"] for body in sent] == ["Initiated", "Initiated", "Completed"]
    ids = [request.header("webhook-id") for request in receiver.requests]
    assert ids[0] == ids[1] != ids[2] and all(str(item).startswith("msg_") for item in ids)
    for request in receiver.requests:
        assert before <= int(request.header("webhook-timestamp") or 0) <= after
    completed = receiver.requests[-1]
    for moved in (after + 1, before - 600):
        replayed = {**completed.headers, "webhook-timestamp": str(moved)}
        with pytest.raises(WebhookVerificationError, match="too old|No matching signature"):
            webhook.verify(completed.body, replayed)
    tampered = completed.body.replace(b'"Rows": 1000', b'"Rows": 1001')
    assert tampered != completed.body
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        webhook.verify(tampered, completed.headers)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(WEBHOOK_SECRET.encode()).verify(completed.body, completed.headers)


def test_no_block_or_disabled_sends_nothing(
    receiver: WebhookReceiver, demo_db: Path, tmp_path: Path
) -> None:
    StatusAlerts(url=receiver.url).save(ALERTS_BLOCK_NAME, overwrite=True)  # not enabled
    export(**orders(demo_db, tmp_path))
    assert receiver.requests == []


class TestCli:
    def test_enable_show_test_disable(self, receiver: WebhookReceiver) -> None:
        runner = CliRunner()
        try:
            done = runner.invoke(
                app,
                ["alerts", "enable", "--url", f"{receiver.url}/hook",
                 "--secret", CLI_WEBHOOK_SECRET, "--timezone", "Europe/Berlin"],
            )  # fmt: skip
            assert done.exit_code == 0, done.output
            assert "note: deploy `alert-reconciler/alert-reconciler`" in done.output
            shown = json.loads(runner.invoke(app, ["alerts", "show", "--json"]).output)
            assert shown["enabled"] is True and shown["url"] == f"{receiver.url}/hook"
            assert shown["secret"] == "set" and shown["timezone"] == "Europe/Berlin"
            tested = runner.invoke(app, ["alerts", "test"])
            assert tested.exit_code == 0 and "HTTP 200" in tested.output
            body = json.loads(receiver.requests[-1].body)
            assert body["Test"] is True and list(body)[:6] == CONTRACT_KEYS
            header = receiver.requests[-1].header("X-Exports-Signature")
            assert header == legacy_signature(receiver.requests[-1].body, CLI_WEBHOOK_SECRET)
            sent = receiver.requests[-1]
            assert Webhook(CLI_WEBHOOK_SECRET.encode()).verify(sent.body, sent.headers)
            assert runner.invoke(app, ["alerts", "disable"]).exit_code == 0
            shown = json.loads(runner.invoke(app, ["alerts", "show", "--json"]).output)
            assert shown["enabled"] is False and shown["secret"] == "set"
        finally:
            StatusAlerts().save(ALERTS_BLOCK_NAME, overwrite=True)

    def test_bad_options_name_what_to_change(self) -> None:
        runner = CliRunner()
        done = runner.invoke(app, ["alerts", "enable", "--url", "ftp://x/y"])
        assert done.exit_code == 2
        assert "--url: url `ftp://x/y` must be an http:// or https:// URL" in done.output
        done = runner.invoke(
            app, ["alerts", "enable", "--url", "https://x.example/y", "--timezone", "Mars/Base"]
        )
        assert done.exit_code == 2 and "--timezone: `Mars/Base` is not an IANA time zone" in (
            done.output
        )

    def test_test_reports_a_dead_webhook(self) -> None:
        StatusAlerts(
            enabled=True, url=f"http://127.0.0.1:{free_port()}/", max_attempts=2, max_total_s=3
        ).save(ALERTS_BLOCK_NAME, overwrite=True)
        try:
            done = CliRunner().invoke(app, ["alerts", "test"])
        finally:
            StatusAlerts().save(ALERTS_BLOCK_NAME, overwrite=True)
        assert done.exit_code == 1 and "not delivered after 2 attempt(s)" in done.output


def run_log(flow_run_id: Any, line: str) -> str:
    """The run's log as the Prefect UI shows it, once `line` reached the API (logs are sent
    in batches); all of it if it never does."""
    deadline = time.monotonic() + 20
    while True:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
        text = "\n".join(log.message for log in logs)
        if line in text or time.monotonic() > deadline:
            return text
        time.sleep(0.5)


def test_the_reconciler_logs_what_it_did(
    receiver: WebhookReceiver, demo_db: Path, tmp_path: Path
) -> None:
    """With alerts off it says it sent nothing; on, it says which runs' alerts were delivered."""
    StatusAlerts(url=f"{receiver.url}/alerts").save(ALERTS_BLOCK_NAME, overwrite=True)  # off
    failing = orders(demo_db, tmp_path)
    failing["source"] = {**failing["source"], "table": "no_such_table"}
    failed = export(**failing, return_state=True)
    assert failed.is_failed()
    run_id = str(failed.state_details.flow_run_id)

    off = reconcile_alerts(flow_run_id=run_id, return_state=True)
    assert off.result() == [] and receiver.requests == []
    line = (
        "status alerts are disabled: no Failed alert sent (1 export run(s) without a delivered one)"
    )
    assert line in run_log(off.state_details.flow_run_id, line)
    try:
        StatusAlerts(enabled=True, url=f"{receiver.url}/alerts").save(
            ALERTS_BLOCK_NAME, overwrite=True
        )
        on = reconcile_alerts(flow_run_id=run_id, return_state=True)
        assert on.result() == [run_id]
        assert [body["Status"] for body in bodies(receiver)] == ["Failed"]
        line = f"Failed alert delivered for 1 export run(s): ['{run_id}']"
        assert line in run_log(on.state_details.flow_run_id, line)
    finally:
        StatusAlerts().save(ALERTS_BLOCK_NAME, overwrite=True)


@pytest.mark.usefixtures("no_retry_waits")
def test_a_failed_alert_lost_to_an_outage_is_sent_again_by_the_reconciler(
    alerts: WebhookReceiver, demo_db: Path, tmp_path: Path
) -> None:
    """Issue 17: once a Failed alert's attempts had failed, the reconciler skipped the run for
    good because an outcome was recorded, delivered or not."""
    StatusAlerts(enabled=True, url=f"{alerts.url}/alerts", max_attempts=2).save(
        ALERTS_BLOCK_NAME, overwrite=True
    )
    alerts.default_status = 503  # the webhook is down while the run fails
    failing = orders(demo_db, tmp_path)
    failing["source"] = {**failing["source"], "table": "no_such_table"}
    failed = export(**failing, return_state=True)
    assert failed.is_failed()
    run_id = str(failed.state_details.flow_run_id)
    deliver_pending_alerts(timeout_s=120)
    assert [(json.loads(r.body)["Status"], r.status) for r in alerts.requests] == [
        ("Initiated", 503),
        ("Initiated", 503),
        ("Failed", 503),
        ("Failed", 503),
    ]

    alerts.default_status = 200  # back up: the next sweep delivers it
    assert reconcile_alerts(flow_run_id=run_id) == [run_id]
    assert [json.loads(r.body)["Status"] for r in alerts.requests[4:]] == ["Failed"]
    assert alerts.requests[4].status == 200
    # Delivered now: the reconciler leaves the run alone (a sweep would find the session's
    # other failed runs too).
    assert reconcile_alerts(flow_run_id=run_id) == []
    assert len(alerts.requests) == 5
    assert [(row["status"], row["http_status"]) for row in alert_artifacts(run_id)] == [
        ("Initiated", 503),
        ("Failed", 503),
        ("Failed", 200),
    ]
