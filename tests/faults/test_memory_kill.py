"""A run's process out of memory mid-export (issue 17's fault suite).

Memory follows `source.chunk_rows`, so a chunk of very wide rows (a column of documents,
images) can need more than the process may have. Two ways a run meets its limit:

- an address-space limit (`ulimit -v`, RLIMIT_AS): an allocation fails and Python raises
  MemoryError inside the run. The run must fail like any other error: nothing at the final
  path, an existing file untouched, its temporary file removed, the run Failed in the API
  with a message that says what to change, and `exports run` ends with one line, exit 1.
- a memory cgroup (a container's or a systemd unit's limit): the kernel's OOM killer SIGKILLs
  the process, which can clean up nothing. The runner that started it marks the run Crashed;
  the next run to the same target removes the temporary file it left.

The rows come from SQLite's own recursive query: 20,000 narrow ones (written, so the run is
mid-export), then rows of 1 MB each, read `chunk_rows` at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL

from blocks.alerts import ALERTS_BLOCK_NAME, StatusAlerts
from flows.core.config import SourceConfig
from flows.export import export
from flows.request import DestinationConfig
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.usefixtures("prefect_api")

NARROW_ROWS = 20_000
WIDE_BYTES = 1_000_000
WIDE_QUERY = (
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 50000) "
    f"SELECT x, printf('%.*c', CASE WHEN x > {NARROW_ROWS} THEN {WIDE_BYTES} ELSE 10 END, 'y') "
    "AS v FROM n"
)
WIDE_CHUNK_ROWS = 3000  # 3 GB of text in one chunk: more than either limit below allows
EARLIER_FILE = b"an earlier run's file\n"


def temporary_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


def folder_with_an_earlier_file(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "orders.csv").write_bytes(EARLIER_FILE)
    return folder


def read_flow_run(run_id: Any) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


# -- an address-space limit: MemoryError -------------------------------------------------------

ADDRESS_SPACE_LIMIT = 2_500_000_000  # `exports run` maps about 1 GB before it reads a row


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


def test_a_run_out_of_address_space_fails_cleanly_with_one_line(tmp_path: Path) -> None:
    """Issue 17: `exports run` under an address-space limit (RLIMIT_AS, as `prlimit --as`
    sets it) meets a chunk that does not fit: MemoryError mid-export. The run ends Failed in
    the API saying the process ran out of memory and naming source.chunk_rows, the terminal
    shows one line, nothing is published, the earlier file stays, no temporary file is
    left. (It printed a 140-line traceback and the run's state said only `MemoryError: `.)"""
    folder = folder_with_an_earlier_file(tmp_path)
    name = f"oom-{uuid.uuid4().hex[:12]}"  # finds its run in the API
    # Alerts saved (switched off), as in the suite after the alert tests: loading the block
    # emits an event, which met the memory limit and logged a traceback (seen in CI).
    StatusAlerts().save(ALERTS_BLOCK_NAME, overwrite=True)
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "DO_NOT_TRACK": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "deployments.cli", "run", "demo-orders",
         "--set", "source.url=sqlite://", "--set", "source.table=null",
         "--set", f"source.query={WIDE_QUERY}", "--set", f"source.chunk_rows={WIDE_CHUNK_ROWS}",
         "--set", f"name={name}", "--set", f"destination.url={folder}/orders.{{ext}}"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
        preexec_fn=_limit_address_space,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    # The error in one line; around it at most Prefect's one-line warnings (quiet mode shows
    # each in a line: the Failed alert, sent in the background, may meet the memory limit
    # too), never a traceback.
    lines = done.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert errors[0].startswith("error: source.chunk_rows: the export ran out of memory"), (
        done.stderr[-3000:]
    )
    assert "Traceback" not in done.stderr and len(lines) <= 4, done.stderr[-3000:]
    assert sorted(path.name for path in folder.iterdir()) == ["orders.csv"]
    assert (folder / "orders.csv").read_bytes() == EARLIER_FILE

    with get_client(sync_client=True) as client:
        [run] = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=name))
        )
    assert run.state is not None and run.state.is_failed(), run.state
    assert "OutOfMemoryError: source.chunk_rows: the export ran out of memory" in str(
        run.state.message
    )


# -- a memory cgroup: the OOM killer's SIGKILL -------------------------------------------------

CGROUP_LIMIT = 1_200_000_000  # the runner and its flow run's process together
SERVE_SCRIPT = """
import json, sys
from prefect import serve
from blocks.alerts import ALERTS_BLOCK_NAME, StatusAlerts
from flows.core.config import SourceConfig
from flows.request import DestinationConfig
from flows.export import export

serve(export.to_deployment(name=sys.argv[1], parameters=json.loads(sys.argv[2])),
      print_starting_message=False)
"""


@contextlib.contextmanager
def memory_cgroup(limit: int) -> Iterator[Path]:
    """A new memory cgroup of `limit` bytes and no swap (v2: memory.max; v1: the memory
    controller's limit_in_bytes); its `cgroup.procs`. Skips the test where none can be made
    (no root, or a read-only /sys/fs/cgroup, as in many containers)."""
    name = f"exports-oom-{uuid.uuid4().hex[:8]}"
    v2, v1 = Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/memory")
    if (v2 / "cgroup.subtree_control").exists() and "memory" in (
        v2 / "cgroup.subtree_control"
    ).read_text().split():
        group, limits = v2 / name, {"memory.max": limit, "memory.swap.max": 0}
    elif (v1 / "memory.limit_in_bytes").exists():
        group = v1 / name
        limits = {"memory.limit_in_bytes": limit, "memory.memsw.limit_in_bytes": limit}
    else:
        pytest.skip("no memory cgroup controller here")
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot make a memory cgroup ({exc})")
    try:
        for file, value in limits.items():
            with contextlib.suppress(FileNotFoundError):  # no swap accounting: nothing to cap
                (group / file).write_text(str(value))
        yield group / "cgroup.procs"
    finally:
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while True:
            try:
                group.rmdir()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def oom_kills(procs: Path) -> int:
    """How many processes the kernel's OOM killer ended in the cgroup (v2: memory.events;
    v1: memory.oom_control's oom_kill, or else memory.failcnt's limit hits)."""
    for file, key in (("memory.events", "oom_kill"), ("memory.oom_control", "oom_kill")):
        path = procs.parent / file
        if path.exists():
            counts = dict(line.split() for line in path.read_text().splitlines())
            if key in counts:
                return int(counts[key])
    return int((procs.parent / "memory.failcnt").read_text())


def wait_for_final_state(run_id: Any, timeout_s: float) -> FlowRun:
    deadline = time.monotonic() + timeout_s
    while True:
        run = read_flow_run(run_id)
        if run.state is not None and run.state.is_final():
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run.state} after {timeout_s} s"
        time.sleep(0.5)


def test_a_served_run_killed_by_the_oom_killer_crashes_and_its_file_goes_next_run(
    tmp_path: Path,
) -> None:
    """Issue 17: a served export (a runner, as a worker runs it) inside a memory cgroup meets
    a chunk that does not fit and the kernel's OOM killer SIGKILLs its process mid-write. The
    runner marks the run Crashed; nothing is published and the earlier file stays; the
    temporary file the killed run could not remove goes with the next run to the target."""
    folder = folder_with_an_earlier_file(tmp_path)
    deployment = f"oom-{uuid.uuid4().hex[:8]}"
    parameters = {
        "source": {"url": "sqlite://", "query": WIDE_QUERY, "chunk_rows": WIDE_CHUNK_ROWS},
        "destination": {"url": f"{folder}/orders.{{ext}}"},
        "name": "orders",
    }
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "DO_NOT_TRACK": "1",
    }
    with memory_cgroup(CGROUP_LIMIT) as procs, (tmp_path / "runner.log").open("wb") as log:

        def join_the_cgroup() -> None:  # the runner, and so every process it starts
            procs.write_text(str(os.getpid()))

        runner = subprocess.Popen(
            [sys.executable, "-c", SERVE_SCRIPT, deployment, json.dumps(parameters)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=join_the_cgroup,
        )  # fmt: skip
        try:
            deployment_id = wait_for_deployment(runner, f"export/{deployment}", tmp_path)
            run = run_deployment(f"export/{deployment}", timeout=0)
            assert isinstance(run, FlowRun)
            ended = wait_for_final_state(run.id, timeout_s=90)
            assert runner.poll() is None, "the OOM killer chose the runner"
            killed = oom_kills(procs)
        finally:
            runner.terminate()
            try:
                runner.wait(timeout=20)
            except subprocess.TimeoutExpired:
                runner.kill()
                runner.wait()
    log_text = (tmp_path / "runner.log").read_text(errors="replace")[-3000:]
    assert ended.state is not None and ended.state.is_crashed(), (ended.state, log_text)
    assert killed >= 1, log_text
    assert "-9" in str(ended.state.message) or "137" in str(ended.state.message), ended.state
    assert (folder / "orders.csv").read_bytes() == EARLIER_FILE
    [left] = temporary_files(folder)
    assert str(run.id) in left.name and left.stat().st_size > 0  # it was mid-write

    # The next run to the same target (here in this process, a narrow export).
    narrow = SourceConfig(url="sqlite://", query="SELECT 1 AS x, 'row' AS v")
    result = export(source=narrow, destination=DestinationConfig(url=f"{folder}/orders.{{ext}}"))
    assert result.rows == 1
    assert temporary_files(folder) == []
    assert (folder / "orders.csv").read_bytes() == b"x,v\n1,row\n"
    with get_client(sync_client=True) as client:
        client.delete_deployment(deployment_id)


def wait_for_deployment(runner: subprocess.Popen[bytes], name: str, tmp_path: Path) -> Any:
    deadline = time.monotonic() + 90
    with get_client(sync_client=True) as client:
        while True:
            log = (tmp_path / "runner.log").read_text(errors="replace")
            assert runner.poll() is None, log
            try:
                return client.read_deployment_by_name(name).id
            except Exception:  # noqa: BLE001 - not registered yet
                assert time.monotonic() < deadline, f"{name} was not registered:\n{log}"
                time.sleep(0.5)
