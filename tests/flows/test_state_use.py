"""What a run takes from its export's saved state, read once at its start: whether it needs
it at all, the stored cursor's mark, and the schema it compares its columns with."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from blocks.export_state import ExportState, StateColumn, StateCursor
from flows.core.config import ChecksConfig, OnSchemaChange, SourceConfig
from flows.core.errors import SchemaChangedError
from flows.sources.cursor import CursorMark
from flows.tasks import check_schema, needs_state, stored_mark

pytestmark = pytest.mark.unit

URL = "sqlite:///orders.sqlite"
STATE = ExportState(
    export="orders",
    run_id="run-1",
    finished=datetime(2026, 3, 1, 6, 30, tzinfo=UTC),
    rows=10,
    columns=[StateColumn(name="id", type="INTEGER"), StateColumn(name="sku", type="TEXT")],
    cursor=StateCursor(column="id", value="10", kind="int"),
)


@pytest.mark.parametrize(
    ("source", "on_schema_change", "checks", "needed"),
    [
        ({}, "allow", None, False),
        ({}, "allow", {"min_rows": 1, "unique": ["id"]}, False),
        ({"incremental": {"cursor": "id"}}, "allow", None, True),
        ({}, "fail", None, True),
        ({}, "allow", {"max_change_pct": 50}, True),
    ],
)
def test_only_a_cursor_a_schema_contract_or_a_change_check_needs_the_state(
    source: dict[str, Any],
    on_schema_change: OnSchemaChange,
    checks: dict[str, Any] | None,
    needed: bool,
) -> None:
    config = SourceConfig.model_validate({"url": URL, "table": "orders", **source})
    checked = ChecksConfig.model_validate(checks) if checks is not None else None
    assert needs_state(config, on_schema_change, checked) is needed


def test_the_mark_is_the_states_cursor() -> None:
    assert stored_mark(STATE) == CursorMark("id", "10", "int")
    assert stored_mark(STATE.model_copy(update={"cursor": None})) is None
    assert stored_mark(None) is None


def test_the_recorded_columns_pass_and_an_added_one_fails_naming_the_run() -> None:
    check_schema("orders", STATE, [("id", "INTEGER"), ("sku", "TEXT")])
    with pytest.raises(SchemaChangedError) as caught:
        check_schema("orders", STATE, [("id", "INTEGER"), ("sku", "TEXT"), ("note", "TEXT")])
    message = str(caught.value)
    assert message.startswith(
        "on_schema_change: the columns differ from those of the last successful run "
        "(run-1, finished 2026-03-01T06:30:00+00:00): added: note (TEXT);"
    ), message
    assert "run once with on_schema_change `allow`" in message
