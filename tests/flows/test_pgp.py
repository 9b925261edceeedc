"""`destination.pgp` without a server: the rules of the parameter, the names and media types
of encrypted files, the keys refused before any row is read (each naming its field and its
fingerprint), and the encrypting stream under the sink: what reaches the temporary file is
ciphertext that each recipient's own `gpg --decrypt` opens to the exact plaintext, a part
is cut by its encrypted bytes, and a thrown-away part leaves no file and no gpg process.

The keys are real, made with the gpg command line (tests/pgp_keys.py); the recipients are
given as armored keys (blocks need a Prefect API: tests/flows/test_pgp_export.py).
"""

from __future__ import annotations

import csv
import gc
import gzip
import hashlib
import io
import os
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pytest

from flows.core.config import FormatOptions, PgpEncryption
from flows.core.errors import ConfigurationError, FormatError
from flows.core.formats import ExportFormat, media_type
from flows.core.targets import TargetContext
from flows.destinations.manifest import manifest_path
from flows.destinations.pgp import load_keys
from flows.destinations.store import WrittenFile
from flows.formats.options import export_media_type
from flows.parameters import validate_export_parameters
from flows.request import DestinationConfig
from flows.runs.result import ExportResult, summary_sentence
from flows.sink import PartSink
from tests.pgp_keys import TestKeys

pytestmark = pytest.mark.unit

SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])
ROWS = 20_000
BATCH = pa.record_batch(
    [pa.array(range(ROWS)), pa.array([f"name é {i}" for i in range(ROWS)])], schema=SCHEMA
)
CONTEXT = replace(TargetContext.sample(), export="orders", ext="csv")


def refused(destination: dict[str, Any]) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        validate_export_parameters(
            {
                "source": {"url": "sqlite:///demo/demo.sqlite", "table": "orders"},
                "destination": destination,
            }
        )
    assert "\n" not in str(caught.value)
    return caught.value


# -- the parameter's rules ---------------------------------------------------------------


def test_no_recipient_is_refused_naming_the_field() -> None:
    error = refused({"url": "/out/{export}.{ext}", "pgp": {"recipients": []}})
    assert error.field == "destination.pgp.recipients"
    assert str(error).startswith("destination.pgp.recipients: no recipient; give one or more")


def test_a_secret_key_as_recipient_is_refused_without_repeating_it(pgp_keys: TestKeys) -> None:
    secret = pgp_keys.alice.secret
    error = refused({"url": "/out/{export}.{ext}", "pgp": {"recipients": ["bank-key", secret]}})
    assert error.field == "destination.pgp.recipients[1]"
    assert str(error).startswith("destination.pgp.recipients[1]: a secret key, not a public one")
    body = secret.splitlines()[3]  # a line of the key's material
    assert body not in str(error) and "PRIVATE KEY" not in str(error)


@pytest.mark.parametrize(
    ("pgp", "field", "words"),
    [
        ({"recipients": ["not a key"]}, "destination.pgp.recipients[0]",
         "neither an armored public key nor a saved block's name"),
        ({"recipients": ["bank-key"], "sign_with": "-----BEGIN PGP PRIVATE KEY BLOCK-----\nx"},
         "destination.pgp.sign_with", "not the name of a saved block"),
        ({"recipients": ["bank-key"], "armour": True}, "destination", "armour"),
    ],
)  # fmt: skip
def test_a_malformed_entry_is_refused_naming_it(
    pgp: dict[str, Any], field: str, words: str
) -> None:
    error = refused({"url": "/out/{export}.{ext}", "pgp": pgp})
    assert (error.field or "").startswith(field) and words in str(error)
    assert "PRIVATE" not in str(error)


# -- names and media types ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("compression", "armor", "name"),
    [("gzip", False, "orders.csv.gz.pgp"), ("none", False, "orders.csv.pgp"),
     ("zstd", True, "orders.csv.zst.asc")],
)  # fmt: skip
def test_the_encrypted_file_ends_in_pgp_after_the_rest(
    tmp_path: Path, compression: str, armor: bool, name: str
) -> None:
    pgp = {"recipients": ["bank-key"], "armor": armor}
    destination = DestinationConfig(
        url=f"{tmp_path}/{{export}}.{{ext}}", compression=compression, pgp=pgp, manifest=True
    )
    store, fs = destination.store, destination.filesystem()
    final, _ = store.part_paths(
        fs, destination.url, CONTEXT, 1, split=False, compression=destination.file_codecs
    )
    assert Path(final).name == name
    manifest = manifest_path(
        store, fs, destination.url, CONTEXT, compression=destination.file_codecs
    )
    assert Path(manifest).name == "orders.manifest.json"
    assert media_type("csv", destination.file_codecs) == "application/pgp-encrypted"
    assert export_media_type("csv", destination.file_codecs, FormatOptions()) == (
        "application/pgp-encrypted"
    )


def test_without_pgp_names_and_media_types_are_the_codecs() -> None:
    destination = DestinationConfig(url="/out/{export}.{ext}", compression="gzip")
    assert destination.file_codecs == "gzip"
    assert media_type("csv", destination.file_codecs) == "application/gzip"


# -- keys refused before any row is read ---------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "problem"),
    [("expired", "has expired"), ("revoked", "is revoked"),
     ("sign_only", "cannot encrypt (no valid encryption subkey)")],
)  # fmt: skip
def test_an_unusable_recipient_is_refused_naming_field_and_fingerprint(
    pgp_keys: TestKeys, bad: str, problem: str
) -> None:
    key = getattr(pgp_keys, bad)
    with pytest.raises(ConfigurationError) as caught:
        load_keys(PgpEncryption(recipients=[pgp_keys.alice.public, key.public]))
    assert caught.value.field == "destination.pgp.recipients[1]"
    assert str(caught.value).startswith(
        f"destination.pgp.recipients[1]: the key {key.fingerprint} {problem}; "
    )


def test_text_that_is_not_a_key_is_refused(pgp_keys: TestKeys) -> None:
    broken = pgp_keys.alice.public.replace("\n\n", "\n\nnot base64 at all\n", 1)
    with pytest.raises(ConfigurationError) as caught:
        load_keys(PgpEncryption(recipients=[broken]))
    assert str(caught.value).startswith(
        "destination.pgp.recipients[0]: not an OpenPGP key gpg can read"
    )


def test_a_refused_key_leaves_no_keyring(
    pgp_keys: TestKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keyring is made in the temporary folder, here one of this test's own (another
    test's keyrings may come and go in the system's meanwhile)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(ConfigurationError):
        load_keys(PgpEncryption(recipients=[pgp_keys.revoked.public]))
    assert list(tmp_path.iterdir()) == []


def test_a_writer_imports_the_checked_keys_without_checking_them_again(
    pgp_keys: TestKeys, tmp_path: Path
) -> None:
    """The flow checks the keys before any row is read; its writers import them into their
    own keyring (a Dask partition writes in another process) and do not ask gpg again: a
    key refused by the check is taken as it is, and the checked keys encrypt as before."""
    expired = PgpEncryption(recipients=[pgp_keys.expired.public])
    with pytest.raises(ConfigurationError):
        load_keys(expired)
    keys = load_keys(expired, checked=True)
    keys.close()
    assert keys.recipients == [pgp_keys.expired.fingerprint]
    pgp = {"recipients": [pgp_keys.alice.public, pgp_keys.bob.public]}
    destination = DestinationConfig(url=f"{tmp_path}/{{export}}.{{ext}}", pgp=pgp)
    options = FormatOptions(line_terminator="lf")
    sink = PartSink.open(destination, "csv", SCHEMA, options, CONTEXT, keys_checked=True)
    sink.write(BATCH)
    [part] = sink.finish()
    delivered = _published(part)
    assert pgp_keys.alice.decrypt(delivered)[0] == _csv_of_batch()
    assert pgp_keys.bob.decrypt(delivered)[0] == _csv_of_batch()


# -- the encrypting stream under the sink ------------------------------------------------------


def _csv_of_batch() -> bytes:
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["id", "name"])
    writer.writerows([i, f"name é {i}"] for i in range(ROWS))
    return text.getvalue().encode()


def _published(part: WrittenFile) -> bytes:
    """The bytes of a part's temporary file; then it is moved to its final path, as publish
    would (no temporary file is left for the session's check)."""
    delivered = Path(part.temp_path).read_bytes()
    Path(part.temp_path).rename(part.final_path)
    return delivered


def test_every_recipient_decrypts_the_gzip_file_to_the_exact_csv(
    pgp_keys: TestKeys, tmp_path: Path
) -> None:
    pgp = {"recipients": [pgp_keys.alice.public, pgp_keys.bob.public]}
    destination = DestinationConfig(
        url=f"{tmp_path}/{{export}}.{{ext}}", compression="gzip", pgp=pgp, manifest=True
    )
    options = FormatOptions(line_terminator="lf")
    sink = PartSink.open(destination, "csv", SCHEMA, options, CONTEXT)
    sink.write(BATCH)
    [part] = sink.finish()
    assert Path(part.final_path).name == "orders.csv.gz.pgp"
    delivered = _published(part)  # the temporary file's bytes, then published
    assert delivered[0] & 0xC0 == 0xC0 or delivered[0] & 0x80  # an OpenPGP packet tag
    assert not delivered.startswith(b"\x1f\x8b") and b"name " not in delivered
    assert part.bytes == len(delivered)
    assert part.sha256 == hashlib.sha256(delivered).hexdigest()  # what the manifest lists
    assert part.rows == ROWS
    for owner in (pgp_keys.alice, pgp_keys.bob):
        plain, status = owner.decrypt(delivered)
        assert gzip.decompress(plain) == _csv_of_batch()
        assert "DECRYPTION_OKAY" in status


def test_armor_writes_an_ascii_message(pgp_keys: TestKeys, tmp_path: Path) -> None:
    pgp = {"recipients": [pgp_keys.alice.public], "armor": True}
    destination = DestinationConfig(url=f"{tmp_path}/{{export}}.{{ext}}", pgp=pgp)
    sink = PartSink.open(destination, "csv", SCHEMA, FormatOptions(line_terminator="lf"), CONTEXT)
    sink.write(BATCH)
    [part] = sink.finish()
    assert Path(part.final_path).name == "orders.csv.asc"
    delivered = _published(part)
    assert delivered.startswith(b"-----BEGIN PGP MESSAGE-----\n")
    assert pgp_keys.alice.decrypt(delivered)[0] == _csv_of_batch()


def test_max_file_mb_counts_the_encrypted_bytes(pgp_keys: TestKeys, tmp_path: Path) -> None:
    pgp = {"recipients": [pgp_keys.alice.public]}
    limit_mb = 0.1
    destination = DestinationConfig(
        url=f"{tmp_path}/{{export}}.{{ext}}", pgp=pgp, max_file_mb=limit_mb
    )
    sink = PartSink.open(destination, "csv", SCHEMA, FormatOptions(line_terminator="lf"), CONTEXT)
    for start in range(0, ROWS, 1000):
        sink.write(BATCH.slice(start, 1000))
    parts = sink.finish()
    assert [Path(part.final_path).name for part in parts][:2] == [
        "orders-0001.csv.pgp",
        "orders-0002.csv.pgp",
    ]
    text = b""
    for part in parts:
        delivered = _published(part)
        assert len(delivered) == part.bytes
        assert len(delivered) < limit_mb * 1024 * 1024 + 32 * 1024  # cut between chunks
        plain = pgp_keys.alice.decrypt(delivered)[0]
        text += plain if not text else plain.split(b"\n", 1)[1]  # each part has the header
    assert text == _csv_of_batch()
    assert sum(part.rows for part in parts) == ROWS
    assert all(part.bytes > 0.8 * limit_mb * 1024 * 1024 for part in parts[:-1])  # full parts


def test_an_aborted_part_leaves_no_file_no_keyring_and_no_gpg(
    pgp_keys: TestKeys, tmp_path: Path
) -> None:
    pgp = {"recipients": [pgp_keys.alice.public]}
    destination = DestinationConfig(
        url=f"{tmp_path}/{{export}}.{{ext}}", compression="gzip", pgp=pgp
    )
    sink = PartSink.open(destination, "csv", SCHEMA, FormatOptions(), CONTEXT)
    sink.write(BATCH)
    assert sink.keys is not None
    keyring = sink.keys.home
    gpgs = [child for child in psutil.Process().children() if child.name() == "gpg"]
    assert len(gpgs) == 1  # the part's encryptor
    sink.abort()
    assert list(tmp_path.iterdir()) == []
    assert not Path(keyring).exists()
    assert not any(child.is_running() and child.status() != "zombie" for child in gpgs)


def test_the_summary_sentence_says_what_the_files_were_encrypted_to() -> None:
    moment = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
    result = ExportResult(
        export_request_id="r",
        name="orders",
        format="csv",
        rows=1000,
        bytes=2048,
        files=["/out/orders.csv.gz.pgp"],
        started=moment,
        finished=moment + timedelta(seconds=1),
        encrypted_to=["A" * 40, "B" * 40],
    )
    assert summary_sentence(result, "sqlite:///shop.db", "Run Now", "ana") == (
        f"Export `orders`: **1,000 rows**, 2,048 bytes of csv in 1 file(s), encrypted to "
        f"`{'A' * 40}`, `{'B' * 40}`, from `sqlite:///shop.db`; Run Now by `ana`, 1.0 s."
    )
    plain = result.model_copy(update={"encrypted_to": []})
    assert summary_sentence(plain, "sqlite:///shop.db", "Run Now", "ana") == (
        "Export `orders`: **1,000 rows**, 2,048 bytes of csv in 1 file(s), from "
        "`sqlite:///shop.db`; Run Now by `ana`, 1.0 s."
    )


def test_a_machine_without_gpg_is_told_to_install_it(
    pgp_keys: TestKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no gpg on it
    with pytest.raises(ConfigurationError) as caught:
        load_keys(PgpEncryption(recipients=[pgp_keys.alice.public]))
    assert caught.value.field == "destination.pgp"
    assert str(caught.value) == (
        "destination.pgp: the gpg command (GnuPG 2.2 or later) cannot be run here; install "
        "GnuPG on every machine that writes the files (README, OpenPGP encryption)"
    )


@pytest.mark.parametrize(("fmt", "compression"), [("parquet", "none"), ("csv", "zstd")])
def test_an_aborted_encrypted_part_writes_nothing_after(
    pgp_keys: TestKeys, tmp_path: Path, fmt: ExportFormat, compression: str
) -> None:
    """The writer's and codec's closing bytes (a Parquet footer written when the writer is
    collected) go nowhere once gpg is stopped: Python reports nothing."""
    seen: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        pgp = {"recipients": [pgp_keys.alice.public]}
        destination = DestinationConfig(
            url=f"{tmp_path}/{{export}}.{{ext}}", compression=compression, pgp=pgp
        )
        context = replace(CONTEXT, ext=fmt)
        sink = PartSink.open(destination, fmt, SCHEMA, FormatOptions(), context)
        sink.write(BATCH)
        sink.abort()
        del sink
        gc.collect()
    finally:
        sys.unraisablehook = previous
    assert list(tmp_path.iterdir()) == []
    assert [str(report.exc_value) for report in seen] == []


def test_a_gpg_failure_fails_the_part_naming_the_field_never_the_keyring(
    pgp_keys: TestKeys, tmp_path: Path
) -> None:
    pgp = {"recipients": [pgp_keys.alice.public]}
    destination = DestinationConfig(url=f"{tmp_path}/{{export}}.{{ext}}", pgp=pgp)
    sink = PartSink.open(destination, "csv", SCHEMA, FormatOptions(), CONTEXT)
    assert sink.keys is not None
    home = sink.keys.home
    for name in os.listdir(home):  # the keyring loses its keys before the part starts
        if name.startswith("pubring"):
            os.remove(os.path.join(home, name))
    with pytest.raises(FormatError) as caught:
        sink.write(BATCH)
        sink.finish()
    sink.abort()
    assert str(caught.value) == (
        f"destination.pgp: gpg could not encrypt `{tmp_path}/orders.csv.pgp` (exit status 2: "
        "gpg: [stdin]: encryption failed: No public key); check the keys in destination.pgp"
    )
    assert list(tmp_path.iterdir()) == [] and not Path(home).exists()
