"""`exports audit`: the audit log (Contract 6, deployments/audit.py) as a table, CSV or JSON,
newest first."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

from deployments.audit import AuditQuery, AuditRecord, read_audit
from deployments.cli.console import fail, print_table
from flows.runs.tags import TRIGGER_TYPES, TriggerType

# Prefect's state names, as `--status` accepts them (any case).
STATUSES = (
    "Scheduled", "Late", "AwaitingRetry", "AwaitingConcurrencySlot", "Pending", "Running",
    "Retrying", "Paused", "Suspended", "Completed", "Cached", "Failed", "Crashed", "Cancelling",
    "Cancelled", "TimedOut",
)  # fmt: skip
CSV_COLUMNS = tuple(AuditRecord.model_fields)
ERROR_WIDTH = 60


class Output(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


app = typer.Typer()


@app.command()
def audit(
    deployment: Annotated[
        str | None, typer.Argument(help="Only this deployment (its name, e.g. orders-api).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Runs due at or after this ISO time (no offset: UTC).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Runs due before this ISO time.")] = None,
    status: Annotated[
        str | None, typer.Option(help="Completed, Failed, Crashed, Late, Running, … (any case).")
    ] = None,
    trigger_type: Annotated[
        str | None, typer.Option(help="API, Scheduled or Run Now (any case, run-now too).")
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(
            help="Who started it: a key's or CLI user, schedule, automation:NAME, prefect."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many runs.")] = 50,
    offset: Annotated[
        int, typer.Option(min=0, help="Skip this many matching runs first (the next page).")
    ] = 0,
    output: Annotated[Output, typer.Option(help="table, csv or json.")] = Output.table,
    include_scheduled: Annotated[
        bool, typer.Option(help="Also list runs the scheduler made for later, not started yet.")
    ] = False,
) -> None:
    """Every run of every export, newest first: trigger, user, rows, bytes, files, alerts."""
    query = AuditQuery(
        deployment=deployment,
        since=_moment("--since", since),
        until=_moment("--until", until),
        status=_status(status),
        trigger_type=_trigger_type(trigger_type),
        user=user,
        limit=limit + offset,
        include_scheduled=include_scheduled,
    )
    records = read_audit(query)[offset:]
    if output is Output.json:
        typer.echo(json.dumps([record.model_dump(mode="json") for record in records], indent=2))
    elif output is Output.csv:
        typer.echo(to_csv(records), nl=False)
    else:
        _print_records(records)


def to_csv(records: list[AuditRecord]) -> str:
    """One header row, then one row per run: ISO times, empty cells for none, and `files`,
    `alerts`, `encrypted_to` and `cursor` as JSON (a spreadsheet shows them as text; a program
    parses them back)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for record in records:
        writer.writerow(
            {name: _cell(value) for name, value in record.model_dump(mode="json").items()}
        )
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):  # files, alerts, encrypted_to; cursor
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _moment(option: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"{option}: `{text}` is not an ISO time, e.g. 2026-03-01T00:00:00Z", 2) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _status(text: str | None) -> str | None:
    if text is None:
        return None
    for name in STATUSES:
        if name.lower() == text.lower():
            return name
    raise fail(f"--status: `{text}` is not a run status; one of {', '.join(STATUSES)}", 2)


def _trigger_type(text: str | None) -> TriggerType | None:
    if text is None:
        return None
    wanted = text.lower().replace("-", " ").replace("_", " ")
    for name in TRIGGER_TYPES:
        if name.lower() == wanted:
            return name
    raise fail(f"--trigger-type: `{text}` is not one of {', '.join(TRIGGER_TYPES)}", 2)


def _print_records(records: list[AuditRecord]) -> None:
    if not records:
        typer.echo("no runs")
        return
    header = ("started", "deployment", "trigger", "by", "status", "rows", "bytes", "s", "error")
    rows = [header]
    for record in records:
        error = (record.error or "").split("\n", 1)[0]
        rows.append(
            (
                record.started.isoformat(timespec="seconds") if record.started else "",
                record.deployment,
                record.trigger_type,
                record.triggered_by,
                record.status,
                "" if record.rows is None else str(record.rows),
                "" if record.bytes is None else str(record.bytes),
                "" if record.duration_s is None else f"{record.duration_s:.1f}",
                error if len(error) <= ERROR_WIDTH else error[: ERROR_WIDTH - 1] + "…",
            )
        )
    print_table(rows, right_aligned={5, 6, 7})
