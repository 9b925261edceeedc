"""Delivery to Google Cloud Storage through gcsfs, against gcp-storage-emulator on loopback.

Objects are read back with google-cloud-storage (not gcsfs) and compared cell by cell.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from blocks import GcsCredentials
from flows.export import export
from flows.types import FILE_EXTENSIONS, ExportFormat
from tests.destinations.test_s3 import failing_source
from tests.flows.conftest import demo_dataset
from tests.flows.test_roundtrip import assert_round_trip
from tests.servers import GcsServer

FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl", "json", "xml", "parquet")


def names(gcs: GcsServer, bucket: str) -> list[str]:
    return sorted(blob.name for blob in gcs.client().list_blobs(bucket))


def download(gcs: GcsServer, bucket: str, name: str, folder: Path) -> Path:
    path = folder / name.replace("/", "_")
    path.write_bytes(gcs.client().bucket(bucket).blob(name).download_as_bytes())
    return path


@pytest.fixture
def gcs_block(gcs: GcsServer) -> str:
    GcsCredentials(anonymous=True, endpoint_url=gcs.endpoint_url).save("test-gcs", overwrite=True)
    return "test-gcs"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_cell_arrives(
    demo_db: Path, gcs: GcsServer, gcs_bucket: str, gcs_block: str, tmp_path: Path,
    fmt: ExportFormat,
) -> None:  # fmt: skip
    result = export(
        source={"url": f"sqlite:///{demo_db}", "table": "orders"},
        destination={"url": f"gs://{gcs_bucket}/daily/{{export}}.{{ext}}", "block": gcs_block},
        format=fmt,
    )
    name = f"daily/orders.{FILE_EXTENSIONS[fmt]}"
    assert result.files == [f"gs://{gcs_bucket}/{name}"]
    assert names(gcs, gcs_bucket) == [name], "a temporary object was left behind"
    path = download(gcs, gcs_bucket, name, tmp_path)
    assert result.bytes == path.stat().st_size
    assert_round_trip(fmt, path, demo_dataset("orders"))


def test_emulator_host_variable_without_a_block(
    demo_db: Path, gcs: GcsServer, gcs_bucket: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.endpoint_url)
    result = export(
        source={"url": f"sqlite:///{demo_db}", "table": "orders"},
        destination={"url": f"gcs://{gcs_bucket}/env/{{export}}.{{ext}}"},
    )
    assert names(gcs, gcs_bucket) == ["env/orders.csv"]
    assert result.files[0].endswith(f"{gcs_bucket}/env/orders.csv")
    assert_round_trip("csv", download(gcs, gcs_bucket, "env/orders.csv", tmp_path),
                      demo_dataset("orders"))  # fmt: skip


def test_missing_bucket_is_named(demo_db: Path, gcs_block: str) -> None:
    state = export(
        source={"url": f"sqlite:///{demo_db}", "table": "orders"},
        destination={"url": "gs://no-such-bucket-here/{export}.{ext}", "block": gcs_block},
        return_state=True,
    )
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "bucket `no-such-bucket-here` does not exist in Google Cloud Storage" in message


def test_error_mid_export_leaves_no_object(
    gcs: GcsServer, gcs_bucket: str, gcs_block: str, tmp_path: Path
) -> None:
    # 12 MB before the failing row: resumable upload chunks are already sent.
    state = export(
        source=failing_source(tmp_path, text="x" * 800, fail_at=15_000),
        destination={"url": f"gs://{gcs_bucket}/{{export}}.{{ext}}", "block": gcs_block},
        return_state=True,
    )
    assert state.is_failed()
    assert names(gcs, gcs_bucket) == [], "a failed run left objects behind"
