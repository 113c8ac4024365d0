"""The pieces every HTTP service shares: health, readiness, metrics, errors, body limit."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hitl_shared.metrics import CONTENT_TYPE_LATEST, INGEST_REJECTED, REGISTRY, generate_latest
from hitl_shared.runtime import Runtime
from hitl_shared.work import Work

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error for the API caller: status, a stable code and a message that says what to fix."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = headers


def error_body(
    code: str, message: str, fields: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "message": message}
    if fields:
        body["fields"] = fields
    return body


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    path = ""
    for p in parts:
        path += f"[{p}]" if p.isdigit() else (f".{p}" if path else p)
    return path or "body"


def _validation_fields(exc: RequestValidationError | ValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        msg = str(err.get("msg", "is invalid"))
        if err.get("type") == "json_invalid":
            msg = "the request body is not valid JSON: " + str(err.get("ctx", {}).get("error", ""))
        out.append({"path": field_path(err.get("loc", ())), "message": msg})
    return out


M = TypeVar("M", bound=BaseModel)


def parse_body(model: type[M], raw: bytes) -> M:
    """Validate a JSON body with pydantic's parser, failing like FastAPI's own validation."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        fields = _validation_fields(exc)
        summary = "; ".join(f"{f['path']}: {f['message']}" for f in fields[:5])
        raise ApiError(
            422, "invalid_request", f"The request is not valid: {summary}", fields
        ) from None


class BodySizeLimit:
    """Refuses bodies over the limit with 413 before they are read into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        INGEST_REJECTED.labels("413").inc()
        response = JSONResponse(
            error_body(
                "body_too_large",
                f"The request body is larger than the limit of {self.max_bytes} bytes; "
                "send smaller items or raise HITL_MAX_BODY_BYTES.",
            ),
            status_code=413,
        )
        await response({"type": "http"}, _noop_receive, send)


class AsgiRoutes:
    """Serves a few (method, path) routes with bare ASGI handlers; the rest goes on to the
    framework."""

    def __init__(self, app: ASGIApp, routes: dict[tuple[str, str], ASGIApp]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = self.routes.get((scope["method"], scope["path"]))
            if handler is not None:
                await handler(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _TooLarge(Exception):
    pass


async def _noop_receive() -> Message:
    return {"type": "http.disconnect"}


def _count_rejection(request: Request, status: int) -> None:
    if request.url.path.startswith("/v1/items") and request.method == "POST":
        INGEST_REJECTED.labels(str(status)).inc()


def api_error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.code, exc.message, exc.fields), status_code=exc.status, headers=exc.headers
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        _count_rejection(request, exc.status)
        return api_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        _count_rejection(request, 422)
        fields = _validation_fields(exc)
        summary = "; ".join(f"{f['path']}: {f['message']}" for f in fields[:5])
        return JSONResponse(
            error_body("invalid_request", f"The request is not valid: {summary}", fields),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and not request.url.path.startswith("/v1"):
            return JSONResponse(error_body("not_found", "No such page."), status_code=404)
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
        return JSONResponse(
            error_body(code.get(exc.status_code, "error"), detail),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_work(runtime: RuntimeDep) -> AsyncIterator[Work]:
    async with runtime.work() as work:
        yield work


WorkDep = Annotated[Work, Depends(get_work)]


def common_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(runtime: RuntimeDep) -> JSONResponse:
        db = await runtime.database_ready()
        queue = await runtime.queue.ping()
        ok = db and queue
        return JSONResponse(
            {
                "status": "ready" if ok else "not ready",
                "database": "ok" if db else "unreachable",
                "queue": "ok" if queue else "unreachable",
            },
            status_code=200 if ok else 503,
        )

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router


def build_app(
    title: str,
    routers: list[APIRouter],
    start: Callable[[], Awaitable[Runtime]],
    stop: Callable[[Runtime], Awaitable[None]],
    max_body_bytes: int,
    static: list[tuple[str, ASGIApp]] | None = None,
    asgi_routes: dict[tuple[str, str], ASGIApp] | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = await start()
        try:
            yield
        finally:
            await stop(app.state.runtime)

    app = FastAPI(title=title, lifespan=lifespan, version="1.0")
    install_error_handlers(app)
    app.include_router(common_router())
    for path, sub in static or []:
        app.mount(path, sub)
    for r in routers:
        app.include_router(r)
    if asgi_routes:
        app.add_middleware(AsgiRoutes, routes=asgi_routes)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)  # outermost: limits both
    return app
