"""Publishing an export's finished files at their final paths, all or nothing.

A run that fails leaves nothing at a final path: temporary files are removed, and parts that
were already published by this run are removed again if a later part fails to publish.

A split set also removes, once its parts are in place, the same template's higher-numbered
parts an earlier run left in their folder (issue 24: run A's parts 5-7 stayed next to run B's
1-4, and B's manifest listed 4 of the folder's 7). Only a file named exactly as this run would
name part N, for N above its last part, is removed: never another file.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from fsspec import AbstractFileSystem

from flows.core.errors import DeliveryError, first_line
from flows.core.targets import TargetContext
from flows.destinations.store import Store, WrittenFile, remove_quietly

# Stands for the part number in a rendered path, to find where the numbers are.
# Private-use characters: no file name holds them, and the path rules let them through.
_PART_MARK = "\ue000part\ue000"


@dataclass(frozen=True)
class PartNames:
    """How this run names its parts: the destination template, the run's values, the codec."""

    template: str
    context: TargetContext
    compression: str

    def path(self, store: Store, fs: AbstractFileSystem, number: int) -> str:
        """The final path of part `number`."""
        return store.part_paths(
            fs, self.template, self.context, number, split=True, compression=self.compression
        )[0]


def publish(
    store: Store,
    fs: AbstractFileSystem,
    files: Iterable[WrittenFile],
    scheme: str,
    parts: PartNames | None = None,
) -> list[str]:
    """Move every temporary file to its final path; all or nothing. Delivered files are
    reported with the destination URL's `scheme` (az:// or abfs://, gs:// or gcs://). When
    the files are parts 1..N as `parts` names them, the template's parts above N go too."""
    pending = list(files)
    published: list[str] = []
    target = ""  # the file being published when a failure comes: the one the error names
    try:
        for item in pending:
            target = item.final_path
            store.place(fs, item.temp_path, item.final_path)
            published.append(item.final_path)
            store.clear_after_place(fs, item.temp_path)
        if parts is not None and _numbered(store, fs, parts, pending):
            _remove_earlier_parts(store, fs, parts, len(pending), scheme)
    except Exception as exc:
        for path in published:
            remove_quietly(fs, path)
        for left in pending:
            remove_quietly(fs, left.temp_path)
        if isinstance(exc, DeliveryError):
            raise
        raise store.failure(exc, store.shown(fs, target, scheme)) from exc
    return [store.shown(fs, path, scheme) for path in published]


def _numbered(
    store: Store, fs: AbstractFileSystem, parts: PartNames, files: Sequence[WrittenFile]
) -> bool:
    """Whether the files are parts 1..N of the template (an unsplit file is not, unless the
    template has `{part}`: then it is part 1)."""
    return bool(files) and all(
        item.final_path == parts.path(store, fs, number)
        for number, item in enumerate(files, start=1)
    )


def _earlier_parts(
    store: Store, fs: AbstractFileSystem, parts: PartNames, last: int
) -> list[tuple[int, str]]:
    """(number, path) of the template's parts above `last` in the store, found by listing
    the folder where the numbers start (as deep as the template's folders after it); each one
    is exactly this run's name of that part."""
    marked = parts.path(store, fs, _PartMark(1))
    pieces = marked.split(_PART_MARK)
    if len(pieces) < 2:
        return []
    folder = pieces[0].rpartition("/")[0]
    depth = marked[len(folder) :].count("/")
    pattern = re.compile("([^/]+)".join(re.escape(piece) for piece in pieces))
    fs.invalidate_cache()  # a listing cached before the parts were placed
    found: list[tuple[int, str]] = []
    for path in fs.find(folder or ".", maxdepth=max(depth, 1)):
        path = str(path)
        match = pattern.fullmatch(path)
        if match is None:
            continue
        try:
            number = int(match.group(1))
        except ValueError:
            continue
        if number > last and parts.path(store, fs, number) == path:
            found.append((number, path))
    return sorted(found)


def _remove_earlier_parts(
    store: Store, fs: AbstractFileSystem, parts: PartNames, last: int, scheme: str
) -> None:
    """Remove the template's parts above `last` that earlier runs left, then list again: a
    bulk delete may not report a file it could not remove (s3fs's does not). A failure fails
    the run (and takes this run's parts back): a set is never published among stale parts."""
    try:
        stale = _earlier_parts(store, fs, parts, last)
    except Exception as exc:
        folder = posixpath.dirname(parts.path(store, fs, last))
        raise DeliveryError(
            f"cannot list `{store.shown(fs, folder, scheme)}` in {store.name} for the parts an "
            f"earlier run left beyond this run's {last}: {first_line(exc)}; {store.check_hint}, "
            "then run the export again (this run's parts were taken back)",
            store=store.name,
            target=store.shown(fs, folder, scheme),
        ) from exc
    if not stale:
        return
    error = "it is still there"
    try:
        fs.rm([path for _, path in stale])
    except Exception as exc:  # noqa: BLE001 - reported below, naming a file that stayed
        error = first_line(exc)
    try:
        stale = _earlier_parts(store, fs, parts, last)
    except Exception:  # noqa: BLE001 - the removal's own error says more
        pass
    if not stale:
        return
    number, path = stale[0]
    raise DeliveryError(
        f"cannot remove `{store.shown(fs, path, scheme)}` from {store.name}, part {number} of "
        f"an earlier run beyond this run's {last}: {error}; {store.check_hint}, then run the "
        "export again (this run's parts were taken back)",
        store=store.name,
        target=store.shown(fs, path, scheme),
    )


class _PartMark(int):
    """A part number that renders as `_PART_MARK`, whatever its format spec (checked)."""

    def __format__(self, spec: str) -> str:
        format(int(self), spec)
        return _PART_MARK


def number_parts(
    store: Store,
    fs: AbstractFileSystem,
    files: Sequence[WrittenFile],
    template: str,
    context: TargetContext,
    *,
    compression: str,
) -> list[WrittenFile]:
    """The final names of a split read's parts, given in range order: part 1 holds the
    lowest range (their temporary files keep the names they were written under)."""
    return [
        replace(
            item,
            final_path=store.part_paths(
                fs, template, context, number, split=True, compression=compression
            )[0],
        )
        for number, item in enumerate(files, start=1)
    ]
