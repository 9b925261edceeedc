"""Every store is registered once (flows/destinations/registry.py): what each URL scheme means,
and which of its SDK's failures are worth retrying (by type and status code, not by words).
The exceptions are the SDKs' own classes, built as the SDKs build them."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError
from botocore.exceptions import ClientError, EndpointConnectionError
from gcsfs.retry import HttpError

from blocks import AzureBlobCredentials, GcsCredentials, S3Credentials, SftpCredentials
from flows.core.errors import ConfigurationError, TransientDeliveryError
from flows.destinations.registry import STORES, check_destination_url, store_for, store_name

pytestmark = pytest.mark.unit


def test_each_scheme_has_one_store() -> None:
    schemes = [scheme for store in STORES for scheme in store.schemes]
    assert len(schemes) == len(set(schemes))
    assert {scheme: store_for(f"{scheme}://host/x.csv").name for scheme in schemes} == {
        "file": "Local folder",
        "local": "Local folder",
        "s3": "Amazon S3",
        "gs": "Google Cloud Storage",
        "gcs": "Google Cloud Storage",
        "az": "Azure Blob Storage",
        "abfs": "Azure Blob Storage",
        "sftp": "SFTP",
        "http": "HTTP",
        "https": "HTTP",
    }
    assert store_for("out/orders.csv").name == store_name("out/x") == "Local folder"


def test_each_store_names_its_block() -> None:
    assert store_for("s3://b/k").block_types == (S3Credentials,)
    assert store_for("gs://b/k").block_types == (GcsCredentials,)
    assert store_for("az://c/b").block_types == (AzureBlobCredentials,)
    assert store_for("sftp://h/p").block_types == (SftpCredentials,)


def test_an_unsupported_scheme_lists_the_supported_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"scheme `ftp://` is not supported; use a "):
        check_destination_url("ftp://host/{export}.csv", split=False)


def _s3_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "..."}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


@pytest.mark.parametrize(
    ("url", "error", "transient"),
    [
        ("s3://b/k", _s3_error("SlowDown", 503), True),
        ("s3://b/k", _s3_error("InternalError", 500), True),
        ("s3://b/k", _s3_error("AccessDenied", 403), False),
        ("s3://b/k", EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), True),
        ("gs://b/k", HttpError({"code": 503, "message": "Service Unavailable"}), True),
        ("gs://b/k", HttpError({"code": 404, "message": "Not Found"}), False),
        ("az://c/b", ServiceRequestError("connection refused"), True),
        ("az://c/b", HttpResponseError(message="busy", response=None), False),
        ("sftp://h/p", ConnectionResetError("reset by peer"), True),
        ("sftp://h/p", PermissionError("Permission denied"), False),
    ],
)
def test_transient_failures_by_type_and_status(url: str, error: Exception, transient: bool) -> None:
    try:
        raise OSError("the filesystem's own error") from error  # as s3fs and adlfs wrap them
    except OSError as wrapped:
        failure = store_for(url).failure(wrapped, "x")
    assert isinstance(failure, TransientDeliveryError) is transient
