"""`exports serve`: every trigger of prefect.yaml served from one process, for small setups.

A Prefect Runner (what Prefect's `serve()` uses) registers the deployments with their schedules
and runs their runs in child processes of this one: no work pool, no worker. `--limit` is the
queue, like the work pool's concurrency limit under `make serve`. The schedules are built by the
code `prefect deploy` uses, so a served trigger runs at the same times as a deployed one. Runs
start warm (deployments/warm_start.py): about 1.2 s from an API trigger to the flow's body
instead of about 4 s (bench/trigger_latency.py).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule
from prefect.client.schemas.actions import DeploymentScheduleCreate

from deployments.console import fail
from deployments.project import DEFAULT_PROJECT_FILE, DeploymentSpec, load_deployments
from deployments.triggers import check_project
from deployments.warm_start import enable as enable_warm_start

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
    warm_start: Annotated[
        bool,
        typer.Option(
            help="Fork each run from a process that has already imported Prefect and the "
            "flows (about 2 s sooner); --no-warm-start spawns a new interpreter per run."
        ),
    ] = True,
) -> None:
    """Serve prefect.yaml's triggers from this process: schedules and runs, no worker."""
    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner

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
    # An API trigger waits for the runner's next poll: FAST_POLL_S instead of Prefect's 10 s
    # (one small query each time), unless PREFECT_RUNNER_POLL_FREQUENCY says otherwise.
    poll = None if POLL_ENV in os.environ else FAST_POLL_S
    runner = Runner(name="exports-serve", limit=limit, pause_on_shutdown=True, query_seconds=poll)
    for spec in chosen:
        _add_flow(runner, spec)
    warm_modules = sorted({spec.module_name for spec in chosen} | {"deployments.cli"})
    if warm_start and not enable_warm_start(warm_modules):
        typer.echo("warm start is not available here: every run starts a new interpreter")
    try:
        asyncio.run(runner.start())
    except (KeyboardInterrupt, TerminationSignal):
        typer.echo("stopped; the served deployments are paused until served again")


def _add_flow(runner: Any, spec: DeploymentSpec) -> None:
    """Register the deployment with its flow object (what Prefect's `serve()` does not do),
    so the runner starts runs from that object instead of `python -m prefect.engine`."""
    raw = spec.raw
    schedules = [
        DeploymentScheduleCreate(**_schedule_config_to_deployment_schedule(item))
        for item in raw.get("schedules") or []
    ]
    runner.add_flow(
        spec.load_flow(),
        name=spec.name,
        description=raw.get("description"),
        tags=raw.get("tags"),
        parameters=spec.parameters,
        schedules=schedules,
        concurrency_limit=raw.get("concurrency_limit"),
    )
