"""A full disk gives its space back (issue 24): after a run fails on a full disk, the next
export in the same process (a served runner, a Dask worker) writes into the same folder."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from flows.export import export
from tests.faults.test_sftp_faults import DISK, rows_source
from tests.servers.disk import small_filesystem
from tests.servers.receiver import WebhookReceiver

pytestmark = pytest.mark.usefixtures("prefect_api")

SMALL_ROWS = 500  # about 100 KB of CSV: fits the 1 MiB disk many times over


def small_source(folder: Path) -> dict[str, Any]:
    """SMALL_ROWS rows of 200 hex digits: the second, smaller export."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "small.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("create table t (id integer primary key, v text)")
        conn.executemany(
            "insert into t values (?, ?)", ((i, "ab" * 100) for i in range(SMALL_ROWS))
        )
    return {"url": f"sqlite:///{db}", "table": "t"}


def free_blocks(folder: Path) -> tuple[int, int]:
    """(free, total) blocks of the filesystem holding `folder`, as df sees them."""
    stat = os.statvfs(folder)
    return stat.f_bfree, stat.f_blocks


def test_a_full_local_disk_gives_its_space_back_to_the_next_export(tmp_path: Path) -> None:
    """Issue 24: a run fails on a full local disk, and its temporary file, unlinked but still
    open in the process, kept the disk full until the process ended: the next export in the
    same process failed on an empty folder. Now the disk is empty again after the failure
    (statvfs), and a smaller export into the same folder succeeds."""
    folder = tmp_path / "disk"
    with small_filesystem(folder, DISK) as mounted:
        if not mounted:
            pytest.skip("mounting a small filesystem needs root")
        state = export(
            source=rows_source(tmp_path),
            destination={"url": f"{folder}/{{export}}.{{ext}}"},
            return_state=True,
        )
        assert state.is_failed()
        assert "the disk is full" in str(state.result(raise_on_failure=False))
        assert list(folder.iterdir()) == []
        free, total = free_blocks(folder)
        assert free == total, f"{total - free} of {total} blocks still in use on an empty disk"
        result = export(
            source=small_source(tmp_path / "small"),
            destination={"url": f"{folder}/{{export}}.{{ext}}"},
        )
        assert result.rows == SMALL_ROWS
        assert sorted(p.name for p in folder.iterdir()) == ["t.csv"]
        assert len((folder / "t.csv").read_text().splitlines()) == SMALL_ROWS + 1


def test_a_full_spool_folder_gives_its_space_back_and_is_named(
    tmp_path: Path, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 24: an HTTP POST export spools to the system temp folder; when that disk fills up
    the run fails saying which folder is full (it said "the disk that holds the folder"
    without naming it), and the spool file's space comes back at once, so a smaller export
    in the same process then spools and posts."""
    spool = tmp_path / "spool"
    with small_filesystem(spool, DISK) as mounted:
        if not mounted:
            pytest.skip("mounting a small filesystem needs root")
        monkeypatch.setattr(tempfile, "tempdir", str(spool))  # as TMPDIR=spool would
        state = export(
            source=rows_source(tmp_path),
            destination={"url": f"{receiver.url}/hook"},
            return_state=True,
        )
        assert state.is_failed()
        message = str(state.result(raise_on_failure=False))
        assert "the disk is full" in message, message
        assert f"spool folder `{spool}`" in message, message
        assert receiver.requests == []
        assert list(spool.iterdir()) == []
        free, total = free_blocks(spool)
        assert free == total, f"{total - free} of {total} blocks still in use on an empty disk"
        result = export(
            source=small_source(tmp_path / "small"),
            destination={"url": f"{receiver.url}/hook"},
        )
        assert result.rows == SMALL_ROWS
        [request] = receiver.requests
        assert len(request.body.decode().splitlines()) == SMALL_ROWS + 1
        assert list(spool.iterdir()) == []
