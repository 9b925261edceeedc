"""Real servers on 127.0.0.1 for the tests and the benchmarks, started and stopped by us.

PostgreSQL 15 is installed on the machines (not running): we initdb a private cluster in a
temporary folder, on a free port, and remove it afterwards. As root, PostgreSQL's tools run
as the `postgres` user, since initdb refuses to run as root.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    def answer(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, in order."""
        with self.lock:
            self.script.extend(statuses)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
