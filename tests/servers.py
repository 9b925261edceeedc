"""Real servers on 127.0.0.1 for the tests and the benchmarks, started and stopped by us.

PostgreSQL 15 is installed on the machines (not running): we initdb a private cluster in a
temporary folder, on a free port, and remove it afterwards. As root, PostgreSQL's tools run
as the `postgres` user, since initdb refuses to run as root.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import paramiko
import psycopg

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin() -> Path:
    for candidate in PG_BIN_CANDIDATES:
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError("PostgreSQL's initdb was not found; install postgresql-15 (see .ci/run)")


@dataclass
class MariaDbServer:
    """A private MariaDB server (Debian's mariadb-server) on loopback, without grant tables:
    any user connects without a password (a throwaway server for the tests only)."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}?charset=utf8mb4"

    def connect(self, database: str | None = None) -> Any:
        import pymysql

        return pymysql.connect(
            host="127.0.0.1", port=self.port, user="root", database=database, charset="utf8mb4"
        )

    def create_database(self, name: str) -> str:
        with closing(self.connect()) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        return name

    def drop_database(self, name: str) -> None:
        with closing(self.connect()) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def start_mariadb() -> MariaDbServer:
    """mariadb-install-db into a temporary folder, then mariadbd on a free loopback port; ready
    to accept connections when it returns."""
    installer, server = shutil.which("mariadb-install-db"), shutil.which("mariadbd")
    if server is None and Path("/usr/sbin/mariadbd").exists():
        server = "/usr/sbin/mariadbd"
    if installer is None or server is None:
        raise RuntimeError("MariaDB was not found; install mariadb-server (see .ci/run)")
    root = Path(tempfile.mkdtemp(prefix="exports-mariadb-"))
    subprocess.run(
        [installer, f"--datadir={root / 'data'}", "--user=root", "--skip-test-db"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    port = free_port()
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [
            server, f"--datadir={root / 'data'}", f"--port={port}",
            f"--socket={root / 'mysqld.sock'}", f"--pid-file={root / 'mysqld.pid'}",
            "--user=root", "--bind-address=127.0.0.1", "--skip-grant-tables",
            "--innodb-buffer-pool-size=64M", "--skip-log-bin",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    mariadb = MariaDbServer(root, port, process)
    deadline = time.monotonic() + 60
    while True:
        try:
            mariadb.connect().close()
            return mariadb
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                mariadb.stop()
                raise RuntimeError((root / "server.log").read_text()) from None
            time.sleep(0.2)


@dataclass
class PostgresServer:
    """A private PostgreSQL cluster: `url(db)` gives a SQLAlchemy URL, `dsn(db)` a libpq one."""

    root: Path
    port: int
    bin: Path

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def restart(self) -> None:
        """`pg_ctl restart -m fast`, as an operator does: sessions are terminated ("due to
        administrator command"), then the server accepts connections again."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        data, log = str(self.root / "data"), str(self.root / "log")
        _as_postgres(
            [str(self.bin / "pg_ctl"), "-D", data, "-m", "fast", "-w", "-o", options, "-l", log,
             "restart"]
        )  # fmt: skip

    def stop(self) -> None:
        _as_postgres(
            [str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"],
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def _as_postgres(command: list[str], check: bool = True) -> subprocess.CompletedProcess[bytes]:
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, check=check, capture_output=True, timeout=120)


def start_postgres() -> PostgresServer:
    """initdb + pg_ctl start on a free port; ready to accept connections when it returns."""
    pg_bin = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="exports-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    port = free_port()
    _as_postgres(
        [
            str(pg_bin / "initdb"),
            "-D",
            str(root / "data"),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    _as_postgres(
        [
            str(pg_bin / "pg_ctl"),
            "-D",
            str(root / "data"),
            "-o",
            options,
            "-l",
            str(root / "log"),
            "-w",
            "start",
        ]
    )
    server = PostgresServer(root, port, pg_bin)
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(server.dsn(), connect_timeout=2):
                return server
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.2)


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class S3Server:
    """moto's S3 server on 127.0.0.1 (a real HTTP S3 API, not patched boto calls)."""

    endpoint_url: str
    server: object

    ACCESS_KEY = "exports-test-key"
    SECRET_KEY = "exports-test-secret"

    def client(self) -> object:
        """An independent boto3 client for checking what the exports wrote."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.ACCESS_KEY,
            aws_secret_access_key=self.SECRET_KEY,
            region_name="us-east-1",
        )

    def stop(self) -> None:
        self.server.stop()  # type: ignore[attr-defined]


def start_s3() -> S3Server:
    """ThreadedMotoServer on a free loopback port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return S3Server(f"http://{host}:{port}", server)


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of a real server, answering some requests with an
    error instead of forwarding them (`fail(predicate, status, times)`), and logging every
    request as (method, path with query, status)."""

    def __init__(self, upstream: str) -> None:
        import http.server
        import threading

        self.upstream = upstream.removeprefix("http://")
        self.rules: list[list[Any]] = []
        self.log: list[tuple[str, str, int]] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # answers botocore's `Expect: 100-continue`

            def log_message(self, *_args: Any) -> None:
                return None

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status = proxy._injected(self.command, self.path)
                if status is not None:
                    payload = (
                        f"<Error><Code>{_S3_CODES.get(status, 'InternalError')}</Code>"
                        "<Message>injected by the test proxy</Message></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":  # a HEAD answer has no body
                        self.wfile.write(payload)
                    proxy.log.append((self.command, self.path, status))
                    return
                import http.client

                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()
                proxy.log.append((self.command, self.path, answer.status))

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, predicate: Any, status: int, times: int | None = None) -> None:
        """Answer `status` to requests where predicate(method, path) holds, `times` times
        (None: always)."""
        self.rules.append([predicate, status, times])

    def _injected(self, method: str, path: str) -> int | None:
        for rule in self.rules:
            predicate, status, times = rule
            if predicate(method, path) and (times is None or times > 0):
                if times is not None:
                    rule[2] = times - 1
                return int(status)
        return None

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


_S3_CODES = {403: "AccessDenied", 500: "InternalError", 503: "SlowDown"}


@dataclass
class GcsServer:
    """gcp-storage-emulator (a real HTTP GCS JSON API) on 127.0.0.1, in memory."""

    endpoint_url: str
    server: Any

    def client(self) -> Any:
        """An independent google-cloud-storage client for checking what the exports wrote."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="exports-test",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": self.endpoint_url},
        )

    def stop(self) -> None:
        self.server.stop()


def start_gcs() -> GcsServer:
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    return GcsServer(f"http://127.0.0.1:{port}", server)


REPO_ROOT = Path(__file__).resolve().parent.parent
AZURITE = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"


@dataclass
class AzuriteServer:
    """Azurite's Blob service (the Azure Storage team's emulator, from npm) on 127.0.0.1."""

    port: int
    process: subprocess.Popen[bytes]

    # Azurite's one built-in account; its key is public, documented with Azurite.
    ACCOUNT = "devstoreaccount1"
    KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.ACCOUNT}"

    def connection_string(self, blob_endpoint: str | None = None) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.ACCOUNT};AccountKey={self.KEY};"
            f"BlobEndpoint={blob_endpoint or self.blob_endpoint};"
        )

    def client(self) -> Any:
        """An independent azure-storage-blob client for checking what the exports wrote."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string())

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_azurite() -> AzuriteServer:
    """Azurite's Blob service in memory on a free loopback port (`make install` installs it)."""
    if not AZURITE.exists():
        raise RuntimeError(f"{AZURITE} is missing; run `make install` (npm install) first")
    port = free_port()
    process = subprocess.Popen(
        [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port),
         "--inMemoryPersistence", "--skipApiVersionCheck", "--loose", "--silent",
         "--disableTelemetry"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return AzuriteServer(port, process)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                error = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"Azurite did not start on port {port}: {error}") from None
            time.sleep(0.2)


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
        super().posix_rename(oldpath, newpath)


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the receiver saw it: raw body bytes, headers, and the status it sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


HOLD_AT_MOST_S = 30.0


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that records every request and answers scripted
    statuses: `answer(503, 200)` sends 503 to the next request, then 200; after the script
    runs out, `default_status` (200). `echo_authorization` makes refusals quote the
    Authorization header back, as careless receivers do."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.requests: list[ReceivedRequest] = []
        self.script: list[int] = []
        self.default_status = 200
        self.echo_authorization = False
        self.lock = threading.Lock()
        self.answering = threading.Event()  # cleared by hold(): requests wait for release()
        self.answering.set()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                return None

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self._read_body()
                with receiver.lock:
                    status = receiver.script.pop(0) if receiver.script else receiver.default_status
                    receiver.requests.append(
                        ReceivedRequest("POST", self.path, dict(self.headers.items()), body, status)
                    )
                receiver.answering.wait(HOLD_AT_MOST_S)
                text = "accepted" if status < 300 else "refused"
                if status >= 300 and receiver.echo_authorization:
                    text += f": bad credentials {self.headers.get('Authorization')}"
                payload = json.dumps({"status": text}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = bytearray()
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        data += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                    return bytes(data)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def hold(self) -> None:
        """Record requests but answer none until release() (a webhook that hangs), for at
        most HOLD_AT_MOST_S each."""
        self.answering.clear()

    def release(self) -> None:
        self.answering.set()

    def answer(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, in order."""
        with self.lock:
            self.script.extend(statuses)

    def wait_for(self, count: int, timeout_s: float = 60) -> list[ReceivedRequest]:
        """The requests once `count` have arrived (or the deadline passed): a state hook runs
        after the run's state is already visible, so its POST can trail the run's end."""
        deadline = time.monotonic() + timeout_s
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return list(self.requests)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class PrefectServer:
    """`prefect server start` of its own (API, services, no UI) on a free loopback port, with
    its own PREFECT_HOME: SQLite there by default, or the database it was started with."""

    url: str  # the API's URL, …/api
    home: Path
    log: Path
    process: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        """An environment for a client process of this server (and of no other)."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
        env.update(PREFECT_API_URL=self.url, PREFECT_HOME=str(self.home), DO_NOT_TRACK="1")
        return env

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, 15)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait()
        shutil.rmtree(self.home, ignore_errors=True)


def start_prefect_server(database_url: str | None = None, timeout_s: float = 120) -> PrefectServer:
    """Start `prefect server start` and wait for its /api/health. `database_url` is
    PREFECT_API_DATABASE_CONNECTION_URL (postgresql+asyncpg://…); None: SQLite in its home.
    Its whole output goes to `home/server.log`."""
    import sys

    import httpx

    home = Path(tempfile.mkdtemp(prefix="exports-prefect-"))
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        DO_NOT_TRACK="1",
    )
    if database_url is not None:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    log = home / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "prefect"), "server", "start",
             "--host", "127.0.0.1", "--port", str(port), "--no-ui", "--analytics-off"],
            env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = PrefectServer(f"http://127.0.0.1:{port}/api", home, log, process)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            text = server.log_text()
            server.stop()
            raise RuntimeError(f"prefect server start did not come up:\n{text[-3000:]}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)


_NO_LINGER = (1).to_bytes(4, "little") + (0).to_bytes(4, "little")  # struct linger {1, 0}


class TcpCutter:
    """A TCP relay on 127.0.0.1 in front of a real server (`upstream` port) that breaks a
    connection mid-stream the way a network does, once `n` bytes went upstream through it, for
    the next `times` connections: `cut_after` resets both sides (RST, no FIN: a dropped route,
    a firewall), `stall_after` stops carrying bytes either way and keeps both sides open (a
    black hole: only a timeout tells). `cuts` counts the connections broken."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.connections = 0
        self.cuts = 0
        self._fault: tuple[str, int] | None = None
        self._times = 0
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, upstream_bytes: int, times: int = 1) -> None:
        with self._lock:
            self._fault, self._times = ("cut", upstream_bytes), times

    def stall_after(self, upstream_bytes: int, times: int = 1) -> None:
        with self._lock:
            self._fault, self._times = ("stall", upstream_bytes), times

    def close(self) -> None:
        self._closed.set()
        self.listener.close()
        for link in self._links:
            link.reset()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            self.connections += 1
            for sock in (client, server):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(client, server)
            self._links.append(link)
            threading.Thread(target=self._pump, args=(link, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(link, False), daemon=True).start()

    def _pump(self, link: _Link, upstream: bool) -> None:
        source, target = (link.client, link.server) if upstream else (link.server, link.client)
        try:
            while data := source.recv(65536):
                fault = self._fault_now(link, len(data)) if upstream else None
                if fault == "cut":
                    link.reset()
                    return
                if fault == "stall" or link.stalled:
                    link.stalled = True
                    return  # nothing more is read or sent; both sides stay open
                target.sendall(data)
        except OSError:
            pass
        if not link.stalled:
            link.reset()

    def _fault_now(self, link: _Link, size: int) -> str | None:
        with self._lock:
            link.sent += size
            if self._fault is None or self._times <= 0 or link.sent < self._fault[1]:
                return None
            self._times -= 1
            self.cuts += 1
            return self._fault[0]


@dataclass
class _Link:
    """Both sockets of one relayed connection, and the bytes sent upstream so far."""

    client: socket.socket
    server: socket.socket
    sent: int = 0
    stalled: bool = False

    def reset(self) -> None:
        """Close both sides with a RST (SO_LINGER 0), as a dropped route or firewall does."""
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _NO_LINGER)
            with contextlib.suppress(OSError):
                sock.close()


@contextlib.contextmanager
def small_filesystem(folder: Path, size_bytes: int) -> Iterator[bool]:
    """Mount a tmpfs of `size_bytes` on `folder` (created), for a disk that really fills up;
    yields False, mounting nothing, where mounting is not allowed (not root)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = (
        os.geteuid() == 0
        and shutil.which("mount") is not None
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0755", "tmpfs", str(folder)],
            capture_output=True, check=False, timeout=30,
        ).returncode == 0
    )  # fmt: skip
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


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


_PROBE = """
import sys, time, urllib.request
while True:
    started = time.perf_counter()
    urllib.request.urlopen(sys.argv[1], timeout=60).read()
    print(time.perf_counter() - started, flush=True)
    time.sleep(float(sys.argv[2]))
"""


class LivenessProbe:
    """GET `url` every `every_s` from a process of its own, as an orchestrator's liveness probe
    does: its answer times are not slowed by whatever the caller's own process is doing."""

    def __init__(self, url: str, every_s: float = 0.1) -> None:
        import sys

        self.process = subprocess.Popen(
            [sys.executable, "-c", _PROBE, url, str(every_s)], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.first = float(self.process.stdout.readline())  # probing has begun

    def stop(self) -> list[float]:
        """Stop probing: the answer times, in seconds."""
        self.process.terminate()
        output, _ = self.process.communicate(timeout=30)
        return [self.first, *(float(line) for line in output.split() if line)]


DROP = 0  # a FaultProxy status that means: read the request, answer nothing, close the socket


class DroppingFaultProxy(FaultProxy):
    """A FaultProxy whose rules may also drop the connection (status DROP) instead of
    answering: a store whose connections break mid-upload. Logged with status 0."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.server.handle_error = lambda *_args: None  # type: ignore[method-assign]

    def _injected(self, method: str, path: str) -> int | None:
        status = super()._injected(method, path)
        if status == DROP:
            self.log.append((method, path, DROP))
            # Leaves the handler without an answer: the server thread closes the socket.
            raise ConnectionAbortedError("connection dropped by the test proxy")
        return status
