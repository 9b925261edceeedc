"""Session-wide real servers: a Prefect API (prefect_test_harness), PostgreSQL 15, S3 (moto),
GCS (gcp-storage-emulator), Azure Blob (Azurite), SFTP (asyncssh); and `store`, each object
store in turn with a fresh bucket on its server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from tests.destinations.stores import STORE_KEYS, StoreUnderTest, az_store, gcs_store, s3_store
from tests.servers import (
    AzuriteServer,
    GcsServer,
    PostgresServer,
    S3Server,
    SftpServer,
    WebhookReceiver,
    start_azurite,
    start_gcs,
    start_postgres,
    start_s3,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DB = REPO_ROOT / "demo" / "demo.sqlite"


@pytest.fixture(scope="session", autouse=True)
def prefect_api() -> Iterator[None]:
    """One temporary Prefect server and database for the whole test session."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


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


@pytest.fixture
def demo_db() -> Path:
    assert DEMO_DB.is_file(), (
        "demo/demo.sqlite is committed; rebuild with python -m deployments.demo"
    )
    return DEMO_DB


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port."""
    server = start_s3()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gcs() -> Iterator[GcsServer]:
    """gcp-storage-emulator on a free loopback port."""
    server = start_gcs()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteServer]:
    """Azurite's Blob service on a free loopback port."""
    server = start_azurite()
    try:
        yield server
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
