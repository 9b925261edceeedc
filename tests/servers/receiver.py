"""A real HTTP receiver on loopback for webhooks and HTTP POST delivery, recording every request."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any


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
