"""The completion marker (`destination.done_marker`) of real exports: written empty in the
folder of the files after every file and the manifest are published, and only then; never for
a failed run; an earlier run's marker is taken away before a new set is published over it.
A local folder and Amazon S3 (moto, its requests in order through the fault proxy); Google
Cloud Storage, Azure Blob Storage and SFTP (each store listed as every final object is about
to be published)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.export import export
from tests.flows.conftest import demo_dataset
from tests.flows.destinations.stores import (
    StoreUnderTest,
    az_store,
    failing_source,
    gcs_store,
    s3_store,
)
from tests.flows.destinations.test_sftp import save_sftp_block
from tests.flows.formats.test_roundtrip import assert_round_trip
from tests.servers.azurite import AzuriteServer
from tests.servers.fault_proxy import FaultProxy
from tests.servers.s3 import S3Server
from tests.servers.sftp import SftpServer

pytestmark = pytest.mark.usefixtures("prefect_api")


def task_runs_in_order(flow_run_id: str) -> list[tuple[str, object, object]]:
    """(name, start, end) of the run's task runs, by start time."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return sorted(
        ((run.name, run.start_time, run.end_time) for run in runs), key=lambda item: str(item[1])
    )


def test_the_marker_is_written_last_in_the_folder_of_the_parts(
    demo_db: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = export(
        source={"url": f"sqlite:///{demo_db}", "table": "orders"},
        destination={
            "url": f"{out}/{{date:%Y}}/{{export}}.{{ext}}",
            "max_file_mb": 0.1,
            "manifest": True,
            "done_marker": "{export}-{date:%Y%m%d}.done",
        },
    )
    [folder] = list(out.iterdir())
    marker = folder / f"orders-{result.started:%Y%m%d}.done"
    assert result.done_marker == str(marker)
    assert marker.read_bytes() == b""
    assert len(result.files) == 3
    parts = [Path(path) for path in result.files]
    manifest = Path(str(result.manifest))
    assert sorted(folder.iterdir()) == sorted([*parts, manifest, marker])  # no temporary file
    assert [item["url"] for item in json.loads(manifest.read_text())["files"]] == result.files
    # written after the parts and the manifest were published: its temporary file was opened
    # once they were in place, and its task started after theirs ended
    assert all(marker.stat().st_mtime_ns >= path.stat().st_mtime_ns for path in [*parts, manifest])
    tasks = task_runs_in_order(result.export_request_id)
    names = [name for name, _, _ in tasks]
    # then the export's state is saved (blocks/export_state.py), after everything is published
    assert names[-4:] == ["deliver-orders", "manifest-orders", "done-marker-orders", "state-orders"]
    assert tasks[-2][1] >= tasks[-3][2] >= tasks[-4][2]  # the marker's started after both ended
    assert tasks[-1][1] >= tasks[-2][2]


def test_a_failed_run_writes_no_marker(tmp_path: Path) -> None:
    out = tmp_path / "out"
    state = export(
        source=failing_source(tmp_path / "db", text="row", fail_at=15_000),
        destination={"url": f"{out}/{{export}}.{{ext}}", "done_marker": "_SUCCESS"},
        name="rows",
        return_state=True,
    )
    assert state.is_failed()
    assert "no such" not in str(state.result(raise_on_failure=False)).lower()
    assert sorted(p.name for p in out.rglob("*")) == []  # no marker, no file, no temporary one


@pytest.fixture
def s3_store_(s3: S3Server) -> StoreUnderTest:
    return s3_store(s3)


def _final_puts(log: list[tuple[str, str, int]], bucket: str, finals: tuple[str, ...]) -> list[str]:
    """The keys of `finals` PUT (published: a server-side copy), in the order S3 got them."""
    keys = [(method, urlsplit(path), status) for method, path, status in log]
    return [
        key
        for method, parts, status in keys
        if method == "PUT" and status < 300 and not parts.query
        and (key := parts.path.removeprefix(f"/{bucket}/")) in finals
    ]  # fmt: skip


def test_on_s3_the_marker_is_the_last_object_written_and_an_earlier_one_goes_first(
    demo_db: Path, s3_store_: StoreUnderTest, tmp_path: Path
) -> None:
    """The bucket is listed (by an independent client) as each final object is about to be
    published: the marker is never there while the set is being published, neither the new
    one nor an earlier run's."""
    finals = ("daily/orders.jsonl", "daily/orders.manifest.json", "daily/_SUCCESS")
    bucket = s3_store_.container
    seen: list[tuple[str, list[str]]] = []

    def list_before_publishing(method: str, path: str) -> bool:
        parts = urlsplit(path)
        key = parts.path.removeprefix(f"/{bucket}/")
        if method == "PUT" and not parts.query and key in finals:
            seen.append((key, [name for name in s3_store_.names() if name in finals]))
        return False  # never fails a request: it only looks

    proxy = FaultProxy(s3_store_.endpoint_url)
    proxy.fail(list_before_publishing, 500)
    try:
        block = s3_store_.save_block("test-s3-marker", proxy.url)
        destination = {
            "url": s3_store_.url("daily/{export}.{ext}"),
            "block": block,
            "manifest": True,
            "done_marker": "_SUCCESS",
        }
        source = {"url": f"sqlite:///{demo_db}", "table": "orders"}
        first = export(source=source, destination=destination, format="jsonl")
        earlier = len(proxy.log)
        second = export(source=source, destination=destination, format="jsonl")
    finally:
        proxy.stop()
    assert first.done_marker == second.done_marker == s3_store_.url("daily/_SUCCESS")
    assert s3_store_.names() == sorted(finals)  # no temporary object left
    assert s3_store_.read("daily/_SUCCESS") == b""
    path = s3_store_.download("daily/orders.jsonl", tmp_path)
    assert_round_trip("jsonl", path, demo_dataset("orders"))
    for log in (proxy.log[:earlier], proxy.log[earlier:]):
        assert _final_puts(log, bucket, finals) == list(finals)  # file, manifest, marker
    file, manifest, marker = finals
    assert seen == [
        (file, []),
        (manifest, [file]),
        (marker, [file, manifest]),
        # the second run: the first run's marker is gone before its file is published over
        (file, [file, manifest]),
        (manifest, [file, manifest]),
        (marker, [file, manifest]),
    ]


def test_an_earlier_marker_that_cannot_be_removed_fails_the_run_before_publishing(
    demo_db: Path, tmp_path: Path
) -> None:
    """A folder where the marker goes (no file removal takes it away): nothing is published
    and no temporary file is left, the error names the marker."""
    out = tmp_path / "out"
    (out / "_SUCCESS").mkdir(parents=True)
    (out / "_SUCCESS" / "keep").write_text("someone else's")
    state = export(
        source={"url": f"sqlite:///{demo_db}", "table": "orders"},
        destination={"url": f"{out}/{{export}}.{{ext}}", "done_marker": "_SUCCESS"},
        return_state=True,
    )
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert type(error).__name__ == "DeliveryError", error
    assert str(error).startswith(f"cannot deliver `{out}/_SUCCESS` to Local folder:"), error
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["_SUCCESS", "_SUCCESS/keep"]


def _published_key(kind: str, method: str, path: str, container: str) -> str | None:
    """The object a request publishes under its final name (a server-side copy to it), as a
    name in the container; None for any other request. GCS: a rewrite to the name; Azure:
    Copy Blob, a PUT of the name without a query (uploads go to temporary names)."""
    parts = urlsplit(path)
    if kind == "gcs" and method == "POST" and "/rewriteTo/b/" in parts.path:
        return unquote(parts.path.split("/rewriteTo/b/", 1)[1].split("/o/", 1)[1])
    prefix = f"/{AzuriteServer.ACCOUNT}/{container}/"
    if kind == "az" and method == "PUT" and not parts.query and parts.path.startswith(prefix):
        return unquote(parts.path.removeprefix(prefix))
    return None


class _Target:
    """One store for the marker's order: where the export goes, what is in its folder (read
    by an independent client), and a hook called as each final object is about to be
    published (`watch`)."""

    def __init__(self, request: pytest.FixtureRequest, kind: str) -> None:
        self.kind = kind
        self.proxy: FaultProxy | None = None
        if kind == "sftp":
            self.sftp: SftpServer = request.getfixturevalue("sftp")
            self.folder = request.getfixturevalue("sftp_folder")
            self.block = save_sftp_block("test-sftp-marker", self.sftp)
            return
        server = request.getfixturevalue("gcs" if kind == "gcs" else "azurite")
        self.store = gcs_store(server) if kind == "gcs" else az_store(server)

    def url(self, path: str) -> str:
        if self.kind == "sftp":
            return self.sftp.url(f"{self.folder}/{path}")
        return self.store.url(path)

    def names(self, finals: tuple[str, ...]) -> list[str]:
        """Which of `finals` (paths under the test's folder) the store holds now."""
        if self.kind == "sftp":
            root = self.sftp.root / self.folder.strip("/")
            return [name for name in finals if (root / name).is_file()]
        return [name for name in self.store.names() if name in finals]

    def all_names(self) -> list[str]:
        """Every file under the test's folder, temporary ones included."""
        if self.kind == "sftp":
            root = self.sftp.root / self.folder.strip("/")
            found = (Path(d, f) for d, _, fs in os.walk(root) for f in fs)
            return sorted(str(path.relative_to(root)) for path in found)
        return self.store.names()

    def read(self, name: str) -> bytes:
        if self.kind == "sftp":
            return (self.sftp.root / self.folder.strip("/") / name).read_bytes()
        return self.store.read(name)

    def watch(self, publishing: Callable[[str], None]) -> str:
        """Call `publishing(name)` before each final object is published; the block to use."""
        if self.kind == "sftp":
            prefix = f"{self.folder}/"
            self.sftp.before_rename = lambda path: publishing(path.removeprefix(prefix))
            return self.block
        container = self.store.container

        def look(method: str, path: str) -> bool:
            key = _published_key(self.kind, method, path, container)
            if key is not None:
                publishing(key)
            return False  # never fails a request: it only looks

        self.proxy = FaultProxy(self.store.endpoint_url)
        self.proxy.fail(look, 500)
        return str(self.store.save_block(f"test-{self.kind}-marker", self.proxy.url))

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()


@pytest.mark.parametrize("kind", ["gcs", "az", "sftp"])
def test_on_every_store_the_marker_is_published_last_and_never_for_a_failed_run(
    request: pytest.FixtureRequest, demo_db: Path, tmp_path: Path, kind: str
) -> None:
    """S3's proof on the other stores: as each final object is about to be published, the
    store is listed by an independent client (GCS and Azure: through a proxy in front of
    the emulator; SFTP: the server's own folder, before each rename). The marker is never
    there while a set is published, an earlier run's is taken away first, and a run that
    fails mid-read publishes neither files nor a marker."""
    finals = ("daily/orders.jsonl", "daily/orders.manifest.json", "daily/_SUCCESS")
    target = _Target(request, kind)
    seen: list[tuple[str, list[str]]] = []

    def publishing(name: str) -> None:
        if name in finals:
            seen.append((name, target.names(finals)))

    try:
        block = target.watch(publishing)
        destination: dict[str, Any] = {
            "url": target.url("daily/{export}.{ext}"),
            "block": block,
            "manifest": True,
            "done_marker": "_SUCCESS",
        }
        source = {"url": f"sqlite:///{demo_db}", "table": "orders"}
        first = export(source=source, destination=destination, format="jsonl")
        second = export(source=source, destination=destination, format="jsonl")
        failed = export(
            source=failing_source(tmp_path / "db", text="row", fail_at=15_000),
            destination={**destination, "url": target.url("failed/{export}.{ext}")},
            name="rows",
            format="jsonl",
            return_state=True,
        )
    finally:
        target.stop()
    assert first.done_marker == second.done_marker == target.url("daily/_SUCCESS")
    assert target.read("daily/_SUCCESS") == b""
    assert target.all_names() == sorted(finals)  # no temporary object, nothing of the failed run
    assert failed.is_failed()
    path = tmp_path / "orders.jsonl"
    path.write_bytes(target.read("daily/orders.jsonl"))
    assert_round_trip("jsonl", path, demo_dataset("orders"))
    file, manifest, marker = finals
    assert seen == [
        (file, []),
        (manifest, [file]),
        (marker, [file, manifest]),
        # the second run: the first run's marker is gone before its file is published over
        (file, [file, manifest]),
        (manifest, [file, manifest]),
        (marker, [file, manifest]),
    ]
