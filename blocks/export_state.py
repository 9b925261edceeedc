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
import logging
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from uuid import UUID

from prefect.blocks.core import Block
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    VariableCreate,
    VariableUpdate,
)
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from pydantic import BaseModel, Field

from flows.core.config import DEFAULT_LOCK_TIMEOUT
from flows.core.errors import CursorLockedError
from flows.core.prefect_compat import slots_refused

_LOGO = "https://raw.githubusercontent.com/PrefectHQ/prefect/420d0d6a78bb6df1fc18bcf188fdad43c1d22ea9/assets/block-logos/filesystem.png"
_DOCS = "https://github.com/prefect-exports/prefect-exports#export-state"
# A block's name: lower-case letters, digits and dashes (Prefect's rule), at most this long.
_NAME_CHARS = re.compile(r"[^a-z0-9]+")
_NAME_LENGTH = 60
_logger = logging.getLogger(__name__)


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


def export_lock_holder_name(export: str) -> str:
    """The Prefect variable naming the run that holds `export`'s lock (its id and name):
    the server keeps a lease's holder but gives no API to read it back."""
    return f"{export_lock_name(export)}-holder"


@contextmanager
def export_lock(
    export: str,
    timeout: timedelta = DEFAULT_LOCK_TIMEOUT,
    run_id: UUID | None = None,
    run_name: str | None = None,
) -> Iterator[None]:
    """Hold `export`'s lock: a Prefect global concurrency limit of 1 named after it (made on
    first use), so a second run of the same export waits until the first has saved its
    state (its cursor's mark) or failed. The server keeps the slot under a lease the holder
    renews: a worker that dies frees it when the lease runs out. The lease names the flow run
    `run_id` as its holder, and a variable (export_lock_holder_name) names it for the runs that
    wait.

    Raises:
        CursorLockedError: the lock was not free within `timeout` (0: at once), naming the
            run that holds it.
    """
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
    holder = ConcurrencyLeaseHolder(type="flow_run", id=run_id) if run_id is not None else None
    wait = timeout.total_seconds()
    held = ExitStack()
    try:
        held.enter_context(
            concurrency(
                name,
                occupy=1,
                strict=True,
                holder=holder,
                timeout_seconds=wait or None,
                max_retries=None if wait else 0,
            )
        )
    except TimeoutError:
        raise _locked(export, timeout) from None
    except Exception as exc:
        if slots_refused(exc):
            raise _locked(export, timeout) from None
        raise
    with held:
        _say_holder(export, run_id, run_name)
        try:
            yield
        finally:
            _say_holder(export, None, None)  # before the slot is free for the next run


def _say_holder(export: str, run_id: UUID | None, run_name: str | None) -> None:
    """Name the run holding `export`'s lock in its variable, or remove it (`run_id` None).
    Best effort: the variable only words a waiting run's error (a stale one is overwritten
    by the next holder), so an API hiccup here never fails a run that has the lock."""
    try:
        _write_holder(export_lock_holder_name(export), run_id, run_name)
    except Exception as exc:  # noqa: BLE001 - see above
        _logger.warning("could not record the holder of the lock of `%s`: %s", export, exc)


def _write_holder(variable: str, run_id: UUID | None, run_name: str | None) -> None:
    with get_client(sync_client=True) as client:
        if run_id is None:
            try:
                client.delete_variable_by_name(variable)
            except ObjectNotFound:
                pass
            return
        value = {"id": str(run_id), "name": run_name or ""}
        if client.read_variable_by_name(variable) is None:
            try:
                client.create_variable(VariableCreate(name=variable, value=value))
                return
            except ObjectAlreadyExists:  # a dead holder's, written meanwhile
                pass
        client.update_variable(VariableUpdate(name=variable, value=value))


def _locked(export: str, timeout: timedelta) -> CursorLockedError:
    """The error of a run that found `export`'s lock held past `timeout`."""
    with get_client(sync_client=True) as client:
        holder_id, holder_name = _holder(client, export)
    if holder_id is None:
        by = "another run (it did not record its id)"
    else:
        by = f"run {holder_id}" + (f" (`{holder_name}`)" if holder_name else "")
    waited = f"waited {_duration(timeout)} for it" if timeout else "does not wait (0)"
    return CursorLockedError(
        f"source.incremental.lock_timeout: the cursor of export `{export}` is held by {by}, "
        f"and this run {waited}; no row was read and nothing was published; let that run "
        "finish (or cancel it), then run this export again, or give a longer "
        "source.incremental.lock_timeout",
        export=export,
        holder=holder_id,
        holder_name=holder_name,
    )


def _holder(client: SyncPrefectClient, export: str) -> tuple[str | None, str | None]:
    """The id and name of the run holding `export`'s lock, as its variable says."""
    variable = client.read_variable_by_name(export_lock_holder_name(export))
    value = variable.value if variable is not None else None
    if not isinstance(value, dict) or not value.get("id"):
        return None, None
    return str(value["id"]), str(value.get("name") or "") or None


def _duration(span: timedelta) -> str:
    """`1h`, `15m`, `90s`: a wait as a user would write it."""
    seconds = span.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
