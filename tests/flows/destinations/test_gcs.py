"""What only Google Cloud Storage has, against gcp-storage-emulator on loopback: the
STORAGE_EMULATOR_HOST path. What every store does is in test_stores.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.export import export
from tests.flows.conftest import demo_dataset
from tests.flows.destinations.stores import gcs_store
from tests.flows.formats.test_roundtrip import assert_round_trip
from tests.servers.gcs import GcsServer

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_emulator_host_variable_without_a_block(
    demo_db: Path, gcs: GcsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = gcs_store(gcs)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.endpoint_url)
    result = export(
        source={"url": f"sqlite:///{demo_db}", "table": "orders"},
        destination={"url": f"gcs://{store.container}/env/{{export}}.{{ext}}"},
    )
    assert store.names() == ["env/orders.csv"]
    assert result.files == [f"gcs://{store.container}/env/orders.csv"]
    path = store.download("env/orders.csv", tmp_path)
    assert_round_trip("csv", path, demo_dataset("orders"))
