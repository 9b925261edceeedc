"""SFTP delivery: fsspec's paramiko filesystem, connected the way an export needs it.

What fsspec's `SFTPFileSystem` does not do on its own, and this one does:
- host keys are checked: against the block's `known_hosts` lines (or the user's
  ~/.ssh/known_hosts), an unknown key is rejected by default;
- the socket is opened here with TCP_NODELAY (paramiko on its own waits for delayed ACKs
  and uploads at under 1 MB/s), and writes are pipelined;
- an upload is checked on close: paramiko's pipelined writes report errors late, and its
  close ignores a lost connection, so the server's size must match the bytes written;
- `mv` replaces an existing target (posix-rename, or rename after a remove on servers
  without OpenSSH's extension);
- a dropped connection is opened again for the next operation (cleaning up after a failure),
  and so is one that timed out mid-upload (a silent network: every later request on it would
  wait out the timeout too, and the temporary file could not be removed);
- a write the server refuses with a bare "Failure" (OpenSSH's answer to a full disk: SFTP v3
  has no status for it) is told apart by asking the server its free space (statvfs@openssh.com).
"""

from __future__ import annotations

import errno
import logging
import posixpath
import socket
from typing import Any

import paramiko
from fsspec.implementations.sftp import SFTPFileSystem
from paramiko.sftp import CMD_EXTENDED, CMD_EXTENDED_REPLY
from prefect import get_run_logger
from prefect.exceptions import MissingContextError

from flows.core.errors import ConfigurationError, DeliveryError, TransientDeliveryError, first_line

DEFAULT_PORT = 22
# paramiko buffers this much before it sends 32 KiB write requests without waiting for ACKs.
WRITE_BUFFER = 256 * 1024
# Below this much free space, a refused write is taken for a full disk.
FULL_BELOW = 1024 * 1024

logger = logging.getLogger("prefect.exports.sftp")


class SftpFileSystem(SFTPFileSystem):  # type: ignore[misc]  # fsspec is untyped
    """An SFTP server as an fsspec filesystem; paths are absolute on the server.

    Options: paramiko's `SSHClient.connect` arguments (username, password, pkey,
    allow_agent, look_for_keys, ...), plus `port`, `timeout`, `known_hosts` (text) and
    `host_key_policy` (reject, warn or auto-add).
    """

    def __init__(self, host: str, **options: Any) -> None:
        if self._cached:
            return
        super(SFTPFileSystem, self).__init__(**options)  # fsspec's bookkeeping only
        self.host = host
        self.port = int(options.pop("port", None) or DEFAULT_PORT)
        self.timeout = float(options.pop("timeout", 30.0))
        self.known_hosts: str | None = options.pop("known_hosts", None)
        self.host_key_policy = str(options.pop("host_key_policy", "reject"))
        self.temppath = "/tmp"
        self.ssh_kwargs = options
        self._ftp: paramiko.SFTPClient | None = None
        self._connect()

    @property
    def address(self) -> str:
        """host:port as the user wrote it (the port only when it is not 22)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORT else f"{host}:{self.port}"

    def _connect(self) -> None:
        client = paramiko.SSHClient()
        if self.known_hosts is None:
            client.load_system_host_keys()
        else:
            _add_known_hosts(client.get_host_keys(), self.known_hosts)
        client.set_missing_host_key_policy(_missing_key_policy(self.host_key_policy))
        user = self.ssh_kwargs.get("username") or "(local user)"
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise self._connect_failure(exc, user) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.connect(
                self.host,
                port=self.port,
                sock=sock,
                timeout=self.timeout,
                banner_timeout=self.timeout,
                auth_timeout=self.timeout,
                channel_timeout=self.timeout,
                **self.ssh_kwargs,
            )
            ftp = client.open_sftp()
        except Exception as exc:
            client.close()
            sock.close()
            raise self._connect_failure(exc, user) from exc
        channel = ftp.get_channel()
        assert channel is not None
        channel.settimeout(self.timeout)  # a server that stops answering fails, not hangs
        self.client = client
        self._ftp = ftp

    def _connect_failure(self, exc: BaseException, user: str) -> DeliveryError:
        """A typed error naming the server and what to check; never the secret. It carries the
        server as `target`."""
        error = self._connect_error(exc, user)
        error.target = f"sftp://{self.address}"
        return error

    def _connect_error(self, exc: BaseException, user: str) -> DeliveryError:
        where = f"cannot connect to SFTP server `{self.address}` as `{user}`"
        if isinstance(exc, paramiko.BadHostKeyException):
            return DeliveryError(
                f"{where}: its host key does not match the one in known_hosts (a changed "
                "key can mean the connection is intercepted); if the server's key really "
                "changed, update SftpCredentials.known_hosts or ~/.ssh/known_hosts"
            )
        if isinstance(exc, paramiko.AuthenticationException):
            return DeliveryError(
                f"{where}: the server refused the login; check the username and the password "
                "or private key of the SftpCredentials block in destination.block (without a "
                "block: the SSH agent and ~/.ssh keys)"
            )
        if isinstance(exc, paramiko.SSHException) and "known_hosts" in str(exc):
            return DeliveryError(
                f"{where}: the host key of `{self.address}` is unknown and known_hosts_policy "
                "is reject; add the server's line to SftpCredentials.known_hosts (`ssh-keyscan "
                f"-p {self.port} {self.host}` prints it; check it with the server's owner), "
                "or set known_hosts_policy"
            )
        if isinstance(exc, socket.gaierror) and exc.errno != socket.EAI_AGAIN:
            return DeliveryError(f"{where}: unknown host ({exc}); check destination.url")
        if isinstance(exc, OSError | EOFError | paramiko.SSHException):
            return TransientDeliveryError(
                f"{where}: {first_line(exc)}; the server did not answer or closed the connection "
                "(retried; check the server is running and reachable)"
            )
        return DeliveryError(f"{where}: {first_line(exc)}")

    @property
    def ftp(self) -> paramiko.SFTPClient:
        """The SFTP session, opened again if the connection was lost."""
        transport = self.client.get_transport() if self._ftp is not None else None
        if transport is None or not transport.is_active():
            logger.debug("SFTP connection to %s was lost; connecting again", self.address)
            self.client.close()
            self._connect()
        assert self._ftp is not None
        return self._ftp

    def _open(
        self, path: str, mode: str = "rb", block_size: int | None = None, **kwargs: Any
    ) -> Any:
        if "w" not in mode and "a" not in mode:
            return super()._open(path, mode, block_size=block_size, **kwargs)
        handle = self.ftp.open(path, mode, bufsize=block_size or WRITE_BUFFER)
        handle.set_pipelined(True)
        return SftpUpload(handle, path)

    def mv(self, path1: str, path2: str, **_kwargs: Any) -> None:
        """Rename on the server, replacing an existing target (a re-run)."""
        old, new = self._strip_protocol(path1), self._strip_protocol(path2)
        try:
            self.ftp.posix_rename(old, new)  # OpenSSH's extension: an atomic replace
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.EACCES):
                raise
            # A server without the extension (paramiko cannot tell why it failed): plain
            # SFTP rename refuses an existing target, so for a moment there is no file.
            logger.debug("posix-rename failed on %s (%s); renaming", self.address, exc)
            if self.exists(new):
                self.ftp.remove(new)
            self.ftp.rename(old, new)

    def unstrip_protocol(self, name: str) -> str:
        return f"sftp://{self.address}{posixpath.join('/', name)}"


class SftpUpload:
    """A file being written on the server; `close` fails unless every byte arrived."""

    def __init__(self, handle: paramiko.SFTPFile, path: str) -> None:
        self.handle = handle
        self.path = path
        self.size = 0
        self.closed = False

    def __enter__(self) -> SftpUpload:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_rest: object) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()

    def write(self, data: Any) -> int:
        try:
            self.handle.write(data)
        except TimeoutError:
            self._drop_connection()
            raise
        except OSError as exc:
            raise self._refused(exc) from exc
        size = memoryview(data).nbytes
        self.size += size
        return size

    def flush(self) -> None:
        self.handle.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.handle.close()
        except TimeoutError:
            _forget(self.handle)
            self._drop_connection()
            raise
        except OSError as exc:
            _forget(self.handle)
            raise self._refused(exc) from exc
        except BaseException:
            _forget(self.handle)
            raise
        stored = self.handle.sftp.stat(self.path).st_size
        if stored != self.size:
            raise EOFError(
                f"the server holds {stored} of the {self.size} bytes written (the connection "
                "was lost during the upload)"
            )

    def _drop_connection(self) -> None:
        """Close a connection that stopped answering, so the clean-up that follows connects
        again (SftpFileSystem.ftp) instead of timing out on it, step after step."""
        channel = self.handle.sftp.get_channel()
        transport = channel.get_transport() if channel is not None else None
        if transport is not None:
            logger.debug("SFTP upload of %s timed out; closing its connection", self.path)
            transport.close()

    def _refused(self, exc: OSError) -> OSError:
        """A write the server answered with a status: a full disk is said so (OpenSSH sends
        only "Failure" for it), anything else is passed on as it is."""
        if exc.errno is not None:  # a socket's error, or a status paramiko maps to errno
            return exc
        free = free_space(self.handle.sftp, posixpath.dirname(self.path) or "/")
        if free is None or free >= FULL_BELOW:
            return exc
        return OSError(
            errno.ENOSPC, f"the server answered `{first_line(exc)}` and has {free} bytes free"
        )

    def discard(self) -> None:
        """Close without the check: the file is being thrown away."""
        self.closed = True
        try:
            self.handle.close()
        except Exception:  # noqa: BLE001 - the connection may be gone already
            _forget(self.handle)


def free_space(sftp: paramiko.SFTPClient, folder: str) -> int | None:
    """Bytes the user may still write in `folder`, by OpenSSH's statvfs extension (paramiko
    has no method for it); None where the server does not answer it."""
    try:
        kind, reply = sftp._request(CMD_EXTENDED, "statvfs@openssh.com", folder)
    except Exception:  # noqa: BLE001 - no extension, or no connection: nothing to tell
        return None
    if kind != CMD_EXTENDED_REPLY or reply is None:
        return None
    bsize, frsize, _blocks, _bfree, bavail = (reply.get_int64() for _ in range(5))
    return int(bavail * (frsize or bsize))


def _forget(handle: paramiko.SFTPFile) -> None:
    """Mark a handle whose close failed as closed: paramiko would otherwise try again from
    `__del__`, on a dead connection, and print the error at garbage collection."""
    handle._closed = True


class _WarnPolicy(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Connect to an unknown host, with a warning naming its key."""

    def missing_host_key(self, _client: paramiko.SSHClient, hostname: str, key: Any) -> None:
        _run_logger().warning(
            "SFTP: accepting the unknown %s host key of %s (%s); pin it in "
            "SftpCredentials.known_hosts",
            key.get_name(),
            hostname,
            key.fingerprint,
        )


def _run_logger() -> Any:
    """The flow run's logger (the warning shows in the run's logs), or ours outside a run."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logger


def _missing_key_policy(name: str) -> paramiko.MissingHostKeyPolicy:
    if name == "warn":
        return _WarnPolicy()
    if name == "auto-add":
        return paramiko.AutoAddPolicy()
    return paramiko.RejectPolicy()


def _add_known_hosts(keys: paramiko.HostKeys, text: str) -> None:
    """Add OpenSSH known_hosts lines (comments and unknown key types are skipped)."""
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, number)
        except Exception as exc:  # noqa: BLE001 - reported as a configuration error
            raise ConfigurationError(
                f"SftpCredentials.known_hosts: line {number} is not a known_hosts line "
                f"({type(exc).__name__})",
                field="SftpCredentials.known_hosts",
                hint="write `host key-type base64-key`",
            ) from None
        if entry is not None:
            for name in entry.hostnames:
                keys.add(name, entry.key.get_name(), entry.key)
