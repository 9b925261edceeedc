"""Prefect blocks: saved configuration and credentials for sources and destinations."""

from blocks.destinations import GcsCredentials, HttpPostTarget, S3Credentials
from blocks.sources import SqlSource

__all__ = ["GcsCredentials", "HttpPostTarget", "S3Credentials", "SqlSource"]
