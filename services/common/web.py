"""What every service's HTTP side shares: the app skeleton, problem+json errors,
health, metrics, request ids and the bearer-key check."""

import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from http import HTTPStatus
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from services.common.problems import PROBLEM_JSON, problem_body
from services.common.request_guard import DEFAULT_MAX_BODY_BYTES, RequestGuard

log = logging.getLogger(__name__)

Readiness = Callable[[], Awaitable[dict[str, bool]]]


class Problem(Exception):
    """An RFC 9457 problem: raise it from a route to answer with problem+json."""

    def __init__(self, status: int, title: str, detail: str, *, headers: dict | None = None, **extra: Any):
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(status: int, title: str, detail: str, *, headers: dict | None = None, **extra) -> JSONResponse:
    return JSONResponse(
        problem_body(status, title, detail, **extra), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def field_errors(errors) -> list[dict[str, str]]:
    """pydantic errors as [{field: 'location.kecamatan', message: ...}], without echoing
    the input (it may be a caller's phone number)."""
    out = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p != "body"]
        message = error.get("msg", "invalid")
        if error.get("type") == "extra_forbidden":
            message = "unknown field"
        out.append({"field": ".".join(loc) or "(body)", "message": message})
    return out


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for status, text in {
        400: "Malformed request (e.g. not JSON)",
        401: "Missing or wrong API key",
        403: "A key this route does not take (the console's key where only the service's admin key goes)",
        413: "Request body larger than the service accepts",
        422: "Validation failed: `errors` names every wrong field",
    }.items()
}


class RequestIdAndTiming:
    """Gives each request an id (its `X-Request-ID`, or a new one; `request.state.request_id`
    and the response's `X-Request-ID`) and times it by route template. Plain ASGI, not
    `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs every request through
    an extra task and memory streams, which cost intake a tenth of its CPU under load."""

    def __init__(self, app: ASGIApp, histogram: Histogram):
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        request_id = request_id or str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            self.histogram.labels(template, scope["method"], str(status)).observe(time.perf_counter() - started)


def new_app(
    *,
    title: str,
    description: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    registry: CollectorRegistry,
    readiness: Readiness,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    trusted_proxies: str = "127.0.0.1",
) -> FastAPI:
    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
    requests = Histogram(
        "e112_http_request_duration_seconds",
        "HTTP requests by route template, method and status",
        ["route", "method", "status"],
        registry=registry,
    )

    # Added before the timing middleware, so it runs inside it: refused input is timed
    # and given a request id too.
    app.add_middleware(RequestGuard, max_body_bytes=max_body_bytes)
    app.add_middleware(RequestIdAndTiming, histogram=requests)
    # Outermost: everything inside sees the client's address, not the ingress's. In the
    # app rather than uvicorn's option so that every way of running it (tests too) agrees.
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted_proxies)
    _add_error_handlers(app)
    _add_ops_routes(app, registry, readiness)
    _add_problem_schema(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as problem+json."""

    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem):
        return problem_response(exc.status, exc.title, exc.detail, headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem_response(400, "Malformed JSON", "The request body is not valid JSON.")
        fields = field_errors(errors)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in fields)
        return problem_response(
            422, "Invalid report" if request.url.path.endswith("reports") else "Invalid request", detail, errors=fields
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        return problem_response(exc.status_code, _reason(exc.status_code), str(exc.detail), headers=exc.headers)


def _add_ops_routes(app: FastAPI, registry: CollectorRegistry, readiness: Readiness) -> None:
    """/healthz, /readyz and /metrics: for the platform, without a key."""

    @app.get("/healthz", tags=["ops"], summary="Alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["ops"],
        summary="Able to do its job (503 otherwise)",
        responses={503: {"description": "Not ready; the body says which check failed"}},
    )
    async def readyz() -> Response:
        checks = await readiness()
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503
        )

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _add_problem_schema(app: FastAPI) -> None:
    original = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = {
            "type": "object",
            "description": "RFC 9457 problem details",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                    },
                },
            },
            "required": ["title", "status", "detail"],
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi


_bearer = HTTPBearer(auto_error=False, description="The API key, as `Authorization: Bearer <key>`")


def require_api_key(*expected: Callable[[], str | None], refused: Sequence[Callable[[], str | None]] = ()):
    """A dependency that admits requests bearing one of the expected keys. A key of
    `refused` is known but may not do this: a 403 that says so, not a 401. Each key is
    compared in constant time, all of them every time."""

    def matching(given: bytes, keys: Sequence[Callable[[], str | None]]) -> bool:
        return any([hmac.compare_digest(given, key.encode()) for key in (get() for get in keys) if key])

    async def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
        given = credentials.credentials.encode() if credentials else b""
        if credentials is not None and matching(given, expected):
            return
        if credentials is not None and matching(given, refused):
            raise Problem(403, "Forbidden", "This key may not do this: it takes the service's admin key.")
        raise Problem(
            401,
            "Unauthorized",
            "Send the API key as `Authorization: Bearer <key>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )

    return check


def admitting(key: Callable, *routers: APIRouter) -> APIRouter:
    """`routers` behind the dependency `key`, which says whose key their routes take
    (`Keys.admin`, `Keys.console`, …)."""
    whole = APIRouter()
    for router in routers:
        whole.include_router(router, dependencies=[Depends(key)])
    return whole


async def connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """A connection from the app's pool for a route's run, released when the route returns,
    before the answer is sent (scope "function"). A route takes it after its key check,
    so that a refused request holds none."""
    async with request.app.state.pool.acquire() as conn:
        yield conn


# A route that needs a transaction opens it: `async with conn.transaction():`.
Connection = Annotated[asyncpg.Connection, Depends(connection, scope="function")]


def from_state(name: str) -> Any:
    """A dependency on what the service set on `app.state` as it was assembled, for
    `Annotated[TheType, from_state("name")]`."""

    async def read(request: Request) -> Any:
        return getattr(request.app.state, name)

    return Depends(read)


# For a route that must not hold a connection for its whole run: it acquires its own.
Pool = Annotated[asyncpg.Pool, from_state("pool")]
