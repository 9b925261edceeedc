"""What one export run delivered (Contract 1's ExportResult), and how the run records it in the
Prefect UI: a summary table, a machine-readable result table and a link per file. The audit log
and the gateway's run status read the result table back (flows/runs/artifacts.py).
"""

from __future__ import annotations

from datetime import datetime

from prefect.artifacts import create_link_artifact, create_table_artifact
from prefect.context import FlowRunContext
from pydantic import BaseModel, ConfigDict

from flows.core.formats import ExportFormat
from flows.runs.naming import artifact_key, result_artifact_key
from flows.runs.tags import trigger_type, triggered_by

RESULT_ARTIFACT_DESCRIPTION = "Export result (machine-readable)"
RESULT_COLUMNS = (
    "export_request_id",
    "format",
    "rows",
    "bytes",
    "files",
    "started",
    "finished",
    "manifest",
    "done_marker",
    "skipped",
    "encrypted_to",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WindowBounds(_Model):
    """The window a run delivered (aware UTC datetimes): rows with since <= ts < until."""

    since: datetime
    until: datetime


class ExportResult(_Model):
    """What one export run delivered (Contract 1); the flow's return value."""

    export_request_id: str
    name: str
    format: ExportFormat
    rows: int
    bytes: int
    files: list[str]
    started: datetime
    finished: datetime
    window: WindowBounds | None = None
    manifest: str | None = None  # the manifest's URL, when destination.manifest asked for one
    done_marker: str | None = None  # the completion marker's URL (destination.done_marker)
    skipped: bool = False  # no rows, and on_empty: skip: nothing was published
    encrypted_to: list[str] = []  # the OpenPGP recipients' fingerprints (destination.pgp)
    hashed: list[str] = []  # the columns written as their HMAC-SHA256 (source.columns)
    masked: list[str] = []  # the columns masked: last4, or NULL (source.columns)
    # source.incremental: the range delivered, {column, from (the mark it started above, or
    # `initial`), to (the mark it leaves)}
    cursor: dict[str, str | None] | None = None

    @property
    def duration_s(self) -> float:
        return (self.finished - self.started).total_seconds()


def record_result(result: ExportResult, partner: str, export_type: str | None, source: str) -> None:
    """Leave the run's story in the Prefect UI: a summary (with who started it, as the audit
    log shows it) and a link to each file. `source` is the database as it may be shown.

    The summary's Markdown description says it all in a sentence that wraps; its table holds
    short values only (the source URL, which can be long, is in the sentence), so the artifact
    page shows every column at 1,400 px without scrolling (tests/ui/test_artifacts_in_browser.py).
    """
    key = artifact_key(result.name)
    context = FlowRunContext.get()
    run = context.flow_run if context is not None else None
    trigger, user = (trigger_type(run), triggered_by(run)) if run is not None else ("Run Now", "")
    create_table_artifact(
        key=f"{key}-summary",
        table=[
            {
                "export": result.name,
                "rows": result.rows,
                "bytes": result.bytes,
                "files": len(result.files),
                "format": result.format,
                "duration_s": round(result.duration_s, 3),
                "trigger": trigger,
                "user": user,
                "partner": partner,
                "type": export_type or "",
            }
        ],
        description=summary_sentence(result, source, trigger, user),
    )
    # The same facts for machines (the gateway's run status, the audit log): one row whose
    # columns are RESULT_COLUMNS, `files` the list of delivered URLs. They find it by its key.
    create_table_artifact(
        key=result_artifact_key(result.name),
        table=[_result_row(result)],
        description=RESULT_ARTIFACT_DESCRIPTION,
    )
    for index, path in enumerate(result.files, start=1):
        create_link_artifact(
            key=f"{key}-file-{index}",
            link=_link(path),
            link_text=path.rsplit("/", 1)[-1],
            description=f"Delivered file {index} of {len(result.files)}.",
        )
    if result.manifest is not None:
        create_link_artifact(
            key=f"{key}-manifest",
            link=_link(result.manifest),
            link_text=result.manifest.rsplit("/", 1)[-1],
            description="The manifest of the delivered files (written last: the set is complete).",
        )
    if result.done_marker is not None:
        create_link_artifact(
            key=f"{key}-done-marker",
            link=_link(result.done_marker),
            link_text=result.done_marker.rsplit("/", 1)[-1],
            description="The completion marker (written after every file and the manifest).",
        )


def summary_sentence(result: ExportResult, source: str, trigger: str, user: str) -> str:
    """The summary artifact's description, in Markdown: what was delivered, from where, and
    who started it."""
    by = f" by `{user}`" if user else ""
    if result.skipped:
        return (
            f"Export `{result.name}`: **0 rows**, nothing published (on_empty: skip), from "
            f"`{source}`; {trigger}{by}, {result.duration_s:.1f} s."
        )
    encrypted = (
        f" encrypted to {', '.join(f'`{key}`' for key in result.encrypted_to)},"
        if result.encrypted_to
        else ""
    )
    cursor = result.cursor
    ranged = (
        f" cursor `{cursor['column']}` above `{cursor['from']}` up to `{cursor['to']}`,"
        if cursor is not None and cursor["from"] is not None
        else f" cursor `{cursor['column']}` up to `{cursor['to']}`,"
        if cursor is not None
        else ""
    )
    return (
        f"Export `{result.name}`: **{result.rows:,} rows**, {result.bytes:,} bytes of "
        f"{result.format} in {len(result.files)} file(s),{encrypted}{_protected(result)}{ranged} "
        f"from `{source}`; {trigger}{by}, {result.duration_s:.1f} s."
    )


def _protected(result: ExportResult) -> str:
    """` columns hashed: `email`; masked: `card`,` or nothing."""
    said = [
        f"{what}: {', '.join(f'`{name}`' for name in names)}"
        for what, names in (("hashed", result.hashed), ("masked", result.masked))
        if names
    ]
    return f" columns {'; '.join(said)}," if said else ""


def _result_row(result: ExportResult) -> dict[str, object]:
    """The result artifact's row: RESULT_COLUMNS, and `cursor` for a stored cursor's run."""
    row = {column: _json_value(getattr(result, column)) for column in RESULT_COLUMNS}
    if result.cursor is not None:
        row["cursor"] = result.cursor
    return row


def _link(path: str) -> str:
    return path if "://" in path else f"file://{path}"


def _json_value(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value
