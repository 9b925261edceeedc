"""Destination credential blocks: saved and loaded through the real Prefect API, secrets hidden."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from blocks import AzureBlobCredentials, GcsCredentials, S3Credentials


def test_s3_credentials_round_trip_and_hide_the_secret() -> None:
    S3Credentials(
        aws_access_key_id="AKIAEXAMPLE",
        aws_secret_access_key="very-secret",
        aws_session_token="session-secret",
        region_name="eu-west-1",
        endpoint_url="http://127.0.0.1:9",
        server_side_encryption="aws:kms",
        sse_kms_key_id="key-1",
        part_size_mb=16,
    ).save("blocks-test-s3", overwrite=True)
    loaded = S3Credentials.load("blocks-test-s3")
    assert "very-secret" not in repr(loaded) and "session-secret" not in repr(loaded)
    assert loaded.filesystem_options() == {
        "default_block_size": 16 * 1024 * 1024,
        "key": "AKIAEXAMPLE",
        "secret": "very-secret",
        "token": "session-secret",
        "endpoint_url": "http://127.0.0.1:9",
        "client_kwargs": {"region_name": "eu-west-1"},
        "s3_additional_kwargs": {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "key-1"},
    }


def test_gcs_credentials_round_trip_and_hide_the_key() -> None:
    key = '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----x"}'
    GcsCredentials(service_account_info=key, project="p", part_size_mb=4).save(
        "blocks-test-gcs", overwrite=True
    )
    loaded = GcsCredentials.load("blocks-test-gcs")
    assert "PRIVATE KEY" not in repr(loaded)
    assert loaded.filesystem_options() == {
        "block_size": 4 * 1024 * 1024,
        "token": {"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----x"},
        "project": "p",
    }


def test_azure_credentials_round_trip_and_hide_the_key() -> None:
    AzureBlobCredentials(
        account_name="acme", account_key="a2V5LXNlY3JldA==", part_size_mb=4, retries=5
    ).save("blocks-test-azure", overwrite=True)
    loaded = AzureBlobCredentials.load("blocks-test-azure")
    assert "a2V5LXNlY3JldA==" not in repr(loaded)
    assert loaded.filesystem_options() == {
        "blocksize": 4 * 1024 * 1024,
        "account_name": "acme",
        "account_key": "a2V5LXNlY3JldA==",
    }
    assert loaded.retry_options() == {"retries": 5, "backoff_s": 15}


def test_azure_sas_with_an_http_endpoint_becomes_a_connection_string() -> None:
    block = AzureBlobCredentials(
        account_name="devstoreaccount1",
        sas_token="?sv=2024&sig=abc",
        blob_endpoint="http://127.0.0.1:10000/devstoreaccount1/",
    )
    assert block.filesystem_options()["connection_string"] == (
        "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;SharedAccessSignature=sv=2024&sig=abc;"
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"account_name": "a", "account_key": "k", "sas_token": "s"},
         "give one of connection_string, account_key or sas_token, not account_key and sas_token"),
        ({"account_key": "k"}, "account_name is required unless a connection_string is given"),
        ({"connection_string": "AccountName=a;AccountKey=k", "account_name": "a"},
         "leave account_name and blob_endpoint empty"),
        ({"account_name": "a", "account_key": "k", "blob_endpoint": "127.0.0.1:10000"},
         "must be a URL starting with https://"),
        ({"account_name": "a", "blob_endpoint": "http://127.0.0.1:10000/a"},
         "an http:// blob_endpoint needs account_key or sas_token"),
    ],
)  # fmt: skip
def test_azure_credentials_name_what_is_wrong(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)) as raised:
        AzureBlobCredentials(**fields)  # type: ignore[arg-type]
    assert "AccountKey=k" not in str(raised.value), "the input (secrets) is shown"
