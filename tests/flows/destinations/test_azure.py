"""What only Azure Blob Storage has, against Azurite on loopback: the ways to sign in (the
AZURE_STORAGE_CONNECTION_STRING variable, an account key, a SAS token), the abfs://
scheme and encryption scopes. What every store does is in test_stores.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

from blocks import AzureBlobCredentials
from flows.export import export
from tests.flows.conftest import demo_dataset
from tests.flows.destinations.stores import StoreUnderTest, az_store, export_recorded
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


def test_an_encryption_scope_goes_on_every_blob_written(
    demo_db: Path, store: StoreUnderTest, tmp_path: Path
) -> None:
    """With `encryption_scope`, every request that writes data (the blocks and block lists
    of the temporary blobs, the empty marker) carries it, and every file is published by
    Copy Blob From URL carrying it too (Copy Blob takes no scope: its copy would get the
    container's default), its source read through a SAS made for it. Azurite accepts the
    header and keeps nothing of it (a blob's properties show no scope), so the requests as
    they reached it, recorded by a proxy in front of it, are what is checked."""
    recorded = export_recorded(
        store, demo_db, "test-az-scope", "scoped", encryption_scope="partner-files"
    )
    delivered, finals = recorded.delivered, recorded.published
    assert len(delivered) > 1
    assert set(store.names()) == finals
    prefix = f"/{AzuriteServer.ACCOUNT}/{store.container}/"
    writes: list[tuple[str, dict[str, str]]] = []
    copies: dict[str, dict[str, str]] = {}
    others: list[dict[str, str]] = []
    for method, path, headers in recorded.proxy.requests:
        parts = urlsplit(path)
        comp = parse_qs(parts.query).get("comp", [""])[0]
        headers = {key.lower(): value for key, value in headers.items()}
        if method == "PUT" and "x-ms-copy-source" in headers:
            copies[unquote(parts.path.removeprefix(prefix))] = headers
        elif method == "PUT" and comp in ("", "block", "blocklist"):
            writes.append((unquote(parts.path.removeprefix(prefix)), headers))
        else:
            others.append(headers)
    # one temporary blob per object (blocks and a block list; the empty marker: Put Blob)
    assert len({name for name, _ in writes}) == len(finals)
    assert all(headers.get("x-ms-encryption-scope") == "partner-files" for _, headers in writes)
    assert set(copies) == finals
    for headers in copies.values():
        assert headers["x-ms-encryption-scope"] == "partner-files"
        assert headers["x-ms-requires-sync"] == "True"
        assert "sig=" in headers["x-ms-copy-source"]  # a SAS that may read the source
    assert not [h for h in others if "x-ms-encryption-scope" in h]  # reads, deletes, lists
    path = tmp_path / "orders.jsonl"  # the parts, one after the other: the whole table
    path.write_bytes(b"".join(store.read(name) for name in delivered))
    assert_round_trip("jsonl", path, demo_dataset("orders"))


def test_a_file_too_large_for_a_scoped_copy_fails_saying_what_to_set(
    demo_db: Path, store: StoreUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copy Blob From URL takes at most 256 MiB; the limit is lowered to 0.25 MiB here (the
    orders are 0.37 MiB as JSON Lines) so the real copy path refuses a file in seconds."""
    import flows.destinations.azure as azure_store

    monkeypatch.setattr(azure_store, "SCOPED_COPY_MAX", 256 * 1024)
    block = store.save_block("test-az-scope-large", encryption_scope="partner-files")
    state = export(
        source={"url": f"sqlite:///{demo_db}", "table": "orders"},
        destination={"url": store.url("large/{export}.{ext}"), "block": block},
        format="jsonl",
        return_state=True,
    )
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert type(error).__name__ == "DeliveryError", error
    assert str(error) == (
        f"cannot deliver `az://{store.container}/large/orders.jsonl` to Azure Blob Storage: "
        "the file is 0.4 MiB, and Azure encrypts a server-side copy with an encryption scope "
        "only up to 0.25 MiB; set destination.max_file_mb to 0.25 or less"
    )
    assert store.names() == []  # nothing published, no temporary blob left


def test_parts_larger_than_a_scoped_copy_are_refused_before_any_row_is_read(
    demo_db: Path, store: StoreUnderTest
) -> None:
    """max_file_mb above 255 with a scoped block could never be published: refused before
    the source is read (no query, no temporary blob), naming the field and the largest
    value allowed. 255 itself is taken."""
    block = store.save_block("test-az-scope-parts", encryption_scope="partner-files")
    state = export(
        source={"url": f"sqlite:///{demo_db}", "table": "no_such_table"},
        destination={"url": store.url("big/{export}.{ext}"), "block": block, "max_file_mb": 300},
        format="csv",
        return_state=True,
    )
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert type(error).__name__ == "ConfigurationError", error
    assert error.field == "destination.max_file_mb"
    assert str(error) == (
        f"destination.max_file_mb: 300 is too large for the block `{block}`, which encrypts "
        "with the scope `partner-files`: Azure encrypts the copy that publishes a file with a "
        "scope only up to 256 MiB; use at most 255"
    )
    assert store.names() == []
    taken = export(
        source={"url": f"sqlite:///{demo_db}", "table": "orders"},
        destination={"url": store.url("big/{export}.{ext}"), "block": block, "max_file_mb": 255},
        format="csv",
    )
    assert taken.files == [store.url("big/orders-0001.csv")]
