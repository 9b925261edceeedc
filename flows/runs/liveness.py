"""Which runs are over, as the Prefect API knows them: their temporary files will never be
published, so the next run to the same target may remove them (issue 17: killed runs left
178 MB of `.…-*.tmp` files that nothing removed)."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId


def ended_runs(run_ids: Iterable[str]) -> set[str]:
    """The ids among `run_ids` whose flow runs reached a final state (completed, failed,
    crashed, cancelled). A run the API does not know, or no API at all, counts as not ended:
    its files may belong to a run of another server, so they are left alone."""
    ids = []
    for text in run_ids:
        try:
            ids.append(UUID(text))
        except ValueError:
            continue
    if not ids:
        return set()
    try:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids)
            )
    except Exception:  # noqa: BLE001 - cleaning up is a courtesy: never fail a run for it
        return set()
    return {str(run.id) for run in runs if run.state is not None and run.state.is_final()}
