"""The `export` flow's parameters checked as a whole, before a run exists: plain values (from
prefect.yaml, `--set`, the gateway's body) validated into their models, one line per problem
naming the field. `exports run`, `exports check` and the gateway call it; the flow itself
builds the same `ExportRequest` (flows/request.py) when it starts.
"""

from __future__ import annotations

from typing import Any

from flows.request import ExportRequest


def validate_export_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """The given parameters validated into their models (the flow's defaults are not added),
    after every rule of the request holds.

    Raises:
        ConfigurationError: the first problem, naming the field.
    """
    request = ExportRequest.of(parameters)
    return {key: getattr(request, key) for key in parameters}
