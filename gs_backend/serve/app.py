"""The sidecar's HTTP API (FastAPI): routes of DESIGN contract 10, errors as JSON.

Request bodies are read as JSON and checked by :mod:`gs_contract.sidecar` (the rules the
add-on uses for what it sends); the pydantic models below only describe the bodies in the
OpenAPI schema. Every error is ``{"error", "field"}``:

- a request that breaks a rule: 400 (the field named); unknown job: 404; a route or
  method that does not exist: 404 / 405; a path parameter FastAPI refuses: 422;
  missing or wrong token: 401; body too large: 413 (:mod:`.guard`);
- an unexpected exception is a bug in the sidecar, not a problem of the request: it is
  logged with its traceback and answered 500 with the same body (``field`` null), so the
  client shows one plain line and the bug is visible as what it is. The contract's "no
  input makes it answer 5xx" is kept by fixing such bugs, which the OpenAPI fuzz test
  (``tests/test_serve_fuzz.py``) hunts for; it is not hidden behind a 4xx.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from gs_backend import __version__
from gs_backend.serve.jobs import JobManager
from gs_backend.serve.preview import PreviewService, RequestError
from gs_contract.errors import InputError
from gs_contract.sidecar import (
    EVENTS_MEDIA_TYPE,
    PNG_MEDIA_TYPE,
    RENDER_TIME_HEADER,
    ROUTE_HEALTH,
    ROUTE_PREVIEW,
    ROUTE_RENDERS,
    RenderJobRequest,
    SidecarMessageError,
    error_body,
    parse_preview_request,
    parse_render_job_request,
)

log = logging.getLogger("gs_backend.serve")


@dataclass
class ServeState:
    """What the routes use: the health answer, the preview service, the job manager."""

    health: dict[str, Any]
    previews: PreviewService
    jobs: JobManager


# -- documentation models (OpenAPI only; the rules are gs_contract.sidecar's)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PreviewBody(_Strict):
    """POST /v1/preview. ``frame``: 0-based index or name; ``scale`` in (0, 1]."""

    scenario: dict[str, Any]
    base_dir: str | None = None
    frame: int | str = 0
    overlay: bool = False
    scale: float = 1.0


class RenderJobBody(_Strict):
    """POST /v1/renders: the arguments of ``gs-backend render`` (absolute paths on the
    sidecar's machine)."""

    scenario_path: str
    out: str
    overwrite: bool = False
    frames: str | None = None
    shard: str | None = None


class ErrorModel(BaseModel):
    error: str
    field: str | None


class HealthModel(BaseModel):
    status: str
    version: str
    api: int
    device: str
    rasterizer: str
    torch: str
    gsplat: str | None


class JobCreatedModel(BaseModel):
    id: str


class JobStatusModel(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    done: int
    total: int
    error: str | None
    summary: dict[str, Any] | None


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema()}}}}


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorModel, "description": what} for code, what in (
        (400, "bad request: the field at fault is named"), (401, "missing or wrong token"),
        (404, "no such job"), (413, "request body too large"))}


def create_app(state: ServeState) -> FastAPI:
    """The FastAPI application over ``state`` (the token and size gate is added by the
    caller, :func:`gs_backend.serve.server.build_asgi_app`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(state.jobs.shutdown)

    app = FastAPI(title="gs-backend sidecar", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Previews and dataset renders of gs-scenario files "
                              "(docs/sidecar.md). Send 'Authorization: Bearer <token>' "
                              "on every route except /v1/health and /openapi.json.")
    _add_error_handlers(app)

    @app.get(ROUTE_HEALTH, response_model=HealthModel)
    def health() -> dict[str, Any]:
        """Liveness, versions and the device (no token needed)."""
        return state.health

    @app.post(ROUTE_PREVIEW, response_class=Response, openapi_extra=_body_doc(PreviewBody),
              responses={200: {"content": {PNG_MEDIA_TYPE: {}},
                               "description": "the frame as PNG; render seconds in the "
                                              f"{RENDER_TIME_HEADER} header"}, **_ERRORS})
    async def preview(request: Request) -> Response:
        """One frame of a scenario as PNG (the dataset's image at scale 1, no overlay)."""
        body = parse_preview_request(await _json(request))
        result = await asyncio.wrap_future(state.previews.submit(body))
        return Response(result.png, media_type=PNG_MEDIA_TYPE,
                        headers={RENDER_TIME_HEADER: f"{result.seconds:.6f}"})

    @app.post(ROUTE_RENDERS, status_code=202, response_model=JobCreatedModel,
              openapi_extra=_body_doc(RenderJobBody), responses=_ERRORS)
    async def create_render(request: Request) -> dict[str, str]:
        """Queue a dataset render (``gs-backend render``); follow it by its id."""
        job_request = parse_render_job_request(await _json(request))
        await run_in_threadpool(check_render_request, job_request)
        return {"id": state.jobs.submit(job_request).id}

    @app.get(ROUTE_RENDERS + "/{job_id}", response_model=JobStatusModel, responses=_ERRORS)
    def render_status(job_id: str) -> dict[str, Any]:
        """A job's state and progress."""
        return _job(state, job_id).status()

    @app.get(ROUTE_RENDERS + "/{job_id}/events", response_class=StreamingResponse,
             responses={200: {"content": {EVENTS_MEDIA_TYPE: {}},
                              "description": "one progress event per line, from the "
                                             "first, until the job ends"}, **_ERRORS})
    def render_events(job_id: str) -> StreamingResponse:
        """The job's progress events as newline-delimited JSON (``--progress jsonl``)."""
        job = _job(state, job_id)
        return StreamingResponse(state.jobs.follow(job), media_type=EVENTS_MEDIA_TYPE)

    @app.delete(ROUTE_RENDERS + "/{job_id}", response_model=JobStatusModel, responses=_ERRORS)
    def cancel_render(job_id: str) -> dict[str, Any]:
        """Cancel a job (a running one is interrupted; its folder stays resumable)."""
        job = _job(state, job_id)
        state.jobs.cancel(job)
        return job.status()

    _document_security(app)
    return app


def check_render_request(request: RenderJobRequest) -> None:
    """What the server checks before queueing a job: absolute paths, a scenario that
    parses, a frame selection that fits it (the child checks everything again).

    Raises:
        RequestError: naming the request field.
    """
    from gs_backend.cli import parse_selection
    from gs_contract.scenario import load_scenario

    for name in ("scenario_path", "out"):
        if not Path(getattr(request, name)).is_absolute():
            raise RequestError(f"{name} must be an absolute path on the sidecar's machine",
                               name)
    try:
        scenario = load_scenario(request.scenario_path)
    except InputError as exc:
        raise RequestError(exc.message, "scenario_path") from None
    try:
        parse_selection(request.frames, request.shard, len(scenario.frames))
    except InputError as exc:
        field = exc.source.lstrip("-")
        raise RequestError(f"{field}: {exc.problem}", field) from None


def _job(state: ServeState, job_id: str) -> Any:
    job = state.jobs.get(job_id)
    if job is None:
        raise StarletteHTTPException(404, f"no render job {job_id!r}")
    return job


async def _json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except RecursionError:
        raise RequestError("the JSON body is nested too deeply", None) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"the body is not JSON: {exc}", None) from None


def _add_error_handlers(app: FastAPI) -> None:
    def answer(status: int, message: str, field: str | None) -> JSONResponse:
        return JSONResponse(error_body(message, field), status_code=status)

    @app.exception_handler(RequestError)
    async def request_error(_: Request, exc: RequestError) -> JSONResponse:
        return answer(400, exc.message, exc.field)

    @app.exception_handler(SidecarMessageError)
    async def message_error(_: Request, exc: SidecarMessageError) -> JSONResponse:
        return answer(400, str(exc), exc.field)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(exc.detail), None), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ())]
        field = ".".join(loc[1:]) if loc[:1] in (["body"], ["path"], ["query"]) else \
            ".".join(loc)
        return answer(422, str(first.get("msg", "invalid request")), field or None)

    @app.exception_handler(Exception)
    async def bug(_: Request, exc: Exception) -> JSONResponse:
        log.error("internal error (a bug in the sidecar)", exc_info=exc)
        return answer(500, f"internal error (a bug in the sidecar, see its log): "
                           f"{type(exc).__name__}: {exc}", None)


def _document_security(app: FastAPI) -> None:
    """Declare the bearer token in the OpenAPI schema (the gate enforces it)."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"bearer": []}]
            schema["paths"][ROUTE_HEALTH]["get"]["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
