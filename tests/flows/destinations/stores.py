"""The object stores as the shared destination tests see them: one real server each, a fresh
bucket or container, an independent client to read back with, and what their upload requests
look like on the wire (for the fault proxy).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prefect.settings import PREFECT_API_URL

from blocks import AzureBlobCredentials, GcsCredentials, S3Credentials
from flows.export import export
from tests.servers.azurite import AzuriteServer
from tests.servers.fault_proxy import FaultProxy
from tests.servers.gcs import GcsServer
from tests.servers.s3 import S3Server

STORE_KEYS = ("s3", "gcs", "az")


@dataclass
class StoreUnderTest:
    """One store's server and a fresh, empty bucket (or container) on it."""

    key: str
    scheme: str
    name: str
    container: str
    endpoint_url: str  # the server's base URL; a proxy in front of it takes its place
    make_block: Callable[[str, dict[str, Any]], Any]
    list_names: Callable[[], list[str]]
    read: Callable[[str], bytes]
    is_upload_part: Callable[[str, str], bool]
    count_uploads: Callable[[list[tuple[str, str, int]]], int]
    secret: str
    find_leftovers: Callable[[], list[str]]  # what `leftovers` reports for this container

    @property
    def block_type(self) -> str:
        return {"s3": "S3Credentials", "gcs": "GcsCredentials", "az": "AzureBlobCredentials"}[
            self.key
        ]

    @property
    def container_word(self) -> str:
        return "container" if self.key == "az" else "bucket"

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.container}/{path}"

    def save_block(self, name: str, endpoint_url: str | None = None, **options: Any) -> str:
        """Save this store's credentials block for the server (or a proxy in front of it)."""
        block = self.make_block(endpoint_url or self.endpoint_url, options)
        block.save(name, overwrite=True)
        return name

    def names(self) -> list[str]:
        """Every object in the container, temporary ones included."""
        return sorted(self.list_names())

    def download(self, name: str, folder: Path) -> Path:
        path = folder / name.replace("/", "_")
        path.write_bytes(self.read(name))
        return path


def s3_store(server: S3Server) -> StoreUnderTest:
    client: Any = server.client()
    bucket = f"exports-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)

    def names() -> list[str]:
        listing = client.list_objects_v2(Bucket=bucket)
        # Multipart uploads never completed nor aborted too: their parts are stored (billed).
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return [item["Key"] for item in listing.get("Contents", [])] + [
            f"{upload['Key']} (open multipart upload)" for upload in uploads
        ]

    def block(endpoint: str, options: dict[str, Any]) -> S3Credentials:
        return S3Credentials(
            aws_access_key_id=S3Server.ACCESS_KEY,
            aws_secret_access_key=S3Server.SECRET_KEY,
            endpoint_url=endpoint,
            **options,
        )

    return StoreUnderTest(
        key="s3",
        scheme="s3",
        name="Amazon S3",
        container=bucket,
        endpoint_url=server.endpoint_url,
        make_block=block,
        list_names=names,
        read=lambda key: client.get_object(Bucket=bucket, Key=key)["Body"].read(),
        is_upload_part=lambda method, path: method == "PUT" and "partNumber=" in path,
        count_uploads=lambda log: sum(1 for m, p, _ in log if m == "POST" and "?uploads" in p),
        secret=S3Server.SECRET_KEY,
        find_leftovers=lambda: s3_leftovers(server, [bucket]),
    )


def gcs_store(server: GcsServer) -> StoreUnderTest:
    client = server.client()
    bucket = f"exports-{uuid.uuid4().hex[:12]}"
    client.create_bucket(bucket)

    def block(endpoint: str, options: dict[str, Any]) -> GcsCredentials:
        return GcsCredentials(anonymous=True, endpoint_url=endpoint, **options)

    def upload_starts(log: list[tuple[str, str, int]]) -> int:
        return sum(1 for m, p, _ in log if "uploadType=resumable" in p and "upload_id=" not in p)

    return StoreUnderTest(
        key="gcs",
        scheme="gs",
        name="Google Cloud Storage",
        container=bucket,
        endpoint_url=server.endpoint_url,
        make_block=block,
        list_names=lambda: [blob.name for blob in client.list_blobs(bucket)],
        read=lambda name: client.bucket(bucket).blob(name).download_as_bytes(),
        # gcsfs sends each chunk of a resumable upload as a POST to the upload's session.
        is_upload_part=lambda _method, path: "upload_id=" in path,
        count_uploads=upload_starts,
        secret="",
        find_leftovers=lambda: gcs_leftovers(server, [bucket]),
    )


def az_store(server: AzuriteServer) -> StoreUnderTest:
    client = server.client()
    container_name = f"exports-{uuid.uuid4().hex[:12]}"
    container = client.create_container(container_name)

    def block(endpoint: str, options: dict[str, Any]) -> AzureBlobCredentials:
        blob_endpoint = f"{endpoint}/{AzuriteServer.ACCOUNT}"
        return AzureBlobCredentials(
            connection_string=server.connection_string(blob_endpoint), **options
        )

    def names() -> list[str]:
        # Uncommitted blobs too: blocks staged by an upload that never completed.
        return [blob.name for blob in container.list_blobs(include=["uncommittedblobs"])]

    def staged_blobs(log: list[tuple[str, str, int]]) -> int:
        return len({p.partition("?")[0] for m, p, _ in log if is_block(m, p)})

    return StoreUnderTest(
        key="az",
        scheme="az",
        name="Azure Blob Storage",
        container=container_name,
        endpoint_url=f"http://127.0.0.1:{server.port}",
        make_block=block,
        list_names=names,
        read=lambda name: container.download_blob(name).readall(),
        is_upload_part=is_block,
        count_uploads=staged_blobs,
        secret=AzuriteServer.KEY,
        find_leftovers=lambda: azurite_leftovers(server, [container_name]),
    )


# A temporary name of an export (flows/destinations/store.py `temporary_path`):
# `.NAME.<run id>-<8 hex>.tmp` next to its target.
TEMPORARY_NAME = re.compile(r"(?:^|/)\.[^/]+\.[^/]+-[0-9a-f]{8}\.tmp$")


def leftovers(store: StoreUnderTest) -> list[str]:
    """What a write left in the store's bucket that should not be there (see `s3_leftovers`,
    `gcs_leftovers`, `azurite_leftovers`); [] when clean."""
    return store.find_leftovers()


def all_leftovers(
    s3: S3Server | None = None, gcs: GcsServer | None = None, azurite: AzuriteServer | None = None
) -> list[str]:
    """Leftovers in every bucket and container of the servers given (None: not started)."""
    found: list[str] = []
    if s3 is not None:
        found += s3_leftovers(s3)
    if gcs is not None:
        found += gcs_leftovers(gcs)
    if azurite is not None:
        found += azurite_leftovers(azurite)
    return found


def s3_leftovers(server: S3Server, buckets: list[str] | None = None) -> list[str]:
    """Open multipart uploads (billed parts no object shows) and temporary objects, in
    `buckets` (None: every bucket on the server), as `s3://bucket/key (what)`."""
    client: Any = server.client()
    if buckets is None:
        buckets = [bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])]
    found: list[str] = []
    for bucket in buckets:
        uploads = client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket)
        for page in uploads:
            found += [
                f"s3://{bucket}/{upload['Key']} (open multipart upload {upload['UploadId']})"
                for upload in page.get("Uploads", [])
            ]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            found += [
                f"s3://{bucket}/{item['Key']} (temporary object)"
                for item in page.get("Contents", [])
                if TEMPORARY_NAME.search(item["Key"])
            ]
    return found


def gcs_leftovers(server: GcsServer, buckets: list[str] | None = None) -> list[str]:
    """Temporary objects in `buckets` (None: every bucket on the server), as
    `gs://bucket/name (what)`. Resumable upload sessions are not listed: GCS has no API that
    lists them (they expire after a week), and gcp-storage-emulator keeps every session that
    was not finished, even one the client cancelled (it answers DELETE of a session URI 501),
    so its state says nothing about the product."""
    client = server.client()
    names = buckets if buckets is not None else [bucket.name for bucket in client.list_buckets()]
    return [
        f"gs://{bucket}/{blob.name} (temporary object)"
        for bucket in names
        for blob in client.list_blobs(bucket)
        if TEMPORARY_NAME.search(blob.name)
    ]


def azurite_leftovers(server: AzuriteServer, containers: list[str] | None = None) -> list[str]:
    """Uncommitted block lists (a blob with staged blocks and no committed ones is listed only
    with `uncommittedblobs`; a committed blob may carry uncommitted blocks too: Get Block List
    is asked for every blob) and temporary blobs, in `containers` (None: all), as
    `az://container/name (what)`."""
    client = server.client()
    if containers is None:
        containers = [container.name for container in client.list_containers()]
    found: list[str] = []
    for name in containers:
        container = client.get_container_client(name)
        for blob in container.list_blobs(include=["uncommittedblobs"]):
            _, uncommitted = container.get_blob_client(blob.name).get_block_list("uncommitted")
            if uncommitted:
                found.append(f"az://{name}/{blob.name} ({len(uncommitted)} uncommitted blocks)")
            elif TEMPORARY_NAME.search(blob.name):
                found.append(f"az://{name}/{blob.name} (temporary blob)")
    return found


def is_block(method: str, path: str) -> bool:
    """Put Block (`?comp=block`), not Put Block List (`?comp=blocklist`)."""
    return method == "PUT" and parse_qs(urlsplit(path).query).get("comp") == ["block"]


def failed_message(**parameters: Any) -> str:
    """The error an export fails with (it must fail)."""
    return str(failed_error(**parameters))


def failed_error(**parameters: Any) -> BaseException:
    """The exception an export fails with (it must fail), with its facts."""
    state = export(return_state=True, **parameters)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, BaseException)
    return error


def failing_source(folder: Path, *, text: str, fail_at: int) -> dict[str, Any]:
    """20,000 rows of `text`; the query fails when SQLite reaches row `fail_at`
    (json_extract of a non-JSON text raises); `fail_at=0` never fails."""
    folder.mkdir(parents=True, exist_ok=True)
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


@dataclass(frozen=True)
class RecordedExport:
    """An export whose every request to the store went through a recording proxy."""

    delivered: list[str]  # the files' names in the container, in order
    published: set[str]  # the files, the manifest and the marker
    proxy: FaultProxy  # stopped: its `log` and `requests` are what reached the store


def export_recorded(
    store: StoreUnderTest, db: Path, block_name: str, folder: str, **block_options: Any
) -> RecordedExport:
    """The demo's orders as JSON Lines parts of at most 0.1 MB, with a manifest and a
    _SUCCESS marker, into `folder`, through a proxy that records the requests: where an
    emulator accepts a header or parameter and keeps nothing of it (a customer-managed key,
    an encryption scope), what reached it is what a test can check."""
    proxy = FaultProxy(store.endpoint_url)
    try:
        block = store.save_block(block_name, proxy.url, **block_options)
        result = export(
            source={"url": f"sqlite:///{db}", "table": "orders", "chunk_rows": 100},
            destination={
                "url": store.url(f"{folder}/{{export}}.{{ext}}"),
                "block": block,
                "max_file_mb": 0.1,
                "manifest": True,
                "done_marker": "_SUCCESS",
            },
            format="jsonl",
        )
    finally:
        proxy.stop()
    delivered = [url.removeprefix(store.url("")) for url in result.files]
    published = {*delivered, f"{folder}/orders.manifest.json", f"{folder}/_SUCCESS"}
    return RecordedExport(delivered, published, proxy)


@dataclass
class MemoryReport:
    """Peak RSS growth of exports of two sizes over a warm process (a tiny export first)."""

    sizes_mib: list[float]
    growth_mb: list[float]
    baseline_mb: float
    peak_mb: float
    bytes: list[int]

    def line(self) -> str:
        return (
            f"{self.sizes_mib[0]:.0f} MiB → peak RSS +{self.growth_mb[0]:.0f} MB, "
            f"{self.sizes_mib[1]:.0f} MiB → +{self.growth_mb[1]:.0f} MB (process peak "
            f"{self.peak_mb:.0f} MB after a warm-up at {self.baseline_mb:.0f} MB)"
        )


def measure_large_exports(
    destination: dict[str, Any], folder: Path, rows: tuple[int, int] = (110_000, 220_000)
) -> MemoryReport:
    """Export `rows` rows of 510 bytes (about 53 and 106 MiB of CSV by default) to
    `destination` in a fresh process, and read its peak RSS (VmHWM) after each run."""
    db = folder / "large.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("create table t (id integer primary key, v text)")
        values = ((i, f"{i:010d}" * 50) for i in range(1, max(rows) + 1))
        conn.executemany("insert into t values (?, ?)", values)
    conn.close()
    # Small chunks, so that what could grow is the upload, not the rows in flight.
    sources = [
        {"url": f"sqlite:///{db}", "query": f"select * from t limit {n}", "chunk_rows": 2_000}
        for n in (10, *rows)
    ]
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    done = subprocess.run(
        [sys.executable, "-c", _LARGE_EXPORT_SCRIPT, json.dumps(destination)]
        + [json.dumps(source) for source in sources],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    runs = report["runs"]
    return MemoryReport(
        sizes_mib=[run["bytes"] / 1024 / 1024 for run in runs],
        growth_mb=[run["peak_mb"] - report["baseline_mb"] for run in runs],
        baseline_mb=report["baseline_mb"],
        peak_mb=max(run["peak_mb"] for run in runs),
        bytes=[run["bytes"] for run in runs],
    )


_LARGE_EXPORT_SCRIPT = """
import json, sys
from flows.export import export

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

destination, warm_up, *sources = (json.loads(arg) for arg in sys.argv[1:])
export(source=warm_up, destination=destination)  # Prefect, the store's client, Arrow loaded
report = {"baseline_mb": peak_mb(), "runs": []}
for source in sources:
    result = export(source=source, destination=destination)
    report["runs"].append({"peak_mb": peak_mb(), "bytes": result.bytes})
print(json.dumps(report))
"""
