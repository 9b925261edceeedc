"""Temporary files of killed runs (issue 17: four SIGKILLs left 178 MB of `.…-*.tmp` files next
to the targets, and nothing removed them). A run killed mid-write cannot clean up; the next run
to the same target removes its files once the Prefect API says the killed run is over, and
leaves a running run's files alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL
from prefect.states import Crashed

from flows.export import export
from tests.conftest import REPO_ROOT
from tests.processes import wait_until

pytestmark = pytest.mark.usefixtures("prefect_api")

LONG_QUERY = (
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 50000000) "
    "SELECT x, 'row' AS v FROM n"
)
KILLED_SCRIPT = """
import json, sys
from flows.export import export

export(**json.loads(sys.argv[1]))
"""


def _temporary_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


def _killed_mid_write(folder: Path) -> tuple[UUID, Path]:
    """An `export` run in its own process, SIGKILLed once its temporary file has 1 MB; the
    run's id (from the file's name) and the file it left."""
    parameters = {
        "source": {"url": "sqlite://", "query": LONG_QUERY, "chunk_rows": 1000},
        "destination": {"url": f"{folder}/{{export}}.{{ext}}"},
        "name": "orders",
    }
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_SCRIPT, json.dumps(parameters)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(
            lambda: any(path.stat().st_size > 1_000_000 for path in _temporary_files(folder)),
            120, "a temporary file of 1 MB (then the export is killed)",
            every_s=0.1, process=process,
        )  # fmt: skip
    finally:
        process.kill()
        process.wait()
    [left] = _temporary_files(folder)
    run_id = left.name.removeprefix(".orders.csv.").rpartition("-")[0]
    return UUID(run_id), left


def test_a_killed_runs_temporary_file_goes_once_the_run_is_over(
    demo_db: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "out"
    run_id, left = _killed_mid_write(folder)
    orders = {"url": f"sqlite:///{demo_db}", "table": "orders"}
    target = {"url": f"{folder}/{{export}}.{{ext}}"}

    # Still Running as far as the API knows (no runner or automation marked it): kept.
    assert export(source=orders, destination=target, name="orders").rows == 1000
    assert _temporary_files(folder) == [left]

    # What a runner, or the heartbeat automation, does for a killed run.
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, Crashed(message="the process was killed"), force=True)
    assert export(source=orders, destination=target, name="orders").rows == 1000
    assert _temporary_files(folder) == []
    assert sorted(path.name for path in folder.iterdir()) == ["orders.csv"]
