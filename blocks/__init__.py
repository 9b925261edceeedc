"""Prefect blocks: saved configuration and credentials for sources and destinations."""

from blocks.alerts import StatusAlerts
from blocks.destinations import (
    AzureBlobCredentials,
    GcsCredentials,
    HttpPostTarget,
    S3Credentials,
    SftpCredentials,
)
from blocks.sources import SqlSource

__all__ = [
    "AzureBlobCredentials",
    "GcsCredentials",
    "HttpPostTarget",
    "S3Credentials",
    "SftpCredentials",
    "SqlSource",
    "StatusAlerts",
]
