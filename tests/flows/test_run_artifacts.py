"""What an export run leaves on its page in the Prefect UI (docs/design.md, "Artifacts"), read
back from the API by the run's id: the summary and the machine-readable result tables, a link
to the file, and one progress artifact that ends at 100 %, whether the write was over before
its first update was due (created once, at the end) or not (created, then updated)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client

import flows.runs.progress
from flows.export import export
from flows.runs.result import RESULT_ARTIFACT_DESCRIPTION

pytestmark = pytest.mark.usefixtures("prefect_api")


def run_artifacts(flow_run_id: UUID) -> list[dict[str, Any]]:
    body = {"artifacts": {"flow_run_id": {"any_": [str(flow_run_id)]}}}
    with get_client(sync_client=True) as client:
        found: list[dict[str, Any]] = client.request("POST", "/artifacts/filter", json=body).json()
    return found


def export_orders(demo_db: Path, out: Path, chunk_rows: int) -> UUID:
    state = export(
        source={"url": f"sqlite:///{demo_db}", "table": "orders", "chunk_rows": chunk_rows},
        destination={"url": f"{out}/{{export}}.{{ext}}"},
        format="csv",
        return_state=True,
    )
    assert state.is_completed(), state.message
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    return run_id


def test_a_short_export_leaves_its_tables_link_and_a_finished_progress(
    demo_db: Path, tmp_path: Path
) -> None:
    artifacts = run_artifacts(export_orders(demo_db, tmp_path, chunk_rows=50_000))

    by_type: dict[str, list[dict[str, Any]]] = {}
    for artifact in artifacts:
        by_type.setdefault(artifact["type"], []).append(artifact)
    progress = by_type["progress"]
    assert [(p["data"], p["description"]) for p in progress] == [
        (100.0, "orders: rows written of 1000")
    ]
    descriptions = [table["description"] for table in by_type["table"]]
    assert RESULT_ARTIFACT_DESCRIPTION in descriptions
    assert any(d.startswith("Export `orders`: **1,000 rows**") for d in descriptions)
    (link,) = [a for a in artifacts if a["key"] == "export-orders-file-1"]
    assert f"file://{tmp_path}/orders.csv" in link["data"]


def test_a_long_write_updates_one_progress_artifact_to_100(
    demo_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every chunk of 100 rows is "a second later": created at 10 %, then updated nine times.
    monkeypatch.setattr(flows.runs.progress, "PROGRESS_EVERY_S", 0.0)

    artifacts = run_artifacts(export_orders(demo_db, tmp_path, chunk_rows=100))

    progress = [a for a in artifacts if a["type"] == "progress"]
    assert [(p["data"], p["description"]) for p in progress] == [
        (100.0, "orders: rows written of 1000")
    ]
    assert progress[0]["updated"] > progress[0]["created"]
