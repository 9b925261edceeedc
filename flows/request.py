"""The export's request (Contract 1): its parameters as one model, `ExportRequest`, checked
once, field by field and as a whole, by every way an export starts: the flow itself, `exports
run`, `exports check` (the triggers' parameters), the gateway's parameter override.

The parameters' types are flows/core/config.py's; the rules that need a stage live here, where
the stages may be imported: a destination's store and the names it will write, what a Dask
runner needs of the destination, the export's name and its format, the window a query binds,
the columns a format would write as one, the format options a format cannot honour.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fsspec import AbstractFileSystem
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from flows.core.config import (
    ChecksConfig,
    Destination,
    FormatOptions,
    OnEmpty,
    OnSchemaChange,
    RunnerConfig,
    SourceConfig,
    WindowConfig,
)
from flows.core.errors import ConfigurationError
from flows.core.formats import EXPORT_FORMATS, ExportFormat
from flows.core.targets import TargetContext, check_done_marker, check_name
from flows.destinations.registry import check_destination_url, store_for
from flows.destinations.store import Store
from flows.formats.options import (
    check_format_compression,
    check_format_options,
    check_format_size,
    check_record_options,
    export_extension,
)
from flows.formats.output_names import check_columns
from flows.runs.naming import export_name
from flows.sources.window import check_window


class DestinationConfig(Destination):
    """Where the file goes: a URL template, optional compression and size-based splitting."""

    @model_validator(mode="after")
    def _template_renders(self) -> DestinationConfig:
        # A ConfigurationError is a ValueError: pydantic keeps it, with its facts, as the
        # error's `ctx` (ExportRequest.of hands it back as it was raised).
        check_destination_url(self.url, split=self.splits)
        if self.manifest:
            self.store.check_manifest()
        if self.done_marker is not None:
            self.store.check_done_marker()
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
    destination.store.check_remote_workers(destination.url)


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
    bytes a name), the first part's, with the codec's `.gz` or `.zst`, the manifest's and the
    completion marker's alike.
    Before any row is read.

    Raises:
        ConfigurationError: naming `name` or `destination.url` and what to change.
    """
    context = replace(context or TargetContext.sample(), export=export, ext=ext)
    destination.store.check_targets(
        destination.url,
        context,
        split=destination.splits,
        compression=destination.file_codecs,
        manifest=destination.manifest,
    )
    if destination.done_marker is not None:
        check_done_marker(
            destination.done_marker,
            destination.url,
            context,
            split=destination.splits,
            compression=destination.file_codecs,
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


def _format_value(value: object) -> object:
    """Validate `format` with our message (naming the value and the choices)."""
    return parse_format(str(value))


FormatParameter = Annotated[ExportFormat, BeforeValidator(_format_value)]


def _name_value(value: object) -> object:
    """Validate `name` with our message: one file name, never a folder (issue 24)."""
    return check_export_name(value)


NameParameter = Annotated[str | None, BeforeValidator(_name_value)]


class ExportRequest(BaseModel):
    """The `export` flow's parameters, in its signature's order (a test keeps the two alike,
    and the flow's form in the Prefect UI is this model's JSON schema)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: SourceConfig
    destination: DestinationConfig
    format: FormatParameter = "csv"
    name: NameParameter = None
    partner: str | None = None
    type: str | None = None
    format_options: FormatOptions | None = None
    window: WindowConfig | None = None
    runner: RunnerConfig | None = None
    on_empty: OnEmpty = "write"
    on_schema_change: OnSchemaChange = "allow"
    checks: ChecksConfig | None = None

    @model_validator(mode="after")
    def _fits_together(self) -> ExportRequest:
        """The rules between parameters, in the order a user fixes them: the window the
        query binds, the runner, the columns, the format options, then every name the run
        will write (with sample values for the run's own: the flow checks them again with
        the real ones, which only a run knows)."""
        check_window(self.source, self.window, self.destination)
        check_runner(self.runner, self.destination)
        check_columns(self.source, self.format)
        check_format_options(self.format, self.format_options)
        check_format_compression(self.format, self.destination.compression)
        check_format_size(self.format, self.destination.max_file_mb)
        check_record_options(
            self.format,
            self.format_options,
            split=self.destination.splits,
            partitions=self.source.partitions,
        )
        ext = export_extension(self.format, self.format_options or FormatOptions())
        check_destination_names(self.destination, export_name(self.name, self.source.table), ext)
        return self

    @classmethod
    def of(cls, parameters: dict[str, Any]) -> ExportRequest:
        """The request of these parameters (plain values or models).

        Raises:
            ConfigurationError: the first problem, naming the field.
        """
        unknown = sorted(set(parameters) - set(EXPORT_PARAMETERS))
        if unknown:
            raise ConfigurationError(
                f"parameters: unknown parameter `{unknown[0]}`; the export flow takes "
                f"{', '.join(EXPORT_PARAMETERS)}",
                field="parameters",
            )
        for key in ("source", "destination"):
            if key not in parameters:
                raise ConfigurationError(
                    f"{key}: missing; the export flow needs `{key}`", field=key
                )
        try:
            return cls.model_validate(parameters)
        except ValidationError as exc:
            raise _configuration_error(exc) from None


EXPORT_PARAMETERS: tuple[str, ...] = tuple(ExportRequest.model_fields)

# Which parameter's problem is named first when several are wrong (a model's fields, then the
# format and the name), as `exports check` has always reported them.
_FIRST_NAMED = (
    "source",
    "destination",
    "format_options",
    "window",
    "runner",
    "checks",
    "format",
    "name",
)


def _configuration_error(exc: ValidationError) -> ConfigurationError:
    """One ConfigurationError for the first problem pydantic found, naming the field: our own
    error where a rule raised one, else pydantic's words under the field's dotted name."""
    errors = exc.errors()
    first = min(
        errors,
        key=lambda error: (
            _FIRST_NAMED.index(error["loc"][0])
            if error["loc"] and error["loc"][0] in _FIRST_NAMED
            else len(_FIRST_NAMED)
        ),
    )
    original = (first.get("ctx") or {}).get("error")
    if isinstance(original, ConfigurationError):
        return original
    location = [str(part) for part in first.get("loc", ())]
    prefix, rest = (location[0], ".".join(location[1:])) if location else ("parameters", "")
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    named, colon, _ = message.partition(":")
    if named.strip().startswith(prefix):  # a validator of ours named the field
        return ConfigurationError(message, field=named.strip() if colon else prefix)
    field = f"{prefix}.{rest}" if rest else prefix
    value = first.get("input")
    shown = "" if isinstance(value, dict) or value is None else f" `{value}`"
    return ConfigurationError(f"{field}:{shown} {message}", field=field)
