"""`destination.done_marker` and `on_empty`, refused before any run: a marker that is not one
file name next to the files, a token it cannot have, an HTTP receiver (nothing to put it
next to), an unknown `on_empty`. No database is opened and no Prefect API is asked; the
markers and empty results of real runs are tests/flows/destinations/test_done_marker.py and
tests/flows/test_on_empty.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flows.core.errors import ConfigurationError
from flows.core.targets import TargetContext, marker_name
from flows.destinations.marker import marker_path
from flows.parameters import validate_export_parameters
from flows.request import DestinationConfig, check_destination_names

pytestmark = pytest.mark.unit

SQLITE = "sqlite:///demo/demo.sqlite"


def parameters(marker: str, url: str = "/data/out/{export}.{ext}", **extra: Any) -> dict[str, Any]:
    return {
        "source": {"url": SQLITE, "table": "orders"},
        "destination": {"url": url, "done_marker": marker},
        **extra,
    }


def refusal(marker: str, url: str = "/data/out/{export}.{ext}", **extra: Any) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        validate_export_parameters(parameters(marker, url, **extra))
    assert "\n" not in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    ("marker", "said"),
    [
        (
            "done/_SUCCESS",
            "destination.done_marker: `done/_SUCCESS` has a folder in it; the marker is "
            "written in the folder of the files; give a file name only, e.g. _SUCCESS or "
            "{export}-{date:%Y%m%d}.done",
        ),
        (
            "..\\_SUCCESS",
            "destination.done_marker: `..\\_SUCCESS` has a folder in it; the marker is "
            "written in the folder of the files; give a file name only, e.g. _SUCCESS or "
            "{export}-{date:%Y%m%d}.done",
        ),
        (
            "{export}-{part}.done",
            "destination.done_marker: unknown token `{part}` in `{export}-{part}.done` (one "
            "marker stands for every part); use one of {export}, {deployment}, {run_id}, "
            "{date}, {ext}, {since}, {until}",
        ),
        (
            "{table}.done",
            "destination.done_marker: unknown token `{table}` in `{table}.done` (one marker "
            "stands for every part); use one of {export}, {deployment}, {run_id}, {date}, "
            "{ext}, {since}, {until}",
        ),
        (
            "{export.done",
            "destination.done_marker: template `{export.done` is malformed (expected '}' "
            "before end of string); tokens look like {export} or {date:%Y%m%d}, and a literal "
            "brace is {{ or }}",
        ),
        (
            "{date:%Y/%m}.done",
            "destination.done_marker: `{date:%Y/%m}.done` has a folder in it; the marker is "
            "written in the folder of the files; give a file name only, e.g. _SUCCESS or "
            "{export}-{date:%Y%m%d}.done",
        ),
        (
            ".done",
            "destination.done_marker: `.done` renders `.done`, which starts with `.`; hidden "
            "names are the exports' temporary files, and `..` leaves the folder; use letters, "
            "digits, `-`, `_` and `.`, e.g. _SUCCESS",
        ),
        (
            "",
            "destination.done_marker: `` renders ``, which is empty; use letters, digits, "
            "`-`, `_` and `.`, e.g. _SUCCESS",
        ),
        (
            "x" * 256,
            f"destination.done_marker: `{'x' * 79}…` renders `{'x' * 79}…`, which is 256 "
            "bytes of UTF-8; a file name holds at most 255; use letters, digits, `-`, `_` and "
            "`.`, e.g. _SUCCESS",
        ),
        (
            "{export}.{ext}",
            "destination.done_marker: `{export}.{ext}` renders `orders.csv`, a name of the "
            "export's own files; give the marker a name of its own, e.g. _SUCCESS",
        ),
        (
            "{export}.manifest.json",
            "destination.done_marker: `{export}.manifest.json` renders "
            "`orders.manifest.json`, a name of the export's own files; give the marker a name "
            "of its own, e.g. _SUCCESS",
        ),
    ],
)
def test_a_marker_that_is_not_one_name_next_to_the_files_is_refused(marker: str, said: str) -> None:
    error = refusal(marker)
    assert (str(error), error.field) == (said, "destination.done_marker")


def test_a_marker_on_an_http_receiver_is_refused_as_a_manifest_is() -> None:
    error = refusal("_SUCCESS", "https://hooks.example.com/exports")
    assert (str(error), error.field) == (
        "destination.done_marker: an HTTP receiver gets each file as a POST, with "
        "X-Export-Part / X-Export-Parts; a completion marker is written next to files in a "
        "folder or a bucket; remove destination.done_marker, or deliver to a store",
        "destination.done_marker",
    )


def test_a_window_token_needs_the_runs_window() -> None:
    """Checked again by the flow with the run's own values: a run without a window has no
    {since} to name its marker with."""
    destination = DestinationConfig(url="/data/out/{export}.{ext}", done_marker="{since}.done")
    context = replace(TargetContext.sample(), since=None, until=None)
    with pytest.raises(ConfigurationError) as caught:
        check_destination_names(destination, "orders", "csv", context)
    assert str(caught.value) == (
        "destination.done_marker: `{since}` in `{since}.done` needs a window; use :since / "
        ":until in source.query (or set `window`), or remove the token"
    )


def test_the_name_the_run_gives_it_is_too_long_for_a_long_export_name() -> None:
    destination = DestinationConfig(url="/out/{run_id}.{ext}", done_marker="{export}.done.ok")
    with pytest.raises(ConfigurationError) as caught:
        check_destination_names(destination, "o" * 250, "csv")
    assert caught.value.field == "destination.done_marker"
    assert "is 258 bytes of UTF-8; a file name holds at most 255" in str(caught.value)


@pytest.mark.parametrize(
    ("marker", "url", "name"),
    [
        ("_SUCCESS", "s3://bucket/exports/{export}.{ext}", "_SUCCESS"),
        ("{export}-{date:%Y%m%d}.done", "/out/{date:%Y/%m}/{export}.{ext}", "orders-20260301.done"),
        ("{export}.{ext}.ok", "gs://bucket/{export}-{part}.{ext}", "orders.parquet.ok"),
        ("{deployment}-{run_id}.ok", "sftp://host/out/{export}.{ext}", "nightly-r1.ok"),
        ("{since:%Y%m%d}-{until:%Y%m%d}.done", "/out/{export}.{ext}", "20260228-20260301.done"),
    ],
)
def test_the_names_a_marker_may_have(marker: str, url: str, name: str) -> None:
    validate_export_parameters(parameters(marker, url))
    context = TargetContext(
        "orders",
        "nightly",
        "r1",
        datetime(2026, 3, 1, tzinfo=UTC),
        "parquet",
        datetime(2026, 2, 28, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC),
    )
    assert marker_name(marker, context) == name


def test_the_marker_goes_in_the_folder_the_files_are_published_to(tmp_path: Path) -> None:
    """One path, withdrawn by the delivery and written by the marker's task."""
    destination = DestinationConfig(
        url=f"{tmp_path}/{{date:%Y/%m}}/{{export}}-{{part}}.{{ext}}",
        done_marker="{export}-{date:%Y%m%d}.done",
        compression="gzip",
    )
    context = replace(
        TargetContext.sample(), export="orders", date=datetime(2026, 3, 1, tzinfo=UTC)
    )
    path = marker_path(destination.store, destination.filesystem(), destination, context)
    assert path == f"{tmp_path}/2026/03/orders-20260301.done"


def test_no_marker_by_default() -> None:
    assert DestinationConfig(url="/out/{export}.{ext}").done_marker is None


def test_on_empty_takes_write_skip_or_fail() -> None:
    for value in ("write", "skip", "fail"):
        validate_export_parameters({**parameters("_SUCCESS"), "on_empty": value})
    with pytest.raises(ConfigurationError) as caught:
        validate_export_parameters({**parameters("_SUCCESS"), "on_empty": "ignore"})
    assert (str(caught.value), caught.value.field) == (
        "on_empty: `ignore` Input should be 'write', 'skip' or 'fail'",
        "on_empty",
    )
