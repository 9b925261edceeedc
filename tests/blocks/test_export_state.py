"""The name an export's state block is saved under: Prefect's block-name alphabet, and
distinct for names that differ only where that alphabet cannot say so."""

from __future__ import annotations

import re

import pytest

from blocks.export_state import export_state_name

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "export", ["orders", "Orders", "a.b", "a-b", "ünïcode exports", "", "x" * 200]
)
def test_a_state_name_is_a_valid_block_name(export: str) -> None:
    name = export_state_name(export)
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", name), name
    assert len(name) <= 70


def test_names_that_read_alike_get_their_own_state() -> None:
    names = {export_state_name(e) for e in ["orders", "Orders", "a.b", "a-b", "a b"]}
    assert len(names) == 5
    assert export_state_name("orders").startswith("orders-")
    assert export_state_name("orders") == export_state_name("orders")  # stable
