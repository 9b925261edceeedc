"""SFTP faults of issue 17: the connection cut, silenced or ended by the server mid-upload,
and a full disk on the server (a small tmpfs mounted on the served folder, or a server
answering ENOSPC where mounting is not allowed); and a full local disk."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.core.formats import ExportFormat, file_extension
from flows.export import export
from tests.flows.destinations.test_sftp import listing, save_sftp_block
from tests.servers.disk import small_filesystem
from tests.servers.sftp import SftpServer, SmallDiskSftpServer
from tests.servers.tcp_cutter import TcpCutter

pytestmark = pytest.mark.usefixtures("prefect_api")

MB = 1024 * 1024
ROWS = 20_000  # of 200 bytes: about 4 MB of CSV


def rows_source(folder: Path) -> dict[str, Any]:
    """ROWS rows of 200 random hex digits (Parquet compresses them to about 2 MB, not 100 KB)."""
    db = folder / "rows.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("create table t (id integer primary key, v text)")
        conn.executemany(
            "insert into t values (?, ?)", ((i, os.urandom(100).hex()) for i in range(1, ROWS + 1))
        )
    return {"url": f"sqlite:///{db}", "table": "t", "chunk_rows": 1000}


def local_export(source: dict[str, Any], fmt: ExportFormat, folder: Path) -> bytes:
    """The same export to a local folder: what the server must hold, byte for byte."""
    result = export(source=source, destination={"url": f"{folder}/{{export}}.{{ext}}"}, format=fmt)
    return Path(result.files[0]).read_bytes()


def read_back(server: SftpServer, path: str) -> bytes:
    """A file's bytes through an independent paramiko client."""
    with server.client() as client, client.open(path, "rb") as handle:
        return bytes(handle.read())


def write_attempts(flow_run_id: UUID | None) -> int:
    """How many times the run's write task ran (retries included), from the Prefect API."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return sum(run.run_count for run in runs if run.name.startswith("write-"))


class TestConnectionCutMidUpload:
    @pytest.mark.parametrize(
        ("fault", "fmt"), [("reset", "csv"), ("reset", "parquet"), ("stall", "csv")]
    )
    def test_a_connection_broken_mid_upload_is_retried_and_the_file_is_whole(
        self, sftp: SftpServer, sftp_folder: str, tmp_path: Path, fault: str, fmt: ExportFormat
    ) -> None:
        """Issue 17: once 1 MB of the upload passed, the TCP connection is reset (RST, as a
        dropped route or a firewall does), or goes silent with both ends open (only the 3 s
        timeout tells); the upload is retried on a new connection and the file arrives
        byte-identical to a local export, with no temporary file left."""
        cutter = TcpCutter(sftp.port)
        try:
            blob = sftp.known_hosts.split(" ", 1)[1]
            block = save_sftp_block(
                "faults-sftp-cut", sftp, known_hosts=f"[127.0.0.1]:{cutter.port} {blob}",
                timeout_s=3,
            )  # fmt: skip
            if fault == "reset":
                cutter.cut_after(1 * MB, times=1)
            else:
                cutter.stall_after(1 * MB, times=1)
            source = rows_source(tmp_path)
            name = f"t.{file_extension(fmt)}"
            state = export(
                source=source,
                destination={
                    "url": f"sftp://127.0.0.1:{cutter.port}{sftp_folder}/{{export}}.{{ext}}",
                    "block": block,
                },
                format=fmt,
                return_state=True,
            )
            result = state.result()
        finally:
            cutter.close()
        assert cutter.cuts == 1, "the connection was not broken mid-upload"
        assert write_attempts(state.state_details.flow_run_id) == 2
        assert result.rows == ROWS
        assert listing(sftp, sftp_folder) == [name], "a temporary file was left"
        data = read_back(sftp, f"{sftp_folder}/{name}")
        assert len(data) == result.bytes
        assert data == local_export(source, fmt, tmp_path / "local")

    def test_a_connection_silent_on_every_attempt_fails_and_leaves_no_file(
        self, sftp: SftpServer, sftp_folder: str, tmp_path: Path
    ) -> None:
        """Issue 17: every attempt's connection goes silent mid-upload (a black hole, ended
        only by the 2 s timeout). The run fails after its three attempts naming the target,
        and the last attempt's temporary file is removed too: the clean-up connects again
        instead of waiting on the silent connection (which left the file before)."""
        cutter = TcpCutter(sftp.port)
        try:
            blob = sftp.known_hosts.split(" ", 1)[1]
            block = save_sftp_block(
                "faults-sftp-silent", sftp, known_hosts=f"[127.0.0.1]:{cutter.port} {blob}",
                timeout_s=2,
            )  # fmt: skip
            cutter.stall_after(1 * MB, times=3)
            url = f"sftp://127.0.0.1:{cutter.port}{sftp_folder}"
            state = export(
                source=rows_source(tmp_path),
                destination={"url": f"{url}/{{export}}.{{ext}}", "block": block},
                return_state=True,
            )
        finally:
            cutter.close()
        assert state.is_failed()
        message = str(state.result(raise_on_failure=False))
        assert f"cannot deliver `{url}/t.csv` to SFTP" in message, message
        assert "retried" in message, message
        assert cutter.cuts == 3 and write_attempts(state.state_details.flow_run_id) == 3
        assert listing(sftp, sftp_folder) == [], "a temporary file was left"

    def test_the_servers_session_killed_mid_upload_is_retried(
        self, sftp: SftpServer, sftp_folder: str, tmp_path: Path
    ) -> None:
        """Issue 17: the server ends the SSH session (as an admin killing its sshd child does)
        once 1 MB of the upload arrived; the retry delivers the whole file, byte-identical to a
        local export, and no temporary file is left."""
        block = save_sftp_block("faults-sftp", sftp)
        sftp.drop_uploads(after_bytes=1 * MB, times=1)
        before = sftp.faults_fired
        source = rows_source(tmp_path)
        state = export(
            source=source,
            destination={"url": sftp.url(f"{sftp_folder}/{{export}}.{{ext}}"), "block": block},
            return_state=True,
        )
        result = state.result()
        assert sftp.faults_fired - before == 1
        assert write_attempts(state.state_details.flow_run_id) == 2
        assert listing(sftp, sftp_folder) == ["t.csv"], "a temporary file was left"
        assert read_back(sftp, f"{sftp_folder}/t.csv") == local_export(
            source, "csv", tmp_path / "local"
        )
        assert result.rows == ROWS


# -- a full disk ---------------------------------------------------------------------------

DISK = 1 * MB  # the server's filesystem; the export is about 4 MB
EARLIER = b"order_id,total\n" + b"1,9.99\n" * 20_000  # 140 KB: an earlier run's file


@pytest.fixture(params=["strerror", "openssh"])
def full_disk_server(request: pytest.FixtureRequest) -> Iterator[SmallDiskSftpServer]:
    """An SFTP server whose folder /full is on a 1 MiB filesystem (a tmpfs mounted there, or
    where mounting is not allowed, ENOSPC past 1 MiB), answering a failed write with the OS's
    words (asyncssh) or, as OpenSSH's sftp-server does, with a bare "Failure"."""
    server = SmallDiskSftpServer("/full", None, openssh_status=request.param == "openssh")
    try:
        with small_filesystem(server.root / "full", DISK) as mounted:
            if not mounted:
                server.capacity = DISK
            yield server
    finally:
        server.close()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_full_disk_on_the_sftp_server_fails_once_and_leaves_the_old_file(
    full_disk_server: SmallDiskSftpServer, tmp_path: Path, fmt: ExportFormat
) -> None:
    """Issue 17: the server's disk fills up mid-upload. The run fails at once (a full disk
    does not empty itself in seconds: no retries) with an error naming the target and saying
    the disk is full, also where the server says only "Failure" (OpenSSH); the earlier file
    at the final path is untouched and no temporary file is left."""
    server = full_disk_server
    name = f"t.{file_extension(fmt)}"
    with server.client() as client, client.open(f"/full/{name}", "wb") as handle:
        handle.write(EARLIER)
    block = save_sftp_block("faults-sftp-full", server)
    state = export(
        source=rows_source(tmp_path),
        destination={"url": server.url("/full/{export}.{ext}"), "block": block},
        format=fmt,
        return_state=True,
    )
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert f"cannot deliver `{server.url('/full/' + name)}` to SFTP" in message, message
    assert "the server's disk is full" in message, message
    if server.openssh_status:
        assert "the server answered `Failure`" in message, message
    assert write_attempts(state.state_details.flow_run_id) == 1, "a full disk was retried"
    assert listing(server, "/full") == [name], "a temporary file was left"
    assert read_back(server, f"/full/{name}") == EARLIER


def test_a_full_local_disk_fails_once_and_leaves_the_old_file(tmp_path: Path) -> None:
    """Issue 17: a local folder destination on a filesystem that fills up mid-write: the run
    fails at once naming the file and saying the disk is full; the earlier file is
    untouched and no temporary file is left."""
    folder = tmp_path / "disk"
    with small_filesystem(folder, DISK) as mounted:
        if not mounted:
            pytest.skip("mounting a small filesystem needs root")
        (folder / "t.csv").write_bytes(EARLIER)
        state = export(
            source=rows_source(tmp_path),
            destination={"url": f"{folder}/{{export}}.{{ext}}"},
            return_state=True,
        )
        assert state.is_failed()
        message = str(state.result(raise_on_failure=False))
        assert f"cannot deliver `{folder}/t.csv` to Local folder" in message, message
        assert "the disk is full" in message and "No space left on device" in message, message
        assert write_attempts(state.state_details.flow_run_id) == 1, "a full disk was retried"
        assert sorted(p.name for p in folder.iterdir()) == ["t.csv"]
        assert (folder / "t.csv").read_bytes() == EARLIER
