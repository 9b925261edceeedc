"""gcsfs's plain filesystem, writing every object with a customer-managed key (CMEK) when
one is given (`GcsCredentials.kms_key_name`).

gcsfs sends a key on uploads (`kmsKeyName`, a GCSFile argument) but not on a server-side
copy: its rewrite would encrypt the published object with the bucket's default key instead.
Here both carry it: every file opened for writing (the temporary parts, the manifest, the
completion marker) and every copy to a final name (`destinationKmsKeyName`).
"""

from __future__ import annotations

from typing import Any

from gcsfs.core import GCSFileSystem


class KeyedGcsFileSystem(GCSFileSystem):  # type: ignore[misc]  # gcsfs has no type hints
    """A GCSFileSystem whose uploads and copies are encrypted with `kms_key_name`."""

    def __init__(self, *args: Any, kms_key_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kms_key_name = kms_key_name

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if self.kms_key_name and "r" not in mode:
            kwargs["kms_key_name"] = self.kms_key_name
        return super()._open(path, mode, **kwargs)

    async def _cp_file(self, path1: str, path2: str, acl: str | None = None, **kwargs: Any) -> None:
        """A server-side copy (rewrite) that encrypts the copy with the key: GCS answers a
        large or re-keyed rewrite in steps, each continued with its token."""
        if not self.kms_key_name:
            await super()._cp_file(path1, path2, acl=acl, **kwargs)
            return
        bucket1, key1, generation1 = self.split_path(path1)
        bucket2, key2, generation2 = self.split_path(path2)
        if generation2:
            raise ValueError("Cannot write to specific object generation")
        token: str | None = None
        while True:
            out = await self._call(
                "POST",
                "b/{}/o/{}/rewriteTo/b/{}/o/{}",
                bucket1,
                key1,
                bucket2,
                key2,
                headers={"Content-Type": "application/json"},
                destinationKmsKeyName=self.kms_key_name,
                destinationPredefinedAcl=acl,
                rewriteToken=token,
                sourceGeneration=generation1,
                json_out=True,
            )
            if out["done"] is True:
                break
            token = out["rewriteToken"]
        await self._write_file_cache_update(path2)
