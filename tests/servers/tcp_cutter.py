"""A TCP relay on loopback that breaks connections mid-stream, as a network does."""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass

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
