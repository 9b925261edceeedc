"""The schema contract's comparison (flows/core/schema.py): what was added, removed, retyped or
moved between the last successful run's columns and this run's, and how the error says it."""

from __future__ import annotations

import pytest

from flows.core.schema import SchemaChanges, schema_changes

pytestmark = pytest.mark.unit

ORDERS = [("id", "integer"), ("amount", "numeric(12,2)"), ("qty", "integer"), ("sku", "text")]


def test_the_same_columns_and_types_are_no_change() -> None:
    changes = schema_changes(ORDERS, list(ORDERS))
    assert not changes
    assert changes == SchemaChanges()
    assert changes.describe() == ""


def test_added_removed_and_retyped_are_listed_in_the_issues_words() -> None:
    current = [("id", "integer"), ("amount", "numeric(14,2)"), ("sku", "text"), ("note", "text")]
    changes = schema_changes(ORDERS, current)
    assert changes.describe() == (
        "added: note (text); removed: qty; retyped: amount numeric(12,2) -> numeric(14,2)"
    )
    assert changes.parts() == (
        "added: note (text)",
        "removed: qty",
        "retyped: amount numeric(12,2) -> numeric(14,2)",
    )


def test_a_column_added_or_removed_in_the_middle_moves_no_other() -> None:
    current = [("id", "integer"), ("note", "text"), ("amount", "numeric(12,2)"), ("sku", "text")]
    changes = schema_changes(ORDERS, current)
    assert (changes.added, changes.removed, changes.moved) == ((("note", "text"),), ("qty",), ())


def test_a_reorder_names_the_fewest_columns_that_moved() -> None:
    """`sku` put first: one column moved, not four (a CSV's columns are read by position)."""
    current = [ORDERS[3], *ORDERS[:3]]
    assert schema_changes(ORDERS, current).describe() == "moved: sku"
    swapped = [ORDERS[0], ORDERS[2], ORDERS[1], ORDERS[3]]
    assert schema_changes(ORDERS, swapped).describe() == "moved: qty"  # one of the two swapped
    reversed_ = list(reversed(ORDERS))
    assert schema_changes(ORDERS, reversed_).moved == ("sku", "qty", "amount")


def test_several_of_each_kind_are_listed_in_the_runs_order() -> None:
    recorded = [("a", "INTEGER"), ("b", "TEXT"), ("c", "REAL"), ("d", "TEXT")]
    current = [("x", "TEXT"), ("b", "BLOB"), ("y", "INTEGER"), ("a", "TEXT")]
    assert schema_changes(recorded, current).describe() == (
        "added: x (TEXT), y (INTEGER); removed: c, d; retyped: b TEXT -> BLOB, a INTEGER -> TEXT; "
        "moved: b"
    )


def test_types_are_compared_as_the_source_names_them() -> None:
    assert schema_changes([("id", "integer")], [("id", "INTEGER")]).describe() == (
        "retyped: id integer -> INTEGER"
    )


def test_a_column_without_a_source_type_is_named_alone() -> None:
    """A SQLite query's columns have no declared type: only names and order are compared."""
    assert schema_changes([("id", "")], [("id", ""), ("note", "")]).describe() == "added: note"


def test_a_wide_table_compares_in_one_pass() -> None:
    recorded = [(f"c{index}", "text") for index in range(20_000)]
    current = recorded[1:] + recorded[:1]
    assert schema_changes(recorded, current).moved == ("c0",)
