"""The `export` flow's parameters checked as a whole, before a run exists: plain values (from
prefect.yaml, `--set`, the gateway's body) validated into their models, one line per problem
naming the field. `exports run`, `exports check` and the gateway call it; the flow itself
validates the same models when it starts.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from flows.core.config import FormatOptions, RunnerConfig, SourceConfig, WindowConfig
from flows.core.errors import ConfigurationError
from flows.formats.options import check_format_options, export_extension
from flows.formats.output_names import check_columns
from flows.request import (
    EXPORT_PARAMETERS,
    DestinationConfig,
    check_destination_names,
    check_export_name,
    check_runner,
    parse_format,
)
from flows.runs.naming import export_name
from flows.sources.window import check_window


def validate_export_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """Validate an `export` flow's parameters into their models, naming the bad field."""
    unknown = sorted(set(parameters) - set(EXPORT_PARAMETERS))
    if unknown:
        raise ConfigurationError(
            f"parameters: unknown parameter `{unknown[0]}`; the export flow takes "
            f"{', '.join(EXPORT_PARAMETERS)}",
            field="parameters",
        )
    validated = dict(parameters)
    models: dict[str, Any] = {
        "source": SourceConfig,
        "destination": DestinationConfig,
        "format_options": FormatOptions,
        "window": WindowConfig,
        "runner": RunnerConfig,
    }
    for key, model in models.items():
        if key not in parameters:
            if key in ("source", "destination"):
                raise ConfigurationError(
                    f"{key}: missing; the export flow needs `{key}`", field=key
                )
            continue
        if parameters[key] is None:
            continue
        try:
            validated[key] = model.model_validate(parameters[key])
        except ValidationError as exc:
            raise validation_error(key, exc) from None
    if "format" in parameters:
        validated["format"] = parse_format(str(parameters["format"]))
    name = check_export_name(parameters.get("name"))
    fmt, options = validated.get("format", "csv"), validated.get("format_options")
    source, destination = validated["source"], validated["destination"]
    if isinstance(source, SourceConfig) and isinstance(destination, DestinationConfig):
        check_window(source, validated.get("window"), destination)
        check_runner(validated.get("runner"), destination)
        check_columns(source, fmt)
    check_format_options(fmt, options)
    if isinstance(source, SourceConfig) and isinstance(destination, DestinationConfig):
        ext = export_extension(fmt, options or FormatOptions())
        check_destination_names(destination, export_name(name, source.table), ext)
    return validated


def validation_error(prefix: str, exc: ValidationError) -> ConfigurationError:
    """The first problem pydantic found, in one line naming the field, which it carries as
    `field`: the message's own when a validator of ours named it (`source.table: …`, raised
    where pydantic's `loc` is the model's), else `prefix` and the error's `loc`."""
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    named, colon, _ = message.partition(":")
    if named.strip().startswith(prefix):
        return ConfigurationError(message, field=named.strip() if colon else None)
    field = f"{prefix}.{location}" if location else prefix
    value = error.get("input")
    shown = "" if isinstance(value, dict) or value is None else f" `{value}`"
    return ConfigurationError(f"{field}:{shown} {message}", field=field)
