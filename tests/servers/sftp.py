"""asyncssh's SFTP server on loopback, with the faults the tests cause (cut uploads, restarts,
a full disk)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import paramiko


class SftpServer:
    """asyncssh's SFTP server on 127.0.0.1, on its own event-loop thread, serving `root` as
    `/` (chroot). Two users: USER logs in with PASSWORD, KEY_USER with `client_key`.

    Faults for the tests: `drop_uploads(after_bytes)` cuts the connection of an upload that
    passes that many bytes; `restart_during_upload(after_bytes, down_s)` stops the whole
    server there (listener and connections) and starts it again on the same port.
    """

    USER = "exporter"
    PASSWORD = "sftp-test-password-42"
    KEY_USER = "keyed"

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.root = Path(tempfile.mkdtemp(prefix="exports-sftp-"))
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.posix_rename = True  # False: answer OpenSSH's posix-rename as unsupported
        # Called with the target path (as the client names it) before each rename is done.
        self.before_rename: Callable[[str], None] | None = None
        self.connections_made = 0
        self.faults_fired = 0  # connections cut or restarts, one per upload
        self._cut: set[asyncssh.SSHServerConnection] = set()
        self.connections: set[asyncssh.SSHServerConnection] = set()
        self._listener: asyncssh.SSHAcceptor | None = None
        self._fault: tuple[str, int, float] | None = None
        self._fault_times: int | None = None
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.start()

    @property
    def known_hosts(self) -> str:
        """The server's host key as an OpenSSH known_hosts line."""
        kind, blob = self.host_key.export_public_key("openssh").decode().split()[:2]
        return f"[{self.host}]:{self.port} {kind} {blob}"

    @property
    def client_key_text(self) -> str:
        """KEY_USER's private key, OpenSSH text."""
        return bytes(self.client_key.export_private_key("openssh")).decode()

    def url(self, path: str) -> str:
        return f"sftp://{self.host}:{self.port}{path}"

    @contextlib.contextmanager
    def client(self) -> Iterator[paramiko.SFTPClient]:
        """An independent paramiko SFTPClient (host key checked) for reading back."""
        blob = base64.b64decode(self.host_key.export_public_key("openssh").split()[1])
        sock = socket.create_connection((self.host, self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = paramiko.Transport(sock)
        try:
            transport.connect(
                hostkey=paramiko.Ed25519Key(data=blob),
                username=self.USER,
                password=self.PASSWORD,
            )
            sftp = paramiko.SFTPClient.from_transport(transport)
            assert sftp is not None
            yield sftp
        finally:
            transport.close()

    def start(self) -> None:
        self._call(self._listen())

    def stop(self) -> None:
        """Stop listening and cut every connection (the root folder stays)."""
        self._call(self._stop())

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)

    def drop_uploads(self, after_bytes: int, times: int | None = None) -> None:
        """Cut the connection of the next `times` uploads (None: all) at `after_bytes`."""
        self._fault, self._fault_times = ("drop", after_bytes, 0.0), times

    def restart_during_upload(self, after_bytes: int, down_s: float) -> None:
        """Stop the server once an upload passes `after_bytes`; start it `down_s` later."""
        self._fault, self._fault_times = ("restart", after_bytes, down_s), 1

    def clear_faults(self) -> None:
        self._fault, self._fault_times = None, None
        self.posix_rename = True
        self.before_rename = None

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    async def _listen(self) -> None:
        self._listener = await asyncssh.listen(
            self.host,
            self.port,
            server_host_keys=[self.host_key],
            server_factory=lambda: _SshLogin(self),
            sftp_factory=self._sftp_session,
            allow_scp=False,
        )
        self.port = self._listener.get_port()

    def _sftp_session(self, chan: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
        return _ChrootSftp(chan, self)

    async def _stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
        for conn in list(self.connections):
            conn.abort()

    def fault_fires(self, connection: asyncssh.SSHServerConnection, end: int) -> bool:
        """Called before each write; True when a fault fired (the write must not happen)."""
        if connection in self._cut:
            return True  # writes already on their way when the connection was cut
        if self._fault is None or end < self._fault[1] or self._fault_times == 0:
            return False
        self._cut.add(connection)
        kind, _, down_s = self._fault
        self.faults_fired += 1
        if self._fault_times is not None:
            self._fault_times -= 1
        if kind == "drop":
            connection.abort()
        else:
            asyncio.ensure_future(self._stop())
            self.loop.call_later(down_s, lambda: asyncio.ensure_future(self._listen()))
        return True


class _SshLogin(asyncssh.SSHServer):  # type: ignore[misc]
    """Password login for USER, public key login for KEY_USER."""

    def __init__(self, server: SftpServer) -> None:
        self.server = server
        self.conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        self.server.connections_made += 1
        self.server.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: ARG002
        if self.conn is not None:
            self.server.connections.discard(self.conn)

    def begin_auth(self, username: str) -> bool:  # noqa: ARG002
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == SftpServer.USER and password == SftpServer.PASSWORD

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return bool(
            username == SftpServer.KEY_USER
            and key.public_data == self.server.client_key.public_data
        )


class _ChrootSftp(asyncssh.SFTPServer):  # type: ignore[misc]
    """The stock SFTP server inside `root`, with the test's faults."""

    def __init__(self, chan: asyncssh.SSHServerChannel, server: SftpServer) -> None:
        super().__init__(chan, chroot=str(server.root).encode())
        self.server = server

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        if self.server.fault_fires(self.connection, offset + len(data)):
            raise asyncssh.SFTPConnectionLost("cut by the test")
        return int(super().write(file_obj, offset, data))

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        if not self.server.posix_rename:
            raise asyncssh.SFTPOpUnsupported("posix-rename is switched off by the test")
        if self.server.before_rename is not None:
            self.server.before_rename(os.fsdecode(newpath))
        super().posix_rename(oldpath, newpath)

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        if self.server.before_rename is not None:
            self.server.before_rename(os.fsdecode(newpath))
        super().rename(oldpath, newpath)


class SmallDiskSftpServer(SftpServer):
    """The test SFTP server with a full disk's answers. `capacity`: where mounting a small
    filesystem is not allowed, writes fail as a full disk does (OSError ENOSPC) once the files
    under `full_folder` would pass that many bytes, and statvfs reports what is left of it.
    `openssh_status`: a failed write is answered as OpenSSH's sftp-server does, a bare
    "Failure" status (it maps only ENOENT, EACCES and a few more to their own codes)."""

    def __init__(self, full_folder: str, capacity: int | None, *, openssh_status: bool) -> None:
        self.full_folder = full_folder.strip("/")
        self.capacity = capacity
        self.openssh_status = openssh_status
        super().__init__()

    def used(self) -> int:
        folder = self.root / self.full_folder
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())

    def _sftp_session(self, chan: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
        return _SmallDiskSftp(chan, self)


class _SmallDiskSftp(_ChrootSftp):
    BLOCK = 4096

    def __init__(self, chan: asyncssh.SSHServerChannel, server: SmallDiskSftpServer) -> None:
        super().__init__(chan, server)
        self.small = server

    def _inside(self, name: bytes) -> bool:
        return f"/{self.small.full_folder}".encode() in os.fsencode(name)

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        import errno

        try:
            capacity = self.small.capacity
            if capacity is not None and self._inside(getattr(file_obj, "name", b"")):
                if self.small.used() + len(data) > capacity:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return super().write(file_obj, offset, data)
        except OSError:
            if self.small.openssh_status:
                raise asyncssh.SFTPFailure("Failure") from None
            raise

    def statvfs(self, path: bytes) -> Any:
        capacity = self.small.capacity
        if capacity is None or not self._inside(self.map_path(path)):
            return super().statvfs(path)
        blocks, free = capacity // self.BLOCK, max(capacity - self.small.used(), 0) // self.BLOCK
        return asyncssh.SFTPVFSAttrs(
            self.BLOCK, self.BLOCK, blocks, free, free, 1000, 1000, 1000, 0, 0, 255
        )
