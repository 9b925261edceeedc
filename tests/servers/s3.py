"""moto's S3 server on loopback: a real HTTP S3 API for the tests."""

from __future__ import annotations

from dataclasses import dataclass


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
