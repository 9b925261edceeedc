"""What only Amazon S3 has, against moto's S3 server on loopback: the AWS_* environment path.
What every store does is in test_stores.py."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.export import export
from tests.flows.conftest import demo_dataset
from tests.flows.destinations.stores import StoreUnderTest, failing_source, leftovers, s3_store
from tests.flows.formats.test_roundtrip import assert_round_trip
from tests.servers.fault_proxy import FaultProxy
from tests.servers.s3 import S3Server

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def s3_store_(s3: S3Server) -> StoreUnderTest:
    return s3_store(s3)


def test_aws_variables_without_a_block(
    demo_db: Path, s3: S3Server, s3_store_: StoreUnderTest, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3Server.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3Server.SECRET_KEY)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    result = export(
        source={"url": f"sqlite:///{demo_db}", "table": "orders"},
        destination={"url": s3_store_.url("env/{export}.{ext}")},
    )
    assert result.files == [s3_store_.url("env/orders.csv")]
    path = s3_store_.download("env/orders.csv", tmp_path)
    assert_round_trip("csv", path, demo_dataset("orders"))


@pytest.mark.parametrize(
    ("codec", "tool"),
    [("zstd", "/usr/bin/zstd"), ("bz2", "/usr/bin/bzip2"), ("xz", "/usr/bin/xz")],
)
def test_a_compressed_object_is_read_back_by_its_codecs_tool(
    demo_db: Path, s3_store_: StoreUnderTest, tmp_path: Path, codec: str, tool: str
) -> None:
    """The object is the compressed file: its codec's own tool gives the local uncompressed
    export's bytes, the key ends in the codec's extension."""
    source = {"url": f"sqlite:///{demo_db}", "table": "orders"}
    local = export(source=source, destination={"url": f"{tmp_path}/{{export}}.{{ext}}"})
    result = export(
        source=source,
        destination={
            "url": s3_store_.url("packed/{export}.{ext}"),
            "block": s3_store_.save_block("test-s3-codecs"),
            "compression": codec,
        },
    )
    suffix = {"zstd": ".zst", "bz2": ".bz2", "xz": ".xz"}[codec]
    assert result.files == [s3_store_.url(f"packed/orders.csv{suffix}")]
    assert s3_store_.names() == [f"packed/orders.csv{suffix}"]
    path = s3_store_.download(f"packed/orders.csv{suffix}", tmp_path)
    assert result.bytes == path.stat().st_size
    plain = subprocess.run([tool, "-d", "-c", str(path)], check=True, capture_output=True).stdout
    assert plain == Path(local.files[0]).read_bytes()


@pytest.mark.usefixtures("no_retry_waits")
def test_s3_failing_for_good_mid_upload_is_never_called_a_missing_bucket(
    s3: S3Server, s3_store_: StoreUnderTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17: once S3 answered 500 to everything, the retry's bucket check read the 500 as
    a missing bucket ("create it"), a permanent error that stopped the third attempt."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # botocore's own retries, kept short
    proxy = FaultProxy(s3.endpoint_url)
    try:
        block = s3_store_.save_block("test-s3-down", proxy.url, part_size_mb=5)

        def after_the_first_part(_method: str, _path: str) -> bool:
            return any(s3_store_.is_upload_part(m, p) and st < 300 for m, p, st in proxy.log)

        proxy.fail(after_the_first_part, 500)
        state = export(
            source=failing_source(tmp_path, text="z" * 800, fail_at=0),  # 16 MB
            destination={"url": s3_store_.url("{export}.{ext}"), "block": block},
            return_state=True,
        )
        # Its abort failed too; the next run to the target aborts the upload it left open
        # (tests/flows/destinations/test_abandoned_uploads.py), and the bucket is left clean.
        proxy.rules.clear()
        export(
            source=failing_source(tmp_path / "later", text="later", fail_at=0),
            destination={"url": s3_store_.url("{export}.{ext}"), "block": block},
        )
    finally:
        proxy.stop()
    assert leftovers(s3_store_) == []
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "does not exist" not in message and "create it" not in message, message
    assert "retried" in message, message
    with get_client(sync_client=True) as client:
        [write] = [
            task
            for task in client.read_task_runs(
                flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
                )
            )
            if task.name.startswith("write-")
        ]
    assert write.run_count == 3  # the first attempt and both retries


def test_a_hostile_export_name_writes_no_object(demo_db: Path, s3_store_: StoreUnderTest) -> None:
    """Issue 24: `name: ../../other/planted` wrote the key `tenant-a/../../other/planted.csv`
    and `name: /abs/x` the key `tenant-a//abs/x.csv`, and a name too long for a file failed
    only when written: each run is refused before it reads a row, naming the field, and the
    bucket stays empty."""
    block = s3_store_.save_block("test-s3-names")
    hostile = {
        "../../other/planted": "name: `../../other/planted` has a `/`",
        "/abs/x": "name: `/abs/x` has a `/`",
        "n" * 250: "is 265 bytes of UTF-8; a file or folder name holds at most 255",
    }
    for name, says in hostile.items():
        state = export(
            source={"url": f"sqlite:///{demo_db}", "table": "orders"},
            destination={"url": s3_store_.url("tenant-a/{export}-{date}.{ext}"), "block": block},
            name=name,
            return_state=True,
        )
        assert state.is_failed(), name
        assert says in str(state.result(raise_on_failure=False)), name
    assert s3_store_.names() == []


def test_a_smaller_split_set_removes_the_earlier_runs_higher_parts(
    s3: S3Server, s3_store_: StoreUnderTest, tmp_path: Path
) -> None:
    """Issue 24: on S3 as in a folder, run B with fewer rows than run A published its parts
    1-M next to A's M+1..N, and its manifest listed M of the folder's N parts. Now the folder
    holds exactly B's parts and its manifest, which lists them all; other keys stay."""
    block = s3_store_.save_block("test-s3-parts")
    destination = {
        "url": s3_store_.url("out/{export}.{ext}"),
        "block": block,
        "max_file_mb": 0.25,
        "manifest": True,
    }
    source = failing_source(tmp_path, text="x" * 100, fail_at=0)  # 20,000 rows, ~2 MB
    first = export(source=source, destination=destination, name="rows")
    decoy = "out/rows-00099.csv"
    s3.client().put_object(Bucket=s3_store_.container, Key=decoy, Body=b"kept\n")
    fewer = {**source, "query": source["query"] + " where id <= 6000"}
    second = export(source=fewer, destination=destination, name="rows")
    assert 1 < len(second.files) < len(first.files)
    parts = [f"out/rows-{n:04d}.csv" for n in range(1, len(second.files) + 1)]
    assert s3_store_.names() == sorted([*parts, "out/rows.manifest.json", decoy])
    manifest = json.loads(s3_store_.read("out/rows.manifest.json"))
    assert [item["url"] for item in manifest["files"]] == [s3_store_.url(n) for n in parts]
    ids = [
        int(row["id"])
        for name in parts
        for row in csv.DictReader(io.StringIO(s3_store_.read(name).decode()))
    ]
    assert ids == list(range(1, 6001)) and manifest["rows"] == 6000
