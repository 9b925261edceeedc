"""Who and what started a run (Contract 6's trigger_type and triggered_by), from the run alone.

The gateway tags its runs `trigger:api` and `user:<key user>`; `exports run` tags them
`trigger:run-now`, `user:<cli user>` and `deployment:<name>`; the server's scheduler marks its
runs `auto_scheduled`. A run with none of these was started in the Prefect UI (or by
`run_deployment`): Run Now, by `ui`.
"""

from __future__ import annotations

from typing import Literal

from prefect.client.schemas.objects import FlowRun

TriggerType = Literal["API", "Scheduled", "Run Now"]
TRIGGER_TYPES: tuple[TriggerType, ...] = ("API", "Scheduled", "Run Now")
API_TRIGGER_TAG = "trigger:api"
RUN_NOW_TAG = "trigger:run-now"
SCHEDULER_USER = "schedule"
UI_USER = "ui"


def tag_value(run: FlowRun, prefix: str) -> str | None:
    """`alice` for prefix `user:` and the tag `user:alice`."""
    return next((tag[len(prefix) :] for tag in run.tags or [] if tag.startswith(prefix)), None)


def trigger_type(run: FlowRun) -> TriggerType:
    if run.auto_scheduled:
        return "Scheduled"
    if API_TRIGGER_TAG in (run.tags or []):
        return "API"
    return "Run Now"


def triggered_by(run: FlowRun) -> str:
    """The API key's or CLI's user, `schedule`, or `ui`."""
    if run.auto_scheduled:
        return SCHEDULER_USER
    return tag_value(run, "user:") or UI_USER
