"""Prefect blocks: saved configuration and credentials for sources and destinations."""

from blocks.alerts import StatusAlerts
from blocks.azure import AzureBlobCredentials
from blocks.export_state import ExportState
from blocks.gcs import GcsCredentials
from blocks.hash_key import HashKey
from blocks.http_post import HttpPostTarget
from blocks.pgp import OpenPgpPublicKey, OpenPgpSigningKey
from blocks.s3 import S3Credentials
from blocks.sftp import SftpCredentials
from blocks.sources import SqlSource

# Every block type of the project, as `exports setup` registers them with a Prefect server.
PROJECT_BLOCKS = (
    SqlSource,
    S3Credentials,
    GcsCredentials,
    AzureBlobCredentials,
    SftpCredentials,
    HttpPostTarget,
    StatusAlerts,
    OpenPgpPublicKey,
    OpenPgpSigningKey,
    ExportState,
    HashKey,
)

__all__ = [
    "PROJECT_BLOCKS",
    "AzureBlobCredentials",
    "ExportState",
    "GcsCredentials",
    "HashKey",
    "HttpPostTarget",
    "OpenPgpPublicKey",
    "OpenPgpSigningKey",
    "S3Credentials",
    "SftpCredentials",
    "SqlSource",
    "StatusAlerts",
]
