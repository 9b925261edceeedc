"""An export's state on a real Prefect server: none before the first save, the saved one
after, the newer save over the older, one export's state never another's."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from blocks.export_state import (
    ExportState,
    StateColumn,
    export_state_name,
    load_export_state,
    save_export_state,
)
from flows.export import export

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_state_is_saved_under_the_exports_name_and_read_back() -> None:
    assert load_export_state("state-test orders") is None
    first = ExportState(
        export="state-test orders",
        run_id="r1",
        finished=datetime(2026, 12, 7, 21, 0, tzinfo=UTC),
        rows=10,
        columns=[StateColumn(name="id", type="INTEGER"), StateColumn(name="note", type="TEXT")],
    )
    save_export_state(first)
    save_export_state(ExportState(export="state-test Orders", rows=99))
    loaded = load_export_state("state-test orders")
    assert loaded is not None
    assert (loaded.run_id, loaded.rows, loaded.finished) == ("r1", 10, first.finished)
    assert [(c.name, c.type) for c in loaded.columns] == [("id", "INTEGER"), ("note", "TEXT")]
    save_export_state(loaded.model_copy(update={"run_id": "r2", "rows": 12}))
    again = load_export_state("state-test orders")
    assert again is not None and (again.run_id, again.rows) == ("r2", 12)
    other = load_export_state("state-test Orders")
    assert other is not None and other.rows == 99
    assert ExportState.load(export_state_name("state-test orders")).rows == 12


def test_a_successful_run_saves_its_state_and_a_failed_one_leaves_it(
    demo_db: Path, tmp_path: Path
) -> None:
    source = {"url": f"sqlite:///{demo_db}", "table": "orders"}
    destination = {"url": f"{tmp_path}/{{export}}.{{ext}}"}
    result = export(source=source, destination=destination, name="state-test run")
    state = load_export_state("state-test run")
    assert state is not None
    assert (state.run_id, state.rows) == (result.export_request_id, result.rows)
    assert state.finished == result.finished
    with sqlite3.connect(demo_db) as conn:
        names = [row[1] for row in conn.execute("PRAGMA table_info(orders)")]
    conn.close()
    assert [column.name for column in state.columns] == names
    assert all(column.type for column in state.columns)

    failed = export(
        source=source,
        destination={"url": f"{tmp_path}/{{export}}.{{ext}}", "max_file_rows": 10},
        name="state-test run",
        format_options={"trailer": "{total_rows}"},  # refused: one file holds them all only
        return_state=True,
    )
    assert failed.is_failed()
    kept = load_export_state("state-test run")
    assert kept is not None and kept.run_id == result.export_request_id


def test_a_run_that_publishes_nothing_saves_no_state(demo_db: Path, tmp_path: Path) -> None:
    export(
        source={"url": f"sqlite:///{demo_db}", "query": "select * from orders where 1 = 0"},
        destination={"url": f"{tmp_path}/{{export}}.{{ext}}"},
        name="state-test skipped",
        on_empty="skip",
    )
    assert load_export_state("state-test skipped") is None
