"""`exports gateway`: serve the API gateway (deployments/gateway/app.py) with uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from deployments.cli.console import fail

app = typer.Typer()

PUBLIC_URL_ENV = "EXPORTS_GATEWAY_PUBLIC_URL"


@app.command()
def gateway(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8787,
    concurrent_creates: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Runs created on the Prefect API at once; a burst queues behind them. "
            "The default, 2, suits a SQLite-backed server; raise it for PostgreSQL.",
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            envvar=PUBLIC_URL_ENV,
            help="The URL callers reach the gateway at (behind a proxy, e.g. "
            "https://exports.example.com); status_url, file_url and Location start with it. "
            "Default: the address the request reached, never the request's Host header.",
        ),
    ] = None,
) -> None:
    """Serve the API gateway: POST /v1/exports/trigger with an API key starts its export."""
    import uvicorn
    from prefect.settings import PREFECT_API_URL

    from deployments.gateway.access_log import gateway_log_config
    from deployments.gateway.app import app, limit_creates, set_public_url
    from flows.core.prefect_compat import configure_logging_first

    if not PREFECT_API_URL.value():
        raise fail(
            "PREFECT_API_URL is not set; point it at the Prefect server the runs go to, "
            "e.g. http://127.0.0.1:4200/api"
        )
    try:
        set_public_url(public_url or None)
    except ValueError as exc:
        raise fail(f"--public-url: {exc}", 2) from None
    if concurrent_creates is not None:
        limit_creates(concurrent_creates)
    # Prefect 3.9 configures logging when its flow machinery is first imported, resetting
    # `uvicorn.access` (its handler gone, its lines dropped at the `uvicorn` logger's WARNING):
    # the gateway's access log stopped at the first request that imported it. Done now, so
    # the configuration uvicorn.run applies comes after Prefect's and stays.
    configure_logging_first()

    # uvicorn's access log shows method, path and query, never headers; a key a client put
    # in its URL is hidden from it (deployments/gateway/access_log.py).
    uvicorn.run(app, host=host, port=port, server_header=False, log_config=gateway_log_config())
