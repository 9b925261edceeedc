"""Delivery to Amazon S3 through s3fs, against moto's S3 server on loopback.

What a user checks: the object at the final key holds every cell (read back with boto3,
not s3fs), no temporary object is left, and bad buckets or blocks fail with a clear message.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL

from blocks import S3Credentials
from flows.export import export
from flows.types import FILE_EXTENSIONS, ExportFormat
from tests.flows.conftest import demo_dataset
from tests.flows.test_roundtrip import assert_round_trip
from tests.servers import FaultProxy, S3Server

FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl", "json", "xml", "parquet")


def keys(s3: S3Server, bucket: str) -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
    return sorted(item["Key"] for item in listing.get("Contents", []))


def download(s3: S3Server, bucket: str, key: str, folder: Path) -> Path:
    path = folder / key.replace("/", "_")
    body = s3.client().get_object(Bucket=bucket, Key=key)["Body"]  # type: ignore[attr-defined]
    path.write_bytes(body.read())
    return path


def failing_source(folder: Path, *, text: str, fail_at: int) -> dict[str, Any]:
    """20,000 rows of `text`; the query fails when SQLite reaches row `fail_at`
    (json_extract of a non-JSON text raises)."""
    db = folder / "rows.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("create table t (id integer primary key, v text)")
        conn.executemany("insert into t values (?, ?)", ((i, text) for i in range(1, 20_001)))
    conn.close()
    query = (
        f"select id, case when id = {fail_at} then json_extract('not json', '$') "
        "else v end as v from t"
    )
    return {"url": f"sqlite:///{db}", "query": query, "chunk_rows": 1000}


@pytest.fixture
def s3_block(s3: S3Server) -> str:
    return save_s3_block("test-s3", s3.endpoint_url)


def save_s3_block(name: str, endpoint_url: str, **options: Any) -> str:
    """Save an S3Credentials block for the test server (or a proxy in front of it)."""
    S3Credentials(
        aws_access_key_id=S3Server.ACCESS_KEY,
        aws_secret_access_key=S3Server.SECRET_KEY,
        endpoint_url=endpoint_url,
        **options,
    ).save(name, overwrite=True)
    return name


class TestRoundTrip:
    @pytest.mark.parametrize("fmt", FORMATS)
    def test_every_cell_arrives(
        self, demo_db: Path, s3: S3Server, s3_bucket: str, s3_block: str, tmp_path: Path,
        fmt: ExportFormat,
    ) -> None:  # fmt: skip
        result = export(
            source={"url": f"sqlite:///{demo_db}", "table": "orders"},
            destination={"url": f"s3://{s3_bucket}/daily/{{export}}.{{ext}}", "block": s3_block},
            format=fmt,
        )
        key = f"daily/orders.{FILE_EXTENSIONS[fmt]}"
        assert result.files == [f"s3://{s3_bucket}/{key}"]
        assert keys(s3, s3_bucket) == [key], "a temporary object was left behind"
        path = download(s3, s3_bucket, key, tmp_path)
        assert result.bytes == path.stat().st_size
        assert_round_trip(fmt, path, demo_dataset("orders"))

    def test_parts_and_gzip(
        self, demo_db: Path, s3: S3Server, s3_bucket: str, s3_block: str, tmp_path: Path
    ) -> None:
        local = export(
            source={"url": f"sqlite:///{demo_db}", "table": "orders"},
            destination={"url": f"{tmp_path}/local/{{export}}.{{ext}}", "max_file_mb": 0.05},
            format="jsonl",
        )
        remote = export(
            source={"url": f"sqlite:///{demo_db}", "table": "orders"},
            destination={
                "url": f"s3://{s3_bucket}/parts/{{export}}.{{ext}}",
                "block": s3_block,
                "max_file_mb": 0.05,
                "compression": "gzip",
            },
            format="jsonl",
        )
        assert len(remote.files) == len(local.files) > 1
        for remote_url, local_path in zip(remote.files, local.files, strict=True):
            key = remote_url.removeprefix(f"s3://{s3_bucket}/")
            data = gzip.decompress(download(s3, s3_bucket, key, tmp_path).read_bytes())
            assert data == Path(local_path).read_bytes()
        assert len(keys(s3, s3_bucket)) == len(remote.files)


class TestEnvironment:
    def test_aws_variables_without_a_block(
        self, demo_db: Path, s3: S3Server, s3_bucket: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3Server.ACCESS_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3Server.SECRET_KEY)
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint_url)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        result = export(
            source={"url": f"sqlite:///{demo_db}", "table": "orders"},
            destination={"url": f"s3://{s3_bucket}/env/{{export}}.{{ext}}"},
        )
        assert result.files == [f"s3://{s3_bucket}/env/orders.csv"]
        path = download(s3, s3_bucket, "env/orders.csv", tmp_path)
        assert_round_trip("csv", path, demo_dataset("orders"))


class TestFailures:
    def test_missing_bucket_is_named(self, demo_db: Path, s3_block: str) -> None:
        state = export(
            source={"url": f"sqlite:///{demo_db}", "table": "orders"},
            destination={"url": "s3://no-such-bucket-here/{export}.{ext}", "block": s3_block},
            return_state=True,
        )
        assert state.is_failed()
        message = str(state.result(raise_on_failure=False))
        assert "bucket `no-such-bucket-here` does not exist in Amazon S3" in message

    def test_missing_block_is_named(self, demo_db: Path, s3_bucket: str) -> None:
        state = export(
            source={"url": f"sqlite:///{demo_db}", "table": "orders"},
            destination={"url": f"s3://{s3_bucket}/{{export}}.{{ext}}", "block": "nope"},
            return_state=True,
        )
        assert state.is_failed()
        message = str(state.result(raise_on_failure=False))
        assert "destination.block: no saved S3Credentials block named `nope`" in message

    def test_error_mid_export_leaves_no_object(
        self, s3: S3Server, s3_bucket: str, s3_block: str, tmp_path: Path
    ) -> None:
        state = export(
            source=failing_source(tmp_path, text="x", fail_at=10_000),
            destination={"url": f"s3://{s3_bucket}/{{export}}.{{ext}}", "block": s3_block},
            return_state=True,
        )
        assert state.is_failed()
        assert keys(s3, s3_bucket) == [], "a failed run left objects behind"

    def test_multipart_upload_is_aborted_when_the_export_fails(
        self, s3: S3Server, s3_bucket: str, tmp_path: Path
    ) -> None:
        """12 MB of rows in 5 MiB parts: two parts are up when row 15,000 fails."""
        save_s3_block("test-s3-small-parts", s3.endpoint_url, part_size_mb=5)
        state = export(
            source=failing_source(tmp_path, text="x" * 800, fail_at=15_000),
            destination={
                "url": f"s3://{s3_bucket}/{{export}}.{{ext}}",
                "block": "test-s3-small-parts",
            },
            return_state=True,
        )
        assert state.is_failed()
        client = s3.client()
        assert keys(s3, s3_bucket) == [], "a failed run left objects behind"
        uploads = client.list_multipart_uploads(Bucket=s3_bucket)  # type: ignore[attr-defined]
        assert uploads.get("Uploads", []) == [], "the multipart upload was not aborted"


LARGE_EXPORT_SCRIPT = """
import json, sys
from flows.export import export

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

warm_up, destination, *sources = (json.loads(arg) for arg in sys.argv[1:])
export(source=warm_up, destination=destination)  # Prefect, s3fs and Arrow loaded and used
report = {"baseline_mb": peak_mb(), "runs": []}
for source in sources:
    result = export(source=source, destination=destination)
    report["runs"].append({"peak_mb": peak_mb(), "bytes": result.bytes, "files": result.files})
print(json.dumps(report))
"""


class TestLargeUpload:
    def test_50_and_100_mb_go_up_in_parts_with_flat_memory(
        self, s3: S3Server, s3_bucket: str, s3_block: str, tmp_path: Path
    ) -> None:
        db = tmp_path / "large.sqlite"
        with sqlite3.connect(db) as conn:
            conn.execute("create table t (id integer primary key, v text)")
            rows = ((i, f"{i:010d}" * 50) for i in range(1, 220_001))
            conn.executemany("insert into t values (?, ?)", rows)
        conn.close()
        url = f"sqlite:///{db}"
        # Small chunks, so that what grows is the upload, not the rows in flight.
        sources = [
            {"url": url, "query": f"select * from t limit {n}", "chunk_rows": 2_000}
            for n in (10, 110_000, 220_000)
        ]
        destination = {"url": f"s3://{s3_bucket}/large/{{export}}.{{ext}}", "block": s3_block}
        env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
        done = subprocess.run(
            [sys.executable, "-c", LARGE_EXPORT_SCRIPT, json.dumps(sources[0]),
             json.dumps(destination)] + [json.dumps(s) for s in sources[1:]],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        report = json.loads(done.stdout.strip().splitlines()[-1])
        baseline = report["baseline_mb"]
        sizes = [run["bytes"] / 1024 / 1024 for run in report["runs"]]
        growth = [run["peak_mb"] - baseline for run in report["runs"]]
        print(  # noqa: T201 - the numbers a reader of the test output wants
            f"\nS3 uploads in 8 MiB parts: {sizes[0]:.0f} MiB → peak RSS +{growth[0]:.0f} MB, "
            f"{sizes[1]:.0f} MiB → +{growth[1]:.0f} MB (process peak "
            f"{report['runs'][1]['peak_mb']:.0f} MB after a warm-up at {baseline:.0f} MB)"
        )
        assert sizes[0] > 50 and sizes[1] > 100
        # Flat: doubling the file adds less than two parts. (About 40 MB of the growth is
        # s3fs/aiobotocore's fixed cost of a multipart upload, measured with 5/8/16 MiB parts.)
        assert growth[1] - growth[0] < 16, report
        assert growth[1] < sizes[1], report
        head = s3.client().head_object(Bucket=s3_bucket, Key="large/export.csv", PartNumber=1)  # type: ignore[attr-defined]
        size, part = report["runs"][1]["bytes"], 8 * 1024 * 1024
        # s3fs folds a last piece under S3's 5 MiB minimum into the part before it.
        assert head["PartsCount"] in (size // part, math.ceil(size / part))


def is_upload_part(method: str, path: str) -> bool:
    return method == "PUT" and "partNumber=" in path


def upload_starts(proxy: FaultProxy) -> int:
    """How many multipart uploads were started through the proxy."""
    return sum(1 for m, p, _ in proxy.log if m == "POST" and p.endswith("?uploads"))


class TestServerErrors:
    """Faults injected by a proxy in front of the real S3 server."""

    @pytest.fixture
    def proxy(self, s3: S3Server) -> Iterator[FaultProxy]:
        proxy = FaultProxy(s3.endpoint_url)
        save_s3_block("test-s3-proxy", proxy.url, part_size_mb=5)
        yield proxy
        proxy.stop()

    def test_503_then_ok_succeeds_through_the_retry(
        self, s3: S3Server, s3_bucket: str, proxy: FaultProxy, tmp_path: Path
    ) -> None:
        proxy.fail(is_upload_part, 503, times=2)
        source = failing_source(tmp_path, text="y" * 800, fail_at=0)  # fails at no row
        result = export(
            source=source,
            destination={"url": f"s3://{s3_bucket}/{{export}}.{{ext}}", "block": "test-s3-proxy"},
        )
        statuses = [status for method, path, status in proxy.log if is_upload_part(method, path)]
        assert statuses[:2] == [503, 503] and statuses[2:] and set(statuses[2:]) == {200}
        path = download(s3, s3_bucket, "export.csv", tmp_path)
        assert path.stat().st_size == result.bytes and result.rows == 20_000
        assert keys(s3, s3_bucket) == ["export.csv"]

    @staticmethod
    def failed_export(bucket: str, folder: Path) -> str:
        """Export 16 MB through the proxy; the run must fail: its error message."""
        state = export(
            source=failing_source(folder, text="z" * 800, fail_at=0),
            destination={"url": f"s3://{bucket}/{{export}}.{{ext}}", "block": "test-s3-proxy"},
            return_state=True,
        )
        assert state.is_failed()
        return str(state.result(raise_on_failure=False))

    def test_500_on_every_part_fails_cleanly(
        self, s3: S3Server, s3_bucket: str, proxy: FaultProxy, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # botocore's own retries, kept short
        proxy.fail(is_upload_part, 500)
        message = self.failed_export(s3_bucket, tmp_path)
        assert f"cannot deliver `s3://{s3_bucket}/export.csv` to Amazon S3" in message
        assert "retried" in message
        client = s3.client()
        assert keys(s3, s3_bucket) == []
        uploads = client.list_multipart_uploads(Bucket=s3_bucket)  # type: ignore[attr-defined]
        assert uploads.get("Uploads", []) == [], "multipart uploads were left open"
        assert upload_starts(proxy) == 3  # the write task and its two retries

    def test_403_fails_at_once(
        self, s3: S3Server, s3_bucket: str, proxy: FaultProxy, tmp_path: Path
    ) -> None:
        proxy.fail(is_upload_part, 403)
        message = self.failed_export(s3_bucket, tmp_path)
        assert "to Amazon S3" in message and "credentials may write there" in message
        assert S3Server.SECRET_KEY not in message
        assert upload_starts(proxy) == 1, "a permanent error was retried"
        assert keys(s3, s3_bucket) == []
