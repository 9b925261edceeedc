"""OpenPGP keys for the tests, made with the gpg command line (ed25519/cv25519: instant, no
entropy wait), each in a keyring of its own: the recipient's keyring is what a partner
decrypts with, independently of the product.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

FAR_PAST = "20200101T000000!"  # --faked-system-time: a key made then, valid one day, expired


@dataclass(frozen=True)
class TestKey:
    """One key and the keyring holding its secret part."""

    __test__ = False  # not a test class

    name: str
    home: Path
    fingerprint: str
    public: str  # armored
    secret: str  # armored (protected by `passphrase`)
    passphrase: str

    def gpg(self, *args: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        """Run gpg in this key's own keyring (as its owner would)."""
        return gpg(self.home, *args, data=data, passphrase=self.passphrase)

    def decrypt(self, ciphertext: bytes, signer: TestKey | None = None) -> tuple[bytes, str]:
        """The plaintext, and gpg's status lines (GOODSIG …, VALIDSIG …); with `signer`, whose
        public key the owner imports first, to check the signature."""
        if signer is not None:
            imported = gpg(self.home, "--import", data=signer.public.encode())
            assert imported.returncode == 0, imported.stderr.decode()
        done = gpg(
            self.home, "--status-fd", "2", "--decrypt", data=ciphertext, passphrase=self.passphrase
        )
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout, done.stderr.decode()


def gpg(
    home: Path, *args: str, data: bytes = b"", passphrase: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    base = ["gpg", "--homedir", str(home), "--batch", "--no-tty", "--yes"]
    if passphrase is not None:
        base += ["--pinentry-mode", "loopback", "--passphrase", passphrase]
    return subprocess.run([*base, *args], input=data, capture_output=True, check=False)


def make_key(
    root: Path,
    name: str,
    *,
    encrypt: bool = True,
    expired: bool = False,
    revoked: bool = False,
    passphrase: str = "",
) -> TestKey:
    """A key `name <name@example.com>` that can certify and sign, with an encryption subkey
    unless `encrypt` is False; made a year ago (`expired`), or revoked since."""
    home = root / name
    home.mkdir(mode=0o700)
    when = ["--faked-system-time", FAR_PAST] if expired else []
    uid = f"{name} <{name}@example.com>"
    done = gpg(
        home, *when, "--quick-gen-key", uid, "ed25519", "cert,sign", "1d", passphrase=passphrase
    )
    assert done.returncode == 0, done.stderr.decode()
    listed = gpg(home, "--with-colons", "--list-keys", uid).stdout.decode()
    fingerprint = next(line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr"))
    if encrypt:
        done = gpg(
            home,
            *when,
            "--quick-add-key",
            fingerprint,
            "cv25519",
            "encr",
            "1d",
            passphrase=passphrase,
        )
        assert done.returncode == 0, done.stderr.decode()
    if revoked:  # gpg made a revocation certificate with the key; import it without its guard
        certificate = (home / "openpgp-revocs.d" / f"{fingerprint}.rev").read_text()
        unguarded = certificate.replace(
            ":-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----BEGIN PGP PUBLIC KEY BLOCK-----"
        )
        done = gpg(home, "--import", data=unguarded.encode())
        assert done.returncode == 0, done.stderr.decode()
    public = gpg(home, "--armor", "--export", fingerprint).stdout.decode()
    secret = gpg(home, "--armor", "--export-secret-keys", fingerprint, passphrase=passphrase)
    return TestKey(name, home, fingerprint, public, secret.stdout.decode(), passphrase)


def stop_agents(keys: list[TestKey]) -> None:
    """Stop the gpg-agent each keyring started."""
    for key in keys:
        subprocess.run(["gpgconf", "--homedir", str(key.home), "--kill", "gpg-agent"], check=False)


@dataclass(frozen=True)
class TestKeys:
    """The session's keys: two recipients, a signer with a passphrase, and bad ones."""

    __test__ = False

    alice: TestKey
    bob: TestKey
    signer: TestKey  # passphrase "correct horse"
    expired: TestKey
    revoked: TestKey
    sign_only: TestKey  # no encryption subkey

    def all(self) -> list[TestKey]:
        return [self.alice, self.bob, self.signer, self.expired, self.revoked, self.sign_only]


def make_keys(root: Path) -> TestKeys:
    return TestKeys(
        alice=make_key(root, "alice"),
        bob=make_key(root, "bob"),
        signer=make_key(root, "signer", passphrase="correct horse"),
        expired=make_key(root, "expired", expired=True),
        revoked=make_key(root, "revoked", revoked=True),
        sign_only=make_key(root, "signonly", encrypt=False),
    )
