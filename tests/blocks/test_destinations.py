"""Destination credential blocks: saved and loaded through the real Prefect API, secrets hidden."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from blocks import GcsCredentials, HttpPostTarget, S3Credentials


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


def test_http_post_target_round_trip_and_hide_the_authorization() -> None:
    HttpPostTarget(
        authorization="Bearer very-secret-token",
        accept="application/json",
        headers={"X-Tenant": "acme", "Content-Type": "text/plain"},
        timeout_s=5,
        verify_tls=False,
    ).save("blocks-test-http", overwrite=True)
    loaded = HttpPostTarget.load("blocks-test-http")
    assert "very-secret-token" not in repr(loaded)
    assert (loaded.timeout_s, loaded.verify_tls) == (5, False)
    assert loaded.request_headers() == {
        "User-Agent": loaded.user_agent,
        "X-Tenant": "acme",
        "Content-Type": "text/plain",
        "Accept": "application/json",
        "Authorization": "Bearer very-secret-token",
    }
    assert loaded.user_agent.startswith("prefect-exports/")


def test_http_post_target_keeps_authorization_out_of_plain_headers() -> None:
    with pytest.raises(ValidationError, match="headers: `authorization` cannot be set here"):
        HttpPostTarget(headers={"authorization": "Bearer leaked"})
