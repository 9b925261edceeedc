"""Prefect blocks: saved configuration and credentials for sources and destinations."""

from blocks.destinations import GcsCredentials, S3Credentials, SftpCredentials
from blocks.sources import SqlSource

__all__ = ["GcsCredentials", "S3Credentials", "SftpCredentials", "SqlSource"]
