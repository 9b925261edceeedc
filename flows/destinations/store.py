"""What a store is to the pipe: one class per store says what its URL scheme means and how files
reach it. Each store is a module of its own (local, s3, gcs, azure, sftp, http_post) holding a
subclass of `Store` or `ObjectStore`; flows/destinations/registry.py lists them.

Bytes go to a hidden temporary file next to the target (`temporary_path`) and are published
under the final name only when every part is complete: a rename where the store has one, a
server-side copy and a delete on object stores, a POST for HTTP receivers.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO, ClassVar, TypeVar

import fsspec
from fsspec import AbstractFileSystem
from prefect.blocks.core import Block

from blocks.integrations import as_exports_block, load_named_block
from flows.core.codecs import with_codec_suffix
from flows.core.errors import ConfigurationError, DeliveryError, TransientDeliveryError, first_line
from flows.core.targets import (
    MAX_NAME_BYTES,
    TargetContext,
    check_rendered,
    check_targets,
    check_template,
    check_token_values,
    render_target,
    with_part_token,
)
from flows.core.urls import url_scheme, without_secrets
from flows.destinations.failures import full_disk, is_transient_failure

MIB = 1024 * 1024
BlockT = TypeVar("BlockT", bound=Block)


@dataclass(frozen=True)
class WrittenFile:
    """One finished file at its temporary path, waiting to be published."""

    final_path: str
    temp_path: str
    rows: int
    bytes: int
    sha256: str = ""  # of the bytes as stored, when a manifest is written
    writer: str = ""  # host:pid of the process that wrote it
    # NULLs it holds, per column that has any (checks); None: not counted (finished rows)
    nulls: tuple[tuple[str, int], ...] | None = ()


class Store:
    """A store with folders where publishing is a rename (the local folder, SFTP).

    Subclasses set the class attributes and override what their store does differently.
    """

    name: ClassVar[str]  # in messages, and the alerts' default Partner
    schemes: ClassVar[tuple[str, ...]]  # the URL schemes it serves
    protocol: ClassVar[str]  # the fsspec protocol it writes through
    block_types: ClassVar[tuple[type[Block], ...]] = ()  # what destination.block may name
    default_options: ClassVar[dict[str, Any]] = {}  # fsspec options before the block's
    # Uploads thrown away with `discard()` rather than closed: closing an object store upload
    # would publish it, closing an SFTP upload checks that every byte arrived.
    discards_uploads: ClassVar[bool] = False
    # The store client keeps its upload buffers (a part each) in reference cycles that the
    # collector's object-count thresholds rarely reach: a run collects them itself, which
    # costs ~0.2 s on a process with Prefect and Arrow loaded, so only where there are some.
    buffers_uploads: ClassVar[bool] = True
    retry_hint: ClassVar[str] = (
        "the store did not answer or answered with a server error (retried; check the store "
        "is reachable)"
    )
    check_hint: ClassVar[str] = (
        "check the bucket or folder exists and that the credentials may write there"
    )
    # What a full disk is called, and what to do about it (local folders; SFTP says the server's).
    full_disk_words: ClassVar[str] = "the disk is full"
    full_disk_hint: ClassVar[str] = "free space on the disk that holds the folder"

    # -- configuration -------------------------------------------------------------------

    def check_url(self, template: str) -> None:
        """The store's own rules for a destination URL, checked before the run starts."""

    def check_template(self, template: str, *, split: bool) -> None:
        """The template renders a file name in a folder (flows/core/targets.py)."""
        check_template(template, split=split)

    def check_targets(
        self,
        template: str,
        context: TargetContext,
        *,
        split: bool,
        compression: str,
        manifest: bool,
    ) -> None:
        """Every name the run will write stays in the template's folder and is writable."""
        check_targets(template, context, split=split, compression=compression, manifest=manifest)

    def check_manifest(self) -> None:
        """Whether a manifest can be written next to the files: it can, in a folder or bucket."""

    def check_done_marker(self) -> None:
        """Whether a completion marker can be written next to the files: it can, in a folder
        or bucket."""

    def check_block(self, url: str, block_name: str | None, *, max_file_mb: float | None) -> None:
        """What the saved block asks of the destination's other fields, checked before any
        row is read: nothing, for most stores."""

    def check_remote_workers(self, url: str) -> None:
        """What Dask workers, each on its own machine, need of the destination to write parts
        themselves: an object store or a server serves them all as it is."""

    def display_url(self, url: str) -> str:
        """The form of a destination URL that may be logged and reported."""
        return without_secrets(url)

    def filesystem(self, url: str, block_name: str | None) -> AbstractFileSystem:
        """A fresh filesystem for `url` (not fsspec's cached instance: the credentials of
        another run, or an older environment, must not leak in), with the saved block's
        credentials, or else the store's own environment."""
        options = dict(self.default_options)
        block = self.load_block(block_name) if block_name else None
        if block is not None:  # an integration's block (prefect-aws, ...) as ours
            block = as_exports_block(block, url)
            options.update(_block_options(block, block_name or ""))
        return self.connect(url, options, block)

    def connect(self, url: str, options: dict[str, Any], block: Block | None) -> AbstractFileSystem:  # noqa: ARG002 - the interface of every store
        return fsspec.filesystem(self.protocol, skip_instance_cache=True, **options)

    def load_block(self, name: str) -> Block:
        """Our block type's `name`, or an integration's block standing for it."""
        return load_named_block("destination.block", name, self.block_types[0])

    # -- writing -------------------------------------------------------------------------

    def part_paths(
        self,
        fs: AbstractFileSystem,
        template: str,
        context: TargetContext,
        number: int,
        *,
        split: bool,
        compression: str,
    ) -> tuple[str, str]:
        """(final path, temporary path) of part `number`: parts are numbered before the
        extension unless the template has `{part}`, and compressed files end in the codec's
        extension (`.gz`, `.zst`, `.bz2`, `.xz`)."""
        if split:
            template = with_part_token(template)
        final_url = with_codec_suffix(render_target(template, context, part=number), compression)
        check_token_values(context)  # checked before the run; its deployment only now
        check_rendered(template, final_url)
        final_path = _strip_protocol(fs, final_url)
        return final_path, temporary_path(final_path, context.run_id)

    def prepare(self, fs: AbstractFileSystem, final_path: str, run_id: str, *, first: bool) -> None:  # noqa: ARG002 - the interface of every store
        """Before a part is written: its folder exists, and this run's temporary files left by
        an earlier attempt (one whose connection to a server was lost) are gone."""
        fs.makedirs(posixpath.dirname(final_path) or ".", exist_ok=True)
        _remove_leftovers(fs, final_path, run_id)

    def remove_temporary(self, fs: AbstractFileSystem, path: str) -> None:
        """Throw a temporary file away after a failure; never raises."""
        remove_quietly(fs, path)

    # -- publishing ----------------------------------------------------------------------

    def place(self, fs: AbstractFileSystem, temp_path: str, final_path: str) -> None:
        """Publish one finished file: a rename, replacing the file of an earlier run."""
        fs.mv(temp_path, final_path)

    def clear_after_place(self, fs: AbstractFileSystem, temp_path: str) -> None:
        """What is left of the temporary file once it is placed: nothing after a rename."""

    def shown(self, fs: AbstractFileSystem, path: str, scheme: str) -> str:  # noqa: ARG002 - the interface of every store
        """How a delivered file is reported: the store's URL of it."""
        return str(fs.unstrip_protocol(path))

    # -- failures ------------------------------------------------------------------------

    def full_disk_advice(self) -> str:
        """What to do about a full disk; a store whose disk is not the destination's names it."""
        return self.full_disk_hint

    @property
    def writes_to(self) -> str:
        """Where the bytes go, as messages name it."""
        return self.name

    def sdk_transient(self, exc: BaseException) -> bool:  # noqa: ARG002 - stores with an SDK override it
        """Whether `exc` is one of the store's SDK errors for a lost or refused connection."""
        return False

    def failure(self, exc: BaseException, target: str) -> DeliveryError:
        """A typed error naming the store and the target: transient ones are retried by the
        task, permanent ones (no such bucket, access denied, bad credentials) fail at once."""
        if (words := full_disk(exc)) is not None:
            return DeliveryError(
                f"cannot deliver `{target}` to {self.writes_to}: {self.full_disk_words} "
                f"({words}); {self.full_disk_advice()}, then run the export again (not retried: a "
                "full disk does not empty itself)",
                store=self.name,
                target=target,
            )
        text = first_line(exc)
        where = f"cannot deliver `{target}` to {self.writes_to}: {text}"
        if is_transient_failure(exc, self.sdk_transient):
            return TransientDeliveryError(
                f"{where}; {self.retry_hint}", store=self.name, target=target
            )
        return DeliveryError(f"{where}; {self.check_hint}", store=self.name, target=target)


class ObjectStore(Store):
    """A store without folders (S3, GCS, Azure Blob): nothing to create before writing (making
    a folder would create a bucket), uploads are discarded rather than closed on failure, and
    publishing is a server-side copy, then a delete of the temporary object."""

    container: ClassVar[str] = "bucket"  # what the store calls the top of a path
    discards_uploads = True

    def prepare(self, fs: AbstractFileSystem, final_path: str, run_id: str, *, first: bool) -> None:
        """Fail before any byte is written when the bucket is missing (never create it), then
        sweep what earlier writes to this target left in the store (`sweep_leftovers`)."""
        bucket = final_path.split("/", 1)[0]
        if first and not self.container_exists(fs, bucket):
            raise DeliveryError(
                f"destination: {self.container} `{bucket}` does not exist in {self.name} (or "
                "these credentials may not see it); create it or fix destination.url",
                store=self.name,
            )
        self.sweep_leftovers(fs, final_path, run_id)

    def sweep_leftovers(self, fs: AbstractFileSystem, final_path: str, run_id: str) -> None:
        """Throw away the unfinished uploads and temporary objects in the folder of
        `final_path` that no run will publish (`removable_paths`): this run's own of this target
        (an earlier attempt's) and those of runs in a final state.
        A failed write aborts its upload itself, but when the store is failing for good the
        abort fails too, and the upload (S3's open multipart upload, Azure's uncommitted
        blocks) would stay billed until a lifecycle rule removes it (issue 17). One listing of
        the folder's temporary names per file written; a running run's uploads stay. Never
        raises: cleaning up must not fail the write."""
        prefix = leftover_prefix(final_path)
        try:
            found = self.list_leftovers(fs, prefix)
        except Exception:  # noqa: BLE001 - a courtesy; the write itself reports the store
            return
        removable = removable_paths((item.path for item in found), final_path, run_id)
        for item in found:
            if item.path in removable:
                quietly(self.drop_leftover, fs, item)

    def list_leftovers(self, fs: AbstractFileSystem, prefix: str) -> list[Leftover]:
        """The temporary objects whose path starts with `prefix` (bucket/folder/.)."""
        folder, _, start = prefix.rpartition("/")
        return [Leftover(str(path)) for path in fs.find(folder, prefix=start)]

    def drop_leftover(self, fs: AbstractFileSystem, leftover: Leftover) -> None:
        """Remove one leftover: a temporary object by default."""
        fs.rm(leftover.path)

    def container_exists(self, fs: AbstractFileSystem, bucket: str) -> bool:
        """Whether the bucket exists; a store whose client reads every failure as "no" (a
        500 would be called a missing bucket, and not retried) asks more precisely."""
        return bool(fs.exists(bucket))

    def place(self, fs: AbstractFileSystem, temp_path: str, final_path: str) -> None:
        self.copy(fs, temp_path, final_path)

    def copy(self, fs: AbstractFileSystem, source: str, target: str) -> None:
        """A server-side copy (gcsfs's `mv` would first try a slow moveTo)."""
        fs.copy(source, target)

    def clear_after_place(self, fs: AbstractFileSystem, temp_path: str) -> None:
        fs.rm(temp_path)

    def shown(self, fs: AbstractFileSystem, path: str, scheme: str) -> str:  # noqa: ARG002 - the interface of every store
        """As the user wrote it: az:// or abfs://, gs:// or gcs://."""
        return f"{scheme}://{path}"


def load_block(block_type: type[BlockT], name: str) -> BlockT:
    """The saved block `name` of `block_type`, or a message saying how to save one."""
    try:
        return block_type.load(name)  # type: ignore[return-value]
    except ValueError as exc:
        raise ConfigurationError(
            f"destination.block: no saved {block_type.__name__} block named `{name}`",
            field="destination.block",
            hint=f"save one first, e.g. {block_type.__name__}(...).save({name!r})",
        ) from exc


def _block_options(block: Block, name: str) -> dict[str, Any]:
    try:
        options: dict[str, Any] = block.filesystem_options()  # type: ignore[attr-defined]
    except ValueError as exc:  # e.g. a private key that cannot be read
        raise ConfigurationError(f"destination.block `{name}`: {exc}") from exc
    return options


def temporary_path(final_path: str, run_id: str) -> str:
    """A hidden sibling of the final path, unique to this run and naming it (so a later run
    can tell whether the run that wrote it is over)."""
    folder, name = posixpath.split(final_path)
    stem = temporary_stem(name, run_id)
    return posixpath.join(folder, f".{stem}.{run_id}-{uuid.uuid4().hex[:8]}.tmp")


def temporary_stem(name: str, run_id: str) -> str:
    """NAME in a temporary name `.NAME.<run id>-xxxxxxxx.tmp`: the final file's name, or, where
    the whole would pass the filesystem's 255 bytes, its start and `~` and 8 hex digits of its
    sha256, so that a final name of up to 255 bytes can be written, each target's temporary
    names stay its own, and the run id stays at the end to be read."""
    room = MAX_NAME_BYTES - len(f"..{run_id}-00000000.tmp".encode())
    encoded = name.encode()
    if len(encoded) <= room:
        return name
    digest = hashlib.sha256(encoded).hexdigest()[:8]
    head = encoded[: room - len(digest) - 1].decode("utf-8", errors="ignore")
    return f"{head}~{digest}"


@dataclass(frozen=True)
class Leftover:
    """Something a write to an object store may leave: a temporary object, or an upload that
    was never completed nor aborted (`upload_id`: S3's multipart upload; Azure's uncommitted
    blocks are listed as their blob)."""

    path: str  # bucket/key of the temporary name
    upload_id: str = ""


# A temporary name (`temporary_path`): `.NAME.<flow run id>-xxxxxxxx.tmp`.
_TEMPORARY_NAME = re.compile(
    r"^\.(?P<name>.+)\.(?P<run>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"-[0-9a-f]{8}\.tmp$"
)


def leftover_prefix(final_path: str) -> str:
    """What every temporary name in the folder of `final_path` starts with: `folder/.`"""
    return posixpath.join(posixpath.dirname(final_path), ".")


def temporary_writer(path: str, folder_prefix: str) -> str | None:
    """The run id in a temporary name directly under `folder_prefix`, None for other names."""
    if not path.startswith(folder_prefix) or "/" in path[len(folder_prefix) :]:
        return None
    found = _TEMPORARY_NAME.match(posixpath.basename(path))
    return found["run"] if found else None


def removable_paths(paths: Iterable[str], final_path: str, run_id: str) -> set[str]:
    """The temporary names among `paths`, in the folder of `final_path`, that no run will
    publish: this run's own names of this target (left by an earlier attempt; its names of
    other targets are other writes of the run, in progress) and every name of a run the
    Prefect API has in a final state (killed mid-write, or failed while the store failed too:
    nothing could clean up; with `{run_id}` in a template no later run writes its target).
    Names of running runs, of runs the API does not know, and other names are kept."""
    folder_prefix = leftover_prefix(final_path)
    folder, name = posixpath.split(final_path)
    own_target = posixpath.join(folder, f".{temporary_stem(name, run_id)}.")
    by_writer: dict[str, list[str]] = {}
    for path in paths:
        writer = temporary_writer(path, folder_prefix)
        if writer is not None:
            by_writer.setdefault(writer, []).append(path)
    if not by_writer:
        return set()
    from flows.runs.liveness import ended_runs

    removable = {path for path in by_writer.pop(run_id, []) if path.startswith(own_target)}
    for writer in ended_runs(by_writer):
        removable.update(by_writer[writer])
    return removable


def _remove_leftovers(fs: AbstractFileSystem, final_path: str, run_id: str) -> None:
    """Remove the temporary files in the folder of `final_path` that no run will publish
    (`removable_paths`). A running run's files stay."""
    folder = posixpath.dirname(final_path)
    try:
        listing = fs.ls(folder or ".", detail=False)
    except FileNotFoundError:
        return
    by_path = {posixpath.join(folder, posixpath.basename(str(path))): str(path) for path in listing}
    for path in removable_paths(by_path, final_path, run_id):
        remove_quietly(fs, by_path[path])


def _strip_protocol(fs: AbstractFileSystem, url: str) -> str:
    if url_scheme(url) == "local":
        url = "file://" + url.partition("://")[2]
    return str(fs._strip_protocol(url))


def discard_upload(raw: BinaryIO) -> None:
    """Abort an upload (an object store's multipart parts are dropped) instead of completing
    it; closing would publish the unfinished temporary object first."""
    try:
        raw.discard()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - the upload is being thrown away
        pass
    raw.closed = True  # type: ignore[misc]  # fsspec files flush on close and on __del__


def quietly(action: Callable[..., object], *args: Any) -> None:
    """Run a clean-up step; its failure must not hide the error being handled."""
    try:
        action(*args)
    except Exception:  # noqa: BLE001 - cleanup must not hide the original error
        pass


def remove_quietly(fs: AbstractFileSystem, path: str) -> None:
    try:
        if path and fs.exists(path):
            fs.rm(path)
    except Exception:  # noqa: BLE001 - cleanup must not hide the original error
        pass
