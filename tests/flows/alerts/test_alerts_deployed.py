"""Status alerts of a deployed export: the `export` flow served by a Prefect runner in another
process (as a worker would run it), runs started with `run_deployment` or by its schedule."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL
from typer.testing import CliRunner

from blocks.alerts import ALERTS_BLOCK_NAME, StatusAlerts
from deployments.audit import AuditQuery, read_audit
from deployments.cli.app import app
from flows.alerts.automations import (
    CRASHED_AUTOMATION,
    RECONCILER_FLOW,
    ZOMBIE_AUTOMATION,
    install_crash_automations,
)
from flows.export import export
from flows.runs.artifacts import table_artifacts
from tests.processes import stop_process, wait_until
from tests.servers.receiver import WebhookReceiver

pytestmark = pytest.mark.usefixtures("prefect_api")

REPO_ROOT = Path(__file__).resolve().parents[3]
DEPLOYMENT = "export/alerts-served"
# Runs for minutes: long enough to be killed in the middle.
LONG_QUERY = (
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 50000000) "
    "SELECT x, 'row' AS v FROM n"
)
SCHEDULE_WORDS = "Weekly on Monday, Wednesday at 09:30 (Europe/Berlin)"
SERVE_SCRIPT = """
import json, sys
from prefect import serve
from prefect.schedules import Cron
from flows.alert_reconciler import reconcile_alerts
from flows.export import export

serve(
    export.to_deployment(
        name="alerts-served",
        schedule=Cron("30 9 * * 1,3", timezone="Europe/Berlin"),
        parameters=json.loads(sys.argv[1]),
    ),
    reconcile_alerts.to_deployment(name="alert-reconciler"),
    print_starting_message=False,
)
"""


@dataclass(frozen=True)
class Served:
    deployment_id: str
    pid: int  # the runner's
    folder: Path  # where its runs deliver: {export}-{run_id}.{ext}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The export deployment, served by a runner subprocess."""
    folder = tmp_path_factory.mktemp("served")
    parameters = {
        "source": {"url": f"sqlite:///{REPO_ROOT / 'demo' / 'demo.sqlite'}", "table": "orders"},
        "destination": {"url": f"{folder}/{{export}}-{{run_id}}.{{ext}}"},
        "type": "Orders",
    }
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    log = (folder / "runner.log").open("wb")
    runner = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT, json.dumps(parameters)],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield Served(_wait_for_deployment(runner, folder / "runner.log"), runner.pid, folder)
    finally:
        for child in _children(runner.pid):  # a run a failed test left going
            os.kill(child, signal.SIGKILL)
        stop_process(runner)
        log.close()


def _wait_for_deployment(runner: subprocess.Popen[bytes], log: Path) -> str:
    with get_client(sync_client=True) as client:
        return wait_until(
            lambda: str(client.read_deployment_by_name(DEPLOYMENT).id), 60,
            f"the runner registering {DEPLOYMENT}",
            every_s=0.5, process=runner, log=log, ignoring=(Exception,),
        )  # fmt: skip


@pytest.fixture
def alerts(receiver: WebhookReceiver) -> Iterator[WebhookReceiver]:
    StatusAlerts(enabled=True, url=receiver.url, timezone="Europe/Berlin").save(
        ALERTS_BLOCK_NAME, overwrite=True
    )
    yield receiver
    StatusAlerts().save(ALERTS_BLOCK_NAME, overwrite=True)


def statuses(receiver: WebhookReceiver, count: int, timeout_s: float = 60) -> list[str]:
    """The statuses once `count` alerts arrived, and one more second for any extra one."""
    receiver.wait_for(count, timeout_s)
    time.sleep(1)
    return [json.loads(request.body)["Status"] for request in receiver.requests]


def run_served() -> FlowRun:
    run = run_deployment(DEPLOYMENT, timeout=120, poll_interval=0.5)
    assert isinstance(run, FlowRun) and run.state is not None, run
    assert run.state.is_completed(), run.state
    return run


def test_disable_and_enable_apply_to_a_deployed_export_at_once(
    served: Served,  # noqa: ARG001 - the runner must be up
    alerts: WebhookReceiver,
) -> None:
    cli = CliRunner()
    run_served()
    assert statuses(alerts, 2) == ["Initiated", "Completed"]
    assert cli.invoke(app, ["alerts", "disable"]).exit_code == 0
    run_served()
    assert statuses(alerts, 3, timeout_s=3) == ["Initiated", "Completed"], "sent while disabled"
    try:
        done = cli.invoke(app, ["alerts", "enable", "--url", f"{alerts.url}/again"])
    finally:
        _delete_automations()
    assert done.exit_code == 0, done.output
    # The reconciler is deployed here, so enable installed the automations for killed runs.
    assert "killed runs: marked Crashed after 540 s without a heartbeat" in done.output
    run = run_served()
    assert statuses(alerts, 4) == ["Initiated", "Completed"] * 2
    last = json.loads(alerts.requests[-1].body)
    assert alerts.requests[-1].path == "/again"
    assert last["Export Request Id"] == str(run.id) and last["Frequency"] == "One Time"
    assert last["Trigger"] == "Run Now"


def test_a_scheduled_run_reads_its_schedule(served: Served, alerts: WebhookReceiver) -> None:
    """The server schedules the deployment's last Monday/Wednesday 09:30 (a backfill, as the
    scheduler does it: auto_scheduled); the runner picks it up at once."""
    now = datetime.now(UTC)
    with get_client(sync_client=True) as client:
        client._client.post(
            f"/deployments/{served.deployment_id}/schedule",
            json={"start_time": (now - timedelta(days=8)).isoformat(), "end_time": now.isoformat(),
                  "max_runs": 1},
        ).raise_for_status()  # fmt: skip
    sent: list[dict[str, Any]] = [json.loads(r.body) for r in alerts.wait_for(2, timeout_s=120)]
    assert [body["Status"] for body in sent] == ["Initiated", "Completed"], sent
    for body in sent:
        assert body["Frequency"] == SCHEDULE_WORDS and body["Trigger"] == "Scheduled"


def _children(runner_pid: int) -> list[int]:
    """The processes a runner started for its flow runs: `python -m prefect.engine` (or a
    multiprocessing child, where `flow.serve` runs a single deployment) under its pid."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if parent == runner_pid and (b"prefect.engine" in command or b"spawn_main" in command):
            found.append(int(entry.name))
    return found


def _flow_run_process(runner_pid: int, timeout_s: float = 60) -> int:
    children = wait_until(
        lambda: _children(runner_pid), timeout_s, f"a flow run process of runner {runner_pid}"
    )
    return children[0]


def _wait_for_alert_records(flow_run_id: Any, count: int, timeout_s: float = 60) -> None:
    def recorded() -> bool:
        tables = table_artifacts(flow_run_id)
        return sum(table.description.startswith("Status alert") for table in tables) >= count

    wait_until(recorded, timeout_s, f"{count} alert record(s) on run {flow_run_id}")


def test_a_killed_run_sends_failed(served: Served, alerts: WebhookReceiver) -> None:
    """SIGKILL the flow run's process in the middle of a long export: the runner reports the
    run Crashed and runs its on_crashed hook, which sends Failed."""
    parameters = {
        "source": {"url": "sqlite://", "query": LONG_QUERY, "chunk_rows": 1000},
        "name": "endless",
    }
    run = run_deployment(DEPLOYMENT, parameters=parameters, timeout=0)
    assert isinstance(run, FlowRun)
    initiated = alerts.wait_for(1)  # it is running
    assert [json.loads(r.body)["Status"] for r in initiated] == ["Initiated"]
    # The alert is sent, then its outcome recorded on the run: killed in between, the
    # record of a delivered Initiated would be lost with the process.
    _wait_for_alert_records(run.id, 1)
    temporary = f".endless-{run.id}.csv.{run.id}-*.tmp"
    # Killed mid-write: its rows are going into the temporary file.
    wait_until(lambda: list(served.folder.glob(temporary)), 60, "the run writing", every_s=0.1)
    os.kill(_flow_run_process(served.pid), signal.SIGKILL)
    sent = [json.loads(request.body) for request in alerts.wait_for(2)]
    assert [body["Status"] for body in sent] == ["Initiated", "Failed"], sent
    assert sent[1]["Export Request Id"] == str(run.id) and sent[1]["Export Name"] == "endless"
    assert "-9" in sent[1]["Error"] or "crash" in sent[1]["Error"].lower(), sent[1]
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run.id).state
    assert state is not None and state.is_crashed(), state
    # The audit log lists it with what Prefect knows: it recorded no result before it died.
    [record] = [
        record
        for record in read_audit(AuditQuery(status="Crashed", limit=500))
        if record.export_request_id == str(run.id)
    ]
    # run_deployment: created through Prefect's API, which records no creator on this server
    assert (record.trigger_type, record.triggered_by) == ("Run Now", "prefect")
    assert record.rows is None and record.files == [] and record.error
    assert [(a.status, a.http_status, a.attempts) for a in record.alerts] == [
        ("Initiated", 200, 1),
        ("Failed", 200, 1),
    ]
    # Its temporary file stays until a later run writes into the folder: that run's target is
    # another ({run_id} in the template), but the killed run is over, so its file goes.
    assert list(served.folder.glob(temporary))
    later = run_deployment(DEPLOYMENT, parameters={"name": "later"}, timeout=120, poll_interval=0.5)
    assert isinstance(later, FlowRun) and later.state is not None and later.state.is_completed()
    assert not list(served.folder.glob(f".*{run.id}*.tmp"))


IN_PROCESS_SCRIPT = """
import json, sys
from flows.export import export

export(**json.loads(sys.argv[1]))
"""


def test_a_killed_in_process_run_sends_failed_through_the_reconciler(
    served: Served,  # noqa: ARG001 - its runner serves the reconciler
    alerts: WebhookReceiver,
    tmp_path: Path,
) -> None:
    """SIGKILL an in-process export (no runner watches it): the heartbeat automation marks it
    Crashed, the Crashed automation runs the reconciler, which sends Failed once."""
    with get_client(sync_client=True) as client:
        reconciler = client.read_deployment_by_name(f"{RECONCILER_FLOW}/alert-reconciler").id
    # The process beats every 30 s (Prefect's shortest); killed 2 s in, it never sends its
    # second beat, so the automation may give up on it sooner: 10 s after the first beat, the
    # shortest silence Prefect's proactive triggers accept (30 s would add 20 s to the test).
    install_crash_automations(reconciler, heartbeat_s=10, delay_s=2, missed_heartbeats=1)
    parameters = {
        "source": {"url": "sqlite://", "query": LONG_QUERY, "chunk_rows": 1000},
        "destination": {"url": f"{tmp_path}/{{export}}.{{ext}}"},
        "name": "killed-in-process",
    }
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", IN_PROCESS_SCRIPT, json.dumps(parameters)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        initiated = alerts.wait_for(1)
        assert [json.loads(r.body)["Status"] for r in initiated] == ["Initiated"]
        time.sleep(2)  # its first heartbeat is out
        process.kill()
        process.wait()
        alerts.wait_for(2, timeout_s=240)
        time.sleep(3)  # a second Failed would arrive now
    finally:
        process.kill()
        _delete_automations()
    sent = [json.loads(request.body) for request in alerts.requests]
    assert [body["Status"] for body in sent] == ["Initiated", "Failed"], sent
    assert sent[1]["Export Request Id"] == sent[0]["Export Request Id"]
    assert sent[1]["Export Name"] == "killed-in-process" and "heartbeat" in sent[1]["Error"]
    # The killed run's temporary file goes with the next run to the same target, now that the
    # killed run is over (Crashed).
    assert [path.name for path in tmp_path.glob(".killed-in-process.csv.*.tmp")]
    again = export(
        source={"url": "sqlite://", "query": "select 1 as n"},
        destination=parameters["destination"],
        name="killed-in-process",
        return_state=True,
    )
    assert again.is_completed(), again.message
    assert sorted(path.name for path in tmp_path.iterdir()) == ["killed-in-process.csv"]


def _delete_automations() -> None:
    from prefect.automations import Automation

    for name in (ZOMBIE_AUTOMATION, CRASHED_AUTOMATION):
        try:
            existing: Any = Automation.read(name=name)
            existing.delete()
        except ValueError:
            pass
