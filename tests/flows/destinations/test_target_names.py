"""Where an export's files may go (flows/core/targets.py): inside the folder its
destination.url template names, under names a filesystem takes. Refused before the run, by the
checks `exports run`, `exports check`, the gateway and the flow's parameters share."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from flows.core.errors import ConfigurationError
from flows.core.targets import TargetContext
from flows.destinations.local import LOCAL_FOLDER
from flows.destinations.store import (
    leftover_prefix,
    removable_paths,
    temporary_path,
    temporary_writer,
)
from flows.export import export
from flows.parameters import validate_export_parameters
from flows.request import DestinationConfig

pytestmark = pytest.mark.unit

MAX_NAME_BYTES = 255  # a file name's limit on ext4, XFS, APFS, NTFS
RUN = "0b3c5f0e-6d3b-4a57-9a51-0d3f1c7e2a10"


def parameters(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "source": {"url": "sqlite:///demo/demo.sqlite", "table": "orders"},
        "destination": {"url": url},
        **extra,
    }


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("../../escaped", "has a `/`"),
        ("/abs/x", "has a `/`"),
        ("tenant-b/planted", "has a `/`"),
        ("a\\b", "has a `\\`"),
        ("line\nbreak", "control character (\\n)"),
        ("nul\x00byte", "control character (\\x00)"),
        ("..", "starts with `.`"),
        (".hidden", "starts with `.`"),
        ("é" * 128, "is 256 bytes of UTF-8; a file name holds at most 255"),
    ],
)
def test_an_export_name_that_is_not_one_file_name_is_refused_before_the_run(
    name: str, says: str
) -> None:
    """Issue 24: `name: ../../escaped` with `/data/out/{export}.{ext}` wrote /data/escaped.csv,
    a `/` made folders, a newline went into the file name and a NUL failed mid-run: the checks
    before the run (`exports run --set`, the gateway, `exports check`) and the flow's own
    parameter validation refuse such a name, naming the field and what it may hold."""
    with pytest.raises(ConfigurationError) as caught:
        validate_export_parameters(parameters("/data/out/{export}.{ext}", name=name))
    message = str(caught.value)
    assert message.startswith("name: `"), message
    assert says in message, message
    assert "use letters, digits" in message, message
    with pytest.raises(Exception, match=r"name: `") as flow_caught:
        export.validate_parameters(parameters("/data/out/{export}.{ext}", name=name))
    assert says in str(flow_caught.value)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("s3://bucket/tenant-a/../other/{export}.{ext}", "with a `..` segment"),
        ("s3://bucket/tenant-a//{export}.{ext}", "with an empty segment (`//`)"),
        ("/data/out/../../{export}.{ext}", "with a `..` segment"),
        ("out//{export}.{ext}", "with an empty segment (`//`)"),
        ("sftp://host/data/../{export}.{ext}", "with a `..` segment"),
        ("out/{date:%Y\n%m}/{export}.{ext}", "with a control character (\\n)"),
        ("{date:/%Y}/{export}.{ext}", "an absolute path from a relative template"),
        ("https://hooks.example.com/a/../b/{export}", "with a `..` segment"),
    ],
)
def test_a_template_that_leaves_its_folder_is_refused(url: str, says: str) -> None:
    """Issue 24: keys came out as `tenant-a/../../other/planted.csv` and `tenant-a//abs/x.csv`;
    a destination.url whose rendering has a `..` or an empty segment, a control character or an
    absolute path from a relative template is refused when the parameters are read."""
    with pytest.raises(ValidationError) as caught:
        DestinationConfig(url=url)
    message = str(caught.value)
    assert "destination.url: `" in message and says in message, message


def test_names_up_to_255_bytes_are_allowed_and_longer_rendered_names_refused() -> None:
    """Issue 24: a final name of 205-255 bytes could never be written (its temporary name adds
    ~50 bytes: `File name too long`), and a longer one failed only when written: a name the
    filesystem takes is allowed, one it does not is refused before the run with its size,
    whatever makes it long (the name, the template, a part number, `.gz`, the manifest)."""
    name = "n" * (MAX_NAME_BYTES - len(".csv"))
    validate_export_parameters(parameters("/data/out/{export}.{ext}", name=name))  # 255 bytes
    refused = [
        parameters("/data/out/{export}-{date}.{ext}", name=name),
        parameters("/data/out/{export}.{ext}", name=name, format="jsonl"),
        {**parameters("/data/out/{export}.{ext}", name=name)}
        | {"destination": {"url": "/data/out/{export}.{ext}", "max_file_mb": 1}},
        {**parameters("/data/out/{export}.{ext}", name=name)}
        | {"destination": {"url": "/data/out/{export}.{ext}", "compression": "gzip"}},
        {**parameters("/data/out/{export}.{ext}", name=name[:-8])}
        | {"destination": {"url": "/data/out/{export}.{ext}", "manifest": True}},
        parameters("s3://bucket/" + "f" * 256 + "/{export}.{ext}"),
    ]
    for refused_parameters in refused:
        with pytest.raises(ConfigurationError, match=r"bytes of UTF-8; a file or folder name "
                           r"holds at most 255") as caught:  # fmt: skip
            validate_export_parameters(refused_parameters)
        assert str(caught.value).startswith("destination.url: `"), caught.value


def test_a_temporary_name_stays_within_255_bytes_and_names_its_run_and_target() -> None:
    """Issue 24: `.NAME.<run id>-xxxxxxxx.tmp` added 51 bytes to a final name, so a final
    name of 205 bytes or more could not be written: a long NAME is cut (with a hash of the
    whole, so each target keeps its own temporary names) and the run id stays readable for the
    sweeps of leftovers."""
    long_name = "é" * 120 + "-0001.csv"  # 249 bytes
    sibling = "é" * 120 + "-0002.csv"  # the same run's next part, in progress
    folder = "bucket/daily"
    own = temporary_path(f"{folder}/{long_name}", RUN)
    other = temporary_path(f"{folder}/{sibling}", RUN)
    for path in (own, other):
        name = posixpath.basename(path)
        assert len(name.encode()) <= MAX_NAME_BYTES
        name.encode().decode("utf-8")  # cut on a character's boundary
        assert temporary_writer(path, leftover_prefix(f"{folder}/{long_name}")) == RUN
    assert own.rsplit("-", 1)[0] != other.rsplit("-", 1)[0]  # each target its own name
    assert removable_paths([own, other], f"{folder}/{long_name}", RUN) == {own}
    assert temporary_path(f"{folder}/orders.csv", RUN).startswith(f"{folder}/.orders.csv.{RUN}-")


def test_a_long_name_is_written_to_a_local_folder(tmp_path: Path) -> None:
    """Issue 24: a final name of 255 bytes is written and published in a real folder (its
    temporary name used to fail with `File name too long`)."""
    fs = LOCAL_FOLDER.filesystem(str(tmp_path), None)
    name = "n" * (MAX_NAME_BYTES - len(".csv"))
    context = TargetContext.sample()
    context = TargetContext(name, "deployment", RUN, context.date, "csv")
    final, temp = LOCAL_FOLDER.part_paths(
        fs, f"{tmp_path}/{{export}}.{{ext}}", context, 1, split=False, compression="none"
    )
    LOCAL_FOLDER.prepare(fs, final, RUN, first=True)
    with fs.open(temp, "wb") as file:
        file.write(b"a,b\n")
    LOCAL_FOLDER.place(fs, temp, final)
    assert [path.name for path in tmp_path.iterdir()] == [f"{name}.csv"]
    assert (tmp_path / f"{name}.csv").read_bytes() == b"a,b\n"
