"""`exports serve`: every trigger of prefect.yaml served from one process, for small setups.

Prefect's `serve()` registers the deployments with their schedules and runs their runs in
subprocesses of this process: no work pool, no worker. `--limit` is the queue, like the work
pool's concurrency limit under `make serve`. The schedules are built by the code `prefect deploy`
uses, so a served trigger runs at the same times as a deployed one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.settings import PREFECT_RUNNER_POLL_FREQUENCY, temporary_settings

from deployments.console import fail
from deployments.project import DEFAULT_PROJECT_FILE, DeploymentSpec, load_deployments
from deployments.triggers import check_project

POLL_ENV = "PREFECT_RUNNER_POLL_FREQUENCY"
FAST_POLL_S = 1


def serve(
    deployments: Annotated[
        list[str] | None, typer.Argument(help="Serve only these deployments (default: all).")
    ] = None,
    file: Annotated[Path, typer.Option("--file", help="The project file.")] = DEFAULT_PROJECT_FILE,
    limit: Annotated[
        int, typer.Option(min=1, help="Exports that run at once; the rest wait their turn.")
    ] = 4,
) -> None:
    """Serve prefect.yaml's triggers from this process: schedules and runs, no worker."""
    from prefect import serve as prefect_serve

    problems = check_project(file)
    if problems:
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(1)
    specs = load_deployments(file)
    known = {spec.name for spec in specs}
    unknown = sorted(set(deployments or ()) - known)
    if unknown:
        names = ", ".join(sorted(known))
        raise fail(f"no deployment named `{unknown[0]}` in {file}; deployments: {names}", 2)
    chosen = [spec for spec in specs if not deployments or spec.name in deployments]
    typer.echo(f"serving {len(chosen)} deployments, at most {limit} runs at once")
    # An API trigger waits for the runner's next poll: 1 s instead of Prefect's 10 s (one
    # small query a second), unless PREFECT_RUNNER_POLL_FREQUENCY says otherwise.
    poll = {} if POLL_ENV in os.environ else {PREFECT_RUNNER_POLL_FREQUENCY: FAST_POLL_S}
    with temporary_settings(updates=poll):
        prefect_serve(*(_runner_deployment(spec) for spec in chosen), limit=limit)


def _runner_deployment(spec: DeploymentSpec) -> Any:
    raw = spec.raw
    schedules = [
        DeploymentScheduleCreate(**_schedule_config_to_deployment_schedule(item))
        for item in raw.get("schedules") or []
    ]
    return spec.load_flow().to_deployment(  # type: ignore[attr-defined]
        name=spec.name,
        description=raw.get("description"),
        tags=raw.get("tags"),
        parameters=spec.parameters,
        schedules=schedules,
        concurrency_limit=raw.get("concurrency_limit"),
    )
