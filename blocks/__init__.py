"""Prefect blocks: saved configuration and credentials for sources and destinations."""

from blocks.sources import SqlSource

__all__ = ["SqlSource"]
