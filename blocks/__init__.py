"""Prefect blocks: saved configuration and credentials for sources and destinations."""

from blocks.destinations import S3Credentials
from blocks.sources import SqlSource

__all__ = ["S3Credentials", "SqlSource"]
