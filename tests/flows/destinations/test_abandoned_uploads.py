"""Uploads left open when a store fails for good mid-upload and the abort fails too (issue 17,
defect 1b): the next write to the same target throws away those of runs that are over, and a
running run's upload stays. Against each store's real server, behind the fault proxy."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Crashed, Running

from flows.export import export
from tests.flows.destinations.stores import (
    StoreUnderTest,
    all_leftovers,
    failing_source,
    leftovers,
    s3_store,
)
from tests.servers.fault_proxy import DROP, DroppingFaultProxy, FaultProxy
from tests.servers.s3 import S3Server

pytestmark = pytest.mark.usefixtures("prefect_api")

# Azure's SDK waits 15 s and more before a retry; these tests need no real back-off.
FAST_RETRIES: dict[str, dict[str, Any]] = {"az": {"retry_backoff_s": 0.2, "retries": 2}}
# gcsfs retries a 5xx six times over about 31 s, per request (an export failing on 500 takes
# minutes): GCS fails with 403 instead, an error neither gcsfs nor the task retries. What is
# left behind does not depend on the status.
FAILS_WITH = {"s3": 500, "gcs": 403, "az": 500}
SERVER_FIXTURES = {"s3": "s3", "gcs": "gcs", "az": "azurite"}


@pytest.mark.usefixtures("no_retry_waits")
def test_an_upload_whose_abort_failed_is_thrown_away_by_the_next_run(
    store: StoreUnderTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17: when the store failed for good mid-upload, the abort failed too, and nothing
    tried again: S3's multipart upload stayed open and Azure's staged blocks uncommitted (billed
    until a lifecycle rule, or a week, removes them). The next run to the same target, once
    the failed run is over, throws them away; its own file is the one published."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # botocore's own retries, kept short
    proxy = FaultProxy(store.endpoint_url)
    try:
        block = store.save_block(
            f"test-{store.key}-down", proxy.url, part_size_mb=5, **FAST_RETRIES.get(store.key, {})
        )

        def after_the_first_part(_method: str, _path: str) -> bool:
            return any(store.is_upload_part(m, p) and st < 400 for m, p, st in proxy.log)

        proxy.fail(after_the_first_part, FAILS_WITH[store.key])
        first = export(
            source=failing_source(tmp_path, text="z" * 800, fail_at=0),  # 16 MB
            destination={"url": store.url("{export}.{ext}"), "block": block},
            return_state=True,
        )
        assert first.is_failed()
        if store.key == "gcs":
            # The failed write cancelled its resumable session (DELETE of the session URI),
            # and the store refused that too. GCS lists no sessions: nothing can find it later.
            cancels = [st for m, p, st in proxy.log if m == "DELETE" and "upload_id=" in p]
            assert cancels == [FAILS_WITH["gcs"]], proxy.log
            assert store.names() == [], "no object at the final or the temporary path"
        else:
            assert leftovers(store), "the abort failed: an upload should still be open"

        proxy.rules.clear()  # the store is back; the first run is Failed
        later = export(
            source=failing_source(tmp_path / "later", text="later", fail_at=0),
            destination={"url": store.url("{export}.{ext}"), "block": block},
        )
    finally:
        proxy.stop()
    assert leftovers(store) == []
    assert store.names() == ["export.csv"]
    assert len(store.read("export.csv")) == later.bytes


@pytest.mark.usefixtures("no_retry_waits")
def test_an_s3_upload_whose_connections_dropped_is_aborted_by_the_next_run(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17: S3's connections dropped for good mid-upload (every request once the first
    part is in): the abort was lost with them, and the multipart upload stayed open. The
    next run to the same target aborts it."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # botocore's own retries, kept short
    store = s3_store(s3)
    proxy = DroppingFaultProxy(store.endpoint_url)
    try:
        block = store.save_block("test-s3-dropping", proxy.url, part_size_mb=5)

        def after_the_first_part(_method: str, _path: str) -> bool:
            return any(store.is_upload_part(m, p) and 0 < st < 300 for m, p, st in proxy.log)

        proxy.fail(after_the_first_part, DROP)
        first = export(
            source=failing_source(tmp_path, text="z" * 800, fail_at=0),  # 16 MB
            destination={"url": store.url("{export}.{ext}"), "block": block},
            return_state=True,
        )
        assert first.is_failed()
        assert [m for m, p, st in proxy.log if st == DROP and "uploadId=" in p and m == "DELETE"]
        assert leftovers(store), "the abort was dropped: the upload should still be open"
        proxy.rules.clear()
        later = export(
            source=failing_source(tmp_path / "later", text="later", fail_at=0),
            destination={"url": store.url("{export}.{ext}"), "block": block},
        )
    finally:
        proxy.stop()
    assert leftovers(store) == []
    assert store.names() == ["export.csv"]
    assert len(store.read("export.csv")) == later.bytes


@flow
def _another_export() -> None:
    """Stands for a run of another process, as the API knows it."""


def _run_in_state(state: Any) -> str:
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(_another_export, state=Running())
        if not state.is_running():
            client.set_flow_run_state(run.id, state, force=True)
    return str(run.id)


def _planter(
    store: StoreUnderTest, request: pytest.FixtureRequest
) -> tuple[Callable[[str], None], Callable[[str], None]]:
    """Two functions: one leaves, under a temporary name, what a write interrupted mid-upload
    leaves in this store (an open multipart upload on S3, staged blocks on Azure, a temporary
    object on GCS, whose sessions cannot be listed); the other removes it."""
    server = request.getfixturevalue(SERVER_FIXTURES[store.key])
    client: Any = server.client()
    bucket = store.container
    if store.key == "s3":

        def plant(name: str) -> None:
            upload = client.create_multipart_upload(Bucket=bucket, Key=name)
            client.upload_part(
                Bucket=bucket, Key=name, UploadId=upload["UploadId"], PartNumber=1,
                Body=b"x" * 1024,
            )  # fmt: skip

        def remove(name: str) -> None:
            for upload in client.list_multipart_uploads(Bucket=bucket, Prefix=name).get(
                "Uploads", []
            ):
                client.abort_multipart_upload(Bucket=bucket, Key=name, UploadId=upload["UploadId"])

    elif store.key == "az":

        def plant(name: str) -> None:
            blob = client.get_blob_client(bucket, name)
            blob.stage_block(block_id=uuid.uuid4().hex, data=b"x" * 1024)

        def remove(name: str) -> None:
            blob = client.get_blob_client(bucket, name)
            blob.commit_block_list([])
            blob.delete_blob()

    else:

        def plant(name: str) -> None:
            client.bucket(bucket).blob(name).upload_from_string(b"x" * 1024)

        def remove(name: str) -> None:
            client.bucket(bucket).blob(name).delete()

    return plant, remove


def test_only_the_uploads_of_runs_that_are_over_are_thrown_away(
    store: StoreUnderTest, demo_db: Path, request: pytest.FixtureRequest
) -> None:
    """A running run's upload, and one of a run the API does not know (another server's),
    stay; the uploads of a run in a final state go, also of another target in the folder (a
    template with {run_id} gives each run its own target); another folder's are not looked
    at."""
    plant, remove = _planter(store, request)
    running, crashed, unknown = (
        _run_in_state(Running()),
        _run_in_state(Crashed(message="killed")),
        str(uuid.uuid4()),
    )
    names = {run: f".orders.csv.{run}-0123abcd.tmp" for run in (running, crashed, unknown)}
    other_target = f".other.csv.{crashed}-0123abcd.tmp"
    other_folder = f"elsewhere/.orders.csv.{crashed}-0123abcd.tmp"
    planted = [*names.values(), other_target, other_folder]
    for name in planted:
        plant(name)
    try:
        export(
            source={"url": f"sqlite:///{demo_db}", "table": "orders"},
            destination={"url": store.url("{export}.{ext}"), "block": store.save_block("t")},
        )
        left = leftovers(store)

        def kept(name: str) -> bool:
            return any(f"{store.container}/{name} (" in item for item in left)

        assert not kept(names[crashed]), left
        assert kept(names[running]) and kept(names[unknown]), left
        assert not kept(other_target), left
        assert kept(other_folder), left
        # The session's scan over every bucket of the server finds them as well.
        server = request.getfixturevalue(SERVER_FIXTURES[store.key])
        everywhere = all_leftovers(**{SERVER_FIXTURES[store.key]: server})
        assert set(left) <= set(everywhere), everywhere
    finally:  # the suite's final scan must find nothing of this test
        for name in planted:
            try:
                remove(name)
            except Exception:  # noqa: BLE001, S110 - already gone
                pass
    assert leftovers(store) == []
