"""The `export` flow's parameters are one model, `flows.request.ExportRequest`, which the checks
before a run (`exports run`, `exports check`, the gateway) and the flow itself validate; the
flow's signature and its form in the Prefect UI must be that model, field for field."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest
from prefect.utilities.callables import parameter_schema

from flows.core.errors import ConfigurationError
from flows.export import export
from flows.parameters import validate_export_parameters
from flows.request import EXPORT_PARAMETERS, ExportRequest

pytestmark = pytest.mark.unit

SOURCE = {"url": "sqlite:///demo/demo.sqlite", "table": "orders"}
DESTINATION = {"url": "out/{export}.{ext}"}


def test_the_list_is_the_flows_signature() -> None:
    assert EXPORT_PARAMETERS == tuple(inspect.signature(export.fn).parameters)


def test_the_flows_signature_is_the_request_model() -> None:
    """Same names in the same order, same types, same defaults: a field added to one and not
    the other, or a default changed on one side, fails here."""
    signature = inspect.signature(export.fn, eval_str=True).parameters
    fields = ExportRequest.model_fields
    assert list(signature) == list(fields)
    for name, parameter in signature.items():
        field = fields[name]
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        assert (field.default if not field.is_required() else ...) == default, name
        assert field.rebuild_annotation() == parameter.annotation, name


def _normalised(schema: dict[str, Any]) -> dict[str, Any]:
    """Prefect's parameter schema and pydantic's, written alike: Prefect names definitions
    `definitions` and adds each parameter's `position` and a lower-case title."""
    text = json.dumps(schema).replace("#/$defs/", "#/definitions/")
    found = json.loads(text)
    definitions = found.get("definitions", found.get("$defs"))
    properties = {
        name: {key: value for key, value in spec.items() if key not in ("position", "title")}
        for name, spec in found["properties"].items()
    }
    return {
        "properties": properties,
        "required": sorted(found.get("required", [])),
        "definitions": definitions,
    }


def test_the_ui_form_is_the_request_models_schema() -> None:
    prefect_form = parameter_schema(export.fn).model_dump()
    assert _normalised(prefect_form) == _normalised(ExportRequest.model_json_schema())
    assert prefect_form["required"] == ["source", "destination"]


def test_an_unknown_parameter_names_the_ones_the_flow_takes() -> None:
    with pytest.raises(ConfigurationError) as caught:
        validate_export_parameters({"source": {}, "destination": {}, "fromat": "csv"})
    assert str(caught.value) == (
        "parameters: unknown parameter `fromat`; the export flow takes "
        "source, destination, format, name, partner, type, format_options, window, runner, "
        "on_empty, on_schema_change, checks"
    )


@pytest.mark.parametrize("missing", ["source", "destination"])
def test_a_missing_parameter_is_named(missing: str) -> None:
    parameters = {"source": SOURCE, "destination": DESTINATION}
    del parameters[missing]
    with pytest.raises(ConfigurationError) as caught:
        validate_export_parameters(parameters)
    assert str(caught.value) == f"{missing}: missing; the export flow needs `{missing}`"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"format": "xls"},
            "format: `xls` is not supported; use one of csv, json, jsonl, xml, parquet",
        ),
        ({"name": "a/b"}, "name: "),
        ({"source": {**SOURCE, "chunk_rows": 0}}, "source.chunk_rows: `0` Input should be"),
        ({"destination": {"url": "ftp://h/x.csv"}}, "destination.url: scheme `ftp://` is not"),
        ({"format_options": {"delimiter": ";;"}}, "format_options.delimiter: `;;` must be one"),
        ({"window": {"timezone": "Mars/Base"}}, "window.timezone: "),
        ({"runner": {"dask": "nowhere"}}, "runner.dask: `nowhere` is not a scheduler address"),
        ({"partner": 5}, "partner: `5` Input should be a valid string"),
    ],
)
def test_each_parameter_is_refused_under_its_name(override: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        validate_export_parameters({"source": SOURCE, "destination": DESTINATION, **override})
    assert str(caught.value).startswith(message)


def test_the_first_problem_named_is_the_sources_when_several_are_wrong() -> None:
    with pytest.raises(ConfigurationError) as caught:
        validate_export_parameters(
            {"source": {**SOURCE, "chunk_rows": 0}, "destination": DESTINATION, "format": "x"}
        )
    assert str(caught.value).startswith("source.chunk_rows: ")


def test_a_rule_between_parameters_keeps_its_own_error() -> None:
    """The runner's rule on a relative folder raises our ConfigurationError inside the model:
    the caller gets that error itself, not pydantic's wrapping of it."""
    with pytest.raises(ConfigurationError) as caught:
        ExportRequest.of(
            {"source": SOURCE, "destination": DESTINATION, "runner": {"dask": "local"}}
        )
    assert str(caught.value).startswith("runner.dask: destination.url `out/{export}.{ext}` is")
    assert type(caught.value) is ConfigurationError


def test_only_the_given_parameters_come_back_validated() -> None:
    validated = validate_export_parameters(
        {"source": SOURCE, "destination": DESTINATION, "format": " JSONL "}
    )
    assert set(validated) == {"source", "destination", "format"}
    assert validated["format"] == "jsonl"
    assert validated["source"].chunk_rows == 50_000
