"""What only Azure Blob Storage has, against Azurite on loopback: the ways to sign in (the
AZURE_STORAGE_CONNECTION_STRING variable, an account key, a SAS token) and the abfs://
scheme. What every store does is in test_stores.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

from blocks import AzureBlobCredentials
from flows.export import export
from tests.flows.conftest import demo_dataset
from tests.flows.destinations.stores import StoreUnderTest, az_store
from tests.flows.formats.test_roundtrip import assert_round_trip
from tests.servers.azurite import AzuriteServer

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def store(azurite: AzuriteServer) -> StoreUnderTest:
    return az_store(azurite)


def export_orders(demo_db: Path, url: str, block: str | None = None) -> list[str]:
    result = export(
        source={"url": f"sqlite:///{demo_db}", "table": "orders"},
        destination={"url": url, "block": block},
    )
    return result.files


def assert_orders_arrived(store: StoreUnderTest, name: str, folder: Path) -> None:
    assert store.names() == [name], "a temporary blob was left behind"
    assert_round_trip("csv", store.download(name, folder), demo_dataset("orders"))


def test_connection_string_variable_without_a_block(
    demo_db: Path, azurite: AzuriteServer, store: StoreUnderTest, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string())
    files = export_orders(demo_db, store.url("env/{export}.{ext}"))
    assert files == [store.url("env/orders.csv")]
    assert_orders_arrived(store, "env/orders.csv", tmp_path)


def test_account_key_and_endpoint_over_abfs(
    demo_db: Path, azurite: AzuriteServer, store: StoreUnderTest, tmp_path: Path
) -> None:
    AzureBlobCredentials(
        account_name=AzuriteServer.ACCOUNT,
        account_key=AzuriteServer.KEY,
        blob_endpoint=azurite.blob_endpoint,
    ).save("test-az-key", overwrite=True)
    files = export_orders(demo_db, f"abfs://{store.container}/k/{{export}}.{{ext}}", "test-az-key")
    assert files == [f"abfs://{store.container}/k/orders.csv"]
    assert_orders_arrived(store, "k/orders.csv", tmp_path)


def test_sas_token(
    demo_db: Path, azurite: AzuriteServer, store: StoreUnderTest, tmp_path: Path
) -> None:
    sas = generate_account_sas(
        AzuriteServer.ACCOUNT,
        AzuriteServer.KEY,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, delete=True, list=True,
                                         create=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip
    AzureBlobCredentials(
        account_name=AzuriteServer.ACCOUNT, sas_token=sas, blob_endpoint=azurite.blob_endpoint
    ).save("test-az-sas", overwrite=True)
    export_orders(demo_db, store.url("sas/{export}.{ext}"), "test-az-sas")
    assert_orders_arrived(store, "sas/orders.csv", tmp_path)


def test_wrong_key_fails_at_once_without_showing_it(
    demo_db: Path, azurite: AzuriteServer, store: StoreUnderTest
) -> None:
    wrong = "d3Jvbmcga2V5IGZvciB0aGUgdGVzdA=="
    AzureBlobCredentials(
        account_name=AzuriteServer.ACCOUNT, account_key=wrong, blob_endpoint=azurite.blob_endpoint
    ).save("test-az-wrong", overwrite=True)
    state = export(
        source={"url": f"sqlite:///{demo_db}", "table": "orders"},
        destination={"url": store.url("{export}.{ext}"), "block": "test-az-wrong"},
        return_state=True,
    )
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "Azure Blob Storage" in message and wrong not in message
    assert store.names() == []
