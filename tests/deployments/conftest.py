"""Fixtures of the API key, gateway and audit tests: the master secret, an `export` deployment
registered on the test API but served by no runner (its runs stay Scheduled), and
`exports gateway` running in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

from deployments.gateway.master_secrets import (
    SECRETS_BLOCK,
    SECRETS_ENV,
    forget_secrets,
    init_secret,
)
from tests.conftest import DEMO_DB, REPO_ROOT
from tests.processes import stop_process, wait_for_http
from tests.servers.ports import free_port

IDLE_DEPLOYMENT = "export/orders-api"  # the name of prefect.yaml's API trigger
WINDOW_QUERY = (
    "SELECT order_id, customer_id, ordered_at, amount, status FROM orders "
    "WHERE ordered_at >= :since AND ordered_at < :until ORDER BY order_id"
)


def api_parameters(folder: Path) -> dict[str, Any]:
    """prefect.yaml's orders-api parameters, delivering into `folder`."""
    return {
        "name": "orders",
        "type": "Orders",
        "format": "jsonl",
        "source": {"url": f"sqlite:///{DEMO_DB}", "query": WINDOW_QUERY},
        "window": {"period": "P1D", "timezone": "UTC"},
        "destination": {"url": f"{folder}/{{export}}-{{run_id}}.{{ext}}"},
    }


@pytest.fixture(scope="session")
def master_secret(
    prefect_api: None,  # noqa: ARG001 - needs the API started
) -> str:
    """The Secret block of the master secrets, saved once for the session."""
    import os

    assert not os.environ.get(SECRETS_ENV), f"unset {SECRETS_ENV} for the tests"
    try:
        value = str(Secret.load(SECRETS_BLOCK).get())
    except ValueError:
        init_secret()
        value = str(Secret.load(SECRETS_BLOCK).get())
    forget_secrets()
    return value


@pytest.fixture(scope="session")
def idle_deployment(
    tmp_path_factory: pytest.TempPathFactory,
    prefect_api: None,  # noqa: ARG001 - needs the API started
) -> Iterator[str]:
    """`export/orders-api` registered without a runner; its runs are deleted afterwards."""
    from flows.export import export

    folder = tmp_path_factory.mktemp("idle")
    deployment_id = export.to_deployment(
        name="orders-api", parameters=api_parameters(folder)
    ).apply()
    try:
        yield IDLE_DEPLOYMENT
    finally:
        delete_runs(deployment_id)


def delete_runs(deployment_id: Any) -> None:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                sort=FlowRunSort.START_TIME_DESC,
                limit=200,
                offset=0,
            )
            if not runs:
                return
            for run in runs:
                client.delete_flow_run(run.id)


@dataclass(frozen=True)
class Gateway:
    url: str
    log: Path


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def subprocess_env() -> dict[str, str]:
    """The environment of the gateway and runner subprocesses: this session's Prefect API, the
    master secret from its Secret block (never from the environment)."""
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    env.pop(SECRETS_ENV, None)
    return env


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, master_secret: str) -> Iterator[Gateway]:
    """`exports gateway` on a free loopback port; its whole output goes to a log file."""
    assert master_secret
    port = free_port()
    log_path = tmp_path_factory.mktemp("gateway") / "gateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "deployments.cli", "gateway", "--port", str(port)],
            cwd=REPO_ROOT, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{url}/healthz", 60, process=process, log=log_path)
            yield Gateway(url, log_path)
        finally:
            stop_process(process)
