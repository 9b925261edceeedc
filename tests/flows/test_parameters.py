"""The `export` flow's parameters have one list, `flows.core.config.EXPORT_PARAMETERS`, which the
checks before a run (`exports run`, `exports check`, the gateway) use without importing the
flow; it must be the flow's own signature."""

from __future__ import annotations

import inspect

import pytest

from flows.core.errors import ConfigurationError
from flows.export import export
from flows.parameters import validate_export_parameters
from flows.request import EXPORT_PARAMETERS

pytestmark = pytest.mark.unit


def test_the_list_is_the_flows_signature() -> None:
    assert EXPORT_PARAMETERS == tuple(inspect.signature(export.fn).parameters)


def test_an_unknown_parameter_names_the_ones_the_flow_takes() -> None:
    with pytest.raises(ConfigurationError) as caught:
        validate_export_parameters({"source": {}, "destination": {}, "fromat": "csv"})
    assert str(caught.value) == (
        "parameters: unknown parameter `fromat`; the export flow takes "
        "source, destination, format, name, partner, type, format_options, window, runner"
    )
