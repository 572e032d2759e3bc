"""Builds the intake service. Nothing connects at import time: the lifespan owns the
pool, the outbox relay and the timeline consumer, and closes them."""

import asyncio
import contextlib
import logging
from datetime import timedelta
from pathlib import Path

import asyncpg
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry

from schemas import topics
from services.common import db
from services.common.backlog import BacklogProbe, WatchedGroup
from services.common.consumer import TRANSIENT_ERRORS, ConsumerMetrics, EventConsumer
from services.common.lifecycle import cancel_tasks
from services.common.outbox import OutboxMetrics, OutboxRelay
from services.common.web import new_app, problem_response
from services.intake import admin, store, timeline, verification_api
from services.intake.api import IntakeMetrics, build_router
from services.intake.clients import Authenticator
from services.intake.settings import IntakeSettings
from services.intake.watchdog import Watchdog, WatchdogMetrics

log = logging.getLogger(__name__)
SCHEMA = "intake"


# The consumer groups a dispatch passes through on its way, and the one that records
# what the notifier says of it: the watchdog waits while one of them is behind.
PIPELINE_GROUPS = [
    WatchedGroup("e112-router", (topics.REPORTS,)),
    WatchedGroup("e112-notifier", (topics.DISPATCH_PREFIX,)),
    WatchedGroup("e112-intake-timeline", tuple(timeline.TOPICS)),
]


def create_app(settings: IntakeSettings) -> FastAPI:
    registry = CollectorRegistry()
    outbox_metrics = OutboxMetrics(registry)
    consumer_metrics = ConsumerMetrics(registry)
    watchdog_metrics = WatchdogMetrics(registry)
    state: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = await db.create_pool(
            settings.database_url, schema=SCHEMA, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        await db.migrate(pool, SCHEMA, Path(__file__).parent / "migrations")
        async with pool.acquire() as conn:
            await verification_api.seed_default_policy(conn)
        app.state.pool = pool
        relay = OutboxRelay(
            dsn=settings.database_url, schema=SCHEMA, bootstrap=settings.kafka_bootstrap_servers,
            topics=[topics.REPORTS, topics.DEADLETTER], partitions=settings.kafka_topic_partitions,
            metrics=outbox_metrics, poll_interval=settings.outbox_poll_interval,
            retention_seconds=settings.outbox_retention_seconds,
        )  # fmt: skip
        consumer = EventConsumer(
            name="intake-timeline", pool=pool, handler=timeline.record,
            bootstrap=settings.kafka_bootstrap_servers, fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=settings.kafka_session_timeout_ms, inbox_retention_days=settings.inbox_retention_days,
            metrics=consumer_metrics, source="e112/intake", topics_=timeline.TOPICS,
            partitions=settings.kafka_topic_partitions, handles=timeline.HANDLES,
        )  # fmt: skip
        state["consumer"] = consumer
        relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        consumer_task = asyncio.create_task(consumer.run(), name="timeline-consumer")
        housekeeping_task = asyncio.create_task(_housekeeping(pool, settings), name="housekeeping")
        backlog = BacklogProbe(settings.kafka_bootstrap_servers, PIPELINE_GROUPS)
        watchdog = Watchdog(
            pool, bound=timedelta(seconds=settings.watchdog_bound_seconds),
            interval=settings.watchdog_interval_seconds, metrics=watchdog_metrics, backlog=backlog,
            hold_backlog=settings.watchdog_hold_backlog, max_attempts=settings.watchdog_max_attempts,
        )  # fmt: skip
        app.state.watchdog = watchdog
        watchdog_task = asyncio.create_task(watchdog.run(), name="watchdog")
        try:
            yield
        finally:
            await consumer.shutdown(consumer_task)
            await cancel_tasks(relay_task, housekeeping_task, watchdog_task)
            await backlog.close()
            await pool.close()

    async def readiness() -> dict[str, bool]:
        return await db.readiness_of(getattr(app.state, "pool", None))

    app = new_app(
        title="e112 intake",
        description="Files emergency reports for Layanan 112 Kabupaten Blitar and shows their progress.",
        lifespan=lifespan, registry=registry, readiness=readiness, max_body_bytes=settings.max_request_body_bytes,
    )  # fmt: skip
    app.state.authenticator = Authenticator(settings.e112_api_key.get_secret_value() if settings.e112_api_key else None)
    app.include_router(build_router(settings, IntakeMetrics(registry)))
    app.include_router(verification_api.build_router(settings, verification_api.VerificationMetrics(registry)))
    app.include_router(admin.build_router())

    @app.exception_handler(asyncpg.PostgresError)
    async def on_database_error(request: Request, exc: Exception):
        return _unavailable(settings, exc)

    for transient in TRANSIENT_ERRORS:
        app.add_exception_handler(transient, lambda request, exc: _unavailable(settings, exc))
    return app


def _unavailable(settings: IntakeSettings, exc: Exception):
    log.error("storage unavailable; answering 503", extra={"fields": {"error": type(exc).__name__}})
    return problem_response(
        503, "Service unavailable",
        "Reports cannot be stored right now; nothing was saved. Retry after the given seconds.",
        headers={"Retry-After": str(settings.retry_after_seconds)},
    )  # fmt: skip


async def _housekeeping(pool, settings: IntakeSettings, every_seconds: float = 600) -> None:
    """Forget expired Idempotency-Keys, so the table holds a day's keys, not all of them."""
    ttl = timedelta(hours=settings.idempotency_ttl_hours)
    while True:
        await asyncio.sleep(every_seconds)
        try:
            async with pool.acquire() as conn:
                await store.forget_expired_idempotency_keys(conn, ttl)
        except TRANSIENT_ERRORS:
            log.warning("housekeeping skipped: database unavailable")
