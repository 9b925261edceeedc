"""The tags on export runs, and who and what started a run (Contract 6's trigger_type and
triggered_by). Every tag is built and read here, nowhere else.

The gateway tags its runs `trigger:api`, `user:<key user>` and `key:<key id>`; `exports run` and
`exports demo` tag them `trigger:run-now` and `user:<cli user>`, and `exports run` adds
`deployment:<name>` (its runs have no deployment on the server); the server's scheduler marks
its runs `auto_scheduled`. A run with none of these was created through Prefect itself (its UI,
`prefect deployment run`, its API, `run_deployment`, an automation): Run Now, by whom the run's
`created_by` says (a user on Prefect Cloud, `automation:<name>`), else `prefect`: Prefect's
open-source server does not record who created a run, and we do not guess.
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
PREFECT_USER = "prefect"  # created through Prefect's UI, CLI or API; the server knows no more
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
    """The API key's or CLI's user, `schedule`, the run's recorded creator, or `prefect`."""
    if run.auto_scheduled:
        return SCHEDULER_USER
    tagged = tag_value(run.tags, _USER)
    if tagged:
        return tagged
    creator = run.created_by
    if creator is not None and creator.display_value:
        kind = (creator.type or "").lower()
        if kind == "user":  # Prefect Cloud records the user who created the run
            return creator.display_value
        return f"{kind or 'creator'}:{creator.display_value}"  # automation:<its name>
    return PREFECT_USER
