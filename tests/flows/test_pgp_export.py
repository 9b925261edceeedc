"""`destination.pgp` through the real flow, with keys saved as blocks in a real Prefect API:
what a partner receives is checked the way a partner checks it, with the gpg command line in
each recipient's own keyring (and gzip -d), and the keys that cannot be used are refused
before any row is read."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import sqlite3
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from blocks import OpenPgpPublicKey, OpenPgpSigningKey, SftpCredentials
from deployments.audit import AuditQuery, read_audit
from flows.core.config import FormatOptions
from flows.core.errors import ConfigurationError
from flows.core.targets import TargetContext
from flows.export import export
from flows.request import DestinationConfig
from flows.sink import PartSink
from tests.flows.destinations.stores import measure_large_exports, s3_store
from tests.pgp_keys import TestKeys
from tests.servers.receiver import WebhookReceiver
from tests.servers.s3 import S3Server
from tests.servers.sftp import SftpServer

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def saved_keys(pgp_keys: TestKeys) -> TestKeys:
    """alice's public key and the signer's secret key saved as blocks."""
    OpenPgpPublicKey(public_key=pgp_keys.alice.public).save("pgp-alice", overwrite=True)
    OpenPgpSigningKey(
        secret_key=pgp_keys.signer.secret, passphrase=pgp_keys.signer.passphrase
    ).save("pgp-signer", overwrite=True)
    return pgp_keys


def test_two_recipients_each_decrypt_the_signed_gzip_csv_to_the_table(
    saved_keys: TestKeys, demo_db: Path, tmp_path: Path
) -> None:
    source = {"url": f"sqlite:///{demo_db}", "table": "orders"}
    plain = export(
        source=source,
        destination={"url": f"{tmp_path}/plain/{{export}}.{{ext}}", "compression": "gzip"},
    )
    pgp = {"recipients": ["pgp-alice", saved_keys.bob.public], "sign_with": "pgp-signer"}
    out = tmp_path / "out"
    result = export(
        source=source,
        destination={
            "url": f"{out}/{{export}}.{{ext}}",
            "compression": "gzip",
            "manifest": True,
            "pgp": pgp,
        },
    )
    recipients = [saved_keys.alice.fingerprint, saved_keys.bob.fingerprint]
    assert result.encrypted_to == recipients
    assert sorted(path.name for path in out.iterdir()) == [
        "orders.csv.gz.pgp",
        "orders.manifest.json",
    ]
    delivered = (out / "orders.csv.gz.pgp").read_bytes()
    manifest = json.loads((out / "orders.manifest.json").read_text())
    assert (manifest["compression"], manifest["encrypted_to"]) == ("gzip", recipients)
    [listed] = manifest["files"]
    assert listed["sha256"] == hashlib.sha256(delivered).hexdigest()  # what a partner checks
    assert (listed["bytes"], listed["rows"]) == (len(delivered), result.rows)

    expected_gzip = Path(plain.files[0]).read_bytes()
    for owner in (saved_keys.alice, saved_keys.bob):
        decrypted, status = owner.decrypt(delivered, signer=saved_keys.signer)
        assert f"VALIDSIG {saved_keys.signer.fingerprint}" in status  # the signature verifies
        assert decrypted == expected_gzip
        text = subprocess.run(["gzip", "-d"], input=decrypted, capture_output=True, check=True)
        rows = list(csv.reader(io.StringIO(text.stdout.decode(), newline="")))
        with sqlite3.connect(demo_db) as conn:
            ids = [row[0] for row in conn.execute("select order_id from orders order by rowid")]
        conn.close()
        assert [int(row[0]) for row in rows[1:]] == ids

    [record] = [
        r
        for r in read_audit(AuditQuery(limit=200))
        if r.export_request_id == result.export_request_id
    ]
    assert record.encrypted_to == recipients


def _refusal(destination: dict[str, Any], tmp_path: Path) -> ConfigurationError:
    """Run an export of a table that does not exist: a key refused before any row is read
    fails the run naming the key, not the table."""
    state = export(
        source={"url": "sqlite:///demo/demo.sqlite", "table": "no_such_table"},
        destination={"url": f"{tmp_path}/out/{{export}}.{{ext}}", **destination},
        return_state=True,
    )
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, ConfigurationError), error
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").rglob("*")) == []
    return error


def test_a_wrong_passphrase_is_refused_before_any_row_is_read(
    saved_keys: TestKeys, tmp_path: Path
) -> None:
    OpenPgpSigningKey(secret_key=saved_keys.signer.secret, passphrase="wrong horse").save(
        "pgp-signer-wrong", overwrite=True
    )
    error = _refusal(
        {"pgp": {"recipients": ["pgp-alice"], "sign_with": "pgp-signer-wrong"}}, tmp_path
    )
    assert error.field == "destination.pgp.sign_with"
    assert str(error).startswith(
        f"destination.pgp.sign_with: the key {saved_keys.signer.fingerprint} cannot sign with "
        "the block's passphrase ("
    )
    assert "wrong horse" not in str(error)


def test_a_key_that_cannot_sign_is_refused(saved_keys: TestKeys, tmp_path: Path) -> None:
    # a secret key whose only signing-capable key is revoked cannot sign
    OpenPgpSigningKey(secret_key=saved_keys.revoked.secret).save("pgp-revoked", overwrite=True)
    error = _refusal({"pgp": {"recipients": ["pgp-alice"], "sign_with": "pgp-revoked"}}, tmp_path)
    assert error.field == "destination.pgp.sign_with"
    assert f"the key {saved_keys.revoked.fingerprint} is revoked" in str(error)


@pytest.mark.parametrize(
    ("pgp", "field", "words"),
    [
        ({"recipients": ["pgp-nobody"]}, "destination.pgp.recipients[0]",
         "no saved OpenPgpPublicKey block named `pgp-nobody`"),
        ({"recipients": ["pgp-alice", "pgp-signer"]}, "destination.pgp.recipients[1]",
         "no saved OpenPgpPublicKey block named `pgp-signer`"),  # a block of the other type
        ({"recipients": ["pgp-alice"], "sign_with": "pgp-alice"}, "destination.pgp.sign_with",
         "no saved OpenPgpSigningKey block named `pgp-alice`"),
        ({"recipients": ["pgp-secret-as-public"]}, "destination.pgp.recipients[0]",
         "holds a secret key, not a public one"),
    ],
)  # fmt: skip
def test_a_block_that_is_missing_or_of_another_kind_is_refused(
    saved_keys: TestKeys, tmp_path: Path, pgp: dict[str, Any], field: str, words: str
) -> None:
    OpenPgpPublicKey(public_key=saved_keys.bob.secret).save("pgp-secret-as-public", overwrite=True)
    error = _refusal({"pgp": pgp}, tmp_path)
    assert error.field == field and words in str(error), str(error)
    assert "PRIVATE KEY" not in str(error)


# -- the stores: what sits in the bucket or on the server before publishing is ciphertext ----

SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])
ROWS = 200_000  # ~3.4 MB of CSV: an SFTP upload flushes some of it before the part closes
BATCH = pa.record_batch(
    [pa.array(range(ROWS)), pa.array([f"name {i}" for i in range(ROWS)])], schema=SCHEMA
)
CONTEXT = replace(TargetContext.sample(), export="orders", ext="csv")
OPENPGP_FIRST_BYTES = (0x84, 0x85, 0xC1)  # a public-key encrypted session key packet


def _expected_csv() -> bytes:
    return b"id,name\n" + b"".join(f"{i},name {i}\n".encode() for i in range(ROWS))


def _pgp(keys: TestKeys) -> dict[str, Any]:
    return {"recipients": ["pgp-alice", keys.bob.public], "sign_with": "pgp-signer"}


def _opens_for_each_recipient(keys: TestKeys, ciphertext: bytes, expected: bytes) -> None:
    for owner in (keys.alice, keys.bob):
        decrypted, status = owner.decrypt(ciphertext, signer=keys.signer)
        assert f"VALIDSIG {keys.signer.fingerprint}" in status
        assert gzip.decompress(decrypted) == expected


def test_the_temporary_object_on_s3_is_already_ciphertext(
    saved_keys: TestKeys, s3: S3Server, tmp_path: Path
) -> None:
    store = s3_store(s3)
    destination = DestinationConfig(
        url=store.url("in/{export}.{ext}"),
        block=store.save_block("pgp-s3"),
        compression="gzip",
        pgp=_pgp(saved_keys),
    )
    sink = PartSink.open(destination, "csv", SCHEMA, FormatOptions(), CONTEXT)
    try:
        sink.write(BATCH)
        [part] = sink.finish()  # the upload is complete, under its temporary name
        temporary = part.temp_path.split("/", 1)[1]
        assert store.names() == [temporary]  # nothing published yet
        stored = store.read(temporary)
    finally:
        sink.abort()  # the temporary object goes
    assert stored[0] in OPENPGP_FIRST_BYTES and not stored.startswith(b"\x1f\x8b")
    assert b"name 1" not in stored
    _opens_for_each_recipient(saved_keys, stored, _expected_csv())
    # and the flow publishes it as orders.csv.gz.pgp, each recipient opening it likewise
    result = export(
        source={"url": "sqlite:///demo/demo.sqlite", "table": "customers"},
        destination={
            **destination.model_dump(exclude_none=True),
            "url": store.url("out/{export}.{ext}"),
        },
    )
    assert result.files == [store.url("out/customers.csv.gz.pgp")]
    plain = export(
        source={"url": "sqlite:///demo/demo.sqlite", "table": "customers"},
        destination={"url": f"{tmp_path}/{{export}}.{{ext}}"},
    )
    _opens_for_each_recipient(
        saved_keys, store.read("out/customers.csv.gz.pgp"), Path(plain.files[0]).read_bytes()
    )


def test_the_temporary_file_on_sftp_is_ciphertext_while_it_is_written(
    saved_keys: TestKeys, sftp: SftpServer, sftp_folder: str
) -> None:
    SftpCredentials(
        username=SftpServer.USER,
        password=SftpServer.PASSWORD,
        known_hosts=sftp.known_hosts,
        timeout_s=10,
    ).save("pgp-sftp", overwrite=True)
    destination = DestinationConfig(
        url=sftp.url(f"{sftp_folder}/{{export}}.{{ext}}"),
        block="pgp-sftp",
        compression="gzip",
        pgp=_pgp(saved_keys),
    )
    sink = PartSink.open(destination, "csv", SCHEMA, FormatOptions(), CONTEXT)
    try:
        sink.write(BATCH)
        [name] = _listing(sftp, sftp_folder)  # mid-write: the part is still open
        assert name.startswith(".orders.csv.gz.pgp.") and name.endswith(".tmp")
        with sftp.client() as client, client.open(f"{sftp_folder}/{name}", "rb") as file:
            so_far = file.read()
        [part] = sink.finish()
        with sftp.client() as client, client.open(part.temp_path, "rb") as file:
            stored = file.read()
    finally:
        sink.abort()  # the temporary file goes
    assert so_far and so_far[0] in OPENPGP_FIRST_BYTES and b"name 1" not in so_far
    assert stored.startswith(so_far)
    _opens_for_each_recipient(saved_keys, stored, _expected_csv())
    assert _listing(sftp, sftp_folder) == []


def _listing(sftp: SftpServer, folder: str) -> list[str]:
    with sftp.client() as client:
        return sorted(client.listdir(folder))


def test_memory_with_encryption_stays_within_20_mb_of_without(
    pgp_keys: TestKeys, tmp_path: Path
) -> None:
    """The same 53 and 106 MiB exports to a local folder, each in a fresh process, with and
    without encryption: gpg is a child process, and the Python process's peak RSS grows by
    what the pipes hold, not with the file."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = measure_large_exports({"url": f"{tmp_path}/plain/{{export}}.{{ext}}"}, tmp_path / "a")
    encrypted = measure_large_exports(
        {
            "url": f"{tmp_path}/pgp/{{export}}.{{ext}}",
            "pgp": {"recipients": [pgp_keys.alice.public]},
        },
        tmp_path / "b",
    )
    print(f"\nplain: {plain.line()}\nencrypted: {encrypted.line()}")  # noqa: T201
    assert [name.name for name in (tmp_path / "pgp").iterdir()] == ["export.csv.pgp"]
    assert encrypted.bytes[1] > plain.bytes[1]  # the OpenPGP message around the CSV
    assert encrypted.peak_mb - plain.peak_mb < 20, (plain, encrypted)
    assert encrypted.growth_mb[1] - encrypted.growth_mb[0] < 20, encrypted  # flat with the size


def test_a_split_read_encrypts_each_part_and_numbers_them(
    pgp_keys: TestKeys, demo_db: Path, tmp_path: Path
) -> None:
    source = {"url": f"sqlite:///{demo_db}", "table": "orders"}
    plain = export(source=source, destination={"url": f"{tmp_path}/plain/{{export}}.{{ext}}"})
    result = export(
        source={**source, "partitions": 2, "partition_by": "order_id"},
        destination={
            "url": f"{tmp_path}/out/{{export}}.{{ext}}",
            "pgp": {"recipients": [pgp_keys.alice.public], "armor": True},
        },
    )
    names = [Path(file).name for file in result.files]
    assert names == ["orders-0001.csv.asc", "orders-0002.csv.asc"]
    texts = [pgp_keys.alice.decrypt(Path(file).read_bytes())[0] for file in result.files]
    header, *rows = Path(plain.files[0]).read_bytes().splitlines(keepends=True)
    assert texts[0].startswith(header) and texts[1].startswith(header)
    assert texts[0][len(header) :] + texts[1][len(header) :] == b"".join(rows)


def test_an_http_post_of_an_encrypted_file_is_application_pgp_encrypted(
    pgp_keys: TestKeys, demo_db: Path, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    source = {"url": f"sqlite:///{demo_db}", "table": "customers"}
    plain = export(source=source, destination={"url": f"{tmp_path}/{{export}}.{{ext}}"})
    result = export(
        source=source,
        destination={
            "url": f"{receiver.url}/in/{{export}}.{{ext}}",
            "pgp": {"recipients": [pgp_keys.alice.public], "armor": True},
        },
    )
    assert result.files == [f"{receiver.url}/in/customers.csv"]
    [request] = receiver.requests
    assert request.header("Content-Type") == "application/pgp-encrypted"
    assert request.header("X-Export-Filename") == "customers.csv.asc"
    assert request.body.startswith(b"-----BEGIN PGP MESSAGE-----")
    assert pgp_keys.alice.decrypt(request.body)[0] == Path(plain.files[0]).read_bytes()
