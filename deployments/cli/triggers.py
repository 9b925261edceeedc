"""The trigger commands (Contracts 2 and 3): `exports check` and `exports schedule` look at
prefect.yaml's triggers before deploying; `exports pause` and `resume` turn a deployed one off
and on; `exports serve` serves them all from this process (deployments/triggers/).

The commands import what they use when they run: every `exports` command starts by importing
all of them (the export engine and Prefect's deploy tooling cost ~0.2 s to load).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from deployments.cli.console import (
    DeployedFileOption,
    DeploymentArgument,
    FileOption,
    fail,
    print_table,
)
from deployments.triggers.project import (
    DEFAULT_PROJECT_FILE,
    UsageError,
    find_deployment,
    load_deployments,
    qualified_name,
)
from flows.core.errors import ConfigurationError

DEFAULT_RUNS = 5
MAX_RUNS = 1000  # Prefect's schedules look at most this many candidate dates

app = typer.Typer()


@app.command()
def check(
    file: FileOption = DEFAULT_PROJECT_FILE,
    offline: Annotated[
        bool, typer.Option(help="Do not connect to the exports' databases.")
    ] = False,
) -> None:
    """Check every deployment's entrypoint, parameters, schedules and work pool before deploying,
    and that each export's table or query is in its database."""
    from deployments.triggers.check import check_project, count_schedules
    from deployments.triggers.sources import check_sources

    problems = check_project(file)
    if problems:
        for problem in problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1)
    sources = [] if offline else check_sources(file)
    failed = [item for item in sources if item.problem is not None]
    for item in failed:
        typer.echo(f"{file}: deployment `{item.deployment}`: source: {item.problem}", err=True)
    if failed:
        raise typer.Exit(1)
    deployments, schedules = count_schedules(file)
    checked = sum(item.checked for item in sources)
    asked = "databases not asked (--offline)" if offline else f"{checked} sources found"
    typer.echo(f"{file}: {deployments} deployments, {schedules} schedules, {asked} — OK")
    for item in sources:
        if item.not_checked is not None:
            typer.echo(f"  source of `{item.deployment}` not checked: {item.not_checked}")


@app.command()
def schedule(
    deployment: Annotated[str, typer.Argument(help="Name of a deployment in prefect.yaml.")],
    file: FileOption = DEFAULT_PROJECT_FILE,
    next_: Annotated[
        int,
        typer.Option("--next", min=1, max=MAX_RUNS, help="How many run times to list."),
    ] = DEFAULT_RUNS,
    after: Annotated[
        str | None,
        typer.Option(
            help="List runs at or after this ISO time, e.g. 2026-03-20 or "
            "2026-03-20T09:00+01:00 (no offset: UTC). Default: now."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list of {local, utc, timezone, schedule}.")
    ] = False,
) -> None:
    """The next run times of a deployment's active schedules, in local time and UTC."""
    from deployments.triggers.check import is_active, schedules_of
    from deployments.triggers.schedules import next_runs

    spec = find_deployment(deployment, file)
    start = _parse_after(after)
    try:
        items = schedules_of(spec)
    except ConfigurationError as exc:
        raise fail(f"{file}: {exc}; see `exports check`") from None
    active = [item for raw, item in items if is_active(raw)]
    if not active:
        if as_json:
            typer.echo("[]")
        else:
            which = "no active schedule" if items else "no schedule"
            typer.echo(f"{deployment} has {which}: it runs when started (API, CLI or UI)")
        return
    runs = next_runs(active, next_, start)
    if as_json:
        typer.echo(json.dumps(runs, indent=2))
        return
    typer.echo(f"{deployment}: next {len(runs)} runs from {_utc_text(start)}")
    _print_runs(runs)


@app.command()
def pause(deployment: DeploymentArgument, file: DeployedFileOption = DEFAULT_PROJECT_FILE) -> None:
    """Stop a trigger: no scheduled runs until it is resumed (run-now still works)."""
    name = _set_paused(deployment, file, paused=True)
    typer.echo(f"{name}: paused; its upcoming scheduled runs are removed")


@app.command()
def resume(deployment: DeploymentArgument, file: DeployedFileOption = DEFAULT_PROJECT_FILE) -> None:
    """Start a paused trigger again: its schedule runs from the next due time on."""
    name = _set_paused(deployment, file, paused=False)
    typer.echo(f"{name}: resumed; the scheduler creates its upcoming runs")


def _set_paused(deployment: str, project_file: Path, paused: bool) -> str:
    """The deployment's own pause switch, the same one as the toggle in the Prefect UI. Paused,
    the server deletes its upcoming scheduled runs and its scheduler creates none; resumed, the
    scheduler fills the schedule again from now on. (Prefect's own `prefect deployment schedule
    pause` needs each schedule's id, or pauses every deployment.)"""
    name = qualified_name(deployment, project_file)
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


@app.command()
def serve(
    deployments: Annotated[
        list[str] | None, typer.Argument(help="Serve only these deployments (default: all).")
    ] = None,
    file: FileOption = DEFAULT_PROJECT_FILE,
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
    from deployments.triggers import serve as serving
    from deployments.triggers.check import check_project

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
    runner = serving.build_runner(chosen, limit)
    if warm_start and not serving.start_warm(chosen):
        typer.echo("warm start is not available here: every run starts a new interpreter")
    serving.run_until_stopped(runner)
    typer.echo("stopped; the served deployments are paused until served again")


def _parse_after(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--after: `{text}` is not an ISO date and time; use e.g. 2026-03-20 or "
            "2026-03-20T09:00+01:00"
        ) from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed


def _utc_text(when: dt.datetime) -> str:
    utc = when.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%SZ" if utc.second else "%Y-%m-%d %H:%MZ")


def _local_text(local_iso: str, zone: str) -> str:
    local = dt.datetime.fromisoformat(local_iso).astimezone(ZoneInfo(zone))
    clock = "%H:%M:%S" if local.second else "%H:%M"
    offset = local.strftime("%z")
    return f"{local.strftime(f'%a %Y-%m-%d {clock} %Z')} ({offset[:3]}:{offset[3:]})"


def _print_runs(runs: list[dict[str, str]]) -> None:
    rows = [("local time", "UTC", "schedule")]
    for run in runs:
        when = dt.datetime.fromisoformat(run["utc"].replace("Z", "+00:00"))
        rows.append((_local_text(run["local"], run["timezone"]), _utc_text(when), run["schedule"]))
    print_table(rows)
