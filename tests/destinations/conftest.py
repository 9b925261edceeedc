"""`store`: each object store in turn (S3, GCS, Azure Blob), with a fresh bucket on its server."""

from __future__ import annotations

import pytest

from tests.destinations.stores import STORE_KEYS, StoreUnderTest, az_store, gcs_store, s3_store


@pytest.fixture(params=STORE_KEYS)
def store(request: pytest.FixtureRequest) -> StoreUnderTest:
    key = request.param
    if key == "s3":
        return s3_store(request.getfixturevalue("s3"))
    if key == "gcs":
        return gcs_store(request.getfixturevalue("gcs"))
    return az_store(request.getfixturevalue("azurite"))
