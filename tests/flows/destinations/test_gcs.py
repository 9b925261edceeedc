"""What only Google Cloud Storage has, against gcp-storage-emulator on loopback: the
STORAGE_EMULATOR_HOST path, customer-managed keys. What every store does is in test_stores.py."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from flows.export import export
from tests.flows.conftest import demo_dataset
from tests.flows.destinations.stores import export_recorded, gcs_store
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


KMS_KEY = "projects/exports-test/locations/europe-west1/keyRings/exports/cryptoKeys/partner-files"


def test_a_customer_managed_key_encrypts_every_object_written(
    demo_db: Path, gcs: GcsServer, tmp_path: Path
) -> None:
    """With `kms_key_name`, every upload (the temporary parts, the manifest, the marker) asks
    GCS to encrypt with the key (`kmsKeyName`), and so does every server-side copy that
    publishes them (`destinationKmsKeyName`: a rewrite without it would use the bucket's
    default key). gcp-storage-emulator keeps no key in its object metadata, so the requests
    as they reached it, recorded by a proxy in front of it, are what is checked."""
    store = gcs_store(gcs)
    recorded = export_recorded(store, demo_db, "test-gcs-kms", "cmek", kms_key_name=KMS_KEY)
    delivered, finals = recorded.delivered, recorded.published
    assert len(delivered) > 1
    assert set(store.names()) == finals
    requests = [urlsplit(path) for _, path, _ in recorded.proxy.log]
    uploads = [parse_qs(r.query) for r in requests if r.path.startswith("/upload/")]
    starts = [query for query in uploads if "upload_id" not in query]  # not a session's chunk
    assert len(starts) == len(finals)  # one upload per object: its temporary name
    assert all(query["kmsKeyName"] == [KMS_KEY] for query in starts), starts
    rewrites = {
        unquote(r.path.split("/rewriteTo/b/", 1)[1].split("/o/", 1)[1]): parse_qs(r.query)
        for r in requests
        if "/rewriteTo/" in r.path
    }
    assert set(rewrites) == finals
    assert all(query["destinationKmsKeyName"] == [KMS_KEY] for query in rewrites.values())
    path = tmp_path / "orders.jsonl"  # the parts, one after the other: the whole table
    path.write_bytes(b"".join(store.read(name) for name in delivered))
    assert_round_trip("jsonl", path, demo_dataset("orders"))
