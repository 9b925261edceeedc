"""`exports check` and `exports schedule` (Contract 3): a project's triggers before deploying.

`check` runs `deployments.triggers.check_project`. `schedule` lists a deployment's next run
times with Prefect's server-side schedule classes, the ones its scheduler creates runs with,
so the times shown are the times that run, daylight-saving changes included.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule
from prefect.server.schemas import schedules as server_schedules

from deployments.console import fail
from deployments.project import DEFAULT_PROJECT_FILE, UsageError, find_deployment
from deployments.triggers import (
    Schedule,
    check_project,
    count_schedules,
    is_active,
    schedules_of,
)
from flows.errors import ConfigurationError
from flows.frequency import describe_schedule

__all__ = ["check", "register", "schedule"]

DEFAULT_RUNS = 5
MAX_RUNS = 1000  # Prefect's schedules look at most this many candidate dates
_UTC = dt.UTC


def register(app: typer.Typer) -> None:
    """Add `check` and `schedule` to the `exports` command line."""
    app.command()(check)
    app.command()(schedule)


def check(
    file: Annotated[Path, typer.Option("--file", help="The project file.")] = DEFAULT_PROJECT_FILE,
) -> None:
    """Check every deployment's entrypoint, parameters, schedules and work pool before deploying."""
    try:
        problems = check_project(file)
    except UsageError as exc:
        raise fail(str(exc), code=2) from None
    if problems:
        for problem in problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1)
    deployments, schedules = count_schedules(file)
    typer.echo(f"{file}: {deployments} deployments, {schedules} schedules — OK")


def schedule(
    deployment: Annotated[str, typer.Argument(help="Name of a deployment in prefect.yaml.")],
    file: Annotated[Path, typer.Option("--file", help="The project file.")] = DEFAULT_PROJECT_FILE,
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
    try:
        spec = find_deployment(deployment, file)
        start = _parse_after(after)
    except UsageError as exc:
        raise fail(str(exc), code=2) from None
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


def next_runs(schedules: list[Schedule], count: int, start: dt.datetime) -> list[dict[str, str]]:
    """The first `count` run times at or after `start` of all `schedules`, merged in time order.

    Each is {"local": ISO with offset, "utc": ISO with Z, "timezone", "schedule": words}.
    """
    found: list[tuple[dt.datetime, str, str]] = []
    for item in schedules:
        zone = item.timezone or "UTC"
        words = describe_schedule(item)
        for when in asyncio.run(_server_schedule(item).get_dates(count, start)):
            found.append((dt.datetime.fromtimestamp(when.timestamp(), _UTC), zone, words))
    found.sort(key=lambda run: run[0])
    return [
        {
            "local": when.astimezone(ZoneInfo(zone)).isoformat(),
            "utc": when.isoformat().replace("+00:00", "Z"),
            "timezone": zone,
            "schedule": words,
        }
        for when, zone, words in found[:count]
    ]


def _server_schedule(
    item: Schedule,
) -> (
    server_schedules.CronSchedule
    | server_schedules.IntervalSchedule
    | server_schedules.RRuleSchedule
):
    """The server's twin of a deploy-time schedule: the class Prefect's scheduler uses."""
    fields: dict[str, Any] = item.model_dump()
    if isinstance(item, CronSchedule):
        return server_schedules.CronSchedule.model_validate(fields)
    if isinstance(item, IntervalSchedule):
        return server_schedules.IntervalSchedule.model_validate(fields)
    return server_schedules.RRuleSchedule.model_validate(fields)


def _parse_after(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(_UTC)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--after: `{text}` is not an ISO date and time; use e.g. 2026-03-20 or "
            "2026-03-20T09:00+01:00"
        ) from None
    return parsed.replace(tzinfo=_UTC) if parsed.tzinfo is None else parsed


def _utc_text(when: dt.datetime) -> str:
    utc = when.astimezone(_UTC)
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
    widths = [max(len(row[index]) for row in rows) for index in range(2)]
    for local, utc, words in rows:
        typer.echo(f"{local.ljust(widths[0])}  {utc.ljust(widths[1])}  {words}")
