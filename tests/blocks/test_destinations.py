"""Destination credential blocks: saved and loaded through the real Prefect API, secrets hidden."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from blocks import (
    AzureBlobCredentials,
    GcsCredentials,
    HttpPostTarget,
    S3Credentials,
    SftpCredentials,
)


@pytest.mark.usefixtures("prefect_api")
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


@pytest.mark.usefixtures("prefect_api")
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


@pytest.mark.unit
def test_gcs_kms_key_name_goes_to_the_filesystem() -> None:
    key = "projects/acme-data/locations/europe-west1/keyRings/exports/cryptoKeys/partner_1"
    block = GcsCredentials(anonymous=True, kms_key_name=key)
    assert block.filesystem_options() == {
        "block_size": 8 * 1024 * 1024,
        "token": "anon",
        "kms_key_name": key,
    }
    assert "kms_key_name" not in GcsCredentials(anonymous=True).filesystem_options()


@pytest.mark.parametrize(
    "name",
    [
        "partner-files",  # a key's short name
        "projects/p1/locations/eu/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",  # a version
        "projects/p1/locations/eu/keyRings/r",  # a key ring
        "projects/p1/locations/eu/keyRings/r/cryptoKeys/",
        "//cloudkms.googleapis.com/projects/p1/locations/eu/keyRings/r/cryptoKeys/k",
    ],
)
@pytest.mark.unit
def test_gcs_kms_key_name_must_be_a_key_resource_name(name: str) -> None:
    with pytest.raises(ValidationError) as raised:
        GcsCredentials(kms_key_name=name)
    assert (
        f"kms_key_name `{name}` is not a Cloud KMS key's resource name; give "
        "projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY (the key, not one "
        "of its cryptoKeyVersions)"
    ) in str(raised.value)


@pytest.mark.usefixtures("prefect_api")
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


@pytest.mark.unit
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
@pytest.mark.unit
def test_azure_credentials_name_what_is_wrong(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)) as raised:
        AzureBlobCredentials(**fields)  # type: ignore[arg-type]
    assert "AccountKey=k" not in str(raised.value), "the input (secrets) is shown"


@pytest.mark.parametrize(
    "scope", ["ab", "partner files", "scope/1", "x" * 64, "Partner", "a--b", "-abc", "abc-"]
)
@pytest.mark.unit
def test_azure_encryption_scope_must_be_a_scope_name(scope: str) -> None:
    with pytest.raises(ValidationError) as raised:
        AzureBlobCredentials(account_name="acme", encryption_scope=scope)
    assert (
        f"encryption_scope `{scope}` is not an encryption scope's name; give the name of one "
        "of the storage account's scopes (3 to 63 lower-case letters, digits and hyphens, a "
        "hyphen between two of the others)"
    ) in str(raised.value)
    for good in ("abc", "partner-files-2", "x" * 63):
        assert AzureBlobCredentials(account_name="acme", encryption_scope=good).encryption_scope


@pytest.mark.usefixtures("prefect_api")
def test_sftp_credentials_round_trip_and_hide_the_secrets() -> None:
    import asyncssh
    import paramiko

    key = asyncssh.generate_private_key("ssh-ed25519")
    text = bytes(key.export_private_key("openssh", passphrase="phrase-1")).decode()
    SftpCredentials(
        username="exporter",
        password="pw-secret",
        private_key=text,
        private_key_passphrase="phrase-1",
        port=2222,
        known_hosts="[sftp.example]:2222 ssh-ed25519 AAAA",
        known_hosts_policy="warn",
        timeout_s=5,
    ).save("blocks-test-sftp", overwrite=True)
    loaded = SftpCredentials.load("blocks-test-sftp")
    shown = repr(loaded)
    assert "pw-secret" not in shown and "PRIVATE KEY" not in shown and "phrase-1" not in shown
    options = loaded.filesystem_options()
    pkey = options.pop("pkey")
    assert isinstance(pkey, paramiko.Ed25519Key)
    assert pkey.asbytes() == paramiko.Ed25519Key(data=key.public_data).asbytes()
    assert options == {
        "timeout": 5.0,
        "host_key_policy": "warn",
        "username": "exporter",
        "port": 2222,
        "known_hosts": "[sftp.example]:2222 ssh-ed25519 AAAA",
        "password": "pw-secret",
        "allow_agent": False,
        "look_for_keys": False,
    }


@pytest.mark.unit
def test_sftp_credentials_defaults_leave_the_ssh_environment_on() -> None:
    assert SftpCredentials(username="u").filesystem_options() == {
        "timeout": 30.0,
        "host_key_policy": "reject",
        "username": "u",
    }


@pytest.mark.parametrize(
    ("key", "passphrase", "expected"),
    [
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n", None, "not a readable"),
        ("encrypted", None, "private_key_passphrase is empty"),
        ("encrypted", "wrong-phrase", "private_key_passphrase is wrong"),
    ],
)
@pytest.mark.unit
def test_sftp_private_key_errors_name_the_field_not_the_key(
    key: str, passphrase: str | None, expected: str
) -> None:
    import asyncssh

    if key == "encrypted":
        generated = asyncssh.generate_private_key("ssh-ed25519")
        key = bytes(generated.export_private_key("openssh", passphrase="right")).decode()
    block = SftpCredentials(username="u", private_key=key, private_key_passphrase=passphrase)
    with pytest.raises(ValueError, match="SftpCredentials.private_key") as caught:
        block.filesystem_options()
    assert expected in str(caught.value)
    assert key.splitlines()[1] not in str(caught.value)


@pytest.mark.usefixtures("prefect_api")
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


@pytest.mark.unit
def test_http_post_target_keeps_authorization_out_of_plain_headers() -> None:
    with pytest.raises(ValidationError, match="headers: `authorization` cannot be set here"):
        HttpPostTarget(headers={"authorization": "Bearer leaked"})
