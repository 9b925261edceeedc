"""The file stores' delivery protocol over fsspec's `memory://` filesystem: part names and
their hidden temporary names, the sweep of an earlier attempt's leftovers, publishing all or
nothing, and the removal of an earlier run's higher parts (flows/destinations/store.py,
publish.py). The protocol is the stores' own code; only the filesystem is fsspec's in-memory
one, so these run in the unit tier. The same protocol against real servers is
test_stores.py's and test_delivery.py's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fsspec import AbstractFileSystem

from flows.core.errors import DeliveryError, TransientDeliveryError
from flows.core.targets import TargetContext
from flows.destinations.publish import PartNames, number_parts, publish
from flows.destinations.store import (
    ObjectStore,
    Store,
    WrittenFile,
    quietly,
    remove_quietly,
    temporary_path,
    temporary_writer,
)

pytestmark = pytest.mark.unit

RUN = "0b3c5f0e-6d3b-4a57-9a51-0d3f1c7e2a10"
CONTEXT = TargetContext("orders", "nightly", RUN, datetime(2026, 3, 7, tzinfo=UTC), "csv")


class MemoryFolder(Store):
    """A store with folders where publishing is a rename, as the local folder and SFTP."""

    name = "memory"
    schemes = ("memory",)
    protocol = "memory"


class MemoryBucket(ObjectStore):
    """A store without folders: publishing is a copy, then a delete of the temporary object."""

    name = "memory bucket"
    schemes = ("memory",)
    protocol = "memory"


class RefusingFolder(MemoryFolder):
    """Refuses to publish one path, as a store that fails half-way through a set."""

    def __init__(self, refused: str, error: Exception) -> None:
        self.refused, self.error = refused, error

    def place(self, fs: AbstractFileSystem, temp_path: str, final_path: str) -> None:
        if final_path == self.refused:
            raise self.error
        super().place(fs, temp_path, final_path)


@pytest.fixture
def fs() -> AbstractFileSystem:
    return MemoryFolder().filesystem("memory://", None)


@pytest.fixture
def root(fs: AbstractFileSystem) -> Iterator[str]:
    """A folder of its own (fsspec's memory store is one per process), removed afterwards."""
    folder = f"/t-{uuid.uuid4().hex[:12]}"
    yield folder
    if fs.exists(folder):
        fs.rm(folder, recursive=True)


def files(fs: AbstractFileSystem, root: str) -> dict[str, bytes]:
    """Every file under `root`, relative to it, with its bytes."""
    return {path.removeprefix(root + "/"): fs.cat(path) for path in sorted(fs.find(root))}


def write_part(
    store: Store, fs: AbstractFileSystem, template: str, number: int, data: bytes, *, split: bool
) -> WrittenFile:
    """What a writer does for one part: prepare its folder, write its temporary file."""
    final, temp = store.part_paths(fs, template, CONTEXT, number, split=split, compression="none")
    store.prepare(fs, final, RUN, first=number == 1)
    fs.pipe(temp, data)
    return WrittenFile(final, temp, rows=1, bytes=len(data))


@pytest.mark.parametrize(
    ("template", "number", "split", "compression", "final"),
    [
        ("{root}/{export}.{ext}", 1, False, "none", "{root}/orders.csv"),
        ("{root}/{export}.{ext}", 3, True, "none", "{root}/orders-0003.csv"),
        ("{root}/{export}.{ext}", 1, False, "gzip", "{root}/orders.csv.gz"),
        ("{root}/{export}.{ext}", 12, True, "gzip", "{root}/orders-0012.csv.gz"),
        ("{root}/{export}.{ext}.gz", 1, False, "gzip", "{root}/orders.csv.gz"),
        ("{root}/{export}.{ext}", 1, False, "zstd", "{root}/orders.csv.zst"),
        ("{root}/{export}.{ext}", 1, True, "zstd", "{root}/orders-0001.csv.zst"),
        ("{root}/{export}.{ext}.zst", 1, False, "zstd", "{root}/orders.csv.zst"),
        ("{root}/{export}.{ext}", 2, True, "bz2", "{root}/orders-0002.csv.bz2"),
        ("{root}/{export}.{ext}", 9, True, "xz", "{root}/orders-0009.csv.xz"),
        ("{root}/{export}-{part:02d}.{ext}", 7, True, "none", "{root}/orders-07.csv"),
        ("{root}/{date:%Y/%m}/{export}.{ext}", 1, False, "none", "{root}/2026/03/orders.csv"),
        ("memory://{root}/{deployment}/{export}.{ext}", 1, False, "none",
         "{root}/nightly/orders.csv"),
    ],
)  # fmt: skip
def test_a_part_is_written_under_a_hidden_name_next_to_its_final_name(
    fs: AbstractFileSystem,
    root: str,
    template: str,
    number: int,
    split: bool,
    compression: str,
    final: str,
) -> None:
    template = template.replace("{root}", root)
    got_final, temp = MemoryFolder().part_paths(
        fs, template, CONTEXT, number, split=split, compression=compression
    )
    assert got_final == final.replace("{root}", root)
    folder, _, name = got_final.rpartition("/")
    assert temp.startswith(f"{folder}/.{name}.{RUN}-") and temp.endswith(".tmp"), temp
    assert temporary_writer(temp, f"{folder}/.") == RUN


def test_two_attempts_get_two_temporary_names() -> None:
    first, second = (temporary_path("b/orders.csv", RUN) for _ in range(2))
    assert first != second
    assert first.rsplit("-", 1)[0] == second.rsplit("-", 1)[0] == f"b/.orders.csv.{RUN}"


def test_prepare_makes_the_folder_and_sweeps_only_this_targets_leftovers(
    fs: AbstractFileSystem, root: str
) -> None:
    """An earlier attempt of this run left a temporary file of this target (thrown away); its
    other targets' names are writes in progress, and other names are not the run's (kept)."""
    folder = f"{root}/daily"
    own = temporary_path(f"{folder}/orders.csv", RUN)
    kept = {
        f"{folder}/orders.csv": b"the earlier run's file",
        temporary_path(f"{folder}/orders-0002.csv", RUN): b"this run's next part",
        f"{folder}/.orders.csv.not-a-run-0123abcd.tmp": b"someone else's",
        f"{folder}/.notes": b"a hidden file",
        temporary_path(f"{folder}/x/orders.csv", RUN): b"another folder",
    }
    for path, data in {own: b"half", **kept}.items():
        fs.pipe(path, data)
    MemoryFolder().prepare(fs, f"{folder}/orders.csv", RUN, first=True)
    assert files(fs, root) == {path.removeprefix(root + "/"): data for path, data in kept.items()}


def test_prepare_of_a_new_folder_creates_it(fs: AbstractFileSystem, root: str) -> None:
    MemoryFolder().prepare(fs, f"{root}/a/b/orders.csv", RUN, first=True)
    assert fs.isdir(f"{root}/a/b")


def hidden(names: dict[str, bytes]) -> list[str]:
    """The temporary names among `names` (a dot first, a run's id inside)."""
    return sorted(name for name in names if name.rpartition("/")[2].startswith("."))


@pytest.mark.parametrize("store", [MemoryFolder(), MemoryBucket()], ids=["rename", "copy"])
def test_publishing_moves_every_part_to_its_final_name(
    fs: AbstractFileSystem, root: str, store: Store
) -> None:
    template = f"{root}/{{export}}.{{ext}}"
    written = [
        write_part(store, fs, template, number, f"part {number}\n".encode(), split=True)
        for number in (1, 2, 3)
    ]
    before = files(fs, root)
    assert len(hidden(before)) == 3 and len(before) == 3  # nothing under a final name yet
    delivered = publish(
        store, fs, written, "memory", PartNames(template, CONTEXT, compression="none")
    )
    assert files(fs, root) == {
        "orders-0001.csv": b"part 1\n",
        "orders-0002.csv": b"part 2\n",
        "orders-0003.csv": b"part 3\n",
    }
    assert delivered == [f"memory://{root}/orders-000{n}.csv" for n in (1, 2, 3)]


def test_publishing_replaces_the_file_of_an_earlier_run(fs: AbstractFileSystem, root: str) -> None:
    fs.pipe(f"{root}/orders.csv", b"yesterday\n")
    template = f"{root}/{{export}}.{{ext}}"
    written = write_part(MemoryFolder(), fs, template, 1, b"today\n", split=False)
    assert publish(MemoryFolder(), fs, [written], "memory") == [f"memory://{root}/orders.csv"]
    assert files(fs, root) == {"orders.csv": b"today\n"}


@pytest.mark.parametrize(
    ("error", "kind", "says"),
    [
        (PermissionError(13, "Permission denied"), DeliveryError,
         "[Errno 13] Permission denied; check the bucket or folder exists and that the "
         "credentials may write there"),
        (TimeoutError("timed out"), TransientDeliveryError,
         "timed out; the store did not answer or answered with a server error (retried; check "
         "the store is reachable)"),
        (DeliveryError("already typed: kept as it is"), DeliveryError,
         "already typed: kept as it is"),
    ],
    ids=["permanent", "transient", "typed"],
)  # fmt: skip
def test_a_set_that_fails_half_way_publishes_nothing(
    fs: AbstractFileSystem, root: str, error: Exception, kind: type[Exception], says: str
) -> None:
    """Part 2 of 3 cannot be published: part 1, already in place, is taken back, and no
    temporary file stays; the error names the store and the part."""
    fs.pipe(f"{root}/orders-0003.csv", b"an earlier run's part 3\n")
    template = f"{root}/{{export}}.{{ext}}"
    store = RefusingFolder(f"{root}/orders-0002.csv", error)
    written = [
        write_part(store, fs, template, number, b"new\n", split=True) for number in (1, 2, 3)
    ]
    with pytest.raises(DeliveryError) as caught:
        publish(store, fs, written, "memory", PartNames(template, CONTEXT, compression="none"))
    assert type(caught.value) is kind
    message = str(caught.value)
    assert message.endswith(says), message
    if "typed" not in says:
        assert message.startswith(f"cannot deliver `memory://{root}/orders-000"), message
    assert files(fs, root) == {"orders-0003.csv": b"an earlier run's part 3\n"}


def test_the_error_names_the_part_that_could_not_be_published(
    fs: AbstractFileSystem, root: str
) -> None:
    template = f"{root}/{{export}}.{{ext}}"
    store = RefusingFolder(f"{root}/orders-0002.csv", PermissionError(13, "Permission denied"))
    written = [
        write_part(store, fs, template, number, b"new\n", split=True) for number in (1, 2, 3)
    ]
    with pytest.raises(DeliveryError) as caught:
        publish(store, fs, written, "memory", PartNames(template, CONTEXT, compression="none"))
    assert str(caught.value).startswith(
        f"cannot deliver `memory://{root}/orders-0002.csv` to memory: [Errno 13]"
    ), caught.value


def test_a_smaller_set_removes_the_earlier_runs_higher_parts(
    fs: AbstractFileSystem, root: str
) -> None:
    """Yesterday's run wrote parts 1-5, today's writes 1-3: 4 and 5 go, so the folder holds one
    run's set; names that are not this template's part N stay."""
    for number in range(1, 6):
        fs.pipe(f"{root}/orders-{number:04d}.csv", b"yesterday\n")
    others = {
        "orders-0004.csv.bak": b"a copy",
        "orders-00004.csv": b"five digits: not this template's name",
        "orders-abcd.csv": b"not a number",
        "invoices-0004.csv": b"another export",
        "sub/orders-0004.csv": b"another folder",
    }
    for name, data in others.items():
        fs.pipe(f"{root}/{name}", data)
    template = f"{root}/{{export}}.{{ext}}"
    written = [
        write_part(MemoryFolder(), fs, template, number, b"today\n", split=True)
        for number in (1, 2, 3)
    ]
    publish(MemoryFolder(), fs, written, "memory", PartNames(template, CONTEXT, compression="none"))
    assert files(fs, root) == {
        "orders-0001.csv": b"today\n",
        "orders-0002.csv": b"today\n",
        "orders-0003.csv": b"today\n",
        **others,
    }


def test_parts_numbered_in_a_folder_of_their_own_are_found_there(
    fs: AbstractFileSystem, root: str
) -> None:
    """`{part}` names a folder: the earlier run's part folders above this run's last go."""
    for number in (1, 2, 3):
        fs.pipe(f"{root}/p{number}/orders.csv", b"yesterday\n")
    template = f"{root}/p{{part}}/{{export}}.{{ext}}"
    written = write_part(MemoryFolder(), fs, template, 1, b"today\n", split=True)
    publish(
        MemoryFolder(), fs, [written], "memory", PartNames(template, CONTEXT, compression="none")
    )
    assert files(fs, root) == {"p1/orders.csv": b"today\n"}


def test_an_unsplit_file_removes_no_numbered_file(fs: AbstractFileSystem, root: str) -> None:
    fs.pipe(f"{root}/orders-0002.csv", b"a split run's part 2\n")
    template = f"{root}/{{export}}.{{ext}}"
    written = write_part(MemoryFolder(), fs, template, 1, b"whole\n", split=False)
    publish(
        MemoryFolder(), fs, [written], "memory", PartNames(template, CONTEXT, compression="none")
    )
    assert files(fs, root) == {
        "orders.csv": b"whole\n",
        "orders-0002.csv": b"a split run's part 2\n",
    }


@pytest.mark.parametrize(("compression", "suffix"), [("gzip", ".gz"), ("zstd", ".zst")])
def test_compressed_parts_replace_the_same_codecs_parts(
    fs: AbstractFileSystem, root: str, compression: str, suffix: str
) -> None:
    """A run's higher parts are removed with its own codec's names; another codec's parts
    and plain parts are another set and stay."""
    for number in (1, 2):
        fs.pipe(f"{root}/orders-{number:04d}.csv{suffix}", b"old")
    fs.pipe(f"{root}/orders-0002.csv", b"plain part 2 of another set")
    fs.pipe(f"{root}/orders-0002.csv.xz", b"xz part 2 of another set")
    template = f"{root}/{{export}}.{{ext}}"
    final, temp = MemoryFolder().part_paths(
        fs, template, CONTEXT, 1, split=True, compression=compression
    )
    fs.pipe(temp, b"new")
    written = WrittenFile(final, temp, rows=1, bytes=3)
    parts = PartNames(template, CONTEXT, compression=compression)
    publish(MemoryFolder(), fs, [written], "memory", parts)
    assert files(fs, root) == {
        f"orders-0001.csv{suffix}": b"new",
        "orders-0002.csv": b"plain part 2 of another set",
        "orders-0002.csv.xz": b"xz part 2 of another set",
    }


def test_a_split_reads_parts_are_numbered_in_range_order(fs: AbstractFileSystem, root: str) -> None:
    """Partitions write under names of their own; part 1 is the lowest range's file."""
    template = f"{root}/{{export}}.{{ext}}"
    ranges = [WrittenFile(f"{root}/range-{n}", f"{root}/.tmp-{n}", rows=n, bytes=n) for n in (1, 2)]
    numbered = number_parts(MemoryFolder(), fs, ranges, template, CONTEXT, compression="none")
    assert [(item.final_path, item.temp_path, item.rows) for item in numbered] == [
        (f"{root}/orders-0001.csv", f"{root}/.tmp-1", 1),
        (f"{root}/orders-0002.csv", f"{root}/.tmp-2", 2),
    ]


def test_an_object_store_sweeps_this_targets_leftover_objects(
    fs: AbstractFileSystem, root: str
) -> None:
    own = temporary_path(f"{root}/orders.csv", RUN)
    next_part = temporary_path(f"{root}/orders-0002.csv", RUN)
    fs.pipe(own, b"an earlier attempt's upload")
    fs.pipe(next_part, b"in progress")
    fs.pipe(f"{root}/orders.csv", b"published")
    MemoryBucket().sweep_leftovers(fs, f"{root}/orders.csv", RUN)
    assert sorted(files(fs, root)) == sorted([next_part.removeprefix(root + "/"), "orders.csv"])


def test_an_object_store_shows_the_scheme_the_user_wrote(fs: AbstractFileSystem) -> None:
    assert MemoryBucket().shown(fs, "bucket/k.csv", "abfs") == "abfs://bucket/k.csv"
    assert MemoryFolder().shown(fs, "/x/k.csv", "memory") == "memory:///x/k.csv"


def test_cleaning_up_never_raises(fs: AbstractFileSystem, root: str) -> None:
    remove_quietly(fs, f"{root}/missing.csv")
    remove_quietly(fs, "")
    calls: list[str] = []

    def failing(path: str) -> None:
        calls.append(path)
        raise OSError("gone")

    quietly(failing, "x")
    assert calls == ["x"]
    fs.pipe(f"{root}/t.tmp", b"x")
    MemoryFolder().remove_temporary(fs, f"{root}/t.tmp")
    assert not fs.exists(f"{root}/t.tmp")
