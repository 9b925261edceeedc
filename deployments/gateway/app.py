"""The API gateway (Contract 4): one HTTP endpoint that starts any API trigger's export.

    POST /v1/exports/trigger           Authorization: Bearer <key> → 202, or the file (?wait=)
    GET  /v1/exports/runs/{id}         the run's status, rows, bytes, files, times, error
    GET  /v1/exports/runs/{id}/file    the delivered file, streamed
    GET  /healthz, /openapi.json, /docs

The key decides the deployment (deployments/gateway/keys.py); a run of another deployment is 404
to it, like a run that does not exist. Every refused key gets the same 401 body. Runs are
created on the Prefect server with the Prefect client, tagged `trigger:api`, `user:<user>` and
`key:<key id>`; the key itself is never logged, stored or echoed.

A caller learns no more of the database than a status alert says: errors are their kind and
field (flows/alerts/errors.py), files their download names (run_status.py). Links come from the
gateway's public URL or the address the request reached, never from the request's headers.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit
from uuid import UUID

import httpx
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.responses import DeploymentResponse
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_logger
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.gateway.keys import ApiKeyError, InvalidKey, KeyClaims, verify_key
from deployments.gateway.prefect_api import prefect_client
from deployments.gateway.run_status import NoFile, RunStatus, open_delivered, read_status
from flows.alerts.errors import alert_error
from flows.core.errors import ConfigurationError
from flows.parameters import validate_export_parameters
from flows.runs.naming import EXPORT_FLOW
from flows.runs.tags import api_tags

logger = get_logger("exports.gateway")

UNAUTHORIZED = "missing or invalid API key"
RUN_NOT_FOUND = "no such export run"
MAX_BODY_BYTES = 64 * 1024
# A client that stops sending its body: answered 408 after this long without a byte, instead
# of holding a connection and a worker (issue 17).
BODY_TIMEOUT_S = 10.0
MAX_WAIT_S = 300
POLL_S = 1.0
DEFAULT_CREATES = 2
IN_GATEWAY_LOG = "the gateway's log has the details"


# -- request and response documents --------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WindowOverride(_Strict):
    """The window of this run (the deployment's query must use :since / :until)."""

    since: datetime | None = Field(
        default=None,
        description="Start (included), ISO 8601, e.g. 2026-03-01T00:00:00Z; no offset = UTC.",
    )
    until: datetime | None = Field(
        default=None, description="End (excluded), ISO 8601; by default the run's start."
    )
    lookback: timedelta | None = Field(
        default=None, description="Overlap subtracted from since: seconds or ISO 8601 (PT15M)."
    )


class ParameterOverrides(_Strict):
    """The parameters a caller may set; everything else is the deployment's."""

    window: WindowOverride | None = Field(default=None, description="The rows' time window.")


class TriggerRequest(_Strict):
    """Optional body of POST /v1/exports/trigger."""

    parameters: ParameterOverrides = Field(
        default_factory=ParameterOverrides, description="Documented overrides only."
    )


class TriggerAccepted(BaseModel):
    export_request_id: str = Field(description="The flow run id.")
    deployment: str = Field(description="flow/name of the key's deployment.")
    status_url: str
    file_url: str


# -- app ------------------------------------------------------------------------------------

app = FastAPI(
    title="prefect-exports gateway",
    version="1",
    description=(
        "Start an export with an API key (`exports keys create`): the key decides which "
        "deployment runs. Keys go in `Authorization: Bearer <key>` and nowhere else."
    ),
)
bearer = HTTPBearer(auto_error=False, description="An API key made by `exports keys create`.")


class _BodyLimit:
    """Refuse request bodies over MAX_BODY_BYTES with 413, by Content-Length or as they
    stream in (chunked), and bodies that stall for BODY_TIMEOUT_S with 408."""

    def __init__(self, app: ASGIApp) -> None:
        self.inner = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            if length.isdigit():
                response = JSONResponse({"detail": _too_large()}, status_code=413)
            else:  # uvicorn refuses these itself; behind another server, say so
                response = JSONResponse({"detail": "bad Content-Length"}, status_code=400)
            await response(scope, receive, send)
            return
        received = 0
        body_done = False

        async def limited() -> Message:
            nonlocal received, body_done
            if body_done:  # later reads wait for the client to leave: no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), BODY_TIMEOUT_S)
            except TimeoutError:
                raise HTTPException(
                    408, f"the request body stalled: no byte for {BODY_TIMEOUT_S:g} s"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise HTTPException(413, _too_large())
                body_done = not message.get("more_body", False)
            return message

        await self.inner(scope, limited, send)


def _too_large() -> str:
    return f"the request body is larger than {MAX_BODY_BYTES // 1024} KiB"


app.add_middleware(_BodyLimit)


# Runs created at once; the rest of a burst queues here. A Prefect server on SQLite (the
# default of `prefect server start`) serializes writes and slows down sharply when many come
# at once: 50 concurrent triggers took 39 s unbounded, 16 s with 4 creates at once and 8.5 s
# with 2. On PostgreSQL the width hardly matters (40 creates: 2.5-3.3 s at any width).
_creating = asyncio.Semaphore(DEFAULT_CREATES)


def limit_creates(width: int) -> None:
    """Create at most `width` runs at once (`exports gateway --concurrent-creates`)."""
    global _creating
    _creating = asyncio.Semaphore(width)


_public_url: str | None = None


def set_public_url(url: str | None) -> None:
    """The URL callers reach the gateway at (`exports gateway --public-url`), e.g. behind a
    proxy `https://exports.example.com/api`; `status_url`, `file_url` and `Location` start
    with it. None: the address each request reached the gateway on (its socket's, not the
    Host header a caller sends).

    Raises:
        ValueError: not an http(s) URL with a host, or with a query or fragment.
    """
    global _public_url
    if url is not None:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and parts.hostname
        if not valid or parts.query or parts.fragment:
            raise ValueError(
                f"the public URL `{url}` is not an http(s) URL with a host and without a "
                "query, e.g. https://exports.example.com"
            )
        url = url.rstrip("/")
    _public_url = url


def base_url(request: Request) -> str:
    """What `status_url`, `file_url` and `Location` start with (see set_public_url)."""
    if _public_url is not None:
        return _public_url
    server = request.scope.get("server")  # the listening socket's address, from uvicorn
    if not server or server[1] is None:
        return ""  # a unix socket: the links are paths, relative to whatever reached it
    host, port = server
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _unauthorized() -> HTTPException:
    return HTTPException(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})


@app.exception_handler(ClientDisconnect)
async def _client_left(request: Request, _exc: ClientDisconnect) -> Response:
    """The client closed the connection before its body was complete: one log line, not an
    ASGI traceback; the answer goes nowhere."""
    client = request.client.host if request.client else "?"
    logger.warning("a client (%s) left before sending its whole request body", client)
    return Response(status_code=400)


@app.exception_handler(httpx.HTTPError)
async def _prefect_unavailable(_request: Request, exc: httpx.HTTPError) -> JSONResponse:
    """The Prefect API could not be reached or failed: 503; it refused the request: 422.
    Never the exception's text (it names the API's URL)."""
    logger.error("Prefect API error: %s: %s", type(exc).__name__, exc)
    if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code < 500:
        return JSONResponse({"detail": "the Prefect API refused the run; see the gateway log"}, 422)
    return JSONResponse({"detail": "the Prefect API is unavailable; try again later"}, 503)


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> KeyClaims:
    """The claims of the request's valid key; 401 (always the same body) otherwise."""
    client = request.client.host if request.client else "?"
    if credentials is None:
        logger.warning("refused a request from %s: no bearer key", client)
        raise _unauthorized()
    try:
        return await run_in_threadpool(verify_key, credentials.credentials)
    except InvalidKey as exc:
        logger.warning("refused a key from %s: %s", client, exc)
        raise _unauthorized() from None
    except ApiKeyError as exc:
        logger.error("cannot verify keys: %s", exc)
        raise HTTPException(503, "the gateway cannot verify keys; see its log") from None


Claims = Annotated[KeyClaims, Depends(authenticated)]


async def _deployment(client: PrefectClient, claims: KeyClaims) -> DeploymentResponse:
    try:
        return await client.read_deployment_by_name(claims.deployment)
    except ObjectNotFound:
        raise HTTPException(404, f"deployment `{claims.deployment}` is not deployed") from None


async def _own_run(client: PrefectClient, run_id: UUID, claims: KeyClaims) -> FlowRun:
    """The run, if it belongs to the key's deployment; else 404, as for no run at all."""
    try:
        run = await client.read_flow_run(run_id)
    except ObjectNotFound:
        raise HTTPException(404, RUN_NOT_FOUND) from None
    deployment = await _deployment(client, claims)
    if run.deployment_id != deployment.id:
        raise HTTPException(404, RUN_NOT_FOUND)
    return run


async def _overrides(
    request: Request, deployment: DeploymentResponse, claims: KeyClaims
) -> dict[str, Any]:
    """The run's parameters from the body: the window merged into the deployment's own
    (the server would replace it whole), checked as the flow will check it."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = TriggerRequest.model_validate_json(raw)
    except ValidationError as exc:
        errors = [
            {"loc": ["body", *error["loc"]], "msg": error["msg"], "type": error["type"]}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise HTTPException(422, errors) from None
    window = body.parameters.window
    if window is None:
        return {}
    merged = dict(deployment.parameters.get("window") or {})
    merged.update(window.model_dump(mode="json", exclude_unset=True))
    parameters = {**deployment.parameters, "window": merged}
    if claims.deployment.partition("/")[0] == EXPORT_FLOW:
        try:
            await run_in_threadpool(validate_export_parameters, parameters)
        except ConfigurationError as exc:
            # As a Failed alert says it: the whole error may name the source's table or SQL.
            logger.warning("refused a window for %s: %s", claims.deployment, exc)
            raise HTTPException(422, alert_error(exc, IN_GATEWAY_LOG)) from None
    return {"window": merged}


def _links(request: Request, run_id: UUID, claims: KeyClaims) -> TriggerAccepted:
    base = base_url(request)
    return TriggerAccepted(
        export_request_id=str(run_id),
        deployment=claims.deployment,
        status_url=base + app.url_path_for("run_status", run_id=str(run_id)),
        file_url=base + app.url_path_for("run_file", run_id=str(run_id)),
    )


@app.post(
    "/v1/exports/trigger",
    status_code=202,
    response_model=TriggerAccepted,
    responses={
        200: {"description": "With ?wait=: the exported file (or, for several parts or an "
              "HTTP destination, the status document of the completed run)."},
        401: {"description": "Missing or invalid key (one fixed body)."},
        404: {"description": "The key's deployment is not deployed."},
        409: {"description": "The deployment (the trigger) is paused."},
        413: {"description": "The body is larger than 64 KiB."},
        422: {"description": "Bad body, parameters, wait or Idempotency-Key."},
        424: {"description": "With ?wait=: the export failed; the body is its status."},
        503: {"description": "The Prefect API is unavailable."},
    },
)  # fmt: skip
async def trigger(
    request: Request,
    claims: Claims,
    wait: Annotated[
        int, Query(ge=0, le=MAX_WAIT_S, description="Seconds to wait for the file (0-300).")
    ] = 0,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=r"^[!-~]{1,200}$",
            description="The same value (per key) gives the same run, e.g. on a retry.",
        ),
    ] = None,
) -> Any:
    """Start the key's deployment now. Body (optional): `{"parameters": {"window": {"since":
    ISO, "until": ISO, "lookback": "PT15M"}}}`."""
    async with prefect_client() as client:
        deployment = await _deployment(client, claims)
        if deployment.paused:
            raise HTTPException(
                409,
                f"the trigger `{claims.deployment}` is paused; resume it "
                f"(`exports resume {deployment.name}` or the Prefect UI) to start runs",
            )
        parameters = await _overrides(request, deployment, claims)
        async with _creating:
            run = await client.create_flow_run_from_deployment(
                deployment.id,
                parameters=parameters,
                tags=api_tags(claims.user, claims.key_id),
                idempotency_key=(
                    f"api:{claims.key_id}:{idempotency_key}"
                    if idempotency_key is not None
                    else None
                ),
            )
        logger.info(
            "API trigger: run %s of %s for user %s (key %s)",
            run.id,
            claims.deployment,
            claims.user,
            claims.key_id,
        )
        accepted = _links(request, run.id, claims)
        if wait:
            run = await _wait_for(client, run.id, wait)
            if run.state is not None and run.state.is_final():
                return await _finished(run, claims)
    return JSONResponse(
        accepted.model_dump(), status_code=202, headers={"Location": accepted.status_url}
    )


async def _wait_for(client: PrefectClient, run_id: UUID, seconds: int) -> FlowRun:
    deadline = time.monotonic() + seconds
    while True:
        run = await client.read_flow_run(run_id)
        remaining = deadline - time.monotonic()
        if (run.state is not None and run.state.is_final()) or remaining <= 0:
            return run
        await asyncio.sleep(min(POLL_S, remaining))


async def _finished(run: FlowRun, claims: KeyClaims) -> Any:
    status = await _status(run, claims)
    if status.status != "Completed":
        return JSONResponse(status.model_dump(mode="json"), status_code=424)
    if len(status.files) == 1:
        try:
            return await _file_response(run, status, 1)
        except HTTPException:
            pass  # an HTTP destination: nothing to download
    return JSONResponse(status.model_dump(mode="json"), status_code=200)


@app.get("/v1/exports/runs/{run_id}", response_model=RunStatus, name="run_status")
async def run_status(run_id: UUID, claims: Claims) -> RunStatus:
    """The run's status; rows, bytes and files once it completed; error if it did not."""
    async with prefect_client() as client:
        run = await _own_run(client, run_id, claims)
        return await _status(run, claims)


@app.get(
    "/v1/exports/runs/{run_id}/file",
    name="run_file",
    responses={
        200: {"description": "The delivered file, streamed."},
        404: {"description": "No such run, not completed, no such part, or an HTTP destination."},
    },
)
async def run_file(
    run_id: UUID,
    claims: Claims,
    part: Annotated[int, Query(ge=1, le=100_000, description="Which part (max_file_mb).")] = 1,
) -> StreamingResponse:
    """The file the run delivered (part 1 unless `part` is given), streamed from its store."""
    async with prefect_client() as client:
        run = await _own_run(client, run_id, claims)
        status = await _status(run, claims)
    if status.status != "Completed":
        raise HTTPException(404, f"the run is {status.status}, not Completed: no file yet")
    return await _file_response(run, status, part)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the gateway answers (it does not call the Prefect API)."""
    return {"status": "ok"}


async def _status(run: FlowRun, claims: KeyClaims) -> RunStatus:
    return await run_in_threadpool(read_status, run, claims.deployment)


async def _file_response(run: FlowRun, status: RunStatus, part: int) -> StreamingResponse:
    try:
        delivered = await run_in_threadpool(open_delivered, run, status, part)
    except NoFile as exc:
        raise HTTPException(404, str(exc)) from None
    headers = {
        "Content-Disposition": delivered.content_disposition,
        "X-Export-Request-Id": status.export_request_id,
        "X-Export-Parts": str(len(status.files)),
    }
    if delivered.size is not None:
        headers["Content-Length"] = str(delivered.size)
    # Starlette iterates a sync iterator in a worker thread.
    return StreamingResponse(delivered.chunks(), media_type=delivered.media_type, headers=headers)


def _openapi() -> dict[str, Any]:
    """FastAPI's document plus the trigger's body, which the endpoint reads itself (after
    the key is checked, so a bad body without a key is a 401, not a 422)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    body = TriggerRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(body.pop("$defs", {}))
    components["TriggerRequest"] = body
    schema["paths"]["/v1/exports/trigger"]["post"]["requestBody"] = {
        "required": False,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/TriggerRequest"}}
        },
    }
    app.openapi_schema = schema
    return schema


app.openapi = _openapi  # type: ignore[method-assign]
