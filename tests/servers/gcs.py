"""gcp-storage-emulator on loopback: a real HTTP GCS JSON API for the tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.servers.ports import free_port


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
