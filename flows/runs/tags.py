"""The tags on export runs, and who and what started a run (Contract 6's trigger_type and
triggered_by). Every tag is built and read here, nowhere else.

The gateway tags its runs `trigger:api`, `user:<key user>` and `key:<key id>`; `exports run` and
`exports demo` tag them `trigger:run-now` and `user:<cli user>`, and `exports run` adds
`deployment:<name>` (its runs have no deployment on the server); the server's scheduler marks
its runs `auto_scheduled`. A run with none of these was started in the Prefect UI (or by
`run_deployment`): Run Now, by `ui`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from prefect.client.schemas.objects import FlowRun

TriggerType = Literal["API", "Scheduled", "Run Now"]
TRIGGER_TYPES: tuple[TriggerType, ...] = ("API", "Scheduled", "Run Now")
API_TRIGGER_TAG = "trigger:api"
RUN_NOW_TAG = "trigger:run-now"
SCHEDULER_USER = "schedule"
UI_USER = "ui"
_USER = "user:"
_KEY = "key:"
_DEPLOYMENT = "deployment:"


def api_tags(user: str, key_id: str) -> list[str]:
    """The tags of a run the gateway starts for an API key."""
    return [API_TRIGGER_TAG, f"{_USER}{user}", f"{_KEY}{key_id}"]


def run_now_tags(user: str, deployment: str | None = None) -> list[str]:
    """The tags of a run the CLI starts in its own process; `deployment` names the
    prefect.yaml deployment it runs (the server knows none)."""
    named = [f"{_DEPLOYMENT}{deployment}"] if deployment is not None else []
    return [*named, RUN_NOW_TAG, f"{_USER}{user}"]


def tag_value(tags: Iterable[str] | None, prefix: str) -> str | None:
    """`alice` for the prefix `user:` and the tag `user:alice`."""
    return next((tag[len(prefix) :] for tag in tags or [] if tag.startswith(prefix)), None)


def tagged_deployment(tags: Iterable[str] | None) -> str | None:
    """The deployment `exports run` named in a tag, if any."""
    return tag_value(tags, _DEPLOYMENT)


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
    return tag_value(run.tags, _USER) or UI_USER
