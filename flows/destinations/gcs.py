"""Google Cloud Storage, through gcsfs: resumable uploads of `part_size_mb` chunks, published by
a server-side copy (rewrite) and a delete. Without a block, Application Default Credentials
apply (GOOGLE_APPLICATION_CREDENTIALS, the metadata server); STORAGE_EMULATOR_HOST for an
emulator. A block's `kms_key_name` encrypts every object written, copies included
(flows/destinations/gcs_filesystem.py)."""

from __future__ import annotations

from typing import Any

from fsspec import AbstractFileSystem
from prefect.blocks.core import Block

from blocks.gcs import GcsCredentials
from flows.destinations.store import MIB, ObjectStore


class Gcs(ObjectStore):
    name = "Google Cloud Storage"
    schemes = ("gs", "gcs")
    protocol = "gcs"
    block_types = (GcsCredentials,)
    default_options = {"block_size": 8 * MIB}

    def connect(self, url: str, options: dict[str, Any], block: Block | None) -> AbstractFileSystem:  # noqa: ARG002 - the interface of every store
        # gcsfs's plain filesystem, whatever GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT said when gcsfs
        # was imported: its experimental hierarchical-namespace one probes each bucket over
        # gRPC, which hangs for about a minute per bucket against emulators.
        from flows.destinations.gcs_filesystem import KeyedGcsFileSystem

        fs: AbstractFileSystem = KeyedGcsFileSystem(skip_instance_cache=True, **options)
        return fs

    def sdk_transient(self, exc: BaseException) -> bool:
        from google.auth.exceptions import TransportError

        return isinstance(exc, TransportError)


GCS_STORE = Gcs()
