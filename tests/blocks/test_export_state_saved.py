"""An export's state on a real Prefect server: none before the first save, the saved one
after, the newer save over the older, one export's state never another's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from blocks.export_state import (
    ExportState,
    StateColumn,
    export_state_name,
    load_export_state,
    save_export_state,
)

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
