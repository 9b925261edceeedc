"""A burst of API triggers against the production shape: `exports gateway` in front of a
`prefect server start` of its own, backed by PostgreSQL (issue 17, defect 9d).

On SQLite (the default of `prefect server start`) such a burst made the server log hundreds of
"database is locked" errors (bench/trigger_burst_bench.py measures both backends). Here the
server is the one the README recommends, and the test checks what an operator would: every
caller got its answer, one run per Idempotency-Key, and a clean server log.
"""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.deployments.runner import RunnerDeployment
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from deployments.gateway.keys import create_key
from deployments.gateway.master_secrets import forget_secrets, init_secret
from tests.conftest import REPO_ROOT
from tests.deployments.conftest import IDLE_DEPLOYMENT, api_parameters, auth
from tests.processes import stop_process, wait_for_http
from tests.servers.ports import free_port
from tests.servers.postgres import PostgresServer
from tests.servers.prefect_api import PrefectServer, start_prefect_server
from tests.servers.probe import LivenessProbe

pytestmark = pytest.mark.postgres

TRIGGERS = 150
RESENT_EVERY = 5  # every 5th Idempotency-Key is sent twice, at the same time as the first
# What a Prefect server logs when a request failed: its own ERROR records, an ASGI traceback,
# SQLite's write lock (the burst's failure on SQLite).
SERVER_ERRORS = re.compile(r"\bERROR\b|Traceback|database is locked|Exception in ASGI")
HEALTHZ_LIMIT_S = 1.0  # a liveness probe's usual timeout (Kubernetes' default)


@pytest.fixture(scope="module")
def prefect_on_postgres(postgres: PostgresServer) -> Iterator[PrefectServer]:
    """`prefect server start` on a database of its own in the session's PostgreSQL, through
    asyncpg (a dependency of Prefect itself: `make install` brings it)."""
    name = postgres.create_database(f"prefect_{uuid.uuid4().hex[:8]}")
    url = postgres.url(name).replace("postgresql://", "postgresql+asyncpg://", 1)
    server = start_prefect_server(url)
    try:
        yield server
    finally:
        server.stop()
        postgres.drop_database(name)


@pytest.fixture(scope="module")
def trigger_key(
    prefect_on_postgres: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """`export/orders-api` registered on that server with no runner, its master secret in the
    Secret block, and one API key for it: (key, key id)."""
    from flows.export import export

    with _client_of(prefect_on_postgres):
        folder = tmp_path_factory.mktemp("burst")
        deployment = export.to_deployment(name="orders-api", parameters=api_parameters(folder))
        assert isinstance(deployment, RunnerDeployment)  # called outside a loop: not awaitable
        deployment.apply()
        forget_secrets()  # the session server's secret may be cached in this process
        try:
            init_secret()
            key, record = create_key(IDLE_DEPLOYMENT, "burst")
        finally:
            forget_secrets()  # later tests read their own server's secret again
    yield key, record.key_id


@pytest.fixture(scope="module")
def burst_gateway(
    prefect_on_postgres: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """`exports gateway` against that server: (its URL, its log file)."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("burst-gateway") / "gateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "deployments.cli", "gateway", "--port", str(port)],
            cwd=REPO_ROOT, env=prefect_on_postgres.env(), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/healthz", 60, process=process, log=log_path)
        yield url, log_path
    finally:
        stop_process(process)


@contextmanager
def _client_of(server: PrefectServer) -> Iterator[None]:
    """This process's Prefect client talks to `server` (not the session's, nor a closed port).

    Prefect's events and log workers are one per process, bound to the API of their first
    use: drained on the way out, the next use makes them for the session's server again (made
    here, they kept sending every later test's task-run events to this server once it was
    stopped, and the session's API never saw those tasks)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    with temporary_settings({PREFECT_API_URL: server.url, PREFECT_CLIENT_MAX_RETRIES: 5}):
        try:
            yield
        finally:
            EventsWorker.drain_all(timeout=30)
            APILogWorker.drain_all(timeout=30)


@dataclass(frozen=True)
class Burst:
    """What the callers of one burst saw."""

    answers: list[tuple[str, int, str, float]]  # Idempotency-Key, status, run id (or body), s
    healthz_s: list[float]  # GET /healthz, polled every 0.1 s while the burst was answered


async def _fire(url: str, key: str, values: list[str]) -> Burst:
    """POST every trigger at once while a liveness probe (another process) polls /healthz."""

    async def one(client: httpx.AsyncClient, value: str) -> tuple[str, int, str, float]:
        started = time.perf_counter()
        answer = await client.post(
            f"{url}/v1/exports/trigger", headers={**auth(key), "Idempotency-Key": value}
        )
        seconds = time.perf_counter() - started
        run = answer.json().get("export_request_id") if answer.status_code == 202 else None
        return value, answer.status_code, run or answer.text, seconds

    limits = httpx.Limits(max_connections=len(values), max_keepalive_connections=0)
    probe = LivenessProbe(f"{url}/healthz")
    try:
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            answers = await asyncio.gather(*(one(client, value) for value in values))
    finally:
        healthz = probe.stop()
    return Burst(answers, healthz)


@pytest.fixture(scope="module")
def burst(trigger_key: tuple[str, str], burst_gateway: tuple[str, Path]) -> Burst:
    """150 triggers at once, each with its own Idempotency-Key, and every fifth key sent a
    second time at the same moment (a client's retry racing its first request)."""
    values = [f"burst-{index:03d}" for index in range(TRIGGERS)]
    requests = values + values[::RESENT_EVERY]
    random.Random(17).shuffle(requests)
    return asyncio.run(_fire(burst_gateway[0], trigger_key[0], requests))


def _runs_of_deployment(deployment_id: uuid.UUID) -> list[FlowRun]:
    runs: list[FlowRun] = []
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                limit=200,
                offset=len(runs),
            )
            runs.extend(page)
            if len(page) < 200:
                return runs


def test_a_burst_of_150_triggers_on_postgres_gets_one_run_per_idempotency_key(
    prefect_on_postgres: PrefectServer,
    trigger_key: tuple[str, str],
    burst_gateway: tuple[str, Path],
    burst: Burst,
) -> None:
    """Issue 17: 150 triggers at once against a Prefect server on PostgreSQL, every fifth
    Idempotency-Key sent twice at the same moment: every answer is 202, both answers of a resent
    key name the same run, the server holds exactly one run per key, and neither the server
    nor the gateway logged an error."""
    assert [(value, status, run) for value, status, run, _ in burst.answers if status != 202] == []
    runs_by_value: dict[str, set[str]] = {}
    for value, _, run, _ in burst.answers:
        runs_by_value.setdefault(value, set()).add(run)
    assert {value: runs for value, runs in runs_by_value.items() if len(runs) != 1} == {}
    with _client_of(prefect_on_postgres):
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(IDLE_DEPLOYMENT)
        runs = _runs_of_deployment(deployment.id)
    key_id = trigger_key[1]
    on_server = sorted((run.idempotency_key or "", str(run.id)) for run in runs)
    answered = sorted((f"api:{key_id}:{value}", run) for value, (run,) in runs_by_value.items())
    assert on_server == answered
    assert len(on_server) == TRIGGERS
    for name, log in (("Prefect server", prefect_on_postgres.log), ("gateway", burst_gateway[1])):
        errors = [line for line in log.read_text().splitlines() if SERVER_ERRORS.search(line)]
        assert errors == [], f"the {name} logged errors under the burst"


def test_the_gateway_stays_live_during_the_burst(burst: Burst) -> None:
    """Issue 17: /healthz answers within a second all through a burst of 150 triggers (a
    liveness probe's usual timeout; a slower answer gets the gateway restarted mid-burst).
    It took 5.4 s when each Prefect client the gateway made loaded the CA bundle anew."""
    assert len(burst.healthz_s) >= 5, "the probe ran during the burst"
    slowest = max(burst.healthz_s)
    assert slowest < HEALTHZ_LIMIT_S, f"/healthz took {slowest:.2f} s during the burst"
