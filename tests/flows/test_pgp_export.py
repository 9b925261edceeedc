"""`destination.pgp` through the real flow, with keys saved as blocks in a real Prefect API:
what a partner receives is checked the way a partner checks it, with the gpg command line in
each recipient's own keyring (and gzip -d), and the keys that cannot be used are refused
before any row is read."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from blocks import OpenPgpPublicKey, OpenPgpSigningKey
from deployments.audit import AuditQuery, read_audit
from flows.core.errors import ConfigurationError
from flows.export import export
from tests.pgp_keys import TestKeys

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
