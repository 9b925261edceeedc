"""`exports serve`: prefect.yaml's triggers served from one process (a Prefect Runner), its
runs forked from a process that has already imported Prefect and the flows."""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL
from typer.testing import CliRunner

from deployments.cli.app import app
from tests.conftest import REPO_ROOT
from tests.processes import stop_process, wait_until


@dataclass(frozen=True)
class Served:
    log: Path
    pid: int

    def read_text(self) -> str:
        return self.log.read_text()


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
    prefect_api: None,  # noqa: ARG001 - needs the API started
) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "deployments.cli", "serve", "demo-orders",
             "orders-every-12-hours", "--limit", "1"],
            cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        with get_client(sync_client=True) as client:
            wait_until(
                lambda: client.read_deployment_by_name("export/orders-every-12-hours")
                and client.read_deployment_by_name("export/demo-orders"),
                90, "both deployments registered",
                every_s=0.5, process=process, log=log, ignoring=(Exception,),
            )  # fmt: skip
        yield Served(log, process.pid)
    finally:
        stop_process(process)


def test_serve_registers_the_schedules_of_prefect_yaml(served: Served) -> None:
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("export/orders-every-12-hours")
    [schedule] = deployment.schedules
    assert schedule.active
    assert schedule.schedule.model_dump(include={"interval", "timezone"}) == {
        "interval": dt.timedelta(hours=12),
        "timezone": "UTC",
    }, served.read_text()
    anchor = getattr(schedule.schedule, "anchor_date", None)
    assert anchor == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_a_served_deployment_runs_in_the_serving_process(served: Served, tmp_path: Path) -> None:
    destination = {"url": f"{tmp_path}/{{export}}-{{run_id}}.{{ext}}"}
    run = run_deployment(
        "export/demo-orders",
        parameters={"destination": destination},
        timeout=120,
        poll_interval=0.5,
    )
    assert isinstance(run, FlowRun) and run.state is not None
    assert run.state.is_completed(), (run.state, served.read_text()[-3000:])
    delivered = tmp_path / f"orders-{run.id}.csv"
    with delivered.open(newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0][0] == "order_id" and len(rows) == 1 + 1000


def _children(pid: int) -> list[tuple[int, str]]:
    """The processes whose parent is `pid`, with their command lines (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # ended meanwhile
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append((int(entry.name), cmdline))
    return found


def test_served_runs_fork_from_a_process_with_the_flows_imported(
    served: Served, tmp_path: Path
) -> None:
    """Warm start: the runner keeps a forkserver that imported Prefect and the served flows'
    modules, and a run's process is a fork of it, not a new interpreter."""
    [(forkserver, command)] = [
        child for child in _children(served.pid) if "multiprocessing.forkserver" in child[1]
    ]
    assert "flows.export" in command and "prefect.flow_engine" in command, command
    destination = {"url": f"{tmp_path}/{{export}}-{{run_id}}.{{ext}}"}
    run = run_deployment("export/demo-orders", parameters={"destination": destination}, timeout=0)
    assert isinstance(run, FlowRun)
    run_processes: set[int] = set()
    with get_client(sync_client=True) as client:

        def final_state() -> State | None:
            run_processes.update(pid for pid, _ in _children(forkserver))
            state = client.read_flow_run(run.id).state
            return state if state is not None and state.is_final() else None

        state = wait_until(
            final_state, 120, "the run's final state",
            every_s=0.05, log=lambda: served.read_text()[-3000:],
        )  # fmt: skip
    assert state.is_completed(), (state, served.read_text()[-3000:])
    assert run_processes, "the run did not start in a fork of the forkserver"
    assert not [c for c in _children(served.pid) if "prefect.engine" in c[1]]
    assert (tmp_path / f"orders-{run.id}.csv").stat().st_size > 0


@pytest.mark.unit
def test_serve_refuses_an_invalid_project_before_serving(tmp_path: Path) -> None:
    project = tmp_path / "prefect.yaml"
    project.write_text(
        "deployments:\n"
        "  - name: nightly\n"
        "    entrypoint: flows/export.py:export\n"
        "    parameters:\n"
        "      source: {url: 'sqlite:///demo/demo.sqlite', table: orders}\n"
        "      destination: {url: 'out/{export}.{ext}'}\n"
        "    schedules:\n"
        "      - cron: '0 2 * * *'\n"
        "        timezone: Europe/Berln\n"
        "    work_pool: {name: exports}\n"
    )
    result = CliRunner().invoke(app, ["serve", "--file", str(project)])
    assert result.exit_code == 1
    assert "nightly" in result.output and "schedules[0].timezone" in result.output
