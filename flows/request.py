"""The export's request as the flow receives it: the parameters' types (flows/core/config.py)
with the rules that need a stage, here where the stages may be imported: a destination's store
and the names it will write, what a Dask runner needs of the destination, the export's name and
its format.
"""

from __future__ import annotations

from dataclasses import replace

from fsspec import AbstractFileSystem
from pydantic import model_validator

from flows.core.config import Destination, RunnerConfig
from flows.core.errors import ConfigurationError
from flows.core.formats import EXPORT_FORMATS, ExportFormat
from flows.core.targets import TargetContext, check_name, check_targets
from flows.destinations.registry import check_destination_url, store_for
from flows.destinations.store import Store

# The `export` flow's parameters, in its signature's order (flows/export.py; a test checks it).
EXPORT_PARAMETERS = (
    "source",
    "destination",
    "format",
    "name",
    "partner",
    "type",
    "format_options",
    "window",
    "runner",
)


class DestinationConfig(Destination):
    """Where the file goes: a URL template, optional compression and size-based splitting."""

    @model_validator(mode="after")
    def _template_renders(self) -> DestinationConfig:
        try:
            check_destination_url(self.url, split=self.max_file_mb is not None)
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None
        if self.manifest and self.store.posts:
            raise ValueError(
                "destination.manifest: an HTTP receiver gets each file as a POST, with "
                "X-Export-Part / X-Export-Parts; a manifest is written next to files in a "
                "folder or a bucket"
            )
        return self

    @property
    def store(self) -> Store:
        """The store the files go to (flows/destinations/registry.py)."""
        return store_for(self.url)

    def filesystem(self) -> AbstractFileSystem:
        """A fresh filesystem of the store, with the block's credentials or its environment."""
        return self.store.filesystem(self.url, self.block)


def check_runner(runner: RunnerConfig | None, destination: DestinationConfig) -> None:
    """What a Dask cluster needs of the destination: its workers write the parts themselves,
    each on its own machine.

    Raises:
        ConfigurationError: a relative local path, or an HTTP receiver (whose parts are sent
            from the flow's process, which cannot read the workers' spool files).
    """
    if runner is None:
        return
    if destination.store.posts:
        raise ConfigurationError(
            "runner.dask: an HTTP destination is POSTed from the flow's process, which cannot "
            "read the parts Dask workers spool on their machines",
            field="runner.dask",
            hint="remove `runner` or deliver to a store",
        )
    path = destination.url.partition("://")[2] if "://" in destination.url else destination.url
    if destination.store.protocol == "file" and not path.startswith("/"):
        raise ConfigurationError(
            f"runner.dask: destination.url `{destination.url}` is a relative local path, "
            "which each Dask worker would resolve in its own folder",
            field="runner.dask",
            hint="use an absolute path on a filesystem every worker mounts, or an object store",
        )


def check_export_name(name: object) -> str | None:
    """The `name` parameter: None, or one file name (flows/core/targets.py
    `name_problem`): never a folder, a control character or a hidden name.

    Raises:
        ConfigurationError: naming `name` and what it may hold.
    """
    if name is None:
        return None
    if not isinstance(name, str):
        raise ConfigurationError(
            f"name: `{name}` is not text", field="name", hint="give the export's name as text"
        )
    if name:
        check_name("name", name)
    return name


def check_destination_names(
    destination: DestinationConfig, export: str, ext: str, context: TargetContext | None = None
) -> None:
    """Every name the run will write, rendered with the export's name and extension (and the
    run's other values, where known): inside the template's folder and writable (at most 255
    bytes a name), the first part's, the `.gz` and the manifest's alike. Before any row is read.

    Raises:
        ConfigurationError: naming `name` or `destination.url` and what to change.
    """
    context = replace(context or TargetContext.sample(), export=export, ext=ext)
    check_targets(
        destination.url,
        context,
        split=destination.max_file_mb is not None,
        names_file=not destination.store.posts,
        gzip=destination.compression == "gzip",
        manifest=destination.manifest,
    )


def parse_format(value: str) -> ExportFormat:
    """The format named by `value`, or a ConfigurationError listing the choices."""
    lowered = value.strip().lower()
    for fmt in EXPORT_FORMATS:
        if lowered == fmt:
            return fmt
    raise ConfigurationError(
        f"format: `{value}` is not supported",
        field="format",
        hint=f"use one of {', '.join(EXPORT_FORMATS)}",
    )
