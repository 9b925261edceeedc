"""OpenPGP encryption of every delivered file (`destination.pgp`), through GnuPG.

GnuPG is what banks and their partners run, and `python-gnupg` drives its binary (no
cryptography of ours): it imports and inspects the keys. Each run imports them into a
private, temporary keyring (`PgpKeys`, a folder of mode 700 removed after), and checks every
one before any row is read: an expired, revoked or secret key, a key that cannot encrypt (or
sign), a wrong passphrase each fail naming the field and the key's fingerprint.

The files are encrypted as they are written (format → compression → encryption): one `gpg
--encrypt` process per file reads the compressed bytes on a pipe and its ciphertext streams
into the temporary file, so memory stays flat and no plaintext reaches a disk or a bucket.
`--trust-model always`: the keys were given explicitly by the user, so no web of trust is
consulted. The passphrase travels on a pipe of its own (`--passphrase-fd`), never in
arguments, the environment or a message.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import gnupg

from blocks.integrations import load_named_block
from blocks.pgp import OpenPgpPublicKey, OpenPgpSigningKey
from flows.core.config import PUBLIC_KEY_HEADER, SECRET_KEY_HEADER, PgpEncryption
from flows.core.errors import ConfigurationError, FormatError

GPG_BINARY = "gpg"
# gpg's output is copied to the file in pieces of this size (memory stays flat).
_CHUNK = 64 * 1024
# What an OpenPGP message adds to its data, at most (a session key packet per recipient, the
# literal data and integrity packets, a signature), and what armor multiplies it by (base64,
# 64 characters a line).
_PACKETS_PER_KEY = 512
_ARMOR_GROWTH = 4 / 3 * 65 / 64
_RECIPIENTS = "destination.pgp.recipients"
_SIGN_WITH = "destination.pgp.sign_with"


@dataclass
class PgpKeys:
    """A run's temporary keyring, its keys checked: the recipients' fingerprints and the
    signing key's. `close()` removes the keyring (and stops its gpg-agent)."""

    home: str
    recipients: list[str]
    armor: bool
    signer: str | None = None
    passphrase: str | None = field(default=None, repr=False)

    def encryptor(self, file: BinaryIO, target: str) -> PgpEncryptor:
        """A stream that encrypts (and signs) into `file`; `target` names the file in errors."""
        return PgpEncryptor(self, file, target)

    def close(self) -> None:
        """Stop the keyring's agent (gpg starts one to import keys) and remove the keyring."""
        try:
            subprocess.run(
                ["gpgconf", "--homedir", self.home, "--kill", "gpg-agent"],
                capture_output=True,
                check=False,
            )
        except OSError:  # no GnuPG here: no agent either
            pass
        shutil.rmtree(self.home, ignore_errors=True)


def load_keys(pgp: PgpEncryption, *, checked: bool = False) -> PgpKeys:
    """Import every key of `destination.pgp` into a temporary keyring and check it can do its
    part; the keyring is removed again when a key is refused.

    `checked`: this run's `check_keys` already found every key usable (a writer's keyring, the
    run's second): the keys are imported without asking gpg again whether they can encrypt
    or sign. They must be imported again: a keyring is a folder of one process (a Dask
    partition writes in another), and the signing key and its passphrase are loaded from
    their block where they are used, never handed on in a task's parameters or result,
    which Prefect keeps.

    Raises:
        ConfigurationError: naming the field (`destination.pgp.recipients[1]`) and the key's
            fingerprint: expired, revoked, unable to encrypt or sign, a secret key given as a
            recipient, a block that does not exist, a wrong passphrase.
    """
    home = tempfile.mkdtemp(prefix="exports-gpg-")  # mode 700
    keys = PgpKeys(home, [], pgp.armor)
    try:
        gpg = _gpg(home)
        for index, entry in enumerate(pgp.recipients):
            where = f"{_RECIPIENTS}[{index}]"
            text = (
                entry if entry.strip().startswith(PUBLIC_KEY_HEADER) else _public_key(where, entry)
            )
            keys.recipients.append(_import_recipient(gpg, where, text, checked))
        if pgp.sign_with is not None:
            block = load_named_block(_SIGN_WITH, pgp.sign_with, OpenPgpSigningKey)
            assert isinstance(block, OpenPgpSigningKey)
            passphrase = block.passphrase.get_secret_value() if block.passphrase else ""
            secret_key = block.secret_key.get_secret_value()
            keys.signer = _import_signer(gpg, secret_key, passphrase, checked)
            keys.passphrase = passphrase
    except BaseException:
        keys.close()
        raise
    return keys


def _gpg(home: str) -> gnupg.GPG:
    try:
        return gnupg.GPG(gpgbinary=GPG_BINARY, gnupghome=home)
    except (OSError, ValueError) as exc:  # no gpg binary, or one python-gnupg cannot run
        raise ConfigurationError(
            "destination.pgp: the gpg command (GnuPG 2.2 or later) cannot be run here",
            field="destination.pgp",
            hint="install GnuPG on every machine that writes the files (README, OpenPGP "
            "encryption)",
        ) from exc


def check_keys(pgp: PgpEncryption | None) -> list[str]:
    """Before any row is read: every key of `destination.pgp` is usable. The recipients'
    fingerprints (the audit record's `encrypted_to`), none without encryption."""
    if pgp is None:
        return []
    keys = load_keys(pgp)
    keys.close()
    return keys.recipients


def _public_key(where: str, name: str) -> str:
    block = load_named_block(where, name.strip(), OpenPgpPublicKey)
    assert isinstance(block, OpenPgpPublicKey)
    if block.public_key.strip().startswith(SECRET_KEY_HEADER):
        raise ConfigurationError(
            f"{where}: the block `{name}` holds a secret key, not a public one",
            field=where,
            hint="save the recipient's public key in it (gpg --armor --export FINGERPRINT)",
        )
    return block.public_key


def _import_one(gpg: gnupg.GPG, where: str, text: str) -> tuple[str, Any]:
    """The fingerprint of the one key `text` holds, and the import's result."""
    result = gpg.import_keys(text)
    fingerprints = list(dict.fromkeys(result.fingerprints))
    if not fingerprints:
        raise ConfigurationError(
            f"{where}: not an OpenPGP key gpg can read",
            field=where,
            hint="give the key as `gpg --armor --export FINGERPRINT` prints it",
        )
    if len(fingerprints) > 1:
        raise ConfigurationError(
            f"{where}: holds {len(fingerprints)} keys ({', '.join(fingerprints)})",
            field=where,
            hint="give one key an entry",
        )
    return fingerprints[0], result


# gpg's validity of a key (--with-colons, field 2) that no use can overcome.
_INVALID = {"r": "is revoked", "e": "has expired", "i": "is invalid", "d": "is disabled"}
# The whole key's usable capabilities (field 12, capital letters): E encrypt, S sign.
_CAPABILITIES = {
    "E": ("cannot encrypt (no valid encryption subkey)", "ask its owner for a current key"),
    "S": ("cannot sign (no valid signing subkey)", "give a current secret key that can sign"),
}


def _usable(gpg: gnupg.GPG, where: str, fingerprint: str, capability: str) -> None:
    """Refuse an expired, revoked or invalid key, or one with no (sub)key that can
    `capability` now."""
    found = gpg.list_keys(keys=[fingerprint])
    key = found[0] if found else {}
    cannot, hint = _CAPABILITIES[capability]
    problem = _INVALID.get(key.get("trust", ""))
    if problem is None and capability not in key.get("cap", ""):
        problem = cannot
    if problem is not None:
        raise ConfigurationError(
            f"{where}: the key {fingerprint} {problem}", field=where, hint=hint
        )


def _import_recipient(gpg: gnupg.GPG, where: str, text: str, checked: bool) -> str:
    fingerprint, result = _import_one(gpg, where, text)
    if result.sec_read:
        raise ConfigurationError(
            f"{where}: the key {fingerprint} is a secret key, not a public one",
            field=where,
            hint="give the recipient's public key (gpg --armor --export FINGERPRINT)",
        )
    if not checked:
        _usable(gpg, where, fingerprint, "E")
    return fingerprint


def _import_signer(gpg: gnupg.GPG, text: str, passphrase: str, checked: bool) -> str:
    fingerprint, result = _import_one(gpg, _SIGN_WITH, text)
    if not result.sec_read:
        raise ConfigurationError(
            f"{_SIGN_WITH}: the key {fingerprint} is a public key; signing needs the secret key",
            field=_SIGN_WITH,
            hint="save the secret key (gpg --armor --export-secret-keys FINGERPRINT) in the block",
        )
    if checked:
        return fingerprint
    _usable(gpg, _SIGN_WITH, fingerprint, "S")
    signed = gpg.sign(b"prefect-exports", keyid=fingerprint, passphrase=passphrase, detach=True)
    if not signed or not signed.data:
        raise ConfigurationError(
            f"{_SIGN_WITH}: the key {fingerprint} cannot sign with the block's passphrase "
            f"({signed.status or 'gpg refused'})",
            field=_SIGN_WITH,
            hint="check the passphrase saved in the OpenPgpSigningKey block",
        )
    return fingerprint


class PgpEncryptor(io.RawIOBase):
    """Encrypts what is written to it into `file`, streamed through one `gpg` process: a
    thread copies gpg's output to `file` as it comes. Closing it waits for gpg and checks its
    exit status, and leaves `file` open; `kill()` stops gpg when the file is thrown away."""

    def __init__(self, keys: PgpKeys, file: BinaryIO, target: str) -> None:
        self.file = file
        self.target = target
        self.home = keys.home
        self.written = 0
        self.keys = len(keys.recipients) + (keys.signer is not None)
        self.armor = keys.armor
        self.error: BaseException | None = None
        args = [GPG_BINARY, "--homedir", keys.home, "--batch", "--no-tty", "--quiet"]
        args += ["--trust-model", "always", "--no-auto-key-locate", "--compress-algo", "none"]
        for fingerprint in keys.recipients:
            args += ["--recipient", fingerprint]
        args += ["--armor"] if keys.armor else []
        read_end = None
        if keys.signer is not None:
            read_end, write_end = os.pipe()
            os.write(write_end, (keys.passphrase or "").encode() + b"\n")
            os.close(write_end)
            args += ["--sign", "--local-user", keys.signer, "--pinentry-mode", "loopback"]
            args += ["--passphrase-fd", str(read_end)]
        args += ["--encrypt", "--output", "-"]
        self.stderr = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
                pass_fds=(read_end,) if read_end is not None else (),
            )
        finally:
            if read_end is not None:
                os.close(read_end)
        self.copier = threading.Thread(target=self._copy, name="gpg-output", daemon=True)
        self.copier.start()

    def _copy(self) -> None:
        assert self.process.stdout is not None
        try:
            while chunk := self.process.stdout.read(_CHUNK):
                self.file.write(chunk)
        except BaseException as exc:  # noqa: BLE001 - raised by the writing thread
            self.error = exc
            self.process.kill()  # the writer's next write fails instead of waiting

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.written

    def expected_size(self) -> int:
        """The size the message will have for what was written so far: the file lags behind
        by what is still in the pipes and in gpg, so `max_file_mb` counts this."""
        size = self.written + _PACKETS_PER_KEY * self.keys
        return int(size * _ARMOR_GROWTH) if self.armor else size

    def write(self, data: Any) -> int:
        assert self.process.stdin is not None
        if self.closed:  # killed: what a writer still open writes goes nowhere
            return len(memoryview(data).cast("B"))
        try:
            self.process.stdin.write(data)
        except (BrokenPipeError, ValueError):
            self._raise_failure()
        size = len(memoryview(data).cast("B"))
        self.written += size
        return size

    def close(self) -> None:
        """Finish the OpenPGP message: gpg writes its last packets, the copy ends, and a
        failure of either raises (the file under it stays open)."""
        if self.closed:
            return
        super().close()
        assert self.process.stdin is not None
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        self.copier.join()
        if self.process.wait() != 0 or self.error is not None:
            self._raise_failure()
        self.stderr.close()

    def kill(self) -> None:
        """Stop gpg and the copy: the file is being thrown away."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.copier.join()  # gpg's output ended with it
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass
        self.stderr.close()
        super().close()

    def _raise_failure(self) -> None:
        if self.error is not None:
            raise self.error
        self.process.wait()
        self.stderr.seek(0)
        said = self.stderr.read().decode(errors="replace").replace(self.home, "<keyring>")
        last = [line for line in said.splitlines() if line.strip()][-1:] or ["no message"]
        raise FormatError(
            f"destination.pgp: gpg could not encrypt `{self.target}` (exit status "
            f"{self.process.returncode}: {last[0]}); check the keys in destination.pgp"
        )
