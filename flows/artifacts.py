"""Reading a run's table artifacts back: the alert outcomes and the export result it recorded.

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
    description: str
    rows: list[dict[str, Any]]


def table_artifacts(flow_run_id: UUID | str, limit: int = 200) -> list[TableArtifact]:
    """The run's table artifacts, newest first."""
    body = {
        "artifacts": {"flow_run_id": {"any_": [str(flow_run_id)]}, "type": {"any_": ["table"]}},
        "sort": "CREATED_DESC",
        "limit": limit,
        "offset": 0,
    }
    with get_client(sync_client=True) as client:
        found = client.request("POST", "/artifacts/filter", json=body).json()
    tables = []
    for item in found:
        data = json.loads(item["data"]) if isinstance(item["data"], str) else item["data"]
        rows = [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []
        tables.append(TableArtifact(item.get("description") or "", rows))
    return tables
