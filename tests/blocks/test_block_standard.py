"""Prefect's `BlockStandardTestSuite` over every block the project defines (found by walking
the `blocks` package, so a new block is covered without editing this file): each has a
description, a documentation URL, a described field, a code example that loads it, and a logo."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from urllib.parse import urlsplit

import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites.blocks import BlockStandardTestSuite

import blocks

pytestmark = pytest.mark.unit


def project_blocks() -> list[type[Block]]:
    """Every Block subclass defined in a module of the `blocks` package."""
    found: dict[str, type[Block]] = {}
    for module_info in pkgutil.walk_packages(blocks.__path__, f"{blocks.__name__}."):
        module = importlib.import_module(module_info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, Block) and value.__module__ == module.__name__:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[key] for key in sorted(found)]


BLOCKS = project_blocks()


def test_the_walk_finds_every_known_block() -> None:
    names = {block.__name__ for block in BLOCKS}
    assert names >= {
        "SqlSource",
        "S3Credentials",
        "GcsCredentials",
        "AzureBlobCredentials",
        "SftpCredentials",
        "HttpPostTarget",
        "StatusAlerts",
    }
    # `exports setup` registers PROJECT_BLOCKS: a block found here but missing there would
    # never reach the server.
    assert set(BLOCKS) == set(blocks.PROJECT_BLOCKS)


@pytest.mark.parametrize("block_class", BLOCKS, ids=lambda block: block.__name__)
class TestBlockStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self, block_class: type[Block]) -> type[Block]:
        return block_class

    def test_has_a_valid_image(self, block: type[Block]) -> None:
        """The standard check downloads the logo (and needs Pillow); the tests reach only
        127.0.0.1, so this one checks the URL the UI will load: an https PNG."""
        logo_url = block._logo_url
        assert logo_url is not None, f"{block.__name__} is missing a value for _logo_url"
        parts = urlsplit(str(logo_url))
        assert parts.scheme == "https" and parts.netloc, logo_url
        assert parts.path.endswith(".png"), logo_url
