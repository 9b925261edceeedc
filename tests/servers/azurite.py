"""Azurite's Blob service (from npm) on loopback: a real Azure Blob API for the tests."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.processes import stop_process, wait_for_port
from tests.servers.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


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
        stop_process(self.process, grace_s=10)


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
    try:
        wait_for_port(port, 30, process=process)
    except AssertionError:
        process.kill()
        error = process.stderr.read().decode() if process.stderr else ""
        raise RuntimeError(f"Azurite did not start on port {port}: {error}") from None
    return AzuriteServer(port, process)
