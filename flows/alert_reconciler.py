"""Failed alerts for export runs that could not send their own (docs/crash-alerts.md).

A run killed with its process cannot run `on_crashed`. Two Prefect automations close that
hole: one marks an `export` run Crashed when its heartbeats stop, the other runs the
`alert-reconciler` deployment for every Crashed `export` run. The reconciler sends the
"Failed" alert unless the run already recorded one, so no run gets two.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, StateType

from flows.alerts import alert_failed, failed_alert_recorded

EXPORT_FLOW = "export"
RECONCILER_FLOW = "alert-reconciler"
RECONCILER_DEPLOYMENT = f"{RECONCILER_FLOW}/alert-reconciler"
ZOMBIE_AUTOMATION = "exports: crash export runs whose heartbeats stopped"
CRASHED_AUTOMATION = "exports: Failed alert for crashed export runs"
FINAL_FAILURES = (StateType.CRASHED, StateType.FAILED)


@flow(name=RECONCILER_FLOW, log_prints=False)
def reconcile_alerts(flow_run_id: str | None = None, since_hours: float = 24.0) -> list[str]:
    """Send the Failed alert of one crashed export run (`flow_run_id`, from the automation),
    or of every crashed or failed export run of the last `since_hours` that has none."""
    logger = get_run_logger()
    with get_client(sync_client=True) as client:
        if flow_run_id:
            runs = [client.read_flow_run(UUID(flow_run_id.removeprefix("prefect.flow-run.")))]
        else:
            runs = _failed_export_runs(client, datetime.now(UTC) - timedelta(hours=since_hours))
    alerted = []
    for run in runs:
        if run.state is None or run.state.type not in FINAL_FAILURES:
            continue
        if failed_alert_recorded(run.id):
            continue
        alert_failed(None, run, run.state)
        alerted.append(str(run.id))
    logger.info("sent the Failed alert of %s export run(s): %s", len(alerted), alerted)
    return alerted


def _failed_export_runs(client: Any, since: datetime) -> list[FlowRun]:
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    runs: list[FlowRun] = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[EXPORT_FLOW])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=list(FINAL_FAILURES))),
            start_time=FlowRunFilterStartTime(after_=since),
        ),
        sort=FlowRunSort.START_TIME_DESC,
        limit=200,
        offset=0,
    )
    return runs


def install_crash_automations(
    reconciler_deployment_id: UUID, *, heartbeat_s: int = 30, delay_s: float = 45.0
) -> None:
    """Create (or replace) the two automations. `heartbeat_s` must match the exporting
    processes' PREFECT_FLOWS_HEARTBEAT_FREQUENCY; a run is crashed after three missed ones.
    `delay_s` lets a runner's own on_crashed alert be recorded before the reconciler looks."""
    from prefect.automations import Automation
    from prefect.events.actions import ChangeFlowRunState, RunDeployment
    from prefect.events.schemas.automations import EventTrigger, Posture

    heartbeat = "prefect.flow-run.heartbeat"
    export_runs = {"prefect.resource.role": "flow", "prefect.resource.name": EXPORT_FLOW}
    zombie = Automation(
        name=ZOMBIE_AUTOMATION,
        trigger=EventTrigger(
            after={heartbeat},
            expect={
                heartbeat,
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match={"prefect.resource.id": ["prefect.flow-run.*"]},
            match_related=export_runs,
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=3 * heartbeat_s),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {3 * heartbeat_s} s: the process was lost",
            )
        ],
    )
    crashed = Automation(
        name=CRASHED_AUTOMATION,
        trigger=EventTrigger(
            expect={"prefect.flow-run.Crashed"},
            match={"prefect.resource.id": ["prefect.flow-run.*"]},
            match_related=export_runs,
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            RunDeployment(
                source="selected",
                deployment_id=reconciler_deployment_id,
                parameters={
                    "flow_run_id": "{{ event.resource.id | replace('prefect.flow-run.', '') }}"
                },
                schedule_after=timedelta(seconds=delay_s),
            )
        ],
    )
    for automation in (zombie, crashed):
        try:
            existing: Any = Automation.read(name=automation.name)  # sync: no loop running
            existing.delete()
        except ValueError:
            pass
        automation.create()
