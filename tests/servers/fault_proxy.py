"""An HTTP proxy in front of a real store that answers chosen requests with an error, or
drops them, and logs every request."""

from __future__ import annotations

from typing import Any


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of a real server, answering some requests with an
    error instead of forwarding them (`fail(predicate, status, times)`), and logging every
    request as (method, path with query, status), and in `requests` with its headers too."""

    def __init__(self, upstream: str) -> None:
        import http.server
        import threading

        self.upstream = upstream.removeprefix("http://")
        self.rules: list[list[Any]] = []
        self.log: list[tuple[str, str, int]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, path, headers
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # answers botocore's `Expect: 100-continue`

            def log_message(self, *_args: Any) -> None:
                return None

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.requests.append((self.command, self.path, dict(self.headers.items())))
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
