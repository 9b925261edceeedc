"""Session-wide real servers, each started by the first test that asks for it: a Prefect API
(`prefect_api`, prefect_test_harness), PostgreSQL 15, S3 (moto), GCS (gcp-storage-emulator),
Azure Blob (Azurite), SFTP (asyncssh); and `store`, each object store in turn with a fresh
bucket on its server.

Two tiers: tests marked `unit` (`pytest -m unit`) use none of these, and a test that did not
ask for `prefect_api` gets no Prefect API at all (so it cannot start one by accident).
"""

from __future__ import annotations

import asyncio
import sys
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import Task
from prefect.context import SettingsContext, get_settings_context
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_CLIENT_MAX_RETRIES,
    PREFECT_SERVER_DATABASE_CONNECTION_URL,
    Settings,
)
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy.engine import make_url

from deployments.gateway import keys
from tests.flows.destinations.stores import (
    STORE_KEYS,
    StoreUnderTest,
    az_store,
    azurite_leftovers,
    gcs_leftovers,
    gcs_store,
    s3_leftovers,
    s3_store,
)
from tests.leaks import REGISTRY, files_under, record_keys, temporary_files
from tests.pgp_keys import TestKeys, make_keys, stop_agents
from tests.servers.azurite import AzuriteServer, start_azurite
from tests.servers.gcs import GcsServer, start_gcs
from tests.servers.mariadb import MariaDbServer, start_mariadb
from tests.servers.postgres import PostgresServer, start_postgres
from tests.servers.receiver import WebhookReceiver
from tests.servers.s3 import S3Server, start_s3
from tests.servers.sftp import SftpServer

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DB = REPO_ROOT / "demo" / "demo.sqlite"
# The fixtures that start a server; every other server fixture depends on one of them.
SERVER_FIXTURES = frozenset({"prefect_api", "postgres", "s3", "gcs", "azurite", "sftp", "receiver"})
# Where a test that did not ask for the Prefect API finds it: a closed port, so any call fails
# at once (with no PREFECT_API_URL, Prefect would start a temporary server of its own).
NO_PREFECT_API = "http://127.0.0.1:9/api"


# Tests that take the machine for themselves (a memory limit, a burst of 150 triggers, the
# Prefect API stopped, a browser, timed signals, tmpfs and relay faults): marked `solo`, they
# run after the parallel part of `make test`, one at a time, so no other test's load moves
# their timings.
SOLO = (
    "tests/faults/",
    "tests/ui/",
    "tests/deployments/gateway/test_burst.py",
    # schemathesis gives its 4 cases one node id, which xdist reports once
    "tests/deployments/gateway/test_app_fuzz.py",
    "tests/deployments/triggers/test_serve_signals.py",
)


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A `unit` test starts nothing: using a server fixture is a mistake in the test."""
    for item in items:
        if item.nodeid.startswith(SOLO):
            item.add_marker(pytest.mark.solo)
        if item.get_closest_marker("unit") is None:
            continue
        servers = SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if servers:
            raise pytest.UsageError(
                f"{item.nodeid} is marked unit but uses {', '.join(sorted(servers))}"
            )


# Prefect API URLs a test gets only by asking for `prefect_api`: the session's temporary server
# and whatever the environment set (a developer's server must not see the tests' runs).
def _api_url() -> str:
    return str(PREFECT_API_URL.value() or "")


_SHARED_APIS: set[str] = {_api_url()}

record_keys(keys)
REGISTRY.remember("the S3 test server's secret key", S3Server.SECRET_KEY)
REGISTRY.remember("the SFTP test server's password", SftpServer.PASSWORD)
REGISTRY.remember("the Azurite account key", AzuriteServer.KEY)


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One temporary Prefect server and database for the whole test session, for the tests
    that ask for it (`pytestmark = pytest.mark.usefixtures("prefect_api")`).

    At the session's end it scans for secrets (tests/leaks.py): the server's database file
    (logs, artifacts, parameters, states), every file the tests wrote, and the alerts that
    reached the receivers must hold none."""
    with prefect_test_harness(server_startup_timeout=120):
        _SHARED_APIS.add(_api_url())
        database = Path(make_url(PREFECT_SERVER_DATABASE_CONNECTION_URL.value()).database or "")
        yield
        _remember_master_secrets()
    places = [
        *database.parent.glob(database.name + "*"),
        *files_under(tmp_path_factory.getbasetemp()),
    ]
    leaks = REGISTRY.findings(places)
    assert not leaks, "secrets written where they must not be:\n" + "\n".join(leaks)
    left = temporary_files(tmp_path_factory.getbasetemp())
    assert not left, "temporary files left behind:\n" + "\n".join(left)


def _remember_master_secrets() -> None:
    from prefect.blocks.system import Secret

    from deployments.gateway.master_secrets import SECRETS_BLOCK

    try:
        value = str(Secret.load(SECRETS_BLOCK).get())
    except ValueError:  # no test made one
        return
    for secret in value.split(","):
        REGISTRY.remember("a master secret", secret.strip())


@pytest.fixture(autouse=True)
def _no_unasked_prefect_api(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests that did not ask for `prefect_api` see none (unless they started a server of their
    own): a test that needs it without saying so fails at once instead of starting one."""
    if "prefect_api" in request.fixturenames or _api_url() not in _SHARED_APIS:
        yield
        return
    with _settings_without_api():
        yield


# The settings without an API, made once per settings they replace: Prefect's
# temporary_settings rebuilds them each time (~75 ms, the unit tier's largest cost per test).
_WITHOUT_API: dict[int, tuple[Settings, Settings]] = {}


def _settings_without_api() -> SettingsContext:
    """What temporary_settings({PREFECT_API_URL: NO_PREFECT_API, ...}) enters, cached."""
    current = get_settings_context()
    made = _WITHOUT_API.get(id(current.settings))
    if made is None or made[0] is not current.settings:
        updates = {PREFECT_API_URL: NO_PREFECT_API, PREFECT_CLIENT_MAX_RETRIES: 0}
        made = (current.settings, current.settings.copy_with_update(updates=updates))  # type: ignore[arg-type]
        _WITHOUT_API[id(current.settings)] = made
    return SettingsContext(profile=current.profile, settings=made[1])


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL 15 cluster on a free loopback port."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, uniquely named database for one test; dropped afterwards."""
    name = postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")
    try:
        yield postgres.url(name)
    finally:
        postgres.drop_database(name)


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDbServer]:
    """A private MariaDB server (Debian's mariadb-server) on a free loopback port."""
    server = start_mariadb()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mariadb_url(mariadb: MariaDbServer) -> Iterator[str]:
    """A fresh, uniquely named MariaDB database for one test; dropped afterwards."""
    name = mariadb.create_database(f"t_{uuid.uuid4().hex[:12]}")
    try:
        yield mariadb.url(name)
    finally:
        mariadb.drop_database(name)


@pytest.fixture
def demo_db() -> Path:
    assert DEMO_DB.is_file(), "demo/demo.sqlite is committed; rebuild with python -m demo.build"
    return DEMO_DB


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port."""
    server = start_s3()
    try:
        yield server
        left = s3_leftovers(server)
        assert not left, "left in the S3 server's buckets:\n" + "\n".join(left)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gcs() -> Iterator[GcsServer]:
    """gcp-storage-emulator on a free loopback port."""
    server = start_gcs()
    try:
        yield server
        left = gcs_leftovers(server)
        assert not left, "left in the GCS server's buckets:\n" + "\n".join(left)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteServer]:
    """Azurite's Blob service on a free loopback port."""
    server = start_azurite()
    try:
        yield server
        left = azurite_leftovers(server)
        assert not left, "left in the Azurite server's buckets:\n" + "\n".join(left)
    finally:
        server.stop()


@pytest.fixture(params=STORE_KEYS)
def store(request: pytest.FixtureRequest) -> StoreUnderTest:
    key = request.param
    if key == "s3":
        return s3_store(request.getfixturevalue("s3"))
    if key == "gcs":
        return gcs_store(request.getfixturevalue("gcs"))
    return az_store(request.getfixturevalue("azurite"))


@pytest.fixture(scope="session")
def sftp() -> Iterator[SftpServer]:
    """asyncssh's SFTP server on a free loopback port, serving a temporary folder."""
    server = SftpServer()
    try:
        yield server
        left = temporary_files(server.root)
        assert not left, "temporary files left on the SFTP server:\n" + "\n".join(left)
    finally:
        server.close()


@pytest.fixture
def sftp_folder(sftp: SftpServer) -> Iterator[str]:
    """A fresh folder on the SFTP server for one test (its path on the server); the
    server's faults are cleared afterwards."""
    name = f"/exports-{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        sftp.clear_faults()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A real HTTP server on loopback that records every request (webhooks, HTTP POST)."""
    server = WebhookReceiver()
    try:
        yield server
    finally:
        server.stop()
        REGISTRY.alert_bodies.extend(request.body for request in server.requests)


@pytest.fixture
def no_retry_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every wait between two attempts cut to (almost) nothing, in this process only (not in a
    subprocess or a dask worker): the flow's tasks' (2 s, then 10 s: flows/runs/retries.py),
    the alert webhook's (0.5 s, doubled each time) and the store clients' own, none of which
    is configurable (botocore's and s3fs's per request; gcsfs's 1, 2, 4, 8 and 16 s over the
    six tries of each request). A test whose source, store or webhook fails on purpose counts
    attempts, not waits: every attempt, status and retry condition stays as it is."""
    import aiobotocore.endpoint
    import gcsfs.retry
    import s3fs.core

    import flows.alerts.webhook
    import flows.export  # noqa: F401 - imports every module of the flow's tasks
    from flows.runs.retries import RETRY_TRANSIENT

    delays = RETRY_TRANSIENT["retry_delay_seconds"]
    tasks = {
        id(value): value
        for name, module in list(sys.modules.items())
        if name.startswith("flows.")
        for value in list(vars(module).values())
        if isinstance(value, Task)
        and value.retry_condition_fn is RETRY_TRANSIENT["retry_condition_fn"]
    }
    assert tasks, "no task of the flow retries"
    for task in tasks.values():
        monkeypatch.setattr(task, "retry_delay_seconds", [0.01] * len(delays))

    async def no_sleep(*_args: object) -> None:
        await asyncio.sleep(0)  # still lets the other tasks of the loop run

    shim = types.SimpleNamespace(**{**vars(asyncio), "sleep": no_sleep})
    monkeypatch.setattr(gcsfs.retry, "asyncio", shim)
    monkeypatch.setattr(s3fs.core, "asyncio", shim)
    monkeypatch.setattr(aiobotocore.endpoint.AioEndpoint, "_sleep", no_sleep)
    monkeypatch.setattr(flows.alerts.webhook, "BACKOFF_S", 0.001)


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[str]:
    """A dask.distributed cluster of two worker processes on loopback: its scheduler's address."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
    ) as cluster:
        yield str(cluster.scheduler_address)


@pytest.fixture(scope="session")
def pgp_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestKeys]:
    """OpenPGP keys made with the gpg command line, each in its own keyring
    (tests/pgp_keys.py): two recipients, a signer with a passphrase, and bad keys."""
    made = make_keys(tmp_path_factory.mktemp("pgp"))
    try:
        yield made
    finally:
        stop_agents(made.all())
