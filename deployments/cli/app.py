"""The `exports` command line (Contract 3): one module per command group, each registered here
the same way, and one error handler for all of them (deployments/cli/console.py)."""

from __future__ import annotations

import sys
from typing import Any

import typer

from deployments.cli import alerts, audit, cursor, gateway, keys, runs, schema, setup, triggers
from deployments.cli.console import ExportsGroup

app = typer.Typer(
    name="exports",
    help=(
        "Export SQL tables and queries to CSV, JSON, JSONL, XML, Parquet, Avro and Excel "
        "with Prefect."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=ExportsGroup,
)
for group in (audit.app, gateway.app, triggers.app, runs.app, alerts.app, keys.app, cursor.app):
    app.add_typer(group)
app.add_typer(schema.app)
app.command()(setup.setup)


def main() -> Any:  # pragma: no cover - console entry point
    return app(prog_name="exports")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
