"""The two Prefect automations that give runs killed with their process a Failed alert
(docs/crash-alerts.md): one marks an `export` run Crashed when its heartbeats stop, the other
runs the `alert-reconciler` deployment (flows/alert_reconciler.py) for every Crashed export run.
`exports alerts enable` installs them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect.client.schemas.objects import StateType

from flows.runs.naming import EXPORT_FLOW

RECONCILER_FLOW = "alert-reconciler"
RECONCILER_DEPLOYMENT = f"{RECONCILER_FLOW}/alert-reconciler"
ZOMBIE_AUTOMATION = "exports: crash export runs whose heartbeats stopped"
CRASHED_AUTOMATION = "exports: Failed alert for crashed export runs"


def install_crash_automations(
    reconciler_deployment_id: UUID,
    *,
    heartbeat_s: int = 30,
    delay_s: float = 45.0,
    missed_heartbeats: int = 3,
) -> None:
    """Create (or replace) the two automations. `heartbeat_s` must match the exporting
    processes' PREFECT_FLOWS_HEARTBEAT_FREQUENCY; a run is crashed after `missed_heartbeats`
    missed ones (three leave room for a busy process; fewer only where runs are short).
    `delay_s` lets a runner's own on_crashed alert be recorded before the reconciler looks."""
    from prefect.automations import Automation
    from prefect.events.actions import ChangeFlowRunState, RunDeployment
    from prefect.events.schemas.automations import EventTrigger, Posture

    silence_s = missed_heartbeats * heartbeat_s
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
            within=timedelta(seconds=silence_s),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {silence_s} s: the process was lost",
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
