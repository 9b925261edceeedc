"""What an export run delivered, read back from the Prefect API: its status document and its
files (the gateway's GET /v1/exports/runs/{id} and /file).

The status is the run's audit record (deployments/audit.py): rows, bytes and files from the
"Export result" table artifact the flow records, times and errors from the run and its state.
A caller sees no more of it than a status alert says (issue 24): the error's kind and field
(flows/alerts/errors.py), and the files' names as it downloads them, never where they are.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from prefect.client.schemas.objects import FlowRun
from pydantic import BaseModel, Field, PrivateAttr, ValidationError

from deployments.audit import audit_record
from flows.alerts.errors import state_error
from flows.core.formats import media_type
from flows.destinations.delivery import stored_filesystem
from flows.request import DestinationConfig
from flows.runs.artifacts import table_artifacts
from flows.runs.naming import DEFAULT_EXPORT_NAME

CHUNK_BYTES = 1024 * 1024


class NoFile(LookupError):
    """The run has no file to hand out (the message says why; it names no credential)."""


class RunStatus(BaseModel):
    """GET /v1/exports/runs/{id}."""

    export_request_id: str
    deployment: str
    status: str = Field(description="Scheduled, Pending, Running, Completed, Failed, Crashed …")
    final: bool = Field(description="Whether the run has finished (completed or not).")
    rows: int | None = None
    bytes: int | None = None
    files: list[str] = Field(
        default_factory=list,
        description="The delivered files' names below the folder they share (part N is "
        "files[N-1], downloaded with ?part=N); never where the store keeps them.",
    )
    started: datetime | None = None
    finished: datetime | None = None
    error: str | None = Field(
        default=None,
        description="The error's kind and, for a bad parameter, its field, as the Failed "
        "alert says it; the run's logs have the whole error.",
    )
    _paths: list[str] = PrivateAttr(default_factory=list)  # where the files are: never shown


def read_status(run: FlowRun, deployment: str) -> RunStatus:
    """The run's status; rows, bytes and files once completed; the error as the Failed alert
    renders it if it ended otherwise (read as the audit log reads it)."""
    record = audit_record(run, deployment, table_artifacts(run.id, limit=50))
    state = run.state
    status = RunStatus(
        **record.model_dump(include=set(RunStatus.model_fields) - {"final", "files", "error"}),
        files=download_names(record.files),
        error=state_error(record.error) if record.error else None,
        final=bool(state is not None and state.is_final()),
    )
    status._paths = record.files
    return status


def download_names(paths: list[str]) -> list[str]:
    """The files' names below the folder they all share: one file's is its own name,
    partitions keep their folders (`s3://b/out/region=eu/x.csv` -> `region=eu/x.csv`)."""
    folders = [path.rstrip("/").split("/")[:-1] for path in paths]
    shared = len(os.path.commonprefix(folders)) if folders else 0
    return ["/".join(path.rstrip("/").split("/")[shared:]) for path in paths]


@dataclass
class DeliveredFile:
    """One delivered file, open for reading: iterate `chunks()` once."""

    name: str
    media_type: str
    size: int | None
    handle: Any

    def chunks(self) -> Iterator[bytes]:
        try:
            while chunk := self.handle.read(CHUNK_BYTES):
                yield chunk
        finally:
            self.handle.close()

    @property
    def content_disposition(self) -> str:
        fallback = self.name.encode("ascii", "replace").decode()
        fallback = fallback.replace('"', "_").replace("?", "_").replace("\\", "_")
        return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(self.name, safe='')}"


def open_delivered(run: FlowRun, status: RunStatus, part: int = 1) -> DeliveredFile:
    """Open part `part` (from 1) of a completed run's files through fsspec, with the run's
    own destination (its block or the store's environment).

    Raises:
        NoFile: no such part, an HTTP destination, or the file is gone.
    """
    if part > len(status.files):
        raise NoFile(f"the run delivered {len(status.files)} file(s), no part {part}")
    try:
        destination = DestinationConfig.model_validate(run.parameters.get("destination"))
    except ValidationError:
        raise NoFile("the run's destination cannot be read back") from None
    fs = stored_filesystem(destination)
    if fs is None:
        raise NoFile("the run POSTed its file to an HTTP receiver; there is nothing to download")
    path = status._paths[part - 1]
    try:
        size = fs.size(path)
        handle = fs.open(path, "rb")
    except FileNotFoundError:
        raise NoFile("the delivered file is no longer there") from None
    fmt = str(run.parameters.get("format") or "csv").lower()
    options = run.parameters.get("format_options") or {}
    encoding = str(options.get("encoding") or "utf-8") if isinstance(options, dict) else "utf-8"
    media = media_type(fmt, destination.file_codecs, encoding)
    name = posixpath.basename(path.rstrip("/")) or DEFAULT_EXPORT_NAME
    return DeliveredFile(name, media, size if isinstance(size, int) else None, handle)
