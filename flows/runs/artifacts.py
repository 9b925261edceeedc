"""Reading a run's table artifacts back: the alert outcomes and the export result it recorded
(the audit log, the gateway's run status, the alert reconciler).

Through the REST route: Prefect 3.8's `read_artifacts` returns only some of a run's artifacts
(it sends null fields the server rejects).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client


@dataclass(frozen=True)
class TableArtifact:
    key: str | None  # what readers find it by (flows/runs/naming.py); None for an unkeyed one
    description: str
    rows: list[dict[str, Any]]


def table_artifacts(flow_run_id: UUID | str, limit: int = 200) -> list[TableArtifact]:
    """The run's table artifacts, newest first."""
    body = _table_filter([flow_run_id], limit, 0)
    with get_client(sync_client=True) as client:
        found = client.request("POST", "/artifacts/filter", json=body).json()
    return [_table(item) for item in found]


def table_artifacts_of_runs(flow_run_ids: list[UUID]) -> dict[UUID, list[TableArtifact]]:
    """Every table artifact of these runs, newest first per run, in pages of PAGE."""
    tables: dict[UUID, list[TableArtifact]] = {}
    if not flow_run_ids:
        return tables
    offset = 0
    with get_client(sync_client=True) as client:
        while True:
            body = _table_filter(flow_run_ids, PAGE, offset)
            found = client.request("POST", "/artifacts/filter", json=body).json()
            for item in found:
                tables.setdefault(UUID(item["flow_run_id"]), []).append(_table(item))
            if len(found) < PAGE:
                return tables
            offset += PAGE


PAGE = 200  # the Prefect API's largest page


def _table_filter(flow_run_ids: list[UUID] | list[UUID | str], limit: int, offset: int) -> Any:
    return {
        "artifacts": {
            "flow_run_id": {"any_": [str(run_id) for run_id in flow_run_ids]},
            "type": {"any_": ["table"]},
        },
        "sort": "CREATED_DESC",
        "limit": limit,
        "offset": offset,
    }


def _table(item: dict[str, Any]) -> TableArtifact:
    data = json.loads(item["data"]) if isinstance(item["data"], str) else item["data"]
    rows = [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []
    return TableArtifact(item.get("key"), item.get("description") or "", rows)
