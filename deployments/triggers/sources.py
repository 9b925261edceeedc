"""`exports check` also asks each export's database what it can (issue 17: a missing table
passed the check): the table or query is looked up the way a run's `inspect_source` does,
without counting rows. What cannot be asked from here is said, not passed over: a database
that does not answer, a saved block the API cannot give, a query that needs the run's window.
The hash key blocks of `source.columns` are looked up as the flow does before a run
(`check_hash_keys`): one that is not saved, or not a HashKey, fails the check naming its field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from deployments.triggers.project import load_deployments
from flows.core.config import SourceConfig
from flows.core.errors import ConfigurationError, SourceError, TransientSourceError, first_line
from flows.parameters import validate_export_parameters
from flows.runs.naming import EXPORT_FLOW


@dataclass(frozen=True)
class SourceCheck:
    deployment: str
    problem: str | None  # what to fix: the table or query is not there, the login fails …
    not_checked: str | None  # why the database could not be asked

    @property
    def checked(self) -> bool:
        return self.not_checked is None


def check_sources(project_file: Path) -> list[SourceCheck]:
    """One SourceCheck per `export` deployment of a project file that passed check_project."""
    from flows.checks import check_checked_columns
    from flows.sources.masking import check_hash_keys
    from flows.sources.plan import inspect_source
    from flows.sources.window import query_uses

    checks = []
    for spec in load_deployments(project_file):
        if spec.entrypoint.partition(":")[2] != EXPORT_FLOW:
            continue
        parameters = validate_export_parameters(dict(spec.parameters))
        source = parameters["source"]
        assert isinstance(source, SourceConfig)
        try:
            check_hash_keys(source)
        except ConfigurationError as exc:
            checks.append(SourceCheck(spec.name, first_line(exc), None))
            continue
        except httpx.HTTPError as exc:  # no Prefect API to read the key blocks from
            checks.append(SourceCheck(spec.name, None, f"the Prefect API: {first_line(exc)}"))
            continue
        if query_uses(source):
            reason = "its query takes the run's window (:since / :until)"
            checks.append(SourceCheck(spec.name, None, reason))
            continue
        try:
            plan = inspect_source(source.model_copy(update={"count_rows": False}))
            check_checked_columns(parameters.get("checks"), plan.column_names)
        except TransientSourceError as exc:
            checks.append(SourceCheck(spec.name, None, first_line(exc)))
        except httpx.HTTPError as exc:  # source.block, and no Prefect API to read it from
            checks.append(SourceCheck(spec.name, None, f"the Prefect API: {first_line(exc)}"))
        except (ConfigurationError, SourceError) as exc:
            checks.append(SourceCheck(spec.name, first_line(exc), None))
        else:
            checks.append(SourceCheck(spec.name, None, None))
    return checks
