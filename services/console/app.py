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
from prometheus_client import CollectorRegistry, Counter

from services.common.assembly import Parts, Service, admin_key, assemble
from services.common.web import problem_response
from services.console import store
from services.console.board_api import build_board_router
from services.console.call_aids_api import build_call_aids_router
from services.console.events_api import build_events_router
from services.console.incidents_api import build_incidents_router
from services.console.live import Broadcaster, LiveFeed, LiveMetrics
from services.console.pipeline_api import build_pipeline_router
from services.console.session import cross_site
from services.console.settings import ConsoleSettings
from services.console.shift_api import build_shift_router
from services.console.signin_api import build_signin_router
from services.console.upstream import Upstream
from services.console.work_api import build_work_router

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


class ConsoleMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.actions = Counter(
            "e112_console_actions_total",
            "What operators did in the console, by action and outcome",
            ["action", "outcome"],
            registry=registry,
        )
        self.signins = Counter(
            "e112_console_signins_total",
            "Sign-in attempts by outcome (ok, wrong, locked)",
            ["outcome"],
            registry=registry,
        )
        self.signin_lockouts = Counter(
            "e112_console_signin_lockouts_total",
            "Sign-in locks set after wrong PINs, by scope: source (one address "
            "for one operator) or operator (the ceiling over every address)",
            ["scope"],
            registry=registry,
        )


def create_app(settings: ConsoleSettings, transports: dict[str, httpx.AsyncBaseTransport] | None = None) -> FastAPI:
    """`transports` puts intake, shifts and notifier in-process for tests."""
    registry = CollectorRegistry()
    metrics = ConsoleMetrics(registry)
    broadcaster = Broadcaster(settings.live_queue_size, LiveMetrics(registry))

    def build(pool, app: FastAPI) -> Parts:
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

    # Ready with the database alone: without the broker the console still files calls and
    # shows every screen (refreshed periodically); the page says live updates are paused.
    service = Service(
        title="e112 console",
        description="The call takers' console: take a call, the queue and verdicts, the dispatch board, the shift. "
        "The page's backend: it calls intake, shifts and notifier for the signed-in operator.",
        schema="console",
        migrations=Path(__file__).parent / "migrations",
        build=build,
        ready_needs_broker=False,
    )
    app = assemble(service, settings, registry)
    app.state.broadcaster = broadcaster

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.url.path.startswith("/api/") and cross_site(request):
            return problem_response(403, "Forbidden", "Requests from another site's page are refused.")
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    admin = admin_key(settings)
    app.include_router(build_signin_router(settings, admin, metrics))
    app.include_router(build_work_router(metrics))
    app.include_router(build_board_router(settings.board_page_size))
    app.include_router(build_call_aids_router())
    app.include_router(build_incidents_router(metrics))
    app.include_router(build_shift_router(metrics))
    app.include_router(build_events_router())
    app.include_router(build_pipeline_router(settings.pipeline_backlog_bound))

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


async def _housekeeping(pool, every_seconds: float = 3600) -> None:
    """Forget sessions a day after they expired."""
    while True:
        try:
            async with pool.acquire() as conn:
                await store.forget_old_sessions(conn, datetime.now(UTC) - timedelta(days=1))
        except (OSError, TimeoutError) as exc:
            log.warning("housekeeping skipped", extra={"fields": {"error": type(exc).__name__}})
        await asyncio.sleep(every_seconds)
