"""`exports pause` / `exports resume`: turn a trigger off and on (Contract 2).

A trigger is a deployment, so this is the deployment's own pause switch, the same one as the
toggle in the Prefect UI. Paused, the server deletes the deployment's upcoming scheduled runs and
its scheduler creates none; resumed, the scheduler fills the schedule again from now on. (Prefect's
own `prefect deployment schedule pause` needs each schedule's id, or pauses every deployment.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from deployments.console import fail
from deployments.project import DEFAULT_PROJECT_FILE, UsageError, find_deployment

FileOption = Annotated[
    Path, typer.Option("--file", help="The project file that names the deployment's flow.")
]
DeploymentArgument = Annotated[
    str, typer.Argument(help="A deployment of prefect.yaml, or FLOW/DEPLOYMENT on the server.")
]


def _full_name(deployment: str, project_file: Path) -> str:
    """`orders-weekly` → `export/orders-weekly`, the flow's name taken from prefect.yaml."""
    if "/" in deployment:
        return deployment
    try:
        spec = find_deployment(deployment, project_file)
    except UsageError as exc:
        raise fail(str(exc), 2) from None
    flow_name = getattr(spec.load_flow(), "name", None) or "export"
    return f"{flow_name}/{deployment}"


def _set_paused(deployment: str, project_file: Path, paused: bool) -> str:
    name = _full_name(deployment, project_file)
    with get_client(sync_client=True) as client:
        try:
            found = client.read_deployment_by_name(name)
        except ObjectNotFound:
            raise fail(
                f"`{name}` is not deployed on {client.api_url}; deploy it with "
                "`prefect deploy --all` (or `make serve`)"
            ) from None
        if paused:
            client.pause_deployment(found.id)
        else:
            client.resume_deployment(found.id)
    return name


def pause(deployment: DeploymentArgument, file: FileOption = DEFAULT_PROJECT_FILE) -> None:
    """Stop a trigger: no scheduled runs until it is resumed (run-now still works)."""
    name = _set_paused(deployment, file, paused=True)
    typer.echo(f"{name}: paused; its upcoming scheduled runs are removed")


def resume(deployment: DeploymentArgument, file: FileOption = DEFAULT_PROJECT_FILE) -> None:
    """Start a paused trigger again: its schedule runs from the next due time on."""
    name = _set_paused(deployment, file, paused=False)
    typer.echo(f"{name}: resumed; the scheduler creates its upcoming runs")
