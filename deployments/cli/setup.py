"""`exports setup`: make a Prefect server ready for the exports (Contract 3).

Prefect's UI lists a block type only once it is registered with the server; until then a user
cannot create our blocks there. `make serve` runs this; on an existing server it is the one
command to run (it is what `prefect block register -m blocks` does, and can be run again).
"""

from __future__ import annotations

import typer
from prefect.settings import PREFECT_API_URL

from blocks import PROJECT_BLOCKS
from deployments.cli.console import fail


def setup() -> None:
    """Register the exports' block types with the Prefect API, so the UI lists them."""
    api = PREFECT_API_URL.value()
    if not api:
        raise fail(
            "PREFECT_API_URL is not set: point it at the Prefect server to set up, e.g. "
            "export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    for block in PROJECT_BLOCKS:
        block.register_type_and_schema()
    names = ", ".join(block.get_block_type_name() for block in PROJECT_BLOCKS)
    typer.echo(f"registered {len(PROJECT_BLOCKS)} block types with {api}: {names}")
