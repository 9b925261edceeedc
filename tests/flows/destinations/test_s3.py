"""What only Amazon S3 has, against moto's S3 server on loopback: the AWS_* environment path.
What every store does is in test_stores.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.export import export
from tests.flows.conftest import demo_dataset
from tests.flows.destinations.stores import StoreUnderTest, s3_store
from tests.flows.formats.test_roundtrip import assert_round_trip
from tests.servers import S3Server

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def s3_store_(s3: S3Server) -> StoreUnderTest:
    return s3_store(s3)


def test_aws_variables_without_a_block(
    demo_db: Path, s3: S3Server, s3_store_: StoreUnderTest, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3Server.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3Server.SECRET_KEY)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    result = export(
        source={"url": f"sqlite:///{demo_db}", "table": "orders"},
        destination={"url": s3_store_.url("env/{export}.{ext}")},
    )
    assert result.files == [s3_store_.url("env/orders.csv")]
    path = s3_store_.download("env/orders.csv", tmp_path)
    assert_round_trip("csv", path, demo_dataset("orders"))
