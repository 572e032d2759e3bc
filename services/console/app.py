"""Builds the console: the page (static files), the backend-for-frontend API the page
calls, and the live feed. services/common/assembly.py runs the upstream
clients and the Kafka reader beside the routes."""

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from services.common.assembly import Parts, Service, admin_key, assemble
from services.common.web import admitting, problem_response
from services.console import (
    board_api,
    call_aids_api,
    events_api,
    incidents_api,
    pipeline_api,
    shift_api,
    signin_api,
    store,
    work_api,
)
from services.console.live import Broadcaster, LiveFeed, LiveMetrics
from services.console.metrics import ConsoleMetrics
from services.console.session import cross_site
from services.console.settings import ConsoleSettings
from services.console.upstream import Upstream

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
# The page loads only its own files: no inline script, nothing from elsewhere, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def create_app(settings: ConsoleSettings, transports: dict[str, httpx.AsyncBaseTransport] | None = None) -> FastAPI:
    """`transports` puts intake, shifts and notifier in-process for tests."""
    registry = CollectorRegistry()
    metrics = ConsoleMetrics(registry)
    broadcaster = Broadcaster(settings.live_queue_size, LiveMetrics(registry))
    # Ready with the database alone: without the broker the console still files calls and
    # shows every screen (refreshed periodically); the page says live updates are paused.
    service = Service(
        title="e112 console",
        description="The call takers' console: take a call, the queue and verdicts, the dispatch board, the shift. "
        "The page's backend: it calls intake, shifts and notifier for the signed-in operator.",
        schema="console",
        migrations=Path(__file__).parent / "migrations",
        build=lambda pool, app: _workers(pool, app, settings, transports, broadcaster),
        ready_needs_broker=False,
    )
    app = assemble(service, settings, registry)
    # What the routes take (services/console/dependencies.py); `build` adds the upstreams.
    app.state.broadcaster = broadcaster
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.signin_rules = signin_api.SignInRules.of(settings)
    app.state.pipeline_kept = pipeline_api.LastAnswer()
    app.middleware("http")(_guard)
    app.include_router(signin_api.router)
    app.include_router(admitting(admin_key(settings), signin_api.for_admin))
    for routes in (work_api, board_api, call_aids_api, incidents_api, shift_api, events_api, pipeline_api):
        app.include_router(routes.router)
    app.get("/", include_in_schema=False)(page)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _workers(pool, app: FastAPI, settings: ConsoleSettings, transports, broadcaster: Broadcaster) -> Parts:
    """The upstream clients and the live feed, once the lifespan runs."""
    app.state.upstream = upstream = Upstream.from_settings(settings, transports)
    broadcaster.bind(asyncio.get_running_loop())
    app.state.live = feed = LiveFeed(
        bootstrap=settings.kafka_bootstrap_servers,
        broadcaster=broadcaster,
        partitions=settings.kafka_topic_partitions,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        idle_fetch_max_wait_ms=settings.kafka_idle_fetch_max_wait_ms,
        idle_after_seconds=settings.kafka_idle_after_seconds,
        security=settings.kafka_security,
    )

    async def end_streams() -> None:
        broadcaster.close()

    return Parts(
        loops={"live-feed": feed.run, "housekeeping": lambda: _housekeeping(pool)},
        drains=[end_streams],
        closes=[upstream.close],
    )


async def _guard(request: Request, call_next):
    """Another site's page's changes to /api/ are refused; every answer gets the security headers."""
    if request.url.path.startswith("/api/") and cross_site(request):
        return problem_response(403, "Forbidden", "Requests from another site's page are refused.")
    response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.url.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def _housekeeping(pool, every_seconds: float = 3600) -> None:
    """Forget sessions a day after they expired."""
    while True:
        try:
            async with pool.acquire() as conn:
                await store.forget_old_sessions(conn, datetime.now(UTC) - timedelta(days=1))
        except (OSError, TimeoutError) as exc:
            log.warning("housekeeping skipped", extra={"fields": {"error": type(exc).__name__}})
        await asyncio.sleep(every_seconds)
