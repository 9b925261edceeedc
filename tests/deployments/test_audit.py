"""`exports audit` (Contract 6) after one run of each kind on the test Prefect API, with status
alerts on and a real webhook receiver: an API run started through `exports gateway`, a run
the server scheduled from a deployment's schedule, an `exports run` and a failing one."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import getpass
import io
import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.client.schemas.sorting import FlowRunSort
from prefect.flow_engine import run_flow
from prefect.states import Scheduled
from typer.testing import CliRunner

from blocks.alerts import ALERTS_BLOCK_NAME, StatusAlerts
from deployments.cli.app import app
from deployments.gateway.keys import create_key
from flows.alerts.hooks import deliver_pending_alerts
from flows.core.formats import EXPORT_FORMATS
from flows.export import export
from tests.conftest import DEMO_DB
from tests.deployments.conftest import Gateway, api_parameters, auth
from tests.servers.receiver import WebhookReceiver

pytestmark = pytest.mark.usefixtures("prefect_api")

API_USER = "audit-ana"
SINCE, UNTIL = "2023-01-01T00:00:00Z", "2023-02-01T00:00:00Z"
SCHEDULED_AT = dt.datetime(2023, 1, 10, tzinfo=dt.UTC)  # its window: the day before


@dataclass(frozen=True)
class History:
    began: dt.datetime
    api: FlowRun
    scheduled: FlowRun
    run_now: str
    failed: str
    folder: Path


def _rows_between(since: str, until: str) -> int:
    with closing(sqlite3.connect(DEMO_DB)) as conn:
        [(count,)] = conn.execute(
            "SELECT count(*) FROM orders WHERE ordered_at >= ? AND ordered_at < ?", (since, until)
        ).fetchall()
    return int(count)


def _execute(run_id: Any) -> FlowRun:
    """Run a created flow run here, as a runner's child process would."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
    run_flow(export, flow_run=run, parameters=run.parameters, return_type="state")
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def _cli_run(*arguments: str) -> str:
    """`exports run --json`; the run id, from the result or from the newest run."""
    result = CliRunner().invoke(app, ["run", *arguments, "--json"])
    if result.exit_code == 0:
        return str(json.loads(result.stdout)["export_request_id"])
    assert result.exit_code == 1, result.output
    with get_client(sync_client=True) as client:
        # the run that ended last: other files' schedules may have runs expected later
        [newest] = client.read_flow_runs(sort=FlowRunSort.END_TIME_DESC, limit=1, offset=0)
    return str(newest.id)


@pytest.fixture(scope="module")
def history(
    gateway: Gateway, master_secret: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[History]:
    assert master_secret
    folder = tmp_path_factory.mktemp("audit")
    receiver = WebhookReceiver()
    StatusAlerts(enabled=True, url=f"{receiver.url}/alerts", timezone="UTC").save(
        ALERTS_BLOCK_NAME, overwrite=True
    )
    began = dt.datetime.now(dt.UTC)
    try:
        parameters = api_parameters(folder)
        export.to_deployment(name="audit-api", parameters=parameters).apply()
        scheduled_id = export.to_deployment(
            name="audit-scheduled",
            parameters=parameters,
            schedules=[IntervalSchedule(interval=dt.timedelta(days=1), anchor_date=SCHEDULED_AT)],
            paused=False,
        ).apply()

        # API: through the gateway (no runner serves audit-api: the run is executed here).
        token, _ = create_key("export/audit-api", API_USER)
        body = {"parameters": {"window": {"since": SINCE, "until": UNTIL}}}
        answer = httpx.post(
            f"{gateway.url}/v1/exports/trigger", json=body, headers=auth(token), timeout=60
        )
        assert answer.status_code == 202, answer.text
        api = _execute(answer.json()["export_request_id"])

        # Scheduled: the server makes the run from the deployment's schedule.
        with get_client(sync_client=True) as client:
            client.request(
                "POST",
                f"/deployments/{scheduled_id}/schedule",  # type: ignore[arg-type]
                json={
                    "start_time": SCHEDULED_AT.isoformat(),
                    "end_time": (SCHEDULED_AT + dt.timedelta(hours=1)).isoformat(),
                    "max_runs": 1,
                },
            ).raise_for_status()
            # Asked by deployment: the session's other runs (hundreds, all later) come first
            # in any listing by start time.
            [created] = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[scheduled_id])),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            )
        scheduled = _execute(created.id)

        # Run Now, and a failing one, from the CLI.
        destination = f"destination.url={folder}/{{export}}-{{run_id}}.{{ext}}"
        run_now = _cli_run("demo-orders", "--set", destination)
        failed = _cli_run("demo-orders", "--set", destination, "--set", "source.table=no_such")
        deliver_pending_alerts(timeout_s=120)  # the runs' alerts, sent by this process
        yield History(began, api, scheduled, run_now, failed, folder)
    finally:
        StatusAlerts().save(ALERTS_BLOCK_NAME, overwrite=True)
        receiver.stop()


def audit(*options: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(app, ["audit", *options, "--output", "json"])
    assert result.exit_code == 0, result.output
    records: list[dict[str, Any]] = json.loads(result.stdout)
    return records


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [record["export_request_id"] for record in records]


OK_ALERTS = [
    {"status": "Initiated", "http_status": 200, "attempts": 1},
    {"status": "Completed", "http_status": 200, "attempts": 1},
]


def test_every_kind_of_run_with_every_field(history: History) -> None:
    records = {record["export_request_id"]: record for record in audit("--limit", "500")}
    api = records[str(history.api.id)]
    expected_rows = _rows_between("2023-01-01 00:00:00.000000", "2023-02-01 00:00:00.000000")
    [path] = api["files"]
    assert api == {
        "export_request_id": str(history.api.id),
        "deployment": "audit-api",
        "trigger_type": "API",
        "triggered_by": API_USER,
        "status": "Completed",
        "rows": expected_rows,
        "bytes": Path(path).stat().st_size,
        "files": [str(history.folder / f"orders-{history.api.id}.jsonl")],
        "started": api["started"],
        "finished": api["finished"],
        "duration_s": api["duration_s"],
        "error": None,
        "alerts": OK_ALERTS,
        "manifest": None,  # no destination.manifest; tests/flows/sources/test_partitions.py
        "empty": None,  # it read rows; tests/flows/test_on_empty.py
        "encrypted_to": [],  # no destination.pgp; tests/flows/test_pgp_export.py
        "cursor": None,  # no source.incremental; tests/flows/test_cursor_runs.py
    }
    started = dt.datetime.fromisoformat(api["started"])
    finished = dt.datetime.fromisoformat(api["finished"])
    assert history.began <= started <= finished
    assert api["duration_s"] == pytest.approx((finished - started).total_seconds(), abs=0.01)

    scheduled = records[str(history.scheduled.id)]
    assert scheduled["trigger_type"] == "Scheduled" and scheduled["triggered_by"] == "schedule"
    assert scheduled["deployment"] == "audit-scheduled" and scheduled["status"] == "Completed"
    assert scheduled["rows"] == _rows_between(
        "2023-01-09 00:00:00.000000", "2023-01-10 00:00:00.000000"
    )
    assert scheduled["alerts"] == OK_ALERTS

    run_now = records[history.run_now]
    assert (run_now["trigger_type"], run_now["triggered_by"]) == ("Run Now", getpass.getuser())
    assert run_now["deployment"] == "demo-orders" and run_now["status"] == "Completed"
    assert run_now["rows"] == 1000 and len(run_now["files"]) == 1

    failed = records[history.failed]
    assert failed["status"] == "Failed" and failed["deployment"] == "demo-orders"
    assert failed["rows"] is None and failed["files"] == [] and failed["bytes"] is None
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(history.failed).state
    assert state is not None and state.message
    assert failed["error"] == state.message.strip()  # the whole text (the table shortens it)
    assert "no_such" in failed["error"]
    assert failed["alerts"] == [
        OK_ALERTS[0],
        {"status": "Failed", "http_status": 200, "attempts": 1},
    ]
    # newest first
    order = ids(audit("--since", history.began.isoformat()))
    assert order == [history.failed, history.run_now, str(history.api.id)]


def test_filters_return_exactly_the_matching_runs(history: History) -> None:
    since = ("--since", history.began.isoformat())
    api, scheduled = str(history.api.id), str(history.scheduled.id)
    assert ids(audit("audit-api")) == [api]
    assert ids(audit("audit-scheduled")) == [scheduled]
    assert ids(audit("demo-orders", *since)) == [history.failed, history.run_now]
    assert ids(audit("--status", "failed", *since)) == [history.failed]
    assert ids(audit("--status", "Completed", *since)) == [history.run_now, api]
    assert ids(audit("--trigger-type", "API", *since)) == [api]
    assert ids(audit("--trigger-type", "run-now", *since)) == [history.failed, history.run_now]
    assert ids(audit("--trigger-type", "scheduled", "audit-scheduled")) == [scheduled]
    assert ids(audit("--user", API_USER)) == [api]
    assert ids(audit("--user", "schedule", "audit-scheduled")) == [scheduled]
    before = SCHEDULED_AT + dt.timedelta(minutes=1)
    assert ids(audit("--until", before.isoformat(), "audit-scheduled")) == [scheduled]
    assert ids(audit("--until", SCHEDULED_AT.isoformat(), "audit-scheduled")) == []
    # paging: the second page of one starts where the first ended
    first = ids(audit(*since, "--limit", "1"))
    second = ids(audit(*since, "--limit", "1", "--offset", "1"))
    assert first + second == [history.failed, history.run_now]


def test_bad_filters_are_refused_with_what_is_allowed(history: History) -> None:  # noqa: ARG001
    for options, named in (
        (["--status", "Done"], "--status"),
        (["--trigger-type", "cron"], "--trigger-type"),
        (["--since", "yesterday"], "--since"),
    ):
        result = CliRunner().invoke(app, ["audit", *options])
        assert result.exit_code == 2 and named in result.output, result.output


def test_csv_parses_back_into_the_same_records(history: History) -> None:
    options = ["--since", history.began.isoformat()]
    records = audit(*options)
    result = CliRunner().invoke(app, ["audit", *options, "--output", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    assert list(rows[0]) == list(records[0])

    def typed(row: dict[str, str]) -> dict[str, Any]:
        value: dict[str, Any] = {key: (text if text != "" else None) for key, text in row.items()}
        for key in ("rows", "bytes"):
            value[key] = int(row[key]) if row[key] else None
        value["duration_s"] = float(row["duration_s"]) if row["duration_s"] else None
        value["files"] = json.loads(row["files"])
        value["alerts"] = json.loads(row["alerts"])
        value["encrypted_to"] = json.loads(row["encrypted_to"])
        value["cursor"] = json.loads(row["cursor"]) if row["cursor"] else None
        return value

    assert [typed(row) for row in rows] == records


def test_the_ui_shows_the_same_numbers_in_the_summary_artifact(history: History) -> None:
    [record] = audit("audit-api")
    with get_client(sync_client=True) as client:
        artifacts = client.request(
            "POST",
            "/artifacts/filter",
            json={"artifacts": {"flow_run_id": {"any_": [str(history.api.id)]}},
                  "limit": 50, "offset": 0},
        ).json()  # fmt: skip
    [summary] = [item for item in artifacts if item.get("key") == "export-orders-summary"]
    data = json.loads(summary["data"]) if isinstance(summary["data"], str) else summary["data"]
    [row] = data
    assert (row["rows"], row["bytes"], row["files"]) == (
        record["rows"],
        record["bytes"],
        len(record["files"]),
    )
    assert (row["trigger"], row["user"]) == ("API", API_USER)
    # Prefect stores a link artifact as markdown: [text](url)
    [link] = [item["data"] for item in artifacts if item.get("key") == "export-orders-file-1"]
    assert link == f"[{Path(record['files'][0]).name}](file://{record['files'][0]})"
    alerts = sorted(
        item["description"] for item in artifacts if "Status alert" in (item["description"] or "")
    )
    assert alerts == ["Status alert `Completed`", "Status alert `Initiated`"]
    # what the audit found them by (tests/deployments/test_audit_record.py)
    keyed = {item["key"]: item["description"] for item in artifacts if item["type"] == "table"}
    assert keyed == {
        "export-orders-summary": summary["description"],
        "export-orders-result": "Export result (machine-readable)",
        "export-orders-alert-initiated": "Status alert `Initiated`",
        "export-orders-alert-completed": "Status alert `Completed`",
    }


def test_the_table_shows_one_line_per_run(history: History) -> None:
    result = CliRunner().invoke(app, ["audit", "audit-api"])
    assert result.exit_code == 0, result.output
    header, line = result.output.splitlines()
    assert header.split() == [
        "started", "deployment", "trigger", "by", "status", "rows", "bytes", "s", "error",
    ]  # fmt: skip
    cells = line.split()
    assert cells[1:5] == ["audit-api", "API", API_USER, "Completed"]
    assert cells[0] == history.api.start_time.astimezone(dt.UTC).isoformat(timespec="seconds")


def test_demo_runs_are_run_now_by_the_cli_user(tmp_path: Path) -> None:
    began = dt.datetime.now(dt.UTC)
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    records = audit("--since", began.isoformat(), "--limit", "100")
    assert len(records) == 2 * len(EXPORT_FORMATS)  # two tables in every format
    for record in records:
        assert (record["trigger_type"], record["triggered_by"]) == ("Run Now", getpass.getuser())
        assert record["status"] == "Completed" and len(record["files"]) == 1
        assert Path(record["files"][0]).stat().st_size == record["bytes"]


def test_runs_made_through_prefect_itself_are_attributed_from_created_by(
    history: History,  # noqa: ARG001 - alerts and the API as the other tests have them
    tmp_path: Path,
) -> None:
    """A run made by `prefect deployment run` (or the UI, or the API) carries no tag of ours:
    an automation's is recorded by the server as its creator; for the others the open-source
    server records none, and the audit says `prefect` rather than guess. A run the scheduler
    made for later is not history until it is due (`--include-scheduled` lists it)."""
    deployment_id = export.to_deployment(
        name="audit-prefect", parameters=api_parameters(tmp_path)
    ).apply()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    with get_client(sync_client=True) as client:
        plain = client.create_flow_run_from_deployment(deployment_id)  # as `prefect deployment run`
        automated = client.request(
            "POST",
            f"/deployments/{deployment_id}/create_flow_run",  # type: ignore[arg-type]
            json={},
            headers={  # what Prefect's automations send when their action runs a deployment
                "Prefect-Automation-ID": str(uuid.uuid4()),
                "Prefect-Automation-Name": base64.b64encode(b"nightly catch-up").decode(),
            },
        )
        automated.raise_for_status()
        future = client.create_flow_run_from_deployment(
            deployment_id, state=Scheduled(scheduled_time=later)
        )
    by_run = {record["export_request_id"]: record for record in audit("audit-prefect")}
    assert set(by_run) == {str(plain.id), automated.json()["id"]}
    assert by_run[str(plain.id)]["triggered_by"] == "prefect"
    assert by_run[automated.json()["id"]]["triggered_by"] == "automation:nightly catch-up"
    assert {record["trigger_type"] for record in by_run.values()} == {"Run Now"}
    everything = ids(audit("audit-prefect", "--include-scheduled"))
    assert everything[0] == str(future.id) and len(everything) == 3
