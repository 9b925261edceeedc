"""The Prefect integrations' blocks a user already keeps, named in destination.block and
source.block: prefect-aws against moto, prefect-gcp against the GCS emulator (with a real
OAuth token endpoint on loopback for its service account), prefect-azure against Azurite,
prefect-sqlalchemy against PostgreSQL. Each export is read back from the store and compared
with the database, and leaves nothing but its file."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from prefect_aws import AwsClientParameters, AwsCredentials
from prefect_aws.s3 import S3Bucket
from prefect_azure import AzureBlobStorageCredentials
from prefect_azure.blob_storage import AzureBlobStorageContainer
from prefect_gcp import GcpCredentials
from prefect_gcp.cloud_storage import GcsBucket
from prefect_sqlalchemy import ConnectionComponents, SqlAlchemyConnector
from prefect_sqlalchemy.database import AsyncSqlAlchemyConnector

from flows.core.errors import ConfigurationError
from flows.export import export
from tests.flows.conftest import demo_dataset, url_for_psycopg
from tests.flows.destinations.stores import StoreUnderTest, az_store, gcs_store, s3_store
from tests.flows.formats.test_roundtrip import assert_round_trip
from tests.servers import AzuriteServer, GcsServer, S3Server

pytestmark = pytest.mark.usefixtures("prefect_api")


def block_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def export_orders(demo_db: Path, url: str, block: str) -> list[str]:
    result = export(
        source={"url": f"sqlite:///{demo_db}", "table": "orders"},
        destination={"url": url, "block": block},
    )
    return result.files


def assert_delivered(store: StoreUnderTest, name: str, folder: Path) -> None:
    assert store.names() == [name], "the file, and no temporary object or open upload"
    assert_round_trip("csv", store.download(name, folder), demo_dataset("orders"))


def test_aws_credentials_and_an_s3_bucket_block(
    demo_db: Path, s3: S3Server, tmp_path: Path
) -> None:
    store = s3_store(s3)
    credentials = AwsCredentials(
        aws_access_key_id=S3Server.ACCESS_KEY,
        aws_secret_access_key=S3Server.SECRET_KEY,
        region_name="us-east-1",
        aws_client_parameters=AwsClientParameters(endpoint_url=s3.endpoint_url),
    )
    aws = block_name("aws")
    credentials.save(aws)
    files = export_orders(demo_db, store.url("aws/{export}.{ext}"), aws)  # found by name
    assert files == [store.url("aws/orders.csv")]
    assert_delivered(store, "aws/orders.csv", tmp_path)

    bucket = block_name("bucket")
    S3Bucket(bucket_name=store.container, credentials=credentials).save(bucket)
    export_orders(demo_db, store.url("bucket/{export}.{ext}"), f"s3-bucket/{bucket}")
    assert "bucket/orders.csv" in store.names()
    with pytest.raises(ConfigurationError) as raised:
        export_orders(demo_db, "s3://another-bucket/{export}.{ext}", f"s3-bucket/{bucket}")
    assert (
        f"destination.block: the block is for bucket `{store.container}`, but destination.url "
        "names `another-bucket`"
    ) in str(raised.value)


@pytest.fixture
def token_endpoint() -> Iterator[str]:
    """Google's OAuth token endpoint as a service account's key file names it, on loopback:
    it hands out a token for any signed assertion (the emulator takes any token)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"access_token": "test-token", "expires_in": 3600}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/token"
    finally:
        server.shutdown()
        server.server_close()


def service_account(token_uri: str) -> dict[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": "exports-test",
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem,
        "client_email": "exports@exports-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }


def test_gcp_credentials_and_a_gcs_bucket_block(
    demo_db: Path,
    gcs: GcsServer,
    token_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = gcs_store(gcs)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.endpoint_url)  # GcpCredentials has no endpoint
    credentials = GcpCredentials(
        service_account_info=service_account(token_endpoint), project="exports-test"
    )
    gcp = block_name("gcp")
    credentials.save(gcp)
    export_orders(demo_db, store.url("gcp/{export}.{ext}"), f"gcp-credentials/{gcp}")
    assert_delivered(store, "gcp/orders.csv", tmp_path)

    bucket = block_name("gcs-bucket")
    GcsBucket(bucket=store.container, gcp_credentials=credentials).save(bucket)
    export_orders(demo_db, store.url("bucket/{export}.{ext}"), bucket)
    assert "bucket/orders.csv" in store.names()


def test_azure_blob_storage_credentials_and_container_blocks(
    demo_db: Path, azurite: AzuriteServer, tmp_path: Path
) -> None:
    store = az_store(azurite)
    credentials = AzureBlobStorageCredentials(connection_string=azurite.connection_string())
    azure = block_name("azure")
    credentials.save(azure)
    export_orders(demo_db, store.url("azure/{export}.{ext}"), azure)
    assert_delivered(store, "azure/orders.csv", tmp_path)

    container = block_name("container")
    AzureBlobStorageContainer(container_name=store.container, credentials=credentials).save(
        container
    )
    export_orders(
        demo_db, store.url("container/{export}.{ext}"), f"azure-blob-storage-container/{container}"
    )
    assert "container/orders.csv" in store.names()


def test_a_sqlalchemy_connector_as_the_source(pg_url: str, tmp_path: Path) -> None:
    with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE visits (id int, page text)")
        conn.execute("INSERT INTO visits VALUES (1, 'home'), (2, 'cart')")
        info = conn.info
        components = {
            "host": info.host,
            "port": info.port,
            "username": info.user,
            "password": info.password or None,
            "database": info.dbname,
        }
    name = block_name("warehouse")
    SqlAlchemyConnector(
        connection_info=ConnectionComponents(driver="postgresql+psycopg", **components)
    ).save(name)
    pooled = block_name("async-warehouse")  # an async driver: exports read with psycopg
    AsyncSqlAlchemyConnector(
        connection_info=ConnectionComponents(driver="postgresql+asyncpg", **components)
    ).save(pooled)
    for block in (name, f"sqlalchemy-connector/{name}", pooled):
        result = export(
            source={"block": block, "table": "visits"},
            destination={"url": str(tmp_path / block.replace("/", "_") / "{export}.{ext}")},
        )
        [path] = result.files
        assert Path(path).read_text() == "id,page\n1,home\n2,cart\n"


def test_a_name_no_block_has_lists_the_types_looked_for(demo_db: Path, s3: S3Server) -> None:
    store = s3_store(s3)
    with pytest.raises(ConfigurationError) as raised:
        export_orders(demo_db, store.url("{export}.{ext}"), "nope")
    assert (
        "destination.block: no saved S3Credentials block named `nope` (nor AwsCredentials, "
        "S3Bucket, MinIOCredentials)"
    ) in str(raised.value)
    with pytest.raises(ConfigurationError) as raised:
        export_orders(demo_db, store.url("{export}.{ext}"), "gcs-bucket/x")
    assert "`gcs-bucket` is not a block type it takes" in str(raised.value)
