"""The two ways of delivering (flows/destinations/delivery.py): a file store publishes files
that can be read back; an HTTP receiver gets POSTs and keeps nothing of ours. What each way
refuses before a run, and what the gateway may read back, asked of the store, not of a flag."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from flows.core.config import RunnerConfig
from flows.core.errors import ConfigurationError
from flows.core.targets import TargetContext
from flows.destinations.delivery import stored_filesystem
from flows.request import DestinationConfig, check_destination_names, check_runner

pytestmark = pytest.mark.unit

HTTP_MANIFEST = (
    "destination.manifest: an HTTP receiver gets each file as a POST, with X-Export-Part / "
    "X-Export-Parts; a manifest is written next to files in a folder or a bucket"
)


def test_an_http_receiver_takes_no_manifest() -> None:
    with pytest.raises(ValidationError) as caught:
        DestinationConfig(url="https://hooks.example.com/in", manifest=True)
    assert caught.value.errors()[0]["msg"] == f"Value error, {HTTP_MANIFEST}"


@pytest.mark.parametrize(
    "url", ["out/{export}.{ext}", "s3://bucket/{export}.{ext}", "sftp://h/in/{export}.{ext}"]
)
def test_a_file_store_writes_a_manifest(url: str) -> None:
    assert DestinationConfig(url=url, manifest=True).manifest is True


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("https://hooks.example.com/in/", None),  # an endpoint, not a file: no name needed
        ("out/", "destination.url: "),  # a folder where a file name belongs
        ("s3://bucket/exports/", "destination.url: "),
    ],
)
def test_only_a_file_store_needs_a_file_name(url: str, refused: str | None) -> None:
    if refused is None:
        DestinationConfig(url=url)
        return
    with pytest.raises(ValidationError, match=refused):
        DestinationConfig(url=url)


def test_the_names_an_http_export_sends_are_checked_without_a_file_name() -> None:
    destination = DestinationConfig(url="https://hooks.example.com/{export}/")
    check_destination_names(destination, "orders", "csv", TargetContext.sample())
    with pytest.raises(ConfigurationError, match="^name: "):
        check_destination_names(destination, "a/b", "csv", TargetContext.sample())


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("relative/{export}.{ext}", "runner.dask: destination.url `relative/{export}.{ext}` is a"),
        ("http://hooks.example.com/in", "runner.dask: an HTTP destination is POSTed"),
    ],
)
def test_what_dask_workers_cannot_deliver_to_names_the_runner(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_runner(RunnerConfig(dask="local"), DestinationConfig(url=url))
    assert str(caught.value).startswith(message)


def test_an_absolute_folder_serves_every_worker(tmp_path: Path) -> None:
    check_runner(RunnerConfig(dask="local"), DestinationConfig(url=f"{tmp_path}/{{export}}.csv"))
    check_runner(RunnerConfig(dask="local"), DestinationConfig(url=f"file://{tmp_path}/x.csv"))


def test_a_delivered_file_is_read_back_only_from_a_file_store(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_bytes(b"id\n1\n")
    fs = stored_filesystem(DestinationConfig(url=f"{tmp_path}/{{export}}.{{ext}}"))
    assert fs is not None
    assert fs.cat_file(str(tmp_path / "orders.csv")) == b"id\n1\n"
    assert stored_filesystem(DestinationConfig(url="https://hooks.example.com/in")) is None
