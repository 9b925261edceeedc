"""Fixtures of the API key and gateway tests: the master secret and an `export` deployment
registered on the test API but served by no runner (its runs stay Scheduled)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client

from deployments.key_secrets import SECRETS_BLOCK, SECRETS_ENV, forget_secrets, init_secret
from tests.conftest import DEMO_DB

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
def master_secret() -> str:
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
def idle_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
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
