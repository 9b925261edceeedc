"""What an export's next run needs from its last successful one, kept on the Prefect server:
one `ExportState` block per export, named after the export's `name`.

The flow saves it after everything a run writes is published (files, manifest, marker), and
only then; a run that fails leaves it as it was. Every worker, and the CLI, reads the same
one, and it survives restarts of workers and of the server. Operators see it in the UI's
Blocks page.

Issue 27 builds on it: the stored cursor (its mark), the checks before publish
(`max_change_pct` against `rows`) and the schema contract (`columns`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from pydantic import BaseModel, Field

_LOGO = "https://raw.githubusercontent.com/PrefectHQ/prefect/420d0d6a78bb6df1fc18bcf188fdad43c1d22ea9/assets/block-logos/filesystem.png"
_DOCS = "https://github.com/prefect-exports/prefect-exports#export-state"
# A block's name: lower-case letters, digits and dashes (Prefect's rule), at most this long.
_NAME_CHARS = re.compile(r"[^a-z0-9]+")
_NAME_LENGTH = 60


class StateColumn(BaseModel):
    """One output column as the last successful run wrote it."""

    name: str
    type: str = Field(description="The source's type name, as the manifest gives it.")


class StateCursor(BaseModel):
    """The stored cursor's mark (`source.incremental`): the next run delivers rows above it."""

    column: str = Field(description="The cursor column.")
    value: str = Field(description="The mark: the largest cursor delivered, as canonical text.")
    kind: str = Field(default="", description="The column's kind (int, timestamp, str, ...).")


class ExportState(Block):
    """The state an export carries from one successful run to the next.

    Example:
        ```python
        from blocks.export_state import ExportState, load_export_state

        state = load_export_state("orders")  # None before the first successful run
        state = ExportState.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Exports Export State"
    _block_type_slug = "exports-export-state"
    _logo_url = _LOGO  # type: ignore[assignment]
    _description = (
        "What an export's last successful run left for the next one (saved by the flow after "
        "publishing; one block per export, named after it). Change it with the `exports` CLI."
    )
    _documentation_url = _DOCS  # type: ignore[assignment]

    export: str = Field(description="The export's `name`, as the flow was given it.")
    run_id: str | None = Field(default=None, description="The last successful run's id.")
    finished: datetime | None = Field(default=None, description="When that run finished.")
    rows: int | None = Field(default=None, description="The rows it delivered.")
    columns: list[StateColumn] = Field(
        default_factory=list, description="The columns it wrote, in order, with their types."
    )
    cursor: StateCursor | None = Field(
        default=None, description="The stored cursor's mark (source.incremental), if any."
    )


def export_state_name(export: str) -> str:
    """The block name of `export`'s state: its name in Prefect's block-name alphabet, and a
    short hash of the exact name so that `Orders` and `orders`, or `a.b` and `a-b`, differ."""
    readable = _NAME_CHARS.sub("-", export.lower()).strip("-")[:_NAME_LENGTH] or "export"
    digest = hashlib.sha256(export.encode()).hexdigest()[:8]
    return f"{readable}-{digest}"


def load_export_state(export: str) -> ExportState | None:
    """The saved state of `export`, or None before its first successful run."""
    try:
        state = ExportState.load(export_state_name(export))
    except ValueError:  # Prefect's answer for a block that does not exist
        return None
    assert isinstance(state, ExportState)
    return state


def save_export_state(state: ExportState) -> None:
    """Save `state` as its export's block, over the previous one."""
    state.save(export_state_name(state.export), overwrite=True)


def export_lock_name(export: str) -> str:
    """The global concurrency limit one run of `export` holds at a time."""
    return f"export-state-{export_state_name(export)}"


@contextmanager
def export_lock(export: str) -> Iterator[None]:
    """Hold `export`'s lock: a Prefect global concurrency limit of 1 named after it (made on
    first use), so a second run of the same export waits until the first has saved its
    state (its cursor's mark) or failed. The server keeps the slot under a lease the holder
    renews: a worker that dies frees it when the lease runs out."""
    name = export_lock_name(export)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1)
                )
            except ObjectAlreadyExists:  # another run made it first: the same limit
                pass
    with concurrency(name, occupy=1, strict=True):
        yield
