"""Prefect blocks: saved configuration and credentials for sources and destinations."""

from blocks.destinations import AzureBlobCredentials, GcsCredentials, S3Credentials
from blocks.sources import SqlSource

__all__ = ["AzureBlobCredentials", "GcsCredentials", "S3Credentials", "SqlSource"]
