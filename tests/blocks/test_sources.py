"""SqlSource: a saved URL that exports load by name; its secret never shows."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from blocks import SqlSource
from flows.export import export


@pytest.mark.usefixtures("prefect_api")
def test_export_reads_through_a_saved_block(demo_db: Path, tmp_path: Path) -> None:
    name = f"demo-{uuid.uuid4().hex[:8]}"
    SqlSource(url=f"sqlite:///{demo_db}").save(name)
    result = export(
        source={"block": name, "table": "customers"},
        destination={"url": str(tmp_path / "{export}.{ext}")},
        format="jsonl",
    )
    assert result.rows == 50
    assert len((tmp_path / "customers.jsonl").read_text(encoding="utf-8").splitlines()) == 50


@pytest.mark.unit
def test_secret_url_is_hidden() -> None:
    block = SqlSource(url="postgresql://reader:s3cret@db/shop")
    assert "s3cret" not in repr(block) and "s3cret" not in str(block)
    assert block.url.get_secret_value().endswith("@db/shop")
